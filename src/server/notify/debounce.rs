//! Which agent state changes become notifications, and when: the filter and
//! debounce state machine of one `[[notify]]` target, driven by events and an
//! injected clock so its rules can be tested without waiting.
//!
//! The rules:
//! - Only agent *state* changes count; a repeated state (the event stream
//!   repeating it, or a new reason for the same state) changes nothing.
//! - A new state must hold for `hold` before it counts ("settles"); a
//!   `waiting` that turns back to `working` within it sends nothing, and
//!   neither does a flap back to the state that had settled before.
//! - A settled state notifies when it is one of `states` and its shed passes
//!   `sheds`; at most once per session per `interval`: a notification due
//!   sooner waits for the interval's end and is sent then if its state still
//!   holds (a later settled state replaces it).
//! - While someone is attached to the session, a settling state is not sent
//!   (they see it), unless `include_attached`.
//! - A session that closes, or whose shed stops, is forgotten; an `exited`
//!   still inside its hold is sent at once, since a closed session cannot
//!   flap back.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::agent::{AgentInfo, AgentState};
use crate::api::events::{Event, EventKind};

/// Most sessions one target tracks; past it the least recently seen one is
/// forgotten (closed sessions are forgotten anyway; this bounds a stream
/// whose `session.closed` events were lost to a lag).
pub const MAX_TRACKED_SESSIONS: usize = 4096;

/// What a target notifies about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// States that notify.
    pub states: Vec<AgentState>,
    /// Sheds that notify; empty means all.
    pub sheds: Vec<String>,
    /// How long a state must hold.
    pub hold: Duration,
    /// Least time between two notifications for one session.
    pub interval: Duration,
    /// Notify about sessions someone is attached to.
    pub include_attached: bool,
}

impl Rules {
    /// The rules of a `[[notify]]` entry.
    pub fn of(config: &super::NotifyConfig) -> Rules {
        Rules {
            states: config.agent_states(),
            sheds: config.sheds.clone(),
            hold: Duration::from_secs(config.min_hold_secs),
            interval: Duration::from_secs(config.min_interval_secs),
            include_attached: config.include_attached,
        }
    }

    fn wants_shed(&self, shed: &str) -> bool {
        self.sheds.is_empty() || self.sheds.iter().any(|s| s == shed)
    }
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The shed.
    pub shed: String,
    /// The session.
    pub session: String,
    /// The agent, as last seen.
    pub agent: AgentInfo,
    /// The event that brought its state.
    pub event_id: u64,
}

#[derive(Debug)]
struct Tracked {
    /// The agent as last seen, and the event that brought its state.
    agent: Option<AgentInfo>,
    event_id: u64,
    /// When the current state was first seen.
    changed_at: Instant,
    /// The last state that held for the hold.
    settled: Option<AgentState>,
    /// A settled state waits to be sent (for the interval's end).
    owed: bool,
    last_sent: Option<Instant>,
    attached: u32,
    /// When to look at this session again.
    due: Option<Instant>,
    seen: Instant,
}

/// The state machine of one target.
#[derive(Debug)]
pub struct Debouncer {
    rules: Rules,
    sessions: HashMap<(String, String), Tracked>,
}

impl Debouncer {
    /// A debouncer with no sessions.
    pub fn new(rules: Rules) -> Debouncer {
        Debouncer {
            rules,
            sessions: HashMap::new(),
        }
    }

    /// How many sessions it remembers.
    pub fn tracked(&self) -> usize {
        self.sessions.len()
    }

    /// When [`Debouncer::poll`] next has something to do.
    pub fn next_due(&self) -> Option<Instant> {
        self.sessions.values().filter_map(|t| t.due).min()
    }

    /// Takes in one event seen at `now`; returns what must be sent at once.
    pub fn observe(&mut self, event: &Event, now: Instant) -> Vec<Ready> {
        match event.kind {
            EventKind::SessionCreated | EventKind::SessionChanged => {
                if let Some(session) = &event.session {
                    self.session_event(event, session, now);
                }
                Vec::new()
            }
            EventKind::SessionClosed => match &event.session {
                Some(session) => self
                    .end((event.shed.clone(), session.clone()), now)
                    .into_iter()
                    .collect(),
                None => Vec::new(),
            },
            EventKind::ShedStopped => {
                let keys: Vec<_> = self
                    .sessions
                    .keys()
                    .filter(|(shed, _)| *shed == event.shed)
                    .cloned()
                    .collect();
                keys.into_iter()
                    .filter_map(|key| self.end(key, now))
                    .collect()
            }
            EventKind::ShedStarted | EventKind::ShedAutoStopped | EventKind::Resync => Vec::new(),
        }
    }

