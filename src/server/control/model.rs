//! The live model of one shed's tmux sessions and panes, fed by one
//! subscription whose format loops over every session, window and pane.
//!
//! tmux prints a subscription value raw on one line, so the format itself
//! makes every free-text value safe: each control character (newline,
//! separator bytes, escape) is replaced by `?` with a tmux regex
//! substitution. The separators are control characters, so they can only
//! come from the format: `\x1e` starts a session, `\x1d` a pane, `\x1f`
//! separates fields.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use thiserror::Error;

use super::protocol::truncate;
use super::CONTROL_SESSION;
use crate::api::{SessionInfo, SessionStatus};

/// Most sessions kept per shed; later ones (by tmux's order) are dropped.
pub const MAX_SESSIONS: usize = 256;

/// Most panes kept per shed, over all its sessions.
pub const MAX_PANES: usize = 1024;

/// Longest free-text value kept (a path, a command, an option value).
pub const MAX_VALUE_BYTES: usize = 4096;

/// Most `@shed_*` user options a model follows.
pub const MAX_OPTIONS: usize = 16;

/// The pane option an agent reports its state in (`working`, `waiting`, `idle`).
pub const STATE_OPTION: &str = "@shed_state";

/// The pane option an agent reports its conversation id in.
pub const RESUME_ID_OPTION: &str = "@shed_resume_id";

/// The pane option that names the agent running in a pane.
pub const AGENT_OPTION: &str = "@shed_agent";

const SESSION_START: char = '\u{1e}';
const PANE_START: char = '\u{1d}';
const FIELD: char = '\u{1f}';

/// Session fields before its options.
const SESSION_FIELDS: usize = 9;
/// Pane fields before its options.
const PANE_FIELDS: usize = 13;

/// Why a model format could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    /// Only `@shed_` followed by `[a-z0-9_-]` is followed.
    #[error("user option {0:?} is not @shed_ followed by [a-z0-9_-]")]
    BadOptionName(String),
    /// More than [`MAX_OPTIONS`] options.
    #[error("at most {MAX_OPTIONS} user options are followed")]
    TooManyOptions,
}

/// A tmux variable as a format whose control characters become `?`.
fn safe(var: &str) -> String {
    format!("#{{s/[\u{1}-\u{1f}\u{7f}]/?/:{var}}}")
}

/// Which values the subscription carries; the same format serves a
/// synchronous snapshot through `display-message -p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFormat {
    options: Vec<String>,
}

impl Default for ModelFormat {
    fn default() -> Self {
        Self {
            options: [STATE_OPTION, RESUME_ID_OPTION, AGENT_OPTION]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl ModelFormat {
    /// A format following the given `@shed_*` user options.
    pub fn new<S: AsRef<str>>(options: &[S]) -> Result<Self, ModelError> {
        if options.len() > MAX_OPTIONS {
            return Err(ModelError::TooManyOptions);
        }
        let mut names = Vec::new();
        for o in options {
            let o = o.as_ref();
            let ok = o.strip_prefix("@shed_").is_some_and(|rest| {
                !rest.is_empty()
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
            });
            if !ok {
                return Err(ModelError::BadOptionName(o.to_string()));
            }
            names.push(o.to_string());
        }
        Ok(Self { options: names })
    }

    /// The followed option names.
    pub fn options(&self) -> &[String] {
        &self.options
    }

    /// The tmux format: every session, then every pane of every window.
    pub fn format(&self) -> String {
        let sep = FIELD.to_string();
        let mut session = vec![
            safe("session_name"),
            "#{session_id}".into(),
            "#{session_created}".into(),
            "#{session_activity}".into(),
            // window_activity moves on output, session_activity on input.
            "#{window_activity}".into(),
            "#{session_attached}".into(),
            "#{session_windows}".into(),
            safe("pane_current_command"),
            safe("pane_current_path"),
        ];
        // In a session loop tmux resolves a user option from the session's
        // active pane outwards (pane, window, session, global).
        session.extend(self.options.iter().map(|o| safe(o)));
        let mut pane = vec![
            "#{pane_id}".into(),
            "#{window_id}".into(),
            "#{window_index}".into(),
            "#{window_active}".into(),
            "#{pane_active}".into(),
            "#{pane_dead}".into(),
            "#{pane_dead_status}".into(),
            "#{pane_pid}".into(),
            safe("pane_current_command"),
            safe("pane_current_path"),
            "#{window_bell_flag}".into(),
            // Per pane, as a session's own value is its current window's only.
            "#{window_activity}".into(),
            safe("pane_start_command"),
        ];
        pane.extend(self.options.iter().map(|o| safe(o)));
        format!(
            "#{{S:{SESSION_START}{}#{{W:#{{P:{PANE_START}{}}}}}}}",
            session.join(&sep),
            pane.join(&sep)
        )
    }

    /// Parses a value of [`Self::format`]. Records that do not parse are
    /// skipped; a `truncated` value loses its last, incomplete session.
    pub fn parse(&self, value: &str, truncated: bool) -> Model {
        let mut model = Model {
            truncated,
            ..Model::default()
        };
        let mut records: Vec<&str> = value.split(SESSION_START).skip(1).collect();
        if truncated {
            records.pop();
        }
        let mut panes = 0usize;
        for record in records {
            let mut parts = record.split(PANE_START);
            let Some(mut session) = parts.next().and_then(|s| self.parse_session(s)) else {
                continue;
            };
            if session.name == CONTROL_SESSION {
                continue;
            }
            if model.sessions.len() >= MAX_SESSIONS {
                model.truncated = true;
                break;
            }
            for p in parts {
                if panes >= MAX_PANES {
                    model.truncated = true;
                    break;
                }
                if let Some(pane) = self.parse_pane(p) {
                    session.panes.push(pane);
                    panes += 1;
                }
            }
            model.sessions.insert(session.name.clone(), session);
        }
        model
    }

    fn options_of(&self, values: &[&str]) -> BTreeMap<String, String> {
        self.options
            .iter()
            .zip(values)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), text(v)))
            .collect()
    }

