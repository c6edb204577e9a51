//! `shed inbox`: every session, on every configured server, whose agent
//! needs its user; then the ones that exited, then the idle ones.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use super::sessions::{sessions_everywhere, warn_failures};
use super::wait::bounded;
use super::{Ctx, Outcome};
use crate::api::agent::{AgentKind, AgentState};
use crate::api::SessionInfo;
use crate::client::api_client::ApiClient;
use crate::client::output::{clean, relative_time, safe_json};

/// How long one session's screen may take; a row without it still prints.
const PREVIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// Screens fetched at once.
const PREVIEW_CONCURRENCY: usize = 8;
/// Lines fetched per screen: a screenful, since the last meaningful lines
/// may sit above blank rows.
const PREVIEW_FETCH_LINES: usize = 60;
/// Non-blank lines shown per row.
const PREVIEW_LINES: usize = 3;
/// Longest screen line shown.
const LINE_CHARS: usize = 160;
/// Longest reason shown.
const REASON_CHARS: usize = 120;

/// One row of the inbox, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct InboxRow {
    server: String,
    shed: String,
    session: String,
    state: AgentState,
    kind: AgentKind,
    since: DateTime<Utc>,
    /// Seconds in `state`.
    seconds: i64,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    /// The last non-blank lines of the screen, cleaned (waiting and exited rows).
    lines: Vec<String>,
    /// The command that attaches to the session.
    attach: String,
}

/// Where a state sorts in the inbox; `None` for the states it leaves out.
fn rank(state: AgentState) -> Option<u8> {
    match state {
        AgentState::Waiting => Some(0),
        AgentState::Exited => Some(1),
        AgentState::Idle => Some(2),
        AgentState::Working | AgentState::Unknown => None,
    }
}

/// The inbox's sessions, in its order: waiting (oldest wait first), then
/// exited, then idle, each oldest first; ties by server, shed, session.
pub(super) fn inbox_order(mut sessions: Vec<SessionInfo>) -> Vec<SessionInfo> {
    sessions.retain(|s| rank(s.agent.state).is_some());
    sessions.sort_by(|a, b| {
        (
            rank(a.agent.state),
            a.agent.since,
            &a.server,
            &a.shed,
            &a.name,
        )
            .cmp(&(
                rank(b.agent.state),
                b.agent.since,
                &b.server,
                &b.shed,
                &b.name,
            ))
    });
    sessions
}

/// The last `PREVIEW_LINES` non-blank lines of `screen`, trimmed, cleaned
/// and bounded.
pub(super) fn last_lines(screen: &str) -> Vec<String> {
    let lines: Vec<String> = screen
        .lines()
        .map(|l| clean(l).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(PREVIEW_LINES)..]
        .iter()
        .map(|l| bounded(l, LINE_CHARS))
        .collect()
}

/// The `shed attach` command for a session; names the server when more
/// than one is configured, since the shed name alone may be ambiguous.
fn attach_command(server: &str, shed: &str, session: &str, several: bool) -> String {
    // Shed and session names were validated; the server name is the user's
    // own, quoted in case it holds something a shell would read.
    let flag = if several {
        format!(" -s {}", shell_words::quote(&clean(server)))
    } else {
        String::new()
    };
    format!("shed{flag} attach {shed} -S {session}")
}

impl Ctx {
    /// `shed inbox [--json] [-q]`.
    pub(super) async fn inbox(&self, json: bool, quiet: bool) -> anyhow::Result<Outcome> {
        let clients = match &self.server_flag {
            Some(name) => vec![self.client(name)?],
            None => self.all_clients()?,
        };
        let several = self.config.servers.len() > 1;
        let (sessions, failures) = sessions_everywhere(&clients).await?;

        let ordered = inbox_order(sessions);
        let waiting = ordered.iter().any(|s| s.agent.state == AgentState::Waiting);
        let outcome = match (waiting, failures.is_empty()) {
            (true, _) => Outcome::Success,
            (false, true) => Outcome::NothingWaits,
            (false, false) => Outcome::Partial,
        };
        if quiet {
            return Ok(outcome);
        }
        let now = Utc::now();
        let by_server: HashMap<&str, &ApiClient> =
            clients.iter().map(|c| (c.server(), c)).collect();
        let rows: Vec<InboxRow> = stream::iter(ordered.into_iter().map(|s| {
            let client = by_server.get(s.server.as_str()).copied();
            async move {
                let lines = match (client, s.agent.state) {
                    (Some(client), AgentState::Waiting | AgentState::Exited) => {
                        preview(client, &s.shed, &s.name).await
                    }
                    _ => Vec::new(),
                };
                InboxRow {
                    attach: attach_command(&s.server, &s.shed, &s.name, several),
                    server: clean(&s.server),
                    shed: s.shed,
                    session: s.name,
                    state: s.agent.state,
                    kind: s.agent.kind,
                    since: s.agent.since,
                    seconds: (now - s.agent.since).num_seconds().max(0),
                    reason: bounded(&clean(&s.agent.reason), REASON_CHARS),
                    exit_code: s.agent.exit_code,
                    lines,
                }
            }
        }))
        .buffered(PREVIEW_CONCURRENCY)
        .collect()
        .await;

        if json {
            let out = serde_json::json!({"sessions": rows, "errors": failures});
            println!("{}", safe_json(&out)?);
            return Ok(outcome);
        }
        warn_failures(&failures);
        if rows.is_empty() {
            println!("Nothing waits for you: no session is waiting, exited or idle.");
        } else if !waiting {
            println!("Nothing waits for you.");
        }
        for row in &rows {
            print!("{}", render_row(row, now));
        }
        Ok(outcome)
    }
}

