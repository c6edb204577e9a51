//! The interactive-exec seam: what a terminal front end (the SSH gateway,
//! the browser terminal) needs from the container engine, with no
//! engine or transport types in it. [`crate::server::docker::DockerBackend`]
//! implements it for real; tests use an in-memory fake.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::Stream;
use tokio::io::AsyncWrite;

use crate::server::backend::BackendError;

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtySize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// What to run in a shed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// argv of the process.
    pub cmd: Vec<String>,
    /// Extra `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// A TTY of this size, or plain pipes with `None`.
    pub tty: Option<TtySize>,
    /// The user to run as; `None` for the server's configured container user.
    pub user: Option<String>,
}

/// One piece of a process's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChunk {
    /// Standard output, or the console with a TTY.
    Stdout(Vec<u8>),
    /// Standard error (never with a TTY).
    Stderr(Vec<u8>),
}

/// The output of a running process; it ends when the process closes it.
pub type OutputStream = Pin<Box<dyn Stream<Item = std::io::Result<OutputChunk>> + Send>>;

/// The stdin of a running process; shutting it down delivers EOF.
pub type InputSink = Pin<Box<dyn AsyncWrite + Send>>;

/// A started process with its streams attached.
pub struct ExecSession {
    /// The engine's id of the process, for resize, signals and the exit code.
    pub id: String,
    /// stdout and stderr.
    pub output: OutputStream,
    /// stdin.
    pub input: InputSink,
}

/// Interactive processes in sheds: start one, stream it, resize it, signal
/// it, and learn how it ended.
#[async_trait]
pub trait InteractiveExec: Send + Sync + 'static {
    /// Makes sure shed `shed` runs, starting it if stopped and waiting up to
    /// `wait` for it to come up. [`BackendError::ShedNotFound`] when there is
    /// no such shed.
    async fn ensure_running(&self, shed: &str, wait: Duration) -> Result<(), BackendError>;
    /// Starts `request` in shed `shed`, attached.
    async fn start(&self, shed: &str, request: ExecRequest) -> Result<ExecSession, BackendError>;
    /// Resizes the TTY of process `id`.
    async fn resize(&self, id: &str, size: TtySize) -> Result<(), BackendError>;
    /// Sends `signal` (a name such as `INT`) to process `id` in shed `shed`.
    async fn signal(&self, shed: &str, id: &str, signal: &str) -> Result<(), BackendError>;
    /// The exit code of process `id`; `None` while it still runs.
    async fn exit_code(&self, id: &str) -> Result<Option<i64>, BackendError>;

    /// The exit code of a process whose output has closed. An engine may
    /// mark it finished a moment after its streams close, so this polls
    /// briefly; `None` when it cannot be learnt.
    async fn wait_exit(&self, id: &str) -> Option<i64> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match self.exit_code(id).await {
                Ok(Some(code)) => return Some(code),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "reading an exec's exit code failed");
                    return None;
                }
            }
        }
    }
}

/// How long a hung-up process gets between SIGHUP and SIGKILL.
pub const HANGUP_GRACE: Duration = Duration::from_secs(2);

/// The client of process `exec_id` left: hang up on the process like a
/// closing terminal would, then kill it if it lingers. What runs inside
/// tmux is its own session and is not touched.
pub async fn hang_up(exec: &dyn InteractiveExec, shed: &str, exec_id: &str) {
    if let Err(e) = exec.signal(shed, exec_id, "HUP").await {
        tracing::warn!(shed, error = ?e.to_string(), "hanging up the exec failed");
        return;
    }
    let deadline = tokio::time::Instant::now() + HANGUP_GRACE;
    while tokio::time::Instant::now() < deadline {
        if !matches!(exec.exit_code(exec_id).await, Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Err(e) = exec.signal(shed, exec_id, "KILL").await {
        tracing::warn!(shed, error = ?e.to_string(), "killing the exec failed");
    }
}

#[cfg(test)]
pub mod fake;
