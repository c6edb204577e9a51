//! One SSH session channel: collect the setup requests, then run a Docker
//! exec and pump bytes both ways until either side ends.

use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use futures_util::StreamExt;
use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::AsyncWriteExt;

use crate::api::validate_shed_name;
use crate::server::backend::BackendError;
use crate::server::docker::{DockerBackend, ExecRequest, InteractiveExec};

/// How long a login waits for a stopped shed to come up.
const START_WAIT: Duration = Duration::from_secs(10);
/// How long a hung-up process gets between SIGHUP and SIGKILL.
const HANGUP_GRACE: Duration = Duration::from_secs(2);

/// What the channel task needs.
pub(super) struct ChannelContext {
    pub backend: Arc<DockerBackend>,
    pub shed: String,
    pub session: Handle,
}

/// The pty the client asked for.
#[derive(Debug, Clone)]
struct Pty {
    term: String,
    cols: u16,
    rows: u16,
}

/// How the session ended, as far as the client is concerned.
enum Ending {
    /// The process closed its output; it has exited or is about to.
    OutputClosed,
    /// The client went away first.
    ClientGone,
}

fn clamp(value: u32) -> u16 {
    value.clamp(1, u16::MAX as u32) as u16
}

/// Runs one session channel to completion.
pub(super) async fn run(channel: Channel<Msg>, ctx: ChannelContext) {
    let id = channel.id();
    let (mut reader, writer) = channel.split();
    let writer = Arc::new(writer);

    let mut pty: Option<Pty> = None;
    let command = loop {
        match reader.wait().await {
            Some(ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                ..
            }) => {
                pty = Some(Pty {
                    term,
                    cols: clamp(col_width),
                    rows: clamp(row_height),
                })
            }
            Some(ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            }) => {
                if let Some(p) = pty.as_mut() {
                    p.cols = clamp(col_width);
                    p.rows = clamp(row_height);
                }
            }
            Some(ChannelMsg::RequestShell { .. }) => break None,
            Some(ChannelMsg::Exec { command, .. }) => {
                break Some(String::from_utf8_lossy(&command).into_owned())
            }
            Some(ChannelMsg::Eof | ChannelMsg::Close) | None => return,
            Some(_) => {}
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

    let shed = ctx.shed.clone();
    if let Err(e) = validate_shed_name(&shed) {
        return fail(format!("invalid shed name {shed:?}: {e}")).await;
    }
    match ctx.backend.ensure_running(&shed, START_WAIT).await {
        Ok(()) => {}
        Err(BackendError::ShedNotFound(_)) => {
            return fail(format!("no shed named {shed:?} on this server")).await
        }
        Err(e) => {
            tracing::error!(shed, error = %e, "ssh: cannot start shed");
            return fail(format!("cannot start shed {shed:?}; see the server log")).await;
        }
    }

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
    let cmd = if pty.is_some() {
        wait_for_size(cmd)
    } else {
        cmd
    };
    let request = ExecRequest {
        cmd,
        env,
        tty: pty.is_some(),
    };
    let exec = match ctx.backend.start_exec(&shed, request).await {
        Ok(exec) => exec,
        Err(e) => {
            tracing::error!(shed, error = %e, "ssh: exec failed");
            return fail(format!("cannot run in shed {shed:?}; see the server log")).await;
        }
    };
    let exec_id = exec.id.clone();
    if let Some(p) = &pty {
        if let Err(e) = ctx.backend.resize_exec(&exec_id, p.cols, p.rows).await {
            tracing::debug!(error = %e, "initial resize failed");
        }
    }

    match pump(&mut reader, writer.clone(), exec, &ctx.backend, &shed, true).await {
        Ending::ClientGone => hang_up(&ctx.backend, &shed, &exec_id).await,
        Ending::OutputClosed => {
            let code = ctx.backend.wait_exec_exit(&exec_id).await;
            match code.and_then(signal_of_exit_code) {
                Some(signal) => {
                    let _ = ctx
                        .session
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
    }
}

/// Docker creates an exec's pty at 0x0 and the size can only be set once
/// the process runs, so a program could read 0x0 at start-up (tmux then
/// falls back to 80x24) and miss the resize. This prelude waits, at most a
/// second, for the size to arrive before starting `cmd`.
fn wait_for_size(cmd: Vec<String>) -> Vec<String> {
    const PRELUDE: &str = r#"i=0
while [ "$(stty size 2>/dev/null)" = "0 0" ] && [ $i -lt 50 ]; do sleep 0.02; i=$((i + 1)); done
exec "$@""#;
    let mut wrapped = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        PRELUDE.into(),
        "sh".into(),
    ];
    wrapped.extend(cmd);
    wrapped
}

/// Relays bytes between a channel and an exec until one side ends: exec
/// output to the client (stderr as extended data, or dropped when
/// `stderr_to_client` is false), client data, EOF, resizes and signals to
/// the exec.
async fn pump(
    reader: &mut ChannelReadHalf,
    writer: Arc<ChannelWriteHalf<Msg>>,
    exec: InteractiveExec,
    backend: &DockerBackend,
    shed: &str,
    stderr_to_client: bool,
) -> Ending {
    let InteractiveExec {
        id: exec_id,
        mut output,
        mut input,
    } = exec;
    // Ends with the exec's output (Ending::OutputClosed) or, when the
    // client can no longer take data, with Ending::ClientGone.
    let mut pump_out = tokio::spawn(async move {
        while let Some(chunk) = output.next().await {
            let sent = match chunk {
                Ok(LogOutput::StdErr { message }) if stderr_to_client => {
                    writer.extended_data_bytes(1, message).await
                }
                Ok(LogOutput::StdErr { message }) => {
                    tracing::debug!(stderr = %String::from_utf8_lossy(&message).trim(), "exec stderr");
                    Ok(())
                }
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    writer.data_bytes(message).await
                }
                Ok(LogOutput::StdIn { .. }) => Ok(()),
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
        tokio::select! {
            ended = &mut pump_out => break ended.unwrap_or(Ending::ClientGone),
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
                Some(ChannelMsg::WindowChange { col_width, row_height, .. }) => {
                    if let Err(e) = backend.resize_exec(&exec_id, clamp(col_width), clamp(row_height)).await {
                        tracing::debug!(error = %e, "resize failed");
                    }
                }
                Some(ChannelMsg::Signal { signal }) => {
                    if let Err(e) = backend.signal_exec(shed, &exec_id, &signal_name(&signal)).await {
                        tracing::warn!(shed, error = %e, "forwarding a signal failed");
                    }
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
    backend: Arc<DockerBackend>,
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
                tty: false,
            };
            backend.start_exec(&shed, request).await
        }
        Err(e) => Err(e),
    };
    let exec = match started {
        Ok(exec) => exec,
        Err(e) => {
            tracing::warn!(shed, port, error = %e, "ssh: port forward failed");
            let _ = writer.eof().await;
            let _ = writer.close().await;
            return;
        }
    };
    let exec_id = exec.id.clone();
    match pump(&mut reader, writer.clone(), exec, &backend, &shed, false).await {
        Ending::ClientGone => hang_up(&backend, &shed, &exec_id).await,
        Ending::OutputClosed => {
            let _ = writer.eof().await;
            let _ = writer.close().await;
        }
    }
}

/// The client left: hang up on the process like a closing terminal would,
/// then kill it if it lingers. What runs inside tmux is its own session and
/// is not touched.
async fn hang_up(backend: &DockerBackend, shed: &str, exec_id: &str) {
    if let Err(e) = backend.signal_exec(shed, exec_id, "HUP").await {
        tracing::warn!(shed, error = %e, "hanging up the exec failed");
        return;
    }
    let deadline = tokio::time::Instant::now() + HANGUP_GRACE;
    while tokio::time::Instant::now() < deadline {
        if !matches!(backend.exec_exit_code(exec_id).await, Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Err(e) = backend.signal_exec(shed, exec_id, "KILL").await {
        tracing::warn!(shed, error = %e, "killing the exec failed");
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
