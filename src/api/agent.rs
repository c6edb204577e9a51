//! The agent wire types: what program runs in a session, whether it needs
//! its user, and why shed thinks so.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

wire_enum! {
    /// Which agent (or plain shell) runs in a pane.
    #[derive(Default)]
    pub enum AgentKind {
        /// Anthropic's Claude Code.
        Claude = "claude",
        /// OpenAI's Codex CLI.
        Codex = "codex",
        /// OpenCode.
        Opencode = "opencode",
        /// Aider.
        Aider = "aider",
        /// Google's Gemini CLI.
        Gemini = "gemini",
        /// An interactive shell with nothing else in the foreground.
        Shell = "shell",
        /// Any other program (also what an unknown string from a newer server reads as).
        #[default]
        #[serde(other)]
        Other = "other",
    }
}

impl AgentKind {
    /// Whether this is a coding agent rather than a shell or another program.
    pub fn is_agent(self) -> bool {
        !matches!(self, AgentKind::Shell | AgentKind::Other)
    }
}

wire_enum! {
    /// What an agent is doing, from its user's point of view.
    #[derive(Default)]
    pub enum AgentState {
        /// Busy: nothing to do for its user.
        Working = "working",
        /// Needs its user: a permission prompt, a question, a bell.
        Waiting = "waiting",
        /// Done with its turn, or a quiet shell.
        Idle = "idle",
        /// Its program ended (see `exit_code`).
        Exited = "exited",
        /// Nothing decided yet.
        #[default]
        #[serde(other)]
        Unknown = "unknown",
    }
}

wire_enum! {
    /// Which source decided a state, strongest first.
    #[derive(Default)]
    pub enum AgentSource {
        /// The agent said so itself: the pane option `@shed_state`, set by a hook.
        Reported = "reported",
        /// The pane's program ended.
        Exit = "exit",
        /// A screen rule matched the visible screen.
        Screen = "screen",
        /// The pane rang its bell.
        Bell = "bell",
        /// Output activity: working while the screen changes, idle when quiet.
        Activity = "activity",
        /// Nothing has decided yet (no channel, or no observation).
        #[default]
        #[serde(other)]
        None = "none",
    }
}

/// A session's agent, decided per pane and summarised per session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentInfo {
    /// The program.
    pub kind: AgentKind,
    /// What it is doing.
    pub state: AgentState,
    /// When it entered `state`.
    pub since: DateTime<Utc>,
    /// Which source decided.
    #[serde(default)]
    pub source: AgentSource,
    /// The source in words, e.g. `screen rule claude/permission-menu (rules 1)`.
    pub reason: String,
    /// The exit status, for `exited` with a normal exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The agent's conversation id, as it reported it (`@shed_resume_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_id: Option<String>,
}

impl Default for AgentInfo {
    fn default() -> Self {
        AgentInfo {
            kind: AgentKind::Other,
            state: AgentState::Unknown,
            since: DateTime::<Utc>::UNIX_EPOCH,
            source: AgentSource::None,
            reason: "not observed".into(),
            exit_code: None,
            resume_id: None,
        }
    }
}

/// The screen rule that decided a pane's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleMatch {
    /// The rule's name, `agent/name`, e.g. `claude/permission-menu`.
    pub rule: String,
    /// The version of the rules data it came from.
    pub version: String,
    /// The screen line it matched.
    pub line: String,
}

/// One pane's decision, as `explain` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaneAgent {
    /// tmux's pane id, `%N`.
    pub pane: String,
    /// Its window's index.
    pub window_index: u32,
    /// Its foreground command.
    pub command: String,
    /// The pane's decision.
    pub agent: AgentInfo,
    /// The screen rule that matched, when a rule decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleMatch>,
    /// When the pane's screen last changed, as shed saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_output: Option<DateTime<Utc>>,
    /// When shed last evaluated the pane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<DateTime<Utc>>,
}

/// Body of `GET /api/sheds/{name}/sessions/{session}/agent`: why the
/// session's agent is in its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentExplanation {
    /// The shed.
    pub shed: String,
    /// The session.
    pub session: String,
    /// The session's summary, as the session lists show it.
    pub agent: AgentInfo,
    /// The pane whose decision the summary took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Every pane's decision.
    pub panes: Vec<PaneAgent>,
    /// The version of the screen rules in use.
    pub rules_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words `as_str` gives are serde's, and unknown words from a newer
    /// server read as the fallback.
    #[test]
    fn wire_words_round_trip() {
        fn check<T>(all: &[T], as_str: fn(T) -> &'static str, fallback: T)
        where
            T: Copy + PartialEq + std::fmt::Debug + Serialize + serde::de::DeserializeOwned,
        {
            for &value in all {
                let wire = serde_json::to_value(value).unwrap();
                assert_eq!(wire, as_str(value));
                assert_eq!(serde_json::from_value::<T>(wire).unwrap(), value);
            }
            let newer: T = serde_json::from_value(serde_json::json!("from-the-future")).unwrap();
            assert_eq!(newer, fallback);
        }
        check(&AgentKind::ALL, AgentKind::as_str, AgentKind::Other);
        check(&AgentState::ALL, AgentState::as_str, AgentState::Unknown);
        check(&AgentSource::ALL, AgentSource::as_str, AgentSource::None);
        assert_eq!(AgentKind::parse("codex"), Some(AgentKind::Codex));
        assert_eq!(AgentState::parse("Waiting"), None);
        assert_eq!(AgentSource::default(), AgentSource::None);
        assert_eq!(AgentKind::ALL.len(), 7);
    }
}
