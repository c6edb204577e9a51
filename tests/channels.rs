//! The tmux control channels against real Docker: one per running shed,
//! serving sessions (`source: "channel"`), reopened after every way it can
//! go away, falling back to exec and never answering wrong meanwhile.

mod common;

use common::http::{delete, get, post};
use common::*;
use serde_json::Value;
use shed::server::control::client::{PROBE_AFTER, PROBE_TIMEOUT};
use std::process::Command;
use std::time::{Duration, Instant};

/// Generous: a loaded machine may take a while to start an exec.
const CHANNEL_DEADLINE: Duration = Duration::from_secs(20);

async fn make_session(server: &TestServer, shed: &str, name: &str) {
    let r = post(
        &server.url(&format!("/api/sheds/{shed}/sessions")),
        &format!(r#"{{"name":"{name}"}}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
}

/// A shed's session list: status, names, and the `source` of each.
async fn listing(server: &TestServer, shed: &str) -> (u16, Vec<String>, Vec<String>) {
    let r = get(&server.url(&format!("/api/sheds/{shed}/sessions"))).await;
    let sessions = r.json["sessions"].as_array().cloned().unwrap_or_default();
    let field = |key: &str| -> Vec<String> {
        sessions
            .iter()
            .map(|s| s[key].as_str().unwrap_or_default().to_string())
            .collect()
    };
    (r.status, field("name"), field("source"))
}

/// Waits until the shed's sessions (`expected`, not empty: an empty list
/// carries no `source`) come from its channel, checking on the way that
/// every answer is exactly `expected`.
async fn wait_for_channel(server: &TestServer, shed: &str, expected: &[&str]) {
    wait_for_channel_within(server, shed, expected, CHANNEL_DEADLINE).await;
}

/// [`wait_for_channel`] with a deadline of `limit`.
async fn wait_for_channel_within(
    server: &TestServer,
    shed: &str,
    expected: &[&str],
    limit: Duration,
) {
    assert!(!expected.is_empty());
    let (up, last) = eventually(limit, || async {
        let (status, names, sources) = listing(server, shed).await;
        assert_eq!(status, 200, "listing {shed}");
        assert_eq!(
            names, expected,
            "a wrong answer while waiting for the channel"
        );
        (sources.iter().all(|s| s == "channel"), sources)
    })
    .await;
    assert!(up, "no control channel for {shed}: sources {last:?}");
}

/// Every tmux session in `container`, one a line, shed's hidden one too
/// (which `tmux_sessions` leaves out).
fn all_tmux_sessions(container: &str) -> String {
    docker(&[
        "exec",
        container,
        "tmux",
        "list-sessions",
        "-F",
        "#{session_name}",
    ])
}

/// The pids of control clients in `container`: processes started by
/// `docker exec` (parent pid 0) whose command line starts with `tmux -C`. A
/// tmux server a control client started has the same command line, but
/// init or the client as its parent.
fn control_clients(container: &str) -> Vec<String> {
    let script = r#"for d in /proc/[0-9]*; do
  ppid=; while read -r k v; do [ "$k" = PPid: ] && ppid=$v; done < $d/status
  [ "$ppid" = 0 ] || continue
  printf '%s ' "${d#/proc/}"; tr '\0' ' ' < $d/cmdline; echo
done"#;
    let out = Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .expect("docker exec");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (pid, cmd) = l.split_once(' ')?;
            cmd.starts_with("tmux -C").then(|| pid.to_string())
        })
        .collect()
}

fn kill_control_clients(container: &str) {
    for pid in control_clients(container) {
        // It may be gone already, reconnecting.
        docker_ok(&["exec", container, "sh", "-c", &format!("kill {pid}")]);
    }
}

