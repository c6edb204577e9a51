//! Reading `GET /api/events` as a client would.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;
use shed::client::sse::{SseMessage, SseParser};

/// How long any one expected event may take to arrive.
pub const EVENT_WAIT: Duration = Duration::from_secs(60);

/// An open event stream.
pub struct Events {
    /// The HTTP response the stream comes in.
    pub response: reqwest::Response,
    parser: SseParser,
    ready: VecDeque<SseMessage>,
}

/// One received event: its SSE id, name and JSON.
#[derive(Debug, Clone)]
pub struct Got {
    /// The SSE id.
    pub id: u64,
    /// The event name.
    pub kind: String,
    /// The event.
    pub json: Value,
}

impl Events {
    /// Opens the stream at `url`, checking it is one.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Events {
        let mut request = reqwest::Client::new().get(url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("events request");
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Events {
            response,
            parser: SseParser::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next event, or `None` when none comes before `deadline`.
    pub async fn next_before(&mut self, deadline: Instant) -> Option<Got> {
        loop {
            if let Some(m) = self.ready.pop_front() {
                let json: Value = serde_json::from_str(&m.data).expect("event JSON");
                let id: u64 = m.id.expect("every event has an id").parse().unwrap();
                assert_eq!(json["id"], id, "the SSE id is the event's id");
                assert_eq!(json["kind"], m.event.as_str());
                return Some(Got {
                    id,
                    kind: m.event,
                    json,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .ok()?;
            let chunk = chunk.expect("event stream").expect("stream ended");
            self.ready.extend(self.parser.push(&chunk).unwrap());
        }
    }

    /// Every event up to and including the first for which `want` holds.
    pub async fn until(&mut self, what: &str, want: impl Fn(&Got) -> bool) -> Vec<Got> {
        let deadline = Instant::now() + EVENT_WAIT;
        let mut seen = Vec::new();
        loop {
            match self.next_before(deadline).await {
                Some(got) => {
                    let done = want(&got);
                    seen.push(got);
                    if done {
                        return seen;
                    }
                }
                None => panic!("no {what} within {EVENT_WAIT:?}; saw {seen:#?}"),
            }
        }
    }
}
