//! [`ShedBackend`] over a real Docker engine, through bollard.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, HostConfig, Mount, MountType,
    MountVolumeOptions, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, RemoveVolumeOptions,
    StopContainerOptions,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::api::{SessionInfo, Shed, ShedStatus};
use crate::server::backend::{BackendError, NewSession, NewShed, ShedBackend};
use crate::server::config::ServerConfig;
use crate::server::tmux::{self, TmuxFailure};

/// Seconds Docker waits for a shed to stop before killing it.
const STOP_TIMEOUT_SECS: i32 = 10;
/// Per-request timeout on the Docker API; a hung engine must not hang the API.
const DOCKER_TIMEOUT_SECS: u64 = 60;
/// Upper bound on a create's `git clone`.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);
/// Read buffer for an exec's output stream.
const EXEC_READ_CAPACITY: usize = 256 * 1024;
/// How much of a failed command's output is kept for the error message.
const ERROR_TAIL_BYTES: usize = 800;

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

    /// Container name of a shed: `[PREFIX-]shed-NAME`.
    pub fn container(&self, shed: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}-shed-{shed}"),
            None => format!("shed-{shed}"),
        }
    }

    /// Workspace volume name of a shed: `[PREFIX-]shed-NAME-workspace`.
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
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Sheds as Docker containers with a workspace volume each.
pub struct DockerBackend {
    endpoint: String,
    client: Mutex<Option<Docker>>,
    naming: Naming,
    server_name: String,
    mounts: Vec<Mount>,
    env: Vec<String>,
    container_user: Option<String>,
    /// Names with a create under way, so two creates of one name cannot interleave.
    creating: StdMutex<HashSet<String>>,
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
    pub fn new(config: &ServerConfig) -> Result<DockerBackend, String> {
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
        Ok(DockerBackend {
            endpoint: config.docker_endpoint(),
            client: Mutex::new(None),
            naming: Naming::new(config.isolation_prefix.as_deref()),
            server_name: config.name.clone(),
            mounts,
            env: config.shed_env()?,
            container_user: config.container_user.clone().filter(|u| !u.is_empty()),
            creating: StdMutex::new(HashSet::new()),
        })
    }

    /// The naming scheme in use.
    pub fn naming(&self) -> &Naming {
        &self.naming
    }

    /// A connected client with a negotiated API version. Connecting is retried
    /// on every call until it succeeds, which is how the server recovers by
    /// itself when Docker comes back.
    pub async fn docker(&self) -> Result<Docker, BackendError> {
        let mut slot = self.client.lock().await;
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
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
        *slot = Some(docker.clone());
        Ok(docker)
    }

