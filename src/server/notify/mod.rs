//! Server-side notifications (`[[notify]]` in server.toml): when a session's
//! agent settles in a state a target asks for (by default `waiting` or
//! `exited`), tell someone by webhook, ntfy topic or command.
//!
//! One dispatcher task reads the [`EventBus`] and runs each target's
//! [`debounce::Debouncer`]; what comes out goes into the target's bounded
//! queue, which one sender task per target drains, retrying with backoff.
//! Everything ends when the bus closes at shutdown.

pub mod command;
pub mod config;
pub mod debounce;
mod http;
pub mod ntfy;
pub mod payload;
pub mod webhook;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use config::{NotifyConfig, NotifyKind};
use debounce::{Debouncer, Ready, Rules};
use payload::Payload;

use crate::server::events::EventBus;

/// Most notifications waiting for one target; past it the oldest is dropped
/// (and counted, with a warning): a dead receiver must not hold memory.
pub const QUEUE_CAPACITY: usize = 64;
/// The wait before the first retry; it doubles with each further one.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Whether another attempt may succeed (network trouble, 5xx, 429).
    pub retry: bool,
    /// What went wrong.
    pub message: String,
}

/// Why a target cannot start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// Its entry is wrong (loading checked it, but a secret file may have
    /// changed since).
    #[error(transparent)]
    Config(#[from] config::NotifyConfigError),
    /// No HTTP client could be built for it.
    #[error("building the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

enum Channel {
    Webhook(webhook::Webhook),
    Ntfy(ntfy::Ntfy),
    Command(command::CommandTarget),
}

impl Channel {
    fn new(config: &NotifyConfig) -> Result<Channel, StartError> {
        let timeout = Duration::from_secs(config.timeout_secs);
        let url = config.url.clone().unwrap_or_default();
        Ok(match config.kind {
            NotifyKind::Webhook => Channel::Webhook(webhook::Webhook {
                url,
                secret: config.secret_bytes()?,
                client: http::client(timeout)?,
            }),
            NotifyKind::Ntfy => Channel::Ntfy(ntfy::Ntfy {
                url,
                client: http::client(timeout)?,
            }),
            NotifyKind::Command => Channel::Command(command::CommandTarget {
                argv: config.command.clone(),
                timeout,
            }),
        })
    }

    async fn deliver(&self, payload: &Payload) -> Result<(), Failure> {
        match self {
            Channel::Webhook(w) => w.deliver(payload).await,
            Channel::Ntfy(n) => n.deliver(payload).await,
            Channel::Command(c) => c.deliver(payload).await,
        }
    }
}

/// A target's queue: bounded, dropping the oldest.
struct Queue {
    items: Mutex<VecDeque<Payload>>,
    wake: tokio::sync::Notify,
    dropped: AtomicU64,
}

impl Queue {
    fn push(&self, payload: Payload, target: &str) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if items.len() >= QUEUE_CAPACITY {
            items.pop_front();
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                target_name = target,
                capacity = QUEUE_CAPACITY,
                dropped,
                "notify: queue full; dropped the oldest notification"
            );
        }
        items.push_back(payload);
        drop(items);
        self.wake.notify_one();
    }

    fn pop(&self) -> Option<Payload> {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

struct Target {
    name: String,
    debouncer: Debouncer,
    queue: Arc<Queue>,
}

/// The wait before retry number `attempt` (0 for the first retry).
pub fn backoff(attempt: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(BACKOFF_MAX)
}

/// Starts the dispatcher for `configs` on `bus`, or nothing when there are
/// none; the tasks end when the bus closes. Fails when a target cannot be
/// set up (a secret file that went away since the config was checked).
pub fn spawn(
    configs: &[NotifyConfig],
    server: &str,
    bus: Arc<EventBus>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if configs.is_empty() {
        return Ok(None);
    }
    let boot = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut targets = Vec::new();
    let mut senders = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let name = format!("notify[{}] {}", i + 1, config.kind.as_str());
        let channel =
            Channel::new(config).map_err(|e| anyhow::anyhow!("{name}: cannot start: {e}"))?;
        let queue = Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            dropped: AtomicU64::new(0),
        });
        senders.push(tokio::spawn(send_loop(
            name.clone(),
            channel,
            queue.clone(),
            config.retries,
            bus.closed(),
        )));
        targets.push(Target {
            name,
            debouncer: Debouncer::new(Rules::of(config)),
            queue,
        });
    }
    // Subscribed before returning, so no event published after start-up is missed.
    let (_, receiver) = bus.subscribe(None);
    let closed = bus.closed();
    let server = server.to_string();
    tracing::info!(targets = targets.len(), "notifications on");
    Ok(Some(tokio::spawn(async move {
        dispatch(targets, receiver, closed, &server, boot).await;
        for sender in senders {
            let _ = sender.await;
        }
    })))
}

