//! `shed wait SHED SESSION --for STATE`: blocks until a session's agent
//! reaches a state, following the server's event stream.
//!
//! The session is read first (a state already held ends the wait at once),
//! then the stream is opened and the session read once more, so a change
//! between the two is not missed. A dropped stream is reopened with
//! `Last-Event-ID`, so the server replays what was missed; a `resync` (the
//! server no longer has those events) re-reads the session.

use std::time::Duration;

use anyhow::anyhow;

use super::{check_session_name, check_shed_name, Ctx, Outcome};
use crate::api::agent::{AgentInfo, AgentState};
use crate::api::events::{Event, EventKind};
use crate::api::ErrorCode;
use crate::client::api_client::{ApiClient, Backoff, ClientError, EVENTS_IDLE_LIMIT};
use crate::client::cli::WaitFor;
use crate::client::output::{clean, warn};

/// First and longest pause between reconnects.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Longest agent reason printed; the server's text is bounded before it is shown.
const REASON_CHARS: usize = 120;

impl Ctx {
    /// `shed wait SHED SESSION --for STATE [--timeout DURATION]`.
    pub(super) async fn wait(
        &self,
        shed: &str,
        session: &str,
        state: WaitFor,
        timeout: Option<Duration>,
    ) -> anyhow::Result<Outcome> {
        check_shed_name(shed)?;
        check_session_name(session)?;
        let (client, _) = self.started_shed(shed).await?;
        wait_for(&client, shed, session, state, timeout).await
    }
}

/// Waits on `client` for session `session` of shed `shed` to reach `state`,
/// for at most `timeout`; prints the state reached, or says why not.
pub(super) async fn wait_for(
    client: &ApiClient,
    shed: &str,
    session: &str,
    state: WaitFor,
    timeout: Option<Duration>,
) -> anyhow::Result<Outcome> {
    let waited = Waiter {
        client,
        shed,
        session,
        want: state,
    };
    let result = match timeout {
        Some(limit) => match tokio::time::timeout(limit, waited.run()).await {
            Ok(result) => result,
            Err(_) => {
                eprintln!(
                    "timed out after {} waiting for session {session} in shed {shed} to be {}",
                    humanize(limit),
                    describe_want(state)
                );
                return Ok(Outcome::TimedOut);
            }
        },
        None => waited.run().await,
    };
    match result? {
        Ended::Reached(agent) => {
            println!(
                "{shed}/{session}: {} ({})",
                agent.state,
                bounded(&clean(&agent.reason), REASON_CHARS)
            );
            Ok(Outcome::Success)
        }
        Ended::Gone(why) => {
            eprintln!("session {session} in shed {shed} is gone: {why}");
            Ok(Outcome::Gone)
        }
    }
}

/// How a wait ended, short of a timeout or an error.
#[derive(Debug)]
enum Ended {
    /// The state was reached: the agent as it then was.
    Reached(AgentInfo),
    /// The session, or its shed, went away.
    Gone(&'static str),
}

struct Waiter<'a> {
    client: &'a ApiClient,
    shed: &'a str,
    session: &'a str,
    want: WaitFor,
}

