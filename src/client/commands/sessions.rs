//! `shed sessions ...` and `shed exec --session`.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail};
use chrono::Utc;

use super::{
    all_failed, ask_all, check_session_name, check_shed_name, outcome, session_hint, Ctx, Outcome,
    ServerFailure,
};
use crate::api::snapshot::RestorePolicy;
use crate::api::{CreateSessionRequest, ErrorCode, SendInputRequest, SessionInfo, ShedStatus};
use crate::client::api_client::{ApiClient, ClientError};
use crate::client::cli::SessionsCommand;
use crate::client::output::{clean, one_line, relative_time, table, warn};
use crate::client::ssh::Tty;

/// How long `shed sessions --all` and `shed inbox` wait for any one server.
const SERVER_TIMEOUT: Duration = Duration::from_secs(15);
/// How often `peek --follow` polls.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(1000);
/// Lines `peek --follow` fetches at each poll (at least): enough overlap
/// with the last fetch that a burst of output between polls is not lost.
const FOLLOW_WINDOW: usize = 200;

impl Ctx {
    /// `shed sessions [SHED] [--all] [--json]`.
    pub(super) async fn list_sessions(
        &self,
        shed: Option<&str>,
        all: bool,
        json: bool,
    ) -> anyhow::Result<Outcome> {
        let (mut sessions, failures) = if let Some(shed) = shed {
            if all {
                bail!("give a SHED or --all, not both");
            }
            // A look never starts anything: a stopped shed has no sessions
            // running, and saying how to start it is the useful answer.
            let (client, found) = self.find_shed(shed).await?;
            if found.status == ShedStatus::Stopped {
                let start = self.start_command(shed);
                if json {
                    eprintln!("shed {shed} is stopped; start it with `{start}`");
                    let out = serde_json::json!({"sessions": [], "errors": []});
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    println!("No sessions: shed {shed} is stopped; start it with `{start}`");
                }
                return Ok(Outcome::Success);
            }
            let sessions = with_server(client.list_sessions(shed).await?, client.server());
            (sessions, Vec::new())
        } else {
            let clients = if all {
                self.all_clients()?
            } else {
                vec![self.selected()?]
            };
            sessions_everywhere(&clients).await?
        };
        sessions.sort_by(|a, b| (&a.server, &a.shed, &a.name).cmp(&(&b.server, &b.shed, &b.name)));
        if json {
            let out = serde_json::json!({"sessions": sessions, "errors": failures});
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            warn_failures(&failures);
            if sessions.is_empty() {
                println!("No sessions. Start one with `shed sessions new SHED NAME` or `shed attach SHED`.");
            } else {
                print_sessions(&sessions, false);
            }
        }
        Ok(outcome(&failures))
    }

