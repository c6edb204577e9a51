//! Reading a shed's sessions out of tmux for a snapshot: one
//! `list-panes -a` for the structure, one script for every pane's history.
//!
//! As in the live model, the format makes free text safe: control
//! characters in names and paths become `?`, so `\x1f` separates fields and
//! a newline ends a pane.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::agent::AgentKind;
use crate::api::snapshot::{
    RestorePolicy, SavedPane, SavedSession, SavedWindow, Snapshot, SNAPSHOT_VERSION,
};
use crate::server::agent::rules::Rules;

use super::format::{self, MAX_PANES, MAX_PANE_HISTORY_BYTES, MAX_SESSIONS};

/// The session user option holding the create request (JSON of [`Created`]).
pub const CREATE_OPTION: &str = "@shed_create";
/// The pane option an agent names itself in.
pub const AGENT_OPTION: &str = "@shed_agent";
/// The pane option an agent reports its conversation id in.
pub const RESUME_OPTION: &str = "@shed_resume_id";

const FIELD: char = '\u{1f}';
const FIELDS: usize = 14;

/// What a session was created with, kept in [`CREATE_OPTION`] so that it
/// survives a server restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// The command, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The env given at create.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The restore policy asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestorePolicy>,
}

impl Created {
    /// The option value: JSON, which has no control characters.
    pub fn to_option(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A tmux variable whose control characters become `?`.
fn safe(var: &str) -> String {
    format!("#{{s/[\u{1}-\u{1f}\u{7f}]/?/:{var}}}")
}

/// `tmux list-panes -a` printing what a snapshot needs, one pane a line.
pub fn list_command() -> Vec<String> {
    let fields = [
        safe("session_name"),
        "#{window_index}".into(),
        "#{window_active}".into(),
        safe("window_name"),
        "#{window_layout}".into(),
        "#{window_width}".into(),
        "#{window_height}".into(),
        "#{pane_index}".into(),
        "#{pane_active}".into(),
        "#{pane_id}".into(),
        safe(CREATE_OPTION),
        safe(AGENT_OPTION),
        safe(RESUME_OPTION),
        // Last: a path may hold anything but control characters.
        safe("pane_current_path"),
    ];
    vec![
        "tmux".into(),
        "list-panes".into(),
        "-a".into(),
        "-F".into(),
        fields.join(&FIELD.to_string()),
    ]
}

/// One pane of [`list_command`]'s output, with its tmux pane id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPane {
    /// Session name.
    pub session: String,
    /// `%N`, for capturing its history.
    pub id: String,
    /// The create request, if the session has one.
    pub created: Option<Created>,
    /// Window index.
    pub window: u32,
    window_active: bool,
    window_name: String,
    layout: String,
    width: u32,
    height: u32,
    /// The pane as saved (history and resume id still empty).
    pub pane: SavedPane,
}

/// Parses [`list_command`] output; lines that do not parse are skipped.
/// The hidden control session is left out; at most [`MAX_PANES`] panes.
pub fn parse_list(text: &str) -> Vec<ListedPane> {
    let mut out = Vec::new();
    for line in text.lines() {
        if out.len() >= MAX_PANES {
            break;
        }
        let f: Vec<&str> = line.splitn(FIELDS, FIELD).collect();
        if f.len() != FIELDS || crate::server::control::is_reserved(f[0]) {
            continue;
        }
        let num = |s: &str| s.parse::<u32>().ok();
        let (Some(window), Some(width), Some(height), Some(index)) =
            (num(f[1]), num(f[5]), num(f[6]), num(f[7]))
        else {
            continue;
        };
        let id = f[9];
        if !(id.len() > 1 && id.starts_with('%') && id[1..].bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let created = (!f[10].is_empty())
            .then(|| serde_json::from_str::<Created>(f[10]).ok())
            .flatten();
        out.push(ListedPane {
            session: f[0].to_string(),
            id: id.to_string(),
            created,
            window,
            window_active: f[2] == "1",
            window_name: format::head(f[3], format::MAX_TEXT_BYTES).to_string(),
            // tmux's own; anything else is not applied rather than refused.
            layout: if format::layout_ok(f[4]) { f[4] } else { "" }.to_string(),
            width,
            height,
            pane: SavedPane {
                index,
                cwd: if f[13].starts_with('/') && f[13].len() <= format::MAX_TEXT_BYTES {
                    f[13]
                } else {
                    "/workspace"
                }
                .to_string(),
                active: f[8] == "1",
                agent: AgentKind::parse(f[11]).filter(|k| k.is_agent()),
                resume_id: (!f[12].is_empty() && f[12].len() <= format::MAX_TEXT_BYTES)
                    .then(|| f[12].to_string()),
                history: String::new(),
            },
        });
    }
    out
}

/// A script printing, for each pane id given after the marker and the line
/// count, a marker line with the pane's id, then its last lines. The marker is random per capture, so no pane's text can forge one.
pub const HISTORY_SCRIPT: &str = r#"m=$1; n=$2; shift 2
for p in "$@"; do
  printf '\n%s %s\n' "$m" "$p"
  [ "$n" -gt 0 ] && tmux capture-pane -p -J -t "$p" -S "-$n" 2>/dev/null
done
exit 0
"#;

/// The argv of [`HISTORY_SCRIPT`] for `panes`.
pub fn history_command(marker: &str, lines: usize, panes: &[&str]) -> Vec<String> {
    let mut cmd: Vec<String> = ["/bin/sh", "-c", HISTORY_SCRIPT, "shed-history"]
        .map(String::from)
        .to_vec();
    cmd.push(marker.into());
    cmd.push(lines.to_string());
    cmd.extend(panes.iter().map(|p| p.to_string()));
    cmd
}

/// Each pane's history from [`HISTORY_SCRIPT`] output, by pane id.
pub fn parse_history(text: &str, marker: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let head = format!("\n{marker} ");
    for part in text.split(&head).skip(1) {
        let (first, body) = part.split_once('\n').unwrap_or((part, ""));
        let id = first.trim();
        if !id.starts_with('%') {
            continue;
        }
        let body = body.trim_end_matches(['\n', ' ']);
        let history = format::tail(body, MAX_PANE_HISTORY_BYTES).to_string();
        out.insert(id.to_string(), history);
    }
    out
}

/// A random marker for [`history_command`].
pub fn marker() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("\u{1e}shed-{:016x}", h.finish())
}

/// The snapshot of `panes` (with `histories` from [`parse_history`]) taken in
/// container start `run`. Sessions are sorted by name, windows and panes by
/// index; a session with no create request is a plain shell session.
pub fn build(
    run: &str,
    panes: Vec<ListedPane>,
    mut histories: BTreeMap<String, String>,
    rules: &Rules,
) -> Snapshot {
    let mut sessions: BTreeMap<String, SavedSession> = BTreeMap::new();
    for listed in panes {
        if !sessions.contains_key(&listed.session) && sessions.len() >= MAX_SESSIONS {
            continue;
        }
        let session = sessions.entry(listed.session.clone()).or_insert_with(|| {
            let created = listed.created.clone().unwrap_or_default();
            let restore = created
                .restore
                .unwrap_or_else(|| format::default_policy(created.command.as_deref(), rules));
            SavedSession {
                name: listed.session.clone(),
                command: created.command,
                env: created.env,
                restore,
                windows: Vec::new(),
            }
        });
        let mut pane = listed.pane;
        if let Some(history) = histories.remove(&listed.id) {
            pane.history = history;
        }
        match session
            .windows
            .iter_mut()
            .find(|w| w.index == listed.window)
        {
            Some(window) => window.panes.push(pane),
            None => {
                if session.windows.len() >= format::MAX_WINDOWS {
                    continue;
                }
                session.windows.push(SavedWindow {
                    index: listed.window,
                    name: listed.window_name,
                    layout: listed.layout,
                    width: listed.width,
                    height: listed.height,
                    active: listed.window_active,
                    panes: vec![pane],
                });
            }
        }
    }
    let mut sessions: Vec<SavedSession> = sessions.into_values().collect();
    // A session whose create request is out of bounds (or whose name is
    // not one the API would make) is left out rather than spoil the file.
    sessions.retain(|s| match format::check_session(s) {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(session = %s.name, error = %e, "session left out of the snapshot");
            false
        }
    });
    for session in &mut sessions {
        session.windows.sort_by_key(|w| w.index);
        for window in &mut session.windows {
            window.panes.sort_by_key(|p| p.index);
        }
        // The first pane runs the session's command: when it is an agent,
        // say so even if the agent never reported itself.
        let kind = session.command.as_deref().and_then(|c| rules.kind_of(c));
        if let Some(first) = session
            .windows
            .first_mut()
            .and_then(|w| w.panes.first_mut())
        {
            first.agent = first.agent.or(kind);
        }
    }
    Snapshot {
        version: SNAPSHOT_VERSION,
        saved_at: chrono::Utc::now(),
        run: run.into(),
        restored_for: None,
        sessions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(session: &str, window: u32, pane: u32, id: &str, created: &str, cwd: &str) -> String {
        [
            session,
            &window.to_string(),
            if window == 0 { "1" } else { "0" },
            "win",
            "b25d,80x24,0,0,1",
            "80",
            "24",
            &pane.to_string(),
            "1",
            id,
            created,
            "",
            if id == "%1" { "conv-9" } else { "" },
            cwd,
        ]
        .join("\u{1f}")
    }

    #[test]
    fn panes_and_histories_become_sessions_windows_and_panes() {
        let created = Created {
            command: Some("claude".into()),
            env: [("K".to_string(), "v".to_string())].into(),
            restore: None,
        }
        .to_option();
        let text = [
            line("b", 1, 0, "%3", "", "/tmp"),
            line("a", 0, 0, "%1", &created, "/workspace/x\u{1f}y"),
            line("a", 0, 1, "%2", &created, "/workspace"),
            line("b", 0, 0, "%4", "", "/"),
            line(crate::server::control::CONTROL_SESSION, 0, 0, "%0", "", "/"),
            "garbage".into(),
            line("c", 0, 0, "not-an-id", "", "/"),
        ]
        .join("\n");
        let panes = parse_list(&text);
        assert_eq!(panes.len(), 4);
        let m = "\u{1e}shed-1";
        let out = format!("\n{m} %1\none\ntwo\n\n\n{m} %3\nthree\n{m} fake\n");
        let histories = parse_history(&out, m);
        let s = build("run1", panes, histories, &Rules::builtin());
        assert_eq!(s.run, "run1");
        let names: Vec<&str> = s.sessions.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let a = &s.sessions[0];
        assert_eq!(a.command.as_deref(), Some("claude"));
        assert_eq!(a.restore, RestorePolicy::Resume);
        assert_eq!(a.env["K"], "v");
        assert_eq!(a.windows.len(), 1);
        assert_eq!(a.windows[0].panes.len(), 2);
        let first = &a.windows[0].panes[0];
        assert_eq!(first.cwd, "/workspace/x\u{1f}y");
        assert_eq!(first.resume_id.as_deref(), Some("conv-9"));
        assert_eq!(first.history, "one\ntwo");
        assert_eq!(first.agent, Some(AgentKind::Claude));
        let b = &s.sessions[1];
        assert_eq!(b.restore, RestorePolicy::Shell);
        assert_eq!(
            b.windows.iter().map(|w| w.index).collect::<Vec<_>>(),
            [0, 1]
        );
        // A marker line naming no pane ends the history before it and is
        // skipped (a real marker is random, so no pane can print one).
        assert_eq!(b.windows[1].panes[0].history, "three");
        assert!(format::check(&s).is_ok());
    }
}
