//! What each CLI command does: the dispatch and the server resolution every
//! command shares live here; the commands themselves live in one file per area.

mod explain;
mod hooks;
mod inbox;
mod prompt;
mod servers;
mod sessions;
mod sheds;
mod ssh;
mod ssh_config;
mod ui;
mod wait;
mod watch;

use std::future::Future;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use futures_util::future::join_all;
use serde::Serialize;
use thiserror::Error;

use crate::api::{validate_session_name, validate_shed_name, ErrorCode, Shed, ShedStatus};
use crate::client::api_client::ApiClient;
use crate::client::cli::{Cli, Command};
use crate::client::config::{ClientConfig, ServerEntry};
use crate::client::output::{clean, one_line, warn};

pub use sessions::session_exec_script;

/// How a command ended, beyond plain failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done; exit 0.
    Success,
    /// Some servers failed but results were printed; exit 3.
    Partial,
    /// `inbox`: every server answered and nothing waits; exit 1.
    NothingWaits,
    /// `inbox`: no server could be asked at all; exit 2.
    NoAnswer,
    /// `wait`: the time ran out first; exit 124, as timeout(1) does.
    TimedOut,
    /// `wait`: the session went away first; exit 1.
    Gone,
    /// `console`, `exec`, `attach`: ssh's own exit code, passed on.
    Exit(u8),
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Partial => 3,
            Outcome::NothingWaits | Outcome::Gone => 1,
            Outcome::NoAnswer => 2,
            Outcome::TimedOut => 124,
            Outcome::Exit(code) => code,
        }
    }
}

/// Why the CLI could not pick a server to talk to.
#[derive(Debug, Error)]
pub enum ServerChoiceError {
    /// The config has no servers at all.
    #[error("no servers configured; add one with `shed server add HOST`")]
    NoServers,
    /// The name given is not in the config.
    #[error("unknown server {name:?} (configured: {configured})")]
    UnknownServer {
        /// The name asked for.
        name: String,
        /// The configured names, comma-separated.
        configured: String,
    },
    /// Several servers, no `-s` and no default.
    #[error("no default server; pick one with -s or `shed server set-default NAME`")]
    NoDefault,
}

/// A server (or one of its sheds) that could not answer, as reported in `--json` output.
#[derive(Debug, Serialize)]
pub(crate) struct ServerFailure {
    /// The configured server name.
    pub server: String,
    /// The shed, when only one shed failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shed: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl ServerFailure {
    /// A whole server that failed with `error`.
    fn server(client: &ApiClient, error: impl std::fmt::Display) -> ServerFailure {
        ServerFailure {
            server: client.server().to_string(),
            shed: None,
            message: one_line(&error.to_string()),
        }
    }
}

