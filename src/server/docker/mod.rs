//! [`ShedBackend`] over a real Docker engine, through bollard.

mod channels;
mod exec;
mod lifecycle;
mod snapshots;
mod tmux;
pub mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, Mount, MountType,
    MountVolumeOptions, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions, StopContainerOptions,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::api::{KeptVolume, SessionInfo, SessionSource, Shed, ShedStatus};
use crate::server::backend::{BackendError, NewSession, NewShed, ShedBackend};
use crate::server::config::ServerConfig;
use crate::server::exec::{ExecRequest, ExecSession, InteractiveExec, OutputChunk, TtySize};
use crate::server::tmux::{self as tmux_text, TmuxFailure};

/// Seconds Docker waits for a shed to stop before killing it.
const STOP_TIMEOUT_SECS: i32 = 10;
/// Per-request timeout on the Docker API; a hung engine must not hang the API.
const DOCKER_TIMEOUT_SECS: u64 = 60;
/// Upper bound on a create's `git clone`.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);
/// Read buffer for the output stream of an interactive exec (an SSH
/// session or port forward): bulk output (a build log, `cat` of a big file)
/// moves in far fewer, larger SSH packets with it (bench row 5).
const INTERACTIVE_READ_CAPACITY: usize = 256 * 1024;
/// Read buffer for every other exec: captured commands and the control
/// channels. Such a buffer lives as long as its exec and its pages are
/// touched as the stream moves through it, so at 256 KiB the control
/// channels alone held some 25 MB at 100 sheds (bench row 14); larger
/// frames still grow it while they pass.
const EXEC_READ_CAPACITY: usize = 8 * 1024;
/// How much of a failed command's output is kept for the error message.
const ERROR_TAIL_BYTES: usize = 800;
/// Most bytes of each stream [`DockerBackend::exec_capture`] keeps (the
/// tail): a hostile git server or a broken tmux must not grow the server's
/// memory. Room for `capture-pane` of `MAX_OUTPUT_LINES` lines of a wide pane.
pub const EXEC_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;
/// Directory under `data_dir` recording the volumes kept on purpose.
const KEPT_VOLUMES_DIR: &str = "kept-volumes";
/// How long a create that finds an unadoptable volume waits for a racing
/// create's container (another server sharing the prefix) to show up before
/// calling the volume a leftover.
const CREATE_RACE_GRACE: Duration = Duration::from_secs(2);
/// How long killing a timed-out exec may take before it is left to Docker.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a [`DockerBackend`] cannot be built from the server config.
#[derive(Debug, Error)]
pub enum SetupError {
    /// The `env_file` cannot be read or parsed.
    #[error(transparent)]
    EnvFile(#[from] crate::server::config::EnvFileError),
    /// The `screen_rules` overrides do not load.
    #[error(transparent)]
    Rules(#[from] crate::server::agent::rules::RulesError),
}

/// Docker object names and label keys for one server, derived from its
/// `isolation_prefix` so that servers sharing an engine never see each
/// other's sheds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    prefix: Option<String>,
    label_ns: String,
}

impl Naming {
    /// Naming for an optional isolation prefix.
    pub fn new(prefix: Option<&str>) -> Naming {
        let label_ns = match prefix {
            Some(p) => format!("{p}.shed"),
            None => "shed".to_string(),
        };
        Naming {
            prefix: prefix.map(str::to_string),
            label_ns,
        }
    }

    /// Container name of a shed: `shed-NAME`, or `PREFIX.shed-NAME` with a
    /// prefix. Prefixes and names are `[a-z0-9-]`, so the `.` cannot occur in
    /// either and no two (prefix, name) pairs share a name; with `-` there,
    /// prefix `p` with shed `shed-x` and prefix `p-shed` with shed `x` did.
    pub fn container(&self, shed: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}.shed-{shed}"),
            None => format!("shed-{shed}"),
        }
    }

    /// The container name an older server with this prefix gave shed
    /// `shed` (`PREFIX-shed-NAME`); `None` without a prefix, whose names
    /// never changed. Such names can collide, so only labels tell whose it is.
    pub fn legacy_container(&self, shed: &str) -> Option<String> {
        self.prefix.as_ref().map(|p| format!("{p}-shed-{shed}"))
    }

    /// Workspace volume name of a shed: the container name + `-workspace`.
    pub fn volume(&self, shed: &str) -> String {
        format!("{}-workspace", self.container(shed))
    }

    /// Label key marking a shed (`shed`, or `PREFIX.shed`); the value is `true`.
    pub fn marker(&self) -> &str {
        &self.label_ns
    }

    /// A namespaced label key such as `shed.name`.
    pub fn label(&self, key: &str) -> String {
        format!("{}.{key}", self.label_ns)
    }

    /// Docker filter value selecting this server's objects.
    pub fn filter(&self) -> String {
        format!("{}=true", self.label_ns)
    }
}