impl Waiter<'_> {
    async fn run(&self) -> anyhow::Result<Ended> {
        let initial = match self.read().await? {
            Ok(agent) => agent,
            Err(gone) => return Ok(Ended::Gone(gone)),
        };
        let goal = Goal::new(self.want, initial.state);
        if goal.reached(initial.state) {
            return Ok(Ended::Reached(initial));
        }
        let mut last_id: Option<u64> = None;
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
        let mut reread = true;
        loop {
            match self.client.events(last_id).await {
                Ok(mut events) => {
                    backoff.reset();
                    if reread {
                        // Anything between the last read and the stream's
                        // start is only in the session itself.
                        match self.read().await? {
                            Ok(agent) if goal.reached(agent.state) => {
                                return Ok(Ended::Reached(agent))
                            }
                            Ok(_) => {}
                            Err(gone) => return Ok(Ended::Gone(gone)),
                        }
                        reread = false;
                    }
                    loop {
                        let message = match events.next(EVENTS_IDLE_LIMIT).await {
                            Ok(Some(message)) => message,
                            Ok(None) => {
                                warn("the server ended the event stream; reconnecting");
                                break;
                            }
                            Err(e) => {
                                warn(&format!("{e}; reconnecting"));
                                break;
                            }
                        };
                        let Ok(event) = serde_json::from_str::<Event>(&message.data) else {
                            continue;
                        };
                        last_id = Some(event.id);
                        match self.judge(&event) {
                            Verdict::Ignore => {}
                            Verdict::Reread => match self.read().await? {
                                Ok(agent) if goal.reached(agent.state) => {
                                    return Ok(Ended::Reached(agent))
                                }
                                Ok(_) => {}
                                Err(gone) => return Ok(Ended::Gone(gone)),
                            },
                            Verdict::Agent(agent) if goal.reached(agent.state) => {
                                return Ok(Ended::Reached(agent))
                            }
                            Verdict::Agent(_) => {}
                            Verdict::Gone(why) => return Ok(Ended::Gone(why)),
                        }
                    }
                }
                // A server that never streamed is an error; one that did
                // and dropped is retried, as its stream is.
                Err(e) if last_id.is_none() && reread => return Err(e.into()),
                Err(e) => warn(&format!("{e}; reconnecting")),
            }
            backoff.wait().await;
        }
    }

    /// The session's agent now, or why the session is gone.
    async fn read(&self) -> anyhow::Result<Result<AgentInfo, &'static str>> {
        match self.client.get_session(self.shed, self.session).await {
            Ok(info) => Ok(Ok(info.agent)),
            Err(e) => match gone(&e) {
                Some(why) => Ok(Err(why)),
                None => Err(anyhow!(e)),
            },
        }
    }

    /// What `event` means for this wait.
    fn judge(&self, event: &Event) -> Verdict {
        if event.kind == EventKind::Resync {
            return Verdict::Reread;
        }
        if event.shed != self.shed {
            return Verdict::Ignore;
        }
        if event.kind == EventKind::ShedStopped {
            return Verdict::Gone("its shed stopped");
        }
        if event.session.as_deref() != Some(self.session) {
            return Verdict::Ignore;
        }
        match event.kind {
            EventKind::SessionClosed => Verdict::Gone("it was closed"),
            EventKind::SessionChanged | EventKind::SessionCreated => {
                match event.data.get("agent").cloned().map(serde_json::from_value) {
                    Some(Ok(agent)) => Verdict::Agent(agent),
                    // A change without the agent in it changed something else;
                    // an agent that does not parse is re-read rather than trusted.
                    None => Verdict::Ignore,
                    Some(Err(_)) => Verdict::Reread,
                }
            }
            _ => Verdict::Ignore,
        }
    }
}

/// What one event means for a wait.
#[derive(Debug)]
enum Verdict {
    Ignore,
    Reread,
    Agent(AgentInfo),
    Gone(&'static str),
}

/// The state a wait ends at.
#[derive(Debug, Clone, Copy)]
enum Goal {
    /// Exactly this state.
    Is(AgentState),
    /// Any state but this one (the one the session had at the start).
    Not(AgentState),
}

impl Goal {
    fn new(want: WaitFor, initial: AgentState) -> Goal {
        match want {
            WaitFor::Waiting => Goal::Is(AgentState::Waiting),
            WaitFor::Idle => Goal::Is(AgentState::Idle),
            WaitFor::Exited => Goal::Is(AgentState::Exited),
            WaitFor::Working => Goal::Is(AgentState::Working),
            WaitFor::Any => Goal::Not(initial),
        }
    }

    fn reached(self, state: AgentState) -> bool {
        match self {
            Goal::Is(want) => state == want,
            Goal::Not(initial) => state != initial,
        }
    }
}

/// Why `error` means the session is gone, when it does.
fn gone(error: &ClientError) -> Option<&'static str> {
    match error.code()? {
        ErrorCode::SessionNotFound => Some("no such session"),
        ErrorCode::ShedNotRunning => Some("its shed is not running"),
        ErrorCode::ShedNotFound => Some("its shed was deleted"),
        _ => None,
    }
}

fn describe_want(want: WaitFor) -> &'static str {
    match want {
        WaitFor::Waiting => "waiting",
        WaitFor::Idle => "idle",
        WaitFor::Exited => "exited",
        WaitFor::Working => "working",
        WaitFor::Any => "in another state",
    }
}

/// `90s`, `5m`, `1h30m`: a duration as the user would have typed it.
pub(crate) fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// `text` cut to at most `max` characters, with `…` when cut.
pub(crate) fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_means_a_change_from_the_start() {
        let goal = Goal::new(WaitFor::Any, AgentState::Working);
        assert!(!goal.reached(AgentState::Working));
        assert!(goal.reached(AgentState::Waiting));
        let goal = Goal::new(WaitFor::Idle, AgentState::Working);
        assert!(goal.reached(AgentState::Idle));
        assert!(!goal.reached(AgentState::Waiting));
    }

    #[test]
    fn durations_print_as_typed() {
        assert_eq!(humanize(Duration::from_secs(5400)), "1h30m");
        assert_eq!(humanize(Duration::from_secs(30)), "30s");
        assert_eq!(humanize(Duration::from_millis(300)), "300ms");
        assert_eq!(bounded("abcdef", 4), "abc…");
        assert_eq!(bounded("abc", 4), "abc");
    }
}
