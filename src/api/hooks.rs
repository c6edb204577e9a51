//! Wire types of `POST /api/sheds/{name}/hooks`: installing the hook
//! configurations that make agents report their state to shed.

use serde::{Deserialize, Serialize};

wire_enum! {
    /// An agent shed can install state-reporting hooks for; `ALL` is the
    /// order they are installed in, the words are the wire's and the
    /// command line's.
    pub enum HookAgent {
        /// Claude Code: managed settings with hooks.
        Claude = "claude",
        /// OpenAI Codex CLI: system `hooks.json` and the feature flag.
        Codex = "codex",
        /// Gemini CLI: system defaults with hooks.
        Gemini = "gemini",
    }
}

impl From<HookAgent> for crate::api::agent::AgentKind {
    /// The kind the agent's hooks report in `@shed_agent`.
    fn from(agent: HookAgent) -> Self {
        match agent {
            HookAgent::Claude => crate::api::agent::AgentKind::Claude,
            HookAgent::Codex => crate::api::agent::AgentKind::Codex,
            HookAgent::Gemini => crate::api::agent::AgentKind::Gemini,
        }
    }
}

/// A name that is not one of [`HookAgent::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no hooks for agent {0:?}; shed has hooks for claude, codex and gemini")]
pub struct UnknownHookAgent(pub String);

impl std::str::FromStr for HookAgent {
    type Err = UnknownHookAgent;

    fn from_str(s: &str) -> Result<HookAgent, UnknownHookAgent> {
        HookAgent::parse(s).ok_or_else(|| UnknownHookAgent(s.to_string()))
    }
}

/// Body of `POST /api/sheds/{name}/hooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallHooksRequest {
    /// The agents to install hooks for; every supported agent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<HookAgent>>,
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HookFileStatus {
    /// Written (new, or shed's own from an earlier install).
    Installed,
    /// Left untouched; `reason` says why.
    Skipped,
}

/// One file an install wrote or left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HookFile {
    /// Absolute path inside the shed.
    pub path: String,
    /// Whether it was written.
    pub status: HookFileStatus,
    /// Why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The files of one agent's hooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentHooks {
    /// The agent.
    pub agent: HookAgent,
    /// Its configuration files, in the order written.
    pub files: Vec<HookFile>,
}

/// Answer of `POST /api/sheds/{name}/hooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HooksReport {
    /// The shed.
    pub shed: String,
    /// The `shed-hook` helper every configuration calls.
    pub helper: HookFile,
    /// Per agent asked for, what was installed and skipped.
    pub agents: Vec<AgentHooks>,
}

impl HooksReport {
    /// Every skipped file, as `agent: path: reason` lines (the helper as `shed-hook`).
    pub fn skipped(&self) -> Vec<String> {
        let helper = std::iter::once(("shed-hook".to_string(), &self.helper));
        let files = self
            .agents
            .iter()
            .flat_map(|a| a.files.iter().map(move |f| (a.agent.to_string(), f)));
        helper
            .chain(files)
            .filter(|(_, f)| f.status == HookFileStatus::Skipped)
            .map(|(who, f)| {
                format!(
                    "{who}: {} left untouched: {}",
                    f.path,
                    f.reason.as_deref().unwrap_or("skipped")
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::agent::AgentKind;

    #[test]
    fn names_round_trip_and_match_the_agent_kinds() {
        for agent in HookAgent::ALL {
            assert_eq!(agent.as_str().parse::<HookAgent>(), Ok(agent));
            let wire = serde_json::to_value(agent).unwrap();
            assert_eq!(wire, agent.as_str());
            // What `@shed_agent` carries must read back as the same kind.
            let kind: AgentKind = serde_json::from_value(wire).unwrap();
            assert_eq!(kind, AgentKind::from(agent));
        }
        let err = "opencode".parse::<HookAgent>().unwrap_err().to_string();
        assert_eq!(
            err,
            "no hooks for agent \"opencode\"; shed has hooks for claude, codex and gemini"
        );
    }
}
