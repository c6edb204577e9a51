//! One tmux control channel per running shed (see [`crate::server::control`]):
//! a long-lived `docker exec` of `tmux -C` attached to the hidden session,
//! opened at server start, on the API's own start and create, on a
//! `shed.started` event and on demand; closed on the API's stop and delete,
//! on `shed.stopped`, and when the shed is found not running. While the
//! shed runs, a closed channel is reopened after [`Backoff`] delays; in the
//! gaps (and when tmux refuses control mode) the exec path answers.
//!
//! Each channel also runs its shed's agent engine
//! ([`crate::server::agent::engine`]): fed every model and a tick, it
//! captures the screens the rules need and publishes agent changes.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::{Arc, Mutex as StdMutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, watch};
use tokio_util::io::StreamReader;

use super::{DockerBackend, KILL_TIMEOUT};
use crate::api::agent::AgentInfo;
use crate::api::events::EventKind;
use crate::api::ShedStatus;
use crate::server::agent::detect::ScreenRules;
use crate::server::agent::engine::{ShedAgents, AGENT_TICK};
use crate::server::backend::BackendError;
use crate::server::control::client::{
    attach_args, ClientConfig, ClientState, ControlClient, ControlError, PROBE_AFTER, PROBE_TIMEOUT,
};
use crate::server::control::model::{Change, Field, Model};
use crate::server::control::Backoff;
use crate::server::events::EventBus;
use crate::server::exec::{ExecRequest, OutputChunk};

/// Most channels open at once; sheds past it are served by exec. The
/// registry holds an entry only while its channel's task runs, which ends
/// when the shed stops or goes away, so it never grows per shed name.
pub const MAX_CHANNELS: usize = 256;

/// How long after a write through a channel its reads ask tmux instead of
/// the model: tmux checks the subscription only once a second, so until
/// then the model may not show the write yet.
pub const FRESH_AFTER_WRITE: Duration = Duration::from_secs(2);

/// The registry of channels, one per running shed.
pub(super) struct Channels {
    enabled: bool,
    slots: StdMutex<HashMap<String, Arc<Slot>>>,
    /// Set by [`DockerBackend::start_channels`]; without it no channel opens.
    backend: OnceLock<Weak<DockerBackend>>,
    events: OnceLock<Arc<EventBus>>,
    /// The screen rules every shed's agent engine decides with.
    rules: Arc<dyn ScreenRules>,
}

/// One shed's agent engine, shared by its channel task and the readers.
pub(super) type Agents = Arc<StdMutex<ShedAgents>>;

/// One shed's channel: the connected client, if any, and its task's stop switch.
struct Slot {
    client: StdMutex<Option<Arc<ControlClient>>>,
    last_write: StdMutex<Option<Instant>>,
    stop: watch::Sender<bool>,
    /// Kept across reconnects, so a state survives a channel's gap.
    agents: Agents,
}

impl Channels {
    /// A registry that opens channels only when `enabled` (`control_mode`).
    pub(super) fn new(enabled: bool, rules: Arc<dyn ScreenRules>) -> Channels {
        Channels {
            enabled,
            slots: StdMutex::new(HashMap::new()),
            backend: OnceLock::new(),
            events: OnceLock::new(),
            rules,
        }
    }

    /// The screen rules in force.
    pub(super) fn rules(&self) -> &Arc<dyn ScreenRules> {
        &self.rules
    }