    fn parse_session(&self, record: &str) -> Option<Session> {
        let f: Vec<&str> = record.split(FIELD).collect();
        if f.len() != SESSION_FIELDS + self.options.len() || f[0].is_empty() {
            return None;
        }
        Some(Session {
            name: text(f[0]),
            id: text(f[1]),
            created: f[2].parse().ok()?,
            activity: f[3].parse().ok()?,
            window_activity: f[4].parse().ok(),
            attached: f[5].parse().ok()?,
            windows: f[6].parse().ok()?,
            current_command: text(f[7]),
            cwd: text(f[8]),
            options: self.options_of(&f[SESSION_FIELDS..]),
            panes: Vec::new(),
        })
    }

    fn parse_pane(&self, record: &str) -> Option<Pane> {
        let f: Vec<&str> = record.split(FIELD).collect();
        if f.len() != PANE_FIELDS + self.options.len() {
            return None;
        }
        Some(Pane {
            id: text(f[0]),
            window_id: text(f[1]),
            window_index: f[2].parse().ok()?,
            window_active: f[3] == "1",
            active: f[4] == "1",
            dead: f[5] == "1",
            dead_status: f[6].parse().ok(),
            pid: f[7].parse().ok(),
            current_command: text(f[8]),
            current_path: text(f[9]),
            bell: f[10] == "1",
            window_activity: f[11].parse().ok(),
            start_command: text(f[12]),
            options: self.options_of(&f[PANE_FIELDS..]),
        })
    }
}

/// A bounded copy of a value.
fn text(s: &str) -> String {
    truncate(s, MAX_VALUE_BYTES).to_string()
}

/// One tmux session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session name.
    pub name: String,
    /// tmux's id, `$N`.
    pub id: String,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// Last input, seconds since the epoch.
    pub activity: i64,
    /// Last output in its current window, if tmux reported one.
    pub window_activity: Option<i64>,
    /// Attached clients.
    pub attached: u32,
    /// Number of windows.
    pub windows: u32,
    /// Foreground command of the active pane.
    pub current_command: String,
    /// Working directory of the active pane.
    pub cwd: String,
    /// Followed `@shed_*` options as seen from the session's active pane.
    pub options: BTreeMap<String, String>,
    /// Every pane of every window.
    pub panes: Vec<Pane>,
}

impl Session {
    /// Whether any window has its bell flag set.
    pub fn bell(&self) -> bool {
        self.panes.iter().any(|p| p.bell)
    }

    /// The active pane of the active window.
    pub fn active_pane(&self) -> Option<&Pane> {
        self.panes.iter().find(|p| p.window_active && p.active)
    }

