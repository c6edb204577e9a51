//! Desktop notifications for `shed watch --notify`: `notify-send` where it is
//! on PATH, `osascript` on macOS, otherwise the terminal's own notification
//! escapes (OSC 777 and OSC 9) and its bell.
//!
//! Every text comes from a server and goes through [`Notification::new`],
//! which cleans and bounds it; the programs get it as an argument, never
//! inside a script or a command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::client::output::clean;

/// Longest title shown.
const TITLE_CHARS: usize = 80;
/// Longest body shown.
const BODY_CHARS: usize = 240;
/// How long a notifier program may run before it is left behind.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(10);

/// One notification, already safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// A short title, e.g. `shed: demo/agent is waiting`.
    pub title: String,
    /// The detail.
    pub body: String,
}

impl Notification {
    /// A notification with `title` and `body` cleaned of control characters
    /// and escapes, and cut to a bound.
    pub fn new(title: &str, body: &str) -> Notification {
        Notification {
            title: cut(&clean(title), TITLE_CHARS),
            body: cut(&clean(body), BODY_CHARS),
        }
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Something that shows notifications; tests substitute their own.
pub trait Notifier: Send + Sync {
    /// Shows `notification`, without blocking the caller for long.
    fn notify(&self, notification: &Notification);
}

/// The notifier for this machine, chosen at run time.
pub fn desktop() -> Box<dyn Notifier> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(program) = find_program("notify-send", &path) {
        return Box::new(Program::NotifySend(program));
    }
    if cfg!(target_os = "macos") {
        if let Some(program) = find_program("osascript", &path) {
            return Box::new(Program::Osascript(program));
        }
    }
    Box::new(Terminal)
}

/// `name` in one of `path`'s directories, when it is there and executable.
fn find_program(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A notifier program.
enum Program {
    NotifySend(PathBuf),
    Osascript(PathBuf),
}

impl Program {
    fn command(&self, n: &Notification) -> tokio::process::Command {
        match self {
            Program::NotifySend(path) => {
                let mut c = command(path);
                // `--` so a title starting with '-' is not read as an option.
                c.args(["--app-name=shed", "--", &n.title, &n.body]);
                c
            }
            Program::Osascript(path) => {
                // The texts arrive as argv of the script, never inside it.
                let mut c = command(path);
                c.args([
                    "-e",
                    "on run argv",
                    "-e",
                    "display notification (item 2 of argv) with title (item 1 of argv)",
                    "-e",
                    "end run",
                    &n.title,
                    &n.body,
                ]);
                c
            }
        }
    }
}

fn command(path: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(path);
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    c
}

impl Notifier for Program {
    fn notify(&self, notification: &Notification) {
        let mut command = self.command(notification);
        // Reaped in the background; a hung notifier is killed, not waited on.
        if let Ok(mut child) = command.spawn() {
            tokio::spawn(async move {
                if tokio::time::timeout(PROGRAM_TIMEOUT, child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            });
        }
    }
}

/// The terminal's own notifications: OSC 777 (rxvt, foot, WezTerm, ...),
/// OSC 9 (iTerm2, Windows Terminal, kitty, ...) and the bell for the rest.
struct Terminal;

/// The escapes that ask the terminal for `n`. `;` separates OSC 777's
/// fields, so it cannot appear inside one.
pub fn terminal_escapes(n: &Notification) -> String {
    let title = n.title.replace(';', ",");
    let body = n.body.replace(';', ",");
    format!(
        "\x1b]777;notify;{title};{body}\x1b\\\x1b]9;{}: {}\x1b\\\x07",
        n.title, n.body
    )
}

impl Notifier for Terminal {
    fn notify(&self, notification: &Notification) {
        use std::io::IsTerminal;
        let escapes = terminal_escapes(notification);
        // Only to a terminal: in a pipe the escapes would be noise in the log.
        if std::io::stderr().is_terminal() {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(escapes.as_bytes());
            let _ = err.flush();
        } else if std::io::stdout().is_terminal() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(escapes.as_bytes());
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cleaned_and_bounded() {
        let n = Notification::new("a\x1b]0;x\x07b\nc", &"y".repeat(1000));
        assert_eq!(n.title, "ab c");
        assert_eq!(n.body.chars().count(), BODY_CHARS);
    }

    #[test]
    fn terminal_escapes_keep_their_fields() {
        let n = Notification::new("t;1", "b;2");
        let escapes = terminal_escapes(&n);
        assert!(
            escapes.starts_with("\x1b]777;notify;t,1;b,2\x1b\\"),
            "{escapes:?}"
        );
        assert!(escapes.contains("\x1b]9;t;1: b;2\x1b\\"), "{escapes:?}");
        assert!(escapes.ends_with('\x07'));
        // The only escapes are the three it writes itself.
        assert_eq!(escapes.matches('\x1b').count(), 4);
    }

    #[test]
    fn programs_are_found_on_path_only_when_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("notify-send");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(find_program("notify-send", &path), None);
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_program("notify-send", &path), Some(program));
    }
}