/// The last lines of a session's screen; none when they cannot be read.
async fn preview(client: &ApiClient, shed: &str, session: &str) -> Vec<String> {
    match tokio::time::timeout(
        PREVIEW_TIMEOUT,
        client.session_output(shed, session, PREVIEW_FETCH_LINES),
    )
    .await
    {
        Ok(Ok(out)) => last_lines(&out.output),
        _ => Vec::new(),
    }
}

/// One row for a person: a heading line, the screen lines, the attach command.
fn render_row(row: &InboxRow, now: DateTime<Utc>) -> String {
    let how_long = relative_time(row.since, now);
    let state = match (row.state, row.exit_code) {
        (AgentState::Exited, Some(code)) => format!("exited {code}"),
        (state, _) => state.to_string(),
    };
    let mut out = format!(
        "{:<8} {}  {}  {}  {}  {how_long}  ({})\n",
        state.to_uppercase(),
        row.server,
        row.shed,
        row.session,
        row.kind,
        row.reason
    );
    for line in &row.lines {
        out.push_str(&format!("    | {line}\n"));
    }
    out.push_str(&format!("    {}\n", row.attach));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::agent::AgentInfo;

    fn session(server: &str, name: &str, state: AgentState, since: &str) -> SessionInfo {
        let at: DateTime<Utc> = since.parse().unwrap();
        serde_json::from_value::<SessionInfo>(serde_json::json!({
            "name": name, "shed": "demo", "server": server,
            "created_at": at, "last_activity": at, "idle_seconds": 0,
            "attached": 0, "windows": 1, "current_command": "claude",
            "cwd": "/workspace", "status": "idle",
        }))
        .map(|s| SessionInfo {
            agent: AgentInfo {
                state,
                since: at,
                ..AgentInfo::default()
            },
            ..s
        })
        .unwrap()
    }

    #[test]
    fn waiting_oldest_first_then_exited_then_idle() {
        let sessions = vec![
            session("a", "idle1", AgentState::Idle, "2026-01-01T00:00:00Z"),
            session("a", "w-new", AgentState::Waiting, "2026-01-01T00:05:00Z"),
            session("b", "work", AgentState::Working, "2026-01-01T00:00:00Z"),
            session("b", "ex", AgentState::Exited, "2026-01-01T00:09:00Z"),
            session("b", "w-old", AgentState::Waiting, "2026-01-01T00:01:00Z"),
            session("b", "unk", AgentState::Unknown, "2026-01-01T00:01:00Z"),
        ];
        let names: Vec<String> = inbox_order(sessions).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["w-old", "w-new", "ex", "idle1"]);
    }

    #[test]
    fn last_lines_are_the_non_blank_ones_cleaned_and_bounded() {
        let long = "x".repeat(LINE_CHARS * 3);
        let screen = format!("old\n  one \n\x1b[31mtwo\x1b[0m\n\n{long}\n   \n\n");
        let lines = last_lines(&screen);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "one");
        assert_eq!(lines[1], "two");
        assert_eq!(lines[2].chars().count(), LINE_CHARS);
        assert!(last_lines("\n \n").is_empty());
    }

    #[test]
    fn attach_names_the_server_only_when_several() {
        assert_eq!(
            attach_command("box", "demo", "agent", false),
            "shed attach demo -S agent"
        );
        assert_eq!(
            attach_command("my box", "demo", "agent", true),
            "shed -s 'my box' attach demo -S agent"
        );
    }
}
