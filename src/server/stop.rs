//! The one path every stop through shed takes (`POST /api/sheds/{name}/stop`
//! and auto-stop alike), so that what must happen before a shed stops
//! happens whoever asked.

use crate::api::Shed;
use crate::server::backend::{BackendError, ShedBackend};

/// Stops shed `name` through the backend, whose stop saves the session
/// snapshot first (`DockerBackend::save_before_stop`), so the sessions come
/// back at the next start or SSH login whoever asked for the stop.
pub async fn stop_shed(backend: &dyn ShedBackend, name: &str) -> Result<Shed, BackendError> {
    backend.stop(name).await
}
