//! Snapshots of a shed's sessions on its workspace volume (see
//! [`crate::server::snapshot`]): reads and writes go through the container
//! as root, captures and restores through tmux as the container user.
//! One save or restore per shed at a time.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::api::snapshot::{RestoreReport, Snapshot, SnapshotView};
use crate::server::agent::rules::Rules;
use crate::server::events::EventBus;
use crate::server::snapshot::store::{self, Read, Stored};
use crate::server::snapshot::{autosave, capture, format, restore, SaveReason};

use futures_util::StreamExt;

use super::*;

/// Most sheds whose restore for their current start is remembered; past
/// it the memory starts over, which costs one read of the snapshot each.
const MAX_REMEMBERED_RUNS: usize = 4096;

/// Largest value of `snapshot_history_lines`.
pub const MAX_HISTORY_LINES: usize = crate::server::sessions::MAX_OUTPUT_LINES;
/// Longest one snapshot exec (read, write, capture, one restore step) may take.
const SNAPSHOT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// The user snapshot files are read and written as.
const ROOT: &str = "0";

/// Settings and the per-shed locks.
pub(super) struct SnapshotState {
    history_lines: usize,
    interval: Duration,
    /// Whether control channels report session events (which drive saves).
    events: bool,
    /// One lock per shed with a save or restore under way or waiting; an
    /// entry lives only while someone holds or waits for it.
    locks: Arc<StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// The rules in force (the config's), for default policies and resume
    /// commands.
    rules: Arc<Rules>,
    /// Per shed, the container start (`StartedAt`) whose restore is done,
    /// so that the next trigger of the same start (the channel opening
    /// right after an API start) needs no read of the snapshot.
    restored: StdMutex<HashMap<String, String>>,
}

impl SnapshotState {
    pub(super) fn new(config: &ServerConfig, rules: Arc<Rules>) -> SnapshotState {
        SnapshotState {
            history_lines: config.snapshot_history_lines.min(MAX_HISTORY_LINES),
            interval: Duration::from_secs(config.snapshot_interval_secs),
            events: config.control_mode,
            locks: Arc::default(),
            rules,
            restored: StdMutex::default(),
        }
    }

    fn restored_for(&self, shed: &str, run: &str) -> bool {
        let map = self.restored.lock().unwrap_or_else(|e| e.into_inner());
        map.get(shed).is_some_and(|r| r == run)
    }

    fn remember_restored(&self, shed: &str, run: &str) {
        let mut map = self.restored.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_REMEMBERED_RUNS && !map.contains_key(shed) {
            map.clear();
        }
        map.insert(shed.to_string(), run.to_string());
    }
}

/// Holds a shed's snapshot lock; the last holder takes it out of the map.
struct ShedLock {
    map: Arc<StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    shed: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for ShedLock {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.shed);
        }
    }
}

/// The autosave task's view of the backend.
struct Target(Weak<DockerBackend>);

#[async_trait]
impl autosave::Snapshotter for Target {
    async fn running(&self) -> Vec<String> {
        let Some(this) = self.0.upgrade() else {
            return Vec::new();
        };
        // Never the one to start a connect: with a hung engine it would make
        // requests wait behind it. Channels restore on open once Docker is back.
        if this.connected().is_none() {
            return Vec::new();
        }
        match this.list_sheds().await {
            Ok(sheds) => sheds
                .into_iter()
                .filter(|s| s.status == ShedStatus::Running)
                .map(|s| s.name)
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "listing sheds for snapshots");
                Vec::new()
            }
        }
    }

    async fn save(&self, shed: &str, reason: SaveReason) {
        if let Some(this) = self.0.upgrade() {
            if let Err(e) = this.save_snapshot(shed, reason).await {
                tracing::warn!(shed, reason = reason.as_str(), error = %e, "snapshot not saved");
            }
        }
    }

    async fn restore(&self, shed: &str) {
        if let Some(this) = self.0.upgrade() {
            this.restore_after_start(shed).await;
        }
    }
}

