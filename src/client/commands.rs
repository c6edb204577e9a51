//! What each CLI command does.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use futures_util::future::join_all;
use serde::Serialize;

use crate::api::{validate_session_name, validate_shed_name, CreateShedRequest, ErrorCode, Shed};
use crate::client::api_client::ApiClient;
use crate::client::cli::{Cli, Command, ServerCommand};
use crate::client::config::{ClientConfig, ServerEntry};
use crate::client::output::{one_line, relative_time, table};
use crate::client::ssh::{self, HostEntry, SshConfig, Tty};

/// How a command ended, beyond plain failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done; exit 0.
    Success,
    /// Some servers failed but results were printed; exit 3.
    Partial,
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Partial => 3,
        }
    }
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
        Command::Create { name, image, repo } => ctx.create(name, image, repo).await,
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
            all,
            json,
        } => match action {
            None => ctx.list_sessions(shed.as_deref(), all, json).await,
            Some(action) => ctx.session_action(action).await,
        },
        Command::Attach {
            name,
            session,
            new,
            cwd,
        } => ctx.attach(&name, &session, new, &cwd).await,
        Command::SshConfig {
            name,
            install,
            uninstall,
            dry_run: _,
        } => ctx.ssh_config(name.as_deref(), install, uninstall).await,
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
    pub(crate) fn configured_names(&self) -> String {
        self.config
            .servers
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn client(&self, name: &str) -> anyhow::Result<ApiClient> {
        match self.config.servers.get(name) {
            Some(entry) => Ok(ApiClient::new(name, entry)),
            None if self.config.servers.is_empty() => {
                bail!("no servers configured; add one with `shed server add HOST`")
            }
            None => bail!(
                "unknown server {name:?} (configured: {})",
                self.configured_names()
            ),
        }
    }

    /// The server named by `-s`, else the default one.
    pub(crate) fn selected(&self) -> anyhow::Result<ApiClient> {
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
            None if self.config.servers.is_empty() => {
                bail!("no servers configured; add one with `shed server add HOST`")
            }
            None => bail!("no default server; pick one with -s or `shed server set-default NAME`"),
        }
    }

    pub(crate) fn all_clients(&self) -> Vec<ApiClient> {
        self.config
            .servers
            .iter()
            .map(|(name, entry)| ApiClient::new(name, entry))
            .collect()
    }

    /// The server holding shed `name`: the `-s` server, or the one server
    /// (of all configured) that has it.
    pub(crate) async fn find_shed(&self, name: &str) -> anyhow::Result<(ApiClient, Shed)> {
        check_shed_name(name)?;
        if let Some(server) = &self.server_flag {
            let client = self.client(server)?;
            let shed = client.get(name).await?;
            return Ok((client, shed));
        }
        let clients = self.all_clients();
        if clients.is_empty() {
            bail!("no servers configured; add one with `shed server add HOST`");
        }
        let answers = join_all(clients.iter().map(|c| c.get(name))).await;
        let mut found = Vec::new();
        let mut answered = Vec::new();
        let mut failures = Vec::new();
        for (client, answer) in clients.into_iter().zip(answers) {
            match answer {
                Ok(shed) => found.push((client, shed)),
                Err(e) if e.code() == Some(ErrorCode::ShedNotFound) => {
                    answered.push(client.server().to_string())
                }
                Err(e) => failures.push(e),
            }
        }
        match found.len() {
            1 => {
                for failure in &failures {
                    warn(&failure.to_string());
                }
                Ok(found.pop().expect("one shed"))
            }
            0 if failures.is_empty() => bail!(
                "no shed named {name:?} on any server ({})",
                self.configured_names()
            ),
            0 => {
                let why: Vec<String> = failures.iter().map(|f| one_line(&f.to_string())).collect();
                let checked = if answered.is_empty() {
                    "no server answered".to_string()
                } else {
                    format!("not on {}", answered.join(", "))
                };
                bail!("shed {name:?} not found ({checked}); {}", why.join("; "))
            }
            _ => {
                let servers: Vec<&str> = found.iter().map(|(c, _)| c.server()).collect();
                bail!(
                    "shed {name:?} exists on several servers ({}); pick one with -s",
                    servers.join(", ")
                )
            }
        }
    }

    async fn create(
        &self,
        name: String,
        image: Option<String>,
        repo: Option<String>,
    ) -> anyhow::Result<Outcome> {
        check_shed_name(&name)?;
        let client = self.selected()?;
        let spinner = Spinner::start(format!(
            "Creating shed {name} on {}{}",
            client.server(),
            repo.as_deref()
                .map(|r| format!(" (cloning {r})"))
                .unwrap_or_default()
        ));
        let request = CreateShedRequest { name, image, repo };
        let result = client.create(&request).await;
        spinner.finish();
        let shed = result?;
        println!(
            "Created shed {} on {} ({}, image {})",
            shed.name,
            client.server(),
            shed.status,
            shed.image
        );
        Ok(Outcome::Success)
    }

    async fn list(&self, all: bool, json: bool) -> anyhow::Result<Outcome> {
        let clients = if all {
            let clients = self.all_clients();
            if clients.is_empty() {
                bail!("no servers configured; add one with `shed server add HOST`");
            }
            clients
        } else {
            vec![self.selected()?]
        };
        let answers = join_all(clients.iter().map(|c| c.list())).await;
        let mut sheds = Vec::new();
        let mut failures = Vec::new();
        for (client, answer) in clients.iter().zip(answers) {
            match answer {
                // Show the name `-s` accepts, not the server's own name for itself.
                Ok(list) => sheds.extend(list.into_iter().map(|shed| Shed {
                    server: client.server().to_string(),
                    ..shed
                })),
                Err(e) => failures.push(ServerFailure {
                    server: client.server().to_string(),
                    shed: None,
                    message: one_line(&e.to_string()),
                }),
            }
        }
        if !failures.is_empty() && failures.len() == clients.len() {
            let messages: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
            bail!("{}", messages.join("; "));
        }
        sheds.sort_by(|a, b| (&a.server, &a.name).cmp(&(&b.server, &b.name)));
        if json {
            let out = serde_json::json!({"sheds": sheds, "errors": failures});
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            for failure in &failures {
                warn(&failure.message);
            }
            if sheds.is_empty() {
                println!("No sheds. Create one with `shed create NAME`.");
            } else {
                let now = Utc::now();
                let rows = sheds
                    .iter()
                    .map(|s| {
                        vec![
                            s.server.clone(),
                            s.name.clone(),
                            s.status.to_string(),
                            s.image.clone(),
                            relative_time(s.created_at, now),
                            s.repo.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["SERVER", "NAME", "STATUS", "IMAGE", "CREATED", "REPO"],
                        rows
                    )
                );
            }
        }
        Ok(if failures.is_empty() {
            Outcome::Success
        } else {
            Outcome::Partial
        })
    }

    async fn start_stop(&self, name: &str, start: bool) -> anyhow::Result<Outcome> {
        let (client, _) = self.find_shed(name).await?;
        let shed = if start {
            client.start(name).await?
        } else {
            client.stop(name).await?
        };
        let verb = if start { "Started" } else { "Stopped" };
        println!("{verb} shed {} on {}", shed.name, client.server());
        Ok(Outcome::Success)
    }

    async fn delete(&self, name: &str, keep_volume: bool, force: bool) -> anyhow::Result<Outcome> {
        let (client, _) = self.find_shed(name).await?;
        if !force && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            let what = if keep_volume {
                "(its workspace volume is kept)"
            } else {
                "and its workspace volume"
            };
            if !confirm(&format!(
                "Delete shed {name} on {} {what}? [y/N] ",
                client.server()
            ))? {
                bail!("not deleted");
            }
        }
        client.delete(name, keep_volume).await?;
        let kept = if keep_volume {
            " (workspace volume kept)"
        } else {
            ""
        };
        println!("Deleted shed {name} on {}{kept}", client.server());
        Ok(Outcome::Success)
    }

    fn known_hosts(&self) -> PathBuf {
        ssh::known_hosts_path(&self.config_path)
    }

    fn entry(&self, client: &ApiClient) -> anyhow::Result<&ServerEntry> {
        self.config
            .servers
            .get(client.server())
            .ok_or_else(|| anyhow!("unknown server {:?}", client.server()))
    }

    /// Replaces this process with `ssh` to shed `name`.
    pub(crate) async fn exec_ssh(
        &self,
        name: &str,
        tty: Tty,
        remote: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        let (client, _) = self.find_shed(name).await?;
        let entry = self.entry(&client)?;
        let mut cmd = ssh::ssh_command(entry, &self.known_hosts(), name, tty, remote);
        tracing::debug!(?cmd, "running ssh");
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        Err(anyhow!("running ssh: {err}; is openssh-client installed?"))
    }

    async fn console(&self, name: &str) -> anyhow::Result<Outcome> {
        self.exec_ssh(name, Tty::Force, None).await
    }

    async fn exec(&self, name: &str, command: &[String]) -> anyhow::Result<Outcome> {
        // The gateway runs the string through `sh -c`, as sshd does, so each
        // argument is quoted to arrive exactly as given.
        let remote = shell_words::join(command);
        self.exec_ssh(name, Tty::Disable, Some(&remote)).await
    }

    async fn attach(
        &self,
        name: &str,
        session: &str,
        new: bool,
        cwd: &str,
    ) -> anyhow::Result<Outcome> {
        validate_session_name(session)
            .map_err(|e| anyhow!("invalid session name {session:?}: {e}"))?;
        if cwd.is_empty() {
            bail!("--cwd must not be empty");
        }
        let attach_flag = if new { "" } else { " -A" };
        let remote = format!(
            "tmux new-session{attach_flag} -s {} -c {}",
            shell_words::quote(session),
            shell_words::quote(cwd)
        );
        self.exec_ssh(name, Tty::Force, Some(&remote)).await
    }

    async fn ssh_config(
        &self,
        name: Option<&str>,
        install: bool,
        uninstall: bool,
    ) -> anyhow::Result<Outcome> {
        let home = dirs::home_dir().ok_or_else(|| anyhow!("cannot find the home directory"))?;
        let path = home.join(".ssh").join("config");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut config = SshConfig::parse(&text);
        let mut outcome = Outcome::Success;
        if uninstall {
            match name {
                Some(name) => {
                    check_shed_name(name)?;
                    let alias = format!("shed-{name}");
                    if !config.remove(&alias) {
                        bail!("{} has no entry for {alias}", path.display());
                    }
                }
                None => config.entries.clear(),
            }
        } else {
            let mut wanted: Vec<(String, String)> = Vec::new();
            match name {
                Some(name) => {
                    let (client, _) = self.find_shed(name).await?;
                    wanted.push((name.to_string(), client.server().to_string()));
                }
                None => {
                    let clients = self.all_clients();
                    if clients.is_empty() {
                        bail!("no servers configured; add one with `shed server add HOST`");
                    }
                    let answers = join_all(clients.iter().map(|c| c.list())).await;
                    for (client, answer) in clients.iter().zip(answers) {
                        match answer {
                            Ok(sheds) => wanted.extend(
                                sheds
                                    .into_iter()
                                    .map(|s| (s.name, client.server().to_string())),
                            ),
                            Err(e) => {
                                warn(&e.to_string());
                                outcome = Outcome::Partial;
                            }
                        }
                    }
                    // Regenerate: entries of sheds that are gone disappear.
                    config.entries.clear();
                }
            }
            let mut seen = std::collections::HashMap::new();
            for (shed, _) in &wanted {
                *seen.entry(shed.clone()).or_insert(0) += 1;
            }
            for (shed, server) in &wanted {
                // A name on several servers gets one alias per server.
                let alias = if seen[shed] > 1 {
                    format!("shed-{shed}.{server}")
                } else {
                    format!("shed-{shed}")
                };
                let entry = &self.config.servers[server];
                config.upsert(HostEntry::new(alias, shed, entry, &self.known_hosts()));
            }
        }
        if !install && !uninstall {
            print!("{}", config.block());
            return Ok(outcome);
        }
        // ssh refuses a config that others can write.
        crate::files::write_private(&path, config.render().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        let aliases: Vec<&str> = config.entries.iter().map(|e| e.alias.as_str()).collect();
        if aliases.is_empty() {
            println!("Removed shed's entries from {}", path.display());
        } else {
            println!("{} now has: {}", path.display(), aliases.join(", "));
        }
        Ok(outcome)
    }

    async fn server_command(mut self, cmd: ServerCommand) -> anyhow::Result<Outcome> {
        match cmd {
            ServerCommand::Add {
                host,
                name,
                port,
                token,
                identity,
            } => {
                if host.is_empty() || host.contains("://") || host.contains('/') {
                    bail!(
                        "HOST must be a host name or IP address, like 127.0.0.1 or box.example.com"
                    );
                }
                let entry = ServerEntry {
                    host,
                    http_port: port,
                    ssh_port: 2222,
                    token,
                    identity_file: identity,
                };
                let probe = ApiClient::new(name.as_deref().unwrap_or("new server"), &entry);
                let info = probe.info().await.map_err(|e| match e.code() {
                    Some(ErrorCode::Unauthorized) => {
                        anyhow!("{} requires an API token; pass --token", entry.base_url())
                    }
                    _ => anyhow!(e),
                })?;
                let name = name.unwrap_or(info.name);
                check_server_name(&name)?;
                if self.config.servers.contains_key(&name) {
                    bail!("a server named {name:?} is already configured; remove it first or pick another --name");
                }
                let entry = ServerEntry {
                    ssh_port: info.ssh_port,
                    ..entry
                };
                let host_key = probe.ssh_host_key().await?;
                ssh::write_known_host(
                    &self.known_hosts(),
                    &entry.host,
                    entry.ssh_port,
                    &host_key.public_key,
                )
                .with_context(|| format!("writing {}", self.known_hosts().display()))?;
                let url = entry.base_url();
                self.config.servers.insert(name.clone(), entry);
                let is_default = self.config.default_server.is_none();
                if is_default {
                    self.config.default_server = Some(name.clone());
                }
                self.save()?;
                let default_note = if is_default {
                    "; it is the default"
                } else {
                    ""
                };
                println!(
                    "Added server {name} ({url}, ssh port {}, shed-server {}){default_note}",
                    info.ssh_port, info.version
                );
            }
            ServerCommand::List => {
                if self.config.servers.is_empty() {
                    println!("No servers configured. Add one with `shed server add HOST`.");
                    return Ok(Outcome::Success);
                }
                let rows = self
                    .config
                    .servers
                    .iter()
                    .map(|(name, e)| {
                        let default = self.config.default_server.as_deref() == Some(name.as_str());
                        vec![
                            name.clone(),
                            e.host.clone(),
                            e.http_port.to_string(),
                            e.ssh_port.to_string(),
                            if default { "*".into() } else { String::new() },
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(&["NAME", "HOST", "HTTP", "SSH", "DEFAULT"], rows)
                );
            }
            ServerCommand::Remove { name } => {
                self.client(&name)?;
                self.config.servers.remove(&name);
                if self.config.default_server.as_deref() == Some(name.as_str()) {
                    self.config.default_server = self.config.servers.keys().next().cloned();
                }
                self.save()?;
                match &self.config.default_server {
                    Some(default) => println!("Removed server {name}; the default is {default}"),
                    None => println!("Removed server {name}"),
                }
            }
            ServerCommand::SetDefault { name } => {
                self.client(&name)?;
                self.config.default_server = Some(name.clone());
                self.save()?;
                println!("Default server is now {name}");
            }
        }
        Ok(Outcome::Success)
    }

    fn save(&self) -> anyhow::Result<()> {
        self.config
            .save(&self.config_path)
            .with_context(|| format!("saving {}", self.config_path.display()))
    }
}

pub(crate) fn check_shed_name(name: &str) -> anyhow::Result<()> {
    validate_shed_name(name).map_err(|e| anyhow!("invalid shed name {name:?}: {e}"))
}

fn check_server_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        bail!("invalid server name {name:?}: use letters, digits, '-', '_' and '.'; pass --name")
    }
}

pub(crate) fn warn(message: &str) {
    eprintln!("warning: {}", one_line(message));
}

fn confirm(prompt: &str) -> anyhow::Result<bool> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// A spinner on stderr while a slow call runs; silent when stderr is not a terminal.
struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    fn start(message: String) -> Spinner {
        if !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(bar))
    }

    fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}
