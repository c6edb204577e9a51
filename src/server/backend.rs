//! The seam between the HTTP layer and the container engine. The real
//! implementation is [`crate::server::docker::DockerBackend`]; handler tests
//! use an in-memory fake.

use async_trait::async_trait;
use thiserror::Error;

use crate::api::{SessionInfo, Shed};

/// What a create needs once the request has been validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShed {
    /// Validated shed name.
    pub name: String,
    /// Image to run; the server default is already filled in.
    pub image: String,
    /// Repository to clone after start.
    pub repo: Option<crate::server::repo::RepoSpec>,
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
}

/// Failures a backend reports; [`crate::server::error::ApiError`] maps them to HTTP.
/// Clone, so that callers sharing one computation can each get its error.
#[derive(Debug, Clone, Error)]
pub enum BackendError {
    /// No shed with this name on this server.
    #[error("no shed named {0:?}")]
    ShedNotFound(String),
    /// The name is taken (or a create for it is under way).
    #[error("{0}")]
    ShedExists(String),
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
    /// Every tmux session in a running shed, sorted by name, in one exec.
    async fn list_sessions(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError>;
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
    /// Types `text` literally into the session, then Enter if asked.
    async fn send_input(
        &self,
        shed: &str,
        session: &str,
        text: &str,
        enter: bool,
    ) -> Result<(), BackendError>;
}
