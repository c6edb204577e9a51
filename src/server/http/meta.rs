//! Handlers about the server itself: health, facts and the SSH host key.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;

use super::openapi::CommonErrors;
use super::AppState;
use crate::api::{known_hosts_line, ErrorBody, Health, ServerInfo, SshHostKey};
use crate::server::error::ApiError;

#[utoipa::path(
    get,
    path = "/api/health",
    responses(
        (status = 200, description = "The process is up and the SSH gateway serving", body = Health),
        (status = 503, description = "The SSH gateway is down and being restarted (`status` = `degraded`, `gateway` = `down`)", body = Health)
    )
)]
pub(super) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let up = state.gateway.is_up();
    let body = Health {
        status: if up { "ok" } else { "degraded" }.into(),
        alive_tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks() as u64,
        gateway: if up { "up" } else { "down" }.into(),
        control_channels: state.backend.control_channels() as u64,
    };
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

#[utoipa::path(
    get,
    path = "/api/info",
    responses((status = 200, description = "Server facts", body = ServerInfo), CommonErrors),
    security(("bearer" = []))
)]
pub(super) async fn info(State(state): State<AppState>) -> Json<ServerInfo> {
    Json(state.info)
}

#[utoipa::path(
    get,
    path = "/api/ssh-host-key",
    responses(
        (status = 200, description = "The gateway host key", body = SshHostKey),
        (status = 404, description = "No SSH gateway", body = ErrorBody),
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn ssh_host_key(
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
