//! Notifications over real sockets: synthetic agent events go into an
//! `EventBus`, the dispatcher runs as in the server, and a receiver on
//! 127.0.0.1 (or a real command) sees what comes out.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::receiver::{signature_ok, Receiver};
use common::*;
use serde_json::{json, Value};
use shed::api::agent::{AgentInfo, AgentKind, AgentState};
use shed::api::events::EventKind;
use shed::server::events::EventBus;
use shed::server::notify::{self, NotifyConfig, NotifyKind};

const SECRET: &str = "test-secret-0123456789";
/// How long a delivery may take to show up.
const WAIT: Duration = Duration::from_secs(20);

fn agent(state: AgentState) -> Value {
    serde_json::to_value(AgentInfo {
        kind: AgentKind::Claude,
        state,
        reason: "reported by the agent".into(),
        exit_code: (state == AgentState::Exited).then_some(3),
        ..AgentInfo::default()
    })
    .unwrap()
}

fn set_state(bus: &EventBus, session: &str, state: AgentState) -> u64 {
    bus.publish(
        EventKind::SessionChanged,
        "dev",
        Some(session),
        json!({ "agent": agent(state) }),
    )
}

fn created(bus: &EventBus, session: &str) {
    bus.publish(
        EventKind::SessionCreated,
        "dev",
        Some(session),
        json!({ "name": session, "attached": 0, "agent": agent(AgentState::Working) }),
    );
}

fn fast(mut config: NotifyConfig) -> NotifyConfig {
    config.min_hold_secs = 1;
    config.min_interval_secs = 0;
    config.timeout_secs = 5;
    config
}

/// A command target running `script` by `/bin/sh -c`, with `out` as its
/// `$1`, sending at once. argv, no shell of ours: the script is just a
/// program with arguments.
fn command_target(script: &str, out: &std::path::Path) -> NotifyConfig {
    let mut config = fast(NotifyConfig::webhook("http://unused.invalid/", SECRET));
    config.kind = NotifyKind::Command;
    config.url = None;
    config.secret = None;
    config.min_hold_secs = 0;
    config.command = vec![
        "/bin/sh".into(),
        "-c".into(),
        script.into(),
        "notify-test".into(),
        out.display().to_string(),
    ];
    config
}

/// Waits until the receiver has `n` requests that answered 200.
async fn delivered(receiver: &Receiver, n: usize) -> Vec<common::receiver::Received> {
    let (ok, got) = eventually(WAIT, || async {
        let got = receiver.got();
        let ok = got.iter().filter(|r| r.status == 200).count() >= n;
        (ok, got)
    })
    .await;
    assert!(ok, "expected {n} deliveries, got {got:#?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_signed_debounced_retried_and_never_duplicated() {
    let receiver = Receiver::start().await;
    let bus = Arc::new(EventBus::new(256));
    let config = fast(NotifyConfig::webhook(&receiver.url("/hook"), SECRET));
    let task = notify::spawn(&[config], "srv", bus.clone())
        .unwrap()
        .expect("a dispatcher");
    receiver.answer_next("a", 500);

    created(&bus, "a");
    // A flap shorter than the hold: nothing.
    set_state(&bus, "a", AgentState::Waiting);
    set_state(&bus, "a", AgentState::Working);
    // A real change, then the stream repeating it: one notification.
    let waiting = set_state(&bus, "a", AgentState::Waiting);
    for _ in 0..5 {
        set_state(&bus, "a", AgentState::Waiting);
    }
    let got = delivered(&receiver, 1).await;
    // The first attempt got 500 and was retried with the same id.
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].status, 500);
    assert_eq!(
        got[0].header("X-Shed-Delivery"),
        got[1].header("X-Shed-Delivery")
    );
    let hit = &got[1];
    assert!(signature_ok(hit, SECRET.as_bytes()), "{hit:#?}");
    assert!(!signature_ok(hit, b"another-secret"));
    assert_eq!(hit.header("content-type"), "application/json");
    let body = hit.json();
    assert_eq!(body["server"], "srv");
    assert_eq!(body["shed"], "dev");
    assert_eq!(body["session"], "a");
    assert_eq!(body["event_id"], waiting);
    assert_eq!(body["agent"]["kind"], "claude");
    assert_eq!(body["agent"]["state"], "waiting");
    assert_eq!(body["title"], "claude is waiting in dev/a");
    assert_eq!(body["id"], hit.header("X-Shed-Delivery"));

    // A sentinel on another session: one target's deliveries go out in
    // order, so once it is in, a duplicate or a late flap for `a` (due
    // earlier) would be in too.
    created(&bus, "b");
    set_state(&bus, "b", AgentState::Exited);
    let got = delivered(&receiver, 2).await;
    let sessions: Vec<_> = got
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["session"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sessions, ["a", "b"], "{got:#?}");
    assert_eq!(got.last().unwrap().json()["agent"]["exit_code"], 3);

    bus.close();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the dispatcher ends when the bus closes")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_not_retried() {
    let receiver = Receiver::start().await;
    let bus = Arc::new(EventBus::new(256));
    let mut config = fast(NotifyConfig::webhook(&receiver.url("/hook"), SECRET));
    config.min_hold_secs = 0;
    let _task = notify::spawn(&[config], "srv", bus.clone()).unwrap();
    receiver.answer_next("a", 400);
    receiver.answer_next("a", 400);
    set_state(&bus, "a", AgentState::Waiting);
    set_state(&bus, "b", AgentState::Waiting);
    // `b` waits behind `a`'s attempts, retries included.
    let got = delivered(&receiver, 1).await;
    let statuses: Vec<_> = got
        .iter()
        .map(|r| (r.json()["session"].clone(), r.status))
        .collect();
    assert_eq!(statuses, [(json!("a"), 400), (json!("b"), 200)], "{got:#?}");
    bus.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_gets_plain_text_with_title_and_priority() {
    let receiver = Receiver::start().await;
    let bus = Arc::new(EventBus::new(256));
    let mut config = fast(NotifyConfig::webhook(&receiver.url("/shed-topic"), SECRET));
    config.kind = NotifyKind::Ntfy;
    config.secret = None;
    config.min_hold_secs = 0;
    let _task = notify::spawn(&[config], "srv", bus.clone()).unwrap();
    created(&bus, "a");
    set_state(&bus, "a", AgentState::Waiting);
    let got = delivered(&receiver, 1).await;
    let hit = &got[0];
    assert_eq!(hit.header("Title"), "claude is waiting in dev/a");
    assert_eq!(hit.header("Priority"), "high");
    assert_eq!(hit.header("Tags"), "shed,waiting");
    assert!(hit.header("content-type").starts_with("text/plain"));
    assert!(hit.header("X-Shed-Signature-256").is_empty());
    let text = String::from_utf8(hit.body.clone()).unwrap();
    assert!(text.starts_with("claude is waiting in dev/a\n"), "{text}");
    bus.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_gets_the_json_on_stdin_and_shed_variables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("payload.json");
    let bus = Arc::new(EventBus::new(256));
    let config = command_target(
        "cat > \"$1.tmp\" && printf '%s %s %s' \"$SHED_SHED\" \"$SHED_SESSION\" \"$SHED_AGENT_STATE\" > \"$1.env\" && mv \"$1.tmp\" \"$1\"",
        &out,
    );
    let _task = notify::spawn(&[config], "srv", bus.clone()).unwrap();
    set_state(&bus, "a", AgentState::Exited);
    let (ok, _) = eventually(WAIT, || async { (out.exists(), ()) }).await;
    assert!(ok, "the command never wrote {}", out.display());
    let body: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(body["session"], "a");
    assert_eq!(body["agent"]["state"], "exited");
    assert_eq!(body["agent"]["exit_code"], 3);
    let env = std::fs::read_to_string(format!("{}.env", out.display())).unwrap();
    assert_eq!(env, "dev a exited");
    bus.close();
}