    /// `shed sessions kill|new|peek|send`.
    pub(super) async fn session_action(&self, action: SessionsCommand) -> anyhow::Result<Outcome> {
        match action {
            SessionsCommand::Kill { shed, session } => {
                check_session_name(&session)?;
                let (client, _) = self.started_shed(&shed).await?;
                client
                    .kill_session(&shed, &session)
                    .await
                    .or_hint(&client, &shed, &session)
                    .await?;
                println!(
                    "Killed session {session} in shed {shed} on {}",
                    client.server()
                );
            }
            SessionsCommand::New {
                shed,
                session,
                cwd,
                restore,
                command,
                wait_for,
            } => {
                check_session_name(&session)?;
                let (client, _) = self.started_shed(&shed).await?;
                let request = CreateSessionRequest {
                    name: session.clone(),
                    command: (!command.is_empty()).then(|| shell_words::join(&command)),
                    cwd,
                    env: None,
                    restore: restore.as_deref().and_then(RestorePolicy::parse),
                };
                let created = client.create_session(&shed, &request).await?;
                if created.exited {
                    return Err(exited_at_once(&client, &shed, &created).await);
                }
                println!(
                    "Started session {} in shed {shed} on {} ({}). Attach with: shed attach {shed} -S {}",
                    created.name,
                    client.server(),
                    if created.current_command.is_empty() { "finished".into() } else { clean(&created.current_command) },
                    created.name
                );
                if let Some(state) = wait_for {
                    return super::wait::wait_for(&client, &shed, &created.name, state, None).await;
                }
            }
            SessionsCommand::Explain {
                shed,
                session,
                json,
            } => {
                check_session_name(&session)?;
                let (client, _) = self.started_shed(&shed).await?;
                let explanation = match client.session_agent(&shed, &session).await {
                    Err(e) if e.code() == Some(ErrorCode::NotFound) => bail!(
                        "server {:?} cannot explain agent states (its shed-server predates them): {e}",
                        client.server()
                    ),
                    other => other.or_hint(&client, &shed, &session).await?,
                };
                super::explain::print(&client, &explanation, json)?;
            }
            SessionsCommand::Restore { shed, dry_run } => {
                let (client, _) = self.started_shed(&shed).await?;
                let report = client.restore_snapshot(&shed, dry_run).await?;
                for w in &report.warnings {
                    warn(&clean(w));
                }
                if report.actions.is_empty() {
                    println!(
                        "Nothing saved to restore in shed {shed} on {}",
                        client.server()
                    );
                }
                let verb = if dry_run { "Would restore" } else { "Restored" };
                for a in &report.actions {
                    match &a.skipped {
                        Some(why) => println!("Skipped {}: {}", a.session, clean(why)),
                        None => println!(
                            "{verb} {}: {} window(s), {} pane(s), {} -> {}",
                            a.session,
                            a.windows,
                            a.panes,
                            a.policy,
                            one_line(&clean(&a.runs))
                        ),
                    }
                }
            }
            SessionsCommand::Peek {
                shed,
                session,
                lines,
                follow,
            } => {
                check_session_name(&session)?;
                if lines == 0 {
                    bail!("-n must be at least 1");
                }
                let (client, _) = self.started_shed(&shed).await?;
                if !follow {
                    let out = client
                        .session_output(&shed, &session, lines)
                        .await
                        .or_hint(&client, &shed, &session)
                        .await?;
                    let shown: Vec<String> = out.output.lines().map(String::from).collect();
                    print_lines(&shown);
                    return Ok(Outcome::Success);
                }
                // Every fetch asks for the same window, so each one overlaps
                // the last and only new lines print; only the first is cut
                // down to what -n asked for.
                let window = lines.max(FOLLOW_WINDOW);
                let mut shown: Option<Vec<String>> = None;
                loop {
                    let now = match client.session_output(&shed, &session, window).await {
                        Ok(now) => now,
                        // Gone after it was seen: the end of the story, not an error.
                        Err(e) if shown.is_some() && ended(&e).is_some() => {
                            let why = ended(&e).unwrap_or("ended");
                            println!("Session {session} in shed {shed} {why}.");
                            return Ok(Outcome::Success);
                        }
                        Err(e) => return Err(with_hint(e, &client, &shed, &session).await),
                    };
                    let current: Vec<String> = now.output.lines().map(String::from).collect();
                    match &shown {
                        None => print_lines(&current[current.len().saturating_sub(lines)..]),
                        Some(shown) => print_lines(new_lines(shown, &current)),
                    }
                    shown = Some(current);
                    tokio::time::sleep(FOLLOW_INTERVAL).await;
                }
            }
            SessionsCommand::Send {
                shed,
                session,
                text,
                enter,
            } => {
                check_session_name(&session)?;
                let (client, _) = self.started_shed(&shed).await?;
                client
                    .send_input(&shed, &session, &SendInputRequest { text, enter })
                    .await
                    .or_hint(&client, &shed, &session)
                    .await?;
            }
        }
        Ok(Outcome::Success)
    }

    /// `shed exec SHED --session S -- CMD...`: see [`session_exec_script`].
    pub(super) async fn exec_in_session(
        &self,
        shed: &str,
        session: &str,
        command: &[String],
    ) -> anyhow::Result<Outcome> {
        check_shed_name(shed)?;
        check_session_name(session)?;
        let (client, _) = self.started_shed(shed).await?;
        // A clear error before connecting; the script re-checks for races.
        client.get_session(shed, session).await?;
        let script = session_exec_script(session, &shell_words::join(command));
        self.exec_ssh(shed, Tty::Disable, Some(&script)).await
    }
}

