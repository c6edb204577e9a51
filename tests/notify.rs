//! Notifications end to end: a real shed-server with a `[[notify]]`
//! webhook, a real shed on Docker whose agent reports `waiting` through its
//! pane option, and a receiver in the test that checks the signature.

mod common;

use std::time::Duration;

use common::http::post;
use common::receiver::{signature_ok, Receiver};
use common::*;

const SECRET: &str = "e2e-secret-0123456789";
/// Detection, the hold and the delivery together.
const WAIT: Duration = Duration::from_secs(60);

async fn start_agent(server: &TestServer, session: &str) {
    let body = serde_json::json!({
        "name": session,
        "command": "/opt/fake-agents/claude report:waiting",
    });
    let r = post(&server.url("/api/sheds/p/sessions"), &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.json);
}

/// The 200-answered deliveries for `session`.
fn deliveries(receiver: &Receiver, session: &str) -> Vec<common::receiver::Received> {
    receiver
        .got()
        .into_iter()
        .filter(|r| r.status == 200 && r.json()["session"] == session)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_reports_waiting_sends_one_signed_webhook() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with_config(format!(
            "[[notify]]\nkind = \"webhook\"\nurl = {:?}\nsecret = {SECRET:?}\nmin_hold_secs = 1\nmin_interval_secs = 0\n",
            receiver.url("/hook")
        ));
    make_shed(&server, "p").await;
    start_agent(&server, "agent").await;

    let (ok, got) = eventually(WAIT, || async {
        let got = deliveries(&receiver, "agent");
        (!got.is_empty(), got)
    })
    .await;
    assert!(
        ok,
        "no notification; the receiver got {:#?}",
        receiver.got()
    );
    let hit = &got[0];
    assert!(signature_ok(hit, SECRET.as_bytes()), "{hit:#?}");
    let body = hit.json();
    assert_eq!(body["server"], server.name.as_str());
    assert_eq!(body["shed"], "p");
    assert_eq!(body["agent"]["state"], "waiting");
    assert_eq!(body["agent"]["kind"], "claude");

    // A second agent as a sentinel: once its notification is in, the first
    // had every chance to be sent twice.
    start_agent(&server, "second").await;
    let (ok, _) = eventually(WAIT, || async {
        (!deliveries(&receiver, "second").is_empty(), ())
    })
    .await;
    assert!(
        ok,
        "no notification for the second agent: {:#?}",
        receiver.got()
    );
    assert_eq!(
        deliveries(&receiver, "agent").len(),
        1,
        "{:#?}",
        receiver.got()
    );
    assert_eq!(
        deliveries(&receiver, "second").len(),
        1,
        "{:#?}",
        receiver.got()
    );
}

#[test]
fn a_bad_notify_entry_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        "http_port = 0\nssh_port = 0\n[[notify]]\nkind = \"webhook\"\nurl = \"https://x.example/\"\n",
    )
    .unwrap();
    let log = match spawn_server(&config, dir.path()) {
        Ok((mut child, _)) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started with a webhook that has no secret");
        }
        Err(log) => log,
    };
    assert!(log.contains("notify") && log.contains("secret"), "{log}");
}