    /// As the API shows it, with the status rules of `tmux::parse_sessions`.
    pub fn info(&self, shed: &str, server: &str, now: DateTime<Utc>) -> Option<SessionInfo> {
        let time = |t: i64| DateTime::from_timestamp(t, 0);
        let created_at = time(self.created)?;
        let session_activity = time(self.activity)?;
        let output_activity = self
            .window_activity
            .and_then(time)
            .unwrap_or(session_activity);
        let last_activity = session_activity.max(output_activity);
        let status = SessionStatus::of(self.attached, output_activity, now);
        Some(SessionInfo {
            name: self.name.clone(),
            shed: shed.to_string(),
            server: server.to_string(),
            created_at,
            last_activity,
            idle_seconds: (now - last_activity).num_seconds().max(0) as u64,
            attached: self.attached,
            windows: self.windows,
            current_command: self.current_command.clone(),
            cwd: self.cwd.clone(),
            status,
            exited: self.active_pane().is_some_and(|p| p.dead),
            exit_status: self
                .active_pane()
                .and_then(|p| p.dead.then_some(p.dead_status).flatten()),
            source: crate::api::SessionSource::Channel,
            agent: Default::default(),
        })
    }
}

/// One pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pane {
    /// tmux's id, `%N`.
    pub id: String,
    /// Its window's id, `@N`.
    pub window_id: String,
    /// Its window's index in the session.
    pub window_index: u32,
    /// Its window is the session's current one.
    pub window_active: bool,
    /// It is its window's active pane.
    pub active: bool,
    /// Its program ended and the pane remains (remain-on-exit).
    pub dead: bool,
    /// The exit status of a dead pane, when it exited normally.
    pub dead_status: Option<i32>,
    /// The pane's first process.
    pub pid: Option<u32>,
    /// Foreground command.
    pub current_command: String,
    /// Working directory.
    pub current_path: String,
    /// Its window's bell flag.
    pub bell: bool,
    /// Last output in its window, seconds since the epoch, if tmux reported one.
    pub window_activity: Option<i64>,
    /// The command the pane was started with (empty for the default shell).
    pub start_command: String,
    /// Followed `@shed_*` options as seen from the pane (pane, window,
    /// session, then global values).
    pub options: BTreeMap<String, String>,
}

/// Every session of one shed, except the hidden control session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// Sessions by name.
    pub sessions: BTreeMap<String, Session>,
    /// Something was dropped to stay within the bounds.
    pub truncated: bool,
}

/// What differs in a session between two models.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// Attached client count.
    Attached,
    /// Window count.
    Windows,
    /// Input or output activity time.
    Activity,
    /// The active pane's command.
    CurrentCommand,
    /// The active pane's directory.
    Cwd,
    /// A bell flag.
    Bell,
    /// Panes came or went.
    Panes,
    /// A pane died or its exit status changed.
    PaneDead,
    /// A followed user option, session or pane.
    Option(String),
}

/// One event from comparing two models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A session appeared.
    Created(String),
    /// A session went away.
    Closed(String),
    /// A session's fields changed.
    Changed {
        /// The session.
        name: String,
        /// What changed, sorted.
        fields: Vec<Field>,
    },
}

impl Model {
    /// The sessions as the API lists them, sorted by name.
    pub fn sessions(&self, shed: &str, server: &str, now: DateTime<Utc>) -> Vec<SessionInfo> {
        self.sessions
            .values()
            .filter_map(|s| s.info(shed, server, now))
            .collect()
    }

    /// One session by exact name.
    pub fn get(&self, name: &str) -> Option<&Session> {
        self.sessions.get(name)
    }

    /// What happened between `self` and `newer`, sessions in name order.
    pub fn diff(&self, newer: &Model) -> Vec<Change> {
        let mut out = Vec::new();
        for name in self.sessions.keys() {
            if !newer.sessions.contains_key(name) {
                out.push(Change::Closed(name.clone()));
            }
        }
        for (name, new) in &newer.sessions {
            let Some(old) = self.sessions.get(name) else {
                out.push(Change::Created(name.clone()));
                continue;
            };
            let fields = changed_fields(old, new);
            if !fields.is_empty() {
                out.push(Change::Changed {
                    name: name.clone(),
                    fields,
                });
            }
        }
        out
    }
}

