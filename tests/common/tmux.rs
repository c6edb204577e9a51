//! tmux on both sides: a private tmux server on the host to drive
//! interactive programs, and the tmux inside a shed.

use std::process::{Command, Output};
use std::time::Duration;

use super::{docker, unique_prefix, wait_until};

/// A private tmux server on the host, to drive interactive programs the way
/// a person at a terminal would.
pub struct HostTmux {
    socket: String,
}

impl HostTmux {
    /// A new, empty tmux server with its own socket.
    pub fn new() -> HostTmux {
        HostTmux {
            socket: format!("shedtest-{}", unique_prefix()),
        }
    }

    /// Runs `tmux -L SOCKET ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux (install tmux)")
    }

    /// Starts `command` in a new detached session of the given size.
    pub fn start(
        &self,
        session: &str,
        cols: u16,
        rows: u16,
        env: &[(&str, String)],
        command: &str,
    ) {
        let (cols, rows) = (cols.to_string(), rows.to_string());
        let mut args = vec!["new-session", "-d", "-s", session, "-x", &cols, "-y", &rows];
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for e in &env {
            args.push("-e");
            args.push(e);
        }
        args.push(command);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Keep the pane around after the program exits, to read what it printed.
        self.run(&["set-option", "-t", session, "remain-on-exit", "on"]);
    }

    /// The visible screen of a session's pane.
    pub fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", session]).stdout)
            .into_owned()
    }

    /// Types keys (tmux key names, like `Enter` or `C-c`).
    pub fn keys(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Waits until the screen satisfies `check`; panics with the screen if not.
    pub fn wait_for(&self, session: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        self.wait_for_up_to(Duration::from_secs(15), session, what, check)
    }

    /// [`Self::wait_for`] with a deadline of `limit`.
    pub fn wait_for_up_to(
        &self,
        limit: Duration,
        session: &str,
        what: &str,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let mut last = String::new();
        let ok = wait_until(limit, || {
            last = self.screen(session);
            check(&last)
        });
        assert!(ok, "timed out waiting for {what}; screen:\n{last}");
        last
    }

    /// Whether the session's pane program has exited.
    pub fn pane_dead(&self, session: &str) -> bool {
        let out = self.run(&["display-message", "-p", "-t", session, "#{pane_dead}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }
}

impl Drop for HostTmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Replaces tmux in a container with a program that sleeps `secs` seconds,
/// so every tmux call there hangs, as in a wedged shed.
pub fn wedge_tmux(container: &str, secs: u32) {
    let script = format!(
        "t=$(command -v tmux); mv $t $t.real; printf '#!/bin/sh\\nexec sleep {secs}\\n' > $t; chmod +x $t"
    );
    docker(&["exec", container, "sh", "-c", &script]);
}

/// Session names tmux itself reports inside `container`, sorted; none when
/// no tmux server runs there.
pub fn tmux_sessions(container: &str) -> Vec<String> {
    list_tmux_sessions(&[container])
}

/// Like [`tmux_sessions`], for `user`'s tmux server (tmux keeps one socket
/// per user).
pub fn tmux_sessions_of(user: &str, container: &str) -> Vec<String> {
    list_tmux_sessions(&["-u", user, container])
}

fn list_tmux_sessions(exec_args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .arg("exec")
        .args(exec_args)
        .args(["tmux", "list-sessions", "-F", "#{session_name}"])
        .output()
        .expect("docker exec");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        // The control channel's hidden session is shed's, not the user's.
        .filter(|name| *name != shed::server::control::CONTROL_SESSION)
        .map(String::from)
        .collect();
    names.sort();
    names
}
