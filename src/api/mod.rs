//! Wire types shared by `shed-server` and the `shed` CLI: request and response
//! bodies, the error body, and the name rules both sides enforce.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[macro_use]
mod wire_enum;

pub mod agent;
pub mod events;
pub mod fingerprint;
pub mod hooks;
pub mod idle;
pub mod names;
pub mod snapshot;
pub mod ui;

pub use names::{validate_session_name, validate_shed_name, NameError};

/// Lifecycle state of a shed, derived from its container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShedStatus {
    /// The container is running; sessions and SSH work.
    Running,
    /// The container exists but is not running.
    Stopped,
    /// Docker is (re)starting the container.
    Starting,
    /// The container is dead or being removed.
    Error,
}

impl std::fmt::Display for ShedStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShedStatus::Running => "running",
            ShedStatus::Stopped => "stopped",
            ShedStatus::Starting => "starting",
            ShedStatus::Error => "error",
        })
    }
}

/// A shed as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shed {
    /// The shed's name, without any isolation prefix.
    pub name: String,
    /// Current lifecycle state.
    pub status: ShedStatus,
    /// When the shed was created.
    pub created_at: DateTime<Utc>,
    /// The image the container was created from.
    pub image: String,
    /// The repository cloned at creation, if any.
    pub repo: Option<String>,
    /// Docker's container id.
    pub container_id: String,
    /// Name of the shed-server that owns it.
    pub server: String,
    /// This shed's own `idle_stop_after` in seconds, set at create (0: never
    /// auto-stopped); absent when it follows the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_stop_after: Option<u64>,
    /// What a create could not do without failing, e.g. agent hooks it
    /// left uninstalled; only in a create's answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Body of `POST /api/sheds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShedRequest {
    /// Shed name; see [`validate_shed_name`].
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: String,
    /// Image to use instead of the server's `default_image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^\\S+$", max_length = 512)]
    pub image: Option<String>,
    /// Git URL or GitHub `owner/repo` to clone into `/workspace/<repo-name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = "^((https?|ssh|git|file)://[^\\s/]+(/[A-Za-z0-9._~-]+)*/[A-Za-z0-9_~-][A-Za-z0-9._~-]*/?|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:([A-Za-z0-9._~-]+/)*[A-Za-z0-9_~-][A-Za-z0-9._~-]*|[A-Za-z0-9_-][A-Za-z0-9._-]*/[A-Za-z0-9_-][A-Za-z0-9._-]*)$",
        max_length = 2048
    )]
    pub repo: Option<String>,
    /// Seconds with every session idle, waiting or exited (and no client
    /// attached) after which the shed stops itself, instead of the server's
    /// `idle_stop_after`; 0 never stops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 2592000)]
    pub idle_stop_after: Option<u64>,
}

/// Body of `GET /api/sheds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShedList {
    /// Every shed on the server, sorted by name.
    pub sheds: Vec<Shed>,
    /// Workspace volumes kept by `DELETE ?keep_volume=true` whose shed does
    /// not exist (a create of that name reuses the volume), sorted by name.
    /// Absent from older servers, hence the default.
    #[serde(default)]
    pub kept_volumes: Vec<KeptVolume>,
}

/// A workspace volume kept on purpose for a later create of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeptVolume {
    /// The shed name a create must use to get this volume back.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: String,
    /// The Docker volume's name.
    pub volume: String,
    /// When it was kept, if the server could tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_at: Option<DateTime<Utc>>,
}

/// Body of `GET /api/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServerInfo {
    /// The server's configured name.
    pub name: String,
    /// shed-server version.
    pub version: String,
    /// Port the HTTP API listens on.
    pub http_port: u16,
    /// Port the SSH gateway listens on.
    pub ssh_port: u16,
}

/// What a tmux session is doing, as far as a glance can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// At least one client is attached.
    Attached,
    /// Output within the last [`ACTIVE_WINDOW_SECS`] seconds.
    Active,
    /// Neither.
    Idle,
}

/// A session with output more recent than this many seconds is `active`.
pub const ACTIVE_WINDOW_SECS: i64 = 10;

impl SessionStatus {
    /// The status from the attached client count and the time of the last
    /// output: the one rule both the exec path and the live model use.
    pub fn of(attached: u32, output_activity: DateTime<Utc>, now: DateTime<Utc>) -> SessionStatus {
        if attached > 0 {
            SessionStatus::Attached
        } else if (now - output_activity).num_seconds() < ACTIVE_WINDOW_SECS {
            SessionStatus::Active
        } else {
            SessionStatus::Idle
        }
    }
}

impl std::fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionStatus::Attached => "attached",
            SessionStatus::Active => "active",
            SessionStatus::Idle => "idle",
        })
    }
}

