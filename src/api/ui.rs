//! Wire types of the web dashboard's own endpoints (besides the API it
//! calls like any client).

use serde::{Deserialize, Serialize};

/// One server the page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UiServer {
    /// The server's configured name, as `/api/info` reports it.
    pub name: String,
    /// The prefix of the server's URLs, relative to the page: `""` when the
    /// page is served by the server itself (the API is at `api/...`).
    pub base: String,
}

/// Body of `GET /ui/servers`: the servers the page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UiServers {
    /// The servers, in the order shown.
    pub servers: Vec<UiServer>,
    /// Whether the request came with the read-only token: the page then
    /// offers no action and its terminals take no input.
    pub read_only: bool,
    /// One event stream for every server, relative to the page (`shed ui`'s
    /// `ui/events`); without it the page follows each server's
    /// `api/events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
}