    fn session_event(&mut self, event: &Event, session: &str, now: Instant) {
        if !self.rules.wants_shed(&event.shed) {
            return;
        }
        let agent = event
            .data
            .get("agent")
            .and_then(|a| serde_json::from_value::<AgentInfo>(a.clone()).ok());
        let attached = event
            .data
            .get("attached")
            .and_then(|a| a.as_u64())
            .map(|a| u32::try_from(a).unwrap_or(u32::MAX));
        if agent.is_none() && attached.is_none() {
            return;
        }
        let key = (event.shed.clone(), session.to_string());
        if !self.sessions.contains_key(&key) && self.sessions.len() >= MAX_TRACKED_SESSIONS {
            self.forget_oldest();
        }
        let hold = self.rules.hold;
        let tracked = self.sessions.entry(key).or_insert_with(|| Tracked {
            agent: None,
            event_id: event.id,
            changed_at: now,
            settled: None,
            owed: false,
            last_sent: None,
            attached: 0,
            due: None,
            seen: now,
        });
        tracked.seen = now;
        if let Some(attached) = attached {
            tracked.attached = attached;
            if attached > 0 && !self.rules.include_attached {
                // Someone looks now: what waited for its interval is seen.
                tracked.owed = false;
            }
        }
        let Some(agent) = agent else { return };
        let same_state = tracked.agent.as_ref().map(|a| a.state) == Some(agent.state);
        if same_state {
            // A repeat: keep the news (reason, exit code) but not the clock.
            tracked.agent = Some(agent);
            return;
        }
        tracked.agent = Some(agent);
        tracked.event_id = event.id;
        tracked.changed_at = now;
        // A newer state replaces one still waiting for its interval.
        tracked.owed = false;
        tracked.due = Some(now + hold);
    }

    /// Moves every session whose time has come; returns what to send.
    pub fn poll(&mut self, now: Instant) -> Vec<Ready> {
        let mut ready = Vec::new();
        for ((shed, session), tracked) in &mut self.sessions {
            if tracked.due.is_some_and(|due| due <= now) {
                tracked.due = None;
                if let Some(agent) = step(&self.rules, tracked, now, false) {
                    ready.push(Ready {
                        shed: shed.clone(),
                        session: session.clone(),
                        agent,
                        event_id: tracked.event_id,
                    });
                }
            }
        }
        ready
    }

    /// Forgets a session; an `exited` still inside its hold is sent now.
    fn end(&mut self, key: (String, String), now: Instant) -> Option<Ready> {
        let mut tracked = self.sessions.remove(&key)?;
        let exited = tracked.agent.as_ref().map(|a| a.state) == Some(AgentState::Exited);
        let agent = step(&self.rules, &mut tracked, now, exited)?;
        Some(Ready {
            shed: key.0,
            session: key.1,
            agent,
            event_id: tracked.event_id,
        })
    }

    fn forget_oldest(&mut self) {
        if let Some(key) = self
            .sessions
            .iter()
            .min_by_key(|(_, t)| t.seen)
            .map(|(k, _)| k.clone())
        {
            tracing::warn!(
                limit = MAX_TRACKED_SESSIONS,
                shed = %key.0,
                session = %key.1,
                "notify: too many sessions tracked; forgetting the least recently seen"
            );
            self.sessions.remove(&key);
        }
    }
}

