//! Watches Docker's event stream for this server's shed containers and
//! publishes `shed.started` and `shed.stopped` on the event bus.
//!
//! Only containers carrying this server's marker label are asked for, and
//! the shed name comes from its name label and is checked against the name
//! rule, so a container made outside shed (or by another server sharing the
//! engine) never produces an event. `docker stop` reports kill, die and stop
//! in a row, and `docker rm` of a stopped container reports destroy: each
//! container's last published state is kept so a stop is announced once.
//! When Docker goes away the watcher retries with backoff, resuming just
//! after the last event it saw, so a short outage loses nothing.
//!
//! The watcher never connects by itself: it waits for the backend's shared
//! client (made at start, or by the first request once Docker is up) and
//! streams over it. Connecting on its own would take the backend's connect
//! slot, or add hung connections to a hung engine, and make requests fail
//! or wait; the price is that with Docker down at start, no event flows
//! until some request has reached Docker.

use std::collections::HashMap;
use std::sync::Arc;

use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;

use super::{DockerBackend, Naming};
use crate::api::events::EventKind;
use crate::api::validate_shed_name;
use crate::server::control::Backoff;
use crate::server::events::EventBus;

/// Most containers whose last state is remembered for deduplication; past
/// it the memory is cleared, which at worst repeats one stop or start.
pub const MAX_TRACKED: usize = 4096;

/// The container actions the watcher asks Docker for.
const ACTIONS: [&str; 4] = ["start", "die", "stop", "destroy"];

/// Starts the watcher; it runs for the life of the process.
pub fn spawn(backend: Arc<DockerBackend>, bus: Arc<EventBus>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(backend, bus))
}

async fn run(backend: Arc<DockerBackend>, bus: Arc<EventBus>) {
    let naming = backend.naming().clone();
    let mut states = States::default();
    let mut backoff = Backoff::new();
    // Docker's clock, in nanoseconds, of the last event seen.
    let mut last_seen: Option<i64> = None;
    loop {
        match backend.connected() {
            Some(docker) => {
                let marker = naming.filter();
                let filters = HashMap::from([
                    ("type", vec!["container"]),
                    ("label", vec![marker.as_str()]),
                    ("event", ACTIONS.to_vec()),
                ]);
                let mut options = EventsOptionsBuilder::new().filters(&filters);
                let since = last_seen.map(|nanos| {
                    let next = nanos.saturating_add(1);
                    format!("{}.{:09}", next / 1_000_000_000, next % 1_000_000_000)
                });
                if let Some(since) = &since {
                    options = options.since(since);
                }
                let mut stream = docker.events(Some(options.build()));
                tracing::debug!("watching Docker events");
                while let Some(message) = stream.next().await {
                    match message {
                        Ok(message) => {
                            backoff.reset();
                            if let Some(nanos) = message.time_nano {
                                last_seen = Some(nanos);
                            }
                            if let Some((kind, shed, container)) = states.observe(&naming, &message)
                            {
                                bus.publish(
                                    kind,
                                    &shed,
                                    None,
                                    serde_json::json!({ "container": container }),
                                );
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "Docker event stream failed; reconnecting");
                            break;
                        }
                    }
                }
            }
            None => tracing::debug!("Docker not reached yet; the event watcher waits"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Whether each container was last announced running.
#[derive(Default)]
struct States {
    running: HashMap<String, bool>,
}

impl States {
    /// The event to publish for `message`, if any: kind, shed name and
    /// container name.
    fn observe(
        &mut self,
        naming: &Naming,
        message: &EventMessage,
    ) -> Option<(EventKind, String, String)> {
        let actor = message.actor.as_ref()?;
        let attributes = actor.attributes.as_ref()?;
        if attributes.get(naming.marker()).map(String::as_str) != Some("true") {
            return None;
        }
        let shed = attributes.get(&naming.label("name"))?;
        validate_shed_name(shed).ok()?;
        let id = actor.id.clone()?;
        let container = attributes.get("name").cloned().unwrap_or_default();
        let (kind, running) = match message.action.as_deref()? {
            "start" => (EventKind::ShedStarted, true),
            "die" | "stop" | "destroy" => (EventKind::ShedStopped, false),
            _ => return None,
        };
        let before = if message.action.as_deref() == Some("destroy") {
            self.running.remove(&id)
        } else {
            if self.running.len() >= MAX_TRACKED && !self.running.contains_key(&id) {
                self.running.clear();
            }
            self.running.insert(id, running)
        };
        (before != Some(running)).then(|| (kind, shed.clone(), container))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn message(naming: &Naming, id: &str, action: &str, name: &str) -> EventMessage {
        EventMessage {
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some(id.into()),
                attributes: Some(HashMap::from([
                    (naming.marker().to_string(), "true".to_string()),
                    (naming.label("name"), name.to_string()),
                    ("name".to_string(), naming.container(name)),
                ])),
            }),
            ..Default::default()
        }
    }

    fn kinds(states: &mut States, naming: &Naming, steps: &[(&str, &str)]) -> Vec<EventKind> {
        steps
            .iter()
            .filter_map(|(id, action)| states.observe(naming, &message(naming, id, action, "box")))
            .map(|(kind, _, _)| kind)
            .collect()
    }

    #[test]
    fn a_stop_is_announced_once() {
        let naming = Naming::new(Some("t"));
        let mut s = States::default();
        let got = kinds(
            &mut s,
            &naming,
            &[
                ("c1", "start"),
                ("c1", "die"),
                ("c1", "stop"),
                ("c1", "start"),
                ("c1", "die"),
                ("c1", "destroy"),
            ],
        );
        use EventKind::*;
        assert_eq!(got, [ShedStarted, ShedStopped, ShedStarted, ShedStopped]);
        // A stopped container removed before the watcher saw it stop.
        assert_eq!(kinds(&mut s, &naming, &[("c2", "destroy")]), [ShedStopped]);
    }

    #[test]
    fn foreign_and_badly_named_containers_are_ignored() {
        let naming = Naming::new(Some("t"));
        let other = Naming::new(Some("u"));
        let mut s = States::default();
        assert!(s
            .observe(&naming, &message(&other, "c", "start", "box"))
            .is_none());
        assert!(s
            .observe(&naming, &message(&naming, "c", "start", "../etc"))
            .is_none());
        let mut unlabeled = message(&naming, "c", "start", "box");
        unlabeled.actor.as_mut().unwrap().attributes = None;
        assert!(s.observe(&naming, &unlabeled).is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let naming = Naming::new(None);
        let mut s = States::default();
        for i in 0..MAX_TRACKED * 2 {
            s.observe(&naming, &message(&naming, &i.to_string(), "start", "box"));
            assert!(s.running.len() <= MAX_TRACKED);
        }
    }
}
