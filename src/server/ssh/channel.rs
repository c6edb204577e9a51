//! One SSH channel's task. russh callbacks arrive here as owned
//! [`Event`]s; the task decides each one and answers `channel_success` or
//! `channel_failure` through the event's reply, then runs the process over
//! the [`InteractiveExec`] seam and pumps bytes both ways until either side
//! ends.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::api::validate_shed_name;
use crate::server::backend::BackendError;
use crate::server::exec::{
    hang_up, ExecRequest, ExecSession, InteractiveExec, OutputChunk, TtySize,
};

/// How long a login waits for a stopped shed to come up.
const START_WAIT: Duration = Duration::from_secs(10);
/// Requests queued for one channel before the connection waits; a client
/// gets an answer to each before its next packet is read, so one suffices.
pub(super) const EVENT_QUEUE: usize = 4;

/// A channel request, owned, as the russh handler received it.
#[derive(Debug, Clone)]
pub(super) enum Request {
    /// `pty-req`.
    Pty {
        /// `TERM`.
        term: String,
        /// The size.
        size: TtySize,
    },
    /// `shell`.
    Shell,
    /// `exec` with its command line.
    Exec(String),
    /// `env`; the client's environment is never passed on.
    Env,
    /// `window-change`.
    WindowChange(TtySize),
    /// `signal`.
    Signal(Sig),
    /// `subsystem` (sftp, ...).
    Subsystem(String),
    /// `x11-req`.
    X11,
}

/// A request and where its answer goes: `true` for `channel_success`.
pub(super) struct Event {
    /// The request.
    pub request: Request,
    /// The decision.
    pub reply: oneshot::Sender<bool>,
}

/// What the channel task needs.
pub(super) struct ChannelContext {
    pub exec: Arc<dyn InteractiveExec>,
    pub shed: String,
    pub session: Handle,
    pub events: mpsc::Receiver<Event>,
}

/// The pty the client asked for.
#[derive(Debug, Clone)]
struct Pty {
    term: String,
    size: TtySize,
}

/// How the session ended, as far as the client is concerned.
enum Ending {
    /// The process closed its output; it has exited or is about to.
    OutputClosed,
    /// The client went away first.
    ClientGone,
}

/// A window size from the protocol's u32s, within what a TTY can have.
pub(super) fn size(cols: u32, rows: u32) -> TtySize {
    let clamp = |v: u32| v.clamp(1, u16::MAX as u32) as u16;
    TtySize {
        cols: clamp(cols),
        rows: clamp(rows),
    }
}

/// The next event, or never once the handler has forgotten the channel.
async fn next_event(events: &mut mpsc::Receiver<Event>) -> Event {
    match events.recv().await {
        Some(event) => event,
        None => std::future::pending().await,
    }
}

