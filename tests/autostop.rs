//! Auto-stop (issue 13) against real Docker and real tmux, with
//! `idle_stop_after = 3`: a shed whose only session is an idle shell stops
//! itself and says so on the event stream; one with a working fake agent, one
//! with a tmux client attached, one with an SSH gateway connection open, and
//! one created with its own limit off keep running all the while, which here is two stops of the idle shed, several
//! times the limit.

mod common;

use std::time::{Duration, Instant};

use common::http::{get, post, post_empty};
use common::*;
use serde_json::{json, Value};

/// The server's limit, in seconds.
const LIMIT: u64 = 3;

/// How long one auto-stop may take: a fresh shell turns idle after the
/// engine's five quiet seconds, then the limit, then a look, on a loaded machine.
const STOP_WAIT: Duration = Duration::from_secs(60);

fn autostop_server() -> TestServer {
    TestServer::start_with_config(format!("control_mode = true\nidle_stop_after = {LIMIT}\n"))
}

async fn create_shed(server: &TestServer, body: Value) -> Value {
    let r = post(&server.url("/api/sheds"), &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.json);
    r.json
}

async fn create_session(server: &TestServer, shed: &str, body: Value) {
    let url = server.url(&format!("/api/sheds/{shed}/sessions"));
    let r = post(&url, &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.json);
}

/// Waits for `shed.auto_stopped` of `shed`; returns it, and fails on any
/// auto-stop of another shed meanwhile.
async fn auto_stopped(events: &mut Events, shed: &str) -> Value {
    let deadline = Instant::now() + STOP_WAIT;
    loop {
        let got = events
            .next_before(deadline)
            .await
            .unwrap_or_else(|| panic!("no shed.auto_stopped of {shed} within {STOP_WAIT:?}"));
        if got.kind != "shed.auto_stopped" {
            continue;
        }
        assert_eq!(got.json["shed"], shed, "the wrong shed stopped: {got:?}");
        return got.json;
    }
}

/// Waits for `shed.auto_stopped` of each of `sheds`, in any order, and of
/// no other.
async fn all_auto_stopped(events: &mut Events, sheds: &[&str]) {
    let mut left: Vec<&str> = sheds.to_vec();
    let deadline = Instant::now() + STOP_WAIT;
    while !left.is_empty() {
        let got = events
            .next_before(deadline)
            .await
            .unwrap_or_else(|| panic!("no shed.auto_stopped of {left:?} within {STOP_WAIT:?}"));
        if got.kind != "shed.auto_stopped" {
            continue;
        }
        let shed = got.json["shed"].as_str().unwrap_or_default();
        let at = left.iter().position(|s| *s == shed);
        let at = at.unwrap_or_else(|| panic!("the wrong shed stopped: {got:?}"));
        left.remove(at);
    }
}

/// Waits until the session reports `attached` clients.
async fn attached(server: &TestServer, shed: &str, session: &str) {
    let url = server.url(&format!("/api/sheds/{shed}/sessions/{session}"));
    let (ok, last) = eventually(STOP_WAIT, || async {
        let r = get(&url).await;
        (r.json["attached"].as_u64().unwrap_or(0) > 0, r.json)
    })
    .await;
    assert!(
        ok,
        "{shed}/{session} never showed a client attached: {last:#}"
    );
}

