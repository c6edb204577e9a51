//! The browser terminal: a WebSocket to a tty exec of `tmux attach-session`
//! in the shed, over the same [`InteractiveExec`] seam as the SSH gateway.
//!
//! Browser to server, binary frames are input bytes and text frames are
//! JSON control messages (`{"type":"resize","cols":C,"rows":R}`); server to
//! browser, binary frames are output bytes. When the attach process ends the
//! server closes with 1000 "ended"; on a failure, with 1011. Closing the
//! socket detaches: the tmux session goes on.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::auth::Access;
use super::extract::{ApiQuery, SessionName, ShedName};
use super::openapi::{CommonErrors, InShedErrors};
use super::AppState;
use crate::api::ErrorBody;
use crate::server::error::ApiError;
use crate::server::exec::{
    hang_up, ExecRequest, ExecSession, InteractiveExec, OutputChunk, TtySize,
};

/// Most browser terminals open at once on one server.
pub const MAX_TERMINALS: usize = 64;
/// Largest terminal side, in cells, a browser may ask for.
pub const MAX_TTY_SIDE: u32 = 1000;
/// Size of a terminal whose URL names none.
pub const DEFAULT_SIZE: TtySize = TtySize { cols: 80, rows: 24 };
/// Largest frame (and message) accepted from a browser.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// How often the server pings a browser; one that has not answered by the
/// next ping is gone.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Frames queued each way between the socket and the process; beyond
/// that the faster side waits (backpressure, no unbounded queue).
const QUEUE: usize = 16;
/// How long the last frames (the close) get to reach the browser.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The browser terminals open on this server, bounded.
#[derive(Clone)]
pub struct Terminals {
    slots: Arc<Semaphore>,
    max: usize,
    ping: Duration,
}

impl Terminals {
    /// At most `max` terminals at once, pinged every [`PING_INTERVAL`].
    pub fn new(max: usize) -> Terminals {
        Terminals {
            slots: Arc::new(Semaphore::new(max)),
            max,
            ping: PING_INTERVAL,
        }
    }

    /// The same, pinged every `ping` (tests need less than 30 s).
    pub fn with_ping(self, ping: Duration) -> Terminals {
        Terminals { ping, ..self }
    }

    /// How many terminals are open now.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

impl Default for Terminals {
    fn default() -> Self {
        Terminals::new(MAX_TERMINALS)
    }
}

/// Query of the terminal endpoint.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TerminalParams {
    /// Columns (1 to 1000, default 80).
    #[param(minimum = 1, maximum = 1000)]
    pub cols: Option<u32>,
    /// Rows (1 to 1000, default 24).
    #[param(minimum = 1, maximum = 1000)]
    pub rows: Option<u32>,
}

/// A terminal size within bounds, or `None`.
fn tty_size(cols: u32, rows: u32) -> Option<TtySize> {
    let side = 1..=MAX_TTY_SIDE;
    (side.contains(&cols) && side.contains(&rows)).then_some(TtySize {
        cols: cols as u16,
        rows: rows as u16,
    })
}

impl TerminalParams {
    fn size(&self) -> Result<TtySize, ApiError> {
        let cols = self.cols.unwrap_or(DEFAULT_SIZE.cols.into());
        let rows = self.rows.unwrap_or(DEFAULT_SIZE.rows.into());
        tty_size(cols, rows).ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "cols and rows must be between 1 and {MAX_TTY_SIDE}"
            ))
        })
    }
}

/// A control message from the browser, in a text frame.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Control {
    /// The browser's terminal changed size.
    Resize {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
}

#[utoipa::path(
    get,
    path = "/api/sheds/{name}/sessions/{session}/terminal",
    params(ShedName, SessionName, TerminalParams),
    responses(
        (status = 101, description = "Switching to the WebSocket: binary frames carry the terminal's bytes both ways, text frames carry `{\"type\":\"resize\",\"cols\":C,\"rows\":R}` from the browser"),
        (status = 400, description = "Invalid name or size", body = ErrorBody),
        (status = 404, description = "No such shed or session", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade (UPGRADE_REQUIRED)", body = ErrorBody),
        InShedErrors,
        CommonErrors,
    ),
    security(("bearer" = []))
)]
pub(super) async fn terminal(
    State(state): State<AppState>,
    access: Access,
    ApiQuery(params): ApiQuery<TerminalParams>,
    ShedName(shed): ShedName,
    SessionName(session): SessionName,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let size = params.size()?;
    // Everything that can fail is checked before the upgrade, so the
    // browser gets the usual JSON error rather than a closed socket.
    state.sessions.get(&shed, &session).await?;
    let upgrade = upgrade.map_err(|r| ApiError::UpgradeRequired(r.body_text()))?;
    let permit = state
        .terminals
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyTerminals(state.terminals.max))?;
    let attach = Attach {
        exec: state.exec.clone(),
        shed,
        session,
        size,
        read_only: access == Access::ReadOnly,
        ping: state.terminals.ping,
        _permit: permit,
    };
    Ok(upgrade
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "terminal upgrade failed"))
        .on_upgrade(move |socket| attach.run(socket)))
}

/// How a terminal ended.
enum Ending {
    /// The attach process closed its output: it exited (detached, or the
    /// session ended).
    Ended,
    /// Reading the process's output failed.
    Failed(String),
    /// The browser closed the socket or stopped answering.
    BrowserGone,
}

/// One browser terminal: what it attaches to, holding its slot.
struct Attach {
    exec: Arc<dyn InteractiveExec>,
    shed: String,
    session: String,
    size: TtySize,
    read_only: bool,
    ping: Duration,
    _permit: OwnedSemaphorePermit,
}