    /// The agent engine of `shed`'s channel, while it has one.
    pub(super) fn agents(&self, shed: &str) -> Option<Agents> {
        self.slots().get(shed).map(|slot| slot.agents.clone())
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shed's connected client; opens a channel when there is none, for
    /// later requests (this one goes by exec).
    pub(super) fn client(&self, shed: &str) -> Option<Arc<ControlClient>> {
        let slot = self.slots().get(shed).cloned();
        match slot {
            Some(slot) => Self::attached(&slot),
            None => {
                self.open(shed);
                None
            }
        }
    }

    /// The shed's connected client, if any, without opening a channel: for
    /// periodic lookers (auto-stop), which must not retry an open, and log
    /// its refusal, every few seconds for a shed past [`MAX_CHANNELS`].
    pub(super) fn attached_client(&self, shed: &str) -> Option<Arc<ControlClient>> {
        let slot = self.slots().get(shed).cloned()?;
        Self::attached(&slot)
    }

    /// How many channels are attached now.
    pub(super) fn attached_count(&self) -> usize {
        let slots: Vec<Arc<Slot>> = self.slots().values().cloned().collect();
        slots.iter().filter(|s| Self::attached(s).is_some()).count()
    }

    /// The slot's client, while it is attached.
    fn attached(slot: &Slot) -> Option<Arc<ControlClient>> {
        let client = slot
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        client.filter(|c| c.state() == ClientState::Attached)
    }

    /// Whether a read of `shed` must ask tmux rather than trust the model.
    pub(super) fn must_ask(&self, shed: &str) -> bool {
        let Some(slot) = self.slots().get(shed).cloned() else {
            return true;
        };
        let last = *slot.last_write.lock().unwrap_or_else(|e| e.into_inner());
        last.is_some_and(|t| t.elapsed() < FRESH_AFTER_WRITE)
    }

    /// Notes a write through `shed`'s channel (see [`FRESH_AFTER_WRITE`]).
    pub(super) fn wrote(&self, shed: &str) {
        if let Some(slot) = self.slots().get(shed).cloned() {
            *slot.last_write.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
    }

    /// Starts the shed's channel task unless one runs or the registry is full.
    pub(super) fn open(&self, shed: &str) {
        if !self.enabled {
            return;
        }
        let Some(backend) = self.backend.get().cloned() else {
            return;
        };
        let slot = {
            let mut slots = self.slots();
            if slots.contains_key(shed) {
                return;
            }
            if slots.len() >= MAX_CHANNELS {
                tracing::warn!(
                    shed,
                    max = MAX_CHANNELS,
                    "too many control channels; this shed's sessions go by exec"
                );
                return;
            }
            let slot = Arc::new(Slot {
                client: StdMutex::new(None),
                last_write: StdMutex::new(None),
                stop: watch::channel(false).0,
                agents: Arc::new(StdMutex::new(ShedAgents::new(self.rules.clone()))),
            });
            slots.insert(shed.to_string(), slot.clone());
            slot
        };
        let events = self.events.get().cloned();
        tokio::spawn(supervise(backend, shed.to_string(), slot, events));
    }

    /// Stops the shed's channel, if any.
    pub(super) fn close(&self, shed: &str) {
        let slot = self.slots().remove(shed);
        if let Some(slot) = slot {
            let _ = slot.stop.send(true);
        }
    }

    /// Takes `slot` out of the registry when its task ends, unless a newer
    /// slot has replaced it.
    fn forget(&self, shed: &str, slot: &Arc<Slot>) {
        let mut slots = self.slots();
        if slots.get(shed).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(shed);
        }
    }
}

impl DockerBackend {
    /// Turns channels on (unless `control_mode` is off): opens one for every
    /// running shed now, follows `shed.started` / `shed.stopped` on `events`,
    /// and publishes session events from the channels' models there.
    pub fn start_channels(self: &Arc<Self>, events: Arc<EventBus>) {
        if !self.channels.enabled {
            return;
        }
        let _ = self.channels.backend.set(Arc::downgrade(self));
        let _ = self.channels.events.set(events.clone());
        let backend = Arc::downgrade(self);
        tokio::spawn(async move {
            let Some(this) = backend.upgrade() else {
                return;
            };
            // Not connected at start: starting a connect here would make
            // the first requests wait on it; they open channels on demand.
            if this.connected().is_none() {
                return;
            }
            match this.list_sheds().await {
                Ok(sheds) => {
                    for shed in sheds.iter().filter(|s| s.status == ShedStatus::Running) {
                        this.channels.open(&shed.name);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing sheds for control channels"),
            }
        });
        let backend = Arc::downgrade(self);
        let (_, mut bus) = events.subscribe(None);
        tokio::spawn(async move {
            loop {
                let event = match bus.recv().await {
                    Ok(event) => event,
                    // Missed events only delay a channel: requests open it on demand.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(this) = backend.upgrade() else {
                    return;
                };
                match event.kind {
                    EventKind::ShedStarted => this.channels.open(&event.shed),
                    EventKind::ShedStopped => this.channels.close(&event.shed),
                    _ => {}
                }
            }
        });
    }

    /// Starts `tmux -C` attached to the hidden session in the shed, as the
    /// container user, and subscribes to the model. The exec's id is put in
    /// `exec_id` as soon as it is known, so a hung one can be killed.
    async fn connect_channel(
        &self,
        shed: &str,
        exec_id: &mut Option<String>,
    ) -> Result<ControlClient, ChannelError> {
        let mut cmd = vec!["tmux".to_string()];
        cmd.extend(attach_args());
        let request = ExecRequest {
            cmd,
            env: Vec::new(),
            tty: None,
            user: None,
        };
        let exec = self.start_exec(shed, request).await?;
        *exec_id = Some(exec.id.clone());
        let stdout = exec.output.filter_map(|chunk| {
            std::future::ready(match chunk {
                Ok(OutputChunk::Stdout(bytes)) => Some(Ok(Cursor::new(bytes))),
                // tmux -C writes nothing useful there; a failure shows as EOF.
                Ok(OutputChunk::Stderr(_)) => None,
                Err(e) => Some(Err(e)),
            })
        });
        let client = ControlClient::start(
            StreamReader::new(stdout),
            exec.input,
            ClientConfig::default(),
        )
        .await?;
        // tmux older than 3.2 (or one refusing subscriptions) fails here;
        // dropping the client detaches it.
        client.subscribe().await?;
        // tmux fixes a pane's history-limit when it makes the pane: raised
        // now, panes made from here on keep what a snapshot saves.
        if let Some(raise) = self.history_limit_command() {
            if let Err(e) = client.run(&raise).await {
                tracing::debug!(shed, error = %e, "raising history-limit");
            }
        }
        Ok(client)
    }
}

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error)]
enum ChannelError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// Keeps one shed's channel open while the shed runs.
async fn supervise(
    backend: Weak<DockerBackend>,
    shed: String,
    slot: Arc<Slot>,
    events: Option<Arc<EventBus>>,
) {
    let mut stop = slot.stop.subscribe();
    let mut backoff = Backoff::new();
    let mut previous: Option<Arc<Model>> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let Some(this) = backend.upgrade() else {
            break;
        };
        match this.require_running(&shed).await {
            Ok(()) => {}
            // Docker itself is away: keep trying while the shed may still run.
            Err(BackendError::DockerUnavailable(_) | BackendError::Timeout(_)) => {}
            Err(_) => {
                this.channels.forget(&shed, &slot);
                break;
            }
        }
        let mut exec_id = None;
        match this.connect_channel(&shed, &mut exec_id).await {
            Ok(client) => {
                let client = Arc::new(client);
                if previous.is_none() {
                    // Saved sessions come back before the baseline, so they
                    // are part of it rather than news (a no-op when the
                    // API's start already restored them).
                    this.restore_after_start(&shed).await;
                    // The state at open is the baseline, taken before any
                    // request can use the channel: a session made after it
                    // is news even if the first subscription report (at most
                    // a second later) already holds it.
                    match client.snapshot().await {
                        Ok(model) => previous = Some(Arc::new(model)),
                        Err(e) => tracing::debug!(shed, error = %e, "control channel baseline"),
                    }
                }
                backoff.reset();
                tracing::debug!(shed, "control channel open");
                *slot.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
                let server = this.server_name.clone();
                drop(this);
                follow(
                    &client,
                    &shed,
                    &server,
                    &mut previous,
                    &slot.agents,
                    events.as_deref(),
                    &mut stop,
                )
                .await;
                *slot.client.lock().unwrap_or_else(|e| e.into_inner()) = None;
                client.shutdown().await;
                tracing::debug!(shed, "control channel closed");
            }
            Err(e) => {
                drop(this);
                tracing::debug!(shed, error = %e, "control channel could not open");
            }
        }
        // A tmux that hung (or ignores its closed stdin) must not stay
        // behind in the shed, one per attempt.
        if let (Some(id), Some(this)) = (exec_id, backend.upgrade()) {
            let kill = this.signal_exec(&shed, &id, "KILL");
            if let Ok(Err(e)) = tokio::time::timeout(KILL_TIMEOUT, kill).await {
                tracing::debug!(shed, error = %e, "killing a closed control channel's exec");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = stop.changed() => {}
        }
    }
    if let Some(this) = backend.upgrade() {
        this.channels.forget(&shed, &slot);
    }
}

fn lock(agents: &Agents) -> std::sync::MutexGuard<'_, ShedAgents> {
    agents.lock().unwrap_or_else(|e| e.into_inner())
}

