//! `shed inbox`, `shed wait`, `shed sessions explain` and `shed watch
//! --notify` against scripted fake servers whose sessions' agent states
//! the tests control (no Docker): order, exit codes, partial failure,
//! hostile text, event-stream resume, and notifications.

mod common;

use std::io::Read;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use common::fake_api::FakeApi;
use common::*;
use serde_json::{json, Value};

/// Longest any one CLI run may take here.
const LIMIT: Duration = Duration::from_secs(20);

/// `shed wait` for `demo`/`agent` to be waiting.
const WAIT_FOR_WAITING: [&str; 5] = ["wait", "demo", "agent", "--for", "waiting"];

fn session(shed: &str, name: &str, state: &str, since: &str, reason: &str) -> Value {
    json!({
        "name": name, "shed": shed, "server": "fake",
        "created_at": "2026-01-01T00:00:00Z", "last_activity": "2026-01-01T00:00:00Z",
        "idle_seconds": 5, "attached": 0, "windows": 1, "current_command": "claude",
        "cwd": "/workspace", "status": "idle",
        "agent": {"kind": "claude", "state": state, "since": since,
                  "source": "reported", "reason": reason},
    })
}

fn agent(state: &str) -> Value {
    json!({"kind": "claude", "state": state, "since": "2026-01-01T00:10:00Z",
           "source": "reported", "reason": format!("reported {state}")})
}

fn shed(name: &str) -> Value {
    json!({"name": name, "status": "running", "created_at": "2026-01-01T00:00:00Z",
           "image": "img", "repo": null, "container_id": "c0ffee", "server": "fake"})
}

fn output(shed: &str, name: &str, text: &str) -> Value {
    json!({"session": name, "shed": shed, "output": text})
}

/// A CLI configured with `servers` (name, port); the first is the default.
fn cli_with(servers: &[(&str, u16)]) -> Cli {
    let cli = Cli::new();
    let mut config = format!("default_server = \"{}\"\n", servers[0].0);
    for (name, port) in servers {
        config.push_str(&format!(
            "[servers.{name}]\nhost = \"127.0.0.1\"\nhttp_port = {port}\nssh_port = 2299\n"
        ));
    }
    std::fs::write(cli.config_path(), config).unwrap();
    cli
}

/// No terminal control character at all but newlines.
fn assert_no_controls(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(bad.is_empty(), "{what} has {bad:?}:\n{text}");
}

/// Two servers: `a` with a waiting, an idle and a working session; `b`
/// with an older waiting one and an exited one. Screens carry escapes.
fn two_servers() -> (FakeApi, FakeApi) {
    let a = FakeApi::bare(None);
    a.route(
        "GET /api/sessions",
        200,
        json!({"sessions": [
            session("web", "newer", "waiting", "2026-01-01T00:05:00Z", "permission menu"),
            session("web", "resting", "idle", "2026-01-01T00:00:00Z", "quiet"),
            session("web", "busy", "working", "2026-01-01T00:00:00Z", "output"),
        ], "warnings": []}),
    );
    a.route(
        "GET /api/sheds/web/sessions/newer/output",
        200,
        output(
            "web",
            "newer",
            "old line\nDo you want to proceed?\x1b]52;c;cHduZWQ=\x07\n\n 1. Yes\x1b[31m \n 2. No\n\n\n",
        ),
    );
    let b = FakeApi::bare(None);
    b.route(
        "GET /api/sessions",
        200,
        json!({"sessions": [
            session("api", "older", "waiting", "2026-01-01T00:01:00Z", "bell\x1b[2J"),
            session("api", "done", "exited", "2026-01-01T00:02:00Z", "exit"),
        ], "warnings": []}),
    );
    b.route(
        "GET /api/sheds/api/sessions/older/output",
        200,
        output("api", "older", "Allow edit?\u{9b}2J\u{202e}"),
    );
    b.route(
        "GET /api/sheds/api/sessions/done/output",
        200,
        output("api", "done", "bye\n"),
    );
    (a, b)
}