    /// Runs `cmd` in shed `shed` as the container user and collects its
    /// output and exit status.
    pub async fn exec_capture(
        &self,
        shed: &str,
        cmd: Vec<String>,
        env: Vec<String>,
    ) -> Result<ExecOutput, BackendError> {
        let request = ExecRequest {
            cmd,
            env,
            tty: false,
        };
        let InteractiveExec {
            id,
            output: mut stream,
            mut input,
        } = self.start_exec(shed, request).await?;
        // Nothing to send: EOF on stdin right away, as for a command in a pipe.
        let _ = input.shutdown().await;
        drop(input);
        let mut output = ExecOutput::default();
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(|e| docker_error(e, shed))? {
                LogOutput::StdErr { message } => output.stderr.extend_from_slice(&message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    output.stdout.extend_from_slice(&message)
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        output.exit_code = self.wait_exec_exit(&id).await.unwrap_or(-1);
        Ok(output)
    }

    /// The exit code of an exec whose output has closed. Docker marks the
    /// exec finished a moment after its streams close, so this polls briefly.
    pub async fn wait_exec_exit(&self, id: &str) -> Option<i64> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match self.exec_exit_code(id).await {
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

    /// Inspects a shed's container; `None` when there is none, or it is not ours.
    async fn inspect(
        &self,
        docker: &Docker,
        name: &str,
    ) -> Result<Option<bollard::models::ContainerInspectResponse>, BackendError> {
        let container = self.naming.container(name);
        match docker.inspect_container(&container, None).await {
            Ok(info) => {
                let ours = info
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get(self.naming.marker()))
                    .is_some_and(|v| v == "true");
                Ok(ours.then_some(info))
            }
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(docker_error(e, &container)),
        }
    }

    fn shed_from_inspect(&self, info: bollard::models::ContainerInspectResponse) -> Shed {
        let config = info.config.unwrap_or_default();
        let labels = config.labels.unwrap_or_default();
        let state = info.state.unwrap_or_default();
        let status = match state.status {
            Some(ContainerStateStatusEnum::RUNNING) => ShedStatus::Running,
            Some(ContainerStateStatusEnum::RESTARTING) => ShedStatus::Starting,
            Some(
                ContainerStateStatusEnum::CREATED
                | ContainerStateStatusEnum::EXITED
                | ContainerStateStatusEnum::PAUSED
                | ContainerStateStatusEnum::STOPPING,
            ) => ShedStatus::Stopped,
            _ => ShedStatus::Error,
        };
        self.shed_from_parts(
            &labels,
            status,
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
        }
    }

    fn labels(&self, new: &NewShed) -> HashMap<String, String> {
        HashMap::from([
            (self.naming.marker().to_string(), "true".to_string()),
            (self.naming.label("name"), new.name.clone()),
            (
                self.naming.label("created"),
                Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            ),
            (
                self.naming.label("repo"),
                new.repo.as_ref().map(|r| r.url.clone()).unwrap_or_default(),
            ),
            (self.naming.label("server"), self.server_name.clone()),
        ])
    }

    fn container_body(
        &self,
        new: &NewShed,
        labels: HashMap<String, String>,
    ) -> ContainerCreateBody {
        let volume_labels = HashMap::from([
            (self.naming.marker().to_string(), "true".to_string()),
            (self.naming.label("name"), new.name.clone()),
        ]);
        let mut mounts = vec![Mount {
            source: Some(self.naming.volume(&new.name)),
            target: Some("/workspace".into()),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                labels: Some(volume_labels),
                ..Default::default()
            }),
            ..Default::default()
        }];
        mounts.extend(self.mounts.iter().cloned());
        let mut env = vec![
            "LANG=C.UTF-8".to_string(),
            format!("SHED_NAME={}", new.name),
        ];
        env.extend(self.env.iter().cloned());
        ContainerCreateBody {
            image: Some(new.image.clone()),
            hostname: Some(new.name.clone()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            working_dir: Some("/workspace".into()),
            user: self.container_user.clone(),
            env: Some(env),
            labels: Some(labels),
            host_config: Some(HostConfig {
                // An init reaps the zombies that agents and shells leave behind.
                init: Some(true),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                mounts: Some(mounts),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Removes what a failed create made. Errors are logged, not returned:
    /// the caller is already reporting the failure that started the rollback.
    async fn rollback(&self, docker: &Docker, name: &str, container: bool, volume: bool) {
        if container {
            let opts = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            if let Err(e) = docker
                .remove_container(&self.naming.container(name), Some(opts))
                .await
            {
                tracing::error!(shed = name, error = %e, "rollback: removing container failed");
            }
        }
        if volume {
            if let Err(e) = docker
                .remove_volume(&self.naming.volume(name), None::<RemoveVolumeOptions>)
                .await
            {
                tracing::error!(shed = name, error = %e, "rollback: removing volume failed");
            }
        }
    }

    async fn clone_repo(&self, new: &NewShed) -> Result<(), BackendError> {
        let Some(repo) = &new.repo else {
            return Ok(());
        };
        let cmd = vec![
            "git".to_string(),
            "clone".into(),
            "--".into(),
            repo.url.clone(),
            format!("/workspace/{}", repo.dir),
        ];
        // No prompt may wait for credentials nobody will type.
        let env = vec![
            "GIT_TERMINAL_PROMPT=0".to_string(),
            "GIT_SSH_COMMAND=ssh -o BatchMode=yes".into(),
        ];
        let run = self.exec_capture(&new.name, cmd, env);
        let output = tokio::time::timeout(CLONE_TIMEOUT, run)
            .await
            .map_err(|_| BackendError::CloneFailed {
                repo: repo.url.clone(),
                detail: "timed out".into(),
            })??;
        if output.exit_code == 0 {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let detail = match output.exit_code {
            126 | 127 => "git is not installed in the image".to_string(),
            _ => tail(text.trim(), ERROR_TAIL_BYTES),
        };
        Err(BackendError::CloneFailed {
            repo: repo.url.clone(),
            detail,
        })
    }
}

/// What to run for an interactive exec (the SSH gateway's shells and commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// argv of the process.
    pub cmd: Vec<String>,
    /// Extra `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// Allocate a TTY (the client asked for a pty).
    pub tty: bool,
}

/// A started exec with its streams attached.
pub struct InteractiveExec {
    /// Docker's exec id, for resize, inspect and signals.
    pub id: String,
    /// stdout/stderr (or the console, with a TTY).
    pub output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    /// The process's stdin; shutting it down delivers EOF.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl DockerBackend {
    /// Makes sure shed `name` runs: starts it if stopped, then waits up to
    /// `wait` for Docker to report it running.
    pub async fn ensure_running(&self, name: &str, wait: Duration) -> Result<(), BackendError> {
        let shed = self.get(name).await?;
        if shed.status == ShedStatus::Running {
            return Ok(());
        }
        match self.start(name).await {
            Ok(_) | Err(BackendError::AlreadyRunning(_)) => {}
            Err(e) => return Err(e),
        }
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if self.get(name).await?.status == ShedStatus::Running {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Go on regardless: the exec itself reports what is wrong, if anything.
        Ok(())
    }

    /// Starts an attached exec in shed `name` as the configured container user.
    pub async fn start_exec(
        &self,
        name: &str,
        request: ExecRequest,
    ) -> Result<InteractiveExec, BackendError> {
        let docker = self.docker().await?;
        let container = self.naming.container(name);
        let exec = docker
            .create_exec(
                &container,
                CreateExecOptions {
                    cmd: Some(request.cmd),
                    env: Some(request.env),
                    user: self.container_user.clone(),
                    working_dir: Some("/workspace".to_string()),
                    tty: Some(request.tty),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match status_of(&e) {
                Some(404) => BackendError::ShedNotFound(name.into()),
                Some(409) => BackendError::ShedNotRunning(name.into()),
                _ => docker_error(e, &container),
            })?;
        let started = docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    tty: request.tty,
                    // bollard reads 8 KiB at a time by default; bulk output
                    // (a build log, `cat` of a big file) moves in far fewer,
                    // larger SSH packets with a bigger buffer.
                    output_capacity: Some(EXEC_READ_CAPACITY),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| docker_error(e, &container))?;
        match started {
            StartExecResults::Attached { output, input } => Ok(InteractiveExec {
                id: exec.id,
                output,
                input,
            }),
            StartExecResults::Detached => Err(BackendError::Internal(
                "exec started detached although attach was requested".into(),
            )),
        }
    }

    /// Resizes an exec's TTY.
    pub async fn resize_exec(&self, id: &str, cols: u16, rows: u16) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let opts = bollard::query_parameters::ResizeExecOptions {
            w: i32::from(cols.max(1)),
            h: i32::from(rows.max(1)),
        };
        docker
            .resize_exec(id, opts)
            .await
            .map_err(|e| docker_error(e, id))
    }

    /// The exit code of a finished exec; `None` while it still runs.
    pub async fn exec_exit_code(&self, id: &str) -> Result<Option<i64>, BackendError> {
        let docker = self.docker().await?;
        let inspect = docker
            .inspect_exec(id)
            .await
            .map_err(|e| docker_error(e, id))?;
        Ok(match inspect.running {
            Some(true) => None,
            _ => Some(inspect.exit_code.unwrap_or(-1)),
        })
    }

    /// Sends `signal` (a name such as `INT`) to an exec's process, and to its
    /// process group when it leads one, as `kill` inside the container.
    ///
    /// Docker reports the exec's pid in the host's pid namespace; the
    /// container's pid comes from the `NSpid` line of `/proc/PID/status`, so
    /// this needs shed-server to run on the Docker host, as it normally does.
    pub async fn signal_exec(
        &self,
        name: &str,
        id: &str,
        signal: &str,
    ) -> Result<(), BackendError> {
        if !signal.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(BackendError::Internal(format!(
                "bad signal name {signal:?}"
            )));
        }
        let docker = self.docker().await?;
        let inspect = docker
            .inspect_exec(id)
            .await
            .map_err(|e| docker_error(e, id))?;
        let (Some(true), Some(host_pid)) = (inspect.running, inspect.pid) else {
            return Ok(());
        };
        let status = tokio::fs::read_to_string(format!("/proc/{host_pid}/status"))
            .await
            .map_err(|e| BackendError::Internal(format!("reading /proc/{host_pid}/status: {e}")))?;
        let pid = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|pids| pids.split_whitespace().last())
            .and_then(|p| p.parse::<u32>().ok())
            .ok_or_else(|| BackendError::Internal(format!("no NSpid for host pid {host_pid}")))?;
        // The group first (a shell and its jobs, like a terminal hangup), then
        // the process alone when it does not lead a group.
        let script = format!("kill -s {signal} -- -{pid} 2>/dev/null || kill -s {signal} {pid}");
        let cmd = vec!["/bin/sh".to_string(), "-c".into(), script];
        self.exec_capture(name, cmd, Vec::new()).await.map(|_| ())
    }
}

#[async_trait]
impl ShedBackend for DockerBackend {
    async fn list(&self) -> Result<Vec<Shed>, BackendError> {
        let docker = self.docker().await?;
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![self.naming.filter()],
            )])),
            ..Default::default()
        };
        let containers = docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| docker_error(e, "containers"))?;
        let mut sheds: Vec<Shed> = containers
            .into_iter()
            .map(|c| {
                use bollard::models::ContainerSummaryStateEnum as S;
                let status = match c.state {
                    Some(S::RUNNING) => ShedStatus::Running,
                    Some(S::RESTARTING) => ShedStatus::Starting,
                    Some(S::CREATED | S::EXITED | S::PAUSED | S::STOPPING) => ShedStatus::Stopped,
                    _ => ShedStatus::Error,
                };
                self.shed_from_parts(
                    &c.labels.unwrap_or_default(),
                    status,
                    c.image.unwrap_or_default(),
                    c.id.unwrap_or_default(),
                    c.created,
                )
            })
            .filter(|s| !s.name.is_empty())
            .collect();
        sheds.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(sheds)
    }

    async fn get(&self, name: &str) -> Result<Shed, BackendError> {
        let docker = self.docker().await?;
        match self.inspect(&docker, name).await? {
            Some(info) => Ok(self.shed_from_inspect(info)),
            None => Err(BackendError::ShedNotFound(name.into())),
        }
    }

    async fn create(&self, new: NewShed) -> Result<Shed, BackendError> {
        let docker = self.docker().await?;
        if !self
            .creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(new.name.clone())
        {
            return Err(BackendError::ShedExists(format!(
                "shed {:?} is being created",
                new.name
            )));
        }
        let _guard = CreatingGuard {
            set: &self.creating,
            name: new.name.clone(),
        };
        let container = self.naming.container(&new.name);
        let volume = self.naming.volume(&new.name);

        match docker.inspect_container(&container, None).await {
            Ok(_) => {
                return Err(BackendError::ShedExists(format!(
                    "shed {:?} already exists",
                    new.name
                )))
            }
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(docker_error(e, &container)),
        }
        match docker.inspect_image(&new.image).await {
            Ok(_) => {}
            Err(e) if status_of(&e) == Some(404) => {
                return Err(BackendError::ImageNotFound(new.image.clone()))
            }
            // Docker's own word that the reference is malformed, e.g. upper case.
            Err(e) if status_of(&e) == Some(400) => {
                return Err(BackendError::BadRequest(format!(
                    "invalid image name {:?}",
                    new.image
                )))
            }
            Err(e) => return Err(docker_error(e, &new.image)),
        }

        // A volume kept by `delete --keep-volume` is reused, and never removed
        // by a rollback: only what this create made is undone. The volume is
        // made by Docker as part of the container create, so the atomic name
        // reservation decides the winner of a race before anything exists,
        // and a loser has nothing to undo.
        let labels = self.labels(&new);
        let made_volume = match docker.inspect_volume(&volume).await {
            Ok(_) => false,
            Err(e) if status_of(&e) == Some(404) => true,
            Err(e) => return Err(docker_error(e, &volume)),
        };

        let opts = CreateContainerOptions {
            name: Some(container.clone()),
            ..Default::default()
        };
        if let Err(e) = docker
            .create_container(Some(opts), self.container_body(&new, labels))
            .await
        {
            return Err(match status_of(&e) {
                Some(409) => {
                    BackendError::ShedExists(format!("shed {:?} already exists", new.name))
                }
                Some(404) => BackendError::ImageNotFound(new.image.clone()),
                _ => docker_error(e, &container),
            });
        }
        if let Err(e) = docker.start_container(&container, None).await {
            self.rollback(&docker, &new.name, true, made_volume).await;
            return Err(docker_error(e, &container));
        }
        if let Err(e) = self.clone_repo(&new).await {
            self.rollback(&docker, &new.name, true, made_volume).await;
            return Err(e);
        }
        match self.inspect(&docker, &new.name).await? {
            Some(info) => Ok(self.shed_from_inspect(info)),
            None => Err(BackendError::Internal(format!(
                "container {container} vanished right after creation"
            ))),
        }
    }

    async fn delete(&self, name: &str, keep_volume: bool) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        if self.inspect(&docker, name).await?.is_none() {
            return Err(BackendError::ShedNotFound(name.into()));
        }
        let container = self.naming.container(name);
        let opts = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match docker.remove_container(&container, Some(opts)).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(docker_error(e, &container)),
        }
        if !keep_volume {
            let volume = self.naming.volume(name);
            match docker
                .remove_volume(&volume, None::<RemoveVolumeOptions>)
                .await
            {
                Ok(()) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => return Err(docker_error(e, &volume)),
            }
        }
        Ok(())
    }

    async fn start(&self, name: &str) -> Result<Shed, BackendError> {
        let docker = self.docker().await?;
        let info = self
            .inspect(&docker, name)
            .await?
            .ok_or_else(|| BackendError::ShedNotFound(name.into()))?;
        let state = info.state.clone().unwrap_or_default();
        let container = self.naming.container(name);
        if state.paused == Some(true) {
            docker
                .unpause_container(&container)
                .await
                .map_err(|e| docker_error(e, &container))?;
        } else if state.running == Some(true) {
            return Err(BackendError::AlreadyRunning(name.into()));
        } else {
            docker
                .start_container(&container, None)
                .await
                .map_err(|e| docker_error(e, &container))?;
        }
        self.get(name).await
    }

    async fn stop(&self, name: &str) -> Result<Shed, BackendError> {
        let docker = self.docker().await?;
        let info = self
            .inspect(&docker, name)
            .await?
            .ok_or_else(|| BackendError::ShedNotFound(name.into()))?;
        let state = info.state.clone().unwrap_or_default();
        if state.running != Some(true) {
            return Err(BackendError::AlreadyStopped(name.into()));
        }
        let container = self.naming.container(name);
        let opts = StopContainerOptions {
            t: Some(STOP_TIMEOUT_SECS),
            ..Default::default()
        };
        docker
            .stop_container(&container, Some(opts))
            .await
            .map_err(|e| docker_error(e, &container))?;
        self.get(name).await
    }

    async fn list_sessions(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError> {
        self.require_running(shed).await?;
        self.list_sessions_unchecked(shed).await
    }

    async fn create_session(
        &self,
        shed: &str,
        new: NewSession,
    ) -> Result<SessionInfo, BackendError> {
        self.require_running(shed).await?;
        let check = vec!["test".to_string(), "-d".into(), new.cwd.clone()];
        if self.exec_capture(shed, check, Vec::new()).await?.exit_code != 0 {
            return Err(BackendError::BadRequest(format!(
                "cwd {:?} is not a directory in shed {shed:?}",
                new.cwd
            )));
        }
        let mut cmd = args(&["tmux", "new-session", "-d", "-s", &new.name, "-c", &new.cwd]);
        for (key, value) in &new.env {
            cmd.push("-e".into());
            cmd.push(format!("{key}={value}"));
        }
        if let Some(command) = &new.command {
            cmd.push(command.clone());
            // Keep the pane when the command ends, so its last words can
            // still be read with `output`. In the same command list, so tmux
            // applies it before it can notice the command exiting.
            let window = tmux::pane_target(&new.name);
            cmd.extend(args(&[
                ";",
                "set-option",
                "-w",
                "-t",
                &window,
                "remain-on-exit",
                "on",
            ]));
        }
        match self.tmux(shed, cmd).await? {
            Ok(_) => {}
            Err((TmuxFailure::Duplicate, _)) => {
                return Err(BackendError::SessionExists {
                    shed: shed.into(),
                    session: new.name,
                })
            }
            Err((_, message)) => {
                return Err(BackendError::Internal(format!(
                    "tmux new-session in shed {shed}: {message}"
                )))
            }
        }
        let sessions = self.list_sessions_unchecked(shed).await?;
        match sessions.into_iter().find(|s| s.name == new.name) {
            Some(session) => Ok(session),
            // The command finished at once and took the session with it.
            None => {
                let now = Utc::now();
                Ok(SessionInfo {
                    name: new.name,
                    shed: shed.into(),
                    server: self.server_name.clone(),
                    created_at: now,
                    last_activity: now,
                    idle_seconds: 0,
                    attached: 0,
                    windows: 0,
                    current_command: String::new(),
                    cwd: new.cwd,
                    status: crate::api::SessionStatus::Idle,
                })
            }
        }
    }

    async fn kill_session(&self, shed: &str, session: &str) -> Result<(), BackendError> {
        self.require_running(shed).await?;
        let target = tmux::session_target(session);
        self.tmux(shed, args(&["tmux", "kill-session", "-t", &target]))
            .await?
            .map(|_| ())
            .map_err(|f| Self::session_failure(shed, session, f))
    }

    async fn session_output(
        &self,
        shed: &str,
        session: &str,
        lines: usize,
    ) -> Result<String, BackendError> {
        self.require_running(shed).await?;
        let target = tmux::pane_target(session);
        let start = format!("-{lines}");
        let cmd = args(&[
            "tmux",
            "capture-pane",
            "-p",
            "-J",
            "-t",
            &target,
            "-S",
            &start,
        ]);
        let text = self
            .tmux(shed, cmd)
            .await?
            .map_err(|f| Self::session_failure(shed, session, f))?;
        Ok(tmux::last_lines(&text, lines))
    }

    async fn send_input(
        &self,
        shed: &str,
        session: &str,
        text: &str,
        enter: bool,
    ) -> Result<(), BackendError> {
        self.require_running(shed).await?;
        let target = tmux::pane_target(session);
        if !text.is_empty() {
            // -l: every character is literal, so "C-c" or "Enter" in the text stay text.
            let cmd = args(&["tmux", "send-keys", "-t", &target, "-l", "--", text]);
            self.tmux(shed, cmd)
                .await?
                .map_err(|f| Self::session_failure(shed, session, f))?;
        }
        if enter {
            let cmd = args(&["tmux", "send-keys", "-t", &target, "Enter"]);
            self.tmux(shed, cmd)
                .await?
                .map_err(|f| Self::session_failure(shed, session, f))?;
        }
        Ok(())
    }
}

