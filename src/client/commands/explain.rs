//! `shed sessions explain SHED SESSION`: why a session's agent is in its
//! state, from `GET /api/sheds/{name}/sessions/{session}/agent`.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::wait::bounded;
use crate::api::agent::{AgentExplanation, AgentInfo, AgentSource};
use crate::client::api_client::ApiClient;
use crate::client::output::{clean, relative_time, safe_json};

/// Longest server-supplied text (a reason, a screen line, a command) shown.
const TEXT_CHARS: usize = 200;
/// Most panes listed; the rest are counted.
const MAX_PANES: usize = 32;

/// Prints `explanation`, as JSON or for a person.
pub(super) fn print(
    client: &ApiClient,
    explanation: &AgentExplanation,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", safe_json(explanation)?);
    } else {
        print!("{}", render(client.server(), explanation, Utc::now()));
    }
    Ok(())
}

/// Server text made safe and short.
fn text(s: &str) -> String {
    bounded(&clean(s), TEXT_CHARS)
}

fn source_name(source: AgentSource) -> &'static str {
    match source {
        AgentSource::Reported => "reported (the agent set @shed_state)",
        AgentSource::Exit => "exit (the pane's program ended)",
        AgentSource::Screen => "screen (a screen rule matched)",
        AgentSource::Bell => "bell (the pane rang its bell)",
        AgentSource::Activity => "activity (output, or the lack of it)",
        AgentSource::None => "none (nothing observed yet)",
    }
}

fn when(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "{} ({})",
        at.format("%Y-%m-%d %H:%M:%S UTC"),
        relative_time(at, now)
    )
}

fn state_line(agent: &AgentInfo) -> String {
    let mut line = format!("{} ({})", agent.state, agent.kind);
    if let Some(code) = agent.exit_code {
        let _ = write!(line, ", exit code {code}");
    }
    line
}

/// The explanation as text; every string from the server is cleaned and bounded.
fn render(server: &str, e: &AgentExplanation, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let agent = &e.agent;
    let _ = writeln!(
        out,
        "Session {} in shed {} on {}",
        text(&e.session),
        text(&e.shed),
        text(server)
    );
    let _ = writeln!(out, "  state:     {}", state_line(agent));
    let _ = writeln!(out, "  since:     {}", when(agent.since, now));
    let _ = writeln!(out, "  source:    {}", source_name(agent.source));
    let _ = writeln!(out, "  reason:    {}", text(&agent.reason));
    let decider = e
        .decided_by
        .as_deref()
        .and_then(|id| e.panes.iter().find(|p| p.pane == id));
    if let Some(pane) = decider {
        let _ = writeln!(
            out,
            "  pane:      {} (window {}, {})",
            text(&pane.pane),
            pane.window_index,
            text(&pane.command)
        );
        if let Some(rule) = &pane.rule {
            let _ = writeln!(
                out,
                "  rule:      {} (rules {})",
                text(&rule.rule),
                text(&rule.version)
            );
            let _ = writeln!(out, "  line:      \"{}\"", text(&rule.line));
        }
        if let Some(at) = pane.last_output {
            let _ = writeln!(out, "  output:    {}", when(at, now));
        }
        if let Some(at) = pane.evaluated_at {
            let _ = writeln!(out, "  evaluated: {}", when(at, now));
        }
    }
    if let Some(id) = &agent.resume_id {
        let _ = writeln!(out, "  resume id: {}", text(id));
    }
    if e.panes.len() > 1 || decider.is_none() {
        let _ = writeln!(out, "Panes:");
        for pane in e.panes.iter().take(MAX_PANES) {
            let _ = writeln!(
                out,
                "  {} (window {}, {}): {}, {}, since {}",
                text(&pane.pane),
                pane.window_index,
                text(&pane.command),
                state_line(&pane.agent),
                source_name(pane.agent.source),
                when(pane.agent.since, now)
            );
            if let Some(rule) = &pane.rule {
                let _ = writeln!(
                    out,
                    "    rule {} (rules {}): \"{}\"",
                    text(&rule.rule),
                    text(&rule.version),
                    text(&rule.line)
                );
            }
        }
        if e.panes.len() > MAX_PANES {
            let _ = writeln!(out, "  ... and {} more", e.panes.len() - MAX_PANES);
        }
    }
    let _ = writeln!(out, "Rules version: {}", text(&e.rules_version));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::agent::{AgentKind, AgentState, PaneAgent, RuleMatch};

    #[test]
    fn shows_source_rule_line_and_times_cleaned() {
        let now: DateTime<Utc> = "2026-01-01T00:10:00Z".parse().unwrap();
        let since: DateTime<Utc> = "2026-01-01T00:07:00Z".parse().unwrap();
        let agent = AgentInfo {
            kind: AgentKind::Claude,
            state: AgentState::Waiting,
            since,
            source: AgentSource::Screen,
            reason: "screen rule claude/permission-menu (rules 1)".into(),
            exit_code: None,
            resume_id: None,
        };
        let e = AgentExplanation {
            shed: "demo".into(),
            session: "agent".into(),
            agent: agent.clone(),
            decided_by: Some("%3".into()),
            panes: vec![PaneAgent {
                pane: "%3".into(),
                window_index: 0,
                command: "claude".into(),
                agent,
                rule: Some(RuleMatch {
                    rule: "claude/permission-menu".into(),
                    version: "1".into(),
                    line: "Do you want\u{1b}]0;x\u{7} to proceed?".into(),
                }),
                last_output: Some(since),
                evaluated_at: Some(now),
            }],
            rules_version: "1".into(),
        };
        let out = render("box", &e, now);
        assert!(out.contains("state:     waiting (claude)"), "{out}");
        assert!(out.contains("source:    screen"), "{out}");
        assert!(
            out.contains("rule:      claude/permission-menu (rules 1)"),
            "{out}"
        );
        assert!(
            out.contains("line:      \"Do you want to proceed?\""),
            "{out}"
        );
        assert!(out.contains("2026-01-01 00:07:00 UTC (3m ago)"), "{out}");
        assert!(out.contains("evaluated: 2026-01-01 00:10:00 UTC"), "{out}");
        assert!(!out.contains('\u{1b}'), "{out:?}");
    }
}
