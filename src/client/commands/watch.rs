//! `shed sessions --watch [--all]`: a live table of sessions across servers,
//! fed by each server's `GET /api/events`.
//!
//! One task per server holds its event stream and re-reads the server's
//! session list when it (re)connects and after every event, so the table is
//! always what the server last said rather than a replay of deltas; a
//! `resync` needs nothing special. The tasks talk to the printer through a
//! bounded queue, so a slow terminal slows the readers instead of growing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::anyhow;
use chrono::Utc;
use tokio::sync::mpsc;

use super::sessions::{print_sessions, with_server};
use super::{Ctx, Outcome};
use crate::api::agent::AgentState;
use crate::api::events::{Event, EventKind};
use crate::api::{validate_shed_name, SessionInfo};
use crate::client::api_client::{ApiClient, Backoff, EVENTS_IDLE_LIMIT};
use crate::client::notify::{self, Notification};
use crate::client::output::clean;

/// Updates queued between the server tasks and the printer.
const WATCH_QUEUE: usize = 64;
/// How long one session-list read may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(15);
/// First and longest wait between reconnects.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What a server task reports.
enum Update {
    /// The stream is open; the server's sessions now.
    Connected {
        server: String,
        sessions: Vec<SessionInfo>,
    },
    /// An event arrived; the server's sessions after it.
    Changed {
        server: String,
        event: Event,
        sessions: Vec<SessionInfo>,
    },
    /// The stream or a read failed; reconnecting.
    Disconnected { server: String, detail: String },
}

impl Ctx {
    /// `shed watch [--all] [--notify]` and `shed sessions --watch [--all]`.
    pub(super) async fn watch_sessions(&self, all: bool, notify: bool) -> anyhow::Result<Outcome> {
        let notifier = notify.then(notify::desktop);
        let mut changes = Changes::default();
        let clients = if all {
            self.all_clients()?
        } else {
            vec![self.selected()?]
        };
        // Registered before anything is printed, so a Ctrl-C after the first
        // line always ends the watch cleanly.
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut view = View::default();
        let (tx, mut rx) = mpsc::channel(WATCH_QUEUE);
        let mut tasks = Vec::new();
        for client in clients {
            view.servers.insert(
                client.server().to_string(),
                ServerView {
                    connected: false,
                    detail: "connecting".into(),
                    sessions: Vec::new(),
                },
            );
            tasks.push(tokio::spawn(follow(client, tx.clone())));
        }
        drop(tx);
        let terminal = std::io::stdout().is_terminal();
        if terminal {
            view.redraw(None);
        }
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                update = rx.recv() => {
                    let Some(update) = update else { break };
                    if let Some(notifier) = &notifier {
                        if let Update::Connected { server, sessions }
                        | Update::Changed { server, sessions, .. } = &update
                        {
                            for n in changes.observe(server, sessions) {
                                notifier.notify(&n);
                            }
                        }
                    }
                    let line = view.apply(update);
                    if terminal {
                        view.redraw(Some(&line));
                    } else {
                        println!("{line}");
                    }
                    let _ = std::io::stdout().flush();
                }
            }
        }
        for task in tasks {
            task.abort();
        }
        Ok(Outcome::Success)
    }
}

/// One server's event stream, for as long as the watch runs.
async fn follow(client: ApiClient, tx: mpsc::Sender<Update>) {
    let mut last_id = None;
    let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
    loop {
        let detail = match stream(&client, &tx, &mut last_id, &mut backoff).await {
            Ok(()) => "the server ended the stream".to_string(),
            Err(e) => e.to_string(),
        };
        let update = Update::Disconnected {
            server: client.server().to_string(),
            detail,
        };
        if tx.send(update).await.is_err() {
            return;
        }
        backoff.wait().await;
    }
}

async fn sessions_of(client: &ApiClient) -> anyhow::Result<Vec<SessionInfo>> {
    let all = tokio::time::timeout(LIST_TIMEOUT, client.all_sessions())
        .await
        .map_err(|_| {
            anyhow!(
                "the session list did not come within {}s",
                LIST_TIMEOUT.as_secs()
            )
        })??;
    Ok(with_server(all.sessions, client.server()))
}

