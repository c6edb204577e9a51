//! One shed's agent engine: a [`PaneTracker`] per pane of its model, fed on
//! every model update and on a periodic tick, and the per-session summaries
//! the session lists and events carry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::detect::{summarize, Observation, PaneTracker, ScreenRules};
use crate::api::agent::{AgentExplanation, AgentInfo};
use crate::server::control::client::is_pane_id;
use crate::server::control::model::{Model, Session, MAX_PANES};

/// How often the engine re-evaluates every pane without news from tmux, so
/// that time alone (a quiet pane turning idle) changes a state.
pub const AGENT_TICK: Duration = Duration::from_secs(1);

/// Most screens captured per update or tick: 100 busy panes must not flood
/// tmux with `capture-pane`; the rest wait their turn, oldest capture first.
pub const MAX_CAPTURES_PER_TICK: usize = 8;

/// A session's summary and the pane it came from.
#[derive(Debug, Clone)]
struct Summary {
    info: AgentInfo,
    pane: Option<String>,
}

/// Trackers and summaries of one shed. Trackers exist only for panes in the
/// latest model, which holds at most [`MAX_PANES`]; summaries only for its
/// sessions.
pub struct ShedAgents {
    rules: Arc<dyn ScreenRules>,
    panes: HashMap<String, PaneTracker>,
    sessions: BTreeMap<String, Summary>,
    /// Whether the next tick may change something (see [`Self::wants_tick`]).
    ticking: bool,
}

impl ShedAgents {
    /// An engine that has seen nothing, deciding with `rules`.
    pub fn new(rules: Arc<dyn ScreenRules>) -> ShedAgents {
        ShedAgents {
            rules,
            panes: HashMap::new(),
            sessions: BTreeMap::new(),
            ticking: false,
        }
    }

    /// Whether a tick, with no news from tmux, could change what the last
    /// [`Self::observe`] said: a pane still waiting to turn idle, or a
    /// screen still to capture (more than [`MAX_CAPTURES_PER_TICK`] were
    /// wanted, a capture failed, or its second of output has not ended).
    /// A shed whose panes have all settled needs no tick: at 100 idle
    /// sheds, ticking them anyway was most of the server's idle CPU.
    pub fn wants_tick(&self) -> bool {
        self.ticking
    }

    /// The panes (`%N` ids) whose screen the next [`Self::observe`] of
    /// `model` wants, at most [`MAX_CAPTURES_PER_TICK`], least recently
    /// captured first.
    pub fn wanted_captures(&self, model: &Model) -> Vec<String> {
        let mut wanted: Vec<(Option<DateTime<Utc>>, &str)> = Vec::new();
        for session in model.sessions.values() {
            for pane in &session.panes {
                let obs = Observation::of(session, pane);
                let tracker = self.panes.get(&pane.id);
                let wants = match tracker {
                    Some(t) => t.wants_capture(&obs, self.rules.as_ref()),
                    None => PaneTracker::new(&pane.id).wants_capture(&obs, self.rules.as_ref()),
                };
                if wants && is_pane_id(&pane.id) {
                    wanted.push((tracker.and_then(|t| t.captured_at()), &pane.id));
                }
            }
        }
        wanted.sort();
        wanted
            .into_iter()
            .take(MAX_CAPTURES_PER_TICK)
            .map(|(_, id)| id.to_string())
            .collect()
    }

