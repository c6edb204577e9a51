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

/// A connection to the server on 127.0.0.1 whose receive buffer is made as
/// small as the kernel allows before it connects, so the window it offers,
/// and what the server can push into the kernel for it, stay small.
fn small_window_connection(port: u16) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: a new socket owned here until it is handed to TcpStream; every
    // pointer passed points at a local that outlives the call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let size: libc::c_int = 1;
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    }
}

/// Sessions per round of [`a_consumer_that_reads_nothing_does_not_grow_the_server`].
const FLOOD_SESSIONS: usize = 100;
/// Bytes of each of their names: long names make big events (a name is
/// in the event twice), and the model keeps up to 4096 of them.
const FLOOD_NAME_BYTES: usize = 4000;
/// Event bytes the flood must reach: far more than the kernel's buffers of
/// one connection and the server's queue of `event_ring_size` events hold,
/// and twice the growth allowed below.
const FLOOD_BYTES: usize = 24 << 20;
/// Most RSS the server may gain meanwhile: the ring's events, the model of
/// 100 sessions with long names, the autosave's captures of them, and
/// allocator slack. Measured: it grows by some 7 MB over the first dozen
/// rounds, then stays flat however long the flood runs.
const FLOOD_GROWTH_KIB: u64 = 12 * 1024;

/// Reads `live` until it has seen `kind` for every name in `names`; returns
/// the bytes of all events read.
async fn saw_all(live: &mut Events, kind: &str, names: &[String]) -> usize {
    let mut left: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let deadline = Instant::now() + EVENT_WAIT;
    let mut bytes = 0;
    let mut seen = Vec::new();
    while !left.is_empty() {
        let got = live.next_before(deadline).await.unwrap_or_else(|| {
            panic!(
                "{} {kind} events missing; saw {} events, the last {:?}",
                left.len(),
                seen.len(),
                seen.last()
            )
        });
        bytes += got.json.to_string().len();
        seen.push(format!("{} {:.40}", got.kind, got.json["session"]));
        if got.kind == kind {
            left.remove(got.json["session"].as_str().unwrap_or_default());
        }
    }
    bytes
}

#[tokio::test]
async fn a_consumer_that_reads_nothing_does_not_grow_the_server() {
    // Room for one round's burst, so the consumer that reads keeps up.
    let server =
        TestServer::start_with_config(format!("event_ring_size = {}", 2 * FLOOD_SESSIONS + 56));
    // A raw connection that asks for events and never reads a byte.
    let mut stalled = small_window_connection(server.port);
    write!(
        stalled,
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        server.port
    )
    .unwrap();
    let mut live = Events::open(&server.url("/api/events?shed=mem"), &[]).await;
    make_shed(&server, "mem").await;
    let container = server.container("mem");
    // Session events come from the channel's model: made behind the API's
    // back in rounds, one exec each way (a tmux command file, since one
    // tmux command line is bounded), with names as long as the model keeps.
    let round = |r: usize| -> Vec<String> {
        (0..FLOOD_SESSIONS)
            .map(|i| format!("r{r}s{i}-{}", "n".repeat(FLOOD_NAME_BYTES)))
            .collect()
    };
    let tmux_each = |r: usize, command: &str| {
        let script = format!(
            "n=$(printf '%0{FLOOD_NAME_BYTES}d' 0 | tr 0 n); i=0; f=$(mktemp); \
             while [ $i -lt {FLOOD_SESSIONS} ]; do echo \"{command}\"; i=$((i + 1)); done > $f; \
             tmux source-file $f; rm $f"
        )
        .replace("NAME", &format!("r{r}s$i-$n"));
        docker(&["exec", &container, "sh", "-c", &script]);
    };
    let mut produced = 0;
    let mut before = None;
    let mut rss_by_round = Vec::new();
    let mut r = 0;
    while produced < FLOOD_BYTES {
        let names = round(r);
        tmux_each(r, "new-session -d -s NAME sleep 600");
        let made = saw_all(&mut live, "session.created", &names).await;
        tmux_each(r, "kill-session -t =NAME");
        let killed = saw_all(&mut live, "session.closed", &names).await;
        // The first round warms up what a busy shed uses anyway.
        match before {
            None => before = Some(rss_kib(server.pid())),
            Some(_) => produced += made + killed,
        }
        r += 1;
        rss_by_round.push(rss_kib(server.pid()));
    }
    let before = before.unwrap();
    let after = rss_kib(server.pid());
    assert!(
        after < before + FLOOD_GROWTH_KIB,
        "RSS grew from {before} KiB to {after} KiB over {produced} bytes of events; \
         KiB after each round: {rss_by_round:?}"
    );
    // The server still serves, and the stalled consumer is still connected:
    // what it reads now is what the bounded buffers held, then a resync,
    // since the rest is gone.
    assert_eq!(
        send("GET", &server.url("/api/health"), None, &[])
            .await
            .status,
        200
    );
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut held = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let marker = b"event: resync";
    let resync = loop {
        let from = held.len().saturating_sub(marker.len());
        match stalled.read(&mut chunk) {
            Ok(0) | Err(_) => break false,
            Ok(n) => held.extend_from_slice(&chunk[..n]),
        }
        if held[from..].windows(marker.len()).any(|w| w == marker) {
            break true;
        }
        assert!(
            held.len() < produced,
            "the stalled consumer was sent every event"
        );
    };
    assert!(held.starts_with(b"HTTP/1.1 200"));
    assert!(
        resync,
        "no resync after {} bytes: the buffers were never overflowed",
        held.len()
    );
    assert!(
        held.len() < produced / 4,
        "{} bytes were held for a consumer that read nothing, of {produced}",
        held.len()
    );
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
    wait_for_channel(&server, "live").await;
    let sessions_url = server.url("/api/sheds/live/sessions");
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

/// Makes session `probe` in `shed` and waits until it is listed with
/// `source: channel`: the channel serves, and sessions made from now on are
/// news (those made before it opened are its baseline, and raise no event).
async fn wait_for_channel(server: &TestServer, shed: &str) {
    let url = server.url(&format!("/api/sheds/{shed}/sessions"));
    let r = common::http::post(&url, r#"{"name":"probe"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let (up, last) = eventually(Duration::from_secs(30), || async {
        let r = common::http::get(&url).await;
        (has_channel_source(&r.json), r.json)
    })
    .await;
    assert!(up, "no control channel came up: {last}");
}

