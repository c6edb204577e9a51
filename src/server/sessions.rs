//! The session service, the only way into sessions for any backend: the
//! session limit, coalesced reads, and the fan-out across every running shed.
//! Requests are validated before they get here (see `server::http::sessions`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};

use crate::api::{AllSessions, SessionInfo, SessionSource, ShedStatus, ShedWarning};
use crate::server::backend::{find_session, BackendError, NewSession, ShedBackend};
use crate::server::coalesce::SingleFlight;

/// How many sheds `/api/sessions` queries at once.
pub const FAN_OUT_CONCURRENCY: usize = 16;
/// How long `/api/sessions` waits for one shed before reporting it as a warning.
pub const PER_SHED_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `lines` an output request may ask for.
pub const MAX_OUTPUT_LINES: usize = 10_000;
/// `lines` when an output request names none.
pub const DEFAULT_OUTPUT_LINES: usize = 100;

/// Warning for a shed whose Docker engine could not be reached.
pub const DOCKER_UNAVAILABLE_WARNING: &str = "the Docker engine is unavailable; try again later";
/// Warning for a shed that failed in a way only the server log explains.
pub const INTERNAL_WARNING: &str = "internal server error; see the server log";

/// The `/api/sessions` warning for a shed whose listing failed with `error`:
/// the error's own text, except where the detail is for the server log only.
/// Failures of the server's side rather than the request's are logged here.
pub fn warning_message(error: &BackendError) -> String {
    use BackendError as B;
    if matches!(
        error,
        B::DockerUnavailable(_)
            | B::Internal(_)
            | B::TmuxNotAvailable(_)
            | B::ToolMissing { .. }
            | B::Timeout(_)
    ) {
        // Logged as a failed request would be, so that log checks (api-fuzz)
        // see a server-side failure behind a warning as before.
        tracing::error!(error = %error, "request failed");
    }
    match error {
        B::DockerUnavailable(_) => DOCKER_UNAVAILABLE_WARNING.into(),
        B::Internal(_) => INTERNAL_WARNING.into(),
        other => other.to_string(),
    }
}

/// One shed's answer to the fan-out: its sessions, its error, or a timeout.
type ShedAnswer = Result<Result<Vec<SessionInfo>, BackendError>, tokio::time::error::Elapsed>;

/// Session reads and writes over a backend, with concurrent identical reads
/// coalesced (see [`SingleFlight`]).
pub struct Sessions {
    backend: Arc<dyn ShedBackend>,
    max_sessions: usize,
    per_shed_timeout: Duration,
    lists: SingleFlight<Result<Vec<SessionInfo>, BackendError>>,
    outputs: SingleFlight<Result<(String, SessionSource), BackendError>>,
    everything: SingleFlight<Result<AllSessions, BackendError>>,
    /// One lock per shed with a create under way, so that the limit check
    /// and the create happen as one step. An entry lives only while someone
    /// holds or waits for it, so the map is bounded by requests in flight.
    creating: Arc<StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Holds a shed's create lock entry; the last holder takes it out of the map.
struct CreateLock {
    map: Arc<StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    shed: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for CreateLock {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Two references: the map's and this one. Nobody else waits.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.shed);
        }
    }
}

impl Sessions {
    /// Sessions over `backend`, allowing `max_sessions` per shed and waiting
    /// `per_shed_timeout` for each shed in [`Sessions::all`].
    pub fn new(
        backend: Arc<dyn ShedBackend>,
        max_sessions: usize,
        per_shed_timeout: Duration,
    ) -> Arc<Sessions> {
        Arc::new(Sessions {
            backend,
            max_sessions,
            per_shed_timeout,
            lists: SingleFlight::new(|m| Err(BackendError::Internal(m))),
            outputs: SingleFlight::new(|m| Err(BackendError::Internal(m))),
            everything: SingleFlight::new(|m| Err(BackendError::Internal(m))),
            creating: Arc::default(),
        })
    }