/// Adds a "did you mean" to a session-not-found error.
trait OrHint<T> {
    /// `self`, with the closest existing session named when the session
    /// was not found.
    async fn or_hint(self, client: &ApiClient, shed: &str, session: &str) -> anyhow::Result<T>;
}

impl<T> OrHint<T> for Result<T, ClientError> {
    async fn or_hint(self, client: &ApiClient, shed: &str, session: &str) -> anyhow::Result<T> {
        match self {
            Ok(value) => Ok(value),
            Err(e) => Err(with_hint(e, client, shed, session).await),
        }
    }
}

/// `error`, with the closest existing session named when it says the
/// session was not found.
async fn with_hint(
    error: ClientError,
    client: &ApiClient,
    shed: &str,
    session: &str,
) -> anyhow::Error {
    if error.code() == Some(ErrorCode::SessionNotFound) {
        let hint = session_hint(client, shed, session).await;
        return anyhow!("{error}{hint}");
    }
    error.into()
}

/// Every session on each of `clients` (`GET /api/sessions`), named by the
/// server it came from, and what failed: whole servers, and sheds a server
/// could not list. An error when every server failed.
pub(super) async fn sessions_everywhere(
    clients: &[ApiClient],
) -> anyhow::Result<(Vec<SessionInfo>, Vec<ServerFailure>)> {
    let answers = ask_all(clients, |client| async move {
        match tokio::time::timeout(SERVER_TIMEOUT, client.all_sessions()).await {
            Ok(answer) => answer.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow!(
                "server {:?} ({}) did not answer within {}s",
                client.server(),
                client.base_url(),
                SERVER_TIMEOUT.as_secs()
            )),
        }
    })
    .await;
    let mut sessions = Vec::new();
    let mut failures = Vec::new();
    for (client, all) in answers.ok {
        let server = client.server().to_string();
        sessions.extend(with_server(all.sessions, &server));
        failures.extend(all.warnings.into_iter().map(|w| ServerFailure {
            server: server.clone(),
            shed: Some(w.shed),
            message: one_line(&w.message),
        }));
    }
    failures.extend(
        answers
            .failed
            .iter()
            .map(|(client, e)| ServerFailure::server(client, e)),
    );
    // In the order of the config, as the servers were asked.
    failures.sort_by(|a, b| a.server.cmp(&b.server));
    all_failed(&failures, clients.len())?;
    Ok((sessions, failures))
}

/// Warns about each failure: a whole server, or one of its sheds.
pub(super) fn warn_failures(failures: &[ServerFailure]) {
    for f in failures {
        match &f.shed {
            Some(shed) => warn(&format!(
                "server {:?}, shed {shed:?}: {}",
                f.server, f.message
            )),
            None => warn(&f.message),
        }
    }
}

pub(super) fn with_server(sessions: Vec<SessionInfo>, server: &str) -> Vec<SessionInfo> {
    // Show the name `-s` accepts, not the server's own name for itself.
    sessions
        .into_iter()
        .map(|s| SessionInfo {
            server: server.to_string(),
            ..s
        })
        .collect()
}

/// Prints the session table; with `agent`, an AGENT column after SESSION
/// shows each agent's state and how long it has held it.
pub(super) fn print_sessions(sessions: &[SessionInfo], agent: bool) {
    let now = Utc::now();
    let rows = sessions
        .iter()
        .map(|s| {
            let mut row = vec![s.server.clone(), s.shed.clone(), s.name.clone()];
            if agent {
                row.push(format!(
                    "{} {}",
                    s.agent.state,
                    relative_time(s.agent.since, now)
                ));
            }
            row.extend([
                match (s.exited, s.exit_status) {
                    (true, Some(code)) => format!("exited {code}"),
                    (true, None) => "exited".to_string(),
                    (false, _) => s.status.to_string(),
                },
                if s.current_command.is_empty() {
                    "-".into()
                } else {
                    s.current_command.clone()
                },
                s.attached.to_string(),
                s.windows.to_string(),
                relative_time(s.created_at, now),
                relative_time(s.last_activity, now),
            ]);
            row
        })
        .collect();
    let mut headers = vec!["SERVER", "SHED", "SESSION"];
    if agent {
        headers.push("AGENT");
    }
    headers.extend(["STATUS", "CMD", "ATTACHED", "WINDOWS", "CREATED", "ACTIVE"]);
    println!("{}", table(&headers, rows));
}

