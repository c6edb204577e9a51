//! Screen rules, shipped as versioned data: which command is which agent,
//! and per agent the screen patterns that mean working or waiting.
//!
//! INTERFACE STUB: the signatures below are what the detector uses; the
//! bodies are placeholders until the rules data lands.

use crate::api::agent::{AgentKind, AgentState};

/// A screen rule that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenMatch {
    /// The state the rule means.
    pub state: AgentState,
    /// `agent/name`, e.g. `claude/permission-menu`.
    pub rule: String,
    /// The rules data's version.
    pub version: String,
    /// The screen line that matched.
    pub line: String,
}

/// Why rules could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("screen rules: {0}")]
pub struct RulesError(pub String);

/// The rules in force: the embedded file, extended or overridden by the
/// server config.
#[derive(Debug, Clone)]
pub struct Rules {
    version: String,
}

impl Rules {
    /// The rules embedded in the binary.
    pub fn builtin() -> Rules {
        Rules {
            version: "0".into(),
        }
    }

    /// The version string the `reason` and `explain` name.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The agent a command line runs, e.g. `claude --resume x` or
    /// `node /usr/bin/codex`; `None` when no rule names it.
    pub fn kind_of(&self, command_line: &str) -> Option<AgentKind> {
        let first = command_line.split_whitespace().next()?;
        let base = first.rsplit('/').next().unwrap_or(first);
        AgentKind::parse(base).filter(|k| k.is_agent())
    }

    /// The first rule of `kind` matching `screen` (the pane's visible
    /// screen, top to bottom), waiting rules before working ones.
    pub fn classify(&self, _kind: AgentKind, _screen: &str) -> Option<ScreenMatch> {
        None
    }

    /// The command that resumes `kind`'s conversation `id`.
    pub fn resume_command(&self, _kind: AgentKind, _id: &str) -> Option<String> {
        None
    }
}