/// Whether a session list answered with `source: channel` on any session.
fn has_channel_source(json: &Value) -> bool {
    json["sessions"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["source"] == "channel"))
}

/// On a terminal, `shed sessions --watch` keeps one table on the screen and
/// redraws it in place: a new session appears as a row under the single
/// header, and the frame it replaced is gone. A server that stops is shown
/// as disconnected, and Ctrl-C (typed, so the terminal sends the SIGINT)
/// ends the watch with status 0.
#[tokio::test]
async fn watch_redraws_in_place_on_a_terminal_and_stops_on_ctrl_c() {
    const FOOTER: &str = "Watching; Ctrl-C to stop.";
    let mut server = TestServer::start();
    let cli = Cli::new();
    cli.add_server(&server, "w1");
    make_shed(&server, "wt").await;
    // Leaves session `probe` in the first frame.
    wait_for_channel(&server, "wt").await;
    let host = HostTmux::new();
    let shed = env!("CARGO_BIN_EXE_shed");
    // The shell prints the watch's exit status: tmux 3.3a sometimes marks a
    // pane dead without learning its status (see tests/session_exit.rs).
    // Its INT trap is a command, so the watch starts with SIGINT at its
    // default, and the shell waits for the watch before running it.
    let watch = format!("trap true INT; {shed} sessions --watch; echo \"watch exited with $?\"");
    host.start("watch", 200, 40, &cli.env(), &watch);
    let is_row = |line: &str, name: &str| line.split_whitespace().take(3).eq(["w1", "wt", name]);
    let header = |screen: &str| {
        let is_header = |l: &&str| {
            l.split_whitespace()
                .take(3)
                .eq(["SERVER", "SHED", "SESSION"])
        };
        screen.lines().filter(is_header).count()
    };
    let footers = |screen: &str| screen.lines().filter(|l| l.contains(FOOTER)).count();
    // The footer is drawn after the whole table, so a screen that shows it
    // holds one complete frame.
    let first = host.wait_for_up_to(EVENT_WAIT, "watch", "the first frame", |s| {
        s.contains(FOOTER) && s.lines().any(|l| is_row(l, "probe"))
    });
    assert_eq!(header(&first), 1, "{first}");

    let r = common::http::post(&server.url("/api/sheds/wt/sessions"), r#"{"name":"two"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let frame = host.wait_for_up_to(EVENT_WAIT, "watch", "the new session in the table", |s| {
        s.contains(FOOTER) && s.lines().any(|l| is_row(l, "two"))
    });
    assert!(frame.lines().any(|l| is_row(l, "probe")), "{frame}");
    // Appended frames would stack up on the 40 rows; one was replaced.
    assert_eq!(header(&frame), 1, "one header, redrawn in place:\n{frame}");
    assert_eq!(footers(&frame), 1, "one footer:\n{frame}");

    // The server stops: the table keeps its rows and names the server as
    // disconnected while the watch keeps retrying.
    assert!(server.terminate().success());
    let frame = host.wait_for_up_to(
        EVENT_WAIT,
        "watch",
        "the server shown as disconnected",
        |s| s.contains(FOOTER) && s.lines().any(|l| l.starts_with("w1: disconnected (")),
    );
    assert_eq!(header(&frame), 1, "{frame}");
    assert_eq!(footers(&frame), 1, "{frame}");
    assert!(frame.lines().any(|l| is_row(l, "two")), "{frame}");

    host.keys("watch", &["C-c"]);
    let ended = host.wait_for_up_to(
        Duration::from_secs(20),
        "watch",
        "the watch to end on Ctrl-C",
        |s| s.contains("watch exited with "),
    );
    // 0: a clean end, not death by the signal (130).
    assert!(ended.contains("watch exited with 0"), "{ended}");
}
