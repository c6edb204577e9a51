//! Auto-stop (`idle_stop_after`): a running shed whose sessions have all been
//! idle, waiting or exited, with no client attached, for its limit is stopped
//! through the same path as `POST /api/sheds/{name}/stop`, logged, and
//! announced as `shed.auto_stopped`.
//!
//! Every [`LOOK_EVERY`] the task reads each running shed's sessions from its
//! control channel's model, never by an exec. Which sheds run, and their
//! limits, come from a list of the sheds (one Docker call) made again only
//! when a shed event says it changed, or every [`LIST_EVERY`] (see
//! [`ShedList`]). What counts as busy, and why, is [`activity`]:
//! - a session whose agent is `working`;
//! - a session whose agent is `unknown`: the engine has not decided yet (a
//!   fresh channel, a pane never looked at), and stopping on a guess could
//!   kill work; it becomes `idle` after the engine's quiet period anyway;
//! - an attached tmux client, or an open SSH gateway connection;
//! - no control channel serving the shed (`control_mode = false`, or the
//!   channel is reconnecting): nothing can be seen without an exec, so the
//!   shed is left alone.
//!
//! A shed with no session at all is idle. Any busy look restarts the shed's
//! clock, so the limit is measured from the last moment anything happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::agent::AgentState;
use crate::api::events::EventKind;
use crate::api::{SessionInfo, Shed, ShedStatus};
use crate::server::backend::{BackendError, ShedBackend};
use crate::server::events::EventBus;
use crate::server::ssh::presence::Presence;

/// How often the task looks at the running sheds; a shed stops at most this
/// long after its limit.
pub const LOOK_EVERY: Duration = Duration::from_secs(2);

/// Longest the task trusts its list of sheds when no shed event said it
/// changed (a missed event, Docker's event stream reconnecting). Listing
/// 100 sheds at every look cost dockerd about 1% of a core at idle.
pub const LIST_EVERY: Duration = Duration::from_secs(30);

/// The sheds as last listed, listed again when stale: after a shed event
/// ([`ShedList::changed`]) or [`LIST_EVERY`].
#[derive(Debug, Default)]
pub struct ShedList {
    sheds: Vec<Shed>,
    listed_at: Option<Instant>,
}

impl ShedList {
    /// Marks the list stale: a shed started, stopped, was made or removed.
    pub fn changed(&mut self) {
        self.listed_at = None;
    }

    /// The sheds, listed again from `backend` when stale.
    pub async fn get(&mut self, backend: &dyn ShedBackend) -> Result<&[Shed], BackendError> {
        if self.listed_at.is_none_or(|at| at.elapsed() >= LIST_EVERY) {
            self.sheds = backend.list().await?;
            self.listed_at = Some(Instant::now());
        }
        Ok(&self.sheds)
    }
}

/// Whether `kind` may change which sheds run or their limits.
fn changes_sheds(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::ShedStarted | EventKind::ShedStopped | EventKind::ShedAutoStopped
    )
}

/// Whether a shed may count as idle at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Nothing working, nothing attached.
    Idle,
    /// Something keeps the shed up; the reason, for logs.
    Busy(&'static str),
}

/// What one look at a shed finds: `sessions` from its live model (`None`
/// without a channel), `ssh_open` gateway connections to it.
pub fn activity(sessions: Option<&[SessionInfo]>, ssh_open: usize) -> Activity {
    let Some(sessions) = sessions else {
        return Activity::Busy("no control channel");
    };
    if ssh_open > 0 {
        return Activity::Busy("ssh connection open");
    }
    if sessions.iter().any(|s| s.attached > 0) {
        return Activity::Busy("client attached");
    }
    for session in sessions {
        match session.agent.state {
            AgentState::Working => return Activity::Busy("session working"),
            AgentState::Unknown => return Activity::Busy("session state unknown"),
            AgentState::Idle | AgentState::Waiting | AgentState::Exited => {}
        }
    }
    Activity::Idle
}

/// Per running shed, since when it has been idle without a break. Only
/// sheds seen running at the last look are kept, so it holds at most as
/// many entries as there are running sheds.
#[derive(Debug, Default)]
pub struct IdleClocks {
    since: HashMap<String, Instant>,
}

impl IdleClocks {
    /// Records one look at `shed` at `now`; when it is due, that is idle for
    /// at least `limit` (0 = never), returns how long it has been idle.
    pub fn look(
        &mut self,
        shed: &str,
        activity: Activity,
        limit: Duration,
        now: Instant,
    ) -> Option<Duration> {
        if limit.is_zero() || activity != Activity::Idle {
            self.since.remove(shed);
            return None;
        }
        let since = *self.since.entry(shed.to_string()).or_insert(now);
        let idle = now.saturating_duration_since(since);
        (idle >= limit).then_some(idle)
    }

