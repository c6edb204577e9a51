//! `GET /ui/events` of `shed ui`: every server's event stream merged into
//! one, so the page holds a single EventSource however many servers there
//! are. A browser opens at most six HTTP/1.1 connections to one host; with
//! one long-lived stream per server, a page of six servers had none left
//! for its own requests and stalled.
//!
//! Each server's events pass through as they are, with a `server` field
//! added. `server.open` says a server's stream (re)connected, so the page
//! re-reads that server; `server.down` says it dropped (`detail` says why)
//! while it is retried with backoff. The merged stream keeps no history of
//! its own: a page that reconnects re-reads every server, as on load.
//! Whatever a server sends that is not a well-formed event is dropped, since
//! a server may lie.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::api::events::{Event, EventKind};
use crate::api::validate_shed_name;
use crate::client::api_client::{ApiClient, Backoff, ClientError, EVENTS_IDLE_LIMIT};
use crate::client::sse::SseMessage;

/// Events queued for the page, across all servers; past it, the servers'
/// streams wait for the page (and a server lets a slow reader resync).
pub const MERGED_QUEUE: usize = 256;
/// First wait before reconnecting to a server; doubled up to [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between reconnects.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// The merged stream of `servers`' events, for as long as the page reads it:
/// dropping it (the page went away) stops following every server.
pub fn merged(servers: Vec<ApiClient>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (tx, rx) = mpsc::channel(MERGED_QUEUE);
    let mut followers = JoinSet::new();
    for client in servers {
        followers.spawn(follow(client, tx.clone()));
    }
    drop(tx);
    // The followers live in the stream's state: a JoinSet aborts its tasks
    // when dropped with it.
    let stream = futures_util::stream::unfold((rx, followers), |(mut rx, followers)| async move {
        let event = rx.recv().await?;
        Some((Ok(event), (rx, followers)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Follows one server until the page is gone, reconnecting with backoff.
async fn follow(client: ApiClient, tx: mpsc::Sender<SseEvent>) {
    let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
    loop {
        let detail = match relay(&client, &tx, &mut backoff).await {
            Ok(Relayed::PageGone) => return,
            Ok(Relayed::Ended) => "the server ended the stream".to_string(),
            Err(e) => e.to_string(),
        };
        if tx
            .send(status("server.down", client.server(), Some(&detail)))
            .await
            .is_err()
        {
            return;
        }
        backoff.wait().await;
    }
}

/// How one connection to a server ended, short of an error.
enum Relayed {
    /// The server ended its stream.
    Ended,
    /// The page stopped reading.
    PageGone,
}

/// Relays one connection's events to the page.
async fn relay(
    client: &ApiClient,
    tx: &mpsc::Sender<SseEvent>,
    backoff: &mut Backoff,
) -> Result<Relayed, ClientError> {
    let mut events = client.events(None).await?;
    backoff.reset();
    if tx
        .send(status("server.open", client.server(), None))
        .await
        .is_err()
    {
        return Ok(Relayed::PageGone);
    }
    while let Some(message) = events.next(EVENTS_IDLE_LIMIT).await? {
        let Some(event) = tagged(client.server(), &message) else {
            continue;
        };
        if tx.send(event).await.is_err() {
            return Ok(Relayed::PageGone);
        }
    }
    Ok(Relayed::Ended)
}

/// A server's event for the page, with its `server`; `None` for anything
/// that is not a well-formed event naming a valid shed.
fn tagged(server: &str, message: &SseMessage) -> Option<SseEvent> {
    let event: Event = serde_json::from_str(&message.data).ok()?;
    if event.kind != EventKind::Resync && validate_shed_name(&event.shed).is_err() {
        return None;
    }
    let mut value = serde_json::to_value(&event).ok()?;
    value
        .as_object_mut()?
        .insert("server".into(), server.into());
    Some(
        SseEvent::default()
            .event(event.kind.as_str())
            .id(event.id.to_string())
            .data(value.to_string()),
    )
}

/// A `server.open` or `server.down` event about `server`.
fn status(kind: &'static str, server: &str, detail: Option<&str>) -> SseEvent {
    let data = match detail {
        Some(detail) => json!({"server": server, "detail": detail}),
        None => json!({"server": server}),
    };
    SseEvent::default().event(kind).data(data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(data: &str) -> SseMessage {
        SseMessage {
            id: Some("7".into()),
            event: "session.created".into(),
            data: data.into(),
        }
    }

    #[test]
    fn a_servers_events_are_tagged_and_junk_is_dropped() {
        let good = r#"{"id":7,"kind":"session.created","shed":"a","session":"s","at":"2026-12-07T00:00:00Z","data":null}"#;
        assert!(tagged("one", &message(good)).is_some());
        // A lying server: not an event, an unknown kind, a bad shed name.
        for bad in [
            "not json",
            r#"{"id":7,"kind":"shed.exploded","shed":"a","at":"2026-12-07T00:00:00Z","data":null}"#,
            r#"{"id":7,"kind":"session.created","shed":"../x","session":"s","at":"2026-12-07T00:00:00Z","data":null}"#,
        ] {
            assert!(tagged("one", &message(bad)).is_none(), "{bad}");
        }
    }
}
