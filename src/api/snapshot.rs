//! Wire types of session snapshots (issue 13): the versioned file a shed's
//! workspace volume keeps, `GET /api/sheds/{name}/snapshot` and
//! `POST /api/sheds/{name}/snapshot/restore`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::agent::AgentKind;

/// The snapshot format this build writes; it reads this one and older.
pub const SNAPSHOT_VERSION: u32 = 1;

/// What a restored session runs in its first pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RestorePolicy {
    /// A fresh shell (the default for a session without a command).
    Shell,
    /// The session's command, run again.
    Rerun,
    /// An agent relaunched on its conversation (the default for a command
    /// that runs a known agent); without a resume id, as `ask`.
    Resume,
    /// The command is shown and runs when the user presses Enter (the
    /// default for any other command).
    Ask,
}

impl RestorePolicy {
    /// Every policy, in a fixed order.
    pub const ALL: [RestorePolicy; 4] = [
        RestorePolicy::Shell,
        RestorePolicy::Rerun,
        RestorePolicy::Resume,
        RestorePolicy::Ask,
    ];

    /// The wire name, e.g. `rerun`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestorePolicy::Shell => "shell",
            RestorePolicy::Rerun => "rerun",
            RestorePolicy::Resume => "resume",
            RestorePolicy::Ask => "ask",
        }
    }

    /// The policy with this wire name.
    pub fn parse(s: &str) -> Option<RestorePolicy> {
        RestorePolicy::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for RestorePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The snapshot file: every session of one shed as last saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// Format version, [`SNAPSHOT_VERSION`] when written by this build.
    pub version: u32,
    /// When it was written.
    pub saved_at: DateTime<Utc>,
    /// The container start (Docker's `State.StartedAt`) it was taken in.
    pub run: String,
    /// The container start its sessions were restored for, if any: nothing
    /// is restored twice for one start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_for: Option<String>,
    /// The sessions, sorted by name.
    pub sessions: Vec<SavedSession>,
}

/// One saved session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavedSession {
    /// Session name.
    pub name: String,
    /// The command it was created with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The environment given at create.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// What a restore runs.
    pub restore: RestorePolicy,
    /// Its windows, by index.
    pub windows: Vec<SavedWindow>,
}

/// One saved window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavedWindow {
    /// tmux's window index.
    pub index: u32,
    /// Window name.
    pub name: String,
    /// tmux's layout string (`select-layout`).
    pub layout: String,
    /// Width in cells.
    pub width: u32,
    /// Height in cells.
    pub height: u32,
    /// Whether it is the session's current window.
    pub active: bool,
    /// Its panes, by index.
    pub panes: Vec<SavedPane>,
}

/// One saved pane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavedPane {
    /// tmux's pane index.
    pub index: u32,
    /// Working directory.
    pub cwd: String,
    /// Whether it is the window's current pane.
    pub active: bool,
    /// The agent running in it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentKind>,
    /// The agent's conversation id (`@shed_resume_id`), when it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_id: Option<String>,
    /// The pane's last lines (scrollback and screen), oldest first.
    #[serde(default)]
    pub history: String,
}

/// Body of `GET /api/sheds/{name}/snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotView {
    /// The shed.
    pub shed: String,
    /// Which file answered: `current`, `previous`, or absent when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The snapshot, when one could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// Files that could not be read, and why.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The sessions' environment values are withheld (empty): a read-only
    /// token sees which variables a session has, never their values.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub env_hidden: bool,
}

impl SnapshotView {
    /// Empties every saved session's environment values: they are often
    /// secrets (API keys for an agent), which a viewer must not read.
    pub fn hide_env_values(&mut self) {
        for session in self.snapshot.iter_mut().flat_map(|s| &mut s.sessions) {
            session.env.values_mut().for_each(String::clear);
        }
        self.env_hidden = true;
    }
}

/// What a restore did, or would do, with one saved session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreAction {
    /// Session name.
    pub session: String,
    /// Windows recreated.
    pub windows: usize,
    /// Panes recreated.
    pub panes: usize,
    /// The session's policy.
    pub policy: RestorePolicy,
    /// What its first pane runs (after the history): `shell`, or the command
    /// line run or offered.
    pub runs: String,
    /// Why nothing was done, when nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Body of `POST /api/sheds/{name}/snapshot/restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreReport {
    /// The shed.
    pub shed: String,
    /// Whether this only says what would be done.
    pub dry_run: bool,
    /// Which file was restored from: `current` or `previous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// One entry per saved session.
    pub actions: Vec<RestoreAction>,
    /// What went wrong on the way (unreadable files, failed commands).
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiding_env_values_keeps_the_names_and_says_so() {
        let mut view: SnapshotView = serde_json::from_value(serde_json::json!({
            "shed": "s",
            "snapshot": {
                "version": SNAPSHOT_VERSION,
                "saved_at": "2026-12-07T00:00:00Z",
                "run": "r",
                "sessions": [{
                    "name": "agent",
                    "env": {"ANTHROPIC_API_KEY": "sk-secret", "MODE": "x"},
                    "restore": "ask",
                    "windows": []
                }]
            }
        }))
        .unwrap();
        assert!(!serde_json::to_string(&view).unwrap().contains("env_hidden"));
        view.hide_env_values();
        let shown = serde_json::to_value(&view).unwrap();
        assert_eq!(
            shown["snapshot"]["sessions"][0]["env"],
            serde_json::json!({"ANTHROPIC_API_KEY": "", "MODE": ""})
        );
        assert_eq!(shown["env_hidden"], true);
    }
}