#[tokio::test]
async fn idle_sheds_stop_and_busy_attached_or_exempt_ones_do_not() {
    let server = autostop_server();
    let mut events = Events::open(&server.url("/api/events"), &[]).await;

    // A limit a create cannot set is refused before anything is made.
    for bad in [json!(99_999_999), json!("soon"), json!(-1)] {
        let body = json!({ "name": "bad", "idle_stop_after": bad }).to_string();
        let r = post(&server.url("/api/sheds"), &body).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.json);
        assert_eq!(r.code(), "INVALID_REQUEST", "{bad}: {}", r.json);
    }

    // Each shed gets its session at once: an empty shed counts as idle.
    create_shed(&server, json!({ "name": "busy" })).await;
    create_session(
        &server,
        "busy",
        json!({ "name": "agent", "command": "/opt/fake-agents/claude busy" }),
    )
    .await;
    let own = create_shed(&server, json!({ "name": "exempt", "idle_stop_after": 0 })).await;
    assert_eq!(own["idle_stop_after"], 0, "{own:#}");
    create_session(&server, "exempt", json!({ "name": "sh" })).await;
    create_shed(&server, json!({ "name": "held" })).await;
    create_session(&server, "held", json!({ "name": "sh" })).await;
    let host = HostTmux::new();
    host.start(
        "client",
        80,
        24,
        &[],
        &format!(
            "docker exec -it {} tmux attach -t sh",
            server.container("held")
        ),
    );
    attached(&server, "held", "sh").await;
    // An SSH login: a plain exec, no tmux client. The shed is stopped
    // first, so that it cannot go idle before the login: the login starts it.
    create_shed(&server, json!({ "name": "remote" })).await;
    let r = post_empty(&server.url("/api/sheds/remote/stop")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let key = SshKey::generate();
    server.authorize(&key);
    let ssh = ChildGuard(
        server
            .ssh(&key, "remote", &[])
            .args(["sleep", "600"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh"),
    );
    assert!(
        wait_until(STOP_WAIT, || is_running(&server.container("remote"))),
        "the SSH login did not start the shed:\n{}",
        server.log()
    );
    create_shed(&server, json!({ "name": "calm" })).await;
    create_session(&server, "calm", json!({ "name": "sh" })).await;

    // The idle shed stops itself, and the event says after how long.
    let event = auto_stopped(&mut events, "calm").await;
    assert_eq!(event["data"]["idle_stop_after"], LIMIT, "{event:#}");
    assert!(
        event["data"]["idle_secs"].as_u64().unwrap() >= LIMIT,
        "{event:#}"
    );
    assert!(!is_running(&server.container("calm")));
    let r = get(&server.url("/api/sheds/calm")).await;
    assert_eq!(r.json["status"], "stopped", "{}", r.json);
    assert!(
        server.log().contains("auto-stop: stopped an idle shed"),
        "not logged:\n{}",
        server.log()
    );

    // Started again, its session comes back from the snapshot the stop
    // saved; idle, it stops once more, so the others are watched for longer.
    let r = post_empty(&server.url("/api/sheds/calm/start")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let (back, list) = eventually(STOP_WAIT, || async {
        let r = get(&server.url("/api/sheds/calm/sessions")).await;
        let names: Vec<String> = r.json["sessions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        (names == ["sh"], names)
    })
    .await;
    assert!(
        back,
        "the auto-stopped shed's session did not come back: {list:?}"
    );
    auto_stopped(&mut events, "calm").await;

    for shed in ["busy", "exempt", "held", "remote"] {
        assert!(
            is_running(&server.container(shed)),
            "{shed} was stopped:\n{}",
            server.log()
        );
    }
    // The exempt shed's limit is a label: it is still there when read back.
    let r = get(&server.url("/api/sheds/exempt")).await;
    assert_eq!(r.json["idle_stop_after"], 0, "{}", r.json);
    // And the working agent really was seen working, not merely unseen.
    let r = get(&server.url("/api/sheds/busy/sessions/agent")).await;
    assert_eq!(r.json["agent"]["state"], "working", "{}", r.json);

    // The tmux client detaches (from inside: a `docker exec` outlives its
    // killed host side) and the SSH connection closes: both sheds are idle
    // now, and stop.
    assert!(docker_ok(&[
        "exec",
        &server.container("held"),
        "tmux",
        "detach-client",
        "-s",
        "sh",
    ]));
    drop(ssh);
    all_auto_stopped(&mut events, &["held", "remote"]).await;
}
