//! `shed inbox` and `shed wait` end to end: real servers, real Docker, real
//! tmux, and the test image's fake agent reporting its state through the
//! pane option `@shed_state`, as an agent's hook would.

mod common;

use std::time::Duration;

use common::http::post;
use common::*;
use serde_json::Value;

/// How long a reported state may take to reach the session lists.
const STATE_LIMIT: Duration = Duration::from_secs(60);

/// Starts session `name` in `shed` on `server`, running `command`.
async fn agent_session(server: &TestServer, shed: &str, name: &str, command: &str) {
    let body = serde_json::json!({"name": name, "command": command}).to_string();
    let r = post(&server.url(&format!("/api/sheds/{shed}/sessions")), &body).await;
    assert_eq!(r.status, 201, "{}", r.json);
}

/// (server, shed, session, state) of each inbox row.
fn rows(doc: &Value) -> Vec<(String, String, String, String)> {
    doc["sessions"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                    (s("server"), s("shed"), s("session"), s("state"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn inbox_lists_exactly_the_waiting_agents_on_two_servers() {
    let a = TestServer::start();
    let b = TestServer::start();
    make_shed(&a, "web").await;
    make_shed(&b, "api").await;
    agent_session(&a, "web", "asks", "/opt/fake-agents/claude report:waiting").await;
    agent_session(&a, "web", "busy", "/opt/fake-agents/claude report:working").await;
    agent_session(&b, "api", "asks", "/opt/fake-agents/claude report:waiting").await;
    let cli = Cli::new();
    cli.add_server(&a, "one");
    cli.add_server(&b, "two");

    let waiting = |doc: &Value| -> Vec<(String, String, String)> {
        rows(doc)
            .into_iter()
            .filter(|r| r.3 == "waiting")
            .map(|(srv, shed, session, _)| (srv, shed, session))
            .collect()
    };
    let want = vec![
        ("one".to_string(), "web".to_string(), "asks".to_string()),
        ("two".to_string(), "api".to_string(), "asks".to_string()),
    ];
    let (done, doc) = eventually(STATE_LIMIT, || async {
        let out = cli.run(&["inbox", "--json"]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut got = waiting(&doc);
        got.sort();
        (got == want && out.status.code() == Some(0), doc)
    })
    .await;
    assert!(
        done,
        "{doc:#}\nserver a:\n{}\nserver b:\n{}",
        a.log(),
        b.log()
    );
    // The working agent is not in the inbox at all.
    assert!(!rows(&doc).iter().any(|r| r.2 == "busy"), "{doc:#}");
    let out = cli.run(&["inbox"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("shed -s one attach web -S asks"),
        "{stdout}"
    );
    assert!(
        stdout.contains("shed -s two attach api -S asks"),
        "{stdout}"
    );
}

#[tokio::test]
async fn wait_returns_when_the_agent_reports_waiting() {
    let server = TestServer::start();
    make_shed(&server, "p").await;
    let cli = Cli::new();
    cli.add_server(&server, "s");
    // Busy for a few seconds first, so the wait has to follow the stream.
    agent_session(
        &server,
        "p",
        "agent",
        "/opt/fake-agents/claude report:working busy:4 report:waiting",
    )
    .await;
    let out = cli.run(&["wait", "p", "agent", "--for", "waiting", "--timeout", "90s"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{stderr}\n{}",
        server.log()
    );
    assert!(stdout.starts_with("p/agent: waiting"), "{stdout}");
    // Already waiting: at once.
    let out = cli.run(&["wait", "p", "agent", "--for", "waiting", "--timeout", "5s"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
    // Never idle while it waits: a timeout.
    let out = cli.run(&["wait", "p", "agent", "--for", "idle", "--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(124), "{:?}", texts(&out));
}
