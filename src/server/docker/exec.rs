//! Processes in sheds: commands run to completion with their output
//! captured, attached interactive execs, resize, signals and exit codes.

use super::*;

impl DockerBackend {
    /// Runs `cmd` in shed `shed` as the container user and collects its
    /// output (a bounded tail of each stream) and exit status.
    pub async fn exec_capture(
        &self,
        shed: &str,
        cmd: Vec<String>,
        env: Vec<String>,
    ) -> Result<ExecOutput, BackendError> {
        self.exec_capture_reporting(shed, cmd, env, None, &StdMutex::new(None))
            .await
    }

    /// [`DockerBackend::exec_capture`] bounded by `limit`: on timeout the
    /// process is killed inside the shed, so abandoned commands do not pile
    /// up there, and the answer is `None`.
    pub async fn exec_capture_within(
        &self,
        shed: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        limit: Duration,
    ) -> Result<Option<ExecOutput>, BackendError> {
        self.exec_capture_within_as(shed, cmd, env, None, limit)
            .await
    }

    /// [`DockerBackend::exec_capture_within`] as `user` (`None`: the
    /// configured container user).
    pub async fn exec_capture_within_as(
        &self,
        shed: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        user: Option<String>,
        limit: Duration,
    ) -> Result<Option<ExecOutput>, BackendError> {
        let started = StdMutex::new(None);
        let run = self.exec_capture_reporting(shed, cmd, env, user, &started);
        match tokio::time::timeout(limit, run).await {
            Ok(result) => result.map(Some),
            Err(_) => {
                let id = started.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(id) = id {
                    let kill = self.signal_exec(shed, &id, "KILL");
                    match tokio::time::timeout(KILL_TIMEOUT, kill).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(shed, error = %e, "killing a timed-out exec failed")
                        }
                        Err(_) => tracing::warn!(shed, "killing a timed-out exec timed out"),
                    }
                }
                Ok(None)
            }
        }
    }

    /// The body of [`DockerBackend::exec_capture`]; stores the exec id in
    /// `started` as soon as it is known, for a caller that may kill it.
    async fn exec_capture_reporting(
        &self,
        shed: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        user: Option<String>,
        started: &StdMutex<Option<String>>,
    ) -> Result<ExecOutput, BackendError> {
        let request = ExecRequest {
            cmd,
            env,
            tty: None,
            user,
        };
        let ExecSession {
            id,
            output: mut stream,
            mut input,
        } = self.start_exec(shed, request).await?;
        *started.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
        // Nothing to send: EOF on stdin right away, as for a command in a pipe.
        let _ = input.shutdown().await;
        drop(input);
        let mut stdout = Tail::new(EXEC_OUTPUT_LIMIT);
        let mut stderr = Tail::new(EXEC_OUTPUT_LIMIT);
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(|e| stream_error(e, shed))? {
                OutputChunk::Stderr(message) => stderr.push(&message),
                OutputChunk::Stdout(message) => stdout.push(&message),
            }
        }
        Ok(ExecOutput {
            exit_code: self.wait_exit(&id).await.unwrap_or(-1),
            truncated: stdout.dropped || stderr.dropped,
            stdout: stdout.into_vec(),
            stderr: stderr.into_vec(),
        })
    }

    /// Starts an attached exec in shed `name` as the configured container
    /// user, with a small read buffer (see `EXEC_READ_CAPACITY`).
    pub async fn start_exec(
        &self,
        name: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, BackendError> {
        self.start_exec_reading(name, request, EXEC_READ_CAPACITY)
            .await
    }

    /// [`DockerBackend::start_exec`] with a read buffer of `read_capacity` bytes.
    async fn start_exec_reading(
        &self,
        name: &str,
        request: ExecRequest,
        read_capacity: usize,
    ) -> Result<ExecSession, BackendError> {
        let docker = self.docker().await?;
        let container = self.naming.container(name);
        let cmd = match request.tty {
            Some(_) => wait_for_size(request.cmd),
            None => request.cmd,
        };
        let exec = docker
            .create_exec(
                &container,
                CreateExecOptions {
                    cmd: Some(cmd),
                    env: Some(request.env),
                    user: request.user.or_else(|| self.container_user.clone()),
                    working_dir: Some("/workspace".to_string()),
                    tty: Some(request.tty.is_some()),
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
                    tty: request.tty.is_some(),
                    output_capacity: Some(read_capacity),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| docker_error(e, &container))?;
        if let Some(size) = request.tty {
            if let Err(e) = self.resize_exec(&exec.id, size).await {
                tracing::debug!(error = %e, "initial resize failed");
            }
        }
        match started {
            StartExecResults::Attached { output, input } => Ok(ExecSession {
                id: exec.id,
                output: Box::pin(output.filter_map(|item| async move {
                    match item {
                        Ok(LogOutput::StdErr { message }) => {
                            Some(Ok(OutputChunk::Stderr(message.into())))
                        }
                        Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                            Some(Ok(OutputChunk::Stdout(message.into())))
                        }
                        Ok(LogOutput::StdIn { .. }) => None,
                        Err(e) => Some(Err(std::io::Error::other(e))),
                    }
                })),
                input,
            }),
            StartExecResults::Detached => Err(BackendError::Internal(
                "exec started detached although attach was requested".into(),
            )),
        }
    }

    /// Resizes an exec's TTY.
    pub async fn resize_exec(&self, id: &str, size: TtySize) -> Result<(), BackendError> {
        let TtySize { cols, rows } = size;
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
impl InteractiveExec for DockerBackend {
    async fn ensure_running(&self, shed: &str, wait: Duration) -> Result<(), BackendError> {
        self.ensure_running(shed, wait).await
    }

    async fn start(&self, shed: &str, request: ExecRequest) -> Result<ExecSession, BackendError> {
        self.start_exec_reading(shed, request, INTERACTIVE_READ_CAPACITY)
            .await
    }

    async fn resize(&self, id: &str, size: TtySize) -> Result<(), BackendError> {
        self.resize_exec(id, size).await
    }

    async fn signal(&self, shed: &str, id: &str, signal: &str) -> Result<(), BackendError> {
        self.signal_exec(shed, id, signal).await
    }

    async fn exit_code(&self, id: &str) -> Result<Option<i64>, BackendError> {
        self.exec_exit_code(id).await
    }
}

/// Classifies an output stream's error as [`docker_error`] does the
/// bollard error inside it.
fn stream_error(e: std::io::Error, shed: &str) -> BackendError {
    match e
        .into_inner()
        .map(|inner| inner.downcast::<bollard::errors::Error>())
    {
        Some(Ok(bollard)) => docker_error(*bollard, shed),
        Some(Err(other)) => BackendError::Internal(format!("docker: {shed}: {other}")),
        None => BackendError::Internal(format!("docker: {shed}: output stream failed")),
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