/// Feeds every model, and a tick of [`AGENT_TICK`] while the engine wants
/// one (time alone turns a quiet pane idle), to the shed's agent engine,
/// and publishes the differences between successive models and agents
/// until the client closes or the channel is stopped. A tmux quiet for
/// [`PROBE_AFTER`] is probed, and the channel closes when it does not
/// answer: a hung tmux sends nothing, like an idle one, and its model
/// would be served stale. An idle shed wakes only for its probe.
async fn follow(
    client: &ControlClient,
    shed: &str,
    server: &str,
    previous: &mut Option<Arc<Model>>,
    agents: &Agents,
    events: Option<&EventBus>,
    stop: &mut watch::Receiver<bool>,
) {
    let mut models = client.model();
    let mut look = true;
    loop {
        if look {
            let current = models.borrow_and_update().clone();
            if let Some(model) = current {
                let screens = capture_screens(client, shed, agents, &model).await;
                let now = chrono::Utc::now();
                let changed = lock(agents).observe(&model, &screens, now);
                if let Some(bus) = events {
                    let old = previous.as_deref().unwrap_or(&model);
                    publish(bus, shed, server, old, &model, agents, &changed);
                }
                *previous = Some(model);
            }
        }
        let ticking = lock(agents).wants_tick();
        let probe_in = PROBE_AFTER
            .saturating_sub(client.quiet_for())
            .max(AGENT_TICK);
        look = true;
        tokio::select! {
            changed = models.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(AGENT_TICK), if ticking => {}
            _ = tokio::time::sleep(probe_in) => {
                look = false;
                if client.quiet_for() >= PROBE_AFTER {
                    match client.probe(PROBE_TIMEOUT).await {
                        Err(e @ ControlError::Timeout(_)) => {
                            tracing::warn!(shed, error = %e, "tmux did not answer a probe; closing its channel");
                            return;
                        }
                        Err(ControlError::Closed(_)) => return,
                        // Any answer, even an error, shows tmux alive; a
                        // full queue means requests are being answered.
                        Ok(()) | Err(_) => {}
                    }
                }
            }
            _ = client.closed() => return,
            _ = stop.changed() => return,
        }
    }
}