/// Output of a command run to completion inside a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit status.
    pub exit_code: i64,
    /// What it wrote to stdout: the last [`EXEC_OUTPUT_LIMIT`] bytes.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr: the last [`EXEC_OUTPUT_LIMIT`] bytes.
    pub stderr: Vec<u8>,
    /// Whether earlier output was dropped to stay within the limit.
    pub truncated: bool,
}

/// The last `limit` bytes written to it.
struct Tail {
    bytes: std::collections::VecDeque<u8>,
    limit: usize,
    dropped: bool,
}

impl Tail {
    fn new(limit: usize) -> Tail {
        Tail {
            bytes: std::collections::VecDeque::new(),
            limit,
            dropped: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let chunk = if chunk.len() > self.limit {
            self.dropped = true;
            &chunk[chunk.len() - self.limit..]
        } else {
            chunk
        };
        let excess = (self.bytes.len() + chunk.len()).saturating_sub(self.limit);
        if excess > 0 {
            self.dropped = true;
            self.bytes.drain(..excess);
        }
        self.bytes.extend(chunk);
    }

    fn into_vec(self) -> Vec<u8> {
        self.bytes.into()
    }
}

/// Sheds as Docker containers with a workspace volume each.
pub struct DockerBackend {
    endpoint: String,
    client: StdMutex<Option<Docker>>,
    /// Held while a connect is under way; others answer 503 meanwhile.
    connecting: Mutex<()>,
    naming: Naming,
    server_name: String,
    mounts: Vec<Mount>,
    env: Vec<String>,
    container_user: Option<String>,
    /// Names with a create under way, so two creates of one name cannot interleave.
    creating: StdMutex<HashSet<String>>,
    /// One empty file per volume kept on purpose by `delete --keep-volume`
    /// (Docker's volume labels cannot be changed afterwards).
    kept_dir: PathBuf,
    /// The tmux control channels, one per running shed.
    channels: channels::Channels,
    /// Snapshot settings and per-shed locks.
    snapshots: snapshots::SnapshotState,
}

/// Removes a name from the in-progress set when the create ends, however it ends.
struct CreatingGuard<'a> {
    set: &'a StdMutex<HashSet<String>>,
    name: String,
}

impl Drop for CreatingGuard<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.name);
    }
}

impl DockerBackend {
    /// Builds a backend from the server config. It does not connect yet:
    /// the server must start, and keep running, while Docker is down.
    pub fn new(config: &ServerConfig) -> Result<DockerBackend, SetupError> {
        let mounts = config
            .mounts
            .iter()
            .map(|m| Mount {
                source: Some(m.source.to_string_lossy().into_owned()),
                target: Some(m.target.clone()),
                typ: Some(MountType::BIND),
                read_only: Some(m.readonly),
                ..Default::default()
            })
            .collect();
        // The built-in rules with the config's overrides, shared by every
        // shed's engine, the exec path and snapshots.
        let rules = std::sync::Arc::new(config.rules()?);
        Ok(DockerBackend {
            endpoint: config.docker_endpoint(),
            client: StdMutex::new(None),
            connecting: Mutex::new(()),
            naming: Naming::new(config.isolation_prefix.as_deref()),
            server_name: config.name.clone(),
            mounts,
            env: config.shed_env()?,
            container_user: config.container_user.clone().filter(|u| !u.is_empty()),
            creating: StdMutex::new(HashSet::new()),
            kept_dir: config.data_dir.join(KEPT_VOLUMES_DIR),
            channels: channels::Channels::new(config.control_mode, rules.clone()),
            snapshots: snapshots::SnapshotState::new(config, rules),
        })
    }

    /// The naming scheme in use.
    pub fn naming(&self) -> &Naming {
        &self.naming
    }

