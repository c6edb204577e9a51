//! `GET /api/events` and `shed sessions --watch` against a real Docker
//! engine, through a real shed-server process.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use common::http::{post_empty, send};
use common::*;
use serde_json::Value;

fn is(kind: &'static str, shed: &'static str) -> impl Fn(&Got) -> bool {
    move |g| g.kind == kind && g.json["shed"] == shed
}

fn assert_increasing(events: &[Got]) {
    for pair in events.windows(2) {
        assert!(pair[0].id < pair[1].id, "ids must increase: {events:#?}");
    }
}

#[tokio::test]
async fn start_and_stop_are_events_with_increasing_ids() {
    let server = TestServer::start();
    let mut events = Events::open(&server.url("/api/events"), &[]).await;
    make_shed(&server, "ev").await;
    let mut all = events.until("shed.started", is("shed.started", "ev")).await;
    let r = post_empty(&server.url("/api/sheds/ev/stop")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    all.extend(events.until("shed.stopped", is("shed.stopped", "ev")).await);
    let r = post_empty(&server.url("/api/sheds/ev/start")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let after = events.until("shed.started", is("shed.started", "ev")).await;
    // `docker stop` reports kill, die and stop: one shed.stopped only.
    assert!(
        after.iter().all(|g| g.kind != "shed.stopped"),
        "a second shed.stopped for one stop: {after:#?}"
    );
    all.extend(after);
    assert_increasing(&all);
    assert_eq!(
        all.last().unwrap().json["data"]["container"],
        server.container("ev")
    );
}

#[tokio::test]
async fn last_event_id_replays_exactly_the_missed_events() {
    let server = TestServer::start();
    let mut live = Events::open(&server.url("/api/events"), &[]).await;
    make_shed(&server, "re").await;
    let first = live.until("shed.started", is("shed.started", "re")).await;
    let first = first.last().unwrap().id;
    assert_eq!(
        post_empty(&server.url("/api/sheds/re/stop")).await.status,
        200
    );
    assert_eq!(
        post_empty(&server.url("/api/sheds/re/start")).await.status,
        200
    );
    let missed: Vec<u64> = live
        .until("shed.started", is("shed.started", "re"))
        .await
        .iter()
        .map(|g| g.id)
        .collect();

    let header = first.to_string();
    let mut resumed = Events::open(&server.url("/api/events"), &[("Last-Event-ID", &header)]).await;
    let deadline = Instant::now() + EVENT_WAIT;
    let mut replayed = Vec::new();
    for _ in 0..missed.len() {
        replayed.push(
            resumed
                .next_before(deadline)
                .await
                .expect("replayed event")
                .id,
        );
    }
    assert_eq!(replayed, missed);

    // The same through the query parameter.
    let url = server.url(&format!("/api/events?last_event_id={first}"));
    let mut resumed = Events::open(&url, &[]).await;
    let got = resumed.next_before(deadline).await.expect("replayed event");
    assert_eq!(got.id, missed[0]);
    assert_eq!(got.kind, "shed.stopped");
}

#[tokio::test]
async fn an_id_older_than_the_ring_gets_a_resync() {
    let server = TestServer::start_with_config("event_ring_size = 2");
    let mut live = Events::open(&server.url("/api/events"), &[]).await;
    make_shed(&server, "rs").await;
    let first = live.until("shed.started", is("shed.started", "rs")).await;
    let first = first.last().unwrap().id;
    for action in ["stop", "start", "stop"] {
        let r = post_empty(&server.url(&format!("/api/sheds/rs/{action}"))).await;
        assert_eq!(r.status, 200, "{}", r.json);
    }
    let newest = live
        .until("the last shed.stopped", |g| {
            g.kind == "shed.stopped" && g.id >= first + 3
        })
        .await
        .last()
        .unwrap()
        .id;
    let header = first.to_string();
    let mut resumed = Events::open(&server.url("/api/events"), &[("Last-Event-ID", &header)]).await;
    let got = resumed
        .next_before(Instant::now() + EVENT_WAIT)
        .await
        .expect("a resync event");
    assert_eq!(got.kind, "resync");
    assert_eq!(
        got.id, newest,
        "a resync carries the newest id, to resume from"
    );

    // Resuming from the resync's id is current: nothing is replayed.
    assert_eq!(
        post_empty(&server.url("/api/sheds/rs/start")).await.status,
        200
    );
    let header = newest.to_string();
    let mut again = Events::open(&server.url("/api/events"), &[("Last-Event-ID", &header)]).await;
    let next = again.until("shed.started", is("shed.started", "rs")).await;
    assert_eq!(next[0].id, newest + 1, "{next:#?}");
}

#[tokio::test]
async fn the_shed_filter_keeps_one_shed() {
    let server = TestServer::start();
    let mut only_a = Events::open(&server.url("/api/events?shed=fa"), &[]).await;
    make_shed(&server, "fb").await;
    make_shed(&server, "fa").await;
    let seen = only_a
        .until("shed.started of fa", is("shed.started", "fa"))
        .await;
    assert!(seen.iter().all(|g| g.json["shed"] == "fa"), "{seen:#?}");

    let r = send("GET", &server.url("/api/events?shed=..%2Fx"), None, &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "INVALID_NAME");
    let r = send(
        "GET",
        &server.url("/api/events"),
        None,
        &[("Last-Event-ID", "x")],
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn events_need_the_token_and_a_same_origin() {
    let server = TestServer::start_with_config("api_token = \"events-token-123\"");
    let url = server.url("/api/events");
    let r = send("GET", &url, None, &[]).await;
    assert_eq!(r.status, 401);
    let r = send(
        "GET",
        &url,
        None,
        &[("Authorization", "Bearer wrong-token-1")],
    )
    .await;
    assert_eq!(r.status, 401);
    let auth = ("Authorization", "Bearer events-token-123");
    let r = send(
        "GET",
        &url,
        None,
        &[auth, ("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403);
    Events::open(&url, &[auth]).await;

    let doc = send("GET", &server.url("/api/openapi.json"), None, &[auth]).await;
    assert!(doc.json["paths"]["/api/events"]["get"].is_object());
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_consumer_that_reads_nothing_does_not_grow_the_server() {
    let server = TestServer::start_with_config("event_ring_size = 4");
    // A raw connection that asks for events and never reads a byte.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        stalled,
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        server.port
    )
    .unwrap();
    let mut live = Events::open(&server.url("/api/events"), &[]).await;
    make_shed(&server, "mem").await;
    live.until("shed.started", is("shed.started", "mem")).await;
    let before = rss_kib(server.pid());
    for _ in 0..5 {
        assert_eq!(
            post_empty(&server.url("/api/sheds/mem/stop")).await.status,
            200
        );
        live.until("shed.stopped", is("shed.stopped", "mem")).await;
        assert_eq!(
            post_empty(&server.url("/api/sheds/mem/start")).await.status,
            200
        );
        live.until("shed.started", is("shed.started", "mem")).await;
    }
    let after = rss_kib(server.pid());
    // Generous: allocator noise, never a per-event buffer.
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // The stalled consumer is still connected and the server still serves.
    assert_eq!(
        send("GET", &server.url("/api/health"), None, &[])
            .await
            .status,
        200
    );
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = [0u8; 12];
    stalled.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

#[tokio::test]
async fn watch_prints_changes_and_disconnects_when_piped_and_stops_on_sigint() {
    let server = TestServer::start();
    let cli = Cli::new();
    cli.add_server(&server, "w1");
    let mut child = cli
        .command(&["sessions", "--watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let guard_pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_line = |what: &str| -> String {
        let deadline = Instant::now() + EVENT_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no line with {what:?} from shed sessions --watch"),
            }
        }
    };
    assert!(wait_line("connected").contains("w1"));
    make_shed(&server, "wt").await;
    assert!(wait_line("shed.started").contains("wt"));
    assert_eq!(
        post_empty(&server.url("/api/sheds/wt/stop")).await.status,
        200
    );
    assert!(wait_line("shed.stopped").contains("wt"));

    // The server goes away: the watch says so and keeps running.
    // SAFETY: kill only sends a signal to the server process this test started.
    unsafe { libc::kill(server.pid() as i32, libc::SIGKILL) };
    assert!(wait_line("disconnected").contains("w1"));

    // SAFETY: as above, to the CLI process this test started.
    unsafe { libc::kill(guard_pid as i32, libc::SIGINT) };
    let mut status = None;
    let exited = wait_until(Duration::from_secs(20), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert!(exited, "shed sessions --watch ignored SIGINT");
    let status = status.unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn docker_kill_and_restart_are_events_and_foreign_containers_are_not() {
    let server = TestServer::start();
    let mut events = Events::open(&server.url("/api/events"), &[]).await;
    make_shed(&server, "dk").await;
    events.until("shed.started", is("shed.started", "dk")).await;
    // A container made with `docker run`, outside shed, that even carries
    // a shed name label but not the marker.
    let foreign = server.container("foreign");
    let label = format!("{}.shed.name=foreign", server.prefix);
    docker(&[
        "run", "-d", "--name", &foreign, "--label", &label, TEST_IMAGE, "sleep", "infinity",
    ]);
    docker(&["kill", &foreign]);
    let container = server.container("dk");
    docker(&["kill", &container]);
    let seen = events.until("shed.stopped", is("shed.stopped", "dk")).await;
    assert!(seen.iter().all(|g| g.json["shed"] == "dk"), "{seen:#?}");

    docker(&["start", &container]);
    events.until("shed.started", is("shed.started", "dk")).await;
    docker(&["restart", &container]);
    let stopped = events.until("shed.stopped", is("shed.stopped", "dk")).await;
    let started = events.until("shed.started", is("shed.started", "dk")).await;
    assert_eq!(
        stopped.len() + started.len(),
        2,
        "{stopped:#?} {started:#?}"
    );
}

#[tokio::test]
async fn an_open_stream_does_not_hold_up_shutdown() {
    let mut server = TestServer::start();
    let mut events = Events::open(&server.url("/api/events"), &[]).await;
    // Within the helper's 20 s, well under the 30 s drain a stream that
    // never ends would take.
    assert!(server.terminate().success());
    let ended = tokio::time::timeout(EVENT_WAIT, events.response.chunk()).await;
    assert!(
        matches!(ended, Ok(Ok(None)) | Ok(Err(_))),
        "the stream did not end: {ended:?}"
    );
}

/// Session events come from the live model over the control channel: a
/// session made through the API and one made behind shed's back with
/// `docker exec` both arrive as `session.created`, a bell in a detached
/// session as `session.changed`, and a kill as `session.closed`.
#[tokio::test]
async fn sessions_made_anywhere_arrive_as_events() {
    let server = TestServer::start();
    make_shed(&server, "live").await;
    // The channel serves once it is up: a probe session listed with
    // `source: channel` says so.
    let sessions_url = server.url("/api/sheds/live/sessions");
    let r = common::http::post(&sessions_url, r#"{"name":"probe"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let (up, last) = eventually(Duration::from_secs(30), || async {
        let r = common::http::get(&sessions_url).await;
        (has_channel_source(&r.json), r.json)
    })
    .await;
    assert!(up, "no control channel came up: {last}");
    let mut events = Events::open(&server.url("/api/events?shed=live"), &[]).await;

    let r = common::http::post(&sessions_url, r#"{"name":"viaapi"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let got = events
        .until("session.created viaapi", |g| {
            g.kind == "session.created" && g.json["session"] == "viaapi"
        })
        .await;
    assert_increasing(&got);

    docker(&[
        "exec",
        &server.container("live"),
        "tmux",
        "new-session",
        "-d",
        "-s",
        "behind",
    ]);
    events
        .until("session.created behind", |g| {
            g.kind == "session.created" && g.json["session"] == "behind"
        })
        .await;

    let r = common::http::delete(&server.url("/api/sheds/live/sessions/viaapi")).await;
    assert_eq!(r.status, 204, "{}", r.json);
    events
        .until("session.closed viaapi", |g| {
            g.kind == "session.closed" && g.json["session"] == "viaapi"
        })
        .await;
}

/// Whether a session list answered with `source: channel` on any session.
fn has_channel_source(json: &Value) -> bool {
    json["sessions"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["source"] == "channel"))
}