/// The visible screens the agent engine wants for `model`, by pane id; a
/// pane that went away meanwhile is simply left out.
async fn capture_screens(
    client: &ControlClient,
    shed: &str,
    agents: &Agents,
    model: &Model,
) -> HashMap<String, String> {
    let wanted = lock(agents).wanted_captures(model);
    let mut screens = HashMap::new();
    for pane in wanted {
        match client.capture_screen(&pane).await {
            Ok(text) => {
                screens.insert(pane, text);
            }
            Err(e) => tracing::debug!(shed, pane, error = %e, "capturing a pane for its agent"),
        }
    }
    screens
}

/// One event per change from `old` to `new`, with the agent summaries in
/// `agents`; `agent_changes` (from the engine) are carried by the session's
/// `session.changed`, or make one of their own.
fn publish(
    bus: &EventBus,
    shed: &str,
    server: &str,
    old: &Model,
    new: &Model,
    agents: &Agents,
    agent_changes: &BTreeMap<String, AgentInfo>,
) {
    let now = chrono::Utc::now();
    let mut agent_changes = agent_changes.clone();
    for change in old.diff(new) {
        match change {
            Change::Created(name) => {
                agent_changes.remove(&name);
                let data = new
                    .get(&name)
                    .and_then(|s| {
                        let mut info = s.info(shed, server, now)?;
                        info.agent = lock(agents).agent_of(s, now);
                        Some(info)
                    })
                    .and_then(|info| serde_json::to_value(info).ok())
                    .unwrap_or(Value::Null);
                bus.publish(EventKind::SessionCreated, shed, Some(&name), data);
            }
            Change::Closed(name) => {
                agent_changes.remove(&name);
                bus.publish(EventKind::SessionClosed, shed, Some(&name), Value::Null);
            }
            Change::Changed { name, fields } => {
                let Some(session) = new.get(&name) else {
                    continue;
                };
                let mut data = changed_values(session, &fields, shed, server, now);
                if let (Some(agent), Value::Object(map)) = (agent_changes.remove(&name), &mut data)
                {
                    map.insert("agent".into(), json!(agent));
                }
                bus.publish(EventKind::SessionChanged, shed, Some(&name), data);
            }
        }
    }
    for (name, agent) in agent_changes {
        if new.get(&name).is_some() {
            let data = json!({ "agent": agent });
            bus.publish(EventKind::SessionChanged, shed, Some(&name), data);
        }
    }
}