/// A close frame with `code` and `reason`.
fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

impl Attach {
    /// The exec this terminal runs: a tmux client on exactly this session,
    /// read-only (`-r`) for the read-only token. `-u`: the browser's terminal
    /// is UTF-8 whatever locale the image sets, and without it tmux would
    /// draw `_` for every non-ASCII character on an image without one.
    fn request(&self) -> ExecRequest {
        let mut cmd = vec!["tmux".to_string(), "-u".into(), "attach-session".into()];
        if self.read_only {
            cmd.push("-r".into());
        }
        cmd.extend(["-t".to_string(), format!("={}", self.session)]);
        ExecRequest {
            cmd,
            env: vec!["TERM=xterm-256color".into()],
            tty: Some(self.size),
            user: None,
        }
    }

    /// Runs the terminal until the process ends or the browser leaves.
    async fn run(self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let started = self.exec.start(&self.shed, self.request()).await;
        let ExecSession {
            id,
            mut output,
            mut input,
        } = match started {
            Ok(started) => started,
            Err(e) => {
                tracing::warn!(shed = self.shed, session = self.session, error = %e, "browser terminal: attach failed");
                let _ = sink.send(close(1011, "cannot attach to the session")).await;
                return;
            }
        };
        tracing::debug!(
            shed = self.shed,
            session = self.session,
            "browser terminal attached"
        );

        // The socket's only writer; output and pings queue for it.
        let (to_browser, mut queued) = mpsc::channel::<Message>(QUEUE);
        let mut writer = tokio::spawn(async move {
            while let Some(message) = queued.recv().await {
                let last = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || last {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let out = to_browser.clone();
        let mut pump_out = tokio::spawn(async move {
            while let Some(chunk) = output.next().await {
                let bytes = match chunk {
                    Ok(OutputChunk::Stdout(b) | OutputChunk::Stderr(b)) => b,
                    Err(e) => return Ending::Failed(e.to_string()),
                };
                if out.send(Message::Binary(bytes.into())).await.is_err() {
                    return Ending::BrowserGone;
                }
            }
            Ending::Ended
        });
        let (to_process, mut typed) = mpsc::channel::<Bytes>(QUEUE);
        let pump_in = tokio::spawn(async move {
            while let Some(bytes) = typed.recv().await {
                if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                    tracing::debug!("browser terminal: the process's stdin closed");
                    break;
                }
            }
        });

        let start = tokio::time::Instant::now() + self.ping;
        let mut ping = tokio::time::interval_at(start, self.ping);
        let mut unanswered = false;
        let ending = loop {
            tokio::select! {
                ended = &mut pump_out => {
                    break ended.unwrap_or_else(|e| Ending::Failed(e.to_string()));
                }
                _ = ping.tick() => {
                    if unanswered {
                        tracing::debug!(shed = self.shed, "browser terminal: no answer to the last ping");
                        break Ending::BrowserGone;
                    }
                    unanswered = true;
                    if to_browser.send(Message::Ping(Bytes::new())).await.is_err() {
                        break Ending::BrowserGone;
                    }
                }
                message = stream.next() => {
                    // Any frame shows the browser is there.
                    unanswered = false;
                    match message {
                        Some(Ok(Message::Binary(bytes))) if !self.read_only => {
                            // A full queue holds the browser back until the process reads.
                            let _ = to_process.send(bytes).await;
                        }
                        Some(Ok(Message::Text(text))) if !self.read_only => {
                            self.control(&id, text.as_str()).await;
                        }
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                            break Ending::BrowserGone;
                        }
                        // Pings are answered by the socket itself; a
                        // read-only terminal drops input and resizes.
                        Some(Ok(_)) => {}
                    }
                }
            }
        };
        drop(to_process);
        match ending {
            Ending::Ended => {
                tracing::debug!(
                    shed = self.shed,
                    session = self.session,
                    "browser terminal ended"
                );
                let _ =
                    tokio::time::timeout(CLOSE_WAIT, to_browser.send(close(1000, "ended"))).await;
            }
            Ending::Failed(e) => {
                tracing::warn!(shed = self.shed, session = self.session, error = %e, "browser terminal failed");
                let closing = to_browser.send(close(1011, "terminal output failed"));
                let _ = tokio::time::timeout(CLOSE_WAIT, closing).await;
                hang_up(&*self.exec, &self.shed, &id).await;
            }
            Ending::BrowserGone => {
                tracing::debug!(
                    shed = self.shed,
                    session = self.session,
                    "browser terminal detached"
                );
                pump_out.abort();
                // The tmux client detaches on the hang-up; the session goes on.
                hang_up(&*self.exec, &self.shed, &id).await;
            }
        }
        drop(to_browser);
        if tokio::time::timeout(CLOSE_WAIT, &mut writer).await.is_err() {
            writer.abort();
        }
        pump_in.abort();
    }

    /// Applies a control message; anything else is ignored.
    async fn control(&self, exec_id: &str, text: &str) {
        match serde_json::from_str::<Control>(text) {
            Ok(Control::Resize { cols, rows }) => match tty_size(cols, rows) {
                Some(size) => {
                    if let Err(e) = self.exec.resize(exec_id, size).await {
                        tracing::debug!(error = %e, "browser terminal: resize failed");
                    }
                }
                None => {
                    tracing::debug!(cols, rows, "browser terminal: resize out of bounds ignored")
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "browser terminal: unknown control message ignored")
            }
        }
    }
}
