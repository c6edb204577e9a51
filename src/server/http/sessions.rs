//! Handlers of `/api/sheds/{name}/sessions...` and `/api/sessions`, over the
//! session service, and the checks a session request passes first.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::extract::{ApiJson, ApiQuery, SessionName, ShedName};
use super::openapi::{BodyErrors, CommonErrors, InShedErrors, ShedErrors};
use super::AppState;
use crate::api::agent::AgentExplanation;
use crate::api::{
    AllSessions, CreateSessionRequest, ErrorBody, SendInputRequest, SessionInfo, SessionList,
    SessionOutput,
};
use crate::server::backend::NewSession;
use crate::server::error::ApiError;
use crate::server::sessions::{DEFAULT_OUTPUT_LINES, MAX_OUTPUT_LINES};

/// Where a session starts when the request names no `cwd`.
const DEFAULT_CWD: &str = "/workspace";
/// Longest `cwd` accepted.
const MAX_CWD_LEN: usize = 4096;
/// Longest environment variable name accepted.
const MAX_ENV_NAME_LEN: usize = 256;

/// Refuses text that cannot travel as a process argument.
fn check_arg(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::InvalidRequest(format!(
            "{field} must not contain NUL characters"
        )));
    }
    Ok(())
}

fn is_env_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_ENV_NAME_LEN
        && !key.as_bytes()[0].is_ascii_digit()
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl TryFrom<CreateSessionRequest> for NewSession {
    type Error = ApiError;

    /// Validates a create request, filling in the default `cwd`.
    fn try_from(request: CreateSessionRequest) -> Result<NewSession, ApiError> {
        let SessionName(name) = SessionName::parse(request.name)?;
        if let Some(command) = &request.command {
            check_arg("command", command)?;
            if command.trim().is_empty() {
                return Err(ApiError::InvalidRequest("command must not be empty".into()));
            }
        }
        let cwd = request.cwd.unwrap_or_else(|| DEFAULT_CWD.into());
        check_arg("cwd", &cwd)?;
        if !cwd.starts_with('/') || cwd.len() > MAX_CWD_LEN {
            return Err(ApiError::InvalidRequest(
                "cwd must be an absolute path".into(),
            ));
        }
        let mut env = Vec::new();
        for (key, value) in request.env.unwrap_or_default() {
            if !is_env_name(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(ApiError::InvalidRequest(format!(
                    "env name {shown:?} must be letters, digits and '_', not starting with a digit"
                )));
            }
            check_arg("env", &value)?;
            env.push((key, value));
        }
        Ok(NewSession {
            name,
            command: request.command,
            cwd,
            env,
            restore: request.restore,
        })
    }
}

#[utoipa::path(
    get,
    path = "/api/sheds/{name}/sessions",
    params(ShedName),
    responses(
        (status = 200, description = "The shed's sessions", body = SessionList),
        ShedErrors,
        InShedErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_sessions(
    State(state): State<AppState>,
    ShedName(name): ShedName,
) -> Result<Json<SessionList>, ApiError> {
    Ok(Json(SessionList {
        sessions: state.sessions.list(&name).await?,
    }))
}

#[utoipa::path(
    post,
    path = "/api/sheds/{name}/sessions",
    params(ShedName),
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "Created, detached", body = SessionInfo),
        (status = 400, description = "Invalid name or request", body = ErrorBody),
        (status = 404, description = "No such shed", body = ErrorBody),
        (status = 409, description = "Session exists, limit reached or shed not running", body = ErrorBody),
        (status = 504, description = "The shed did not answer", body = ErrorBody),
        BodyErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn create_session(
    State(state): State<AppState>,
    ShedName(name): ShedName,
    ApiJson(request): ApiJson<CreateSessionRequest>,
) -> Result<Response, ApiError> {
    let new = NewSession::try_from(request)?;
    let location = format!("/api/sheds/{name}/sessions/{}", new.name);
    let session = state.sessions.create(&name, new).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(session),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/sheds/{name}/sessions/{session}",
    params(ShedName, SessionName),
    responses(
        (status = 200, description = "The session", body = SessionInfo),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such shed or session", body = ErrorBody),
        InShedErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_session(
    State(state): State<AppState>,
    ShedName(name): ShedName,
    SessionName(session): SessionName,
) -> Result<Json<SessionInfo>, ApiError> {
    Ok(Json(state.sessions.get(&name, &session).await?))
}

#[utoipa::path(
    delete,
    path = "/api/sheds/{name}/sessions/{session}",
    params(ShedName, SessionName),
    responses(
        (status = 204, description = "Killed"),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such shed or session", body = ErrorBody),
        InShedErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn kill_session(
    State(state): State<AppState>,
    ShedName(name): ShedName,
    SessionName(session): SessionName,
) -> Result<StatusCode, ApiError> {
    state.sessions.kill(&name, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the output endpoint.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutputParams {
    /// How many lines, counting back from the bottom of the pane (1 to 10000, default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub lines: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/sheds/{name}/sessions/{session}/output",
    params(ShedName, SessionName, OutputParams),
    responses(
        (status = 200, description = "Recent output", body = SessionOutput),
        (status = 400, description = "Invalid name or lines", body = ErrorBody),
        (status = 404, description = "No such shed or session", body = ErrorBody),
        InShedErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn session_output(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<OutputParams>,
    ShedName(name): ShedName,
    SessionName(session): SessionName,
) -> Result<Json<SessionOutput>, ApiError> {
    let lines = params.lines.unwrap_or(DEFAULT_OUTPUT_LINES);
    if !(1..=MAX_OUTPUT_LINES).contains(&lines) {
        return Err(ApiError::InvalidRequest(format!(
            "lines must be between 1 and {MAX_OUTPUT_LINES}"
        )));
    }
    let (output, source) = state.sessions.output(&name, &session, lines).await?;
    Ok(Json(SessionOutput {
        session,
        shed: name,
        output,
        source,
    }))
}

#[utoipa::path(
    get,
    path = "/api/sheds/{name}/sessions/{session}/agent",
    params(ShedName, SessionName),
    responses(
        (status = 200, description = "Why the session's agent is in its state", body = AgentExplanation),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such shed or session", body = ErrorBody),
        InShedErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn session_agent(
    State(state): State<AppState>,
    ShedName(name): ShedName,
    SessionName(session): SessionName,
) -> Result<Json<AgentExplanation>, ApiError> {
    Ok(Json(state.sessions.agent(&name, &session).await?))
}

#[utoipa::path(
    post,
    path = "/api/sheds/{name}/sessions/{session}/input",
    params(ShedName, SessionName),
    request_body = SendInputRequest,
    responses(
        (status = 204, description = "Typed"),
        (status = 400, description = "Invalid name or text", body = ErrorBody),
        (status = 404, description = "No such shed or session", body = ErrorBody),
        InShedErrors,
        BodyErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn send_input(
    State(state): State<AppState>,
    ShedName(name): ShedName,
    SessionName(session): SessionName,
    ApiJson(request): ApiJson<SendInputRequest>,
) -> Result<StatusCode, ApiError> {
    check_arg("text", &request.text)?;
    state
        .sessions
        .send_input(&name, &session, &request.text, request.enter)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/sessions",
    responses(
        (status = 200, description = "Every session of every running shed", body = AllSessions),
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn all_sessions(
    State(state): State<AppState>,
) -> Result<Json<AllSessions>, ApiError> {
    Ok(Json(state.sessions.all().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> CreateSessionRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn create_requests_are_checked() {
        let ok = NewSession::try_from(request(
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
            assert!(NewSession::try_from(request(bad.clone())).is_err(), "{bad}");
        }
    }
}