#[tokio::test]
async fn channels_come_up_for_running_sheds_after_start_and_after_a_restart() {
    let mut server = TestServer::start();
    make_shed(&server, "a").await;
    make_session(&server, "a", "one").await;
    wait_for_channel(&server, "a", &["one"]).await;
    let r = get(&server.url("/api/sheds/a/sessions/one/output")).await;
    assert_eq!(
        (r.status, r.json["source"].as_str()),
        (200, Some("channel"))
    );
    // Health counts it, for operators (and the benchmarks) to watch.
    let health = get(&server.url("/api/health")).await;
    assert_eq!(health.json["control_channels"], 1, "{}", health.json);

    // Stopped and started through the API: the channel comes back.
    let r = post(&server.url("/api/sheds/a/stop"), "").await;
    assert_eq!(r.status, 200, "{}", r.json);
    let health = get(&server.url("/api/health")).await;
    assert_eq!(health.json["control_channels"], 0, "{}", health.json);
    let r = post(&server.url("/api/sheds/a/start"), "").await;
    assert_eq!(r.status, 200, "{}", r.json);
    let container = server.container("a");
    assert!(
        wait_until(CHANNEL_DEADLINE, || control_clients(&container).len() == 1),
        "no control client after the API's start"
    );
    make_session(&server, "a", "two").await;
    // "one" came back from the shed's snapshot (see tests/snapshots.rs).
    wait_for_channel(&server, "a", &["one", "two"]).await;

    // A new server process opens channels for running sheds by itself,
    // before any session request.
    server.terminate();
    assert!(
        wait_until(CHANNEL_DEADLINE, || control_clients(&container).is_empty()),
        "the old server's control client outlived it"
    );
    let second = TestServer::start_sharing(ServerOpts {
        prefix: Some(server.prefix.clone()),
        ..Default::default()
    });
    assert!(
        wait_until(CHANNEL_DEADLINE, || control_clients(&container).len() == 1),
        "no control client after a server restart"
    );
    wait_for_channel(&second, "a", &["one", "two"]).await;
}

/// The issue's bound: after the control client is killed, correct answers
/// from a channel again within this long.
const RECOVERY: Duration = Duration::from_secs(2);

