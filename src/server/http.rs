//! The HTTP API: the router, its extractors and its handlers.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::api::{
    known_hosts_line, validate_shed_name, AllSessions, CreateSessionRequest, CreateShedRequest,
    ErrorBody, Health, SendInputRequest, ServerInfo, SessionInfo, SessionList, SessionOutput, Shed,
    ShedList, SshHostKey,
};
use crate::server::backend::{NewShed, ShedBackend};
use crate::server::error::ApiError;
use crate::server::repo::RepoSpec;
use crate::server::sessions;

/// Largest request body accepted; create bodies are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The container engine.
    pub backend: Arc<dyn ShedBackend>,
    /// Answer of `GET /api/info`.
    pub info: ServerInfo,
    /// Image for creates that name none.
    pub default_image: String,
    /// Bearer token, when auth is on.
    pub api_token: Option<Arc<str>>,
    /// The SSH gateway's public host key, OpenSSH format.
    pub ssh_host_key: Option<String>,
    /// Session operations, with concurrent reads coalesced.
    pub sessions: Arc<sessions::Sessions>,
}

/// `axum::Json` whose rejections use the API error body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path` whose rejections use the API error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` whose rejections use the API error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Builds the API router over `state`.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/info", get(info))
        .route("/api/ssh-host-key", get(ssh_host_key))
        .route("/api/sheds", get(list_sheds).post(create_shed))
        .route("/api/sheds/{name}", get(get_shed).delete(delete_shed))
        .route("/api/sheds/{name}/start", post(start_shed))
        .route("/api/sheds/{name}/stop", post(stop_shed))
        .route(
            "/api/sheds/{name}/sessions",
            get(list_sessions).post(create_session),
        )
        .route(
            "/api/sheds/{name}/sessions/{session}",
            get(get_session).delete(kill_session),
        )
        .route(
            "/api/sheds/{name}/sessions/{session}/output",
            get(session_output),
        )
        .route(
            "/api/sheds/{name}/sessions/{session}/input",
            post(send_input),
        )
        .route("/api/sessions", get(all_sessions))
        .route("/api/openapi.json", get(openapi_json))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/api/health", get(health))
        .merge(protected)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| ApiError::Panic.into_response()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// The OpenAPI description of this API, generated from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "shed-server API", description = "Persistent Docker workspaces and the tmux sessions inside them."),
    paths(
        health, info, ssh_host_key, list_sheds, create_shed, get_shed, delete_shed, start_shed,
        stop_shed, list_sessions, create_session, get_session, kill_session, session_output,
        send_input, all_sessions, openapi_json
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    responses(
        (status = 200, description = "This document", content_type = "application/json", body = Object),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn openapi_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    use utoipa::OpenApi;
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    // Without api_token this server needs no credentials; say so, so that
    // clients and checkers see the API as it is.
    if state.api_token.is_none() {
        if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
            for operation in paths.values_mut().filter_map(|i| i.as_object_mut()) {
                for op in operation.values_mut().filter_map(|o| o.as_object_mut()) {
                    op.remove("security");
                    if let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut())
                    {
                        responses.remove("401");
                    }
                }
            }
        }
        if let Some(components) = doc.get_mut("components").and_then(|c| c.as_object_mut()) {
            components.remove("securitySchemes");
        }
    }
    Json(doc)
}

async fn require_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.api_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Constant time, so the token cannot be guessed byte by byte from timings.
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

#[utoipa::path(get, path = "/api/health", responses((status = 200, description = "The process is up", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        alive_tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks() as u64,
    })
}

