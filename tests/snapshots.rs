//! Sessions come back (issue 13): snapshots on the workspace volume and
//! their restore, on real Docker and real tmux.

mod common;

use common::http::{delete, get, post, send};
use common::*;
use serde_json::{json, Value};
use shed::api::agent::AgentKind;
use shed::server::agent::rules::Rules;
use std::time::Duration;

/// Longest wait for a save, a start or a restore to show.
const DEADLINE: Duration = Duration::from_secs(60);
/// The line a restored pane prints before its saved history.
const MARKER: &str = "shed: saved history of this pane";

/// A test server. On the exec path (`SHED_TEST_CONTROL_MODE=false`) no
/// channel reports changes made inside tmux, so periodic saves stand in.
fn start_server() -> TestServer {
    start_server_with("")
}

/// [`start_server`] with `extra` config lines.
fn start_server_with(extra: &str) -> TestServer {
    let exec_only = std::env::var("SHED_TEST_CONTROL_MODE").is_ok_and(|m| m == "false");
    let mut extra = extra.to_string();
    if exec_only && !extra.contains("snapshot_interval_secs") {
        extra.push_str("snapshot_interval_secs = 10\n");
    }
    TestServer::start_with(ServerOpts {
        extra,
        ..Default::default()
    })
}

async fn new_session(server: &TestServer, shed: &str, body: Value) {
    let r = post(
        &server.url(&format!("/api/sheds/{shed}/sessions")),
        &body.to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
}

async fn type_line(server: &TestServer, shed: &str, session: &str, text: &str) {
    let r = post(
        &server.url(&format!("/api/sheds/{shed}/sessions/{session}/input")),
        &json!({"text": text, "enter": true}).to_string(),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.json);
}

/// Runs `script` with sh in the shed's container as root.
fn in_shed(server: &TestServer, shed: &str, script: &str) -> String {
    docker(&["exec", &server.container(shed), "sh", "-c", script])
}

/// Waits until the saved snapshot passes `check`; returns it.
async fn saved(server: &TestServer, shed: &str, check: impl Fn(&Value) -> bool) -> Value {
    let url = server.url(&format!("/api/sheds/{shed}/snapshot"));
    let (ok, last) = eventually(DEADLINE, || async {
        let r = get(&url).await;
        (r.status == 200 && check(&r.json), r.json)
    })
    .await;
    assert!(ok, "the snapshot never got there: {last:#}");
    last
}

fn session<'a>(snapshot: &'a Value, name: &str) -> Option<&'a Value> {
    snapshot["snapshot"]["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

fn history_has(snapshot: &Value, name: &str, text: &str) -> bool {
    session(snapshot, name).is_some_and(|s| s.to_string().contains(text))
}

async fn sessions(server: &TestServer, shed: &str) -> Vec<Value> {
    let r = get(&server.url(&format!("/api/sheds/{shed}/sessions"))).await;
    r.json["sessions"].as_array().cloned().unwrap_or_default()
}

/// Waits until the shed's sessions are exactly `names`.
async fn wait_sessions(server: &TestServer, shed: &str, names: &[&str]) -> Vec<Value> {
    let (ok, list) = eventually(DEADLINE, || async {
        let list = sessions(server, shed).await;
        let got: Vec<&str> = list.iter().filter_map(|s| s["name"].as_str()).collect();
        (got == names, list)
    })
    .await;
    assert!(ok, "sessions never became {names:?}: {list:#?}");
    list
}

/// What a session's panes show, scrollback included, by `tmux capture-pane`.
fn pane_text(server: &TestServer, shed: &str, target: &str) -> String {
    in_shed(
        server,
        shed,
        &format!("tmux capture-pane -p -J -S -200 -t '{target}'"),
    )
}

async fn wait_pane(server: &TestServer, shed: &str, target: &str, text: &str) -> String {
    let (ok, last) = eventually(DEADLINE, || async {
        let t = pane_text(server, shed, target);
        (t.contains(text), t)
    })
    .await;
    assert!(ok, "pane {target} never showed {text:?}:\n{last}");
    last
}

async fn restart(server: &TestServer, shed: &str) {
    let r = post(&server.url(&format!("/api/sheds/{shed}/stop")), "").await;
    assert_eq!(r.status, 200, "{}", r.json);
    let r = post(&server.url(&format!("/api/sheds/{shed}/start")), "").await;
    assert_eq!(r.status, 200, "{}", r.json);
}

#[tokio::test]
async fn stop_and_start_bring_back_sessions_windows_cwd_and_history_but_not_killed_ones() {
    let server = start_server();
    make_shed(&server, "snap").await;
    in_shed(
        &server,
        "snap",
        "mkdir -p /workspace/d0 /workspace/d1 /workspace/d2 /workspace/gone",
    );
    for i in 0..3 {
        let name = format!("s{i}");
        new_session(
            &server,
            "snap",
            json!({"name": name, "cwd": format!("/workspace/d{i}")}),
        )
        .await;
        // A second window, made the way a user inside tmux would.
        in_shed(
            &server,
            "snap",
            &format!("tmux new-window -d -t '={name}:' -n second -c /tmp"),
        );
        type_line(&server, "snap", &name, &format!("echo line-of-{name}")).await;
    }
    new_session(
        &server,
        "snap",
        json!({"name": "doomed", "cwd": "/workspace/gone"}),
    )
    .await;
    let snap = saved(&server, "snap", |s| {
        (0..3).all(|i| {
            let name = format!("s{i}");
            history_has(s, &name, &format!("line-of-{name}"))
                && session(s, &name)
                    .is_some_and(|x| x["windows"].as_array().map(Vec::len) == Some(2))
        }) && session(s, "doomed").is_some()
    })
    .await;
    assert_eq!(snap["file"], "current");

    // Killed on purpose: out of the snapshot at once.
    let r = delete(&server.url("/api/sheds/snap/sessions/doomed")).await;
    assert_eq!(r.status, 204, "{}", r.json);
    let r = get(&server.url("/api/sheds/snap/snapshot")).await;
    assert!(session(&r.json, "doomed").is_none(), "{:#}", r.json);

    restart(&server, "snap").await;
    // The start answers after the restore.
    let list = wait_sessions(&server, "snap", &["s0", "s1", "s2"]).await;
    for (i, s) in list.iter().enumerate() {
        assert_eq!(s["windows"], 2, "{s}");
        assert_eq!(s["cwd"], format!("/workspace/d{i}"), "{s}");
    }
    for i in 0..3 {
        let name = format!("s{i}");
        let text = wait_pane(&server, "snap", &format!("={name}:^.0"), MARKER).await;
        assert!(text.contains(&format!("line-of-{name}")), "{text}");
        let windows = in_shed(
            &server,
            "snap",
            &format!("tmux list-windows -t '={name}' -F '#{{window_name}} #{{pane_current_path}}'"),
        );
        assert!(windows.contains("second /tmp"), "{windows}");
    }

    // Nothing is restored twice: an on-demand restore finds every session there.
    let r = post(
        &server.url("/api/sheds/snap/snapshot/restore?dry_run=true"),
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let actions = r.json["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3, "{:#}", r.json);
    assert!(
        actions.iter().all(|a| a["skipped"].is_string()),
        "{:#}",
        r.json
    );
}

#[tokio::test]
async fn each_restore_policy_does_what_it_says() {
    let server = start_server();
    make_shed(&server, "pol").await;
    // A stand-in `claude` that records how it was started, then runs the
    // fake agent, which reports a conversation id.
    in_shed(
        &server,
        "pol",
        "mkdir -p /workspace/bin && printf '%s\\n' '#!/bin/sh' \
         'echo \"claude $*\" >> /workspace/agent.log' \
         'exec /opt/fake-agents/claude resume-id:conv-42' > /workspace/bin/claude \
         && chmod +x /workspace/bin/claude",
    );
    let path = "/workspace/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    new_session(&server, "pol", json!({"name": "plain", "restore": "shell"})).await;
    new_session(
        &server,
        "pol",
        json!({"name": "again", "restore": "rerun",
               "command": "echo ran >> /workspace/rerun.log; exec sleep 100000"}),
    )
    .await;
    new_session(
        &server,
        "pol",
        json!({"name": "agent", "command": "/workspace/bin/claude", "env": {"PATH": path}}),
    )
    .await;
    new_session(
        &server,
        "pol",
        json!({"name": "asking", "restore": "ask",
               "command": "echo asked >> /workspace/ask.log; exec sleep 100000"}),
    )
    .await;
    let snap = saved(&server, "pol", |s| {
        ["plain", "again", "agent", "asking"]
            .iter()
            .all(|n| session(s, n).is_some())
            && s.to_string().contains("conv-42")
    })
    .await;
    // An agent's command gets `resume` by default.
    assert_eq!(session(&snap, "agent").unwrap()["restore"], "resume");
    assert_eq!(session(&snap, "plain").unwrap()["restore"], "shell");

    restart(&server, "pol").await;
    wait_sessions(&server, "pol", &["again", "agent", "asking", "plain"]).await;

    // rerun: the command ran a second time.
    let ok = wait_until(DEADLINE, || {
        in_shed(&server, "pol", "cat /workspace/rerun.log") == "ran\nran"
    });
    assert!(
        ok,
        "{}",
        in_shed(&server, "pol", "cat /workspace/rerun.log")
    );

    // ask: offered, not run, until Enter.
    wait_pane(&server, "pol", "=asking:", "press Enter to run it again").await;
    assert_eq!(in_shed(&server, "pol", "cat /workspace/ask.log"), "asked");
    type_line(&server, "pol", "asking", "").await;
    let ok = wait_until(DEADLINE, || {
        in_shed(&server, "pol", "cat /workspace/ask.log") == "asked\nasked"
    });
    assert!(ok, "{}", in_shed(&server, "pol", "cat /workspace/ask.log"));

    // shell: a shell, not a command.
    let plain = sessions(&server, "pol").await;
    let plain = plain.iter().find(|s| s["name"] == "plain").unwrap();
    assert_eq!(plain["exited"], false, "{plain}");
    type_line(&server, "pol", "plain", "echo shell-$((6*7))").await;
    wait_pane(&server, "pol", "=plain:", "shell-42").await;

    // resume: relaunched on its conversation, with the rules' command.
    assert_eq!(
        Rules::builtin()
            .resume_command(AgentKind::Claude, "conv-42")
            .as_deref(),
        Some("claude --resume conv-42")
    );
    let ok = wait_until(DEADLINE, || {
        let log = in_shed(&server, "pol", "cat /workspace/agent.log");
        log.lines().count() == 2 && log.lines().nth(1) == Some("claude --resume conv-42")
    });
    assert!(
        ok,
        "{}",
        in_shed(&server, "pol", "cat /workspace/agent.log")
    );
}

#[tokio::test]
async fn after_docker_kill_a_corrupt_snapshot_warns_and_the_previous_one_comes_back() {
    let server = start_server();
    make_shed(&server, "bad").await;
    new_session(&server, "bad", json!({"name": "a"})).await;
    new_session(&server, "bad", json!({"name": "b"})).await;
    saved(&server, "bad", |s| {
        session(s, "a").is_some() && session(s, "b").is_some()
    })
    .await;
    // One more save, so that the previous file holds both sessions too.
    in_shed(&server, "bad", "tmux new-window -d -t '=b:'");
    saved(&server, "bad", |s| {
        session(s, "b").is_some_and(|b| b["windows"].as_array().map(Vec::len) == Some(2))
    })
    .await;

    in_shed(
        &server,
        "bad",
        "printf '{\"version\": 1, \"sessions\": [' > /workspace/.shed/snapshot.json",
    );
    let r = get(&server.url("/api/sheds/bad/snapshot")).await;
    assert_eq!(r.json["file"], "previous", "{:#}", r.json);
    let warnings = r.json["warnings"].to_string();
    assert!(
        warnings.contains("current snapshot is unusable"),
        "{warnings}"
    );

    // No stop through shed, so no save: what comes back is the autosave.
    docker(&["kill", &server.container("bad")]);
    assert!(wait_until(DEADLINE, || !is_running(
        &server.container("bad")
    )));
    let r = post(&server.url("/api/sheds/bad/start"), "").await;
    assert_eq!(r.status, 200, "{}", r.json);
    wait_sessions(&server, "bad", &["a", "b"]).await;
    assert!(
        server.log().contains("current snapshot is unusable"),
        "the warning is not in the log:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn after_docker_kill_the_sessions_come_back_from_the_last_autosave() {
    // Periodic saves every 10 s, so a save follows the typed line.
    let server = start_server_with("snapshot_interval_secs = 10\n");
    make_shed(&server, "kill").await;
    new_session(&server, "kill", json!({"name": "a", "cwd": "/tmp"})).await;
    new_session(&server, "kill", json!({"name": "b"})).await;
    type_line(&server, "kill", "a", "echo before-the-kill").await;
    saved(&server, "kill", |s| {
        history_has(s, "a", "before-the-kill") && session(s, "b").is_some()
    })
    .await;

    // No stop through shed, so no save: what comes back is the autosave,
    // from the current file, which is intact.
    docker(&["kill", &server.container("kill")]);
    assert!(wait_until(DEADLINE, || !is_running(
        &server.container("kill")
    )));
    let r = post(&server.url("/api/sheds/kill/start"), "").await;
    assert_eq!(r.status, 200, "{}", r.json);
    let list = wait_sessions(&server, "kill", &["a", "b"]).await;
    assert_eq!(list[0]["cwd"], "/tmp", "{}", list[0]);
    wait_pane(&server, "kill", "=a:", "before-the-kill").await;
    let r = get(&server.url("/api/sheds/kill/snapshot")).await;
    assert_eq!(r.json["file"], "current", "{:#}", r.json);
    assert_eq!(r.json["warnings"], json!([]), "{:#}", r.json);
    assert!(
        !server.log().contains("unusable"),
        "a snapshot was unreadable:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn a_history_longer_than_tmux_keeps_by_default_is_saved_and_comes_back() {
    // tmux keeps 2000 lines per pane unless told; shed raises the limit
    // itself, with no tmux.conf edit.
    let server = start_server_with("snapshot_history_lines = 3000\n");
    make_shed(&server, "long").await;
    new_session(&server, "long", json!({"name": "seq"})).await;
    type_line(&server, "long", "seq", "seq 1 3000").await;
    let whole = |text: &str| {
        let lines: Vec<&str> = text.lines().collect();
        lines.contains(&"1") && lines.contains(&"3000")
    };
    saved(&server, "long", |s| {
        session(s, "seq").is_some_and(|x| {
            x["windows"][0]["panes"][0]["history"]
                .as_str()
                .is_some_and(whole)
        })
    })
    .await;

    restart(&server, "long").await;
    wait_sessions(&server, "long", &["seq"]).await;
    let (ok, text) = eventually(DEADLINE, || async {
        let text = in_shed(&server, "long", "tmux capture-pane -p -J -S - -t '=seq:'");
        (text.contains("restored after a restart"), text)
    })
    .await;
    assert!(ok, "the history never finished printing:\n{text}");
    assert!(whole(&text), "the restored pane lost lines:\n{text}");
}

#[tokio::test]
async fn sessions_come_back_when_the_server_returns_after_the_shed_restarted() {
    let mut server = start_server();
    make_shed(&server, "away").await;
    new_session(&server, "away", json!({"name": "survivor", "cwd": "/tmp"})).await;
    saved(&server, "away", |s| session(s, "survivor").is_some()).await;
    server.terminate();
    // The shed restarts while no server watches (a host reboot, say).
    docker(&["restart", "-t", "1", &server.container("away")]);
    let second = TestServer::start_sharing(ServerOpts {
        prefix: Some(server.prefix.clone()),
        ..Default::default()
    });
    let list = wait_sessions(&second, "away", &["survivor"]).await;
    assert_eq!(list[0]["cwd"], "/tmp");
}

#[tokio::test]
async fn a_kept_volume_created_again_restores_its_sessions() {
    let server = start_server();
    make_shed(&server, "kept").await;
    new_session(
        &server,
        "kept",
        json!({"name": "work", "cwd": "/workspace"}),
    )
    .await;
    type_line(&server, "kept", "work", "echo before-delete").await;
    saved(&server, "kept", |s| history_has(s, "work", "before-delete")).await;
    let r = delete(&server.url("/api/sheds/kept?keep_volume=true")).await;
    assert_eq!(r.status, 204, "{}", r.json);
    make_shed(&server, "kept").await;
    wait_sessions(&server, "kept", &["work"]).await;
    wait_pane(&server, "kept", "=work:", "before-delete").await;
}

#[tokio::test]
async fn the_cli_sets_a_policy_and_reports_a_restore_and_bad_values_are_400() {
    let server = start_server();
    let cli = Cli::new();
    cli.add_server(&server, "box");
    make_shed(&server, "cli").await;
    let r = post(
        &server.url("/api/sheds/cli/sessions"),
        r#"{"name":"x","restore":"sometimes"}"#,
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"), "{}", r.json);

    cli.ok(&[
        "sessions",
        "new",
        "cli",
        "job",
        "--restore",
        "rerun",
        "--",
        "sleep",
        "100000",
    ]);
    let out = cli.run(&["sessions", "new", "cli", "y", "--restore", "never"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", texts(&out));
    saved(&server, "cli", |s| {
        session(s, "job").is_some_and(|j| j["restore"] == "rerun" && j["command"] == "sleep 100000")
    })
    .await;
    // Everything saved runs: an on-demand restore says so and does nothing.
    let out = cli.ok(&["sessions", "restore", "cli", "--dry-run"]);
    assert!(
        out.contains("Skipped job: a session of this name is running"),
        "{out}"
    );
    let r = post(&server.url("/api/sheds/cli/snapshot/restore"), "").await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["dry_run"], false);
    assert_eq!(r.json["actions"][0]["policy"], "rerun", "{}", r.json);
    assert!(r.json["actions"][0]["skipped"].is_string(), "{}", r.json);
    let r = post(
        &server.url("/api/sheds/cli/snapshot/restore?dry_run=maybe"),
        "",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.json);
    assert_eq!(sessions(&server, "cli").await.len(), 1);
}

#[tokio::test]
async fn an_ssh_login_that_starts_the_shed_finds_its_sessions_back() {
    let server = start_server();
    let key = SshKey::generate();
    server.authorize(&key);
    let cli = Cli::new();
    cli.add_server_with_key(&server, "local", &key);
    make_shed(&server, "login").await;
    new_session(&server, "login", json!({"name": "kept", "cwd": "/tmp"})).await;
    saved(&server, "login", |s| session(s, "kept").is_some()).await;
    let r = post(&server.url("/api/sheds/login/stop"), "").await;
    assert_eq!(r.status, 200, "{}", r.json);
    // The login's start restores before the command runs.
    let out = cli.run(&[
        "exec",
        "login",
        "--",
        "tmux",
        "display-message",
        "-p",
        "-t",
        "=kept:",
        "#{pane_current_path}",
    ]);
    assert_eq!(texts(&out).0, "/tmp\n", "{:?}", texts(&out));
}

#[tokio::test]
async fn docker_restarting_a_shed_behind_shed_brings_its_sessions_back() {
    let server = start_server();
    make_shed(&server, "rs").await;
    new_session(&server, "rs", json!({"name": "back"})).await;
    saved(&server, "rs", |s| session(s, "back").is_some()).await;
    // As Docker's restart policy does after a reboot: no stop through shed.
    docker(&["restart", "-t", "1", &server.container("rs")]);
    wait_sessions(&server, "rs", &["back"]).await;
}

#[tokio::test]
async fn a_read_only_token_sees_which_variables_a_session_has_but_not_their_values() {
    const SECRET: &str = "sk-test-0123456789";
    let (token, viewer) = ("snap-token-0123456789", "snap-viewer-9876543210");
    let server = start_server_with(&format!(
        "api_token = {token:?}\napi_token_read_only = {viewer:?}\n"
    ));
    let full = format!("Bearer {token}");
    let read_only = format!("Bearer {viewer}");
    let as_user = |auth: &str, method: &'static str, path: &str, body: Option<String>| {
        let (url, auth) = (server.url(path), auth.to_string());
        async move { send(method, &url, body.as_deref(), &[("authorization", &auth)]).await }
    };
    let r = as_user(
        &full,
        "POST",
        "/api/sheds",
        Some(r#"{"name":"env"}"#.into()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let body = json!({"name": "agent", "env": {"ANTHROPIC_API_KEY": SECRET}}).to_string();
    let r = as_user(&full, "POST", "/api/sheds/env/sessions", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.json);

    // The full token reads the value back once the session is saved.
    let (ok, last) = eventually(DEADLINE, || async {
        let r = as_user(&full, "GET", "/api/sheds/env/snapshot", None).await;
        let env = session(&r.json, "agent").map(|s| s["env"].clone());
        (env == Some(json!({"ANTHROPIC_API_KEY": SECRET})), r.json)
    })
    .await;
    assert!(ok, "never saved with its env: {last:#}");
    assert!(last.get("env_hidden").is_none(), "{last:#}");

    // The viewer gets the same snapshot without the value, and is told so.
    let r = as_user(&read_only, "GET", "/api/sheds/env/snapshot", None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["env_hidden"], true, "{:#}", r.json);
    assert_eq!(
        session(&r.json, "agent").map(|s| s["env"].clone()),
        Some(json!({"ANTHROPIC_API_KEY": ""})),
        "{:#}",
        r.json
    );
    assert!(!r.json.to_string().contains(SECRET), "{:#}", r.json);
}
