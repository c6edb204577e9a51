//! `shed sessions ...` and `shed exec --session`.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail};
use chrono::Utc;
use futures_util::future::join_all;

use crate::api::{validate_session_name, CreateSessionRequest, SendInputRequest, SessionInfo};
use crate::client::cli::SessionsCommand;
use crate::client::commands::{check_shed_name, warn, Ctx, Outcome, ServerFailure};
use crate::client::output::{one_line, relative_time, table};
use crate::client::ssh::Tty;

/// How long `shed sessions --all` waits for any one server.
const SERVER_TIMEOUT: Duration = Duration::from_secs(15);
/// How often `peek --follow` polls.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(1000);

fn check_session(name: &str) -> anyhow::Result<()> {
    validate_session_name(name).map_err(|e| anyhow!("invalid session name {name:?}: {e}"))
}

impl Ctx {
    /// `shed sessions [SHED] [--all] [--json]`.
    pub(crate) async fn list_sessions(
        &self,
        shed: Option<&str>,
        all: bool,
        json: bool,
    ) -> anyhow::Result<Outcome> {
        let mut sessions: Vec<SessionInfo> = Vec::new();
        let mut failures: Vec<ServerFailure> = Vec::new();
        let mut servers_asked = 1;
        if let Some(shed) = shed {
            if all {
                bail!("give a SHED or --all, not both");
            }
            let (client, _) = self.find_shed(shed).await?;
            sessions = with_server(client.list_sessions(shed).await?, client.server());
        } else {
            let clients = if all {
                self.all_clients()
            } else {
                vec![self.selected()?]
            };
            if clients.is_empty() {
                bail!("no servers configured; add one with `shed server add HOST`");
            }
            servers_asked = clients.len();
            let answers = join_all(
                clients
                    .iter()
                    .map(|c| tokio::time::timeout(SERVER_TIMEOUT, c.all_sessions())),
            )
            .await;
            for (client, answer) in clients.iter().zip(answers) {
                let server = client.server().to_string();
                match answer {
                    Ok(Ok(all)) => {
                        sessions.extend(with_server(all.sessions, &server));
                        failures.extend(all.warnings.into_iter().map(|w| ServerFailure {
                            server: server.clone(),
                            shed: Some(w.shed),
                            message: one_line(&w.message),
                        }));
                    }
                    Ok(Err(e)) => failures.push(ServerFailure {
                        server,
                        shed: None,
                        message: one_line(&e.to_string()),
                    }),
                    Err(_) => failures.push(ServerFailure {
                        message: format!(
                            "server {server:?} ({}) did not answer within {}s",
                            client.base_url(),
                            SERVER_TIMEOUT.as_secs()
                        ),
                        server,
                        shed: None,
                    }),
                }
            }
        }
        let whole_servers_failed = failures.iter().filter(|f| f.shed.is_none()).count();
        if whole_servers_failed == servers_asked && whole_servers_failed > 0 {
            let messages: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
            bail!("{}", messages.join("; "));
        }
        sessions.sort_by(|a, b| (&a.server, &a.shed, &a.name).cmp(&(&b.server, &b.shed, &b.name)));
        if json {
            let out = serde_json::json!({"sessions": sessions, "errors": failures});
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            for f in &failures {
                match &f.shed {
                    Some(shed) => warn(&format!(
                        "server {:?}, shed {shed:?}: {}",
                        f.server, f.message
                    )),
                    None => warn(&f.message),
                }
            }
            if sessions.is_empty() {
                println!("No sessions. Start one with `shed sessions new SHED NAME` or `shed attach SHED`.");
            } else {
                print_sessions(&sessions);
            }
        }
        Ok(if failures.is_empty() {
            Outcome::Success
        } else {
            Outcome::Partial
        })
    }