#[tokio::test]
async fn killing_the_control_client_never_gives_a_wrong_answer() {
    let server = TestServer::start();
    make_shed(&server, "k").await;
    make_session(&server, "k", "a").await;
    make_session(&server, "k", "b").await;
    wait_for_channel(&server, "k", &["a", "b"]).await;
    let container = server.container("k");
    let mut recoveries = Vec::new();
    for _ in 0..3 {
        let before = control_clients(&container);
        assert_eq!(before.len(), 1, "{before:?}");
        kill_control_clients(&container);
        // The client is dead once the kill's exec has returned.
        let killed = Instant::now();
        // Every answer meanwhile is the true list. The old channel may
        // answer from its model for the moment it takes to see the end of
        // its stream, so recovery is the first channel answer after one
        // from exec: the gap is at least the first reconnect delay.
        let mut gap = false;
        let recovered = loop {
            let (status, names, sources) = listing(&server, "k").await;
            assert_eq!(status, 200);
            assert_eq!(names, ["a", "b"], "a wrong answer after the kill");
            if sources.iter().any(|s| s != "channel") {
                gap = true;
            } else if gap {
                break killed.elapsed();
            }
            assert!(
                killed.elapsed() < CHANNEL_DEADLINE,
                "no channel answer again (exec seen: {gap})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        recoveries.push(recovered);
        assert!(
            wait_until(CHANNEL_DEADLINE, || {
                let now = control_clients(&container);
                now.len() == 1 && now != before
            }),
            "the control client was not replaced"
        );
    }
    assert_eq!(control_clients(&container).len(), 1);
    eprintln!("answers by channel again after {recoveries:?}");
    assert!(
        recoveries.iter().all(|r| *r <= RECOVERY),
        "answers by channel again only after {recoveries:?}"
    );
}

#[tokio::test]
async fn kill_server_gives_an_empty_list_then_outside_sessions_appear() {
    let server = TestServer::start();
    make_shed(&server, "ks").await;
    make_session(&server, "ks", "a").await;
    wait_for_channel(&server, "ks", &["a"]).await;
    let container = server.container("ks");
    docker(&["exec", &container, "tmux", "kill-server"]);
    let (empty, last) = eventually(CHANNEL_DEADLINE, || async {
        let (status, names, _) = listing(&server, "ks").await;
        (status == 200 && names.is_empty(), (status, names))
    })
    .await;
    assert!(empty, "after kill-server: {last:?}");
    // The reconnected channel's tmux server now holds the user's new session.
    assert!(
        wait_until(CHANNEL_DEADLINE, || control_clients(&container).len() == 1),
        "the channel did not reconnect after kill-server"
    );
    let mut events = Events::open(&server.url("/api/events?shed=ks"), &[]).await;
    docker(&["exec", &container, "tmux", "new-session", "-d", "-s", "x"]);
    let (seen, last) = eventually(CHANNEL_DEADLINE, || async {
        let (status, names, sources) = listing(&server, "ks").await;
        let ok = status == 200 && names == ["x"] && sources == ["channel"];
        (ok, (status, names, sources))
    })
    .await;
    assert!(seen, "the outside session did not show: {last:?}");
    // And as an event, made from the new channel's model.
    let got = events
        .until("session.created of x", |g| {
            g.kind == "session.created" && g.json["session"] == "x"
        })
        .await;
    let created = &got.last().unwrap().json;
    assert_eq!(
        (&created["data"]["name"], &created["data"]["source"]),
        (&Value::from("x"), &Value::from("channel")),
        "{created}"
    );
    assert!(
        !got.iter()
            .any(|g| g.kind == "session.created" && g.json["session"] == "a"),
        "the killed session came back: {got:#?}"
    );
}

/// Replaces the shed's tmux with a wrapper that refuses control mode (as
/// one older than 3.2 refuses the subscription); plain commands still work.
fn refuse_control_mode(container: &str) {
    let script = "t=$(command -v tmux); mv $t $t.real; \
                  printf '#!/bin/sh\\n[ \"$1\" = -C ] && exit 1\\nexec %s.real \"$@\"\\n' $t > $t; chmod +x $t";
    docker(&["exec", "-u", "root", container, "sh", "-c", script]);
}

/// A tmux server stopped with SIGSTOP, and tmux refusing new control
/// clients meanwhile; both undone on drop, even when the test fails.
struct Hung {
    container: String,
    pid: String,
}

impl Hung {
    fn resume(&self) {
        let kill = format!("kill -CONT {} 2>/dev/null; true", self.pid);
        docker_ok(&["exec", "-u", "root", &self.container, "sh", "-c", &kill]);
    }

    fn undo(&self) {
        self.resume();
        let restore = "t=$(command -v tmux); if [ -e $t.real ]; then mv -f $t.real $t; fi";
        docker_ok(&["exec", "-u", "root", &self.container, "sh", "-c", restore]);
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        self.undo();
    }
}

/// tmux in control mode reads and writes the client's stdin and stdout
/// itself (the client passes them over), so a hang is a hung tmux server:
/// an idle channel hears nothing either way, and without a probe its
/// stale model would be served for good.
#[tokio::test]
async fn a_tmux_that_hangs_is_noticed_and_exec_serves() {
    let server = TestServer::start();
    make_shed(&server, "hang").await;
    make_session(&server, "hang", "a").await;
    wait_for_channel(&server, "hang", &["a"]).await;
    let container = server.container("hang");
    let clients = control_clients(&container);
    assert_eq!(clients.len(), 1, "{clients:?}");
    let pid = docker(&[
        "exec",
        &container,
        "tmux",
        "display-message",
        "-p",
        "#{pid}",
    ]);
    // Reconnects fail while it hangs and after, so the exec path's answers show.
    refuse_control_mode(&container);
    let hung = Hung {
        container: container.clone(),
        pid,
    };
    docker(&["exec", &container, "kill", "-STOP", &hung.pid]);
    let stopped = Instant::now();
    // Quiet, probed, unanswered; then closing the client
    // (up to 2 s) and killing its exec with a `docker exec`, which a busy
    // Docker engine can take seconds to run: hence the slack.
    let limit = PROBE_AFTER + PROBE_TIMEOUT + Duration::from_secs(15);
    assert!(
        wait_until(2 * limit, || control_clients(&container).is_empty()),
        "the hung channel stayed open"
    );
    let noticed = stopped.elapsed();
    assert!(noticed < limit, "noticed only after {noticed:?}");
    // A wedged tmux now gets the exec path's bounded, clear answer.
    let r = get(&server.url("/api/sheds/hang/sessions")).await;
    assert_eq!((r.status, r.code()), (504, "TIMEOUT"), "{}", r.json);

    hung.resume();
    docker(&["exec", &container, "tmux", "new-session", "-d", "-s", "x"]);
    let (seen, last) = eventually(CHANNEL_DEADLINE, || async {
        let (status, names, sources) = listing(&server, "hang").await;
        (
            status == 200 && names == ["a", "x"] && sources == ["exec", "exec"],
            (status, names, sources),
        )
    })
    .await;
    assert!(seen, "not served by exec: {last:?}");

    // Reconnect attempts have backed off meanwhile (up to 16 s apart by now).
    hung.undo();
    wait_for_channel_within(&server, "hang", &["a", "x"], 2 * CHANNEL_DEADLINE).await;
    let now = control_clients(&container);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, clients);
}

#[tokio::test]
async fn docker_restart_and_docker_kill_of_a_shed() {
    let server = TestServer::start();
    make_shed(&server, "r").await;
    make_session(&server, "r", "a").await;
    wait_for_channel(&server, "r", &["a"]).await;
    let container = server.container("r");

    docker(&["restart", "-t", "1", &container]);
    // The restart took tmux with it; a session made now is served by a channel.
    make_session(&server, "r", "b").await;
    wait_for_channel(&server, "r", &["b"]).await;

    docker(&["kill", &container]);
    let r = get(&server.url("/api/sheds/r/sessions")).await;
    assert_eq!(
        (r.status, r.code()),
        (409, "SHED_NOT_RUNNING"),
        "{}",
        r.json
    );
    docker(&["start", &container]);
    make_session(&server, "r", "c").await;
    wait_for_channel(&server, "r", &["c"]).await;
}

#[tokio::test]
async fn a_container_made_outside_shed_is_never_touched() {
    let server = TestServer::start();
    make_shed(&server, "mine").await;
    make_session(&server, "mine", "m").await;
    // Named like one of this server's sheds, but without its labels.
    let outside = format!("{}.shed-outside", server.prefix);
    let image = test_image();
    docker(&["run", "-d", "--name", &outside, image, "sleep", "600"]);
    for path in [
        "/api/sheds/outside/sessions",
        "/api/sheds/outside/sessions/x/output",
    ] {
        let r = get(&server.url(path)).await;
        assert_eq!((r.status, r.code()), (404, "SHED_NOT_FOUND"), "{}", r.json);
    }
    let r = post(
        &server.url("/api/sheds/outside/sessions"),
        r#"{"name":"x"}"#,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.json);
    // A second server process scans running sheds at start.
    let second = TestServer::start_sharing(ServerOpts {
        prefix: Some(server.prefix.clone()),
        ..Default::default()
    });
    wait_for_channel(&second, "mine", &["m"]).await;
    let execs = docker(&["inspect", "-f", "{{json .ExecIDs}}", &outside]);
    let _ = Command::new("docker").args(["rm", "-f", &outside]).output();
    assert_eq!(execs, "null", "something ran in the outside container");
}

#[tokio::test]
async fn the_hidden_session_is_never_listed_counted_or_reachable() {
    let server = TestServer::start_with(ServerOpts {
        extra: "max_sessions_per_shed = 2\n".into(),
        ..Default::default()
    });
    make_shed(&server, "h").await;
    make_session(&server, "h", "a").await;
    wait_for_channel(&server, "h", &["a"]).await;
    let container = server.container("h");
    let raw = all_tmux_sessions(&container);
    assert!(
        raw.lines().any(|l| l == "_shed"),
        "no hidden session: {raw}"
    );
    // Not counted: a second session fits under the limit of two.
    make_session(&server, "h", "b").await;
    let (_, names, _) = listing(&server, "h").await;
    assert_eq!(names, ["a", "b"]);
    let all = get(&server.url("/api/sessions")).await;
    let everywhere: Vec<&str> = all.json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(everywhere, ["a", "b"]);

    let base = server.url("/api/sheds/h/sessions/_shed");
    let refused = |r: &common::http::Reply| {
        matches!(
            (r.status, r.code()),
            (400, "INVALID_SESSION_NAME") | (404, "SESSION_NOT_FOUND")
        )
    };
    let r = post(&server.url("/api/sheds/h/sessions"), r#"{"name":"_shed"}"#).await;
    assert_eq!(r.status, 400, "{}", r.json);
    for r in [
        get(&base).await,
        get(&format!("{base}/output")).await,
        post(&format!("{base}/input"), r#"{"text":"exit","enter":true}"#).await,
        delete(&base).await,
    ] {
        assert!(refused(&r), "{} {}", r.status, r.json);
    }
    let raw = all_tmux_sessions(&container);
    assert!(
        raw.lines().any(|l| l == "_shed"),
        "the hidden session was touched: {raw}"
    );
}

#[tokio::test]
async fn a_tmux_without_control_mode_falls_back_to_exec() {
    let server = TestServer::start();
    make_shed(&server, "old").await;
    let container = server.container("old");
    // Every channel attempt fails, plain commands work.
    refuse_control_mode(&container);
    kill_control_clients(&container);
    make_session(&server, "old", "s").await;
    let (fell_back, last) = eventually(CHANNEL_DEADLINE, || async {
        let (status, names, sources) = listing(&server, "old").await;
        assert_eq!((status, &names[..]), (200, &["s".to_string()][..]));
        (sources == ["exec"], sources)
    })
    .await;
    assert!(fell_back, "still answered by {last:?}");
    let input = server.url("/api/sheds/old/sessions/s/input");
    let r = post(&input, r#"{"text":"echo fell-back-$((6*7))","enter":true}"#).await;
    assert_eq!(r.status, 204, "{}", r.json);
    let (seen, last) = eventually(CHANNEL_DEADLINE, || async {
        let r = get(&server.url("/api/sheds/old/sessions/s/output")).await;
        let text = r.json["output"].as_str().unwrap_or("").to_string();
        (
            text.contains("fell-back-42") && r.json["source"] == "exec",
            r.json,
        )
    })
    .await;
    assert!(seen, "{last}");
    let r = delete(&server.url("/api/sheds/old/sessions/s")).await;
    assert_eq!(r.status, 204, "{}", r.json);
    let (_, names, _) = listing(&server, "old").await;
    assert!(names.is_empty());
    assert!(control_clients(&container).is_empty());
}

#[tokio::test]
async fn the_sources_are_exec_with_control_mode_off() {
    let server = TestServer::start_with(ServerOpts {
        extra: "control_mode = false\n".into(),
        ..Default::default()
    });
    make_shed(&server, "off").await;
    make_session(&server, "off", "s").await;
    let (_, names, sources) = listing(&server, "off").await;
    assert_eq!(
        (names, sources),
        (vec!["s".to_string()], vec!["exec".to_string()])
    );
    let r: Value = get(&server.url("/api/sheds/off/sessions/s/output"))
        .await
        .json;
    assert_eq!(r["source"], "exec");
    assert!(control_clients(&server.container("off")).is_empty());
}
