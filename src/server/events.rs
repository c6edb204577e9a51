//! The event bus behind `GET /api/events`: every change to sheds and
//! sessions gets the next id and goes to every live subscriber, and the most
//! recent ones stay in a bounded ring so a client that reconnects with
//! `Last-Event-ID` misses nothing, or is told to resync when it missed too
//! much.
//!
//! Nothing here can grow without bound: the ring holds at most its
//! configured size, and each subscriber reads from a broadcast channel of
//! the same size; a subscriber that falls further behind than that is told
//! it lagged (and should resync) instead of holding memory for it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::broadcast;

use crate::api::events::{Event, EventKind};

/// Default number of events kept for `Last-Event-ID` resumption
/// (the `event_ring_size` server key).
pub const DEFAULT_RING_SIZE: usize = 1024;
/// Largest ring a config may ask for.
pub const MAX_RING_SIZE: usize = 65_536;

/// Where a subscriber starts.
#[derive(Debug)]
pub enum Start {
    /// From now on: no replay.
    Live,
    /// These events, newer than the id the client gave, then live ones.
    Replay(Vec<Arc<Event>>),
    /// The id is older than the ring: the client must resync, then live ones.
    Resync(Arc<Event>),
}

/// The server's event bus; cheap to share behind an `Arc`.
pub struct EventBus {
    ring: Mutex<Ring>,
    sender: broadcast::Sender<Arc<Event>>,
    capacity: usize,
    /// Becomes true at shutdown, so streams end instead of holding the drain.
    closed: tokio::sync::watch::Sender<bool>,
}

struct Ring {
    next_id: u64,
    events: VecDeque<Arc<Event>>,
}

impl EventBus {
    /// A bus keeping the last `capacity` events (clamped to 1..=[`MAX_RING_SIZE`]).
    pub fn new(capacity: usize) -> EventBus {
        let capacity = capacity.clamp(1, MAX_RING_SIZE);
        let (sender, _) = broadcast::channel(capacity);
        EventBus {
            ring: Mutex::new(Ring {
                next_id: 1,
                events: VecDeque::with_capacity(capacity),
            }),
            sender,
            capacity,
            closed: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Publishes an event and returns its id.
    pub fn publish(
        &self,
        kind: EventKind,
        shed: &str,
        session: Option<&str>,
        data: serde_json::Value,
    ) -> u64 {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let event = Arc::new(Event {
            id: ring.next_id,
            kind,
            shed: shed.to_string(),
            session: session.map(str::to_string),
            at: Utc::now(),
            data,
        });
        ring.next_id += 1;
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        // Sent under the lock, so ids reach every subscriber in order and a
        // new subscriber's replay and live stream neither overlap nor gap.
        let _ = self.sender.send(event.clone());
        event.id
    }

    /// Subscribes, resuming after `last_event_id` when given.
    pub fn subscribe(
        &self,
        last_event_id: Option<u64>,
    ) -> (Start, broadcast::Receiver<Arc<Event>>) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = self.sender.subscribe();
        let start = match last_event_id {
            None => Start::Live,
            Some(last) if last + 1 >= ring.next_id => Start::Live,
            Some(last) => match ring.events.front() {
                Some(oldest) if oldest.id <= last + 1 => Start::Replay(
                    ring.events
                        .iter()
                        .filter(|e| e.id > last)
                        .cloned()
                        .collect(),
                ),
                _ => Start::Resync(Arc::new(self.resync_event(ring.next_id))),
            },
        };
        (start, receiver)
    }

    /// A fresh live subscription for a subscriber that lagged, with the
    /// `resync` event to send it first: taken under one lock, so the resync's
    /// id is exactly the newest event the new receiver will not see, and ids
    /// keep increasing on the subscriber's stream.
    pub fn resubscribe(&self) -> (Arc<Event>, broadcast::Receiver<Arc<Event>>) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = self.sender.subscribe();
        (Arc::new(self.resync_event(ring.next_id)), receiver)
    }

    /// The event that tells a client it missed events. It carries the id of
    /// the newest event so far, so resuming from it after a resync works.
    pub fn resync_event(&self, next_id: u64) -> Event {
        Event {
            id: next_id.saturating_sub(1),
            kind: EventKind::Resync,
            shed: String::new(),
            session: None,
            at: Utc::now(),
            data: serde_json::json!({"reason": "the events after your Last-Event-ID are no longer kept; re-read the state"}),
        }
    }

    /// The id of the newest event, 0 before the first.
    pub fn last_id(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).next_id - 1
    }

    /// Ends every subscriber's stream: the server is shutting down, and an
    /// event stream never finishes on its own.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Watches for [`EventBus::close`].
    pub fn closed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// How many events the ring keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(bus: &EventBus, n: usize) {
        for i in 0..n {
            bus.publish(
                EventKind::SessionChanged,
                "s",
                Some("x"),
                serde_json::json!({ "i": i }),
            );
        }
    }

    #[tokio::test]
    async fn live_subscribers_get_every_event_in_order() {
        let bus = EventBus::new(8);
        let (start, mut rx) = bus.subscribe(None);
        assert!(matches!(start, Start::Live));
        publish(&bus, 3);
        for id in 1..=3 {
            assert_eq!(rx.recv().await.unwrap().id, id);
        }
        assert_eq!(bus.last_id(), 3);
    }

    #[test]
    fn resume_replays_what_the_ring_holds_and_resyncs_past_it() {
        let bus = EventBus::new(4);
        publish(&bus, 6); // ids 1..=6; the ring holds 3..=6
        match bus.subscribe(Some(4)).0 {
            Start::Replay(events) => {
                assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [5, 6])
            }
            other => panic!("{other:?}"),
        }
        match bus.subscribe(Some(2)).0 {
            Start::Replay(events) => assert_eq!(events.len(), 4),
            other => panic!("{other:?}"),
        }
        match bus.subscribe(Some(1)).0 {
            Start::Resync(event) => {
                assert_eq!(event.kind, EventKind::Resync);
                assert_eq!(event.id, 6);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(bus.subscribe(Some(6)).0, Start::Live));
        // An id from the future (a restarted server) is treated as current.
        assert!(matches!(bus.subscribe(Some(99)).0, Start::Live));
    }

    #[tokio::test]
    async fn a_subscriber_that_never_reads_holds_at_most_the_ring() {
        let bus = EventBus::new(4);
        let (_, mut rx) = bus.subscribe(None);
        publish(&bus, 100);
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        assert_eq!(bus.ring.lock().unwrap().events.len(), 4);
    }

    #[test]
    fn event_names_are_the_wire_names() {
        let json = serde_json::to_value(EventKind::SessionCreated).unwrap();
        assert_eq!(json, "session.created");
        assert_eq!(EventKind::Resync.as_str(), "resync");
    }
}