async fn dispatch(
    mut targets: Vec<Target>,
    mut receiver: tokio::sync::broadcast::Receiver<Arc<crate::api::events::Event>>,
    mut closed: tokio::sync::watch::Receiver<bool>,
    server: &str,
    boot: u64,
) {
    let enqueue = |target: &Target, ready: Vec<Ready>| {
        for r in ready {
            let payload = Payload::new(server, boot, r.event_id, &r.shed, &r.session, &r.agent);
            tracing::info!(
                target_name = %target.name,
                shed = %r.shed,
                session = %r.session,
                state = %r.agent.state,
                "notify: sending"
            );
            target.queue.push(payload, &target.name);
        }
    };
    loop {
        if *closed.borrow() {
            return;
        }
        let next = targets.iter().filter_map(|t| t.debouncer.next_due()).min();
        tokio::select! {
            event = receiver.recv() => match event {
                Ok(event) => {
                    let now = Instant::now();
                    for target in &mut targets {
                        let ready = target.debouncer.observe(&event, now);
                        enqueue(target, ready);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // The receiver goes on from the oldest event still held;
                    // a state change in the gap is picked up by the next one.
                    tracing::warn!(missed, "notify: fell behind the event stream; some changes may be missed");
                }
                Err(RecvError::Closed) => return,
            },
            _ = sleep_until(next) => {}
            _ = closed.changed() => return,
        }
        let now = Instant::now();
        for target in &mut targets {
            let ready = target.debouncer.poll(now);
            enqueue(target, ready);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn send_loop(
    name: String,
    channel: Channel,
    queue: Arc<Queue>,
    retries: u32,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let payload = loop {
            if *closed.borrow() {
                return;
            }
            // Registered before looking, so a push in between still wakes us.
            let woken = queue.wake.notified();
            if let Some(payload) = queue.pop() {
                break payload;
            }
            tokio::select! {
                _ = woken => {}
                _ = closed.changed() => return,
            }
        };
        tokio::select! {
            _ = deliver(&name, &channel, &payload, retries) => {}
            _ = closed.changed() => return,
        }
    }
}

/// Delivers with retries; logs the outcome.
async fn deliver(name: &str, channel: &Channel, payload: &Payload, retries: u32) {
    let mut attempt = 0;
    loop {
        match channel.deliver(payload).await {
            Ok(()) => {
                tracing::debug!(target_name = name, id = %payload.id, attempt, "notify: delivered");
                return;
            }
            Err(failure) if failure.retry && attempt < retries => {
                let wait = backoff(attempt);
                tracing::warn!(
                    target_name = name,
                    id = %payload.id,
                    error = %failure.message,
                    retry_in_ms = wait.as_millis() as u64,
                    "notify: delivery failed; retrying"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(failure) => {
                tracing::warn!(
                    target_name = name,
                    id = %payload.id,
                    error = %failure.message,
                    attempts = attempt + 1,
                    "notify: delivery failed; giving up"
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::agent::AgentInfo;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), BACKOFF_BASE);
        assert_eq!(backoff(1), BACKOFF_BASE * 2);
        assert_eq!(backoff(2), BACKOFF_BASE * 4);
        assert_eq!(backoff(20), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_counts() {
        let queue = Queue {
            items: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            dropped: AtomicU64::new(0),
        };
        for i in 0..QUEUE_CAPACITY as u64 + 3 {
            queue.push(
                Payload::new("srv", 1, i, "dev", "main", &AgentInfo::default()),
                "test",
            );
        }
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(queue.items.lock().unwrap().len(), QUEUE_CAPACITY);
        assert_eq!(queue.pop().unwrap().event_id, 3);
    }

    #[tokio::test]
    async fn no_entries_no_dispatcher() {
        let bus = Arc::new(EventBus::new(8));
        assert!(spawn(&[], "srv", bus).unwrap().is_none());
    }
}
