//! The per-pane state machine: fed what tmux shows of a pane (and, when
//! the engine captured it, the visible screen), it decides which agent runs
//! there and what it is doing, from the strongest source that has a say:
//!
//! 1. the agent's own report (`@shed_state`), while the pane lives;
//! 2. the pane died: `exited`, with its status;
//! 3. a screen rule matching the visible screen;
//! 4. a bell not yet followed by output or input;
//! 5. output activity, with hysteresis (see [`WORKING_AFTER`], [`IDLE_AFTER`]).
//!
//! A report made before the pane died is stale (the process that made it is
//! gone and cannot take it back), so a dead pane is `exited` whatever it
//! reported; that is the one place the order bends.
//!
//! Pure: time comes in as an argument, so the tests drive it without clocks.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::rules::{Rules, ScreenMatch};
use crate::api::agent::{AgentInfo, AgentKind, AgentSource, AgentState, PaneAgent, RuleMatch};
use crate::api::SessionInfo;
use crate::server::control::model::{Pane, Session, AGENT_OPTION, RESUME_ID_OPTION, STATE_OPTION};
use crate::server::control::protocol::truncate;

/// How long the screen must keep changing before a pane counts as working:
/// two changes at least this far apart. One redraw (a clock ticking over, a
/// late line of output) then never makes `working`, while a spinner does
/// within about two of tmux's once-a-second reports.
pub const WORKING_AFTER: Duration = Duration::from_secs(1);

/// How long the screen must stay still before a working pane counts as
/// idle. ccmanager's 1.5 s and agentapi's 2 s flip-flop while an agent
/// thinks between tool calls or a spinner stalls; Claude's own 60 s idle
/// hook is far too late to tell a user. Five seconds outlasts those pauses
/// and still reports a finished turn promptly.
pub const IDLE_AFTER: Duration = Duration::from_secs(5);

/// How long after the end of the second of a pane's last output a capture
/// must be taken to cover that output. tmux stamps output to the second,
/// so output drawn later in the second of a capture (a permission menu
/// right after a busy line) leaves the stamp unchanged; the capture itself
/// is stamped when it returns, a little after tmux took it.
pub const CAPTURE_SLACK: Duration = Duration::from_millis(250);

/// Longest `@shed_state` value considered; longer ones are ignored unread.
pub const MAX_STATE_BYTES: usize = 16;

/// Longest `@shed_resume_id` accepted; longer ones are ignored.
pub const MAX_RESUME_ID_BYTES: usize = 256;

/// Longest screen text handed to the rules (a visible screen is far smaller).
pub const MAX_SCREEN_BYTES: usize = 64 * 1024;

/// Longest command kept for `explain`.
pub const MAX_COMMAND_BYTES: usize = 256;

/// Programs that count as a plain shell when nothing else names the pane.
pub const SHELLS: [&str; 7] = ["bash", "sh", "dash", "zsh", "fish", "ash", "ksh"];

/// `reason` before anything has decided.
pub const REASON_TOO_EARLY: &str = "too early to tell";

/// `reason` of a session served without a control channel.
pub const REASON_NO_CHANNEL: &str = "no control channel";

/// What the state machine needs of the screen rules; [`Rules`] in the
/// server, a double in tests (the shipped rules are another helper's data).
pub trait ScreenRules: Send + Sync {
    /// See [`Rules::version`].
    fn version(&self) -> &str;
    /// See [`Rules::kind_of`].
    fn kind_of(&self, command_line: &str) -> Option<AgentKind>;
    /// See [`Rules::classify`].
    fn classify(&self, kind: AgentKind, screen: &str) -> Option<ScreenMatch>;
}

impl ScreenRules for Rules {
    fn version(&self) -> &str {
        Rules::version(self)
    }
    fn kind_of(&self, command_line: &str) -> Option<AgentKind> {
        Rules::kind_of(self, command_line)
    }
    fn classify(&self, kind: AgentKind, screen: &str) -> Option<ScreenMatch> {
        Rules::classify(self, kind, screen)
    }
}

/// What the engine saw of one pane at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation<'a> {
    /// tmux's pane id, `%N`.
    pub pane: &'a str,
    /// Its window's index.
    pub window_index: u32,
    /// Its foreground command.
    pub current_command: &'a str,
    /// The command it was started with.
    pub start_command: &'a str,
    /// Its program ended.
    pub dead: bool,
    /// The exit status of a dead pane, when it exited normally.
    pub dead_status: Option<i32>,
    /// Its window's bell flag.
    pub bell: bool,
    /// Last output in its window, seconds since the epoch.
    pub output_activity: Option<i64>,
    /// Last input in its session, seconds since the epoch.
    pub input_activity: Option<i64>,
    /// `@shed_state` as seen from the pane.
    pub reported_state: Option<&'a str>,
    /// `@shed_resume_id` as seen from the pane.
    pub resume_id: Option<&'a str>,
    /// `@shed_agent` as seen from the pane.
    pub agent: Option<&'a str>,
}

