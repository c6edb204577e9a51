//! The seam between the HTTP layer and the container engine. The real
//! implementation is [`crate::server::docker::DockerBackend`]; handler tests
//! use an in-memory fake.

use async_trait::async_trait;
use thiserror::Error;

use crate::api::{KeptVolume, SessionInfo, Shed};

/// What a create needs once the request has been validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShed {
    /// Validated shed name.
    pub name: String,
    /// Image to run; the server default is already filled in.
    pub image: String,
    /// Repository to clone after start.
    pub repo: Option<crate::server::repo::RepoSpec>,
    /// The shed's own `idle_stop_after` (seconds, 0 = never), kept as a
    /// container label; `None` follows the server's.
    pub idle_stop_after: Option<u64>,
}

/// What a session create needs once the request has been validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Validated session name.
    pub name: String,
    /// Command line for the session's shell, or `None` for an interactive shell.
    pub command: Option<String>,
    /// Absolute working directory.
    pub cwd: String,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// The restore policy asked for; `None` for the default.
    pub restore: Option<crate::api::snapshot::RestorePolicy>,
}

/// Failures a backend reports; [`crate::server::error::ApiError`] maps them to HTTP.
/// Clone, so that callers sharing one computation can each get its error.
#[derive(Debug, Clone, Error)]
pub enum BackendError {
    /// No shed with this name on this server.
    #[error("no shed named {0:?}")]
    ShedNotFound(String),
    /// The name is taken.
    #[error("shed {0:?} already exists")]
    ShedExists(String),
    /// A create of this name is under way.
    #[error("shed {0:?} is being created")]
    ShedBeingCreated(String),
    /// Start of a running shed.
    #[error("shed {0:?} is already running")]
    AlreadyRunning(String),
    /// Stop of a stopped shed.
    #[error("shed {0:?} is already stopped")]
    AlreadyStopped(String),
    /// The image is not present on the server.
    #[error("image {0:?} not found on this server; build or pull it first")]
    ImageNotFound(String),
    /// `git clone` failed; nothing was kept.
    #[error("cloning {repo} failed: {detail}")]
    CloneFailed {
        /// The URL that was cloned.
        repo: String,
        /// The tail of git's output.
        detail: String,
    },
    /// No session with exactly this name in the shed.
    #[error("no session named {session:?} in shed {shed:?}")]
    SessionNotFound {
        /// The shed.
        shed: String,
        /// The session.
        session: String,
    },
    /// The session name is taken.
    #[error("shed {shed:?} already has a session named {session:?}")]
    SessionExists {
        /// The shed.
        shed: String,
        /// The session.
        session: String,
    },
    /// The shed is not running.
    #[error("shed {0:?} is not running; start it first")]
    ShedNotRunning(String),
    /// The shed is at its session limit.
    #[error(
        "shed {shed:?} already has {max} sessions, the most this server allows; kill one first"
    )]
    MaxSessions {
        /// The shed.
        shed: String,
        /// The limit.
        max: usize,
    },
    /// The image has no tmux.
    #[error("tmux is not installed in shed {0:?}; use an image with tmux")]
    TmuxNotAvailable(String),
    /// The shed did not answer in time.
    #[error("shed {0:?} did not answer in time")]
    Timeout(String),
    /// A request value that only the shed could check is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// The Docker engine could not be reached; the detail is logged, not sent.
    #[error("docker engine unavailable: {0}")]
    DockerUnavailable(String),
    /// Anything else; the detail is logged, not sent.
    #[error("{0}")]
    Internal(String),
    /// The shed's image lacks a program a feature needs.
    #[error("{tool} is not installed in shed {shed:?}, and {needed_for} need it; use an image with it (see \"What a shed image must contain\" in the README)")]
    ToolMissing {
        /// The shed.
        shed: String,
        /// The missing program.
        tool: String,
        /// The feature that needs it.
        needed_for: String,
    },
    /// A volume is in the way of a create (left over, or another server's).
    #[error("{0}")]
    VolumeConflict(String),
    /// A delete removed the container but not the volume; says what to do.
    #[error("{0}")]
    DeleteIncomplete(String),
    /// The session's command has exited (its pane is kept, dead), so it
    /// takes no input.
    #[error("the command in session {session:?} of shed {shed:?} has {}, so it takes no input; read its last output with `shed sessions peek {shed} {session}`, then kill the session and start a new one", match .status { Some(code) => format!("exited with status {code}"), None => "ended".to_string() })]
    SessionExited {
        /// The shed.
        shed: String,
        /// The session.
        session: String,
        /// The command's exit status, when tmux knows it.
        status: Option<i32>,
    },
}

impl BackendError {
    /// Input refused because the session's command has exited (409 `SESSION_EXITED`).
    pub fn session_exited(shed: &str, session: &str, status: Option<i32>) -> BackendError {
        BackendError::SessionExited {
            shed: shed.into(),
            session: session.into(),
            status,
        }
    }
}

/// The session named exactly `session` among shed `shed`'s `sessions`.
pub fn find_session(
    sessions: Vec<SessionInfo>,
    shed: &str,
    session: &str,
) -> Result<SessionInfo, BackendError> {
    sessions
        .into_iter()
        .find(|s| s.name == session)
        .ok_or_else(|| BackendError::SessionNotFound {
            shed: shed.into(),
            session: session.into(),
        })
}

