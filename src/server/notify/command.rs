//! Command targets: a program run without a shell for each notification,
//! the payload JSON on its stdin and the main fields in `SHED_*` variables.
//! It gets the target's timeout, after which its whole process group is
//! killed; its stdout is discarded and at most [`MAX_STDERR`] bytes of its
//! stderr are kept for the log.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::payload::Payload;
use super::Failure;

/// Most bytes of a command's stderr kept for the log; the rest is read and dropped.
pub const MAX_STDERR: usize = 4096;

/// A command target.
pub struct CommandTarget {
    /// The argv; `argv[0]` is looked up in `PATH`.
    pub argv: Vec<String>,
    /// How long one run may take.
    pub timeout: Duration,
}

/// The environment a command gets besides the server's own.
pub fn env(payload: &Payload) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("SHED_NOTIFY_ID", payload.id.clone()),
        ("SHED_EVENT_ID", payload.event_id.to_string()),
        ("SHED_SERVER", payload.server.clone()),
        ("SHED_SHED", payload.shed.clone()),
        ("SHED_SESSION", payload.session.clone()),
        ("SHED_AGENT_KIND", payload.agent.kind.to_string()),
        ("SHED_AGENT_STATE", payload.agent.state.to_string()),
        ("SHED_TITLE", payload.title.clone()),
    ];
    if let Some(code) = payload.agent.exit_code {
        vars.push(("SHED_EXIT_CODE", code.to_string()));
    }
    vars
}

impl CommandTarget {
    /// One run; a non-zero exit, a failure to start or a timeout is a failure
    /// worth a retry.
    pub async fn deliver(&self, payload: &Payload) -> Result<(), Failure> {
        let failure = |message: String| Failure {
            retry: true,
            message,
        };
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| failure("empty command".into()))?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .envs(env(payload))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group, so a timeout kills what it started too.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failure(format!("cannot run {program:?}: {e}")))?;
        let pid = child.id();
        let mut stdin = child.stdin.take();
        let mut stderr = child.stderr.take();
        let body = payload.to_json();
        let run = async {
            if let Some(stdin) = stdin.as_mut() {
                // A command that does not read its stdin is fine.
                let _ = stdin.write_all(&body).await;
            }
            drop(stdin.take());
            let mut kept = Vec::new();
            if let Some(stderr) = stderr.as_mut() {
                let _ = stderr.take(MAX_STDERR as u64).read_to_end(&mut kept).await;
                let _ = tokio::io::copy(stderr, &mut tokio::io::sink()).await;
            }
            (child.wait().await, kept)
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok((Ok(status), _)) if status.success() => Ok(()),
            Ok((Ok(status), stderr)) => Err(failure(format!(
                "{program:?} ended with {status}: {}",
                String::from_utf8_lossy(&stderr).trim()
            ))),
            Ok((Err(e), _)) => Err(failure(format!("waiting for {program:?}: {e}"))),
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                    // SAFETY: kill only sends a signal, to the group we made.
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                    }
                }
                Err(failure(format!(
                    "{program:?} took longer than {}s; killed",
                    self.timeout.as_secs()
                )))
            }
        }
    }
}