impl<'a> Observation<'a> {
    /// The observation of `pane` in `session`, from the model.
    pub fn of(session: &'a Session, pane: &'a Pane) -> Observation<'a> {
        let option = |name: &str| pane.options.get(name).map(String::as_str);
        Observation {
            pane: &pane.id,
            window_index: pane.window_index,
            current_command: &pane.current_command,
            start_command: &pane.start_command,
            dead: pane.dead,
            dead_status: pane.dead_status,
            bell: pane.bell,
            output_activity: pane.window_activity.or(session.window_activity),
            input_activity: Some(session.activity),
            reported_state: option(STATE_OPTION),
            resume_id: option(RESUME_ID_OPTION),
            agent: option(AGENT_OPTION),
        }
    }
}

/// A reported state, if it is one an agent may report; anything else
/// (a typo, a compromised agent's junk) is ignored.
pub fn reported_state(value: &str) -> Option<AgentState> {
    if value.len() > MAX_STATE_BYTES {
        return None;
    }
    match AgentState::parse(value.trim())? {
        s @ (AgentState::Working | AgentState::Waiting | AgentState::Idle) => Some(s),
        _ => None,
    }
}

/// A reported conversation id, if it is short and only letters, digits and
/// `-_.:` (agents' ids are UUIDs and the like): it ends up in a resume
/// command line and in terminals, and the model has already turned any
/// control character into `?`, so a mangled id is refused, not passed on.
pub fn resume_id(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= MAX_RESUME_ID_BYTES
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| value.to_string())
}

/// The program's base name: `/usr/bin/zsh` and `-zsh` (a login shell) are `zsh`.
fn base_name(word: &str) -> &str {
    let base = word.rsplit('/').next().unwrap_or(word);
    base.trim_start_matches('-')
}

/// The command a `sh -c '...'` wrapper runs, as tmux shows a start command;
/// `None` when it is not such a wrapper.
fn unwrap_shell(command: &str) -> Option<String> {
    let mut rest = command.trim_start();
    let first = rest.split_whitespace().next()?;
    if !SHELLS.contains(&base_name(first)) {
        return None;
    }
    rest = rest[first.len()..].trim_start();
    rest = rest.strip_prefix("-c")?.trim_start();
    if let Some(after) = rest.strip_prefix("--") {
        rest = after.trim_start();
    }
    // Only the first word matters to the rules: quotes go, whatever they quoted.
    let rest: String = rest.chars().filter(|c| !"\"'\\".contains(*c)).collect();
    let rest = rest.trim_start();
    Some(
        rest.strip_prefix("exec ")
            .unwrap_or(rest)
            .trim_start()
            .to_string(),
    )
}

/// Which agent a pane runs: `@shed_agent` if it names a kind, else the rules
/// on its foreground command, else on its start command (also inside a
/// `sh -c` wrapper), else `shell` for a shell in the foreground, else `other`.
pub fn kind_of(obs: &Observation<'_>, rules: &dyn ScreenRules) -> AgentKind {
    if let Some(kind) = obs.agent.and_then(|a| AgentKind::parse(a.trim())) {
        return kind;
    }
    let start = unwrap_shell(obs.start_command);
    let start = start.as_deref().unwrap_or(obs.start_command);
    if let Some(kind) = rules
        .kind_of(obs.current_command)
        .or_else(|| rules.kind_of(start))
    {
        return kind;
    }
    let current = obs.current_command.split_whitespace().next().unwrap_or("");
    if SHELLS.contains(&base_name(current)) {
        AgentKind::Shell
    } else {
        AgentKind::Other
    }
}