/// What every server answered to one question, split into answers and failures.
pub(crate) struct Answers<'a, T, E> {
    /// The servers that answered, with their answers, in the order asked.
    pub ok: Vec<(&'a ApiClient, T)>,
    /// The servers that failed, with why, in the order asked.
    pub failed: Vec<(&'a ApiClient, E)>,
}

/// Asks every one of `clients` at once and waits for all of them, so one slow
/// or dead server costs its own time, not the sum.
pub(crate) async fn ask_all<'a, T, E, F, Fut>(clients: &'a [ApiClient], ask: F) -> Answers<'a, T, E>
where
    F: FnMut(&'a ApiClient) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let answers = join_all(clients.iter().map(ask)).await;
    let mut split = Answers {
        ok: Vec::new(),
        failed: Vec::new(),
    };
    for (client, answer) in clients.iter().zip(answers) {
        match answer {
            Ok(value) => split.ok.push((client, value)),
            Err(e) => split.failed.push((client, e)),
        }
    }
    split
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(ClientConfig::default_path);
    let config = ClientConfig::load(&config_path)?;
    let ctx = Ctx {
        config_path,
        config,
        server_flag: cli.server.clone(),
    };
    match cli.command {
        Command::Server(cmd) => ctx.server_command(cmd).await,
        Command::Create {
            name,
            image,
            repo,
            idle_stop_after,
        } => ctx.create(name, image, repo, idle_stop_after).await,
        Command::List { all, json } => ctx.list(all, json).await,
        Command::Start { name } => ctx.start_stop(&name, true).await,
        Command::Stop { name } => ctx.start_stop(&name, false).await,
        Command::Delete {
            name,
            keep_volume,
            force,
        } => ctx.delete(&name, keep_volume, force).await,
        Command::Console { name } => ctx.console(&name).await,
        Command::Exec {
            name,
            command,
            session: None,
        } => ctx.exec(&name, &command).await,
        Command::Exec {
            name,
            command,
            session: Some(session),
        } => ctx.exec_in_session(&name, &session, &command).await,
        Command::Sessions {
            action,
            shed,
            shed_flag,
            all,
            json,
            watch,
        } => match action {
            None if watch => ctx.watch_sessions(all, false).await,
            None => {
                ctx.list_sessions(shed.or(shed_flag).as_deref(), all, json)
                    .await
            }
            Some(action) => ctx.session_action(action).await,
        },
        Command::Attach {
            name,
            session,
            new,
            existing,
            cwd,
        } => ctx.attach(&name, &session, new, existing, &cwd).await,
        Command::SshConfig {
            name,
            install,
            uninstall,
            dry_run: _,
        } => ctx.ssh_config(name.as_deref(), install, uninstall).await,
        Command::Hooks(crate::client::cli::HooksCommand::Install { name, agents, json }) => {
            ctx.install_hooks(&name, agents, json).await
        }
        Command::Inbox { json, quiet } => match ctx.inbox(json, quiet).await {
            Ok(outcome) => Ok(outcome),
            // Exit 1 means "nothing waits" here, so a failure to ask must
            // not look like an answer.
            Err(e) => {
                eprintln!("error: {}", clean(&one_line(&format!("{e:#}"))));
                Ok(Outcome::NoAnswer)
            }
        },
        Command::Wait {
            shed,
            session,
            state,
            timeout,
        } => ctx.wait(&shed, &session, state, timeout).await,
        Command::Watch { all, notify } => ctx.watch_sessions(all, notify).await,
        Command::Ui { port, open } => ctx.ui(port, open).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "shed", &mut std::io::stdout());
            Ok(Outcome::Success)
        }
    }
}

/// What every command works from: the loaded config and the `-s` flag.
pub(crate) struct Ctx {
    config_path: PathBuf,
    config: ClientConfig,
    server_flag: Option<String>,
}

