//! `shed console|exec|attach`: the commands that run the OpenSSH client.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use anyhow::{anyhow, bail};
use tokio::signal::unix::{signal, SignalKind};

use super::{check_session_name, servers::key_refused, session_hint, Ctx, Outcome};
use crate::api::{ErrorCode, Shed};
use crate::client::api_client::ApiClient;
use crate::client::ssh::{login_probe, ssh_command, LoginProbe, Tty};

/// ssh's exit status for its own failures, a refused login among them.
const SSH_FAILED: i32 = 255;

impl Ctx {
    /// Runs `ssh` to shed `name` (started first if it is stopped) and exits
    /// as it does.
    pub(super) async fn exec_ssh(
        &self,
        name: &str,
        tty: Tty,
        remote: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        let (client, shed) = self.started_shed(name).await?;
        self.exec_ssh_on(&client, &shed, tty, remote).await
    }

    /// [`Ctx::exec_ssh`] once the shed is found and running.
    ///
    /// ssh runs as a child rather than replacing shed, so that a refused
    /// key can be explained after ssh's own terse "Permission denied";
    /// stdin, stdout and stderr are ssh's own, so terminals work as before.
    async fn exec_ssh_on(
        &self,
        client: &ApiClient,
        shed: &Shed,
        tty: Tty,
        remote: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        let entry = self.entry(client)?;
        let known_hosts = self.known_hosts();
        let cmd = ssh_command(entry, &known_hosts, &shed.name, tty, remote)?;
        tracing::debug!(?cmd, "running ssh");
        let status = run_forwarding_signals(cmd).await?;
        if status.code() == Some(SSH_FAILED)
            && login_probe(entry, &known_hosts).await == LoginProbe::KeyRefused
        {
            // Asked again with BatchMode rather than by reading ssh's
            // stderr, which stays the terminal's; 255 is also how ssh
            // reports a remote command killed by a signal.
            eprintln!("shed: {}", key_refused(entry, None));
        }
        Ok(Outcome::Exit(exit_code(status)))
    }

    /// `shed console NAME`: a login shell.
    pub(super) async fn console(&self, name: &str) -> anyhow::Result<Outcome> {
        self.exec_ssh(name, Tty::Force, None).await
    }

    /// `shed exec NAME -- CMD...` without `--session`.
    pub(super) async fn exec(&self, name: &str, command: &[String]) -> anyhow::Result<Outcome> {
        // The gateway runs the string through `sh -c`, as sshd does, so each
        // argument is quoted to arrive exactly as given.
        let remote = shell_words::join(command);
        self.exec_ssh(name, Tty::Disable, Some(&remote)).await
    }

    /// `shed attach NAME [-S SESSION] [--new] [--cwd DIR]`: tmux over ssh.
    pub(super) async fn attach(
        &self,
        name: &str,
        session: &str,
        new: bool,
        existing: bool,
        cwd: &str,
    ) -> anyhow::Result<Outcome> {
        check_session_name(session)?;
        if cwd.is_empty() {
            bail!("--cwd must not be empty");
        }
        // Started before the session check: a start brings back the saved
        // sessions, which `--existing` may be asking for.
        let (client, shed) = self.started_shed(name).await?;
        if !new {
            match client.get_session(name, session).await {
                Ok(_) => {}
                Err(e) if e.code() == Some(ErrorCode::SessionNotFound) => {
                    let hint = session_hint(&client, name, session).await;
                    if existing {
                        bail!("no session {session:?} in shed {name}{hint}");
                    }
                    // A typo would otherwise silently start a fresh session.
                    eprintln!("shed: no session {session:?} in shed {name}; creating it{hint}");
                }
                Err(e) => return Err(e.into()),
            }
        }
        let session_q = shell_words::quote(session);
        let remote = if existing {
            // Refused by tmux itself if the session went away meanwhile.
            format!("tmux attach-session -t ={session_q}")
        } else {
            let attach_flag = if new { "" } else { " -A" };
            format!(
                "tmux new-session{attach_flag} -s {session_q} -c {}",
                shell_words::quote(cwd)
            )
        };
        self.exec_ssh_on(&client, &shed, Tty::Force, Some(&remote))
            .await
    }
}

/// Runs `cmd` to its end with the terminal's stdin, stdout and stderr.
///
/// A Ctrl-C or Ctrl-\ typed without a remote terminal reaches ssh and shed
/// alike, as one process group: shed stays alive to report how ssh ended.
/// Signals sent to shed alone (`kill`, `timeout`) are passed on to ssh,
/// which would have received them had shed replaced itself with it.
///
/// A shed killed outright (SIGKILL) cannot pass that on; on Linux, ssh is
/// then sent SIGTERM by the kernel (`PR_SET_PDEATHSIG`), so it never
/// outlives shed and keeps a remote command running.
async fn run_forwarding_signals(mut cmd: std::process::Command) -> anyhow::Result<ExitStatus> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls, with
        // no allocation: prctl, getppid, _exit.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // shed died before the line above: nobody to run ssh for.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    // Handlers, unlike ignored signals, are reset in ssh by exec.
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| anyhow!("running ssh: {e}; is openssh-client installed?"))?;
    let pid = child.id();
    loop {
        let forward = tokio::select! {
            status = child.wait() => return Ok(status?),
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
            _ = hup.recv() => libc::SIGHUP,
            _ = quit.recv() => libc::SIGQUIT,
        };
        if let Some(pid) = pid {
            // SAFETY: kill(2) with a pid we spawned and have not reaped
            // (wait has not returned), so it cannot be another process.
            unsafe {
                libc::kill(pid as libc::pid_t, forward);
            }
        }
    }
}

/// shed's exit code for ssh's `status`: its own code, or 128 + the signal
/// that ended it, as a shell reports it.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}