/// Settles the session's state if it held (or `settle_now`), and says
/// whether a notification goes out now; sets `due` when one must wait.
fn step(rules: &Rules, t: &mut Tracked, now: Instant, settle_now: bool) -> Option<AgentInfo> {
    let state = t.agent.as_ref()?.state;
    if (settle_now || now >= t.changed_at + rules.hold) && t.settled != Some(state) {
        t.settled = Some(state);
        t.owed = rules.states.contains(&state);
        if t.owed && t.attached > 0 && !rules.include_attached {
            // Someone is looking at it; it is not sent later either.
            tracing::debug!(state = %state, "notify: suppressed, the session is attached");
            t.owed = false;
        }
    } else if t.settled != Some(state) {
        // Not held long enough yet (a poll before its time).
        t.due = Some(t.changed_at + rules.hold);
        return None;
    }
    if !t.owed {
        return None;
    }
    if let Some(next) = t.last_sent.map(|sent| sent + rules.interval) {
        if now < next {
            t.due = Some(next);
            return None;
        }
    }
    t.owed = false;
    t.last_sent = Some(now);
    t.agent.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::agent::AgentKind;
    use serde_json::json;

    fn rules() -> Rules {
        Rules {
            states: vec![AgentState::Waiting, AgentState::Exited],
            sheds: Vec::new(),
            hold: Duration::from_secs(2),
            interval: Duration::from_secs(30),
            include_attached: false,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn agent(state: AgentState) -> serde_json::Value {
        serde_json::to_value(AgentInfo {
            kind: AgentKind::Claude,
            state,
            reason: format!("test says {state}"),
            ..AgentInfo::default()
        })
        .unwrap()
    }

    fn event(
        id: u64,
        kind: EventKind,
        shed: &str,
        session: Option<&str>,
        data: serde_json::Value,
    ) -> Event {
        Event {
            id,
            kind,
            shed: shed.into(),
            session: session.map(str::to_string),
            at: chrono::Utc::now(),
            data,
        }
    }

    /// A `session.changed` of `shed`/`session` carrying `data`.
    fn change(id: u64, shed: &str, session: &str, data: serde_json::Value) -> Event {
        event(id, EventKind::SessionChanged, shed, Some(session), data)
    }

    /// `dev`/`main`'s agent is now in `state`.
    fn changed(id: u64, state: AgentState) -> Event {
        change(id, "dev", "main", json!({ "agent": agent(state) }))
    }

    fn attached(id: u64, n: u32) -> Event {
        change(
            id,
            "dev",
            "main",
            json!({ "attached": n, "status": "attached" }),
        )
    }

    /// Feeds `events` at their offsets from `t0`, polling at each, then polls
    /// at every second up to `until`; returns what was sent, with offsets.
    fn run(
        d: &mut Debouncer,
        t0: Instant,
        events: Vec<(u64, Event)>,
        until: u64,
    ) -> Vec<(u64, Ready)> {
        let mut sent = Vec::new();
        let mut events = events.into_iter().peekable();
        for s in 0..=until {
            let now = t0 + secs(s);
            while let Some((_, e)) = events.next_if(|(at, _)| *at == s) {
                sent.extend(d.observe(&e, now).into_iter().map(|r| (s, r)));
            }
            sent.extend(d.poll(now).into_iter().map(|r| (s, r)));
        }
        sent
    }

    /// [`run`] on a fresh debouncer with `rules`: the offsets at which
    /// something was sent, and its state.
    fn sent_at(rules: Rules, events: Vec<(u64, Event)>, until: u64) -> Vec<(u64, AgentState)> {
        let mut d = Debouncer::new(rules);
        run(&mut d, Instant::now(), events, until)
            .into_iter()
            .map(|(at, ready)| (at, ready.agent.state))
            .collect()
    }

    /// The offsets of [`sent_at`] alone.
    fn times(rules: Rules, events: Vec<(u64, Event)>, until: u64) -> Vec<u64> {
        sent_at(rules, events, until)
            .into_iter()
            .map(|(at, _)| at)
            .collect()
    }

    #[test]
    fn a_state_is_sent_once_after_it_held() {
        let mut d = Debouncer::new(rules());
        let t0 = Instant::now();
        let sent = run(
            &mut d,
            t0,
            vec![
                (0, changed(1, AgentState::Working)),
                (3, changed(2, AgentState::Waiting)),
                // The stream repeating the state: no second notification.
                (4, changed(3, AgentState::Waiting)),
                (6, changed(4, AgentState::Waiting)),
            ],
            40,
        );
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].0, 5);
        assert_eq!(sent[0].1.agent.state, AgentState::Waiting);
        assert_eq!(sent[0].1.event_id, 2);
        assert_eq!(
            (sent[0].1.shed.as_str(), sent[0].1.session.as_str()),
            ("dev", "main")
        );
        // The repeat's news is kept, its clock is not.
        assert_eq!(d.next_due(), None);
    }

    #[test]
    fn a_flap_shorter_than_the_hold_sends_nothing() {
        let flap = vec![
            (0, changed(1, AgentState::Working)),
            (3, changed(2, AgentState::Waiting)),
            (4, changed(3, AgentState::Working)),
        ];
        let sent = times(rules(), flap, 20);
        assert!(sent.is_empty(), "{sent:?}");
        // And a flap back to the state already sent does not resend it.
        let back = vec![
            (0, changed(1, AgentState::Waiting)),
            (40, changed(2, AgentState::Working)),
            (41, changed(3, AgentState::Waiting)),
        ];
        assert_eq!(times(rules(), back, 80), [2]);
    }

    #[test]
    fn at_most_one_per_interval_and_the_deferred_one_only_if_still_true() {
        // waiting (sent at 2), working settles, waiting again at 8: settles
        // at 10, inside the interval, so it goes out when the interval ends.
        let again = || {
            vec![
                (0, changed(1, AgentState::Waiting)),
                (4, changed(2, AgentState::Working)),
                (8, changed(3, AgentState::Waiting)),
            ]
        };
        let mut d = Debouncer::new(rules());
        let sent = run(&mut d, Instant::now(), again(), 60);
        assert_eq!(
            sent.iter().map(|s| s.0).collect::<Vec<_>>(),
            [2, 32],
            "{sent:?}"
        );
        assert_eq!(sent[1].1.event_id, 3);
        // Same, but the agent is back at work before the interval ends.
        let mut back = again();
        back.push((20, changed(4, AgentState::Working)));
        assert_eq!(times(rules(), back, 60), [2]);
    }

    #[test]
    fn attached_sessions_are_not_notified_unless_asked() {
        let created = event(
            1,
            EventKind::SessionCreated,
            "dev",
            Some("main"),
            json!({ "name": "main", "attached": 1, "agent": agent(AgentState::Working) }),
        );
        let events = || {
            vec![
                (0, created.clone()),
                (3, changed(2, AgentState::Waiting)),
                // Detaching after it settled does not send it late.
                (9, attached(3, 0)),
                // A later change, with nobody attached, is sent.
                (12, changed(4, AgentState::Working)),
                (50, changed(5, AgentState::Exited)),
            ]
        };
        assert_eq!(sent_at(rules(), events(), 80), [(52, AgentState::Exited)]);
        let include = Rules {
            include_attached: true,
            ..rules()
        };
        assert_eq!(times(include, events(), 80), [5, 52]);

        // Attaching while a notification waits for its interval cancels it.
        let attach = vec![
            (0, changed(1, AgentState::Waiting)),
            (4, changed(2, AgentState::Working)),
            (8, changed(3, AgentState::Waiting)),
            (15, attached(4, 1)),
        ];
        assert_eq!(times(rules(), attach, 60), [2]);
    }

    #[test]
    fn states_and_sheds_filter() {
        let mut d = Debouncer::new(Rules {
            sheds: vec!["dev".into()],
            ..rules()
        });
        let other = change(
            1,
            "prod",
            "main",
            json!({ "agent": agent(AgentState::Waiting) }),
        );
        let sent = run(
            &mut d,
            Instant::now(),
            vec![
                (0, other),
                (1, changed(2, AgentState::Idle)),
                (5, changed(3, AgentState::Working)),
            ],
            20,
        );
        assert!(sent.is_empty(), "{sent:?}");
        // The other shed is not even remembered.
        assert_eq!(d.tracked(), 1);

        let idle = Rules {
            states: vec![AgentState::Idle],
            ..rules()
        };
        let events = vec![
            (0, changed(1, AgentState::Waiting)),
            (5, changed(2, AgentState::Idle)),
        ];
        assert_eq!(sent_at(idle, events, 20), [(7, AgentState::Idle)]);
    }

    #[test]
    fn closing_forgets_and_sends_an_exit_at_once() {
        let t0 = Instant::now();
        let closed = |id| {
            event(
                id,
                EventKind::SessionClosed,
                "dev",
                Some("main"),
                serde_json::Value::Null,
            )
        };
        // Ends with how many sessions the debouncer still tracks.
        let closing = |state| {
            let mut d = Debouncer::new(rules());
            let events = vec![(0, changed(1, state)), (1, closed(2))];
            let sent = run(&mut d, t0, events, 10);
            let times: Vec<u64> = sent.iter().map(|s| s.0).collect();
            (times, d.tracked())
        };
        assert_eq!(closing(AgentState::Exited), (vec![1], 0));
        // A waiting cut short by the session closing is not news.
        assert_eq!(closing(AgentState::Waiting), (vec![], 0));
        // A stopped shed forgets all of its sessions, and only its own.
        let mut d = Debouncer::new(rules());
        for (id, (shed, session)) in [("dev", "a"), ("dev", "b"), ("ops", "a")]
            .into_iter()
            .enumerate()
        {
            let working = json!({ "agent": agent(AgentState::Working) });
            d.observe(&change(id as u64, shed, session, working), t0);
        }
        assert_eq!(d.tracked(), 3);
        let stopped = event(
            9,
            EventKind::ShedStopped,
            "dev",
            None,
            serde_json::Value::Null,
        );
        d.observe(&stopped, t0);
        assert_eq!(d.tracked(), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(rules());
        for i in 0..MAX_TRACKED_SESSIONS + 10 {
            let working = json!({ "agent": agent(AgentState::Working) });
            let e = change(i as u64, "dev", &format!("s{i}"), working);
            d.observe(&e, t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(d.tracked(), MAX_TRACKED_SESSIONS);
        // The oldest went first.
        assert!(!d
            .sessions
            .contains_key(&("dev".to_string(), "s0".to_string())));
        assert!(d
            .sessions
            .contains_key(&("dev".to_string(), format!("s{}", MAX_TRACKED_SESSIONS + 9))));
    }

    #[test]
    fn events_without_agent_or_attached_are_ignored() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(rules());
        d.observe(&change(1, "dev", "main", json!({ "cwd": "/tmp" })), t0);
        d.observe(&change(2, "dev", "main", json!({ "agent": 42 })), t0);
        assert_eq!(d.tracked(), 0);
        assert!(d.poll(t0 + secs(10)).is_empty());
    }
}