fn changed_fields(old: &Session, new: &Session) -> Vec<Field> {
    let mut f = Vec::new();
    if old.attached != new.attached {
        f.push(Field::Attached);
    }
    if old.windows != new.windows {
        f.push(Field::Windows);
    }
    if old.activity != new.activity || old.window_activity != new.window_activity {
        f.push(Field::Activity);
    }
    if old.current_command != new.current_command {
        f.push(Field::CurrentCommand);
    }
    if old.cwd != new.cwd {
        f.push(Field::Cwd);
    }
    if old.bell() != new.bell() {
        f.push(Field::Bell);
    }
    let ids = |s: &Session| s.panes.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
    if ids(old) != ids(new) {
        f.push(Field::Panes);
    }
    let dead = |s: &Session| {
        s.panes
            .iter()
            .map(|p| (p.id.clone(), p.dead, p.dead_status))
            .collect::<Vec<_>>()
    };
    if dead(old) != dead(new) {
        f.push(Field::PaneDead);
    }
    let mut names: Vec<&String> = old.options.keys().chain(new.options.keys()).collect();
    for p in old.panes.iter().chain(&new.panes) {
        names.extend(p.options.keys());
    }
    names.sort();
    names.dedup();
    for name in names {
        let pane_values = |s: &Session| {
            s.panes
                .iter()
                .map(|p| p.options.get(name).cloned())
                .collect::<Vec<_>>()
        };
        if old.options.get(name) != new.options.get(name) || pane_values(old) != pane_values(new) {
            f.push(Field::Option(name.clone()));
        }
    }
    f.sort();
    f
}

/// Test builders shared by the modules that read a model.
#[cfg(test)]
impl Session {
    /// A session of one window with these panes, a bash in `/`, nobody attached.
    pub(crate) fn sample(name: &str, panes: Vec<Pane>) -> Session {
        Session {
            name: name.into(),
            id: "$1".into(),
            created: 1_000_000,
            activity: 1_000_000,
            window_activity: None,
            attached: 0,
            windows: 1,
            current_command: "bash".into(),
            cwd: "/".into(),
            options: Default::default(),
            panes,
        }
    }
}