    /// Every session of one shed.
    pub async fn list(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError> {
        self.list_flight(shed, false).await
    }

    /// Every session of a shed just listed as running (see
    /// [`ShedBackend::list_sessions_of_running`]).
    async fn list_of_running(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError> {
        self.list_flight(shed, true).await
    }

    /// One list in flight per shed and kind: a list of a shed known to run
    /// flies apart from [`Self::list`]'s, which must answer for a shed that
    /// stopped.
    async fn list_flight(
        &self,
        shed: &str,
        known_running: bool,
    ) -> Result<Vec<SessionInfo>, BackendError> {
        let backend = self.backend.clone();
        let owned = shed.to_string();
        let key = if known_running {
            format!("{shed}/running")
        } else {
            shed.to_string()
        };
        self.lists
            .run(key, move || {
                async move {
                    if known_running {
                        backend.list_sessions_of_running(&owned).await
                    } else {
                        backend.list_sessions(&owned).await
                    }
                }
                .boxed()
            })
            .await
    }

    /// One session by exact name.
    pub async fn get(&self, shed: &str, session: &str) -> Result<SessionInfo, BackendError> {
        find_session(self.list(shed).await?, shed, session)
    }

    /// The shed's create lock, held until the entry is dropped.
    fn create_lock(&self, shed: &str) -> CreateLock {
        CreateLock {
            map: self.creating.clone(),
            shed: shed.to_string(),
            lock: self
                .creating
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(shed.to_string())
                .or_default()
                .clone(),
        }
    }

    /// Creates a session unless the name is taken or the shed is at its limit.
    pub async fn create(&self, shed: &str, new: NewSession) -> Result<SessionInfo, BackendError> {
        let entry = self.create_lock(shed);
        let _held = entry.lock.lock().await;
        // Not coalesced: the check must see sessions made before this request.
        let existing = self.backend.list_sessions(shed).await?;
        if existing.iter().any(|s| s.name == new.name) {
            return Err(BackendError::SessionExists {
                shed: shed.into(),
                session: new.name,
            });
        }
        if existing.len() >= self.max_sessions {
            return Err(BackendError::MaxSessions {
                shed: shed.into(),
                max: self.max_sessions,
            });
        }
        self.backend.create_session(shed, new).await
    }

    /// Recreates the saved sessions the shed runs without, now (or, on a
    /// dry run, says what it would recreate). Under the shed's create lock,
    /// so a create's check of names and the limit never runs halfway
    /// through a restore.
    pub async fn restore(
        &self,
        shed: &str,
        dry_run: bool,
    ) -> Result<crate::api::snapshot::RestoreReport, BackendError> {
        let entry = self.create_lock(shed);
        let _held = entry.lock.lock().await;
        self.backend.restore_snapshot(shed, dry_run).await
    }

    /// The last `lines` lines of a session's active pane, and the path that read them.
    pub async fn output(
        &self,
        shed: &str,
        session: &str,
        lines: usize,
    ) -> Result<(String, SessionSource), BackendError> {
        let backend = self.backend.clone();
        let (owned_shed, owned_session) = (shed.to_string(), session.to_string());
        self.outputs
            .run(format!("{shed}/{session}/{lines}"), move || {
                async move {
                    backend
                        .session_output_from(&owned_shed, &owned_session, lines)
                        .await
                }
                .boxed()
            })
            .await
    }

    /// Why the session's agent is in its state.
    pub async fn agent(
        &self,
        shed: &str,
        session: &str,
    ) -> Result<crate::api::agent::AgentExplanation, BackendError> {
        self.backend.session_agent(shed, session).await
    }

    /// Kills the session with exactly this name.
    pub async fn kill(&self, shed: &str, session: &str) -> Result<(), BackendError> {
        self.backend.kill_session(shed, session).await
    }

    /// Types `text` literally into the session, then Enter if asked.
    pub async fn send_input(
        &self,
        shed: &str,
        session: &str,
        text: &str,
        enter: bool,
    ) -> Result<(), BackendError> {
        self.backend.send_input(shed, session, text, enter).await
    }

    /// Every session of every running shed, queried concurrently with a bound
    /// and a per-shed timeout. A shed that fails or hangs becomes a warning.
    pub async fn all(self: &Arc<Self>) -> Result<AllSessions, BackendError> {
        let this = self.clone();
        self.everything
            .run(String::new(), move || {
                async move { this.gather().await }.boxed()
            })
            .await
    }

    async fn gather(self: Arc<Self>) -> Result<AllSessions, BackendError> {
        let running: Vec<String> = self
            .backend
            .list()
            .await?
            .into_iter()
            .filter(|s| s.status == ShedStatus::Running)
            .map(|s| s.name)
            .collect();
        let answers: Vec<(String, ShedAnswer)> = futures_util::stream::iter(running)
            .map(|shed| {
                let this = self.clone();
                async move {
                    let answer =
                        tokio::time::timeout(this.per_shed_timeout, this.list_of_running(&shed))
                            .await;
                    (shed, answer)
                }
            })
            .buffer_unordered(FAN_OUT_CONCURRENCY)
            .collect()
            .await;
        let mut sessions = Vec::new();
        let mut warnings = Vec::new();
        for (shed, answer) in answers {
            match answer {
                Ok(Ok(list)) => sessions.extend(list),
                Ok(Err(e)) => warnings.push(ShedWarning {
                    message: warning_message(&e),
                    shed,
                }),
                Err(_) => warnings.push(ShedWarning {
                    message: format!(
                        "shed {shed:?} did not answer within {}s",
                        self.per_shed_timeout.as_secs_f32()
                    ),
                    shed,
                }),
            }
        }
        sessions.sort_by(|a, b| (&a.shed, &a.name).cmp(&(&b.shed, &b.name)));
        warnings.sort_by(|a, b| a.shed.cmp(&b.shed));
        Ok(AllSessions { sessions, warnings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_locks_do_not_outlive_their_creates() {
        let service = Sessions::new(
            Arc::new(crate::server::fake::FakeBackend::default()),
            2,
            PER_SHED_TIMEOUT,
        );
        let new = NewSession {
            name: "a".into(),
            command: None,
            cwd: "/workspace".into(),
            env: Vec::new(),
            restore: None,
        };
        let names: Vec<String> = (0..10).map(|i| format!("shed{}", i % 3)).collect();
        let creates = names.iter().map(|shed| service.create(shed, new.clone()));
        for result in futures_util::future::join_all(creates).await {
            assert!(matches!(result, Err(BackendError::ShedNotFound(_))));
        }
        assert!(service.creating.lock().unwrap().is_empty());
    }

    #[test]
    fn warnings_hide_what_only_the_log_should_see() {
        let internal = BackendError::Internal("secret /var/lib path".into());
        assert_eq!(warning_message(&internal), INTERNAL_WARNING);
        let docker = BackendError::DockerUnavailable("/run/docker.sock".into());
        assert_eq!(warning_message(&docker), DOCKER_UNAVAILABLE_WARNING);
        let stopped = BackendError::ShedNotRunning("s".into());
        assert_eq!(warning_message(&stopped), stopped.to_string());
    }
}