impl DockerBackend {
    /// Starts the autosave task (see [`autosave`]) on `events`.
    pub fn start_snapshots(self: &Arc<Self>, events: Arc<EventBus>) {
        let target = Arc::new(Target(Arc::downgrade(self)));
        tokio::spawn(autosave::run(target, events, self.snapshots.interval));
    }

    async fn snapshot_lock(&self, shed: &str) -> (ShedLock, tokio::sync::OwnedMutexGuard<()>) {
        let lock = self
            .snapshots
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(shed.to_string())
            .or_default()
            .clone();
        let entry = ShedLock {
            map: self.snapshots.locks.clone(),
            shed: shed.to_string(),
            lock: lock.clone(),
        };
        let guard = lock.lock_owned().await;
        (entry, guard)
    }

    /// Which container start this is (Docker's `State.StartedAt`), or
    /// [`BackendError::ShedNotRunning`].
    async fn run_id(&self, shed: &str) -> Result<String, BackendError> {
        let docker = self.docker().await?;
        let info = self.inspect_required(&docker, shed).await?;
        let state = info.state.unwrap_or_default();
        if state.running != Some(true) || state.paused == Some(true) {
            return Err(BackendError::ShedNotRunning(shed.into()));
        }
        state
            .started_at
            .filter(|s| !s.is_empty())
            .ok_or_else(|| BackendError::Internal(format!("shed {shed} has no start time")))
    }