    /// Feeds `model` (and the screens captured for it, by pane id) to the
    /// trackers at `now`; drops trackers of panes that went away. Returns
    /// the sessions whose summary changed since the last call, with the new
    /// summary; a session seen for the first time is not a change.
    pub fn observe(
        &mut self,
        model: &Model,
        screens: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> BTreeMap<String, AgentInfo> {
        let present: HashSet<&str> = model
            .sessions
            .values()
            .flat_map(|s| s.panes.iter().map(|p| p.id.as_str()))
            .collect();
        self.panes.retain(|id, _| present.contains(id.as_str()));
        let mut changed = BTreeMap::new();
        let mut sessions = BTreeMap::new();
        let mut ticking = false;
        for session in model.sessions.values() {
            for pane in &session.panes {
                if self.panes.len() >= MAX_PANES && !self.panes.contains_key(&pane.id) {
                    continue;
                }
                let tracker = self
                    .panes
                    .entry(pane.id.clone())
                    .or_insert_with(|| PaneTracker::new(&pane.id));
                let screen = screens.get(&pane.id).map(String::as_str);
                let obs = Observation::of(session, pane);
                tracker.observe(&obs, screen, self.rules.as_ref(), now);
                ticking = ticking
                    || tracker.time_may_change()
                    || (tracker.wants_capture(&obs, self.rules.as_ref()) && is_pane_id(&pane.id));
            }
            let summary = self.summary_of(session);
            if let Some(old) = self.sessions.get(&session.name) {
                if old.info != summary.info {
                    changed.insert(session.name.clone(), summary.info.clone());
                }
            }
            sessions.insert(session.name.clone(), summary);
        }
        self.sessions = sessions;
        self.ticking = ticking;
        changed
    }

    fn summary_of(&self, session: &Session) -> Summary {
        let infos: Vec<(&str, &AgentInfo)> = session
            .panes
            .iter()
            .filter_map(|p| self.panes.get(&p.id).map(|t| (p.id.as_str(), t.info())))
            .collect();
        let only: Vec<&AgentInfo> = infos.iter().map(|(_, i)| *i).collect();
        match summarize(&only) {
            Some((i, info)) => Summary {
                info,
                pane: Some(infos[i].0.to_string()),
            },
            None => Summary {
                info: AgentInfo {
                    reason: "no panes".into(),
                    ..AgentInfo::default()
                },
                pane: None,
            },
        }
    }

    /// The agent of `session`: its summary, or for a session the engine
    /// has not observed yet (a snapshot newer than the last update), what
    /// one look at it says.
    pub fn agent_of(&self, session: &Session, now: DateTime<Utc>) -> AgentInfo {
        match self.sessions.get(&session.name) {
            Some(summary) => summary.info.clone(),
            None => self.fresh(session, now).summary_of(session).info,
        }
    }

    /// An engine that has looked once at `session` alone.
    fn fresh(&self, session: &Session, now: DateTime<Utc>) -> ShedAgents {
        let mut model = Model::default();
        model.sessions.insert(session.name.clone(), session.clone());
        let mut engine = ShedAgents::new(self.rules.clone());
        engine.observe(&model, &HashMap::new(), now);
        engine
    }

    /// Why `session`'s agent is in its state, pane by pane.
    pub fn explain(&self, shed: &str, session: &Session, now: DateTime<Utc>) -> AgentExplanation {
        let fresh;
        let engine = if self.sessions.contains_key(&session.name) {
            self
        } else {
            fresh = self.fresh(session, now);
            &fresh
        };
        let summary = engine.summary_of(session);
        AgentExplanation {
            shed: shed.to_string(),
            session: session.name.clone(),
            agent: summary.info,
            decided_by: summary.pane,
            panes: session
                .panes
                .iter()
                .filter_map(|p| engine.panes.get(&p.id).map(|t| t.explain()))
                .collect(),
            rules_version: self.rules.version().to_string(),
        }
    }

    /// Panes tracked now.
    pub fn tracked(&self) -> usize {
        self.panes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::agent::{AgentKind, AgentState};
    use crate::server::agent::rules::Rules;
    use crate::server::control::model::{Pane, STATE_OPTION};

    fn pane(id: &str, command: &str, activity: i64) -> Pane {
        Pane {
            id: id.into(),
            window_id: "@1".into(),
            window_index: 0,
            window_active: true,
            active: true,
            dead: false,
            dead_status: None,
            pid: Some(1),
            current_command: command.into(),
            current_path: "/".into(),
            bell: false,
            window_activity: Some(activity),
            start_command: String::new(),
            options: Default::default(),
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_000_000 + s, 0).unwrap()
    }

    #[test]
    fn summaries_change_by_time_alone_and_trackers_follow_the_panes() {
        let mut engine = ShedAgents::new(Arc::new(Rules::builtin()));
        let m = Model::of(vec![Session::sample(
            "a",
            vec![
                pane("%1", "bash", 1_000_000),
                pane("%2", "claude", 1_000_000),
            ],
        )]);
        // First look: recent output, nothing decided; not a change.
        assert!(engine.observe(&m, &HashMap::new(), at(1)).is_empty());
        assert_eq!(engine.tracked(), 2);
        // The same model, later: quiet turns idle with no news from tmux.
        let changed = engine.observe(&m, &HashMap::new(), at(6));
        let agent = &changed["a"];
        assert_eq!(
            (agent.kind, agent.state),
            (AgentKind::Claude, AgentState::Idle)
        );
        let explained = engine.explain("s", m.get("a").unwrap(), at(6));
        assert_eq!(explained.decided_by.as_deref(), Some("%2"));
        assert_eq!(explained.panes.len(), 2);
        // A report through the option: a change.
        let mut reported = m.clone();
        let p = &mut reported.sessions.get_mut("a").unwrap().panes[1];
        p.options.insert(STATE_OPTION.into(), "waiting".into());
        let changed = engine.observe(&reported, &HashMap::new(), at(7));
        assert_eq!(changed["a"].state, AgentState::Waiting);
        // A pane goes away: its tracker with it.
        let fewer = Model::of(vec![Session::sample(
            "a",
            vec![pane("%1", "bash", 1_000_000)],
        )]);
        engine.observe(&fewer, &HashMap::new(), at(8));
        assert_eq!(engine.tracked(), 1);
        assert!(engine
            .observe(&Model::default(), &HashMap::new(), at(9))
            .is_empty());
        assert_eq!(engine.tracked(), 0);
        // A session it never saw is looked at once.
        let unseen = Session::sample("b", vec![pane("%9", "codex", 1_000_000)]);
        assert_eq!(engine.agent_of(&unseen, at(100)).state, AgentState::Idle);
        assert_eq!(engine.agent_of(&unseen, at(100)).kind, AgentKind::Codex);
    }

    #[test]
    fn ticks_are_wanted_only_while_time_or_a_capture_can_change_something() {
        let mut engine = ShedAgents::new(Arc::new(Rules::builtin()));
        assert!(!engine.wants_tick());
        // Output a second ago: time alone will turn the shell idle.
        let shell = Model::of(vec![Session::sample(
            "a",
            vec![pane("%1", "bash", 1_000_000)],
        )]);
        engine.observe(&shell, &HashMap::new(), at(1));
        assert!(engine.wants_tick());
        // Idle now: only news from tmux can change it.
        engine.observe(&shell, &HashMap::new(), at(6));
        assert!(!engine.wants_tick());
        // An agent whose screen is still to capture wants the tick that does.
        let agent = Model::of(vec![Session::sample(
            "a",
            vec![
                pane("%1", "bash", 1_000_000),
                pane("%2", "claude", 1_000_000),
            ],
        )]);
        engine.observe(&agent, &HashMap::new(), at(7));
        assert!(engine.wants_tick());
        let screens = HashMap::from([("%2".to_string(), "screen".to_string())]);
        engine.observe(&agent, &screens, at(8));
        assert!(!engine.wants_tick());
        // One line of output leaves an idle shell idle: only more news
        // from tmux can make it working, so still no tick.
        let moved = |activity| {
            Model::of(vec![Session::sample(
                "a",
                vec![pane("%1", "bash", activity)],
            )])
        };
        engine.observe(&moved(1_000_009), &HashMap::new(), at(9));
        assert!(!engine.wants_tick());
        // A burst makes it working, and then time alone turns it idle.
        engine.observe(&moved(1_000_010), &HashMap::new(), at(10));
        assert!(engine.wants_tick());
        engine.observe(&moved(1_000_010), &HashMap::new(), at(16));
        assert!(!engine.wants_tick());
    }

    #[test]
    fn captures_are_capped_and_go_to_agents_whose_output_moved() {
        let mut engine = ShedAgents::new(Arc::new(Rules::builtin()));
        let panes: Vec<Pane> = (0..100)
            .map(|i| pane(&format!("%{i}"), "claude", 1_000_000))
            .chain([pane("%200", "bash", 1_000_000), pane("x;kill", "claude", 1)])
            .collect();
        let m = Model::of(vec![Session::sample("a", panes)]);
        let wanted = engine.wanted_captures(&m);
        assert_eq!(wanted.len(), MAX_CAPTURES_PER_TICK);
        assert!(wanted.iter().all(|id| is_pane_id(id) && id != "%200"));
        let screens: HashMap<String, String> = wanted
            .iter()
            .map(|id| (id.clone(), "screen".into()))
            .collect();
        engine.observe(&m, &screens, at(1));
        // The captured ones are not wanted again until their output moves.
        let next = engine.wanted_captures(&m);
        assert_eq!(next.len(), MAX_CAPTURES_PER_TICK);
        assert!(next.iter().all(|id| !wanted.contains(id)));
    }
}
