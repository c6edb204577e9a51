//! What a notification says: the JSON a webhook receives and a command reads
//! on stdin, and the short title ntfy shows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::agent::{AgentInfo, AgentKind, AgentState};

/// The agent part of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadAgent {
    /// The program, e.g. `claude`.
    pub kind: AgentKind,
    /// The state that held, e.g. `waiting`.
    pub state: AgentState,
    /// When the agent entered it.
    pub since: DateTime<Utc>,
    /// Why shed thinks so.
    pub reason: String,
    /// The exit status, for `exited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// One notification, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Unique per notification from this server: `SERVER-BOOT-EVENT`, where
    /// BOOT is when the server process started (so ids differ across
    /// restarts). Retries of one notification keep it: receivers dedupe on it.
    pub id: String,
    /// The id of the event (`GET /api/events`) that brought the state.
    pub event_id: u64,
    /// The server's name.
    pub server: String,
    /// The shed.
    pub shed: String,
    /// The session.
    pub session: String,
    /// The session's agent.
    pub agent: PayloadAgent,
    /// A one-line summary, e.g. `claude is waiting in dev/main`.
    pub title: String,
    /// When the notification was made.
    pub at: DateTime<Utc>,
}

impl Payload {
    /// The notification for `agent` in `shed`/`session`.
    pub fn new(
        server: &str,
        boot: u64,
        event_id: u64,
        shed: &str,
        session: &str,
        agent: &AgentInfo,
    ) -> Payload {
        Payload {
            id: format!("{server}-{boot}-{event_id}"),
            event_id,
            server: server.into(),
            shed: shed.into(),
            session: session.into(),
            agent: PayloadAgent {
                kind: agent.kind,
                state: agent.state,
                since: agent.since,
                reason: agent.reason.clone(),
                exit_code: agent.exit_code,
            },
            title: title(agent, shed, session),
            at: Utc::now(),
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `claude is waiting in dev/main`.
fn title(agent: &AgentInfo, shed: &str, session: &str) -> String {
    let what = match (agent.state, agent.exit_code) {
        (AgentState::Waiting, _) => "is waiting".to_string(),
        (AgentState::Exited, Some(code)) => format!("exited with status {code}"),
        (AgentState::Exited, None) => "exited".into(),
        (AgentState::Idle, _) => "is idle".into(),
        (AgentState::Working, _) => "is working".into(),
        (AgentState::Unknown, _) => "is in an unknown state".into(),
    };
    format!("{} {what} in {shed}/{session}", agent.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_and_json_name_the_agent_and_session() {
        let agent = AgentInfo {
            kind: AgentKind::Claude,
            state: AgentState::Exited,
            exit_code: Some(2),
            ..AgentInfo::default()
        };
        let p = Payload::new("srv", 7, 42, "dev", "main", &agent);
        assert_eq!(p.title, "claude exited with status 2 in dev/main");
        assert_eq!(p.id, "srv-7-42");
        let json: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(json["agent"]["state"], "exited");
        assert_eq!(json["agent"]["exit_code"], 2);
        assert_eq!(json["session"], "main");
    }
}
