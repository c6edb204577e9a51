//! Handler of `POST /api/sheds/{name}/hooks`: installs the agent state hooks.

use axum::extract::State;
use axum::Json;

use super::extract::{ApiJson, ShedName};
use super::openapi::{BodyErrors, CommonErrors, InShedErrors, ShedErrors};
use super::AppState;
use crate::api::hooks::{HooksReport, InstallHooksRequest};
use crate::api::ErrorBody;
use crate::server::error::ApiError;

#[utoipa::path(
    post,
    path = "/api/sheds/{name}/hooks",
    params(ShedName),
    request_body(content = InstallHooksRequest, description = "`{}` installs the hooks of every supported agent"),
    responses(
        (status = 200, description = "What was installed and what was left untouched, per agent", body = HooksReport),
        (status = 400, description = "Invalid name, or an agent shed has no hooks for", body = ErrorBody),
        ShedErrors,
        InShedErrors,
        (status = 503, description = "The image lacks tmux or sed (TOOL_NOT_AVAILABLE), or Docker is unavailable", body = ErrorBody),
        BodyErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn install_hooks(
    State(state): State<AppState>,
    ShedName(name): ShedName,
    ApiJson(request): ApiJson<InstallHooksRequest>,
) -> Result<Json<HooksReport>, ApiError> {
    let agents = crate::server::hooks::chosen(request.agents.as_deref());
    if agents.is_empty() {
        return Err(ApiError::InvalidRequest(
            "agents is empty; leave it out to install the hooks of every supported agent".into(),
        ));
    }
    let backend = state.backend.clone();
    // Like a create, an install runs to its end even if the client goes away,
    // so no file is left half-written.
    let report = super::to_completion(async move {
        crate::server::hooks::install(backend.as_ref(), &name, &agents).await
    })
    .await?;
    Ok(Json(report))
}