/// What a command run to completion in a shed left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Its exit status.
    pub exit_code: i64,
    /// A bounded tail of its stdout.
    pub stdout: Vec<u8>,
    /// A bounded tail of its stderr.
    pub stderr: Vec<u8>,
}

/// Shed lifecycle operations over a container engine.
#[async_trait]
pub trait ShedBackend: Send + Sync + 'static {
    /// Every shed this server owns, sorted by name.
    async fn list(&self) -> Result<Vec<Shed>, BackendError>;
    /// One shed.
    async fn get(&self, name: &str) -> Result<Shed, BackendError>;
    /// Creates, starts and (optionally) clones into a new shed; all or nothing.
    async fn create(&self, new: NewShed) -> Result<Shed, BackendError>;
    /// Removes the container and, unless `keep_volume`, its workspace volume.
    async fn delete(&self, name: &str, keep_volume: bool) -> Result<(), BackendError>;
    /// Starts a stopped shed.
    async fn start(&self, name: &str) -> Result<Shed, BackendError>;
    /// Stops a running shed.
    async fn stop(&self, name: &str) -> Result<Shed, BackendError>;
    /// Workspace volumes kept on purpose by a `keep_volume` delete, sorted by
    /// name. A backend without volumes keeps none.
    async fn kept_volumes(&self) -> Result<Vec<KeptVolume>, BackendError> {
        Ok(Vec::new())
    }
    /// Every tmux session in a running shed, sorted by name, in one exec.
    async fn list_sessions(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError>;
    /// The same, for a shed the caller has just seen running in a
    /// [`ShedBackend::list`] answer: a backend may skip checking that again.
    async fn list_sessions_of_running(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError> {
        self.list_sessions(shed).await
    }
    /// Whether the container engine is connected now; background tasks
    /// look only then, so they never start a connect of their own.
    fn engine_connected(&self) -> bool {
        true
    }
    /// How many sheds have an attached live control channel now.
    fn control_channels(&self) -> usize {
        0
    }
    /// The shed's sessions as its live control channel last saw them,
    /// without an exec or a Docker call; `None` when no channel serves it
    /// (a backend without channels never has one).
    async fn live_sessions(&self, shed: &str) -> Option<Vec<SessionInfo>> {
        let _ = shed;
        None
    }
    /// Creates a detached session.
    async fn create_session(
        &self,
        shed: &str,
        new: NewSession,
    ) -> Result<SessionInfo, BackendError>;
    /// Kills the session with exactly this name.
    async fn kill_session(&self, shed: &str, session: &str) -> Result<(), BackendError>;
    /// The last `lines` lines of the session's active pane, scrollback included.
    async fn session_output(
        &self,
        shed: &str,
        session: &str,
        lines: usize,
    ) -> Result<String, BackendError>;
    /// [`ShedBackend::session_output`] with the path that answered.
    async fn session_output_from(
        &self,
        shed: &str,
        session: &str,
        lines: usize,
    ) -> Result<(String, crate::api::SessionSource), BackendError> {
        let text = self.session_output(shed, session, lines).await?;
        Ok((text, crate::api::SessionSource::Exec))
    }
    /// Why the session's agent is in its state. Without a live engine,
    /// the session as listed, with no pane detail.
    async fn session_agent(
        &self,
        shed: &str,
        session: &str,
    ) -> Result<crate::api::agent::AgentExplanation, BackendError> {
        let info = find_session(self.list_sessions(shed).await?, shed, session)?;
        Ok(crate::api::agent::AgentExplanation {
            shed: shed.into(),
            session: session.into(),
            agent: info.agent,
            decided_by: None,
            panes: Vec::new(),
            rules_version: self.rules_version(),
        })
    }

    /// The version of the screen rules in force. A backend without the
    /// server config's rules has the built-in ones.
    fn rules_version(&self) -> String {
        crate::server::agent::rules::Rules::builtin()
            .version()
            .to_string()
    }

    /// What the shed's snapshot holds. A backend without snapshots has none.
    async fn snapshot(
        &self,
        shed: &str,
    ) -> Result<crate::api::snapshot::SnapshotView, BackendError> {
        self.get(shed).await?;
        Ok(crate::api::snapshot::SnapshotView {
            shed: shed.into(),
            file: None,
            snapshot: None,
            warnings: Vec::new(),
            env_hidden: false,
        })
    }
    /// Recreates the saved sessions the shed runs without (or says what it
    /// would recreate). A backend without snapshots restores nothing.
    async fn restore_snapshot(
        &self,
        shed: &str,
        dry_run: bool,
    ) -> Result<crate::api::snapshot::RestoreReport, BackendError> {
        self.get(shed).await?;
        Ok(crate::api::snapshot::RestoreReport {
            shed: shed.into(),
            dry_run,
            file: None,
            actions: Vec::new(),
            warnings: Vec::new(),
        })
    }
    /// Types `text` literally into the session, then Enter if asked.
    async fn send_input(
        &self,
        shed: &str,
        session: &str,
        text: &str,
        enter: bool,
    ) -> Result<(), BackendError>;
    /// Runs `cmd` as root in running shed `shed`, within `limit`; for
    /// writing system files such as agent hooks. A backend without
    /// containers cannot.
    async fn exec_as_root(
        &self,
        shed: &str,
        cmd: Vec<String>,
        limit: std::time::Duration,
    ) -> Result<CommandOutput, BackendError> {
        let _ = (cmd, limit);
        Err(BackendError::Internal(format!(
            "this backend cannot run commands in shed {shed:?}"
        )))
    }
}