#[test]
fn inbox_lists_waiting_first_oldest_first_across_servers() {
    let (a, b) = two_servers();
    let cli = cli_with(&[("a", a.port), ("b", b.port)]);
    let out = cli.run(&["inbox"]);
    let (stdout, stderr) = exited(&out, 0);
    assert_no_controls("stdout", &stdout);
    assert_no_controls("stderr", &stderr);
    let order: Vec<usize> = ["older", "newer", "done", "resting"]
        .iter()
        .map(|name| stdout.find(&format!(" {name} ")).expect(name))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    assert!(!stdout.contains("busy"), "{stdout}");
    assert!(stdout.contains("| Do you want to proceed?"), "{stdout}");
    assert!(stdout.contains("| 1. Yes\n"), "{stdout}");
    assert!(
        !stdout.contains("old line"),
        "only the last 3 lines:\n{stdout}"
    );
    assert!(stdout.contains("| Allow edit?\n"), "{stdout}");
    assert!(stdout.contains("shed -s b attach api -S older"), "{stdout}");
    assert!(
        stdout.contains("shed -s a attach web -S resting"),
        "{stdout}"
    );

    let out = cli.run(&["inbox", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_no_controls("json", &text);
    let doc: Value = serde_json::from_str(&text).unwrap();
    let rows = doc["sessions"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["session"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["older", "newer", "done", "resting"]);
    assert_eq!(rows[0]["server"], "b");
    assert_eq!(rows[0]["state"], "waiting");
    assert_eq!(rows[0]["attach"], "shed -s b attach api -S older");
    assert_eq!(
        rows[1]["lines"],
        json!(["Do you want to proceed?", "1. Yes", "2. No"])
    );
    assert_eq!(rows[3]["lines"], json!([]));
    assert_eq!(doc["errors"], json!([]));

    let out = cli.run(&["inbox", "-q"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    // -s asks that server only.
    let out = cli.run(&["-s", "a", "inbox", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn inbox_exit_codes_say_whether_anything_waits() {
    let idle = FakeApi::bare(None);
    idle.route(
        "GET /api/sessions",
        200,
        json!({"sessions": [session("web", "resting", "idle", "2026-01-01T00:00:00Z", "quiet")],
               "warnings": []}),
    );
    let cli = cli_with(&[("idle", idle.port)]);
    let out = cli.run(&["inbox"]);
    let (stdout, _) = exited(&out, 1);
    assert!(stdout.contains("Nothing waits for you"), "{stdout}");
    assert!(stdout.contains("shed attach web -S resting"), "{stdout}");

    // Nothing waits among the answers, a server is down: unknown, 3.
    cli.add_unreachable_server("down");
    let stdout = cli.partial(&["inbox"]);
    assert!(stdout.contains("resting"), "{stdout}");
    let doc = cli.partial_json(&["inbox", "--json"]);
    assert_eq!(doc["sessions"][0]["session"], "resting");

    // Something waits: 0 even with a server down, which is still named.
    let (a, _b) = two_servers();
    let cli = cli_with(&[("a", a.port)]);
    cli.add_unreachable_server("down");
    let out = cli.run(&["inbox"]);
    let (_, stderr) = exited(&out, 0);
    assert!(stderr.contains("\"down\""), "{stderr}");

    // No server answers at all: 2, not "nothing waits".
    let cli = Cli::new();
    cli.add_unreachable_server("down");
    let out = cli.run(&["inbox"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
    let out = Cli::new().run(&["inbox"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
}

/// A server with shed `demo` and its session `agent` in `state`.
fn one_session(state: &str) -> FakeApi {
    let fake = FakeApi::bare(None);
    fake.route("GET /api/sheds/demo", 200, shed("demo"));
    set_state(&fake, state);
    fake
}

fn set_state(fake: &FakeApi, state: &str) {
    fake.route(
        "GET /api/sheds/demo/sessions/agent",
        200,
        session("demo", "agent", state, "2026-01-01T00:00:00Z", "reported"),
    );
}

fn spawn(cli: &Cli, args: &[&str]) -> Child {
    cli.command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` to end within [`LIMIT`] (killing it if not) and
/// returns its output.
fn finish(mut child: Child) -> Output {
    let ended = wait_until(LIMIT, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(ended, "still running: {:?}", texts(&out));
    out
}

/// Runs `args` in the background once `fake` serves events, and waits
/// until it follows them.
fn following(fake: &FakeApi, cli: &Cli, args: &[&str]) -> Child {
    let child = spawn(cli, args);
    assert!(wait_until(LIMIT, || fake.event_requests().len() == 1));
    child
}

/// Asserts that `out` exited with `code`; returns its stdout and stderr.
fn exited(out: &Output, code: i32) -> (String, String) {
    let (stdout, stderr) = texts(out);
    assert_eq!(out.status.code(), Some(code), "{stdout}{stderr}");
    (stdout, stderr)
}

/// Publishes a `session.changed` of `shed`/`session` carrying `data`.
fn changed(fake: &FakeApi, shed: &str, session: &str, data: Value) -> u64 {
    fake.push_event("session.changed", shed, Some(session), data)
}

#[test]
fn wait_returns_at_once_when_the_state_already_holds() {
    let fake = one_session("waiting");
    let cli = cli_with(&[("box", fake.port)]);
    let out = cli.run(&WAIT_FOR_WAITING);
    let (stdout, _) = exited(&out, 0);
    assert_eq!(stdout, "demo/agent: waiting (reported)\n");
    assert!(fake.event_requests().is_empty());
}

#[test]
fn wait_follows_events_until_the_state_is_reached() {
    let fake = one_session("working");
    let cli = cli_with(&[("box", fake.port)]);
    let child = following(&fake, &cli, &WAIT_FOR_WAITING);
    // Other sessions, other sheds, other fields, other states: not it.
    let mut decoy = agent("waiting");
    decoy["reason"] = json!("decoy");
    changed(&fake, "demo", "other", json!({"agent": decoy}));
    changed(&fake, "else", "agent", json!({"agent": decoy}));
    changed(&fake, "demo", "agent", json!({"windows": 2}));
    changed(&fake, "demo", "agent", json!({"agent": agent("idle")}));
    changed(&fake, "demo", "agent", json!({"agent": agent("waiting")}));
    let out = finish(child);
    let (stdout, _) = exited(&out, 0);
    assert_eq!(stdout, "demo/agent: waiting (reported waiting)\n");
}

#[test]
fn wait_for_any_fires_on_the_first_real_change() {
    let fake = one_session("working");
    let cli = cli_with(&[("box", fake.port)]);
    let child = following(&fake, &cli, &["wait", "demo", "agent", "--for", "any"]);
    // Same state, new reason: not a change of state.
    changed(&fake, "demo", "agent", json!({"agent": agent("working")}));
    changed(&fake, "demo", "agent", json!({"agent": agent("idle")}));
    let out = finish(child);
    let (stdout, _) = exited(&out, 0);
    assert_eq!(stdout, "demo/agent: idle (reported idle)\n");
}

#[test]
fn wait_times_out_with_124() {
    let fake = one_session("working");
    let cli = cli_with(&[("box", fake.port)]);
    let wait = |timeout| cli.run(&[&WAIT_FOR_WAITING[..], &["--timeout", timeout]].concat());
    let (_, stderr) = exited(&wait("1s"), 124);
    assert!(stderr.contains("timed out after 1s"), "{stderr}");
    assert_eq!(wait("soon").status.code(), Some(2));
}

#[test]
fn wait_exits_1_when_the_session_is_gone() {
    let fake = one_session("working");
    let cli = cli_with(&[("box", fake.port)]);
    let child = following(&fake, &cli, &WAIT_FOR_WAITING);
    fake.push_event("session.closed", "demo", Some("agent"), json!({}));
    let out = finish(child);
    let (_, stderr) = exited(&out, 1);
    assert!(stderr.contains("is gone: it was closed"), "{stderr}");

    // Already gone at the start.
    fake.route(
        "GET /api/sheds/demo/sessions/agent",
        404,
        json!({"error": {"code": "SESSION_NOT_FOUND", "message": "no session agent"}}),
    );
    let out = cli.run(&WAIT_FOR_WAITING);
    let (_, stderr) = exited(&out, 1);
    assert!(stderr.contains("is gone: no such session"), "{stderr}");
}

#[test]
fn wait_resumes_a_dropped_stream_with_last_event_id() {
    let fake = one_session("working");
    let cli = cli_with(&[("box", fake.port)]);
    let child = following(&fake, &cli, &WAIT_FOR_WAITING);
    let first = changed(&fake, "demo", "agent", json!({"windows": 2}));
    fake.drop_streams();
    assert!(wait_until(LIMIT, || fake.event_requests().len() == 2));
    // Published after the client came back: only a resumed stream has it,
    // since the session itself still reads `working`.
    changed(&fake, "demo", "agent", json!({"agent": agent("waiting")}));
    let out = finish(child);
    exited(&out, 0);
    let requests = fake.event_requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[1]
            .to_ascii_lowercase()
            .contains(&format!("last-event-id: {first}\r\n")),
        "{}",
        requests[1]
    );
}

#[test]
fn wait_rereads_the_session_on_resync() {
    let fake = one_session("working");
    let cli = cli_with(&[("box", fake.port)]);
    let child = following(&fake, &cli, &["wait", "demo", "agent", "--for", "exited"]);
    set_state(&fake, "exited");
    fake.push_event("resync", "", None, json!({}));
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));
}

#[test]
fn explain_prints_source_rule_line_and_times() {
    let fake = one_session("waiting");
    let decided = json!({"kind": "claude", "state": "waiting", "since": "2026-01-01T00:07:00Z",
        "source": "screen", "reason": "screen rule claude/permission-menu (rules 1)"});
    fake.route(
        "GET /api/sheds/demo/sessions/agent/agent",
        200,
        json!({
            "shed": "demo", "session": "agent", "agent": decided, "decided_by": "%3",
            "panes": [{"pane": "%3", "window_index": 0, "command": "claude", "agent": decided,
                "rule": {"rule": "claude/permission-menu", "version": "1",
                         "line": "Do you want to proceed?\u{1b}]0;owned\u{7}"},
                "last_output": "2026-01-01T00:06:59Z", "evaluated_at": "2026-01-01T00:08:00Z"}],
            "rules_version": "1",
        }),
    );
    let cli = cli_with(&[("box", fake.port)]);
    let out = cli.run(&["sessions", "explain", "demo", "agent"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_no_controls("stdout", &stdout);
    for want in [
        "state:     waiting (claude)",
        "since:     2026-01-01 00:07:00 UTC",
        "source:    screen",
        "rule:      claude/permission-menu (rules 1)",
        "line:      \"Do you want to proceed?\"",
        "output:    2026-01-01 00:06:59 UTC",
        "evaluated: 2026-01-01 00:08:00 UTC",
    ] {
        assert!(stdout.contains(want), "{want:?} in\n{stdout}");
    }
    let out = cli.run(&["sessions", "explain", "demo", "agent", "--json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_no_controls("json", &text);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["panes"][0]["rule"]["rule"], "claude/permission-menu");

    // A server that answers about another session is not believed.
    fake.route(
        "GET /api/sheds/demo/sessions/agent/agent",
        200,
        json!({"shed": "demo", "session": "other", "agent": decided, "panes": [],
               "rules_version": "1"}),
    );
    let out = cli.run(&["sessions", "explain", "demo", "agent"]);
    let (_, stderr) = exited(&out, 1);
    assert!(stderr.contains("answered about"), "{stderr}");

    // A server from before agent states.
    fake.route(
        "GET /api/sheds/demo/sessions/agent/agent",
        404,
        json!({"error": {"code": "NOT_FOUND", "message": "no route"}}),
    );
    let out = cli.run(&["sessions", "explain", "demo", "agent"]);
    let (_, stderr) = exited(&out, 1);
    assert!(stderr.contains("cannot explain agent states"), "{stderr}");
}

#[test]
fn watch_notify_fires_once_per_change_to_waiting_or_exited() {
    let fake = FakeApi::bare(None);
    let list = |a: &str, b: &str| {
        json!({"sessions": [
            session("demo", "one", a, "2026-01-01T00:00:00Z", "r\u{1b}]0;x\u{7}"),
            session("demo", "two", b, "2026-01-01T00:00:00Z", "r"),
        ], "warnings": []})
    };
    // Already waiting at the start: not news.
    fake.route("GET /api/sessions", 200, list("waiting", "working"));
    let cli = cli_with(&[("box", fake.port)]);
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("calls");
    let script = bin.path().join("notify-send");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s|' \"$a\"; done >> '{}'\necho >> '{}'\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = cli
        .command(&["watch", "--notify"])
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lists = || {
        fake.requests()
            .iter()
            .filter(|r| r.starts_with("GET /api/sessions "))
            .count()
    };
    let calls = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert!(wait_until(LIMIT, || lists() == 1));
    // one: waiting -> working -> waiting (news); two: working -> exited (news).
    fake.route("GET /api/sessions", 200, list("working", "working"));
    changed(&fake, "demo", "one", json!({"agent": agent("working")}));
    assert!(wait_until(LIMIT, || lists() == 2));
    fake.route("GET /api/sessions", 200, list("waiting", "working"));
    changed(&fake, "demo", "one", json!({"agent": agent("waiting")}));
    assert!(wait_until(LIMIT, || calls().len() == 1), "{:?}", calls());
    // Still waiting: a change of something else is no news.
    changed(&fake, "demo", "one", json!({"windows": 3}));
    assert!(wait_until(LIMIT, || lists() == 4));
    fake.route("GET /api/sessions", 200, list("waiting", "exited"));
    changed(&fake, "demo", "two", json!({"agent": agent("exited")}));
    assert!(wait_until(LIMIT, || calls().len() == 2), "{:?}", calls());
    // SIGINT ends the watch cleanly.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let ended = wait_until(LIMIT, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
    }
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(ended, "{stdout}");
    let calls = calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let one = calls.iter().find(|c| c.contains("demo/one")).expect("one");
    assert!(
        one.starts_with("--app-name=shed|--|shed: demo/one is waiting for you|claude on box: r"),
        "{one}"
    );
    assert!(
        calls.iter().any(|c| c.contains("shed: demo/two exited|")),
        "{calls:?}"
    );
    assert_no_controls("notification", &calls.join("\n"));
    assert!(stdout.contains("agent waiting"), "{stdout}");
}

#[test]
fn sessions_new_wait_for_waits_after_starting() {
    let fake = one_session("working");
    fake.route(
        "POST /api/sheds/demo/sessions",
        201,
        session(
            "demo",
            "agent",
            "working",
            "2026-01-01T00:00:00Z",
            "started",
        ),
    );
    let cli = cli_with(&[("box", fake.port)]);
    let child = spawn(
        &cli,
        &[
            "sessions",
            "new",
            "demo",
            "agent",
            "--wait-for",
            "waiting",
            "--",
            "claude",
        ],
    );
    assert!(wait_until(LIMIT, || fake.event_requests().len() == 1));
    changed(&fake, "demo", "agent", json!({"agent": agent("waiting")}));
    let out = finish(child);
    let (stdout, _) = exited(&out, 0);
    assert!(stdout.starts_with("Started session agent"), "{stdout}");
    assert!(
        stdout.ends_with("demo/agent: waiting (reported waiting)\n"),
        "{stdout}"
    );
}
