//! A real `shed ui` process on a free port, for the servers of a test CLI config.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use super::Cli;

/// How long `shed ui` may take to print its URL.
const UI_START: Duration = Duration::from_secs(30);

/// A running `shed ui --port 0`; killed on drop.
pub struct UiProcess {
    child: Child,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    /// Its port.
    pub port: u16,
}

impl UiProcess {
    /// Starts `shed [GLOBAL...] ui --port 0` against `cli`'s config and waits for its URL.
    pub fn start(cli: &Cli, global: &[&str]) -> UiProcess {
        let mut args: Vec<&str> = global.to_vec();
        args.extend(["ui", "--port", "0"]);
        let mut child = cli
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning shed ui");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads every line, so the pipe never fills while the test runs.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("http://127.0.0.1:") {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
            }
        });
        let port: u16 = match rx.recv_timeout(UI_START) {
            Ok(port) => port.parse().expect("a port in the printed URL"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("shed ui printed no URL within {UI_START:?}");
            }
        };
        UiProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for UiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