#[tokio::test(flavor = "current_thread")]
async fn a_lagging_dispatcher_goes_on() {
    let receiver = Receiver::start().await;
    // A tiny bus, flooded without yielding: the dispatcher's subscription lags.
    let bus = Arc::new(EventBus::new(4));
    let mut config = fast(NotifyConfig::webhook(&receiver.url("/hook"), SECRET));
    config.min_hold_secs = 0;
    let task = notify::spawn(&[config], "srv", bus.clone())
        .unwrap()
        .unwrap();
    for i in 0..100 {
        bus.publish(
            EventKind::SessionChanged,
            "dev",
            Some("noise"),
            json!({ "cwd": format!("/{i}") }),
        );
    }
    tokio::task::yield_now().await;
    set_state(&bus, "a", AgentState::Waiting);
    let got = delivered(&receiver, 1).await;
    assert_eq!(got[0].json()["session"], "a");
    assert!(!task.is_finished());
    bus.close();
}

/// Kills a process by id when the test ends, passed or not.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(pid) = self.0.parse::<i32>() {
            // SAFETY: only sends a signal.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_hangs_is_killed_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("done");
    let bus = Arc::new(EventBus::new(256));
    let mut config = command_target(
        // The slow one's sleep is a grandchild: the kill must reach it too.
        "if [ \"$SHED_SESSION\" = slow ]; then sleep 600 & echo $! > \"$1.pid\"; wait; fi; \
         echo \"$SHED_SESSION\" > \"$1\"",
        &out,
    );
    config.timeout_secs = 1;
    config.retries = 0;
    let _task = notify::spawn(&[config], "srv", bus.clone()).unwrap();
    set_state(&bus, "slow", AgentState::Waiting);
    set_state(&bus, "quick", AgentState::Waiting);
    // One target runs one command at a time: `quick` runs only once `slow`
    // was killed, well before its sleep would end.
    let (ok, _) = eventually(WAIT, || async { (out.exists(), ()) }).await;
    assert!(ok, "the hanging command was not killed");
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "quick");
    let pid = std::fs::read_to_string(format!("{}.pid", out.display())).unwrap();
    let _reap = KillOnDrop(pid.trim().to_string());
    let stat = format!("/proc/{}/stat", pid.trim());
    // Gone, or a zombie waiting for a reaper: either way not sleeping.
    let (dead, last) = eventually(WAIT, || async {
        let stat = std::fs::read_to_string(&stat).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        (matches!(state, None | Some('Z') | Some('X')), stat)
    })
    .await;
    assert!(dead, "the command's child is still running: {last}");
    bus.close();
}