/// Lines of a pane shown when its command exited at once.
const EXIT_TAIL_LINES: usize = 10;

/// The error for a session whose command exited right after it started
/// (not found, say): the pane's last lines on stderr, which usually say why,
/// then what happened and what to do.
async fn exited_at_once(client: &ApiClient, shed: &str, created: &SessionInfo) -> anyhow::Error {
    let session = &created.name;
    // tmux writes "Pane is dead" on the screen's last row, far below the
    // command's own last words: fetch a screenful and drop the blank rows.
    if let Ok(out) = client.session_output(shed, session, FOLLOW_WINDOW).await {
        let said: Vec<&str> = out
            .output
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        for line in &said[said.len().saturating_sub(EXIT_TAIL_LINES)..] {
            eprintln!("  {}", clean(line));
        }
    }
    let how = match created.exit_status {
        Some(code) => format!("exited with status {code}"),
        None => "ended".to_string(),
    };
    anyhow!(
        "the command of session {session} in shed {shed} {how} right after it started; its pane is kept for `shed sessions peek {shed} {session}`, remove it with `shed sessions kill {shed} {session}`"
    )
}

/// How a session that `peek --follow` was watching went away, when `error`
/// says it did, as the end of "Session S in shed X ...".
fn ended(error: &ClientError) -> Option<&'static str> {
    match error.code()? {
        ErrorCode::SessionNotFound => Some("ended"),
        ErrorCode::ShedNotRunning => Some("ended: the shed was stopped"),
        ErrorCode::ShedNotFound => Some("ended: the shed was deleted"),
        _ => None,
    }
}

fn print_lines(lines: &[String]) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        // A pane's text comes from the server: show it, never obey it.
        let _ = writeln!(out, "{}", clean(line));
    }
    let _ = out.flush();
}

/// The lines of `current` not yet shown: those after the longest tail of
/// `shown` that `current` starts with. A redrawn screen prints whole.
fn new_lines<'a>(shown: &[String], current: &'a [String]) -> &'a [String] {
    for overlap in (1..=shown.len().min(current.len())).rev() {
        if shown[shown.len() - overlap..] == current[..overlap] {
            return &current[overlap..];
        }
    }
    if shown == current {
        &[]
    } else {
        current
    }
}