fn hash_of(screen: &str) -> u64 {
    let mut h = DefaultHasher::new();
    screen.hash(&mut h);
    h.finish()
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// One pane's state machine.
#[derive(Debug, Clone)]
pub struct PaneTracker {
    pane: String,
    window_index: u32,
    command: String,
    info: AgentInfo,
    rule: Option<RuleMatch>,
    observed: bool,
    evaluated_at: Option<DateTime<Utc>>,
    /// Output and input times from tmux at the last observation.
    output_mark: Option<i64>,
    input_mark: Option<i64>,
    /// The output time at the last capture, and what the rules said of it.
    captured_mark: Option<Option<i64>>,
    captured_at: Option<DateTime<Utc>>,
    screen_hash: Option<u64>,
    screen: Option<ScreenMatch>,
    /// When a change was last seen, and when the current run of changes began.
    last_change: Option<DateTime<Utc>>,
    burst_start: Option<DateTime<Utc>>,
    burst_changes: u32,
    /// What output activity alone says: `None` until it has a verdict.
    activity: Option<AgentState>,
    bell_flag: bool,
    bell_pending: bool,
}

impl PaneTracker {
    /// A tracker for the pane `%N` that has seen nothing yet.
    pub fn new(pane: &str) -> PaneTracker {
        PaneTracker {
            pane: pane.to_string(),
            window_index: 0,
            command: String::new(),
            info: AgentInfo {
                reason: REASON_TOO_EARLY.into(),
                ..AgentInfo::default()
            },
            rule: None,
            observed: false,
            evaluated_at: None,
            output_mark: None,
            input_mark: None,
            captured_mark: None,
            captured_at: None,
            screen_hash: None,
            screen: None,
            last_change: None,
            burst_start: None,
            burst_changes: 0,
            activity: None,
            bell_flag: false,
            bell_pending: false,
        }
    }

    /// The pane's current decision.
    pub fn info(&self) -> &AgentInfo {
        &self.info
    }

    /// When its screen was last captured.
    pub fn captured_at(&self) -> Option<DateTime<Utc>> {
        self.captured_at
    }

    /// Whether time alone can change what the tracker says: output it saw
    /// has not yet been quiet for [`IDLE_AFTER`]. Everything else moves
    /// only on news from tmux.
    pub fn time_may_change(&self) -> bool {
        self.last_change.is_some() && self.activity != Some(AgentState::Idle)
    }

    /// Whether the engine should capture the pane's screen for the rules
    /// before the next observation: its kind has rules, no stronger source
    /// decides, and its window's output moved since the last capture, or
    /// that capture was taken before the second of the output ended (see
    /// [`CAPTURE_SLACK`]).
    pub fn wants_capture(&self, obs: &Observation<'_>, rules: &dyn ScreenRules) -> bool {
        !obs.dead
            && obs.reported_state.and_then(reported_state).is_none()
            && kind_of(obs, rules).is_agent()
            && (self.captured_mark != Some(obs.output_activity) || !self.capture_covers(obs))
    }

    /// Whether the last capture was taken after the second of `obs`'s
    /// output had ended, so no output of that second can be missing from it.
    fn capture_covers(&self, obs: &Observation<'_>) -> bool {
        let (Some(at), Some(output)) = (self.captured_at, obs.output_activity) else {
            return true;
        };
        let slack = chrono::Duration::from_std(CAPTURE_SLACK).unwrap_or_default();
        match DateTime::from_timestamp(output.saturating_add(1), 0) {
            Some(second_end) => at >= second_end + slack,
            None => true,
        }
    }

    /// Feeds one observation (with the visible screen when it was captured
    /// for it) taken at `now`; true when the decision changed.
    pub fn observe(
        &mut self,
        obs: &Observation<'_>,
        screen: Option<&str>,
        rules: &dyn ScreenRules,
        now: DateTime<Utc>,
    ) -> bool {
        let kind = kind_of(obs, rules);
        self.window_index = obs.window_index;
        self.command = truncate(obs.current_command, MAX_COMMAND_BYTES).to_string();
        let screen = screen.map(|s| truncate(s, MAX_SCREEN_BYTES));
        self.track_activity(obs, screen, now);
        self.track_bell(obs);
        let reported = (!obs.dead)
            .then(|| obs.reported_state.and_then(reported_state))
            .flatten();
        if reported.is_some() || obs.dead {
            // Stale once a stronger source lets go: capture afresh then.
            self.screen = None;
            self.captured_mark = None;
        } else if let Some(text) = screen {
            self.screen = rules.classify(kind, text);
            self.captured_mark = Some(obs.output_activity);
            self.captured_at = Some(now);
        }
        let mut rule = None;
        let mut exit_code = None;
        let (state, source, reason) = if let Some(state) = reported {
            (
                state,
                AgentSource::Reported,
                format!("reported {STATE_OPTION}={state}"),
            )
        } else if obs.dead {
            exit_code = obs.dead_status;
            let reason = match obs.dead_status {
                Some(code) => format!("pane exited with status {code}"),
                None => "pane exited".to_string(),
            };
            (AgentState::Exited, AgentSource::Exit, reason)
        } else if let Some(m) = &self.screen {
            rule = Some(RuleMatch {
                rule: m.rule.clone(),
                version: m.version.clone(),
                line: m.line.clone(),
            });
            let reason = format!("screen rule {} (rules {})", m.rule, m.version);
            (m.state, AgentSource::Screen, reason)
        } else if self.bell_pending {
            (AgentState::Waiting, AgentSource::Bell, "bell".to_string())
        } else {
            match self.activity {
                Some(AgentState::Working) => (
                    AgentState::Working,
                    AgentSource::Activity,
                    "output activity".to_string(),
                ),
                Some(state) => (
                    state,
                    AgentSource::Activity,
                    format!("quiet for {}s", IDLE_AFTER.as_secs()),
                ),
                None => (
                    AgentState::Unknown,
                    AgentSource::None,
                    REASON_TOO_EARLY.to_string(),
                ),
            }
        };
        let next = AgentInfo {
            kind,
            state,
            since: if state == self.info.state && self.observed {
                self.info.since
            } else {
                now
            },
            source,
            reason,
            exit_code,
            resume_id: obs.resume_id.and_then(resume_id),
        };
        self.observed = true;
        self.evaluated_at = Some(now);
        self.rule = rule;
        let changed = next != self.info;
        self.info = next;
        changed
    }

    /// Output changes, and the activity verdict with its hysteresis.
    fn track_activity(&mut self, obs: &Observation<'_>, screen: Option<&str>, now: DateTime<Utc>) {
        let hash = screen.map(hash_of);
        if !self.observed {
            self.output_mark = obs.output_activity;
            self.input_mark = obs.input_activity;
            self.screen_hash = hash;
            // What tmux last saw is the baseline: a pane quiet for long
            // enough is idle from the first look.
            self.last_change = obs
                .output_activity
                .and_then(|t| DateTime::from_timestamp(t, 0));
        } else {
            let moved = obs.output_activity != self.output_mark;
            // Only output tmux saw counts, once; a redraw of the same
            // screen is none.
            let changed = moved
                && match (hash, self.screen_hash) {
                    (Some(new), Some(old)) => new != old,
                    _ => true,
                };
            self.output_mark = obs.output_activity;
            if hash.is_some() {
                self.screen_hash = hash;
            }
            let input_moved = obs.input_activity != self.input_mark;
            self.input_mark = obs.input_activity;
            if changed || input_moved {
                // Output or input after a bell: its user has moved on.
                self.bell_pending = false;
            }
            if changed {
                let new_burst = self
                    .last_change
                    .is_none_or(|t| now - t >= chrono(IDLE_AFTER));
                if new_burst || self.burst_start.is_none() {
                    self.burst_start = Some(now);
                    self.burst_changes = 1;
                } else {
                    self.burst_changes = self.burst_changes.saturating_add(1);
                }
                self.last_change = Some(now);
            }
        }
        let quiet = self
            .last_change
            .is_some_and(|t| now - t >= chrono(IDLE_AFTER));
        if quiet {
            self.activity = Some(AgentState::Idle);
            self.burst_start = None;
            self.burst_changes = 0;
        } else if self.burst_changes >= 2
            && self
                .burst_start
                .zip(self.last_change)
                .is_some_and(|(start, last)| last - start >= chrono(WORKING_AFTER))
        {
            self.activity = Some(AgentState::Working);
        }
    }

    /// A bell is news when the flag rises; it stays until output or input
    /// moves on (see [`Self::track_activity`]) or the flag is cleared,
    /// which tmux does when a user looks at the window.
    fn track_bell(&mut self, obs: &Observation<'_>) {
        if obs.bell && !self.bell_flag {
            self.bell_pending = true;
        }
        if !obs.bell {
            self.bell_pending = false;
        }
        self.bell_flag = obs.bell;
    }

    /// The pane's decision as `explain` shows it.
    pub fn explain(&self) -> PaneAgent {
        PaneAgent {
            pane: self.pane.clone(),
            window_index: self.window_index,
            command: self.command.clone(),
            agent: self.info.clone(),
            rule: self.rule.clone(),
            last_output: self.last_change,
            evaluated_at: self.evaluated_at,
        }
    }
}

/// How urgently a state needs its user; lower is more urgent.
fn urgency(state: AgentState) -> u8 {
    match state {
        AgentState::Waiting => 0,
        AgentState::Working => 1,
        AgentState::Exited => 2,
        AgentState::Idle => 3,
        AgentState::Unknown => 4,
    }
}

/// The session's summary from its panes' decisions, and the index of the
/// pane it came from: panes running an agent (`kind.is_agent()`) are the
/// candidates when there is one, else every pane; among the candidates the
/// most urgent state wins, `waiting > working > exited > idle > unknown`,
/// and on a tie the first pane in tmux's order (window, then pane).
/// `None` for a session without panes.
pub fn summarize(panes: &[&AgentInfo]) -> Option<(usize, AgentInfo)> {
    let any_agent = panes.iter().any(|p| p.kind.is_agent());
    panes
        .iter()
        .enumerate()
        .filter(|(_, p)| !any_agent || p.kind.is_agent())
        .min_by_key(|(i, p)| (urgency(p.state), *i))
        .map(|(i, p)| (i, (*p).clone()))
}

/// What the exec path knows of a session's agent: an exited pane, or
/// nothing (no control channel to watch it with).
pub fn exec_agent(info: &SessionInfo, rules: &dyn ScreenRules) -> AgentInfo {
    let obs = Observation {
        current_command: &info.current_command,
        ..Observation::default()
    };
    let kind = kind_of(&obs, rules);
    if info.exited {
        AgentInfo {
            kind,
            state: AgentState::Exited,
            since: info.last_activity,
            source: AgentSource::Exit,
            reason: match info.exit_status {
                Some(code) => format!("pane exited with status {code}"),
                None => "pane exited".into(),
            },
            exit_code: info.exit_status,
            resume_id: None,
        }
    } else {
        AgentInfo {
            kind,
            state: AgentState::Unknown,
            since: info.created_at,
            source: AgentSource::None,
            reason: REASON_NO_CHANNEL.into(),
            exit_code: None,
            resume_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rules whose screen patterns are given by the test: the shipped
    /// patterns are another helper's data, and this module must not
    /// depend on them.
    pub(crate) struct Double(pub Vec<(&'static str, AgentState)>);

    impl ScreenRules for Double {
        fn version(&self) -> &str {
            "t1"
        }
        fn kind_of(&self, command_line: &str) -> Option<AgentKind> {
            Rules::builtin().kind_of(command_line)
        }
        fn classify(&self, kind: AgentKind, screen: &str) -> Option<ScreenMatch> {
            self.0.iter().find_map(|(needle, state)| {
                let line = screen.lines().find(|l| l.contains(needle))?;
                Some(ScreenMatch {
                    state: *state,
                    rule: format!("{kind}/test"),
                    version: "t1".into(),
                    line: line.to_string(),
                })
            })
        }
    }

    const BASE: i64 = 1_000_000;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(BASE * 1000 + ms).unwrap()
    }

    /// A live `claude` pane whose last output was at `output` seconds.
    fn obs(output: i64) -> Observation<'static> {
        Observation {
            pane: "%1",
            current_command: "claude",
            output_activity: Some(BASE + output),
            input_activity: Some(BASE - 1000),
            ..Observation::default()
        }
    }

    fn rules() -> Double {
        Double(vec![("Do you want to proceed?", AgentState::Waiting)])
    }

    /// Feeds `obs` at `ms`, returning the state.
    fn feed(t: &mut PaneTracker, o: &Observation<'_>, ms: i64) -> AgentState {
        t.observe(o, None, &rules(), at(ms));
        t.info().state
    }

    #[test]
    fn a_spinner_is_working_without_flip_flop_then_quiet_is_idle() {
        let mut t = PaneTracker::new("%1");
        let mut states = Vec::new();
        // Model updates every 200 ms; tmux's activity time has whole seconds.
        for step in 0..50 {
            let ms = step * 200;
            states.push((ms, feed(&mut t, &obs(ms / 1000), ms)));
        }
        assert_eq!(states[0].1, AgentState::Unknown);
        assert!(states
            .iter()
            .filter(|(ms, _)| *ms >= 2000)
            .all(|(_, s)| *s == AgentState::Working));
        assert_eq!(t.info().source, AgentSource::Activity);
        assert_eq!(t.info().reason, "output activity");
        let since = t.info().since;
        assert_eq!(since, at(2000));
        // The output stops at 9 s; ticks every second keep it working until
        // IDLE_AFTER has passed since the last change seen (at 9 s).
        for s in 10..14 {
            assert_eq!(feed(&mut t, &obs(9), s * 1000), AgentState::Working);
        }
        assert_eq!(t.info().since, since);
        assert_eq!(feed(&mut t, &obs(9), 14_000), AgentState::Idle);
        assert_eq!(t.info().reason, "quiet for 5s");
        assert_eq!(t.info().since, at(14_000));
        for s in 15..30 {
            assert_eq!(feed(&mut t, &obs(9), s * 1000), AgentState::Idle);
        }
    }

    #[test]
    fn a_one_off_change_does_not_make_working() {
        let mut t = PaneTracker::new("%1");
        // Quiet for long before the first look: idle at once.
        assert_eq!(feed(&mut t, &obs(-100), 0), AgentState::Idle);
        // One redraw (a clock ticking over), then nothing.
        assert_eq!(feed(&mut t, &obs(10), 10_000), AgentState::Idle);
        for s in 11..30 {
            assert_eq!(feed(&mut t, &obs(10), s * 1000), AgentState::Idle);
        }
        // Nor does a short burst: two changes 200 ms apart (output that
        // crossed a second boundary), then quiet.
        assert_eq!(feed(&mut t, &obs(40), 40_800), AgentState::Idle);
        assert_eq!(feed(&mut t, &obs(41), 41_000), AgentState::Idle);
        for s in 42..50 {
            assert_eq!(feed(&mut t, &obs(41), s * 1000), AgentState::Idle);
        }
        // A clock redrawing once a minute never makes working either.
        for m in 1..5 {
            let ms = 10_000 + m * 60_000;
            assert_eq!(feed(&mut t, &obs(ms / 1000), ms), AgentState::Idle);
            assert_eq!(feed(&mut t, &obs(ms / 1000), ms + 1000), AgentState::Idle);
        }
        // A fresh pane with recent output is undecided until it settles.
        let mut u = PaneTracker::new("%2");
        assert_eq!(feed(&mut u, &obs(0), 0), AgentState::Unknown);
        assert_eq!(u.info().reason, REASON_TOO_EARLY);
        assert_eq!(feed(&mut u, &obs(0), 4_000), AgentState::Unknown);
        assert_eq!(feed(&mut u, &obs(0), 5_000), AgentState::Idle);
    }

    #[test]
    fn an_unchanged_screen_is_no_change_even_when_tmux_saw_output() {
        let mut t = PaneTracker::new("%1");
        let r = rules();
        t.observe(&obs(-100), Some("same"), &r, at(0));
        for s in 1..10 {
            // Output every second (a cursor blinking), same text on screen.
            t.observe(&obs(s), Some("same"), &r, at(s * 1000));
            assert_eq!(t.info().state, AgentState::Idle);
        }
        t.observe(&obs(10), Some("one"), &r, at(10_000));
        t.observe(&obs(11), Some("two"), &r, at(11_000));
        assert_eq!(t.info().state, AgentState::Working);
    }

    #[test]
    fn reports_decide_and_junk_is_ignored() {
        let r = rules();
        let mut t = PaneTracker::new("%1");
        let o = Observation {
            reported_state: Some("waiting"),
            bell: true,
            ..obs(0)
        };
        assert!(!t.wants_capture(&o, &r));
        t.observe(&o, Some("Do you want to proceed?"), &r, at(0));
        assert_eq!(t.info().state, AgentState::Waiting);
        assert_eq!(t.info().source, AgentSource::Reported);
        assert_eq!(t.info().reason, "reported @shed_state=waiting");
        for junk in [
            "busy",
            "exited",
            "unknown",
            "Waiting",
            "",
            "waiting\u{1b}[2J",
            &format!("working{}", " ".repeat(100)),
        ] {
            let mut t = PaneTracker::new("%1");
            let o = Observation {
                reported_state: Some(junk),
                ..obs(-100)
            };
            t.observe(&o, None, &r, at(0));
            assert_eq!(t.info().source, AgentSource::Activity, "{junk:?}");
            assert_eq!(t.info().state, AgentState::Idle, "{junk:?}");
            assert!(!t.info().reason.contains(junk) || junk.is_empty());
        }
        assert_eq!(reported_state(" idle "), Some(AgentState::Idle));
    }

    #[test]
    fn a_dead_pane_is_exited_with_or_without_status_even_after_a_report() {
        let r = rules();
        let mut t = PaneTracker::new("%1");
        let o = Observation {
            dead: true,
            dead_status: Some(3),
            reported_state: Some("working"),
            ..obs(0)
        };
        assert!(!t.wants_capture(&o, &r));
        assert!(t.observe(&o, None, &r, at(0)));
        let info = t.info();
        assert_eq!(
            (info.state, info.source, info.exit_code),
            (AgentState::Exited, AgentSource::Exit, Some(3))
        );
        assert_eq!(info.reason, "pane exited with status 3");
        let mut t = PaneTracker::new("%1");
        let o = Observation {
            dead: true,
            ..obs(0)
        };
        t.observe(&o, None, &r, at(0));
        assert_eq!(t.info().exit_code, None);
        assert_eq!(t.info().reason, "pane exited");
        // Nothing new: no change reported.
        assert!(!t.observe(&o, None, &r, at(1000)));
    }

    #[test]
    fn a_capture_within_the_outputs_second_is_taken_again_after_it() {
        // tmux stamps output to the second: a menu drawn later in the
        // second a busy screen was captured leaves the stamp unchanged.
        let r = rules();
        let mut t = PaneTracker::new("%1");
        let o = obs(0);
        t.observe(&o, Some("✻ Thinking… (esc to interrupt)"), &r, at(300));
        assert!(
            t.wants_capture(&o, &r),
            "output may have followed the capture"
        );
        let menu = "│ Do you want to proceed? │\n│ ❯ 1. Yes │";
        t.observe(
            &o,
            Some(menu),
            &r,
            at(1000 + CAPTURE_SLACK.as_millis() as i64),
        );
        assert_eq!(t.info().state, AgentState::Waiting);
        assert!(!t.wants_capture(&o, &r), "the second had ended");
    }

    #[test]
    fn a_screen_rule_beats_bell_and_activity_and_names_itself() {
        let r = rules();
        let mut t = PaneTracker::new("%1");
        let o = obs(0);
        assert!(t.wants_capture(&o, &r));
        let screen = "╭──╮\n│ Do you want to proceed? │\n│ ❯ 1. Yes │";
        t.observe(&o, Some(screen), &r, at(1500));
        assert!(!t.wants_capture(&o, &r), "nothing moved since the capture");
        let o = Observation {
            bell: true,
            ..obs(1)
        };
        assert!(t.wants_capture(&o, &r), "output moved");
        t.observe(&o, None, &r, at(1000));
        let info = t.info().clone();
        assert_eq!(
            (info.state, info.source),
            (AgentState::Waiting, AgentSource::Screen)
        );
        assert_eq!(info.reason, "screen rule claude/test (rules t1)");
        let pane = t.explain();
        assert_eq!(
            pane.rule.unwrap().line,
            "│ Do you want to proceed? │".to_string()
        );
        assert_eq!(pane.evaluated_at, Some(at(1000)));
        // The screen moved on: the bell rung meanwhile decides.
        t.observe(&o, Some("Thinking"), &r, at(2000));
        assert_eq!(t.info().source, AgentSource::Bell);
        // Shells have no rules: never captured.
        let sh = Observation {
            current_command: "bash",
            ..obs(0)
        };
        assert!(!PaneTracker::new("%2").wants_capture(&sh, &r));
    }

    #[test]
    fn a_bell_waits_until_output_or_input_moves_on() {
        let r = rules();
        let mut t = PaneTracker::new("%1");
        feed(&mut t, &obs(-100), 0);
        let rung = Observation {
            bell: true,
            ..obs(1)
        };
        assert_eq!(feed(&mut t, &rung, 1000), AgentState::Waiting);
        assert_eq!(t.info().reason, "bell");
        for s in 2..20 {
            assert_eq!(feed(&mut t, &rung, s * 1000), AgentState::Waiting);
        }
        // Output after it: back to what activity says.
        let after = Observation {
            bell: true,
            ..obs(20)
        };
        assert_eq!(feed(&mut t, &after, 20_000), AgentState::Idle);
        // The flag is still up: no new bell.
        assert_eq!(feed(&mut t, &after, 21_000), AgentState::Idle);
        // It drops (a user looked) and rises again: a new bell; input ends it.
        let quiet = obs(20);
        feed(&mut t, &quiet, 22_000);
        assert_eq!(feed(&mut t, &after, 23_000), AgentState::Waiting);
        let typed = Observation {
            input_activity: Some(BASE + 24),
            ..after
        };
        assert_eq!(feed(&mut t, &typed, 24_000), AgentState::Idle);
        let _ = r;
    }

    #[test]
    fn since_moves_only_with_state_and_resume_ids_are_checked() {
        let r = rules();
        let mut t = PaneTracker::new("%1");
        let o = Observation {
            reported_state: Some("working"),
            resume_id: Some("abc-1"),
            ..obs(0)
        };
        t.observe(&o, None, &r, at(0));
        assert_eq!(t.info().resume_id.as_deref(), Some("abc-1"));
        let o2 = Observation {
            resume_id: Some("def-2"),
            ..o.clone()
        };
        assert!(t.observe(&o2, None, &r, at(5000)));
        assert_eq!(t.info().since, at(0));
        assert_eq!(t.info().resume_id.as_deref(), Some("def-2"));
        for bad in [
            "a b",
            "x\u{7}",
            "id?]0;x?",
            "$(reboot)",
            "",
            &"a".repeat(MAX_RESUME_ID_BYTES + 1),
        ] {
            assert_eq!(resume_id(bad), None, "{bad:?}");
        }
        assert_eq!(
            resume_id("0b9e-41f2:x_y.z").as_deref(),
            Some("0b9e-41f2:x_y.z")
        );
    }

    #[test]
    fn kinds_come_from_the_option_then_commands_then_shells() {
        let r = rules();
        let kind = |agent: Option<&str>, current: &str, start: &str| {
            kind_of(
                &Observation {
                    agent,
                    current_command: current,
                    start_command: start,
                    ..Observation::default()
                },
                &r,
            )
        };
        use AgentKind::*;
        assert_eq!(kind(Some("codex"), "claude", ""), Codex);
        assert_eq!(kind(Some("evil\u{1b}"), "claude", ""), Claude);
        assert_eq!(kind(None, "claude", ""), Claude);
        assert_eq!(
            kind(
                None,
                "sh",
                "/bin/sh -c -- \"/opt/fake-agents/codex busy:3\""
            ),
            Codex
        );
        assert_eq!(
            kind(None, "node", "/bin/sh -c '/opt/fake-agents/claude x'"),
            Claude
        );
        // `exec` and shells are wrappers: what they run is the agent.
        assert_eq!(kind(None, "bash", "exec opencode"), Opencode);
        assert_eq!(kind(None, "bash", "bash -c 'exec gemini'"), Gemini);
        assert_eq!(kind(None, "zsh", ""), Shell);
        assert_eq!(kind(None, "-bash", ""), Shell);
        assert_eq!(kind(None, "vim", "/bin/sh -c -- vim"), Other);
        assert_eq!(kind(None, "", ""), Other);
    }

    fn info(kind: AgentKind, state: AgentState) -> AgentInfo {
        AgentInfo {
            kind,
            state,
            ..AgentInfo::default()
        }
    }

    #[test]
    fn the_summary_prefers_agents_then_the_most_urgent() {
        use AgentKind::*;
        use AgentState::*;
        let shell_waiting = info(Shell, Waiting);
        let claude_idle = info(Claude, Idle);
        let codex_working = info(Codex, Working);
        let codex_waiting = info(Codex, Waiting);
        let exited = info(Aider, Exited);
        let s = |p: &[&AgentInfo]| summarize(p).map(|(i, _)| i);
        assert_eq!(s(&[&shell_waiting, &claude_idle]), Some(1));
        assert_eq!(s(&[&claude_idle, &codex_working, &codex_waiting]), Some(2));
        assert_eq!(s(&[&claude_idle, &exited]), Some(1));
        assert_eq!(s(&[&exited, &codex_working]), Some(1));
        assert_eq!(s(&[&codex_working, &codex_working]), Some(0));
        let shell_idle = info(Shell, Idle);
        let other_unknown = info(Other, Unknown);
        assert_eq!(s(&[&other_unknown, &shell_idle]), Some(1));
        assert_eq!(s(&[]), None);
    }

    #[test]
    fn the_exec_path_knows_exits_only() {
        let now = at(0);
        let mut session = SessionInfo {
            name: "a".into(),
            shed: "s".into(),
            server: "srv".into(),
            created_at: now,
            last_activity: now,
            idle_seconds: 0,
            attached: 0,
            windows: 1,
            current_command: "codex".into(),
            cwd: "/".into(),
            status: crate::api::SessionStatus::Idle,
            exited: false,
            exit_status: None,
            source: crate::api::SessionSource::Exec,
            agent: AgentInfo::default(),
        };
        let a = exec_agent(&session, &rules());
        assert_eq!((a.kind, a.state), (AgentKind::Codex, AgentState::Unknown));
        assert_eq!(a.reason, REASON_NO_CHANNEL);
        session.exited = true;
        session.exit_status = Some(3);
        let a = exec_agent(&session, &rules());
        assert_eq!(
            (a.state, a.source, a.exit_code),
            (AgentState::Exited, AgentSource::Exit, Some(3))
        );
    }
}