    /// A connected client with a negotiated API version. Connecting is retried
    /// on every call until it succeeds, which is how the server recovers by
    /// itself when Docker comes back.
    ///
    /// Only one connect runs at a time, and requests arriving meanwhile get
    /// [`BackendError::DockerUnavailable`] at once: with a hung engine they
    /// would otherwise queue behind one connect timeout after another.
    pub async fn docker(&self) -> Result<Docker, BackendError> {
        if let Some(docker) = self.connected() {
            return Ok(docker);
        }
        let Ok(_connecting) = self.connecting.try_lock() else {
            return Err(BackendError::DockerUnavailable(format!(
                "{}: a reconnect is under way",
                self.endpoint
            )));
        };
        // Another connect may have finished between the check and the lock.
        if let Some(docker) = self.connected() {
            return Ok(docker);
        }
        let docker = if let Some(path) = self.endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, DOCKER_TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(&self.endpoint, DOCKER_TIMEOUT_SECS, API_DEFAULT_VERSION)
        }
        .map_err(|e| BackendError::DockerUnavailable(format!("{}: {e}", self.endpoint)))?;
        // Older engines refuse requests at a newer API version than their own.
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| {
                BackendError::DockerUnavailable(format!(
                    "{}: version check timed out",
                    self.endpoint
                ))
            })?
            .map_err(|e| docker_error(e, &self.endpoint))?;
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(docker.clone());
        Ok(docker)
    }

    /// The shared client, once a connect has succeeded; never connects.
    pub fn connected(&self) -> Option<Docker> {
        self.client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Inspects a shed's container; `None` when there is none, or it is not
    /// ours. A container an older server named `PREFIX-shed-NAME` is renamed
    /// to the current name first, when its labels say it is this shed.
    async fn inspect(
        &self,
        docker: &Docker,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, BackendError> {
        let container = self.naming.container(name);
        match self.inspect_ours(docker, &container, name).await? {
            Some(info) => Ok(Some(info)),
            None => match self.naming.legacy_container(name) {
                Some(legacy) => self.rename_legacy(docker, &legacy, name).await,
                None => Ok(None),
            },
        }
    }

    /// Inspects a shed's container, or [`BackendError::ShedNotFound`].
    async fn inspect_required(
        &self,
        docker: &Docker,
        name: &str,
    ) -> Result<ContainerInspectResponse, BackendError> {
        self.inspect(docker, name)
            .await?
            .ok_or_else(|| BackendError::ShedNotFound(name.into()))
    }

    /// Inspects `container`; `None` unless it exists and its labels say it
    /// is this server's shed `name`.
    async fn inspect_ours(
        &self,
        docker: &Docker,
        container: &str,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, BackendError> {
        match docker.inspect_container(container, None).await {
            Ok(info) => {
                let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
                let ours = labels.is_some_and(|l| self.is_ours(name, l));
                Ok(ours.then_some(info))
            }
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(docker_error(e, container)),
        }
    }

    /// Moves an older server's container of shed `name` to the current name.
    async fn rename_legacy(
        &self,
        docker: &Docker,
        legacy: &str,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, BackendError> {
        if self.inspect_ours(docker, legacy, name).await?.is_none() {
            return Ok(None);
        }
        let container = self.naming.container(name);
        let opts = bollard::query_parameters::RenameContainerOptions {
            name: container.clone(),
        };
        match docker.rename_container(legacy, opts).await {
            Ok(()) => {
                tracing::info!(shed = name, from = legacy, to = %container, "renamed a shed's container to the current naming")
            }
            // Another request renamed it meanwhile.
            Err(e) if matches!(status_of(&e), Some(404 | 409)) => {}
            Err(e) => return Err(docker_error(e, legacy)),
        }
        self.inspect_ours(docker, &container, name).await
    }

    fn shed_from_inspect(&self, info: ContainerInspectResponse) -> Shed {
        let config = info.config.unwrap_or_default();
        let labels = config.labels.unwrap_or_default();
        let state = info.state.unwrap_or_default();
        self.shed_from_parts(
            &labels,
            shed_status(state.status.as_ref().map(AsRef::as_ref)),
            config.image.unwrap_or_default(),
            info.id.unwrap_or_default(),
            None,
        )
    }

    fn shed_from_parts(
        &self,
        labels: &HashMap<String, String>,
        status: ShedStatus,
        image: String,
        container_id: String,
        docker_created: Option<i64>,
    ) -> Shed {
        let created_at = labels
            .get(&self.naming.label("created"))
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
            .or_else(|| docker_created.and_then(|secs| DateTime::from_timestamp(secs, 0)))
            .unwrap_or_default();
        Shed {
            name: labels
                .get(&self.naming.label("name"))
                .cloned()
                .unwrap_or_default(),
            status,
            created_at,
            image,
            repo: labels
                .get(&self.naming.label("repo"))
                .filter(|r| !r.is_empty())
                .cloned(),
            container_id,
            server: labels
                .get(&self.naming.label("server"))
                .cloned()
                .unwrap_or_else(|| self.server_name.clone()),
            // A label that does not parse (set by hand) is as if absent.
            idle_stop_after: labels
                .get(&self.naming.label("idle_stop_after"))
                .and_then(|s| s.parse().ok())
                .filter(|secs| crate::api::idle::check_idle_stop_after(*secs).is_ok()),
            warnings: Vec::new(),
        }
    }

    /// Whether volume labels say the volume is this server's, for shed `name`.
    fn is_ours(&self, name: &str, labels: &HashMap<String, String>) -> bool {
        labels
            .get(self.naming.marker())
            .is_some_and(|v| v == "true")
            && labels
                .get(&self.naming.label("name"))
                .is_some_and(|v| v == name)
    }
}

/// A shed's status from its container's state, as Docker names it in both
/// inspect (`State.Status`) and list (`State`) answers.
fn shed_status(state: Option<&str>) -> ShedStatus {
    match state {
        Some("running") => ShedStatus::Running,
        Some("restarting") => ShedStatus::Starting,
        Some("created" | "exited" | "paused" | "stopping") => ShedStatus::Stopped,
        _ => ShedStatus::Error,
    }
}

// Thin: each operation lives with its kind, in lifecycle.rs and tmux.rs.
#[async_trait]
impl ShedBackend for DockerBackend {
    async fn list(&self) -> Result<Vec<Shed>, BackendError> {
        self.list_sheds().await
    }

    async fn get(&self, name: &str) -> Result<Shed, BackendError> {
        self.inspect_shed(name).await
    }

    async fn kept_volumes(&self) -> Result<Vec<KeptVolume>, BackendError> {
        self.list_kept_volumes().await
    }

    async fn create(&self, new: NewShed) -> Result<Shed, BackendError> {
        let shed = self.create_shed(new).await?;
        // A kept volume brings its snapshot along.
        self.restore_after_start(&shed.name).await;
        self.channels.open(&shed.name);
        Ok(shed)
    }

    async fn delete(&self, name: &str, keep_volume: bool) -> Result<(), BackendError> {
        if keep_volume {
            self.save_before_stop(name).await;
        }
        self.channels.close(name);
        self.delete_shed(name, keep_volume).await
    }

    async fn start(&self, name: &str) -> Result<Shed, BackendError> {
        let shed = self.start_shed(name).await?;
        self.restore_after_start(name).await;
        self.channels.open(name);
        Ok(shed)
    }

    async fn stop(&self, name: &str) -> Result<Shed, BackendError> {
        self.save_before_stop(name).await;
        self.channels.close(name);
        self.stop_shed(name).await
    }

    async fn snapshot(
        &self,
        shed: &str,
    ) -> Result<crate::api::snapshot::SnapshotView, BackendError> {
        self.snapshot_view(shed).await
    }

    async fn restore_snapshot(
        &self,
        shed: &str,
        dry_run: bool,
    ) -> Result<crate::api::snapshot::RestoreReport, BackendError> {
        self.restore_sessions(shed, true, dry_run).await
    }

    async fn list_sessions(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError> {
        self.tmux_sessions(shed).await
    }

    async fn list_sessions_of_running(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError> {
        self.tmux_sessions_of_running(shed).await
    }

    fn engine_connected(&self) -> bool {
        self.connected().is_some()
    }

    fn control_channels(&self) -> usize {
        self.channels.attached_count()
    }

    fn rules_version(&self) -> String {
        self.channels.rules().version().to_string()
    }

    async fn live_sessions(&self, shed: &str) -> Option<Vec<SessionInfo>> {
        self.model_sessions(shed)
    }

    async fn create_session(
        &self,
        shed: &str,
        new: NewSession,
    ) -> Result<SessionInfo, BackendError> {
        let session = self.tmux_new_session(shed, new).await?;
        self.save_after_create(shed).await;
        Ok(session)
    }

    async fn kill_session(&self, shed: &str, session: &str) -> Result<(), BackendError> {
        self.tmux_kill_session(shed, session).await?;
        // Killed on purpose: out of the snapshot at once, never restored.
        if let Err(e) = self
            .save_snapshot(shed, crate::server::snapshot::SaveReason::Kill)
            .await
        {
            tracing::warn!(shed, error = %e, "snapshot after a kill");
        }
        Ok(())
    }

    async fn session_output(
        &self,
        shed: &str,
        session: &str,
        lines: usize,
    ) -> Result<String, BackendError> {
        self.tmux_capture(shed, session, lines)
            .await
            .map(|(text, _)| text)
    }

    async fn session_output_from(
        &self,
        shed: &str,
        session: &str,
        lines: usize,
    ) -> Result<(String, SessionSource), BackendError> {
        self.tmux_capture(shed, session, lines).await
    }

    async fn session_agent(
        &self,
        shed: &str,
        session: &str,
    ) -> Result<crate::api::agent::AgentExplanation, BackendError> {
        self.tmux_session_agent(shed, session).await
    }

    async fn send_input(
        &self,
        shed: &str,
        session: &str,
        text: &str,
        enter: bool,
    ) -> Result<(), BackendError> {
        self.tmux_send(shed, session, text, enter).await
    }

    async fn exec_as_root(
        &self,
        shed: &str,
        cmd: Vec<String>,
        limit: Duration,
    ) -> Result<crate::server::backend::CommandOutput, BackendError> {
        let output = self
            .exec_capture_within_as(shed, cmd, Vec::new(), Some("root".into()), limit)
            .await?
            .ok_or_else(|| BackendError::Timeout(shed.into()))?;
        Ok(crate::server::backend::CommandOutput {
            exit_code: output.exit_code,
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// The HTTP status of a Docker API error response, if it was one.
fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Classifies a bollard error: transport failures mean Docker is unavailable,
/// anything else is internal. `what` names the object, for the log.
fn docker_error(e: bollard::errors::Error, what: &str) -> BackendError {
    use bollard::errors::Error as E;
    match e {
        E::IOError { .. }
        | E::HyperResponseError { .. }
        | E::HyperLegacyError { .. }
        | E::HttpClientError { .. }
        | E::RequestTimeoutError
        | E::SocketNotFoundError(_) => BackendError::DockerUnavailable(format!("{what}: {e}")),
        other => BackendError::Internal(format!("docker: {what}: {other}")),
    }
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_without_prefix() {
        let n = Naming::new(None);
        assert_eq!(n.container("demo"), "shed-demo");
        assert_eq!(n.volume("demo"), "shed-demo-workspace");
        assert_eq!(n.marker(), "shed");
        assert_eq!(n.label("name"), "shed.name");
        assert_eq!(n.filter(), "shed=true");
    }

    #[test]
    fn naming_with_prefix_scopes_everything() {
        let n = Naming::new(Some("t1"));
        assert_eq!(n.container("demo"), "t1.shed-demo");
        assert_eq!(n.volume("demo"), "t1.shed-demo-workspace");
        // Once the same name; now apart, and apart from every unprefixed name.
        assert_ne!(
            Naming::new(Some("p")).container("shed-x"),
            Naming::new(Some("p-shed")).container("x")
        );
        assert_ne!(
            Naming::new(None).container("t1-shed-demo"),
            n.container("demo")
        );
        assert_eq!(n.label("created"), "t1.shed.created");
        assert_eq!(n.filter(), "t1.shed=true");
    }

    #[test]
    fn one_status_mapping_for_list_and_inspect() {
        use bollard::models::{ContainerStateStatusEnum as I, ContainerSummaryStateEnum as L};
        let both = |i: I, l: L| {
            let status = shed_status(Some(i.as_ref()));
            assert_eq!(status, shed_status(Some(l.as_ref())));
            status
        };
        assert_eq!(both(I::RUNNING, L::RUNNING), ShedStatus::Running);
        assert_eq!(both(I::RESTARTING, L::RESTARTING), ShedStatus::Starting);
        for (i, l) in [
            (I::CREATED, L::CREATED),
            (I::EXITED, L::EXITED),
            (I::PAUSED, L::PAUSED),
            (I::STOPPING, L::STOPPING),
        ] {
            assert_eq!(both(i, l), ShedStatus::Stopped);
        }
        assert_eq!(both(I::DEAD, L::DEAD), ShedStatus::Error);
        assert_eq!(both(I::REMOVING, L::REMOVING), ShedStatus::Error);
        assert_eq!(shed_status(None), ShedStatus::Error);
    }

    #[test]
    fn exec_tail_keeps_the_last_bytes_only() {
        let mut t = Tail::new(4);
        t.push(b"ab");
        assert!(!t.dropped);
        t.push(b"cde");
        t.push(b"");
        assert!(t.dropped);
        let mut big = Tail::new(3);
        big.push(b"0123456789");
        assert_eq!(big.into_vec(), b"789");
        assert_eq!(t.into_vec(), b"bcde");
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("short", 10), "short");
        let t = tail("ééééé", 3);
        assert!(t.starts_with("...") && t.ends_with('é'));
    }
}