#[utoipa::path(
    get,
    path = "/api/info",
    responses(
        (status = 200, description = "Server facts", body = ServerInfo),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn info(State(state): State<AppState>) -> Json<ServerInfo> {
    Json(state.info)
}

#[utoipa::path(
    get,
    path = "/api/ssh-host-key",
    responses(
        (status = 200, description = "The gateway host key", body = SshHostKey),
        (status = 404, description = "No SSH gateway", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn ssh_host_key(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SshHostKey>, ApiError> {
    let key = state.ssh_host_key.clone().ok_or(ApiError::NotFound)?;
    // The known_hosts line names the host the way this client reached us.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| match h.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => h,
        })
        .unwrap_or("localhost")
        .to_string();
    Ok(Json(SshHostKey {
        known_hosts: known_hosts_line(&host, state.info.ssh_port, &key),
        public_key: key,
        ssh_port: state.info.ssh_port,
    }))
}

/// Checks a shed name taken from a path or body.
fn check_name(name: &str) -> Result<(), ApiError> {
    validate_shed_name(name).map_err(|e| {
        let shown: String = name.chars().take(64).collect();
        ApiError::InvalidName(format!("invalid shed name {shown:?}: {e}"))
    })
}

#[utoipa::path(
    get,
    path = "/api/sheds",
    responses(
        (status = 200, description = "Every shed", body = ShedList),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn list_sheds(State(state): State<AppState>) -> Result<Json<ShedList>, ApiError> {
    Ok(Json(ShedList {
        sheds: state.backend.list().await?,
    }))
}

#[utoipa::path(
    post,
    path = "/api/sheds",
    request_body = CreateShedRequest,
    responses(
        (status = 201, description = "Created and started", body = Shed),
        (status = 400, description = "Invalid name, request, image or clone", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn create_shed(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateShedRequest>,
) -> Result<Response, ApiError> {
    check_name(&request.name)?;
    let image = match request.image {
        Some(image) if image.trim().is_empty() || image.len() > 512 => {
            return Err(ApiError::InvalidRequest(
                "image must be 1 to 512 characters".into(),
            ))
        }
        Some(image) if image.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            return Err(ApiError::InvalidRequest(
                "image must not contain whitespace".into(),
            ))
        }
        Some(image) => image,
        None => state.default_image.clone(),
    };
    let repo = request
        .repo
        .as_deref()
        .map(RepoSpec::parse)
        .transpose()
        .map_err(ApiError::InvalidRequest)?;
    let new = NewShed {
        name: request.name,
        image,
        repo,
    };
    // A create runs to completion (or full rollback) even if the client goes
    // away: dropping it halfway would leave a half-made shed behind.
    let backend = state.backend.clone();
    let shed = tokio::spawn(async move { backend.create(new).await })
        .await
        .map_err(|_| ApiError::Panic)??;
    let location = format!("/api/sheds/{}", shed.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(shed),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/sheds/{name}",
    params(("name" = String, Path, description = "Shed name", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    responses(
        (status = 200, description = "The shed", body = Shed),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such shed", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn get_shed(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Shed>, ApiError> {
    check_name(&name)?;
    Ok(Json(state.backend.get(&name).await?))
}

/// Query of `DELETE /api/sheds/{name}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// Keep the workspace volume for a later create of the same name.
    #[serde(default)]
    pub keep_volume: bool,
}

#[utoipa::path(
    delete,
    path = "/api/sheds/{name}",
    params(("name" = String, Path, description = "Shed name", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), DeleteParams),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid name or query", body = ErrorBody),
        (status = 404, description = "No such shed", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn delete_shed(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    state.backend.delete(&name, params.keep_volume).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/sheds/{name}/start",
    params(("name" = String, Path, description = "Shed name", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    responses(
        (status = 200, description = "Started", body = Shed),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such shed", body = ErrorBody),
        (status = 409, description = "Already running", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn start_shed(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Shed>, ApiError> {
    check_name(&name)?;
    Ok(Json(state.backend.start(&name).await?))
}

#[utoipa::path(
    post,
    path = "/api/sheds/{name}/stop",
    params(("name" = String, Path, description = "Shed name", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    responses(
        (status = 200, description = "Stopped", body = Shed),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such shed", body = ErrorBody),
        (status = 409, description = "Already stopped", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn stop_shed(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Shed>, ApiError> {
    check_name(&name)?;
    Ok(Json(state.backend.stop(&name).await?))
}

#[utoipa::path(
    get,
    path = "/api/sheds/{name}/sessions",
    params(("name" = String, Path, description = "Shed name", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    responses(
        (status = 200, description = "The shed's sessions", body = SessionList),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such shed", body = ErrorBody),
        (status = 409, description = "Shed not running", body = ErrorBody),
        (status = 504, description = "The shed did not answer", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn list_sessions(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<SessionList>, ApiError> {
    check_name(&name)?;
    Ok(Json(SessionList {
        sessions: state.sessions.list(&name).await?,
    }))
}

#[utoipa::path(
    post,
    path = "/api/sheds/{name}/sessions",
    params(("name" = String, Path, description = "Shed name", pattern = "^[a-z0-9][a-z0-9-]{0,62}$")),
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "Created, detached", body = SessionInfo),
        (status = 400, description = "Invalid name or request", body = ErrorBody),
        (status = 404, description = "No such shed", body = ErrorBody),
        (status = 409, description = "Session exists, limit reached or shed not running", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 504, description = "The shed did not answer", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn create_session(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<CreateSessionRequest>,
) -> Result<Response, ApiError> {
    check_name(&name)?;
    let new = sessions::new_session(request)?;
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
    params(("name" = String, Path, description = "Shed name", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), ("session" = String, Path, description = "Session name", pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")),
    responses(
        (status = 200, description = "The session", body = SessionInfo),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such shed or session", body = ErrorBody),
        (status = 409, description = "Shed not running", body = ErrorBody),
        (status = 504, description = "The shed did not answer", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn get_session(
    State(state): State<AppState>,
    ApiPath((name, session)): ApiPath<(String, String)>,
) -> Result<Json<SessionInfo>, ApiError> {
    check_name(&name)?;
    sessions::check_session_name(&session)?;
    Ok(Json(state.sessions.get(&name, &session).await?))
}

#[utoipa::path(
    delete,
    path = "/api/sheds/{name}/sessions/{session}",
    params(("name" = String, Path, description = "Shed name", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), ("session" = String, Path, description = "Session name", pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")),
    responses(
        (status = 204, description = "Killed"),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such shed or session", body = ErrorBody),
        (status = 409, description = "Shed not running", body = ErrorBody),
        (status = 504, description = "The shed did not answer", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn kill_session(
    State(state): State<AppState>,
    ApiPath((name, session)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    sessions::check_session_name(&session)?;
    state.backend.kill_session(&name, &session).await?;
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
    params(("name" = String, Path, description = "Shed name", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), ("session" = String, Path, description = "Session name", pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"), OutputParams),
    responses(
        (status = 200, description = "Recent output", body = SessionOutput),
        (status = 400, description = "Invalid name or lines", body = ErrorBody),
        (status = 404, description = "No such shed or session", body = ErrorBody),
        (status = 409, description = "Shed not running", body = ErrorBody),
        (status = 504, description = "The shed did not answer", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn session_output(
    State(state): State<AppState>,
    ApiPath((name, session)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<OutputParams>,
) -> Result<Json<SessionOutput>, ApiError> {
    check_name(&name)?;
    sessions::check_session_name(&session)?;
    let lines = params.lines.unwrap_or(sessions::DEFAULT_OUTPUT_LINES);
    if !(1..=sessions::MAX_OUTPUT_LINES).contains(&lines) {
        return Err(ApiError::InvalidRequest(format!(
            "lines must be between 1 and {}",
            sessions::MAX_OUTPUT_LINES
        )));
    }
    let output = state.sessions.output(&name, &session, lines).await?;
    Ok(Json(SessionOutput {
        session,
        shed: name,
        output,
    }))
}

#[utoipa::path(
    post,
    path = "/api/sheds/{name}/sessions/{session}/input",
    params(("name" = String, Path, description = "Shed name", pattern = "^[a-z0-9][a-z0-9-]{0,62}$"), ("session" = String, Path, description = "Session name", pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")),
    request_body = SendInputRequest,
    responses(
        (status = 204, description = "Typed"),
        (status = 400, description = "Invalid name or text", body = ErrorBody),
        (status = 404, description = "No such shed or session", body = ErrorBody),
        (status = 409, description = "Shed not running", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 504, description = "The shed did not answer", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn send_input(
    State(state): State<AppState>,
    ApiPath((name, session)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<SendInputRequest>,
) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    sessions::check_session_name(&session)?;
    sessions::check_arg("text", &request.text)?;
    state
        .backend
        .send_input(&name, &session, &request.text, request.enter)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/sessions",
    responses(
        (status = 200, description = "Every session of every running shed", body = AllSessions),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 500, description = "Internal error; details in the server log", body = ErrorBody),
        (status = 503, description = "Docker unavailable", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn all_sessions(State(state): State<AppState>) -> Result<Json<AllSessions>, ApiError> {
    Ok(Json(state.sessions.all().await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::fake::FakeBackend;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app(token: Option<&str>) -> Router {
        app_with(token, Arc::new(FakeBackend::default()))
    }

    fn app_with(token: Option<&str>, backend: Arc<FakeBackend>) -> Router {
        router(AppState {
            sessions: sessions::Sessions::new(backend.clone(), 2, sessions::PER_SHED_TIMEOUT),
            backend,
            info: ServerInfo {
                name: "fake".into(),
                version: "0".into(),
                http_port: 1,
                ssh_port: 2,
            },
            default_image: "img".into(),
            api_token: token.map(Arc::from),
            ssh_host_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTests".into()),
        })
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, json)
    }

    fn code(json: &serde_json::Value) -> &str {
        json["error"]["code"].as_str().unwrap_or("<none>")
    }

    #[tokio::test]
    async fn lifecycle_over_the_fake_backend() {
        let app = app(None);
        let (s, body) = call(&app, "POST", "/api/sheds", Some(r#"{"name":"demo"}"#), &[]).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        assert_eq!(body["name"], "demo");
        assert_eq!(body["image"], "img");
        assert_eq!(body["status"], "running");
        let (s, body) = call(&app, "POST", "/api/sheds", Some(r#"{"name":"demo"}"#), &[]).await;
        assert_eq!((s, code(&body)), (StatusCode::CONFLICT, "SHED_EXISTS"));
        let (s, body) = call(&app, "POST", "/api/sheds/demo/start", None, &[]).await;
        assert_eq!(
            (s, code(&body)),
            (StatusCode::CONFLICT, "SHED_ALREADY_RUNNING")
        );
        let (s, body) = call(&app, "POST", "/api/sheds/demo/stop", None, &[]).await;
        assert_eq!(
            (s, body["status"].as_str()),
            (StatusCode::OK, Some("stopped"))
        );
        let (s, body) = call(&app, "POST", "/api/sheds/demo/stop", None, &[]).await;
        assert_eq!(
            (s, code(&body)),
            (StatusCode::CONFLICT, "SHED_ALREADY_STOPPED")
        );
        let (s, body) = call(&app, "GET", "/api/sheds", None, &[]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body["sheds"][0]["name"], "demo");
        let (s, _) = call(&app, "DELETE", "/api/sheds/demo", None, &[]).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, body) = call(&app, "GET", "/api/sheds/demo", None, &[]).await;
        assert_eq!((s, code(&body)), (StatusCode::NOT_FOUND, "SHED_NOT_FOUND"));
    }

    #[tokio::test]
    async fn bad_input_gets_the_error_body() {
        let app = app(None);
        let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(MAX_BODY_BYTES + 10));
        let cases: Vec<(&str, &str, Option<&str>, StatusCode, &str)> = vec![
            (
                "POST",
                "/api/sheds",
                Some(r#"{"name":"Bad Name"}"#),
                StatusCode::BAD_REQUEST,
                "INVALID_NAME",
            ),
            (
                "POST",
                "/api/sheds",
                Some(r#"{"name":"../x"}"#),
                StatusCode::BAD_REQUEST,
                "INVALID_NAME",
            ),
            (
                "POST",
                "/api/sheds",
                Some(r#"{"name":"#),
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
            ),
            (
                "POST",
                "/api/sheds",
                Some(r#"{"name":5}"#),
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
            ),
            (
                "POST",
                "/api/sheds",
                Some(r#"{"name":"a","extra":1}"#),
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
            ),
            (
                "POST",
                "/api/sheds",
                Some(r#"{"name":"a","repo":"not a repo"}"#),
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
            ),
            (
                "POST",
                "/api/sheds",
                Some(r#"{"name":"a","image":" "}"#),
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
            ),
            (
                "POST",
                "/api/sheds",
                Some(&big),
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
            ),
            (
                "GET",
                "/api/sheds/UPPER",
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_NAME",
            ),
            (
                "GET",
                "/api/sheds/a%3Bb",
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_NAME",
            ),
            (
                "DELETE",
                "/api/sheds/a?keep_volume=maybe",
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
            ),
            ("GET", "/api/nope", None, StatusCode::NOT_FOUND, "NOT_FOUND"),
            (
                "PUT",
                "/api/sheds",
                None,
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
            ),
        ];
        for (method, uri, body, status, expected) in cases {
            let (s, json) = call(&app, method, uri, body, &[]).await;
            assert_eq!((s, code(&json)), (status, expected), "{method} {uri}");
            assert!(json["error"]["message"].is_string());
        }
        let (_, list) = call(&app, "GET", "/api/sheds", None, &[]).await;
        assert_eq!(
            list["sheds"],
            serde_json::json!([]),
            "bad input created something"
        );
    }

    #[tokio::test]
    async fn host_key_is_served_in_known_hosts_form() {
        let app = app(None);
        let (s, body) = call(
            &app,
            "GET",
            "/api/ssh-host-key",
            None,
            &[("host", "box.example:8080")],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            body["known_hosts"],
            "[box.example]:2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTests"
        );
        assert_eq!(body["ssh_port"], 2);
    }

    #[tokio::test]
    async fn sessions_over_the_fake_backend() {
        let app = app(None);
        call(&app, "POST", "/api/sheds", Some(r#"{"name":"s"}"#), &[]).await;
        let (st, body) = call(
            &app,
            "POST",
            "/api/sheds/s/sessions",
            Some(r#"{"name":"debug-long"}"#),
            &[],
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        assert_eq!(body["name"], "debug-long");
        // Exact names only: "debug" is not "debug-long".
        for (method, uri, body) in [
            ("GET", "/api/sheds/s/sessions/debug", None),
            ("DELETE", "/api/sheds/s/sessions/debug", None),
            ("GET", "/api/sheds/s/sessions/debug/output", None),
            (
                "POST",
                "/api/sheds/s/sessions/debug/input",
                Some(r#"{"text":"x"}"#),
            ),
        ] {
            let (st, json) = call(&app, method, uri, body, &[]).await;
            assert_eq!(
                (st, code(&json)),
                (StatusCode::NOT_FOUND, "SESSION_NOT_FOUND"),
                "{method} {uri}"
            );
        }
        let (st, _) = call(
            &app,
            "POST",
            "/api/sheds/s/sessions/debug-long/input",
            Some(r#"{"text":"hello","enter":true}"#),
            &[],
        )
        .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        let (_, out) = call(
            &app,
            "GET",
            "/api/sheds/s/sessions/debug-long/output?lines=5",
            None,
            &[],
        )
        .await;
        assert_eq!(out["output"], "hello");
        let (st, json) = call(
            &app,
            "POST",
            "/api/sheds/s/sessions",
            Some(r#"{"name":"debug-long"}"#),
            &[],
        )
        .await;
        assert_eq!((st, code(&json)), (StatusCode::CONFLICT, "SESSION_EXISTS"));
        call(
            &app,
            "POST",
            "/api/sheds/s/sessions",
            Some(r#"{"name":"two"}"#),
            &[],
        )
        .await;
        let (st, json) = call(
            &app,
            "POST",
            "/api/sheds/s/sessions",
            Some(r#"{"name":"three"}"#),
            &[],
        )
        .await;
        assert_eq!((st, code(&json)), (StatusCode::CONFLICT, "MAX_SESSIONS"));
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kill one"));
        for (method, uri, body, status, expected) in [
            (
                "POST",
                "/api/sheds/s/sessions",
                Some(r#"{"name":"a.b"}"#),
                StatusCode::BAD_REQUEST,
                "INVALID_SESSION_NAME",
            ),
            (
                "GET",
                "/api/sheds/s/sessions/a:b",
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_SESSION_NAME",
            ),
            (
                "GET",
                "/api/sheds/s/sessions/two/output?lines=0",
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
            ),
            (
                "GET",
                "/api/sheds/s/sessions/two/output?lines=x",
                None,
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
            ),
            (
                "POST",
                "/api/sheds/s/sessions/two/input",
                Some(r#"{"text":""}"#),
                StatusCode::NO_CONTENT,
                "<none>",
            ),
            (
                "POST",
                "/api/sheds/s/sessions/two/input",
                Some(r#"{"text":"a\u0000b"}"#),
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
            ),
            (
                "GET",
                "/api/sheds/nope/sessions",
                None,
                StatusCode::NOT_FOUND,
                "SHED_NOT_FOUND",
            ),
        ] {
            let (st, json) = call(&app, method, uri, body, &[]).await;
            assert_eq!((st, code(&json)), (status, expected), "{method} {uri}");
        }
        call(&app, "POST", "/api/sheds/s/stop", None, &[]).await;
        let (st, json) = call(&app, "GET", "/api/sheds/s/sessions", None, &[]).await;
        assert_eq!(
            (st, code(&json)),
            (StatusCode::CONFLICT, "SHED_NOT_RUNNING")
        );
    }

    #[tokio::test]
    async fn all_sessions_reports_a_hanging_shed_as_a_warning() {
        let backend = Arc::new(FakeBackend::default());
        let app = app_with(None, backend.clone());
        for shed in ["b", "a", "hung", "off"] {
            call(
                &app,
                "POST",
                "/api/sheds",
                Some(&format!(r#"{{"name":"{shed}"}}"#)),
                &[],
            )
            .await;
        }
        for (shed, session) in [("b", "z"), ("b", "y"), ("a", "x")] {
            call(
                &app,
                "POST",
                &format!("/api/sheds/{shed}/sessions"),
                Some(&format!(r#"{{"name":"{session}"}}"#)),
                &[],
            )
            .await;
        }
        call(&app, "POST", "/api/sheds/off/stop", None, &[]).await;
        backend.hang("hung");
        let service = sessions::Sessions::new(backend, 2, std::time::Duration::from_millis(200));
        let all = service.all().await.unwrap();
        let order: Vec<(String, String)> = all
            .sessions
            .iter()
            .map(|s| (s.shed.clone(), s.name.clone()))
            .collect();
        assert_eq!(
            order,
            [
                ("a".into(), "x".into()),
                ("b".into(), "y".into()),
                ("b".into(), "z".into())
            ]
        );
        assert_eq!(all.warnings.len(), 1, "{:?}", all.warnings);
        assert_eq!(all.warnings[0].shed, "hung");
        assert!(all.warnings[0].message.contains("did not answer"));
    }

    #[tokio::test]
    async fn wrong_content_type_is_415() {
        let app = app(None);
        let req = Request::builder()
            .method("POST")
            .uri("/api/sheds")
            .header("content-type", "text/plain")
            .body(Body::from(r#"{"name":"a"}"#))
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[tokio::test]
    async fn token_is_required_except_for_health() {
        let app = app(Some("s3cret-token"));
        let (s, _) = call(&app, "GET", "/api/health", None, &[]).await;
        assert_eq!(s, StatusCode::OK);
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("s3cret-token"),
            Some("Bearer s3cret-token2"),
        ] {
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
            for (method, uri) in [
                ("GET", "/api/info"),
                ("GET", "/api/sheds"),
                ("POST", "/api/sheds/x/start"),
                ("DELETE", "/api/sheds/x"),
            ] {
                let (s, json) = call(&app, method, uri, None, &headers).await;
                assert_eq!(
                    (s, code(&json)),
                    (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
                    "{method} {uri} {auth:?}"
                );
            }
        }
        let (s, json) = call(
            &app,
            "GET",
            "/api/info",
            None,
            &[("authorization", "Bearer s3cret-token")],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(json["name"], "fake");
    }
}