    /// `shed sessions kill|new|peek|send`.
    pub(crate) async fn session_action(&self, action: SessionsCommand) -> anyhow::Result<Outcome> {
        match action {
            SessionsCommand::Kill { shed, session } => {
                check_session(&session)?;
                let (client, _) = self.find_shed(&shed).await?;
                client.kill_session(&shed, &session).await?;
                println!(
                    "Killed session {session} in shed {shed} on {}",
                    client.server()
                );
            }
            SessionsCommand::New {
                shed,
                session,
                cwd,
                command,
            } => {
                check_session(&session)?;
                let (client, _) = self.find_shed(&shed).await?;
                let request = CreateSessionRequest {
                    name: session.clone(),
                    command: (!command.is_empty()).then(|| shell_words::join(&command)),
                    cwd,
                    env: None,
                };
                let created = client.create_session(&shed, &request).await?;
                println!(
                    "Started session {} in shed {shed} on {} ({}). Attach with: shed attach {shed} -S {}",
                    created.name,
                    client.server(),
                    if created.current_command.is_empty() { "finished" } else { &created.current_command },
                    created.name
                );
            }
            SessionsCommand::Peek {
                shed,
                session,
                lines,
                follow,
            } => {
                check_session(&session)?;
                if lines == 0 {
                    bail!("-n must be at least 1");
                }
                let (client, _) = self.find_shed(&shed).await?;
                let first = client.session_output(&shed, &session, lines).await?;
                let mut shown: Vec<String> = first.output.lines().map(String::from).collect();
                print_lines(&shown);
                if follow {
                    loop {
                        tokio::time::sleep(FOLLOW_INTERVAL).await;
                        let now = client
                            .session_output(&shed, &session, lines.max(200))
                            .await?;
                        let current: Vec<String> = now.output.lines().map(String::from).collect();
                        print_lines(new_lines(&shown, &current));
                        shown = current;
                    }
                }
            }
            SessionsCommand::Send {
                shed,
                session,
                text,
                enter,
            } => {
                check_session(&session)?;
                let (client, _) = self.find_shed(&shed).await?;
                client
                    .send_input(&shed, &session, &SendInputRequest { text, enter })
                    .await?;
            }
        }
        Ok(Outcome::Success)
    }

    /// `shed exec SHED --session S -- CMD...`: see [`session_exec_script`].
    pub(crate) async fn exec_in_session(
        &self,
        shed: &str,
        session: &str,
        command: &[String],
    ) -> anyhow::Result<Outcome> {
        check_shed_name(shed)?;
        check_session(session)?;
        let (client, _) = self.find_shed(shed).await?;
        // A clear error before connecting; the script re-checks for races.
        client.get_session(shed, session).await?;
        let script = session_exec_script(session, &shell_words::join(command));
        self.exec_ssh(shed, Tty::Disable, Some(&script)).await
    }
}

fn with_server(sessions: Vec<SessionInfo>, server: &str) -> Vec<SessionInfo> {
    // Show the name `-s` accepts, not the server's own name for itself.
    sessions
        .into_iter()
        .map(|s| SessionInfo {
            server: server.to_string(),
            ..s
        })
        .collect()
}

fn print_sessions(sessions: &[SessionInfo]) {
    let now = Utc::now();
    let rows = sessions
        .iter()
        .map(|s| {
            vec![
                s.server.clone(),
                s.shed.clone(),
                s.name.clone(),
                s.status.to_string(),
                if s.current_command.is_empty() {
                    "-".into()
                } else {
                    s.current_command.clone()
                },
                s.attached.to_string(),
                s.windows.to_string(),
                relative_time(s.created_at, now),
                relative_time(s.last_activity, now),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "SERVER", "SHED", "SESSION", "STATUS", "CMD", "ATTACHED", "WINDOWS", "CREATED",
                "ACTIVE"
            ],
            rows
        )
    );
}

fn print_lines(lines: &[String]) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
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
/// the window is killed too. Needs GNU coreutils' `tail` in the image.
pub fn session_exec_script(session: &str, command: &str) -> String {
    let session = shell_words::quote(session);
    let command = shell_words::quote(command);
    format!(
        r#"s={session}; c={command}
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