/// Which path answered a session request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionSource {
    /// The shed's live tmux control channel (its in-memory model, or a
    /// command sent over it).
    Channel,
    /// A `docker exec` of `tmux`: no channel was up (or `control_mode` is off).
    /// Also what an older server, which sends no `source`, is read as.
    #[default]
    Exec,
}

/// A tmux session inside a shed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// Session name.
    pub name: String,
    /// The shed it runs in.
    pub shed: String,
    /// The server the shed lives on.
    pub server: String,
    /// When tmux created it.
    pub created_at: DateTime<Utc>,
    /// Last input or output.
    pub last_activity: DateTime<Utc>,
    /// Seconds since `last_activity`.
    pub idle_seconds: u64,
    /// Number of attached clients.
    pub attached: u32,
    /// Number of windows.
    pub windows: u32,
    /// Foreground command of the active pane, e.g. `claude` or `bash`.
    pub current_command: String,
    /// Working directory of the active pane.
    pub cwd: String,
    /// attached, active or idle.
    pub status: SessionStatus,
    /// Whether the active pane's command has exited. Its pane is kept, so its
    /// last output can still be read; input to it is refused.
    #[serde(default)]
    pub exited: bool,
    /// The status that command exited with, when it exited (not when a
    /// signal killed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// Which path answered: the control channel or an exec.
    #[serde(default)]
    pub source: SessionSource,
    /// The session's agent and what it is doing.
    #[serde(default)]
    pub agent: agent::AgentInfo,
}

/// Body of `GET /api/sheds/{name}/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Sessions sorted by name.
    pub sessions: Vec<SessionInfo>,
}

/// A shed whose sessions could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShedWarning {
    /// The shed.
    pub shed: String,
    /// What went wrong.
    pub message: String,
}

/// Body of `GET /api/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AllSessions {
    /// Sessions of every running shed, sorted by shed, then session.
    pub sessions: Vec<SessionInfo>,
    /// Sheds that failed or timed out; never dropped silently.
    pub warnings: Vec<ShedWarning>,
}

/// Body of `POST /api/sheds/{name}/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// Session name; see [`validate_session_name`].
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")]
    pub name: String,
    /// Command line run by the session's shell instead of an interactive shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[^\\x00]*[^\\s\\x00][^\\x00]*$")]
    pub command: Option<String>,
    /// Absolute working directory of an existing directory [default: `/workspace`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^/[^\\x00]*$", max_length = 4096)]
    pub cwd: Option<String>,
    /// Extra environment for the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = env_schema)]
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// What the session runs when it is restored after its shed restarts
    /// [default: `shell` without a command, `resume` for an agent's
    /// command, `ask` for any other].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<snapshot::RestorePolicy>,
}

/// The schema of a session's `env`: names are shell variable names, values
/// anything but NUL.
fn env_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z_][A-Za-z0-9_]{0,255}$"))
        .build();
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[^\\x00]*$"));
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .property_names(Some(name))
        .additional_properties(Some(value))
        .build()
}

/// Body of `GET /api/sheds/{name}/sessions/{session}/output`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionOutput {
    /// The session.
    pub session: String,
    /// The shed.
    pub shed: String,
    /// The last lines of the active pane, scrollback included, joined by `\n`.
    pub output: String,
    /// Which path answered: the control channel or an exec.
    #[serde(default)]
    pub source: SessionSource,
}

/// Body of `POST /api/sheds/{name}/sessions/{session}/input`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendInputRequest {
    /// Text typed literally: nothing in it is read as a key name.
    #[schema(pattern = "^[^\\x00]*$")]
    pub text: String,
    /// Press Enter after the text.
    #[serde(default)]
    pub enter: bool,
}

/// Body of `GET /api/ssh-host-key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SshHostKey {
    /// The gateway's public host key, e.g. `ssh-ed25519 AAAA...`.
    pub public_key: String,
    /// The gateway's port.
    pub ssh_port: u16,
    /// A ready `known_hosts` line for the host name the request used.
    pub known_hosts: String,
}

/// A `known_hosts` line for `host:port`, in the form OpenSSH looks up
/// (`[host]:port` for ports other than 22).
pub fn known_hosts_line(host: &str, port: u16, public_key: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if port == 22 {
        format!("{host} {public_key}")
    } else {
        format!("[{host}]:{port} {public_key}")
    }
}

/// Body of `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` (with status 503) while the SSH gateway is down.
    pub status: String,
    /// Tasks alive in the server's runtime (connections, SSH channels, ...),
    /// so leaks show from outside.
    pub alive_tasks: u64,
    /// The SSH gateway: `up`, or `down` while it waits to be restarted.
    #[serde(default)]
    pub gateway: String,
    /// Sheds whose live tmux control channel is attached now; the others'
    /// sessions are read by exec.
    #[serde(default)]
    pub control_channels: u64,
}

