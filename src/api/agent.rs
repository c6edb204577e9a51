//! The agent wire types: what program runs in a session, whether it needs
//! its user, and why shed thinks so.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which agent (or plain shell) runs in a pane.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// Anthropic's Claude Code.
    Claude,
    /// OpenAI's Codex CLI.
    Codex,
    /// OpenCode.
    Opencode,
    /// Aider.
    Aider,
    /// Google's Gemini CLI.
    Gemini,
    /// An interactive shell with nothing else in the foreground.
    Shell,
    /// Any other program (also what an unknown string from a newer server reads as).
    #[default]
    #[serde(other)]
    Other,
}

impl AgentKind {
    /// Every kind, in a fixed order.
    pub const ALL: [AgentKind; 7] = [
        AgentKind::Claude,
        AgentKind::Codex,
        AgentKind::Opencode,
        AgentKind::Aider,
        AgentKind::Gemini,
        AgentKind::Shell,
        AgentKind::Other,
    ];

    /// The wire name, e.g. `claude`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Claude => "claude",
            AgentKind::Codex => "codex",
            AgentKind::Opencode => "opencode",
            AgentKind::Aider => "aider",
            AgentKind::Gemini => "gemini",
            AgentKind::Shell => "shell",
            AgentKind::Other => "other",
        }
    }

    /// The kind with this wire name.
    pub fn parse(s: &str) -> Option<AgentKind> {
        AgentKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether this is a coding agent rather than a shell or another program.
    pub fn is_agent(self) -> bool {
        !matches!(self, AgentKind::Shell | AgentKind::Other)
    }
}

impl std::fmt::Display for AgentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an agent is doing, from its user's point of view.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Busy: nothing to do for its user.
    Working,
    /// Needs its user: a permission prompt, a question, a bell.
    Waiting,
    /// Done with its turn, or a quiet shell.
    Idle,
    /// Its program ended (see `exit_code`).
    Exited,
    /// Nothing decided yet.
    #[default]
    #[serde(other)]
    Unknown,
}

impl AgentState {
    /// Every state, in a fixed order.
    pub const ALL: [AgentState; 5] = [
        AgentState::Working,
        AgentState::Waiting,
        AgentState::Idle,
        AgentState::Exited,
        AgentState::Unknown,
    ];

    /// The wire name, e.g. `waiting`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Working => "working",
            AgentState::Waiting => "waiting",
            AgentState::Idle => "idle",
            AgentState::Exited => "exited",
            AgentState::Unknown => "unknown",
        }
    }

    /// The state with this wire name.
    pub fn parse(s: &str) -> Option<AgentState> {
        AgentState::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which source decided a state, strongest first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AgentSource {
    /// The agent said so itself: the pane option `@shed_state`, set by a hook.
    Reported,
    /// The pane's program ended.
    Exit,
    /// A screen rule matched the visible screen.
    Screen,
    /// The pane rang its bell.
    Bell,
    /// Output activity: working while the screen changes, idle when quiet.
    Activity,
    /// Nothing has decided yet (no channel, or no observation).
    #[default]
    #[serde(other)]
    None,
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
