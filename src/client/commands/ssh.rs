//! `shed console|exec|attach`: the commands that become an OpenSSH client.

use anyhow::{anyhow, bail};

use super::{check_session_name, session_hint, Ctx, Outcome};
use crate::api::{ErrorCode, Shed, ShedStatus};
use crate::client::api_client::ApiClient;
use crate::client::ssh::{ssh_command, Tty};

impl Ctx {
    /// Replaces this process with `ssh` to shed `name`.
    pub(super) async fn exec_ssh(
        &self,
        name: &str,
        tty: Tty,
        remote: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        let (client, shed) = self.find_shed(name).await?;
        self.exec_ssh_on(&client, &shed, tty, remote)
    }

    /// [`Ctx::exec_ssh`] once the shed is found.
    fn exec_ssh_on(
        &self,
        client: &ApiClient,
        shed: &Shed,
        tty: Tty,
        remote: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        let name = shed.name.as_str();
        if shed.status == ShedStatus::Stopped {
            // ssh users expect a login to work, so the gateway starts it;
            // said here because the wait is otherwise unexplained.
            eprintln!("shed {name} is stopped; starting it");
        }
        let entry = self.entry(client)?;
        let mut cmd = ssh_command(entry, &self.known_hosts(), name, tty, remote)?;
        tracing::debug!(?cmd, "running ssh");
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        Err(anyhow!("running ssh: {err}; is openssh-client installed?"))
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
        let (client, shed) = self.find_shed(name).await?;
        if !new && shed.status == ShedStatus::Running {
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
    }
}