/// Upper bound on one tmux command; a hung shed must not hang a request.
const TMUX_TIMEOUT: Duration = Duration::from_secs(10);

/// A tmux command's result: its stdout, or how it failed.
type TmuxResult = Result<String, (TmuxFailure, String)>;

impl DockerBackend {
    /// Errors unless shed `shed` exists (and is ours) and runs.
    async fn require_running(&self, shed: &str) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let info = self
            .inspect(&docker, shed)
            .await?
            .ok_or_else(|| BackendError::ShedNotFound(shed.into()))?;
        let state = info.state.unwrap_or_default();
        if state.running == Some(true) && state.paused != Some(true) {
            Ok(())
        } else {
            Err(BackendError::ShedNotRunning(shed.into()))
        }
    }

    /// Runs `tmux ARGS` in a shed, bounded by [`TMUX_TIMEOUT`].
    async fn tmux(&self, shed: &str, args: Vec<String>) -> Result<TmuxResult, BackendError> {
        let run = self.exec_capture(shed, args, Vec::new());
        let output = tokio::time::timeout(TMUX_TIMEOUT, run)
            .await
            .map_err(|_| BackendError::Timeout(shed.into()))??;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.exit_code == 0 {
            return Ok(Ok(stdout));
        }
        let mut message = String::from_utf8_lossy(&output.stderr).into_owned();
        message.push_str(&stdout);
        let failure = tmux::classify(output.exit_code, &message);
        if failure == TmuxFailure::NotInstalled {
            return Err(BackendError::TmuxNotAvailable(shed.into()));
        }
        Ok(Err((failure, message.trim().to_string())))
    }

    /// Every session of a shed already known to run, in one exec.
    async fn list_sessions_unchecked(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError> {
        match self.tmux(shed, tmux::list_command()).await? {
            Ok(text) => Ok(tmux::parse_sessions(
                &text,
                shed,
                &self.server_name,
                Utc::now(),
            )),
            // A running shed without a tmux server simply has no sessions.
            Err((TmuxFailure::NoServer, _)) => Ok(Vec::new()),
            Err((_, message)) => Err(BackendError::Internal(format!(
                "tmux list-sessions in shed {shed}: {message}"
            ))),
        }
    }

    /// Maps a failure of a command aimed at one session.
    fn session_failure(shed: &str, session: &str, failure: (TmuxFailure, String)) -> BackendError {
        match failure.0 {
            TmuxFailure::NoServer | TmuxFailure::NoSuchSession => BackendError::SessionNotFound {
                shed: shed.into(),
                session: session.into(),
            },
            _ => BackendError::Internal(format!("tmux in shed {shed}: {}", failure.1)),
        }
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
        assert_eq!(n.container("demo"), "t1-shed-demo");
        assert_eq!(n.volume("demo"), "t1-shed-demo-workspace");
        assert_eq!(n.label("created"), "t1.shed.created");
        assert_eq!(n.filter(), "t1.shed=true");
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("short", 10), "short");
        let t = tail("ééééé", 3);
        assert!(t.starts_with("...") && t.ends_with('é'));
    }
}