/// Follows one connection until it fails; `Ok` when the server ended it
/// or the printer is gone.
async fn stream(
    client: &ApiClient,
    tx: &mpsc::Sender<Update>,
    last_id: &mut Option<u64>,
    backoff: &mut Backoff,
) -> anyhow::Result<()> {
    let server = client.server().to_string();
    let mut events = client.events(*last_id).await?;
    let sessions = sessions_of(client).await?;
    backoff.reset();
    let connected = Update::Connected {
        server: server.clone(),
        sessions,
    };
    if tx.send(connected).await.is_err() {
        return Ok(());
    }
    while let Some(message) = events.next(EVENTS_IDLE_LIMIT).await? {
        let Ok(event) = serde_json::from_str::<Event>(&message.data) else {
            continue;
        };
        if event.kind != EventKind::Resync && validate_shed_name(&event.shed).is_err() {
            continue;
        }
        *last_id = Some(event.id);
        let sessions = sessions_of(client).await?;
        let changed = Update::Changed {
            server: server.clone(),
            event,
            sessions,
        };
        if tx.send(changed).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Which sessions' agents changed to a state worth a notification.
///
/// A server's first list only records the states (a session that was
/// already waiting when the watch started is no news); after that, each
/// session whose agent is now waiting or exited, and was not in that state
/// at the last list, is reported once. Sessions gone from a list are
/// forgotten, so one that comes back waiting is news again.
#[derive(Default)]
struct Changes {
    seen: HashSet<String>,
    states: HashMap<(String, String, String), AgentState>,
}

/// Sessions remembered per watch, across servers; beyond it, new sessions
/// are not tracked (and so never notified about).
const MAX_TRACKED: usize = 10_000;

impl Changes {
    /// The notifications that `server`'s new session list calls for.
    fn observe(&mut self, server: &str, sessions: &[SessionInfo]) -> Vec<Notification> {
        let first = self.seen.insert(server.to_string());
        let mut out = Vec::new();
        let mut now: HashMap<(String, String, String), AgentState> = HashMap::new();
        for s in sessions {
            let key = (server.to_string(), s.shed.clone(), s.name.clone());
            let state = s.agent.state;
            let before = self.states.get(&key).copied();
            let news = matches!(state, AgentState::Waiting | AgentState::Exited)
                && before != Some(state)
                && !first;
            if news {
                let what = match (state, s.agent.exit_code) {
                    (AgentState::Exited, Some(code)) => format!("exited with status {code}"),
                    (AgentState::Exited, None) => "exited".to_string(),
                    _ => "is waiting for you".to_string(),
                };
                out.push(Notification::new(
                    &format!("shed: {}/{} {what}", s.shed, s.name),
                    &format!(
                        "{} on {server}: {}. shed attach {} -S {}",
                        s.agent.kind, s.agent.reason, s.shed, s.name
                    ),
                ));
            }
            now.insert(key, state);
        }
        self.states.retain(|(srv, _, _), _| srv != server);
        for (key, state) in now {
            if self.states.len() >= MAX_TRACKED {
                break;
            }
            self.states.insert(key, state);
        }
        out
    }
}

/// What the watch shows.
#[derive(Default)]
struct View {
    servers: BTreeMap<String, ServerView>,
}

struct ServerView {
    connected: bool,
    detail: String,
    sessions: Vec<SessionInfo>,
}

impl View {
    /// Records `server` as connected, with these sessions.
    fn connected(&mut self, server: String, sessions: Vec<SessionInfo>) {
        let view = ServerView {
            connected: true,
            detail: String::new(),
            sessions,
        };
        self.servers.insert(server, view);
    }

    /// Applies an update; returns its one-line description.
    fn apply(&mut self, update: Update) -> String {
        let now = Utc::now().format("%H:%M:%S");
        match update {
            Update::Connected { server, sessions } => {
                let line = format!(
                    "{now} {}: connected, {} sessions",
                    clean(&server),
                    sessions.len()
                );
                self.connected(server, sessions);
                line
            }
            Update::Changed {
                server,
                event,
                sessions,
            } => {
                let what = match (&event.kind, &event.session) {
                    (EventKind::Resync, _) => "resync".to_string(),
                    (kind, Some(session)) => match event
                        .data
                        .get("agent")
                        .and_then(|a| a.get("state"))
                        .and_then(|s| s.as_str())
                    {
                        Some(state) => format!("{kind} {}/{} agent {state}", event.shed, session),
                        None => format!("{kind} {}/{}", event.shed, session),
                    },
                    (kind, None) => format!("{kind} {}", event.shed),
                };
                let line = format!(
                    "{now} {}: {} ({} sessions)",
                    clean(&server),
                    clean(&what),
                    sessions.len()
                );
                self.connected(server, sessions);
                line
            }
            Update::Disconnected { server, detail } => {
                let line = format!(
                    "{now} {}: disconnected ({}); reconnecting",
                    clean(&server),
                    clean(&detail)
                );
                if let Some(view) = self.servers.get_mut(&server) {
                    view.connected = false;
                    view.detail = detail;
                }
                line
            }
        }
    }

    /// Clears the terminal and prints the whole table.
    fn redraw(&self, last: Option<&str>) {
        print!("\x1b[H\x1b[2J");
        let sessions: Vec<SessionInfo> = self
            .servers
            .values()
            .flat_map(|v| v.sessions.iter().cloned())
            .collect();
        if sessions.is_empty() {
            println!("No sessions.");
        } else {
            print_sessions(&sessions, true);
        }
        for (server, view) in self.servers.iter().filter(|(_, v)| !v.connected) {
            println!("{}: disconnected ({})", clean(server), clean(&view.detail));
        }
        if let Some(last) = last {
            println!("\n{last}");
        }
        println!("Watching; Ctrl-C to stop.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::agent::AgentInfo;

    fn session(name: &str, state: AgentState) -> SessionInfo {
        let mut s: SessionInfo = serde_json::from_value(serde_json::json!({
            "name": name, "shed": "demo", "server": "box",
            "created_at": "2026-01-01T00:00:00Z", "last_activity": "2026-01-01T00:00:00Z",
            "idle_seconds": 0, "attached": 0, "windows": 1, "current_command": "claude",
            "cwd": "/workspace", "status": "idle",
        }))
        .unwrap();
        s.agent = AgentInfo {
            state,
            reason: "r\x1b[2J".into(),
            ..AgentInfo::default()
        };
        s
    }

    #[test]
    fn notifies_once_per_change_to_waiting_or_exited() {
        use AgentState::*;
        let mut changes = Changes::default();
        // Already waiting at the start: no news.
        assert!(changes.observe("box", &[session("a", Waiting)]).is_empty());
        assert!(changes.observe("box", &[session("a", Waiting)]).is_empty());
        assert!(changes.observe("box", &[session("a", Working)]).is_empty());
        let n = changes.observe("box", &[session("a", Waiting), session("b", Working)]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].title, "shed: demo/a is waiting for you");
        assert!(!n[0].body.contains('\x1b'), "{:?}", n[0].body);
        assert!(changes
            .observe("box", &[session("a", Waiting), session("b", Working)])
            .is_empty());
        let n = changes.observe("box", &[session("a", Waiting), session("b", Exited)]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].title, "shed: demo/b exited");
        // Idle is not worth a notification.
        assert!(changes
            .observe("box", &[session("a", Idle), session("b", Exited)])
            .is_empty());
        // Another server's first list is a baseline too.
        assert!(changes.observe("two", &[session("a", Waiting)]).is_empty());
    }

    #[test]
    fn lines_are_sanitized_and_disconnects_kept() {
        let mut view = View::default();
        let line = view.apply(Update::Connected {
            server: "s\x1b[2Jx".into(),
            sessions: Vec::new(),
        });
        assert!(!line.contains('\x1b'), "{line:?}");
        assert!(line.contains("connected, 0 sessions"), "{line}");
        let line = view.apply(Update::Disconnected {
            server: "s\x1b[2Jx".into(),
            detail: "gone\x07\nnext".into(),
        });
        assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line:?}");
        assert!(line.contains("disconnected"), "{line}");
        assert!(!view.servers["s\x1b[2Jx"].connected);
        let event: Event = serde_json::from_value(serde_json::json!({
            "id": 3, "kind": "shed.started", "shed": "box", "at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        let line = view.apply(Update::Changed {
            server: "s".into(),
            event,
            sessions: Vec::new(),
        });
        assert!(line.contains("s: shed.started box (0 sessions)"), "{line}");
    }
}
