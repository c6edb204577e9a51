//! Agent state hooks on real Docker and real tmux: installed through the API,
//! the CLI and at create, then driven the way an agent drives them, by
//! running each configured hook command inside a tmux pane of the shed.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::http::post;
use common::*;
use serde_json::Value;

const CLAUDE_SETTINGS: &str = "/etc/claude-code/managed-settings.json";
/// The shed's container user: hooks are written as root, run as this user.
const USER: &str = "shed";

/// `docker exec -u USER CONTAINER ARGS`, with `stdin` fed in; stdout and status.
fn exec_in(container: &str, user: &str, args: &[&str], stdin: &[u8]) -> (bool, String) {
    let mut child = Command::new("docker")
        .args(["exec", "-i", "-u", user, container])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker exec");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The bytes of `path` in the container, or `None` when it cannot be read.
fn read_file(container: &str, path: &str) -> Option<Vec<u8>> {
    let out = Command::new("docker")
        .args(["exec", "-u", "root", container, "cat", path])
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

/// The value of pane option `option` of session `session`'s pane ("" when unset).
fn pane_option(container: &str, session: &str, option: &str) -> String {
    pane_option_as(container, USER, session, option)
}

/// [`pane_option`] in `user`'s tmux server.
fn pane_option_as(container: &str, user: &str, session: &str, option: &str) -> String {
    let (_, out) = exec_in(
        container,
        user,
        &["tmux", "show-options", "-p", "-v", "-t", session, option],
        b"",
    );
    out.trim_end_matches('\n').to_string()
}

/// The (first) hook command configured for `event` in Claude-style settings.
fn hook_command(settings: &Value, event: &str) -> String {
    settings["hooks"][event][0]["hooks"][0]["command"]
        .as_str()
        .unwrap_or_else(|| panic!("no {event} hook in {settings}"))
        .to_string()
}

/// Plays one Claude hook event in the agent's pane: the pane is respawned
/// (same pane, same options) with the event's configured command reading
/// `json` on stdin, as Claude runs it, and then a waiting shell.
fn play(container: &str, settings: &Value, event: &str, json: &str) {
    play_as(container, USER, settings, event, json)
}

/// [`play`] in `user`'s tmux server.
fn play_as(container: &str, user: &str, settings: &Value, event: &str, json: &str) {
    let (ok, _) = exec_in(
        container,
        user,
        &["sh", "-c", "cat > /tmp/hook-input.json"],
        json.as_bytes(),
    );
    assert!(ok, "writing the {event} input");
    // The configured command ends in a comment (shed's mark): a newline
    // ends it before the redirection.
    let command = format!(
        "{{ {}\n}} < /tmp/hook-input.json; exec sleep 600",
        hook_command(settings, event)
    );
    let (ok, _) = exec_in(
        container,
        user,
        &["tmux", "respawn-pane", "-k", "-t", "agent", &command],
        b"",
    );
    assert!(ok, "respawning the pane for {event}");
}

/// Waits until pane option `option` of the agent's pane reads `want`.
fn expect_option(container: &str, option: &str, want: &str) {
    expect_option_as(container, USER, option, want)
}

/// [`expect_option`] in `user`'s tmux server.
fn expect_option_as(container: &str, user: &str, option: &str, want: &str) {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(10), || {
        last = pane_option_as(container, user, "agent", option);
        last == want
    });
    assert!(ok, "{option}: wanted {want:?}, have {last:?}");
}

/// Starts the `agent` tmux session, a waiting shell, in `user`'s tmux server.
fn start_agent_session(container: &str, user: &str) {
    let (ok, _) = exec_in(
        container,
        user,
        &["tmux", "new-session", "-d", "-s", "agent", "sleep 600"],
        b"",
    );
    assert!(ok, "starting the agent session as {user}");
}

#[tokio::test]
async fn claude_hooks_installed_through_the_api_report_state_in_the_pane() {
    let server = TestServer::start_with_config(format!(
        "install_hooks = false\ncontainer_user = {USER:?}\n"
    ));
    make_shed(&server, "h").await;
    let container = server.container("h");
    // install_hooks = false: a create writes nothing.
    assert_eq!(read_file(&container, "/usr/local/bin/shed-hook"), None);

    let r = post(
        &server.url("/api/sheds/h/hooks"),
        r#"{"agents":["opencode"]}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.json);
    assert_eq!(r.code(), "INVALID_REQUEST");
    let r = post(&server.url("/api/sheds/nope/hooks"), "{}").await;
    assert_eq!(r.status, 404, "{}", r.json);

    let r = post(
        &server.url("/api/sheds/h/hooks"),
        r#"{"agents":["claude"]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["helper"]["status"], "installed", "{}", r.json);
    assert_eq!(r.json["agents"].as_array().unwrap().len(), 1, "{}", r.json);
    assert_eq!(r.json["agents"][0]["agent"], "claude");
    assert_eq!(r.json["agents"][0]["files"][0]["path"], CLAUDE_SETTINGS);
    assert_eq!(r.json["agents"][0]["files"][0]["status"], "installed");
    // Only what was asked for.
    assert_eq!(read_file(&container, "/etc/codex/hooks.json"), None);

    let settings: Value =
        serde_json::from_slice(&read_file(&container, CLAUDE_SETTINGS).unwrap()).unwrap();
    start_agent_session(&container, USER);

    play(
        &container,
        &settings,
        "SessionStart",
        r#"{"session_id":"9f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c","hook_event_name":"SessionStart","source":"startup"}"#,
    );
    expect_option(
        &container,
        "@shed_resume_id",
        "9f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c",
    );
    expect_option(&container, "@shed_agent", "claude");
    expect_option(&container, "@shed_state", "idle");

    for (event, json, state) in [
        (
            "UserPromptSubmit",
            r#"{"hook_event_name":"UserPromptSubmit","prompt":"fix \"session_id\":\"x\" the bug"}"#,
            "working",
        ),
        (
            "Notification",
            r#"{"hook_event_name":"Notification","notification_type":"permission_prompt"}"#,
            "waiting",
        ),
        (
            "PreToolUse",
            r#"{"hook_event_name":"PreToolUse","tool_name":"Bash"}"#,
            "working",
        ),
        ("Stop", r#"{"hook_event_name":"Stop"}"#, "idle"),
    ] {
        play(&container, &settings, event, json);
        expect_option(&container, "@shed_state", state);
    }
    // The resume id survived every event that carried none.
    expect_option(
        &container,
        "@shed_resume_id",
        "9f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c",
    );

    // A hostile agent's ids are never copied (and a new session's bad id
    // clears the old one, now stale).
    let long = "a".repeat(10 * 1024);
    for hostile in [
        r#"ok;tmux kill-server"#.to_string(),
        r#"#{pane_id}"#.to_string(),
        r#"line\nbreak"#.to_string(),
        long,
    ] {
        play(
            &container,
            &settings,
            "Stop",
            r#"{"hook_event_name":"Stop"}"#,
        );
        play(
            &container,
            &settings,
            "SessionStart",
            r#"{"session_id":"good-id","hook_event_name":"SessionStart"}"#,
        );
        expect_option(&container, "@shed_resume_id", "good-id");
        let json = format!(r#"{{"session_id":"{hostile}","hook_event_name":"SessionStart"}}"#);
        play(&container, &settings, "SessionStart", &json);
        expect_option(&container, "@shed_resume_id", "");
        assert_eq!(pane_option(&container, "agent", "@shed_agent"), "claude");
    }
    // The tmux server lived through all of it.
    assert_eq!(pane_option(&container, "agent", "@shed_agent"), "claude");
}

#[tokio::test]
async fn a_foreign_managed_settings_file_is_left_untouched_through_api_and_cli() {
    let server = TestServer::start_with_config("install_hooks = false\n");
    make_shed(&server, "f").await;
    let container = server.container("f");
    let foreign = b"{\n  \"permissions\": {\"deny\": [\"Bash(rm:*)\"]}\n}\n";
    let (ok, _) = exec_in(
        &container,
        "root",
        &[
            "sh",
            "-c",
            "mkdir -p /etc/claude-code && cat > /etc/claude-code/managed-settings.json",
        ],
        foreign,
    );
    assert!(ok);

    let r = post(&server.url("/api/sheds/f/hooks"), "{}").await;
    assert_eq!(r.status, 200, "{}", r.json);
    let agents = r.json["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 3, "{}", r.json);
    let claude = &agents[0]["files"][0];
    assert_eq!(claude["path"], CLAUDE_SETTINGS);
    assert_eq!(claude["status"], "skipped", "{}", r.json);
    assert!(
        claude["reason"].as_str().unwrap().contains("not shed's"),
        "{claude}"
    );
    // The other agents' files went in.
    for agent in &agents[1..] {
        for file in agent["files"].as_array().unwrap() {
            assert_eq!(file["status"], "installed", "{file}");
        }
    }
    assert_eq!(read_file(&container, CLAUDE_SETTINGS).unwrap(), foreign);

    let cli = Cli::new();
    cli.add_server(&server, "local");
    let report: Value =
        serde_json::from_str(&cli.ok(&["hooks", "install", "f", "--agent", "claude", "--json"]))
            .unwrap();
    assert_eq!(
        report["agents"][0]["files"][0]["status"], "skipped",
        "{report}"
    );
    assert_eq!(report["helper"]["status"], "installed", "{report}");
    let table = cli.ok(&["hooks", "install", "f", "--agent", "claude"]);
    assert!(table.contains(CLAUDE_SETTINGS), "{table}");
    assert!(
        table.contains("skipped: it exists and is not shed's"),
        "{table}"
    );
    assert_eq!(read_file(&container, CLAUDE_SETTINGS).unwrap(), foreign);

    // Once the foreign file is gone, the CLI installs shed's.
    exec_in(&container, "root", &["rm", CLAUDE_SETTINGS], b"");
    let table = cli.ok(&["hooks", "install", "f", "--agent", "claude"]);
    assert!(table.contains("installed"), "{table}");
    let written = read_file(&container, CLAUDE_SETTINGS).unwrap();
    assert!(String::from_utf8_lossy(&written).contains("shed-managed-file"));

    // An agent the CLI has no hooks for is a usage error.
    let out = cli.run(&["hooks", "install", "f", "--agent", "opencode"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
}

#[tokio::test]
async fn a_create_installs_the_hooks_by_default() {
    let server = TestServer::start();
    let r = post(&server.url("/api/sheds"), r#"{"name":"c"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    // Nothing skipped, nothing failed: no warnings in the answer.
    assert!(r.json.get("warnings").is_none(), "{}", r.json);
    let container = server.container("c");
    let helper = read_file(&container, "/usr/local/bin/shed-hook").expect("the helper");
    assert!(helper.starts_with(b"#!/bin/sh\n"));
    for path in [
        CLAUDE_SETTINGS,
        "/etc/codex/hooks.json",
        "/etc/codex/config.toml",
        "/etc/gemini-cli/system-defaults.json",
    ] {
        let text = read_file(&container, path).unwrap_or_else(|| panic!("{path} missing"));
        assert!(
            String::from_utf8_lossy(&text).contains("shed-managed-file"),
            "{path}"
        );
    }
    // Codex's and Gemini CLI's session starts, run in a pane as the agents
    // would run them, name their agent.
    start_agent_session(&container, "root");
    for (agent, file) in [
        ("codex", "/etc/codex/hooks.json"),
        ("gemini", "/etc/gemini-cli/system-defaults.json"),
    ] {
        let settings: Value =
            serde_json::from_slice(&read_file(&container, file).unwrap()).unwrap();
        let input =
            format!(r#"{{"session_id":"{agent}-session-1","hook_event_name":"SessionStart"}}"#);
        play_as(&container, "root", &settings, "SessionStart", &input);
        expect_option_as(&container, "root", "@shed_agent", agent);
        let id = pane_option_as(&container, "root", "agent", "@shed_resume_id");
        assert_eq!(id, format!("{agent}-session-1"));
    }

    // The helper is executable by anyone, writable by root only.
    let (_, mode) = exec_in(
        &container,
        "root",
        &["stat", "-c", "%a %U", "/usr/local/bin/shed-hook"],
        b"",
    );
    assert_eq!(mode.trim(), "755 root");
}

/// `shed-hook` itself, in a pane of the host's tmux: `state` sets and clears
/// the option, refuses a bad state loudly, and outside tmux does nothing.
#[test]
fn the_helper_sets_and_clears_the_state_in_a_host_pane() {
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("shed-hook");
    std::fs::write(&helper, shed::server::hooks::HELPER).unwrap();
    let helper = helper.to_str().unwrap().to_string();
    let tmux = HostTmux::new();
    tmux.start("p", 80, 24, &[], "sleep 600");
    let option = |name: &str| {
        let out = tmux.run(&["show-options", "-p", "-v", "-t", "p", name]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Run inside the pane, as an agent's hook is: a respawn keeps the pane.
    let run_in_pane = |args: &str| {
        let command = format!("sh {helper} {args} 2>/dev/null; echo rc=$?; exec sleep 600");
        tmux.run(&["respawn-pane", "-k", "-t", "p", &command]);
    };
    run_in_pane("state waiting");
    assert!(wait_until(Duration::from_secs(10), || option(
        "@shed_state"
    ) == "waiting"));
    tmux.wait_for("p", "rc=0", |s| s.contains("rc=0"));
    run_in_pane("state bogus");
    tmux.wait_for("p", "rc=1", |s| s.contains("rc=1"));
    assert_eq!(option("@shed_state"), "waiting");
    run_in_pane("state none");
    assert!(wait_until(Duration::from_secs(10), || option(
        "@shed_state"
    )
    .is_empty()));

    // Outside tmux: nothing to do, and no failure.
    let out = Command::new("sh")
        .args([helper.as_str(), "state", "working"])
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

/// An image without tmux: the create still succeeds, with a warning naming
/// the missing program, and an explicit install is 503 naming it too.
#[tokio::test]
async fn an_image_without_tmux_gets_a_warning_not_a_failed_create() {
    let server = TestServer::start();
    let r = make_shed_without_tmux(&server, "bare").await;
    let warnings = r.json["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{}", r.json);
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("tmux is not installed"),
        "{}",
        r.json
    );
    assert!(server
        .log()
        .contains("agent state hooks were not installed"));
    let container = server.container("bare");
    assert_eq!(read_file(&container, "/usr/local/bin/shed-hook"), None);

    let r = post(&server.url("/api/sheds/bare/hooks"), "{}").await;
    assert_eq!(
        (r.status, r.code()),
        (503, "TOOL_NOT_AVAILABLE"),
        "{}",
        r.json
    );
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tmux"));
}