/// Machine-readable error codes; the string form is part of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// A shed name does not match the name rule.
    InvalidName,
    /// The request is malformed: bad JSON, wrong types, unknown fields, bad values.
    InvalidRequest,
    /// The requested image does not exist on the server.
    ImageNotFound,
    /// Cloning the requested repository failed; nothing was created.
    CloneFailed,
    /// Missing or wrong bearer token.
    Unauthorized,
    /// No shed with that name.
    ShedNotFound,
    /// A session name broke the session name rule.
    InvalidSessionName,
    /// No tmux session with exactly that name.
    SessionNotFound,
    /// The shed is not running, so its sessions cannot be reached.
    ShedNotRunning,
    /// A session with that name already exists.
    SessionExists,
    /// The shed has as many sessions as the server allows.
    MaxSessions,
    /// The shed's image has no tmux.
    TmuxNotAvailable,
    /// The shed did not answer in time.
    Timeout,
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// A shed with that name already exists (or is being created).
    ShedExists,
    /// Start was asked of a running shed.
    ShedAlreadyRunning,
    /// Stop was asked of a stopped shed.
    ShedAlreadyStopped,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The request body is not declared as JSON.
    UnsupportedMediaType,
    /// The server could not reach the Docker engine.
    DockerUnavailable,
    /// An unexpected server-side failure; details are in the server log.
    Internal,
    /// The request's Host or Origin is not this server's (a cross-site request
    /// or DNS rebinding).
    Forbidden,
    /// The request body did not arrive in time.
    RequestTimeout,
    /// The shed's image lacks a program the request needs; the message names it.
    ToolNotAvailable,
    /// A workspace volume is in the way of a create: left over by a failed
    /// delete, or not this server's. Nothing was created; the message says what to do.
    VolumeConflict,
    /// A delete removed the container but not its volume; the message says how to finish.
    DeleteIncomplete,
    /// The session's command has exited, so it takes no input.
    SessionExited,
    /// A WebSocket endpoint was called without a WebSocket upgrade.
    UpgradeRequired,
    /// The server has as many browser terminals open as it allows.
    TooManyTerminals,
    /// `shed ui` could not get an answer from the server it relays to.
    ServerUnreachable,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidName => "INVALID_NAME",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::ImageNotFound => "IMAGE_NOT_FOUND",
            ErrorCode::CloneFailed => "CLONE_FAILED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::ShedNotFound => "SHED_NOT_FOUND",
            ErrorCode::InvalidSessionName => "INVALID_SESSION_NAME",
            ErrorCode::SessionNotFound => "SESSION_NOT_FOUND",
            ErrorCode::ShedNotRunning => "SHED_NOT_RUNNING",
            ErrorCode::SessionExists => "SESSION_EXISTS",
            ErrorCode::MaxSessions => "MAX_SESSIONS",
            ErrorCode::TmuxNotAvailable => "TMUX_NOT_AVAILABLE",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::ShedExists => "SHED_EXISTS",
            ErrorCode::ShedAlreadyRunning => "SHED_ALREADY_RUNNING",
            ErrorCode::ShedAlreadyStopped => "SHED_ALREADY_STOPPED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::DockerUnavailable => "DOCKER_UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::ToolNotAvailable => "TOOL_NOT_AVAILABLE",
            ErrorCode::VolumeConflict => "VOLUME_CONFLICT",
            ErrorCode::DeleteIncomplete => "DELETE_INCOMPLETE",
            ErrorCode::SessionExited => "SESSION_EXITED",
            ErrorCode::UpgradeRequired => "UPGRADE_REQUIRED",
            ErrorCode::TooManyTerminals => "TOO_MANY_TERMINALS",
            ErrorCode::ServerUnreachable => "SERVER_UNREACHABLE",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The inner part of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation, safe to show to a user.
    pub message: String,
}

/// Every error response: `{"error":{"code":"...","message":"..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// Builds an error body from a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_documented_shape() {
        let body = ErrorBody::new(ErrorCode::ShedNotFound, "no shed named x");
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error":{"code":"SHED_NOT_FOUND","message":"no shed named x"}})
        );
    }

    #[test]
    fn error_code_serde_matches_as_str() {
        for code in [
            ErrorCode::InvalidName,
            ErrorCode::ShedAlreadyRunning,
            ErrorCode::DockerUnavailable,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::InvalidSessionName,
            ErrorCode::TmuxNotAvailable,
            ErrorCode::Forbidden,
            ErrorCode::RequestTimeout,
            ErrorCode::UpgradeRequired,
            ErrorCode::TooManyTerminals,
            ErrorCode::ServerUnreachable,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
        }
    }

    #[test]
    fn create_request_rejects_unknown_fields() {
        let err = serde_json::from_str::<CreateShedRequest>(r#"{"name":"a","imgae":"x"}"#);
        assert!(err.is_err());
    }
}