#[cfg(test)]
impl Model {
    /// A whole model of these sessions.
    pub(crate) fn of(sessions: Vec<Session>) -> Model {
        Model {
            sessions: sessions.into_iter().map(|s| (s.name.clone(), s)).collect(),
            truncated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pads a record's trailing options to the default format's count.
    fn padded(mut fields: Vec<&str>, total: usize) -> String {
        while fields.len() < total {
            fields.push("");
        }
        fields.join(&FIELD.to_string())
    }

    fn options() -> usize {
        ModelFormat::default().options().len()
    }

    fn session(fields: &[&str]) -> String {
        let total = SESSION_FIELDS + options();
        format!("{SESSION_START}{}", padded(fields.to_vec(), total))
    }

    /// A pane from the fields before `window_activity`, then its options.
    fn pane(fields: &[&str]) -> String {
        pane_with(&fields[..11], "", "", &fields[11..])
    }

    fn pane_with(first: &[&str], activity: &str, start: &str, opts: &[&str]) -> String {
        let mut f = first.to_vec();
        f.extend([activity, start]);
        f.extend(opts);
        format!("{PANE_START}{}", padded(f, PANE_FIELDS + options()))
    }

    fn sample() -> String {
        [
            session(&[
                "_shed", "$0", "1000000", "1000000", "1000000", "1", "1", "bash", "/", "",
            ]),
            pane(&[
                "%0", "@0", "0", "1", "1", "0", "", "10", "bash", "/", "0", "",
            ]),
            session(&[
                "zeta",
                "$2",
                "1000000",
                "1000000",
                "1000095",
                "0",
                "2",
                "claude",
                "/w/my|dir",
                "busy",
            ]),
            pane_with(
                &[
                    "%2", "@2", "0", "1", "1", "0", "", "12", "claude", "/w", "1",
                ],
                "1000095",
                "/bin/sh -c -- \"claude x\"",
                &["busy", "abc-1", "claude"],
            ),
            pane(&[
                "%3", "@3", "1", "0", "1", "1", "3", "13", "sleep", "/w", "0", "",
            ]),
            session(&[
                "alpha", "$1", "1000000", "1000050", "1000010", "1", "1", "bash", "/w", "",
            ]),
            pane(&[
                "%1", "@1", "0", "1", "1", "0", "", "11", "bash", "/w", "0", "",
            ]),
            session(&[
                "idle", "$4", "1000000", "1000000", "1000000", "0", "1", "bash", "/", "",
            ]),
            "garbage".into(),
            session(&["broken", "$5", "x"]),
        ]
        .concat()
    }

    #[test]
    fn the_format_loops_everything_and_sanitises_text() {
        let f = ModelFormat::default().format();
        assert!(f.starts_with("#{S:\u{1e}#{s/[\u{1}-\u{1f}\u{7f}]/?/:session_name}"));
        assert!(f.contains("#{W:#{P:\u{1d}#{pane_id}"));
        assert!(f.contains("#{s/[\u{1}-\u{1f}\u{7f}]/?/:@shed_state}"));
        assert!(f.contains("#{s/[\u{1}-\u{1f}\u{7f}]/?/:pane_start_command}"));
        assert!(f.ends_with("}}}"));
        assert!(!f.contains('\n'));
    }

    #[test]
    fn option_names_are_checked() {
        assert!(ModelFormat::new(&["@shed_state", "@shed_x-1"]).is_ok());
        assert!(ModelFormat::new(&["@other"]).is_err());
        assert!(ModelFormat::new(&["@shed_}"]).is_err());
        assert!(ModelFormat::new(&["@shed_"]).is_err());
    }

    #[test]
    fn parses_and_reports_like_list_sessions() {
        let m = ModelFormat::default().parse(&sample(), false);
        assert_eq!(
            m.sessions.keys().collect::<Vec<_>>(),
            ["alpha", "idle", "zeta"]
        );
        let now = DateTime::from_timestamp(1_000_100, 0).unwrap();
        let infos = m.sessions("s", "srv", now);
        assert_eq!(infos[0].status, SessionStatus::Attached);
        assert_eq!(infos[0].idle_seconds, 50);
        assert_eq!(infos[1].status, SessionStatus::Idle);
        assert_eq!(infos[2].status, SessionStatus::Active);
        assert_eq!(infos[2].cwd, "/w/my|dir");
        assert_eq!(infos[2].windows, 2);
        let zeta = m.get("zeta").unwrap();
        assert!(zeta.bell());
        assert_eq!(zeta.options.get(STATE_OPTION).unwrap(), "busy");
        assert_eq!(zeta.panes[1].dead_status, Some(3));
        assert!(zeta.panes[1].dead);
        assert_eq!(zeta.active_pane().unwrap().id, "%2");
        assert_eq!(zeta.panes[0].pid, Some(12));
        assert_eq!(zeta.panes[0].window_activity, Some(1_000_095));
        assert_eq!(zeta.panes[1].window_activity, None);
        assert_eq!(zeta.panes[0].start_command, "/bin/sh -c -- \"claude x\"");
        assert_eq!(
            zeta.panes[0].options.get(RESUME_ID_OPTION).unwrap(),
            "abc-1"
        );
        assert_eq!(zeta.panes[0].options.get(AGENT_OPTION).unwrap(), "claude");
    }

    #[test]
    fn a_truncated_value_drops_its_last_session() {
        let value = sample();
        let cut = &value[..value.find("idle").unwrap() + 2];
        let m = ModelFormat::default().parse(cut, true);
        assert!(m.truncated);
        assert_eq!(m.sessions.keys().collect::<Vec<_>>(), ["alpha", "zeta"]);
    }

    #[test]
    fn bounds_hold() {
        let mut value = String::new();
        for i in 0..(MAX_SESSIONS + 5) {
            value.push_str(&session(&[
                &format!("s{i}"),
                "$1",
                "1",
                "1",
                "1",
                "0",
                "1",
                &"c".repeat(MAX_VALUE_BYTES * 2),
                "/",
                "",
            ]));
            for _ in 0..5 {
                value.push_str(&pane(&[
                    "%1", "@1", "0", "1", "1", "0", "", "1", "c", "/", "0", "",
                ]));
            }
        }
        let m = ModelFormat::default().parse(&value, false);
        assert!(m.truncated);
        assert_eq!(m.sessions.len(), MAX_SESSIONS);
        let panes: usize = m.sessions.values().map(|s| s.panes.len()).sum();
        assert!(panes <= MAX_PANES);
        assert!(m
            .sessions
            .values()
            .all(|s| s.current_command.len() == MAX_VALUE_BYTES));
    }

    #[test]
    fn diffs_name_what_changed() {
        let f = ModelFormat::default();
        let old = f.parse(&sample(), false);
        let mut new = old.clone();
        new.sessions.remove("idle");
        let mut fresh = new.sessions["alpha"].clone();
        fresh.name = "beta".into();
        new.sessions.insert("beta".into(), fresh);
        let alpha = new.sessions.get_mut("alpha").unwrap();
        alpha.panes[0].dead = true;
        alpha.panes[0].dead_status = Some(0);
        alpha.panes[0].bell = true;
        alpha.panes[0]
            .options
            .insert(STATE_OPTION.into(), "waiting".into());
        alpha.attached = 0;
        assert_eq!(
            old.diff(&new),
            vec![
                Change::Closed("idle".into()),
                Change::Changed {
                    name: "alpha".into(),
                    fields: vec![
                        Field::Attached,
                        Field::Bell,
                        Field::PaneDead,
                        Field::Option(STATE_OPTION.into())
                    ]
                },
                Change::Created("beta".into()),
            ]
        );
        assert!(old.diff(&old).is_empty());
    }
}
