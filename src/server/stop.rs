//! The one path every stop through shed takes (`POST /api/sheds/{name}/stop`
//! and auto-stop alike), so that what must happen before a shed stops
//! happens whoever asked.

use crate::api::Shed;
use crate::server::backend::{BackendError, ShedBackend};

/// Runs before every stop through shed, while the shed still runs. The
/// session snapshot (saved so the sessions come back at the next start or
/// SSH login) is taken here; until the snapshot module lands it does nothing.
pub async fn before_stop(backend: &dyn ShedBackend, name: &str) {
    let _ = (backend, name);
}

/// Stops shed `name`: [`before_stop`], then the backend's stop.
pub async fn stop_shed(backend: &dyn ShedBackend, name: &str) -> Result<Shed, BackendError> {
    before_stop(backend, name).await;
    backend.stop(name).await
}
