//! tmux sessions in a shed: over the shed's control channel when one is
//! up (see `channels.rs`), otherwise one bounded `tmux` exec per operation,
//! its failures classified by [`crate::server::tmux`].

use super::*;
use crate::api::agent::AgentExplanation;
use crate::server::agent::detect::exec_agent;
use crate::server::control::client::{ControlError, SessionSpec};
use crate::server::control::is_reserved;
use crate::server::control::model::Model;
use std::sync::Arc;

/// Upper bound on one tmux command; a hung shed must not hang a request.
const TMUX_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a new session's command gets to fail before the create answers:
/// a command that is not found, or exits at once, is then reported by the
/// create instead of showing up later as an idle session.
const EXIT_GRACE: Duration = Duration::from_millis(300);

/// How often, and how far apart, a create lists a dead pane again while
/// tmux has not yet reaped its command (a command killed by a signal never
/// gets a status, so this is bounded).
const STATUS_SETTLE_TRIES: usize = 5;
/// See [`STATUS_SETTLE_TRIES`].
const STATUS_SETTLE_STEP: Duration = Duration::from_millis(50);

/// What tmux prints for a pane's liveness: `0 ` or `1 STATUS`.
const PANE_STATE: &str = "#{pane_dead} #{pane_dead_status}";

/// A tmux command's result: its stdout, or how it failed.
type TmuxResult = Result<String, (TmuxFailure, String)>;

