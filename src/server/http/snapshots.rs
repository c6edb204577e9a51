//! Handlers of `/api/sheds/{name}/snapshot...`: what a shed's snapshot
//! holds, and restoring it on demand.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::auth::Access;
use super::extract::{ApiQuery, ShedName};
use super::openapi::{CommonErrors, InShedErrors, ShedErrors};
use super::AppState;
use crate::api::snapshot::{RestoreReport, SnapshotView};
use crate::server::error::ApiError;

/// Query of `POST /api/sheds/{name}/snapshot/restore`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RestoreParams {
    /// Only say what would be done.
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(
    get,
    path = "/api/sheds/{name}/snapshot",
    params(ShedName),
    responses(
        (status = 200, description = "The saved sessions, with a warning per unusable file; to a read-only token, without the sessions' environment values (`env_hidden`)", body = SnapshotView),
        ShedErrors,
        InShedErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_snapshot(
    State(state): State<AppState>,
    access: Access,
    ShedName(name): ShedName,
) -> Result<Json<SnapshotView>, ApiError> {
    let mut view = state.backend.snapshot(&name).await?;
    if access == Access::ReadOnly {
        view.hide_env_values();
    }
    Ok(Json(view))
}

#[utoipa::path(
    post,
    path = "/api/sheds/{name}/snapshot/restore",
    params(ShedName, RestoreParams),
    responses(
        (status = 200, description = "What was (or would be) restored, and warnings", body = RestoreReport),
        ShedErrors,
        InShedErrors,
        CommonErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn restore_snapshot(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<RestoreParams>,
    ShedName(name): ShedName,
) -> Result<Json<RestoreReport>, ApiError> {
    Ok(Json(state.sessions.restore(&name, params.dry_run).await?))
}
