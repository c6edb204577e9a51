//! When snapshots are written and restored, apart from the API's own
//! start, stop, create, delete and kill: a save shortly after every
//! structural change the event bus reports (debounced), a save of every
//! running shed every `snapshot_interval_secs` (for the panes' history),
//! and a restore whenever a shed is seen starting (Docker's restart policy,
//! a start made outside shed) and for every running shed at server start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::api::events::{Event, EventKind};
use crate::server::events::EventBus;

use super::SaveReason;

/// How long after a structural change its save waits, so a burst of
/// changes (a session with several windows) is saved once.
pub const DEBOUNCE: Duration = Duration::from_secs(1);
/// Most sheds with a save pending; past it, changes wait for the periodic save.
pub const MAX_PENDING: usize = 1024;
/// Longest one save or restore may take before the task moves on.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// What the task drives; the Docker backend in production.
#[async_trait]
pub trait Snapshotter: Send + Sync + 'static {
    /// The running sheds.
    async fn running(&self) -> Vec<String>;
    /// Saves one shed's sessions; failures are the implementation's to log.
    async fn save(&self, shed: &str, reason: SaveReason);
    /// Restores one shed's sessions if it runs without them.
    async fn restore(&self, shed: &str);
}

/// Whether `event` changes what a snapshot holds: sessions, windows, panes,
/// cwd, or a `@shed_*` option other than the agent's state.
pub fn is_structural(event: &Event) -> bool {
    match event.kind {
        EventKind::SessionCreated | EventKind::SessionClosed => true,
        EventKind::SessionChanged => event.data.as_object().is_some_and(|data| {
            data.keys().any(|k| {
                matches!(k.as_str(), "windows" | "panes" | "cwd" | "agent")
                    || (k.starts_with("@shed_") && k != "@shed_state")
            })
        }),
        _ => false,
    }
}

/// Runs the task until the bus closes. `interval` of zero turns periodic
/// saves off.
pub async fn run(target: Arc<dyn Snapshotter>, events: Arc<EventBus>, interval: Duration) {
    let (_, mut bus) = events.subscribe(None);
    let closed = until_closed(events.closed());
    tokio::pin!(closed);
    drop(events);
    for shed in target.running().await {
        step(target.restore(&shed)).await;
    }
    let mut pending: HashMap<String, Instant> = HashMap::new();
    let period = if interval.is_zero() {
        Duration::from_secs(365 * 24 * 3600)
    } else {
        interval
    };
    let mut next_periodic = Instant::now() + period;
    loop {
        let next_pending = pending.values().min().copied();
        let wake = next_pending.map_or(next_periodic, |p| p.min(next_periodic));
        tokio::select! {
            _ = &mut closed => return,
            received = bus.recv() => match received {
                Ok(event) => {
                    if event.kind == EventKind::ShedStarted {
                        step(target.restore(&event.shed)).await;
                    } else if is_structural(&event)
                        && (pending.len() < MAX_PENDING || pending.contains_key(&event.shed))
                    {
                        pending.entry(event.shed.clone()).or_insert_with(|| Instant::now() + DEBOUNCE);
                    }
                }
                // Missed events: save everything soon rather than guess.
                Err(broadcast::error::RecvError::Lagged(_)) => next_periodic = Instant::now(),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                let due: Vec<String> = pending
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(s, _)| s.clone())
                    .collect();
                for shed in due {
                    pending.remove(&shed);
                    step(target.save(&shed, SaveReason::Change)).await;
                }
                if next_periodic <= now {
                    next_periodic = now + period;
                    for shed in target.running().await {
                        step(target.save(&shed, SaveReason::Periodic)).await;
                    }
                }
            }
        }
    }
}

/// Completes when the bus is closed (or gone).
async fn until_closed(mut closed: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *closed.borrow_and_update() {
            return;
        }
        if closed.changed().await.is_err() {
            return;
        }
    }
}

async fn step(work: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(STEP_TIMEOUT, work).await.is_err() {
        tracing::warn!("a snapshot save or restore took too long; moving on");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Snapshotter for Recorder {
        async fn running(&self) -> Vec<String> {
            vec!["r".into()]
        }
        async fn save(&self, shed: &str, reason: SaveReason) {
            self.log
                .lock()
                .unwrap()
                .push(format!("save {shed} {}", reason.as_str()));
        }
        async fn restore(&self, shed: &str) {
            self.log.lock().unwrap().push(format!("restore {shed}"));
        }
    }

    #[test]
    fn only_structural_changes_count() {
        let event = |kind, data| Event {
            id: 1,
            kind,
            shed: "s".into(),
            session: Some("a".into()),
            at: chrono::Utc::now(),
            data,
        };
        assert!(is_structural(&event(
            EventKind::SessionCreated,
            json!(null)
        )));
        assert!(is_structural(&event(
            EventKind::SessionChanged,
            json!({"windows": 2})
        )));
        assert!(is_structural(&event(
            EventKind::SessionChanged,
            json!({"@shed_resume_id": "x"})
        )));
        assert!(!is_structural(&event(
            EventKind::SessionChanged,
            json!({"last_activity": 1})
        )));
        assert!(!is_structural(&event(
            EventKind::SessionChanged,
            json!({"@shed_state": "idle"})
        )));
    }

    #[tokio::test(start_paused = true)]
    async fn changes_are_saved_once_after_the_debounce_and_starts_restore() {
        let bus = Arc::new(EventBus::new(64));
        let recorder = Arc::new(Recorder::default());
        let task = tokio::spawn(run(recorder.clone(), bus.clone(), Duration::from_secs(300)));
        tokio::task::yield_now().await;
        for _ in 0..5 {
            bus.publish(EventKind::SessionCreated, "s", Some("a"), json!(null));
        }
        bus.publish(EventKind::ShedStarted, "t", None, json!(null));
        tokio::time::sleep(DEBOUNCE * 2).await;
        assert_eq!(
            *recorder.log.lock().unwrap(),
            ["restore r", "restore t", "save s change"]
        );
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(
            recorder.log.lock().unwrap().last().unwrap(),
            "save r periodic"
        );
        bus.close();
        task.await.unwrap();
    }
}
