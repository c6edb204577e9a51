//! Sessions logic that holds for any backend: request checks, the session
//! limit, and the fan-out across every running shed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};

use crate::api::{
    validate_session_name, AllSessions, CreateSessionRequest, SessionInfo, ShedStatus, ShedWarning,
};
use crate::server::backend::{BackendError, NewSession, ShedBackend};
use crate::server::coalesce::SingleFlight;
use crate::server::error::ApiError;

/// How many sheds `/api/sessions` queries at once.
pub const FAN_OUT_CONCURRENCY: usize = 16;
/// How long `/api/sessions` waits for one shed before reporting it as a warning.
pub const PER_SHED_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `lines` an output request may ask for.
pub const MAX_OUTPUT_LINES: usize = 10_000;
/// `lines` when an output request names none.
pub const DEFAULT_OUTPUT_LINES: usize = 100;

/// Checks a session name from a path or body.
pub fn check_session_name(name: &str) -> Result<(), ApiError> {
    validate_session_name(name).map_err(|e| {
        let shown: String = name.chars().take(64).collect();
        ApiError::InvalidSessionName(format!("invalid session name {shown:?}: {e}"))
    })
}

/// Refuses text that cannot travel as a process argument.
pub fn check_arg(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::InvalidRequest(format!(
            "{field} must not contain NUL characters"
        )));
    }
    Ok(())
}

/// Validates a create request into a [`NewSession`].
pub fn new_session(request: CreateSessionRequest) -> Result<NewSession, ApiError> {
    check_session_name(&request.name)?;
    if let Some(command) = &request.command {
        check_arg("command", command)?;
        if command.trim().is_empty() {
            return Err(ApiError::InvalidRequest("command must not be empty".into()));
        }
    }
    let cwd = request.cwd.unwrap_or_else(|| "/workspace".into());
    check_arg("cwd", &cwd)?;
    if !cwd.starts_with('/') || cwd.len() > 4096 {
        return Err(ApiError::InvalidRequest(
            "cwd must be an absolute path".into(),
        ));
    }
    let mut env = Vec::new();
    for (key, value) in request.env.unwrap_or_default() {
        let ok_key = !key.is_empty()
            && key.len() <= 256
            && !key.as_bytes()[0].is_ascii_digit()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok_key {
            let shown: String = key.chars().take(64).collect();
            return Err(ApiError::InvalidRequest(format!(
                "env name {shown:?} must be letters, digits and '_', not starting with a digit"
            )));
        }
        check_arg("env", &value)?;
        env.push((key, value));
    }
    Ok(NewSession {
        name: request.name,
        command: request.command,
        cwd,
        env,
    })
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
    outputs: SingleFlight<Result<String, BackendError>>,
    everything: SingleFlight<Result<AllSessions, BackendError>>,
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
            lists: SingleFlight::default(),
            outputs: SingleFlight::default(),
            everything: SingleFlight::default(),
        })
    }

    /// Every session of one shed.
    pub async fn list(&self, shed: &str) -> Result<Vec<SessionInfo>, BackendError> {
        let backend = self.backend.clone();
        let owned = shed.to_string();
        self.lists
            .run(shed.to_string(), move || {
                async move { backend.list_sessions(&owned).await }.boxed()
            })
            .await
    }

    /// One session by exact name.
    pub async fn get(&self, shed: &str, session: &str) -> Result<SessionInfo, BackendError> {
        self.list(shed)
            .await?
            .into_iter()
            .find(|s| s.name == session)
            .ok_or_else(|| BackendError::SessionNotFound {
                shed: shed.into(),
                session: session.into(),
            })
    }

    /// Creates a session unless the name is taken or the shed is at its limit.
    pub async fn create(&self, shed: &str, new: NewSession) -> Result<SessionInfo, BackendError> {
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

    /// The last `lines` lines of a session's active pane.
    pub async fn output(
        &self,
        shed: &str,
        session: &str,
        lines: usize,
    ) -> Result<String, BackendError> {
        let backend = self.backend.clone();
        let (owned_shed, owned_session) = (shed.to_string(), session.to_string());
        self.outputs
            .run(format!("{shed}/{session}/{lines}"), move || {
                async move {
                    backend
                        .session_output(&owned_shed, &owned_session, lines)
                        .await
                }
                .boxed()
            })
            .await
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
                        tokio::time::timeout(this.per_shed_timeout, this.list(&shed)).await;
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
                Ok(Err(e)) => {
                    // The same client-safe message an endpoint would give.
                    let (_, _, message) = ApiError::from(e).parts_logged();
                    warnings.push(ShedWarning { shed, message });
                }
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

    fn request(json: serde_json::Value) -> CreateSessionRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn create_requests_are_checked() {
        let ok = new_session(request(
            serde_json::json!({"name": "agent", "command": "claude", "env": {"A_1": "x"}}),
        ))
        .unwrap();
        assert_eq!(ok.cwd, "/workspace");
        assert_eq!(ok.env, vec![("A_1".to_string(), "x".to_string())]);
        for bad in [
            serde_json::json!({"name": "a.b"}),
            serde_json::json!({"name": "a:b"}),
            serde_json::json!({"name": "ok", "cwd": "relative"}),
            serde_json::json!({"name": "ok", "command": "  "}),
            serde_json::json!({"name": "ok", "command": "a\u{0}b"}),
            serde_json::json!({"name": "ok", "env": {"1A": "x"}}),
            serde_json::json!({"name": "ok", "env": {"A-B": "x"}}),
        ] {
            assert!(new_session(request(bad.clone())).is_err(), "{bad}");
        }
    }
}