    /// Runs `cmd` in the shed as `user` (the container user when `None`),
    /// with `input` on stdin, bounded by [`SNAPSHOT_EXEC_TIMEOUT`].
    async fn snapshot_exec(
        &self,
        shed: &str,
        cmd: Vec<String>,
        user: Option<&str>,
        input: &[u8],
    ) -> Result<ExecOutput, BackendError> {
        let request = ExecRequest {
            cmd,
            env: Vec::new(),
            tty: None,
            user: user.map(String::from),
        };
        let ExecSession {
            id,
            output: mut stream,
            input: mut stdin,
        } = self.start_exec(shed, request).await?;
        let run = async {
            // Written while the output is read, so a full pipe cannot stall both.
            let write = async {
                let _ = stdin.write_all(input).await;
                let _ = stdin.shutdown().await;
                drop(stdin);
            };
            let read = async {
                let mut stdout = Tail::new(EXEC_OUTPUT_LIMIT);
                let mut stderr = Tail::new(ERROR_TAIL_BYTES);
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(OutputChunk::Stdout(b)) => stdout.push(&b),
                        Ok(OutputChunk::Stderr(b)) => stderr.push(&b),
                        Err(e) => {
                            return Err(BackendError::Internal(format!("exec in {shed}: {e}")))
                        }
                    }
                }
                Ok((stdout, stderr))
            };
            let ((), read) = tokio::join!(write, read);
            read
        };
        match tokio::time::timeout(SNAPSHOT_EXEC_TIMEOUT, run).await {
            Ok(Ok((stdout, stderr))) => Ok(ExecOutput {
                exit_code: self.wait_exit(&id).await.unwrap_or(-1),
                truncated: stdout.dropped,
                stdout: stdout.into_vec(),
                stderr: stderr.into_vec(),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let _ =
                    tokio::time::timeout(KILL_TIMEOUT, self.signal_exec(shed, &id, "KILL")).await;
                Err(BackendError::Timeout(shed.into()))
            }
        }
    }

    /// Both snapshot files, in one exec.
    async fn read_stored(&self, shed: &str) -> Stored {
        let files = [store::CURRENT_FILE, store::PREVIOUS_FILE];
        let cmd = store::read_all_command(store::SNAPSHOT_DIR, &files);
        let both = |read: Read| Stored {
            current: read.clone(),
            previous: read,
        };
        match self.snapshot_exec(shed, cmd, Some(ROOT), b"").await {
            Ok(out) if out.exit_code == 0 && out.truncated => both(Read::too_large()),
            Ok(out) if out.exit_code == 0 => {
                let mut reads = store::parse_read_all(&out.stdout, files.len()).into_iter();
                let mut next = || reads.next().unwrap_or(Read::Absent);
                Stored {
                    current: next(),
                    previous: next(),
                }
            }
            Ok(out) if out.exit_code == store::EXIT_ABSENT => both(Read::Absent),
            Ok(out) if out.exit_code == store::EXIT_UNSAFE => both(Read::Bad(
                "the snapshot directory is not root's own; not read".into(),
            )),
            Ok(out) => both(Read::Bad(format!(
                "reading it failed (status {}): {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
            Err(e) => both(Read::Bad(format!("reading it failed: {e}"))),
        }
    }

    async fn write_snapshot(
        &self,
        shed: &str,
        snapshot: &mut Snapshot,
        rotate: bool,
    ) -> Result<(), BackendError> {
        let bytes = format::to_bytes(snapshot);
        let cmd = store::write_command(store::SNAPSHOT_DIR, rotate);
        let out = self.snapshot_exec(shed, cmd, Some(ROOT), &bytes).await?;
        if out.exit_code != 0 {
            return Err(BackendError::Internal(format!(
                "writing the snapshot of shed {shed} failed (status {}): {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// The shed's sessions as tmux has them now.
    async fn capture(&self, shed: &str, run: &str) -> Result<Snapshot, BackendError> {
        let out = self
            .snapshot_exec(shed, capture::list_command(), None, b"")
            .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let panes = if out.exit_code == 0 {
            capture::parse_list(&text)
        } else {
            let message = String::from_utf8_lossy(&out.stderr);
            match tmux_text::classify(out.exit_code, &message) {
                // No tmux server: no sessions.
                TmuxFailure::NoServer => Vec::new(),
                TmuxFailure::NotInstalled => {
                    return Err(BackendError::TmuxNotAvailable(shed.into()))
                }
                _ => {
                    return Err(BackendError::Internal(format!(
                        "tmux list-panes in shed {shed}: {}",
                        message.trim()
                    )))
                }
            }
        };
        let mut histories = Default::default();
        if self.snapshots.history_lines > 0 && !panes.is_empty() {
            let marker = capture::marker();
            let ids: Vec<&str> = panes.iter().map(|p| p.id.as_str()).collect();
            let cmd = capture::history_command(&marker, self.snapshots.history_lines, &ids);
            let out = self.snapshot_exec(shed, cmd, None, b"").await?;
            histories = capture::parse_history(&String::from_utf8_lossy(&out.stdout), &marker);
        }
        Ok(capture::build(run, panes, histories, &self.snapshots.rules))
    }

    /// Saves the shed's sessions, unless that would replace a snapshot not
    /// yet restored (see [`store::may_replace`]).
    pub(super) async fn save_snapshot(
        &self,
        shed: &str,
        reason: SaveReason,
    ) -> Result<(), BackendError> {
        let (_entry, _guard) = self.snapshot_lock(shed).await;
        let run = self.run_id(shed).await?;
        let stored = self.read_stored(shed).await;
        let (best, warnings) = stored.best();
        for warning in &warnings {
            tracing::warn!(shed, "{warning}");
        }
        let mut snapshot = self.capture(shed, &run).await?;
        if let Err(why) = store::may_replace(best.map(|(_, s)| s), &snapshot) {
            tracing::info!(
                shed,
                reason = reason.as_str(),
                "snapshot not replaced: {why}"
            );
            return Ok(());
        }
        // Keep the mark of the restore made for this start.
        if let Some((_, old)) = best {
            if old.restored_for.as_deref() == Some(run.as_str()) || old.run == run {
                snapshot.restored_for = old.restored_for.clone();
            }
        }
        self.write_snapshot(shed, &mut snapshot, stored.rotate())
            .await?;
        tracing::debug!(
            shed,
            reason = reason.as_str(),
            sessions = snapshot.sessions.len(),
            "snapshot saved"
        );
        Ok(())
    }

    /// Saves after a session create through the API when no control
    /// channel reports it (`control_mode = false`); with channels, its
    /// event does.
    pub(super) async fn save_after_create(&self, shed: &str) {
        if self.snapshots.events {
            return;
        }
        if let Err(e) = self.save_snapshot(shed, SaveReason::Change).await {
            tracing::warn!(shed, error = %e, "snapshot after a create");
        }
    }

    /// Saves before a stop that goes through shed; a failure is logged and
    /// the stop goes on (the last autosave stays).
    pub(super) async fn save_before_stop(&self, shed: &str) {
        match self.save_snapshot(shed, SaveReason::Stop).await {
            Ok(()) | Err(BackendError::ShedNotRunning(_)) | Err(BackendError::ShedNotFound(_)) => {}
            Err(e) => tracing::warn!(shed, error = %e, "snapshot before stop failed"),
        }
    }

    /// Restores after a start; never fails the start: problems are logged.
    pub(super) async fn restore_after_start(&self, shed: &str) {
        match self.restore_sessions(shed, false, false).await {
            Ok(report) => {
                for warning in &report.warnings {
                    tracing::warn!(shed, "snapshot restore: {warning}");
                }
                let done = report
                    .actions
                    .iter()
                    .filter(|a| a.skipped.is_none())
                    .count();
                if done > 0 {
                    tracing::info!(shed, sessions = done, file = ?report.file, "sessions restored");
                }
            }
            Err(BackendError::ShedNotRunning(_)) | Err(BackendError::ShedNotFound(_)) => {}
            Err(e) => tracing::warn!(shed, error = %e, "snapshot restore failed"),
        }
    }

    /// What the shed's snapshot holds.
    pub(super) async fn snapshot_view(&self, shed: &str) -> Result<SnapshotView, BackendError> {
        self.require_running(shed).await?;
        let stored = self.read_stored(shed).await;
        let (best, warnings) = stored.best();
        Ok(SnapshotView {
            shed: shed.into(),
            file: best.map(|(f, _)| f.to_string()),
            snapshot: best.map(|(_, s)| s.clone()),
            warnings,
            env_hidden: false,
        })
    }

    /// Recreates the saved sessions the shed runs without. Unless `forced`
    /// (an on-demand restore), only once per container start, and never
    /// over a snapshot taken in this start.
    ///
    /// Three execs whatever the snapshot holds: one reads both files, one
    /// script ([`restore::restore_script`]) writes every pane's history and
    /// runs every tmux step, one marks the snapshot restored.
    pub(super) async fn restore_sessions(
        &self,
        shed: &str,
        forced: bool,
        dry_run: bool,
    ) -> Result<RestoreReport, BackendError> {
        let (_entry, _guard) = self.snapshot_lock(shed).await;
        let run = self.run_id(shed).await?;
        let mut report = RestoreReport {
            shed: shed.into(),
            dry_run,
            file: None,
            actions: Vec::new(),
            warnings: Vec::new(),
        };
        if !forced && self.snapshots.restored_for(shed, &run) {
            return Ok(report);
        }
        let stored = self.read_stored(shed).await;
        let (best, warnings) = stored.best();
        report.file = best.map(|(f, _)| f.to_string());
        report.warnings = warnings;
        let Some((file, snapshot)) = best else {
            if !forced {
                self.snapshots.remember_restored(shed, &run);
            }
            return Ok(report);
        };
        let mut snapshot = snapshot.clone();
        if !forced
            && (snapshot.run == run || snapshot.restored_for.as_deref() == Some(run.as_str()))
        {
            self.snapshots.remember_restored(shed, &run);
            return Ok(report);
        }
        let rules = self.snapshots.rules.clone();
        if dry_run {
            let existing = self.list_sessions_for_restore(shed).await?;
            for session in &snapshot.sessions {
                let mut action = restore::plan_session(session, &rules, &[]).action;
                if existing.contains(&session.name) {
                    action.skipped = Some(RUNNING.into());
                }
                report.actions.push(action);
            }
            return Ok(report);
        }
        let failed = self
            .run_restore_script(shed, &snapshot, &rules, &mut report)
            .await;
        self.channels.wrote(shed);
        if failed {
            // Not marked: the snapshot stays as it is (saves of this start
            // cannot replace it) and the next restore tries again.
            report.warnings.push(
                "some sessions could not be restored; the snapshot is kept for another try".into(),
            );
            return Ok(report);
        }
        snapshot.restored_for = Some(run.clone());
        // A restore from the previous file leaves the unusable current
        // one to be replaced, not kept as the previous.
        match self
            .write_snapshot(shed, &mut snapshot, file == "current" && stored.rotate())
            .await
        {
            Ok(()) => self.snapshots.remember_restored(shed, &run),
            Err(e) => report
                .warnings
                .push(format!("marking the snapshot restored: {e}")),
        }
        Ok(report)
    }

    /// Recreates every session of `snapshot` in one exec, adding an action
    /// per session and the warnings to `report`; whether tmux refused a
    /// session (a name already running is not a refusal).
    async fn run_restore_script(
        &self,
        shed: &str,
        snapshot: &Snapshot,
        rules: &Rules,
        report: &mut RestoreReport,
    ) -> bool {
        let saved_at = snapshot.saved_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let dir = match random_hex() {
            Ok(hex) => format!("{}{hex}", restore::RESTORE_DIR_PREFIX),
            Err(e) => {
                report.warnings.push(format!("restoring: {e}"));
                return true;
            }
        };
        let mut scripted = Vec::new();
        let mut actions = Vec::new();
        let mut count = 0;
        for (index, session) in snapshot.sessions.iter().enumerate() {
            let mut files = Vec::new();
            let mut paths = Vec::new();
            for pane in session.windows.iter().flat_map(|w| &w.panes) {
                match restore::history_text(pane, &saved_at) {
                    Some(text) => {
                        let path = format!("{dir}/{count}");
                        count += 1;
                        paths.push(path.clone());
                        files.push((path, text));
                    }
                    None => paths.push(String::new()),
                }
            }
            let plan = restore::plan_session(session, rules, &paths);
            actions.push(plan.action);
            scripted.push(restore::ScriptSession {
                index,
                steps: plan.steps,
                files,
            });
        }
        let first = self.history_limit_command().unwrap_or_default();
        let script = restore::restore_script(&dir, &first, &scripted);
        drop(scripted);
        let cmd = vec!["/bin/sh".to_string(), "-s".to_string()];
        let outcomes = match self.snapshot_exec(shed, cmd, None, script.as_bytes()).await {
            Ok(out) => {
                if out.exit_code != 0 {
                    report.warnings.push(format!(
                        "restoring: the restore script failed (status {}): {}",
                        out.exit_code,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                restore::parse_outcomes(&String::from_utf8_lossy(&out.stdout))
            }
            Err(e) => {
                report.warnings.push(format!("restoring: {e}"));
                Default::default()
            }
        };
        let mut failed = false;
        for (index, (session, mut action)) in snapshot.sessions.iter().zip(actions).enumerate() {
            for ((_, step), outcome) in outcomes.range((index, 0)..(index + 1, 0)) {
                let restore::StepOutcome::Failed(message) = outcome else {
                    continue;
                };
                // Without its first step the session does not exist.
                if *step == 0 {
                    if tmux_text::classify(1, message) == TmuxFailure::Duplicate {
                        action.skipped = Some(RUNNING.into());
                        continue;
                    }
                    action.skipped = Some(format!("tmux refused it: {message}"));
                    failed = true;
                }
                report.warnings.push(format!(
                    "restoring session {}: tmux: {message}",
                    session.name
                ));
            }
            if action.skipped.is_none() && !outcomes.contains_key(&(index, 0)) {
                action.skipped = Some("the restore did not get to it".into());
                failed = true;
            }
            report.actions.push(action);
        }
        failed
    }

    /// The names of the shed's sessions now.
    async fn list_sessions_for_restore(&self, shed: &str) -> Result<Vec<String>, BackendError> {
        Ok(self
            .list_sessions_unchecked(shed)
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect())
    }

    /// The tmux command raising `history-limit` to what a snapshot saves
    /// (see [`crate::server::snapshot::history_limit_command`]).
    pub(super) fn history_limit_command(&self) -> Option<Vec<String>> {
        crate::server::snapshot::history_limit_command(self.snapshots.history_lines)
    }
}

/// Why a saved session is not restored when one of its name runs.
const RUNNING: &str = "a session of this name is running";

/// 128 random bits as hex, for a path no one can plant something at.
fn random_hex() -> Result<String, BackendError> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| BackendError::Internal("no random bytes for a restore".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
