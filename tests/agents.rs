//! Agent state (issue 12) against real Docker and real tmux: the fake
//! agents of the test image (`docker/fake-agent.sh`) report, exit, ring the
//! bell and draw busy screens, and the sessions, the explain route and the
//! event stream follow. Screen-rule assertions are left to the rules data's
//! own tests (the shipped rules match nothing yet); the screen path is
//! unit-tested with a rules double in `src/server/agent/detect.rs`.

mod common;

use std::time::Duration;

use common::http::{get, post};
use common::*;
use serde_json::Value;

/// How long a state may take: tmux reports once a second, the quiet
/// period is five, and a loaded CI machine is slow.
const STATE_WAIT: Duration = Duration::from_secs(60);

/// A server that follows sheds over control channels, whatever
/// `SHED_TEST_CONTROL_MODE` says: the engine lives on the channel.
fn channel_server() -> TestServer {
    TestServer::start_with_config("control_mode = true\n")
}

async fn create_session(server: &TestServer, shed: &str, name: &str, command: &str) {
    let body = serde_json::json!({ "name": name, "command": command }).to_string();
    let r = post(&server.url(&format!("/api/sheds/{shed}/sessions")), &body).await;
    assert_eq!(r.status, 201, "{}", r.json);
}

/// Makes shed `name` and waits until its control channel serves it (a
/// first session listed with `source: channel`): the engine runs there,
/// and a channel that opens late would miss the transitions a test makes.
async fn make_channel_shed(server: &TestServer, name: &str) {
    make_shed(server, name).await;
    create_session(server, name, "probe", "exec sleep 3600").await;
    let url = server.url(&format!("/api/sheds/{name}/sessions/probe"));
    let (ok, last) = eventually(STATE_WAIT, || async {
        let r = get(&url).await;
        (r.json["source"] == "channel", r.json)
    })
    .await;
    assert!(
        ok,
        "{name}: no control channel within {STATE_WAIT:?}; {last:#}"
    );
}

/// Waits until the session's `agent` satisfies `want`; returns it.
async fn agent_until(
    server: &TestServer,
    shed: &str,
    session: &str,
    what: &str,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let url = server.url(&format!("/api/sheds/{shed}/sessions/{session}"));
    let (ok, agent) = eventually(STATE_WAIT, || async {
        let r = get(&url).await;
        assert_eq!(r.status, 200, "{}", r.json);
        (want(&r.json["agent"]), r.json)
    })
    .await;
    assert!(
        ok,
        "{session}: no {what} within {STATE_WAIT:?}; last {agent:#}"
    );
    agent["agent"].clone()
}

fn explain_url(server: &TestServer, shed: &str, session: &str) -> String {
    server.url(&format!("/api/sheds/{shed}/sessions/{session}/agent"))
}