/// The shell script `shed exec --session` runs through the gateway.
///
/// The command runs in a new window of the session, so anyone attached sees
/// it, with its output (stdout and stderr together, as on a terminal) also
/// teed to a file. The script streams that file back with `tail -f` and
/// exits with the command's status. The status file is renamed into place
/// only after `tee` has finished, so once it exists the output file is
/// complete, and `tail --pid` makes a last read before it stops. If the
/// caller goes away (Ctrl-C closes the connection and the gateway hangs up),
/// the window is killed too. Needs tmux, `mktemp`, `mv`, `tee`, `rm`,
/// `sleep` and GNU coreutils' `tail` (for `--pid`) in the image; a missing
/// one is named on stderr, with exit status 127, before anything runs.
pub fn session_exec_script(session: &str, command: &str) -> String {
    let session = shell_words::quote(session);
    let command = shell_words::quote(command);
    format!(
        r#"s={session}; c={command}
for t in tmux mktemp mv tee rm sleep tail; do
  command -v "$t" >/dev/null 2>&1 || {{ echo "shed: exec --session needs '$t' in the shed, and it is not installed" >&2; exit 127; }}
done
tail --pid=1 -n 0 /dev/null >/dev/null 2>&1 || {{ echo "shed: exec --session needs GNU coreutils' tail (tail --pid) in the shed" >&2; exit 127; }}
tmux has-session -t "=$s" 2>/dev/null || {{ echo "shed: no session named $s" >&2; exit 1; }}
d=$(mktemp -d /tmp/shed-exec.XXXXXX) || exit 1
: > "$d/out"
w=$(tmux new-window -d -P -F '#{{window_id}}' -t "=$s:" -n shed-exec "( ( $c
); echo \$? > $d/rc ) 2>&1 | tee $d/out; mv $d/rc $d/status") || {{ rm -rf "$d"; exit 1; }}
trap 'tmux kill-window -t "$w" 2>/dev/null; rm -rf "$d"; exit 129' HUP INT TERM
(
  i=0
  while [ ! -e "$d/status" ]; do
    sleep 0.05; i=$((i + 1))
    if [ $((i % 20)) -eq 0 ] && ! tmux list-panes -t "$w" >/dev/null 2>&1; then
      [ -e "$d/status" ] || echo gone > "$d/status"
    fi
  done
) & p=$!
tail -n +1 -s 0.05 -f --pid=$p "$d/out"
wait $p
rc=$(cat "$d/status")
rm -rf "$d"
if [ "$rc" = gone ]; then
  echo "shed: the window closed before the command finished" >&2
  exit 255
fi
exit "$rc""#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn follow_prints_only_new_lines() {
        assert_eq!(
            new_lines(&v(&["a", "b"]), &v(&["a", "b", "c"])),
            v(&["c"]).as_slice()
        );
        assert_eq!(
            new_lines(&v(&["a", "b", "c"]), &v(&["b", "c", "d", "e"])),
            v(&["d", "e"]).as_slice()
        );
        assert!(new_lines(&v(&["a", "b"]), &v(&["a", "b"])).is_empty());
        assert_eq!(new_lines(&v(&["x"]), &v(&["y"])), v(&["y"]).as_slice());
    }

    #[test]
    fn exec_script_runs_in_a_real_tmux() {
        // The script's logic against the host's own tmux and sh: output,
        // exit status and quoting come back exactly.
        let socket = format!("shed-unit-{}", std::process::id());
        let tmux = |args: &[&str]| {
            std::process::Command::new("tmux")
                .args(["-L", &socket, "-f", "/dev/null"])
                .args(args)
                .output()
        };
        let Ok(started) = tmux(&["new-session", "-d", "-s", "work"]) else {
            panic!("tmux is needed for this test");
        };
        assert!(started.status.success());
        let command = shell_words::join([
            "sh",
            "-c",
            "printf '%s\\n' \"$1\" 'c;d'; echo err >&2; exit 7",
            "sh",
            "a b",
        ]);
        let script = session_exec_script("work", &command);
        let tmux_path = format!("/tmp/shed-unit-bin-{}", std::process::id());
        std::fs::create_dir_all(&tmux_path).unwrap();
        let real = std::process::Command::new("sh")
            .args(["-c", "command -v tmux"])
            .output()
            .unwrap();
        let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
        let wrapper = format!("#!/bin/sh\nexec {real} -L {socket} -f /dev/null \"$@\"\n");
        std::fs::write(format!("{tmux_path}/tmux"), wrapper).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            format!("{tmux_path}/tmux"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let path = format!("{tmux_path}:{}", std::env::var("PATH").unwrap_or_default());
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("PATH", &path)
            .output()
            .unwrap();
        let builtin_exit = std::process::Command::new("sh")
            .args(["-c", &session_exec_script("work", "echo before; exit 3")])
            .env("PATH", &path)
            .output()
            .unwrap();
        let missing = std::process::Command::new("sh")
            .args(["-c", &session_exec_script("nope", "true")])
            .env("PATH", &path)
            .output()
            .unwrap();
        let _ = tmux(&["kill-server"]);
        let _ = std::fs::remove_dir_all(&tmux_path);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b\nc;d\nerr\n");
        assert_eq!(out.status.code(), Some(7));
        assert_eq!(missing.status.code(), Some(1));
        assert_eq!(String::from_utf8_lossy(&builtin_exit.stdout), "before\n");
        assert_eq!(builtin_exit.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no session named nope"));
    }
}
