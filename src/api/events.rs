//! The event stream's wire types (`GET /api/events`, Server-Sent Events):
//! what changed, on which shed and session, numbered so a client can resume.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What happened. The string forms are the SSE `event:` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventKind {
    /// A shed's container started.
    #[serde(rename = "shed.started")]
    ShedStarted,
    /// A shed's container stopped, died or was removed.
    #[serde(rename = "shed.stopped")]
    ShedStopped,
    /// The server stopped an idle shed (`idle_stop_after`); `data` gives
    /// `idle_secs`, how long it had been idle, and `idle_stop_after`, the
    /// limit in seconds. The container's own `shed.stopped` follows or precedes it.
    #[serde(rename = "shed.auto_stopped")]
    ShedAutoStopped,
    /// A session appeared.
    #[serde(rename = "session.created")]
    SessionCreated,
    /// A session went away.
    #[serde(rename = "session.closed")]
    SessionClosed,
    /// Fields of a session changed; `data` carries the new values.
    #[serde(rename = "session.changed")]
    SessionChanged,
    /// The client missed events (its `Last-Event-ID` is older than the
    /// server keeps): it must re-read the state it cares about.
    #[serde(rename = "resync")]
    Resync,
}

impl EventKind {
    /// The SSE `event:` name, e.g. `session.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ShedStarted => "shed.started",
            EventKind::ShedStopped => "shed.stopped",
            EventKind::ShedAutoStopped => "shed.auto_stopped",
            EventKind::SessionCreated => "session.created",
            EventKind::SessionClosed => "session.closed",
            EventKind::SessionChanged => "session.changed",
            EventKind::Resync => "resync",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event: the SSE `data:` line, as JSON. Its `id` is also the SSE `id:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Increases by one with every event this server process publishes.
    pub id: u64,
    /// What happened.
    pub kind: EventKind,
    /// The shed it happened in (empty for `resync`).
    pub shed: String,
    /// The session, for `session.*` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// When the server saw it.
    pub at: DateTime<Utc>,
    /// Kind-specific detail: for `session.changed`, the fields that changed
    /// and their new values; for `session.created`, the session.
    #[serde(default)]
    pub data: serde_json::Value,
}