impl Ctx {
    fn configured_names(&self) -> String {
        self.config
            .servers
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The configured server `name`.
    fn client(&self, name: &str) -> Result<ApiClient, ServerChoiceError> {
        match self.config.servers.get(name) {
            Some(entry) => Ok(ApiClient::new(name, entry)),
            None if self.config.servers.is_empty() => Err(ServerChoiceError::NoServers),
            None => Err(ServerChoiceError::UnknownServer {
                name: name.to_string(),
                configured: self.configured_names(),
            }),
        }
    }

    /// The server named by `-s`, else the default one.
    fn selected(&self) -> Result<ApiClient, ServerChoiceError> {
        match self
            .server_flag
            .as_deref()
            .or(self.config.default_server.as_deref())
        {
            Some(name) => self.client(name),
            None if self.config.servers.len() == 1 => {
                let name = self.config.servers.keys().next().expect("one server");
                self.client(name)
            }
            None if self.config.servers.is_empty() => Err(ServerChoiceError::NoServers),
            None => Err(ServerChoiceError::NoDefault),
        }
    }

    /// Every configured server; an error when there are none, since every
    /// command that asks them all has nothing to say then.
    fn all_clients(&self) -> Result<Vec<ApiClient>, ServerChoiceError> {
        if self.config.servers.is_empty() {
            return Err(ServerChoiceError::NoServers);
        }
        Ok(self
            .config
            .servers
            .iter()
            .map(|(name, entry)| ApiClient::new(name, entry))
            .collect())
    }

    /// The server holding shed `name`: the `-s` server, or the one server
    /// (of all configured) that has it.
    async fn find_shed(&self, name: &str) -> anyhow::Result<(ApiClient, Shed)> {
        check_shed_name(name)?;
        if let Some(server) = &self.server_flag {
            let client = self.client(server)?;
            let shed = client.get(name).await?;
            return Ok((client, shed));
        }
        let clients = self.all_clients()?;
        let Answers {
            ok: mut found,
            failed,
        } = ask_all(&clients, |c| c.get(name)).await;
        let (answered, failures): (Vec<_>, Vec<_>) = failed
            .into_iter()
            .partition(|(_, e)| e.code() == Some(ErrorCode::ShedNotFound));
        match found.len() {
            1 => {
                for (_, failure) in &failures {
                    warn(&failure.to_string());
                }
                let (client, shed) = found.pop().expect("one shed");
                Ok((client.clone(), shed))
            }
            0 if failures.is_empty() => {
                let listed = ask_all(&clients, |c| c.list()).await;
                let known: Vec<String> = listed
                    .ok
                    .into_iter()
                    .flat_map(|(_, sheds)| sheds.into_iter().map(|s| s.name))
                    .collect();
                Err(anyhow!(
                    "no shed named {name:?} on any server ({}){}",
                    self.configured_names(),
                    did_you_mean(name, &known)
                ))
            }
            0 => {
                let why: Vec<String> = failures
                    .iter()
                    .map(|(_, f)| one_line(&f.to_string()))
                    .collect();
                let checked = if answered.is_empty() {
                    "no server answered".to_string()
                } else {
                    let names: Vec<&str> = answered.iter().map(|(c, _)| c.server()).collect();
                    format!("not on {}", names.join(", "))
                };
                Err(anyhow!(
                    "shed {name:?} not found ({checked}); {}",
                    why.join("; ")
                ))
            }
            _ => {
                let servers: Vec<&str> = found.iter().map(|(c, _)| c.server()).collect();
                Err(anyhow!(
                    "shed {name:?} exists on several servers ({}); pick one with -s",
                    servers.join(", ")
                ))
            }
        }
    }

    /// The server holding shed `name`, started first if it is stopped, with
    /// a notice on stderr: every command that works in a shed starts it on
    /// demand, as an SSH login does. Only listing never starts one.
    async fn started_shed(&self, name: &str) -> anyhow::Result<(ApiClient, Shed)> {
        let (client, shed) = self.find_shed(name).await?;
        if shed.status != ShedStatus::Stopped {
            return Ok((client, shed));
        }
        // Said first, because the start is otherwise an unexplained wait.
        eprintln!("shed {name} is stopped; starting it");
        match client.start(name).await {
            Ok(shed) => Ok((client, shed)),
            // Someone else started it meanwhile: running is what we wanted.
            Err(e) if e.code() == Some(ErrorCode::ShedAlreadyRunning) => {
                let shed = client.get(name).await?;
                Ok((client, shed))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The command that starts stopped shed `name`, with `-s` if it was given.
    fn start_command(&self, name: &str) -> String {
        match &self.server_flag {
            Some(server) => format!("shed -s {server} start {name}"),
            None => format!("shed start {name}"),
        }
    }

    /// The `known_hosts` file shed keeps next to its config.
    fn known_hosts(&self) -> PathBuf {
        crate::client::ssh::known_hosts_path(&self.config_path)
    }

    /// The config entry of `client`'s server.
    fn entry(&self, client: &ApiClient) -> anyhow::Result<&ServerEntry> {
        self.config
            .servers
            .get(client.server())
            .ok_or_else(|| anyhow!("unknown server {:?}", client.server()))
    }

    /// Writes the config back where it was loaded from.
    fn save(&self) -> anyhow::Result<()> {
        self.config
            .save(&self.config_path)
            .with_context(|| format!("saving {}", self.config_path.display()))
    }
}

/// Checks a shed name given on the command line before it goes anywhere.
fn check_shed_name(name: &str) -> anyhow::Result<()> {
    validate_shed_name(name).map_err(|e| anyhow!("invalid shed name {name:?}: {e}"))
}

/// Checks a session name given on the command line before it goes anywhere.
fn check_session_name(name: &str) -> anyhow::Result<()> {
    validate_session_name(name).map_err(|e| anyhow!("invalid session name {name:?}: {e}"))
}

/// "; did you mean `X`?" when one of `known` is a likely typo of `name`, else "".
fn did_you_mean(name: &str, known: &[String]) -> String {
    // Close enough to be a slip of the fingers, far enough from everything
    // else that the guess is not a coin toss.
    let limit = (name.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, k)| *d <= limit && k.as_str() != name)
        .min()
        .map(|(_, k)| format!("; did you mean `{}`?", one_line(k)))
        .unwrap_or_default()
}

/// Levenshtein distance, with a swap of two neighbours counted as one edit
/// (the commonest typo, `agnet` for `agent`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// A "did you mean" for session `session` of shed `shed`, from the sessions
/// the server lists; "" when it cannot tell.
async fn session_hint(client: &ApiClient, shed: &str, session: &str) -> String {
    match client.list_sessions(shed).await {
        Ok(sessions) => {
            let names: Vec<String> = sessions.into_iter().map(|s| s.name).collect();
            did_you_mean(session, &names)
        }
        Err(_) => String::new(),
    }
}

/// Whether every server asked failed as a whole, so there is nothing to show:
/// the command fails with all their messages instead of exiting 3.
fn all_failed(failures: &[ServerFailure], servers_asked: usize) -> anyhow::Result<()> {
    let whole = failures.iter().filter(|f| f.shed.is_none()).count();
    if whole == servers_asked && whole > 0 {
        let messages: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
        return Err(anyhow!("{}", messages.join("; ")));
    }
    Ok(())
}

/// Exit 3 when anything failed, 0 otherwise.
fn outcome(failures: &[ServerFailure]) -> Outcome {
    if failures.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::config::Scheme;

    fn ctx(servers: &[&str], default: Option<&str>, flag: Option<&str>) -> Ctx {
        let entry = ServerEntry {
            host: "127.0.0.1".into(),
            http_port: 1,
            ssh_port: 1,
            token: None,
            identity_file: None,
            scheme: Scheme::Http,
            tls_fingerprint: None,
            allow_plain_http: false,
        };
        Ctx {
            config_path: PathBuf::from("/nonexistent/shed.toml"),
            config: ClientConfig {
                default_server: default.map(String::from),
                servers: servers
                    .iter()
                    .map(|name| (name.to_string(), entry.clone()))
                    .collect(),
            },
            server_flag: flag.map(String::from),
        }
    }

    #[test]
    fn did_you_mean_suggests_only_close_names() {
        let known: Vec<String> = ["demo", "agent", "web-app"].map(String::from).to_vec();
        assert_eq!(did_you_mean("dmeo", &known), "; did you mean `demo`?");
        assert_eq!(did_you_mean("agnet", &known), "; did you mean `agent`?");
        assert_eq!(did_you_mean("webapp", &known), "; did you mean `web-app`?");
        assert_eq!(did_you_mean("zzz", &known), "");
        assert_eq!(did_you_mean("demo", &known), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[tokio::test]
    async fn ask_all_splits_answers_from_failures_in_order() {
        let clients = ctx(&["a", "b", "c", "d"], None, None)
            .all_clients()
            .unwrap();
        let answers = ask_all(&clients, |c| async move {
            match c.server() {
                "b" | "d" => Err(format!("{} is down", c.server())),
                name => Ok(name.len()),
            }
        })
        .await;
        let ok: Vec<(&str, usize)> = answers.ok.iter().map(|(c, n)| (c.server(), *n)).collect();
        let failed: Vec<(&str, &str)> = answers
            .failed
            .iter()
            .map(|(c, e)| (c.server(), e.as_str()))
            .collect();
        assert_eq!(ok, [("a", 1), ("c", 1)]);
        assert_eq!(failed, [("b", "b is down"), ("d", "d is down")]);
    }

    #[test]
    fn server_choice() {
        let none = ctx(&[], None, None);
        assert!(matches!(none.selected(), Err(ServerChoiceError::NoServers)));
        assert!(matches!(
            none.all_clients(),
            Err(ServerChoiceError::NoServers)
        ));
        assert!(matches!(
            none.client("x"),
            Err(ServerChoiceError::NoServers)
        ));
        let one = ctx(&["only"], None, None);
        assert_eq!(one.selected().unwrap().server(), "only");
        let two = ctx(&["a", "b"], None, None);
        assert!(matches!(two.selected(), Err(ServerChoiceError::NoDefault)));
        assert_eq!(
            ctx(&["a", "b"], Some("b"), None)
                .selected()
                .unwrap()
                .server(),
            "b"
        );
        assert_eq!(
            ctx(&["a", "b"], Some("b"), Some("a"))
                .selected()
                .unwrap()
                .server(),
            "a"
        );
        let unknown = ctx(&["a", "b"], None, Some("c")).selected().unwrap_err();
        assert_eq!(
            unknown.to_string(),
            r#"unknown server "c" (configured: a, b)"#
        );
    }
}