#[tokio::test]
async fn reports_exits_and_bells_decide_and_are_explained() {
    let server = channel_server();
    make_channel_shed(&server, "ag").await;
    let mut events = Events::open(&server.url("/api/events?shed=ag"), &[]).await;
    create_session(
        &server,
        "ag",
        "rep",
        "/opt/fake-agents/claude busy:3 resume-id:conv-42 report:waiting",
    )
    .await;
    create_session(
        &server,
        "ag",
        "ex",
        "/opt/fake-agents/codex print:bye exit:3",
    )
    .await;
    create_session(&server, "ag", "bel", "/opt/fake-agents/claude bell prompt").await;

    // A hook's report: waiting, said by the agent, with its conversation id.
    let agent = agent_until(&server, "ag", "rep", "report", |a| {
        a["source"] == "reported"
    })
    .await;
    assert_eq!(agent["state"], "waiting");
    assert_eq!(agent["kind"], "claude");
    assert_eq!(agent["reason"], "reported @shed_state=waiting");
    assert_eq!(agent["resume_id"], "conv-42");
    // It came after the session was made, so the stream told of it.
    let seen = events
        .until("rep's reported agent", |g| {
            g.kind == "session.changed"
                && g.json["session"] == "rep"
                && g.json["data"]["agent"]["source"] == "reported"
        })
        .await;
    let created = seen
        .iter()
        .find(|g| g.kind == "session.created" && g.json["session"] == "rep")
        .expect("rep's session.created");
    // The creation already names the agent, from the start command.
    let agent = &created.json["data"]["agent"];
    assert_eq!(agent["kind"], "claude", "{created:?}");

    // Exit with status 3: exited, the status, the kind from the start command.
    // tmux learns the status a moment after it marks the pane dead. (A
    // command that exits after reading from its terminal for a while,
    // `busy:2 exit:3`, sometimes never gets one from tmux 3.3a at all, shed
    // or not, so this one exits straight after its output.)
    let exited = |a: &Value| a["state"] == "exited" && !a["exit_code"].is_null();
    let agent = agent_until(&server, "ag", "ex", "exit", exited).await;
    assert_eq!(agent["source"], "exit");
    assert_eq!(agent["exit_code"], 3);
    assert_eq!(agent["kind"], "codex");
    assert_eq!(agent["reason"], "pane exited with status 3");
    let r = get(&explain_url(&server, "ag", "ex")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["agent"]["exit_code"], 3);
    assert_eq!(r.json["panes"].as_array().map(Vec::len), Some(1));
    let pane = &r.json["panes"][0];
    assert_eq!(r.json["decided_by"], pane["pane"]);
    assert!(pane["pane"].as_str().unwrap().starts_with('%'));
    assert!(pane["evaluated_at"].is_string(), "{pane:#}");
    assert_eq!(pane["agent"]["reason"], "pane exited with status 3");

    // A bell: waiting until input moves the pane on.
    let agent = agent_until(&server, "ag", "bel", "bell", |a| a["source"] == "bell").await;
    assert_eq!(agent["state"], "waiting");
    assert_eq!(agent["reason"], "bell");
    let r = post(
        &server.url("/api/sheds/ag/sessions/bel/input"),
        r#"{"text":"ok","enter":true}"#,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.json);
    agent_until(&server, "ag", "bel", "the bell's end", |a| {
        a["source"] != "bell"
    })
    .await;

    // Unknown names and stopped sheds get their errors.
    let r = get(&explain_url(&server, "ag", "nope")).await;
    assert_eq!((r.status, r.code()), (404, "SESSION_NOT_FOUND"));
    let r = post(&server.url("/api/sheds/ag/stop"), "").await;
    assert_eq!(r.status, 200, "{}", r.json);
    let r = get(&explain_url(&server, "ag", "rep")).await;
    assert_eq!((r.status, r.code()), (409, "SHED_NOT_RUNNING"));
}

/// Copies the fake agent to `~/spinner`, a name no rule knows.
const SPINNER: &str = "cp /opt/fake-agents/claude ~/spinner";

#[tokio::test]
async fn a_busy_screen_is_working_without_flip_flop() {
    let server = channel_server();
    make_channel_shed(&server, "busy").await;
    let mut events = Events::open(&server.url("/api/events?shed=busy"), &[]).await;
    // A copy under a name no rule knows, run by bash: the pane is a shell
    // to the kind rules, so no screen rule can decide and activity alone does.
    create_session(
        &server,
        "busy",
        "spin",
        &format!("{SPINNER}; bash ~/spinner busy:12 print:done exit:0"),
    )
    .await;
    let working = events
        .until("working", |g| {
            g.kind == "session.changed"
                && g.json["session"] == "spin"
                && g.json["data"]["agent"]["state"] == "working"
        })
        .await;
    let event = &working.last().unwrap().json["data"]["agent"];
    assert_eq!(event["source"], "activity");
    assert_eq!(event["reason"], "output activity");
    let agent = agent_until(&server, "busy", "spin", "working", |a| {
        a["state"] == "working" || a["state"] == "exited"
    })
    .await;
    assert_eq!(agent["state"], "working", "{agent:#}");
    // While it spins it stays working: no flip-flop in the stream.
    let until_exit = events
        .until("exited", |g| {
            g.kind == "session.changed"
                && g.json["session"] == "spin"
                && g.json["data"]["agent"]["state"] == "exited"
        })
        .await;
    let states: Vec<&Value> = until_exit
        .iter()
        .filter(|g| g.json["session"] == "spin")
        .filter_map(|g| g.json["data"].get("agent"))
        .map(|a| &a["state"])
        .collect();
    assert_eq!(states.last().copied(), Some(&Value::from("exited")));
    assert!(
        states.iter().all(|s| *s == "exited" || *s == "working"),
        "flip-flop while busy: {states:?}"
    );
}

#[tokio::test]
async fn a_quiet_pane_turns_idle_by_time_alone() {
    let server = channel_server();
    make_channel_shed(&server, "quiet").await;
    let mut events = Events::open(&server.url("/api/events?shed=quiet"), &[]).await;
    create_session(
        &server,
        "quiet",
        "spin",
        &format!("{SPINNER}; bash ~/spinner busy:4 print:done prompt"),
    )
    .await;
    events
        .until("working", |g| {
            g.json["session"] == "spin" && g.json["data"]["agent"]["state"] == "working"
        })
        .await;
    // Nothing reaches tmux after the prompt is drawn: only the tick can
    // notice the quiet.
    let idle = events
        .until("idle", |g| {
            g.json["session"] == "spin" && g.json["data"]["agent"]["state"] == "idle"
        })
        .await;
    let agent = &idle.last().unwrap().json["data"]["agent"];
    assert_eq!(agent["source"], "activity");
    assert_eq!(agent["reason"], "quiet for 5s");
    let r = get(&explain_url(&server, "quiet", "spin")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["agent"]["state"], "idle");
    assert!(r.json["panes"][0]["last_output"].is_string(), "{}", r.json);
}

#[tokio::test]
async fn screen_rules_read_claudes_menu_and_codexs_prompt() {
    let server = channel_server();
    make_channel_shed(&server, "screens").await;
    // Busy first, then Claude's permission menu: the busy line reads as
    // working, the menu as waiting, both by a screen rule.
    create_session(
        &server,
        "screens",
        "menu",
        "/opt/fake-agents/claude busy:3 menu",
    )
    .await;
    let working = agent_until(&server, "screens", "menu", "working by screen", |a| {
        a["state"] == "working" && a["source"] == "screen"
    })
    .await;
    assert_eq!(working["kind"], "claude", "{working:#}");
    let waiting = agent_until(&server, "screens", "menu", "waiting by screen", |a| {
        a["state"] == "waiting"
    })
    .await;
    assert_eq!(waiting["source"], "screen", "{waiting:#}");
    assert!(
        waiting["reason"].as_str().unwrap().contains("claude/"),
        "{waiting:#}"
    );
    let r = get(&explain_url(&server, "screens", "menu")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let rule = &r.json["panes"][0]["rule"];
    assert!(
        rule["rule"].as_str().unwrap().starts_with("claude/"),
        "{}",
        r.json
    );
    assert!(!rule["line"].as_str().unwrap().is_empty(), "{}", r.json);
    assert_eq!(rule["version"], r.json["rules_version"]);

    // Codex at its prompt is idle by its rule, not by a quiet period.
    create_session(&server, "screens", "codex", "/opt/fake-agents/codex prompt").await;
    let idle = agent_until(&server, "screens", "codex", "idle by screen", |a| {
        a["state"] == "idle" && a["source"] == "screen"
    })
    .await;
    assert_eq!(idle["kind"], "codex", "{idle:#}");
}

#[tokio::test]
async fn a_rule_from_the_server_config_decides_and_is_named() {
    let server = TestServer::start_with_config(
        "control_mode = true\n\
                [[screen_rules.rule]]\n\
                agent = \"claude\"\n\
                name = \"site-question\"\n\
                state = \"waiting\"\n\
                patterns = ['SITE-QUESTION\\?']\n\
                region = \"screen\"\n",
    );
    make_channel_shed(&server, "local").await;
    create_session(
        &server,
        "local",
        "ask",
        "/opt/fake-agents/claude print:SITE-QUESTION? prompt",
    )
    .await;
    let waiting = agent_until(&server, "local", "ask", "waiting by the local rule", |a| {
        a["state"] == "waiting"
    })
    .await;
    assert_eq!(waiting["source"], "screen", "{waiting:#}");
    let reason = waiting["reason"].as_str().unwrap();
    assert!(
        reason.contains("claude/site-question") && reason.contains("1+local"),
        "{waiting:#}"
    );
}

#[tokio::test]
async fn without_a_channel_exits_are_known_and_the_rest_is_not() {
    let server = TestServer::start_with_config("control_mode = false\n");
    make_shed(&server, "ex").await;
    create_session(&server, "ex", "gone", "/opt/fake-agents/codex exit:3").await;
    create_session(&server, "ex", "live", "/opt/fake-agents/claude prompt").await;
    let exited = |a: &Value| a["state"] == "exited" && !a["exit_code"].is_null();
    let agent = agent_until(&server, "ex", "gone", "exit", exited).await;
    assert_eq!(agent["exit_code"], 3);
    assert_eq!(agent["source"], "exit");
    let r = get(&server.url("/api/sheds/ex/sessions/live")).await;
    assert_eq!(r.json["agent"]["state"], "unknown", "{}", r.json);
    assert_eq!(r.json["agent"]["reason"], "no control channel");
    // The kind comes from the foreground command alone here, which is the
    // `sh -c` wrapper's: not asserted.
    let r = get(&explain_url(&server, "ex", "live")).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["agent"]["reason"], "no control channel");
    assert_eq!(r.json["panes"], serde_json::json!([]));
}

#[tokio::test]
async fn junk_reports_from_a_compromised_agent_are_ignored_and_never_echoed() {
    let server = channel_server();
    make_channel_shed(&server, "junk").await;
    let command = r#"tmux set-option -p @shed_state "$(printf 'waiting\033[2J\a')"; tmux set-option -p @shed_resume_id "$(printf 'id\033]0;x\a')"; tmux set-option -p @shed_agent evil; tmux set-option -p @shed_state "$(head -c 10000 /dev/zero | tr '\0' w)"; tmux set-option -p @shed_resume_id "$(head -c 10000 /dev/zero | tr '\0' r)"; echo set; exec sleep 300"#;
    create_session(&server, "junk", "evil", command).await;
    let url = server.url("/api/sheds/junk/sessions/evil");
    // Wait until the last option is visible through the model's own field.
    let (ok, body) = eventually(STATE_WAIT, || async {
        let r = get(&server.url("/api/sheds/junk/sessions/evil/output")).await;
        (
            r.json["output"].as_str().unwrap_or("").contains("set"),
            r.json,
        )
    })
    .await;
    assert!(ok, "{body}");
    let agent = agent_until(&server, "junk", "evil", "a decision", |a| {
        a["state"] != "unknown"
    })
    .await;
    assert_ne!(agent["source"], "reported", "{agent:#}");
    assert!(agent.get("resume_id").is_none(), "{agent:#}");
    assert_eq!(agent["kind"], "other", "{agent:#}");
    for url in [url, explain_url(&server, "junk", "evil")] {
        let r = get(&url).await;
        assert_eq!(r.status, 200, "{}", r.json);
        let text = r.json.to_string();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text}"
        );
        assert!(text.len() < 20_000, "{} bytes", text.len());
    }
}
