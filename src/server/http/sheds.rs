//! Handlers of `/api/sheds` and `/api/sheds/{name}`: shed lifecycle.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::extract::{ApiJson, ApiQuery, ShedName};
use super::openapi::{BodyErrors, CommonErrors, ShedErrors};
use super::AppState;
use crate::api::{CreateShedRequest, ErrorBody, Shed, ShedList};
use crate::server::backend::NewShed;
use crate::server::error::ApiError;
use crate::server::repo::RepoSpec;

/// Longest image reference a create accepts.
const MAX_IMAGE_LEN: usize = 512;

#[utoipa::path(
    get,
    path = "/api/sheds",
    responses(
        (status = 200, description = "Every shed, and the volumes kept for a later create", body = ShedList),
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_sheds(State(state): State<AppState>) -> Result<Json<ShedList>, ApiError> {
    let sheds = state.backend.list().await?;
    let mut kept_volumes = state.backend.kept_volumes().await?;
    // A delete records the kept volume before removing the container, so a
    // delete that failed halfway leaves a record for a shed that still exists.
    kept_volumes.retain(|k| !sheds.iter().any(|s| s.name == k.name));
    Ok(Json(ShedList {
        sheds,
        kept_volumes,
    }))
}

/// Validates a create request into a [`NewShed`], filling in `default_image`.
fn new_shed(request: CreateShedRequest, default_image: &str) -> Result<NewShed, ApiError> {
    let ShedName(name) = ShedName::parse(request.name)?;
    let image = match request.image {
        Some(image) if image.trim().is_empty() || image.len() > MAX_IMAGE_LEN => {
            return Err(ApiError::InvalidRequest(format!(
                "image must be 1 to {MAX_IMAGE_LEN} characters"
            )))
        }
        Some(image) if image.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            return Err(ApiError::InvalidRequest(
                "image must not contain whitespace".into(),
            ))
        }
        Some(image) => image,
        None => default_image.to_string(),
    };
    let repo = request
        .repo
        .as_deref()
        .map(RepoSpec::parse)
        .transpose()
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let idle_stop_after = request
        .idle_stop_after
        .map(crate::api::idle::check_idle_stop_after)
        .transpose()
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    Ok(NewShed {
        name,
        image,
        repo,
        idle_stop_after,
    })
}

#[utoipa::path(
    post,
    path = "/api/sheds",
    request_body = CreateShedRequest,
    responses(
        (status = 201, description = "Created and started", body = Shed),
        (status = 400, description = "Invalid name, request, image or clone", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        BodyErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn create_shed(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateShedRequest>,
) -> Result<Response, ApiError> {
    let new = new_shed(request, &state.default_image)?;
    // A create runs to completion (or full rollback) even if the client goes
    // away: dropping it halfway would leave a half-made shed behind.
    let backend = state.backend.clone();
    let install_hooks = state.install_hooks;
    let shed = super::to_completion(async move {
        let mut shed = backend.create(new).await?;
        if install_hooks {
            shed.warnings = hooks_at_create(backend.as_ref(), &shed.name).await;
        }
        Ok::<_, crate::server::backend::BackendError>(shed)
    })
    .await?;
    let location = format!("/api/sheds/{}", shed.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(shed),
    )
        .into_response())
}

/// Installs every agent's hooks into a new shed; what fails or is skipped
/// becomes a warning (logged, and in the create's answer), never a failed create.
async fn hooks_at_create(
    backend: &dyn crate::server::backend::ShedBackend,
    shed: &str,
) -> Vec<String> {
    let agents = crate::server::hooks::chosen(None);
    let warnings = match crate::server::hooks::install(backend, shed, &agents).await {
        Ok(report) => report.skipped(),
        Err(e) => vec![format!("agent state hooks were not installed: {e}")],
    };
    for warning in &warnings {
        tracing::warn!(shed, "{warning}");
    }
    warnings
}

#[utoipa::path(
    get,
    path = "/api/sheds/{name}",
    params(ShedName),
    responses(
        (status = 200, description = "The shed", body = Shed),
        ShedErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_shed(
    State(state): State<AppState>,
    ShedName(name): ShedName,
) -> Result<Json<Shed>, ApiError> {
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
    params(ShedName, DeleteParams),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid name or query", body = ErrorBody),
        (status = 404, description = "No such shed", body = ErrorBody),
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn delete_shed(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<DeleteParams>,
    ShedName(name): ShedName,
) -> Result<StatusCode, ApiError> {
    state.backend.delete(&name, params.keep_volume).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/sheds/{name}/start",
    params(ShedName),
    responses(
        (status = 200, description = "Started", body = Shed),
        ShedErrors,
        (status = 409, description = "Already running", body = ErrorBody),
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn start_shed(
    State(state): State<AppState>,
    ShedName(name): ShedName,
) -> Result<Json<Shed>, ApiError> {
    Ok(Json(state.backend.start(&name).await?))
}

#[utoipa::path(
    post,
    path = "/api/sheds/{name}/stop",
    params(ShedName),
    responses(
        (status = 200, description = "Stopped", body = Shed),
        ShedErrors,
        (status = 409, description = "Already stopped", body = ErrorBody),
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn stop_shed(
    State(state): State<AppState>,
    ShedName(name): ShedName,
) -> Result<Json<Shed>, ApiError> {
    Ok(Json(
        crate::server::stop::stop_shed(state.backend.as_ref(), &name).await?,
    ))
}