/// Runs one session channel to completion.
pub(super) async fn run(channel: Channel<Msg>, ctx: ChannelContext) {
    let id = channel.id();
    let (mut reader, writer) = channel.split();
    let writer = Arc::new(writer);
    let ChannelContext {
        exec: backend,
        shed,
        session,
        mut events,
    } = ctx;

    // Setup: requests until shell or exec; the client's data waits in the reader.
    let mut pty: Option<Pty> = None;
    let command = loop {
        tokio::select! {
            event = next_event(&mut events) => {
                let (ok, start) = match event.request {
                    Request::Pty { term, size } => {
                        pty = Some(Pty { term, size });
                        (true, None)
                    }
                    Request::WindowChange(size) => match pty.as_mut() {
                        Some(p) => {
                            p.size = size;
                            (true, None)
                        }
                        None => (false, None),
                    },
                    Request::Shell => (true, Some(None)),
                    Request::Exec(command) => (true, Some(Some(command))),
                    other => (refuse(&other), None),
                };
                let _ = event.reply.send(ok);
                if let Some(command) = start {
                    break command;
                }
            }
            msg = reader.wait() => match msg {
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return,
                Some(_) => {}
            },
        }
    };

    let fail = |message: String| {
        let writer = writer.clone();
        async move {
            let line = format!("shed: {message}\r\n");
            let _ = writer.extended_data_bytes(1, line.into_bytes()).await;
            let _ = writer.exit_status(1).await;
            let _ = writer.eof().await;
            let _ = writer.close().await;
        }
    };

    let mut env = vec![format!("SHED_NAME={shed}")];
    if let Some(p) = &pty {
        env.push(format!("TERM={}", p.term));
    }
    let cmd = match &command {
        // OpenSSH runs the command string through the shell; so do we.
        Some(command) => vec!["/bin/sh".to_string(), "-c".into(), command.clone()],
        None => vec![
            "/bin/sh".to_string(),
            "-c".into(),
            "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi".into(),
        ],
    };
    let starting = async {
        if let Err(e) = validate_shed_name(&shed) {
            return Err(format!("invalid shed name {shed:?}: {e}"));
        }
        match backend.ensure_running(&shed, START_WAIT).await {
            Ok(()) => {}
            Err(BackendError::ShedNotFound(_)) => {
                return Err(format!("no shed named {shed:?} on this server"))
            }
            Err(e) => {
                tracing::error!(shed, error = ?e.to_string(), "ssh: cannot start shed");
                return Err(format!("cannot start shed {shed:?}; see the server log"));
            }
        }
        let request = ExecRequest {
            cmd,
            env,
            tty: pty.as_ref().map(|p| p.size),
            user: None,
        };
        backend.start(&shed, request).await.map_err(|e| {
            tracing::error!(shed, error = ?e.to_string(), "ssh: exec failed");
            format!("cannot run in shed {shed:?}; see the server log")
        })
    };
    // Starting a shed can take seconds: requests meanwhile are answered
    // (the connection waits for each answer), and a resize is kept for later.
    tokio::pin!(starting);
    let mut resized: Option<TtySize> = None;
    let started = loop {
        tokio::select! {
            started = &mut starting => break started,
            event = next_event(&mut events) => {
                let ok = match &event.request {
                    Request::WindowChange(size) if pty.is_some() => {
                        resized = Some(*size);
                        true
                    }
                    other => refuse(other),
                };
                let _ = event.reply.send(ok);
            }
        }
    };
    let exec = match started {
        Ok(exec) => exec,
        Err(message) => {
            // No answer may be awaited while the client is written to.
            drop(events);
            return fail(message).await;
        }
    };
    let exec_id = exec.id.clone();
    if let Some(size) = resized {
        if let Err(e) = backend.resize(&exec_id, size).await {
            tracing::debug!(error = %e, "resize failed");
        }
    }

    let pumped = Pump {
        backend: &*backend,
        shed: &shed,
        tty: pty.is_some(),
        stderr_to_client: true,
    };
    let ending = pumped
        .run(&mut reader, writer.clone(), exec, Some(&mut events))
        .await;
    drop(events);
    match ending {
        Ending::ClientGone => hang_up(&*backend, &shed, &exec_id).await,
        Ending::OutputClosed => report_exit(&*backend, &session, id, &writer, &exec_id).await,
    }
}

/// Tells the client how the process ended, as sshd would, and closes.
async fn report_exit(
    backend: &dyn InteractiveExec,
    session: &Handle,
    id: ChannelId,
    writer: &ChannelWriteHalf<Msg>,
    exec_id: &str,
) {
    let code = backend.wait_exit(exec_id).await;
    match code.and_then(signal_of_exit_code) {
        Some(signal) => {
            let _ = session
                .exit_signal_request(id, signal, false, String::new(), String::new())
                .await;
        }
        None => {
            let status = code.unwrap_or(255).clamp(0, 255) as u32;
            let _ = writer.exit_status(status).await;
        }
    }
    let _ = writer.eof().await;
    let _ = writer.close().await;
}

/// The answer to a request no state of the channel honours: `false`.
fn refuse(request: &Request) -> bool {
    match request {
        Request::Subsystem(name) => tracing::debug!(subsystem = ?name, "ssh subsystem refused"),
        // The client's locale may not exist in the shed, and tmux refuses
        // to start on a broken one, so client environment is not passed on.
        Request::Env => {}
        other => tracing::debug!(request = ?other, "ssh channel request refused"),
    }
    false
}

/// Relays bytes between a channel and a process until one side ends.
struct Pump<'a> {
    backend: &'a dyn InteractiveExec,
    shed: &'a str,
    /// Whether the process has a TTY, so resizes mean something.
    tty: bool,
    /// Whether stderr goes to the client as extended data, or only to the log.
    stderr_to_client: bool,
}