    /// Drops the clock of `shed` (it was stopped, or a stop failed and the
    /// count starts again).
    pub fn forget(&mut self, shed: &str) {
        self.since.remove(shed);
    }

    /// Keeps only the clocks of sheds for which `running` holds.
    pub fn retain(&mut self, running: impl Fn(&str) -> bool) {
        self.since.retain(|shed, _| running(shed));
    }

    /// How many sheds have a clock.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// Whether no shed has a clock.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

/// The limit for a shed: its own (`Some`, from create) or the server's.
pub fn limit_of(own: Option<u64>, server: u64) -> Duration {
    Duration::from_secs(own.unwrap_or(server))
}

/// Starts the auto-stop task. It runs even with the server's
/// `idle_stop_after` off, since a shed may have its own limit.
pub fn spawn(
    backend: Arc<dyn ShedBackend>,
    events: Arc<EventBus>,
    presence: Arc<Presence>,
    server_limit: u64,
    control_mode: bool,
) -> tokio::task::JoinHandle<()> {
    if server_limit > 0 && !control_mode {
        tracing::warn!(
            "idle_stop_after needs control_mode = true to see the sessions; no shed will be auto-stopped"
        );
    }
    tokio::spawn(async move {
        let mut clocks = IdleClocks::default();
        let mut sheds = ShedList::default();
        let mut tick = tokio::time::interval(LOOK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closed = events.closed();
        let (_, mut bus) = events.subscribe(None);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                received = bus.recv() => {
                    match received {
                        Ok(event) if changes_sheds(event.kind) => sheds.changed(),
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => sheds.changed(),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                    continue;
                }
                _ = closed.changed() => return,
            }
            look_once(
                backend.as_ref(),
                &events,
                &presence,
                server_limit,
                &mut clocks,
                &mut sheds,
            )
            .await;
        }
    })
}

/// One look at every shed: advances the clocks and stops the sheds due.
pub async fn look_once(
    backend: &dyn ShedBackend,
    events: &EventBus,
    presence: &Presence,
    server_limit: u64,
    clocks: &mut IdleClocks,
    sheds: &mut ShedList,
) {
    // Docker away (or not yet connected): nobody can be seen, so nobody
    // counts as idle, and a look must not start a connect of its own.
    if !backend.engine_connected() {
        *clocks = IdleClocks::default();
        sheds.changed();
        return;
    }
    let running: Vec<Shed> = match sheds.get(backend).await {
        Ok(sheds) => sheds
            .iter()
            .filter(|s| s.status == ShedStatus::Running)
            .cloned()
            .collect(),
        Err(e) => {
            // Docker away: nobody can be seen, so nobody counts as idle.
            tracing::debug!(error = %e, "auto-stop: listing sheds");
            *clocks = IdleClocks::default();
            sheds.changed();
            return;
        }
    };
    clocks.retain(|name| running.iter().any(|s| s.name == name));
    for shed in running {
        let limit = limit_of(shed.idle_stop_after, server_limit);
        if limit.is_zero() {
            clocks.forget(&shed.name);
            continue;
        }
        let sessions = backend.live_sessions(&shed.name).await;
        let activity = activity(sessions.as_deref(), presence.open(&shed.name));
        let Some(idle) = clocks.look(&shed.name, activity, limit, Instant::now()) else {
            continue;
        };
        clocks.forget(&shed.name);
        sheds.changed();
        match crate::server::stop::stop_shed(backend, &shed.name).await {
            Ok(_) => {
                tracing::info!(
                    shed = %shed.name,
                    idle_secs = idle.as_secs(),
                    idle_stop_after = limit.as_secs(),
                    "auto-stop: stopped an idle shed"
                );
                events.publish(
                    EventKind::ShedAutoStopped,
                    &shed.name,
                    None,
                    serde_json::json!({
                        "idle_secs": idle.as_secs(),
                        "idle_stop_after": limit.as_secs(),
                    }),
                );
            }
            Err(e) => {
                tracing::warn!(shed = %shed.name, error = %e, "auto-stop: stopping an idle shed failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::agent::AgentInfo;

    fn session(state: AgentState, attached: u32) -> SessionInfo {
        let mut info: SessionInfo = serde_json::from_value(serde_json::json!({
            "name": "s",
            "shed": "box",
            "server": "srv",
            "created_at": "2026-01-01T00:00:00Z",
            "attached": attached,
            "windows": 1,
            "status": "idle",
            "last_activity": "2026-01-01T00:00:00Z",
            "idle_seconds": 0,
            "current_command": "sh",
            "cwd": "/workspace",
        }))
        .expect("a session");
        info.agent = AgentInfo {
            state,
            ..info.agent
        };
        info
    }

    const SECS: fn(u64) -> Duration = Duration::from_secs;

    #[tokio::test]
    async fn the_list_of_sheds_is_reused_until_a_shed_event_or_its_age() {
        use crate::server::backend::NewShed;
        use crate::server::fake::FakeBackend;
        let backend = FakeBackend::default();
        let make = |name: &str| NewShed {
            name: name.into(),
            image: "img".into(),
            repo: None,
            idle_stop_after: None,
        };
        backend.create(make("a")).await.unwrap();
        let mut list = ShedList::default();
        let names = |sheds: &[Shed]| sheds.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(list.get(&backend).await.unwrap()), ["a"]);
        backend.create(make("b")).await.unwrap();
        // No event: the last list still serves.
        assert_eq!(names(list.get(&backend).await.unwrap()), ["a"]);
        list.changed();
        assert_eq!(names(list.get(&backend).await.unwrap()), ["a", "b"]);
        backend.create(make("c")).await.unwrap();
        // Too old: listed again.
        list.listed_at = Some(Instant::now() - LIST_EVERY);
        assert_eq!(names(list.get(&backend).await.unwrap()).len(), 3);
        assert!(changes_sheds(EventKind::ShedStarted) && changes_sheds(EventKind::ShedStopped));
        assert!(!changes_sheds(EventKind::SessionChanged));
    }

    #[test]
    fn what_keeps_a_shed_up() {
        use AgentState::*;
        assert_eq!(activity(Some(&[]), 0), Activity::Idle);
        let calm = [session(Idle, 0), session(Waiting, 0), session(Exited, 0)];
        assert_eq!(activity(Some(&calm), 0), Activity::Idle);
        assert_eq!(
            activity(Some(&[session(Idle, 0), session(Working, 0)]), 0),
            Activity::Busy("session working")
        );
        assert_eq!(
            activity(Some(&[session(Unknown, 0)]), 0),
            Activity::Busy("session state unknown")
        );
        assert_eq!(
            activity(Some(&[session(Idle, 1)]), 0),
            Activity::Busy("client attached")
        );
        assert_eq!(
            activity(Some(&calm), 1),
            Activity::Busy("ssh connection open")
        );
        assert_eq!(activity(None, 0), Activity::Busy("no control channel"));
    }

    #[test]
    fn idle_for_the_limit_stops_and_any_busy_look_resets() {
        let t0 = Instant::now();
        let at = |s| t0 + SECS(s);
        let mut clocks = IdleClocks::default();
        let limit = SECS(60);
        assert_eq!(clocks.look("a", Activity::Idle, limit, at(0)), None);
        assert_eq!(clocks.look("a", Activity::Idle, limit, at(59)), None);
        // Working at 59 s: the count starts again.
        let busy = Activity::Busy("session working");
        assert_eq!(clocks.look("a", busy, limit, at(59)), None);
        assert_eq!(clocks.look("a", Activity::Idle, limit, at(60)), None);
        assert_eq!(clocks.look("a", Activity::Idle, limit, at(119)), None);
        // An attached client resets it the same way.
        let attached = Activity::Busy("client attached");
        assert_eq!(clocks.look("a", attached, limit, at(119)), None);
        assert_eq!(clocks.look("a", Activity::Idle, limit, at(120)), None);
        assert_eq!(
            clocks.look("a", Activity::Idle, limit, at(180)),
            Some(SECS(60))
        );
        assert_eq!(
            clocks.look("a", Activity::Idle, limit, at(185)),
            Some(SECS(65))
        );
    }

    #[test]
    fn a_sheds_own_limit_wins_and_zero_is_off() {
        assert_eq!(limit_of(None, 600), SECS(600));
        assert_eq!(limit_of(Some(5), 600), SECS(5));
        assert_eq!(limit_of(Some(0), 600), SECS(0));
        assert_eq!(limit_of(Some(5), 0), SECS(5));
        assert_eq!(limit_of(None, 0), SECS(0));
        let t0 = Instant::now();
        let mut clocks = IdleClocks::default();
        for s in [0, 10_000, 1_000_000] {
            let now = t0 + SECS(s);
            assert_eq!(clocks.look("off", Activity::Idle, SECS(0), now), None);
        }
        assert!(clocks.is_empty(), "an off shed keeps no clock");
        assert_eq!(clocks.look("own", Activity::Idle, SECS(5), t0), None);
        assert_eq!(
            clocks.look("own", Activity::Idle, SECS(5), t0 + SECS(5)),
            Some(SECS(5))
        );
    }

    #[test]
    fn clocks_are_kept_only_for_running_sheds() {
        let t0 = Instant::now();
        let mut clocks = IdleClocks::default();
        for name in ["a", "b", "c"] {
            clocks.look(name, Activity::Idle, SECS(60), t0);
        }
        clocks.retain(|name| name == "b");
        assert_eq!(clocks.len(), 1);
        // "a" comes back: its count starts over.
        assert_eq!(
            clocks.look("a", Activity::Idle, SECS(60), t0 + SECS(60)),
            None
        );
        clocks.forget("b");
        assert_eq!(clocks.len(), 1);
    }
}