impl DockerBackend {
    /// Every session of a running shed.
    pub(super) async fn tmux_sessions(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError> {
        self.require_running(shed).await?;
        if let Some(list) = self.channel_sessions(shed).await {
            return Ok(list);
        }
        self.list_sessions_unchecked(shed).await
    }

    /// The same for a shed just listed as running. A channel's answer
    /// needs no inspect, as its exec lives only while the container runs;
    /// an inspect per shed was most of `/api/sessions`' cost at 100 sheds.
    /// The exec path still checks, for its clear error.
    pub(super) async fn tmux_sessions_of_running(
        &self,
        shed: &str,
    ) -> Result<Vec<SessionInfo>, BackendError> {
        if let Some(list) = self.channel_sessions(shed).await {
            return Ok(list);
        }
        self.require_running(shed).await?;
        self.list_sessions_unchecked(shed).await
    }

    /// The shed's sessions from its channel, each with its agent: the
    /// model, or tmux itself right after a write; `None` when no channel
    /// answers.
    async fn channel_sessions(&self, shed: &str) -> Option<Vec<SessionInfo>> {
        let model = self.channel_model(shed).await?;
        Some(self.sessions_of_model(shed, &model))
    }

    /// The shed's sessions from its channel's last model, asking nothing of
    /// tmux or Docker; `None` while the shed has no attached channel.
    pub(super) fn model_sessions(&self, shed: &str) -> Option<Vec<SessionInfo>> {
        let client = self.channels.attached_client(shed)?;
        let model = client.model().borrow().clone()?;
        Some(self.sessions_of_model(shed, &model))
    }

    /// Each session of `model`, with its agent from the channel's engine.
    fn sessions_of_model(&self, shed: &str, model: &Model) -> Vec<SessionInfo> {
        let now = Utc::now();
        let mut sessions = model.sessions(shed, &self.server_name, now);
        if let Some(agents) = self.channels.agents(shed) {
            let agents = agents.lock().unwrap_or_else(|e| e.into_inner());
            for info in &mut sessions {
                if let Some(session) = model.get(&info.name) {
                    info.agent = agents.agent_of(session, now);
                }
            }
        }
        sessions
    }

    /// The shed's model from its channel (see [`Self::channel_sessions`]).
    async fn channel_model(&self, shed: &str) -> Option<Arc<Model>> {
        let client = self.channels.client(shed)?;
        if !self.channels.must_ask(shed) {
            let model = client.model().borrow().clone();
            if model.is_some() {
                return model;
            }
        }
        match client.snapshot().await {
            Ok(model) => Some(Arc::new(model)),
            Err(e) => {
                tracing::debug!(shed, error = %e, "control channel read failed; using exec");
                None
            }
        }
    }

    /// Why a session's agent is in its state: from the channel's engine,
    /// or, without a channel, what the exec path knows.
    pub(super) async fn tmux_session_agent(
        &self,
        shed: &str,
        session: &str,
    ) -> Result<AgentExplanation, BackendError> {
        self.require_running(shed).await?;
        refuse_reserved(shed, session)?;
        let not_found = || BackendError::SessionNotFound {
            shed: shed.into(),
            session: session.into(),
        };
        if let (Some(model), Some(agents)) =
            (self.channel_model(shed).await, self.channels.agents(shed))
        {
            let found = model.get(session).ok_or_else(not_found)?;
            let agents = agents.lock().unwrap_or_else(|e| e.into_inner());
            return Ok(agents.explain(shed, found, Utc::now()));
        }
        let info = self
            .list_sessions_unchecked(shed)
            .await?
            .into_iter()
            .find(|s| s.name == session)
            .ok_or_else(not_found)?;
        Ok(AgentExplanation {
            shed: shed.into(),
            session: session.into(),
            agent: info.agent,
            decided_by: None,
            panes: Vec::new(),
            rules_version: self.channels.rules().version().to_string(),
        })
    }

    /// Creates a detached session; its command, if any, keeps its pane when it ends.
    pub(super) async fn tmux_new_session(
        &self,
        shed: &str,
        new: NewSession,
    ) -> Result<SessionInfo, BackendError> {
        self.require_running(shed).await?;
        if is_reserved(&new.name) {
            return Err(BackendError::BadRequest(format!(
                "session name {:?} is reserved",
                new.name
            )));
        }
        self.check_directory(shed, &new.cwd).await?;
        // The create request, kept in tmux so a snapshot can save it.
        let created = crate::server::snapshot::capture::Created {
            command: new.command.clone(),
            env: new.env.iter().cloned().collect(),
            restore: new.restore,
        };
        let option = crate::server::snapshot::capture::CREATE_OPTION;
        if let Some(client) = self.channels.client(shed) {
            let spec = SessionSpec {
                name: new.name.clone(),
                command: new.command.clone(),
                cwd: new.cwd.clone(),
                env: new.env.clone(),
                options: vec![(option.to_string(), created.to_option())],
            };
            match client.new_session(&spec).await {
                Ok(()) => {
                    self.channels.wrote(shed);
                    if new.command.is_some() {
                        tokio::time::sleep(EXIT_GRACE).await;
                    }
                    let sessions = self.settled_sessions(shed, &new.name, true).await?;
                    return Ok(self.created(shed, new, sessions));
                }
                Err(e) => {
                    if let Some(error) = write_failure(shed, &new.name, e) {
                        return Err(error);
                    }
                }
            }
        }
        // Every user value goes through tmux's argv parser and `-c` also
        // through its format expander, so each is escaped to arrive as given.
        let cwd = tmux_text::literal_format_arg(&new.cwd);
        let mut cmd = args(&["tmux"]);
        // Before the pane exists, which fixes its history-limit; in the
        // same command list, as new-session may start the tmux server.
        if let Some(raise) = self.history_limit_command() {
            cmd.extend(raise);
            cmd.push(";".into());
        }
        cmd.extend(args(&["new-session", "-d", "-s", &new.name, "-c", &cwd]));
        for (key, value) in &new.env {
            cmd.push("-e".into());
            cmd.push(tmux_text::literal_arg(&format!("{key}={value}")));
        }
        if let Some(command) = &new.command {
            // An argv rather than one string, so that tmux runs exactly
            // `sh -c -- COMMAND`: `--` keeps a command starting with `-` from
            // being read as options, by tmux and by sh alike.
            cmd.push("--".into());
            cmd.extend(args(&["/bin/sh", "-c", "--"]));
            cmd.push(tmux_text::literal_arg(command));
            // Keep the pane when the command ends, so its last words can
            // still be read with `output`. In the same command list, so tmux
            // applies it before it can notice the command exiting.
            let window = tmux_text::pane_target(&new.name);
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
        // set-option's -t is a pane target: `=NAME` alone would be read as
        // a window name.
        let session = tmux_text::pane_target(&new.name);
        cmd.extend(args(&[";", "set-option", "-t", &session, option]));
        cmd.push(tmux_text::literal_arg(&created.to_option()));
        match self.tmux(shed, cmd).await? {
            Ok(_) => {
                // A channel's model may not show an exec's write yet either.
                self.channels.wrote(shed);
                if new.command.is_some() {
                    tokio::time::sleep(EXIT_GRACE).await;
                }
            }
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
        let sessions = self.settled_sessions(shed, &new.name, false).await?;
        Ok(self.created(shed, new, sessions))
    }

    /// The sessions after a create. tmux marks a pane dead when its output
    /// closes and learns the exit status a moment later, when it reaps the
    /// process: a just-ended command is listed again, a bounded number of
    /// times, until its status is known.
    async fn settled_sessions(
        &self,
        shed: &str,
        name: &str,
        channel: bool,
    ) -> Result<Vec<SessionInfo>, BackendError> {
        let mut tries = 0;
        loop {
            let sessions = if channel {
                self.tmux_sessions(shed).await?
            } else {
                self.list_sessions_unchecked(shed).await?
            };
            let unsettled = sessions
                .iter()
                .any(|s| s.name == name && s.exited && s.exit_status.is_none());
            if !unsettled || tries == STATUS_SETTLE_TRIES {
                return Ok(sessions);
            }
            tries += 1;
            tokio::time::sleep(STATUS_SETTLE_STEP).await;
        }
    }

    /// The new session as listed, or as made when its command has already
    /// ended and taken it away.
    fn created(&self, shed: &str, new: NewSession, sessions: Vec<SessionInfo>) -> SessionInfo {
        match sessions.into_iter().find(|s| s.name == new.name) {
            Some(session) => session,
            // The command finished at once and took the session with it.
            None => {
                let now = Utc::now();
                let mut info = SessionInfo {
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
                    exited: true,
                    exit_status: None,
                    source: crate::api::SessionSource::Exec,
                    agent: Default::default(),
                };
                info.agent = exec_agent(&info, self.channels.rules().as_ref());
                info
            }
        }
    }

    /// What a write through the control channel settled: `None` when it
    /// may be done again by exec (see [`write_failure`]).
    fn channel_write(
        &self,
        shed: &str,
        session: &str,
        result: Result<(), ControlError>,
    ) -> Option<Result<(), BackendError>> {
        match result {
            Ok(()) => {
                self.channels.wrote(shed);
                Some(Ok(()))
            }
            Err(e) => write_failure(shed, session, e).map(Err),
        }
    }

    /// Kills the session with exactly this name.
    pub(super) async fn tmux_kill_session(
        &self,
        shed: &str,
        session: &str,
    ) -> Result<(), BackendError> {
        self.require_running(shed).await?;
        refuse_reserved(shed, session)?;
        if let Some(client) = self.channels.client(shed) {
            let result = client.kill_session(session).await;
            if let Some(done) = self.channel_write(shed, session, result) {
                return done;
            }
        }
        let target = tmux_text::session_target(session);
        self.tmux(shed, args(&["tmux", "kill-session", "-t", &target]))
            .await?
            .map_err(|f| Self::session_failure(shed, session, f))?;
        self.channels.wrote(shed);
        Ok(())
    }

    /// The last `lines` lines of the session's active pane.
    pub(super) async fn tmux_capture(
        &self,
        shed: &str,
        session: &str,
        lines: usize,
    ) -> Result<(String, SessionSource), BackendError> {
        self.require_running(shed).await?;
        refuse_reserved(shed, session)?;
        if let Some(client) = self.channels.client(shed) {
            match client.capture_pane(session, lines).await {
                Ok(text) => return Ok((text, SessionSource::Channel)),
                Err(ControlError::Tmux { failure, message }) => {
                    return Err(Self::session_failure(shed, session, (failure, message)))
                }
                // A read can always be asked again, by exec.
                Err(e) => tracing::debug!(shed, error = %e, "control channel capture failed"),
            }
        }
        let target = tmux_text::pane_target(session);
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
        Ok((tmux_text::last_lines(&text, lines), SessionSource::Exec))
    }

    /// Types `text` literally into the session, then Enter if asked.
    pub(super) async fn tmux_send(
        &self,
        shed: &str,
        session: &str,
        text: &str,
        enter: bool,
    ) -> Result<(), BackendError> {
        self.require_running(shed).await?;
        refuse_reserved(shed, session)?;
        let target = tmux_text::pane_target(session);
        if let Some(client) = self.channels.client(shed) {
            // tmux drops keys sent to a dead pane without a word; say so instead.
            match client
                .run(&["display-message", "-p", "-t", &target, PANE_STATE])
                .await
            {
                Ok(reply) => {
                    if let Some(status) = dead_pane(&reply.text()) {
                        return Err(BackendError::session_exited(shed, session, status));
                    }
                    let result = client.send_input(session, text.as_bytes(), enter).await;
                    if let Some(done) = self.channel_write(shed, session, result) {
                        return done;
                    }
                }
                Err(ControlError::Tmux { failure, message }) => {
                    return Err(Self::session_failure(shed, session, (failure, message)))
                }
                // Nothing was typed yet, so the exec path may do it all.
                Err(e) => {
                    tracing::debug!(shed, error = %e, "control channel read failed; using exec")
                }
            }
        }
        let state = args(&["tmux", "display-message", "-p", "-t", &target, PANE_STATE]);
        let state = self
            .tmux(shed, state)
            .await?
            .map_err(|f| Self::session_failure(shed, session, f))?;
        if let Some(status) = dead_pane(&state) {
            return Err(BackendError::session_exited(shed, session, status));
        }
        if !text.is_empty() {
            // -l: every character is literal, so "C-c" or "Enter" in the text stay text.
            let text = tmux_text::literal_arg(text);
            let cmd = args(&["tmux", "send-keys", "-t", &target, "-l", "--", &text]);
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
        self.channels.wrote(shed);
        Ok(())
    }

    /// Errors unless `dir` is a directory in the shed. Uses the shell's
    /// builtin `test`, so an image without coreutils' `test` still works.
    async fn check_directory(&self, shed: &str, dir: &str) -> Result<(), BackendError> {
        let check = args(&["/bin/sh", "-c", "test -d \"$1\"", "sh", dir]);
        let output = self.exec_capture(shed, check, Vec::new()).await?;
        match output.exit_code {
            0 => Ok(()),
            126 | 127 => Err(BackendError::ToolMissing {
                shed: shed.into(),
                tool: "/bin/sh".into(),
                needed_for: "sessions".into(),
            }),
            _ => Err(BackendError::BadRequest(format!(
                "cwd {dir:?} is not a directory in shed {shed:?}"
            ))),
        }
    }

    /// Errors unless shed `shed` exists (and is ours) and runs.
    pub(super) async fn require_running(&self, shed: &str) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let info = self.inspect_required(&docker, shed).await?;
        let state = info.state.unwrap_or_default();
        if state.running == Some(true) && state.paused != Some(true) {
            Ok(())
        } else {
            Err(BackendError::ShedNotRunning(shed.into()))
        }
    }

    /// Runs `tmux ARGS` in a shed, bounded by [`TMUX_TIMEOUT`].
    async fn tmux(&self, shed: &str, args: Vec<String>) -> Result<TmuxResult, BackendError> {
        let output = self
            .exec_capture_within(shed, args, Vec::new(), TMUX_TIMEOUT)
            .await?
            .ok_or_else(|| BackendError::Timeout(shed.into()))?;
        let mut kept: &[u8] = &output.stdout;
        if output.truncated {
            // The tail starts mid-line: drop the fragment.
            let start = kept
                .iter()
                .position(|b| *b == b'\n')
                .map_or(kept.len(), |i| i + 1);
            kept = &kept[start..];
        }
        let stdout = String::from_utf8_lossy(kept).into_owned();
        if output.exit_code == 0 {
            return Ok(Ok(stdout));
        }
        let mut message = String::from_utf8_lossy(&output.stderr).into_owned();
        message.push_str(&stdout);
        let failure = tmux_text::classify(output.exit_code, &message);
        if failure == TmuxFailure::NotInstalled {
            return Err(BackendError::TmuxNotAvailable(shed.into()));
        }
        Ok(Err((failure, message.trim().to_string())))
    }

    /// Every session of a shed already known to run, in one exec.
    pub(super) async fn list_sessions_unchecked(
        &self,
        shed: &str,
    ) -> Result<Vec<SessionInfo>, BackendError> {
        match self.tmux(shed, tmux_text::list_command()).await? {
            Ok(text) => {
                let mut sessions =
                    tmux_text::parse_sessions(&text, shed, &self.server_name, Utc::now());
                // The control channel's session, left by a channel now closed.
                sessions.retain(|s| !is_reserved(&s.name));
                for info in &mut sessions {
                    info.agent = exec_agent(info, self.channels.rules().as_ref());
                }
                Ok(sessions)
            }
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

/// [`BackendError::SessionNotFound`] for the hidden control session, which
/// the API never shows and never acts on.
fn refuse_reserved(shed: &str, session: &str) -> Result<(), BackendError> {
    if is_reserved(session) {
        return Err(BackendError::SessionNotFound {
            shed: shed.into(),
            session: session.into(),
        });
    }
    Ok(())
}

/// `Some(exit status)` when [`PANE_STATE`] output says the pane is dead.
fn dead_pane(state: &str) -> Option<Option<i32>> {
    state
        .trim()
        .strip_prefix('1')
        .map(|status| status.trim().parse().ok())
}

/// How a write over a channel failed: tmux's answer as the exec path would
/// give it, an error when the write may or may not have happened, or `None`
/// when it was never sent and the exec path may do it instead.
fn write_failure(shed: &str, session: &str, error: ControlError) -> Option<BackendError> {
    match error {
        ControlError::Tmux { failure, message } => Some(match failure {
            TmuxFailure::Duplicate => BackendError::SessionExists {
                shed: shed.into(),
                session: session.into(),
            },
            _ => DockerBackend::session_failure(shed, session, (failure, message)),
        }),
        ControlError::Reserved(_) => Some(BackendError::SessionNotFound {
            shed: shed.into(),
            session: session.into(),
        }),
        ControlError::Busy
        | ControlError::Quote(_)
        | ControlError::Model(_)
        | ControlError::BadTarget(_) => None,
        // Doing it again by exec could type the input twice or answer
        // "not found" for a kill that happened: say so instead.
        ControlError::Closed(_) | ControlError::Timeout(_) => Some(BackendError::Internal(
            format!("tmux control channel of shed {shed} closed during a write: {error}"),
        )),
    }
}