/// The changed fields of `session` and their new values, as the API names them.
fn changed_values(
    session: &crate::server::control::model::Session,
    fields: &[Field],
    shed: &str,
    server: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let info = session.info(shed, server, now);
    let pane = session.active_pane();
    let mut out = Map::new();
    for field in fields {
        match field {
            Field::Attached => {
                out.insert("attached".into(), json!(session.attached));
                if let Some(info) = &info {
                    out.insert("status".into(), json!(info.status));
                }
            }
            Field::Windows => {
                out.insert("windows".into(), json!(session.windows));
            }
            Field::Activity => {
                if let Some(info) = &info {
                    out.insert("last_activity".into(), json!(info.last_activity));
                    out.insert("status".into(), json!(info.status));
                }
            }
            Field::CurrentCommand => {
                out.insert("current_command".into(), json!(session.current_command));
            }
            Field::Cwd => {
                out.insert("cwd".into(), json!(session.cwd));
            }
            Field::Bell => {
                out.insert("bell".into(), json!(session.bell()));
            }
            Field::Panes => {
                out.insert("panes".into(), json!(session.panes.len()));
            }
            Field::PaneDead => {
                out.insert("pane_dead".into(), json!(pane.is_some_and(|p| p.dead)));
                out.insert(
                    "pane_dead_status".into(),
                    json!(pane.and_then(|p| p.dead_status)),
                );
            }
            Field::Option(name) => {
                let value = session
                    .options
                    .get(name)
                    .or_else(|| pane.and_then(|p| p.options.get(name)));
                out.insert(name.clone(), json!(value));
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::control::model::Session;

    fn session(name: &str, attached: u32, cwd: &str) -> Session {
        Session {
            attached,
            cwd: cwd.into(),
            ..Session::sample(name, Vec::new())
        }
    }

    #[test]
    fn model_changes_become_events_carrying_the_new_values() {
        let bus = EventBus::new(16);
        let (_, mut events) = bus.subscribe(None);
        let old = Model::of(vec![session("a", 0, "/w"), session("b", 0, "/w")]);
        let new = Model::of(vec![session("a", 1, "/tmp"), session("c", 0, "/w")]);
        let agents = agents();
        let none = BTreeMap::new();
        publish(&bus, "s", "srv", &old, &new, &agents, &none);
        let mut got = Vec::new();
        while let Ok(event) = events.try_recv() {
            got.push(event);
        }
        let summary: Vec<(EventKind, Option<&str>)> =
            got.iter().map(|e| (e.kind, e.session.as_deref())).collect();
        assert_eq!(
            summary,
            [
                (EventKind::SessionClosed, Some("b")),
                (EventKind::SessionChanged, Some("a")),
                (EventKind::SessionCreated, Some("c")),
            ]
        );
        assert!(got.iter().all(|e| e.shed == "s"));
        assert_eq!(
            got[1].data,
            json!({"attached": 1, "status": "attached", "cwd": "/tmp"})
        );
        assert_eq!(got[2].data["name"], "c");
        assert_eq!(got[2].data["source"], "channel");
        // Nothing changed: nothing published.
        publish(&bus, "s", "srv", &new, &new, &agents, &none);
        assert!(events.try_recv().is_err());
    }

    fn agents() -> Agents {
        let rules = Arc::new(crate::server::agent::rules::Rules::builtin());
        Arc::new(StdMutex::new(ShedAgents::new(rules)))
    }

    #[test]
    fn agent_changes_ride_on_session_changed_or_make_their_own() {
        let bus = EventBus::new(16);
        let (_, mut events) = bus.subscribe(None);
        let old = Model::of(vec![session("a", 0, "/w"), session("b", 0, "/w")]);
        let new = Model::of(vec![session("a", 1, "/w"), session("b", 0, "/w")]);
        let waiting = AgentInfo {
            state: crate::api::agent::AgentState::Waiting,
            reason: "bell".into(),
            ..AgentInfo::default()
        };
        let changes: BTreeMap<String, AgentInfo> = [
            ("a".to_string(), waiting.clone()),
            ("b".to_string(), waiting.clone()),
            ("gone".to_string(), waiting.clone()),
        ]
        .into();
        publish(&bus, "s", "srv", &old, &new, &agents(), &changes);
        let mut got = Vec::new();
        while let Ok(event) = events.try_recv() {
            got.push(event);
        }
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].session.as_deref(), Some("a"));
        assert_eq!(got[0].data["attached"], 1);
        assert_eq!(got[0].data["agent"]["state"], "waiting");
        assert_eq!(got[1].session.as_deref(), Some("b"));
        assert_eq!(got[1].kind, EventKind::SessionChanged);
        assert_eq!(got[1].data, json!({ "agent": waiting }));
    }

    #[test]
    fn the_registry_holds_nothing_without_a_backend_or_when_off() {
        let rules = Arc::new(crate::server::agent::rules::Rules::builtin());
        let off = Channels::new(false, rules.clone());
        assert!(off.client("x").is_none());
        assert!(off.slots().is_empty());
        // Enabled, but start_channels never ran (a backend built for tests).
        let idle = Channels::new(true, rules);
        assert!(idle.client("x").is_none());
        assert!(idle.slots().is_empty());
    }
}