impl Pump<'_> {
    /// Process output to the client; client data, EOF, resizes and signals
    /// to the process; requests answered on the way.
    async fn run(
        &self,
        reader: &mut ChannelReadHalf,
        writer: Arc<ChannelWriteHalf<Msg>>,
        exec: ExecSession,
        mut events: Option<&mut mpsc::Receiver<Event>>,
    ) -> Ending {
        let ExecSession {
            id: exec_id,
            mut output,
            mut input,
        } = exec;
        let stderr_to_client = self.stderr_to_client;
        // Ends with the process's output (Ending::OutputClosed) or, when
        // the client can no longer take data, with Ending::ClientGone.
        let mut pump_out = tokio::spawn(async move {
            while let Some(chunk) = output.next().await {
                let sent = match chunk {
                    Ok(OutputChunk::Stderr(message)) if stderr_to_client => {
                        writer.extended_data_bytes(1, message).await
                    }
                    Ok(OutputChunk::Stderr(message)) => {
                        tracing::debug!(stderr = ?String::from_utf8_lossy(&message).trim(), "exec stderr");
                        Ok(())
                    }
                    Ok(OutputChunk::Stdout(message)) => writer.data_bytes(message).await,
                    Err(e) => {
                        tracing::debug!(error = %e, "exec output stream ended with an error");
                        break;
                    }
                };
                if sent.is_err() {
                    return Ending::ClientGone;
                }
            }
            Ending::OutputClosed
        });

        let ending = loop {
            let event = async {
                match events.as_deref_mut() {
                    Some(events) => next_event(events).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ended = &mut pump_out => break ended.unwrap_or(Ending::ClientGone),
                event = event => {
                    let signal = match &event.request {
                        Request::WindowChange(size) if self.tty => {
                            let _ = event.reply.send(true);
                            if let Err(e) = self.backend.resize(&exec_id, *size).await {
                                tracing::debug!(error = %e, "resize failed");
                            }
                            continue;
                        }
                        Request::Signal(signal) => signal_name(signal),
                        other => {
                            let _ = event.reply.send(refuse(other));
                            continue;
                        }
                    };
                    let deliverable = signal.bytes().all(|b| b.is_ascii_alphanumeric());
                    let _ = event.reply.send(deliverable);
                    if deliverable {
                        if let Err(e) = self.backend.signal(self.shed, &exec_id, &signal).await {
                            tracing::warn!(shed = self.shed, error = ?e.to_string(), "forwarding a signal failed");
                        }
                    }
                }
                msg = reader.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        if input.write_all(&data).await.is_err() {
                            tracing::debug!("exec stdin closed");
                        }
                        let _ = input.flush().await;
                    }
                    Some(ChannelMsg::Eof) => {
                        let _ = input.shutdown().await;
                    }
                    Some(ChannelMsg::Close) | None => break Ending::ClientGone,
                    Some(_) => {}
                }
            }
        };
        if matches!(ending, Ending::ClientGone) {
            pump_out.abort();
        }
        ending
    }
}

/// Connects stdin and stdout to 127.0.0.1:$1 inside the shed, with bash's
/// /dev/tcp, so forwarded traffic stays on the shed's own loopback.
const RELAY_SCRIPT: &str = r#"exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
cat <&3 &
cat >&3
wait"#;

/// Relays a `direct-tcpip` channel (`ssh -L`, and how VS Code Remote-SSH
/// reaches its server) to a port on the shed's loopback.
pub(super) async fn forward(
    channel: Channel<Msg>,
    backend: Arc<dyn InteractiveExec>,
    shed: String,
    port: u16,
) {
    let (mut reader, writer) = channel.split();
    let writer = Arc::new(writer);
    let started = match backend.ensure_running(&shed, START_WAIT).await {
        Ok(()) => {
            let request = ExecRequest {
                cmd: vec![
                    "bash".to_string(),
                    "-c".into(),
                    RELAY_SCRIPT.into(),
                    "shed-forward".into(),
                    port.to_string(),
                ],
                env: Vec::new(),
                tty: None,
                user: None,
            };
            backend.start(&shed, request).await
        }
        Err(e) => Err(e),
    };
    let exec = match started {
        Ok(exec) => exec,
        Err(e) => {
            tracing::warn!(shed, port, error = ?e.to_string(), "ssh: port forward failed");
            let _ = writer.eof().await;
            let _ = writer.close().await;
            return;
        }
    };
    let exec_id = exec.id.clone();
    let pumped = Pump {
        backend: &*backend,
        shed: &shed,
        tty: false,
        stderr_to_client: false,
    };
    match pumped.run(&mut reader, writer.clone(), exec, None).await {
        Ending::ClientGone => hang_up(&*backend, &shed, &exec_id).await,
        Ending::OutputClosed => {
            let _ = writer.eof().await;
            let _ = writer.close().await;
        }
    }
}

/// The name `kill -s` understands for an SSH signal.
fn signal_name(signal: &Sig) -> String {
    match signal {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name.as_str(),
    }
    .to_string()
}

/// Docker reports a process killed by signal N as exit code 128+N; the
/// common ones are reported to the client as a signal, as sshd would.
fn signal_of_exit_code(code: i64) -> Option<Sig> {
    Some(match code - 128 {
        1 => Sig::HUP,
        2 => Sig::INT,
        3 => Sig::QUIT,
        4 => Sig::ILL,
        6 => Sig::ABRT,
        8 => Sig::FPE,
        9 => Sig::KILL,
        11 => Sig::SEGV,
        13 => Sig::PIPE,
        14 => Sig::ALRM,
        15 => Sig::TERM,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_exit_codes_map_to_signals() {
        assert!(matches!(signal_of_exit_code(137), Some(Sig::KILL)));
        assert!(matches!(signal_of_exit_code(130), Some(Sig::INT)));
        assert!(signal_of_exit_code(7).is_none());
        assert!(signal_of_exit_code(0).is_none());
        assert!(signal_of_exit_code(200).is_none());
    }
}
