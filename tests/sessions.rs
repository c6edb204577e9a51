//! Sessions across sheds and servers: the API, `shed sessions`, and
//! `shed exec --session`, on real Docker and real tmux.

mod common;

use common::http::{delete, get, post};
use common::*;
use std::time::{Duration, Instant};

async fn make_session(server: &TestServer, shed: &str, body: &str) -> common::http::Reply {
    post(&server.url(&format!("/api/sheds/{shed}/sessions")), body).await
}

#[tokio::test]
async fn create_list_get_output_input_kill() {
    let server = TestServer::start();
    make_shed(&server, "p").await;
    let base = server.url("/api/sheds/p/sessions");

    // A running shed with no tmux server has no sessions, not an error.
    let r = get(&base).await;
    assert_eq!(
        (r.status, r.json["sessions"].clone()),
        (200, serde_json::json!([]))
    );

    let r = make_session(
        &server,
        "p",
        r#"{"name":"agent","command":"bash","env":{"GREETING":"hi there"}}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["name"], "agent");
    assert_eq!(r.json["shed"], "p");
    assert_eq!(r.json["server"], server.name.as_str());
    assert_eq!(r.json["cwd"], "/workspace");
    assert_eq!(r.json["windows"], 1);
    assert_eq!(r.json["attached"], 0);
    assert!(r.json["status"] == "active" || r.json["status"] == "idle");
    assert_eq!(tmux_sessions(&server.container("p")), ["agent"]);
    // Everything below is served by the path this run is about, once the
    // shed's channel (opened when the shed started) is up.
    let source = expected_source();
    let (up, last) = eventually(Duration::from_secs(20), || async {
        let r = get(&base).await;
        (r.json["sessions"][0]["source"] == source, r.json)
    })
    .await;
    assert!(up, "sessions not served by {source}: {last}");

    // Input reaches the program, typed literally.
    let input = server.url("/api/sheds/p/sessions/agent/input");
    let r = post(
        &input,
        r#"{"text":"echo \"$GREETING\" $((40+2)) C-c Enter","enter":true}"#,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.json);
    let (_, text) = output_containing(&server, "p", "agent", "hi there 42 C-c Enter").await;
    assert!(text.contains("hi there 42 C-c Enter"), "{text}");
    let output = server.url("/api/sheds/p/sessions/agent/output?lines=20");
    assert_eq!(get(&output).await.json["source"], source);

    // Output includes scrollback and honours `lines`.
    post(&input, r#"{"text":"seq 1 300","enter":true}"#).await;
    let output = server.url("/api/sheds/p/sessions/agent/output?lines=250");
    let (_, out) = eventually(Duration::from_secs(10), || async {
        let out = get(&output).await.json;
        let done = out["output"]
            .as_str()
            .unwrap_or_default()
            .contains("\n300\n");
        (done, out)
    })
    .await;
    let text = out["output"].as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 250, "{text}");
    assert!(
        lines.contains(&"60") && lines.contains(&"300"),
        "scrollback missing: {text}"
    );

    let r = get(&server.url("/api/sheds/p/sessions/agent")).await;
    assert_eq!(
        (r.status, r.json["current_command"].as_str()),
        (200, Some("bash"))
    );
    assert_eq!(r.json["source"], source);
    let all = get(&server.url("/api/sessions")).await.json;
    assert_eq!(all["sessions"][0]["source"], source, "{all}");

    let r = delete(&server.url("/api/sheds/p/sessions/agent")).await;
    assert_eq!(r.status, 204);
    assert!(tmux_sessions(&server.container("p")).is_empty());
    let r = delete(&server.url("/api/sheds/p/sessions/agent")).await;
    assert_eq!((r.status, r.code()), (404, "SESSION_NOT_FOUND"));
}

#[tokio::test]
async fn prefix_safety_exact_names_only() {
    let server = TestServer::start();
    make_shed(&server, "p").await;
    assert_eq!(
        make_session(&server, "p", r#"{"name":"debug-long"}"#)
            .await
            .status,
        201
    );
    // The shell draws its prompt a moment after the session exists; compare
    // against the settled screen, not the blank one before it.
    let (prompted, before) = common::eventually(Duration::from_secs(10), || async {
        let out = get(&server.url("/api/sheds/p/sessions/debug-long/output"))
            .await
            .json["output"]
            .clone();
        (
            out.as_str()
                .is_some_and(|s| s.contains('#') || s.contains('$')),
            out,
        )
    })
    .await;
    assert!(prompted, "no prompt in debug-long: {before}");

    for (method, path, body) in [
        ("DELETE", "/api/sheds/p/sessions/debug", None),
        ("GET", "/api/sheds/p/sessions/debug", None),
        ("GET", "/api/sheds/p/sessions/debug/output", None),
        (
            "POST",
            "/api/sheds/p/sessions/debug/input",
            Some(r#"{"text":"touch /tmp/typed","enter":true}"#),
        ),
    ] {
        let r = common::http::send(method, &server.url(path), body, &[]).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "SESSION_NOT_FOUND"),
            "{method} {path}"
        );
    }
    assert_eq!(tmux_sessions(&server.container("p")), ["debug-long"]);
    assert!(!docker_ok(&[
        "exec",
        &server.container("p"),
        "test",
        "-e",
        "/tmp/typed"
    ]));
    let after = get(&server.url("/api/sheds/p/sessions/debug-long/output"))
        .await
        .json["output"]
        .clone();
    assert_eq!(before, after, "input leaked into debug-long");

    // And the CLI's kill goes through the same exact targeting.
    let cli = Cli::new();
    cli.add_server(&server, "s");
    let out = cli.run(&["sessions", "kill", "p", "debug"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        texts(&out).1.contains("no session named \"debug\""),
        "{:?}",
        texts(&out)
    );
    assert_eq!(tmux_sessions(&server.container("p")), ["debug-long"]);
}

#[tokio::test]
async fn invalid_names_are_400_and_create_nothing() {
    let server = TestServer::start();
    make_shed(&server, "p").await;
    for name in [
        "a.b",
        "a:b",
        "../x",
        "a;b",
        "$(id)",
        "`id`",
        "a b",
        "-x",
        "é",
        &"s".repeat(64),
    ] {
        let body = serde_json::json!({"name": name}).to_string();
        let r = make_session(&server, "p", &body).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "INVALID_SESSION_NAME"),
            "{name:?}"
        );
    }
    let r = make_session(&server, "p", r#"{"name":"ok","cwd":"/no/such/dir"}"#).await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"));
    let r = make_session(&server, "p", r#"{"name":"ok","env":{"BAD-NAME":"x"}}"#).await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"));
    let r = get(&server.url("/api/sheds/p/sessions/a.b")).await;
    assert_eq!((r.status, r.code()), (400, "INVALID_SESSION_NAME"));
    let r = get(&server.url("/api/sheds/p/sessions/x/output?lines=0")).await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"));
    assert!(tmux_sessions(&server.container("p")).is_empty());
    let cli = Cli::new();
    cli.add_server(&server, "s");
    let out = cli.run(&["sessions", "new", "p", "a.b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(texts(&out).1.contains("invalid session name"));
    assert!(tmux_sessions(&server.container("p")).is_empty());
}

#[tokio::test]
async fn stopped_shed_is_409_and_limits_hold() {
    let server = TestServer::start_with_config("max_sessions_per_shed = 2\n");
    make_shed(&server, "p").await;
    assert_eq!(
        make_session(&server, "p", r#"{"name":"one"}"#).await.status,
        201
    );
    let r = make_session(&server, "p", r#"{"name":"one"}"#).await;
    assert_eq!((r.status, r.code()), (409, "SESSION_EXISTS"));
    assert_eq!(
        make_session(&server, "p", r#"{"name":"two"}"#).await.status,
        201
    );
    let r = make_session(&server, "p", r#"{"name":"three"}"#).await;
    assert_eq!((r.status, r.code()), (409, "MAX_SESSIONS"));
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("kill one first"));
    assert_eq!(tmux_sessions(&server.container("p")), ["one", "two"]);

    post(&server.url("/api/sheds/p/stop"), "").await;
    common::http::post_empty(&server.url("/api/sheds/p/stop")).await;
    for (method, path, body) in [
        ("GET", "/api/sheds/p/sessions", None),
        ("POST", "/api/sheds/p/sessions", Some(r#"{"name":"x"}"#)),
        ("GET", "/api/sheds/p/sessions/one", None),
        ("DELETE", "/api/sheds/p/sessions/one", None),
        ("GET", "/api/sheds/p/sessions/one/output", None),
        (
            "POST",
            "/api/sheds/p/sessions/one/input",
            Some(r#"{"text":"x"}"#),
        ),
    ] {
        let r = common::http::send(method, &server.url(path), body, &[]).await;
        assert_eq!(
            (r.status, r.code()),
            (409, "SHED_NOT_RUNNING"),
            "{method} {path}"
        );
    }
    // Stopped sheds are not queried by /api/sessions, and are no warning.
    let r = get(&server.url("/api/sessions")).await;
    assert_eq!(r.json, serde_json::json!({"sessions": [], "warnings": []}));
    let r = get(&server.url("/api/sheds/ghost/sessions")).await;
    assert_eq!((r.status, r.code()), (404, "SHED_NOT_FOUND"));
}

#[tokio::test]
async fn an_image_without_tmux_is_503() {
    let server = TestServer::start();
    make_shed_without_tmux(&server, "bare").await;
    let r = get(&server.url("/api/sheds/bare/sessions")).await;
    assert_eq!(
        (r.status, r.code()),
        (503, "TMUX_NOT_AVAILABLE"),
        "{}",
        r.json
    );
    let r = make_session(&server, "bare", r#"{"name":"x"}"#).await;
    assert_eq!((r.status, r.code()), (503, "TMUX_NOT_AVAILABLE"));
    let r = get(&server.url("/api/sessions")).await;
    assert_eq!(r.json["warnings"][0]["shed"], "bare");
    assert!(r.json["warnings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("tmux is not installed"));
}

#[tokio::test]
async fn all_sessions_is_sorted_and_survives_a_hung_shed() {
    // A replaced tmux binary wedges execs, not a control channel already
    // attached to a live tmux server: this tests the exec path's bounds.
    let server = TestServer::start_with_config("control_mode = false\n");
    for shed in ["zeta", "alpha", "hung"] {
        make_shed(&server, shed).await;
    }
    for (shed, session) in [("zeta", "b"), ("zeta", "a"), ("alpha", "z"), ("hung", "x")] {
        let r = make_session(&server, shed, &format!(r#"{{"name":"{session}"}}"#)).await;
        assert_eq!(r.status, 201, "{}", r.json);
    }
    // Make every tmux call in "hung" hang, as a wedged container would.
    wedge_tmux(&server.container("hung"), 600);
    let started = Instant::now();
    let r = get(&server.url("/api/sessions")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.json);
    let order: Vec<(String, String)> = r.json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["shed"].as_str().unwrap().into(),
                s["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [("alpha", "z"), ("zeta", "a"), ("zeta", "b")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(order, expected);
    assert_eq!(
        r.json["warnings"].as_array().unwrap().len(),
        1,
        "{}",
        r.json
    );
    assert_eq!(r.json["warnings"][0]["shed"], "hung");
    // Bounded by the per-shed timeout (5 s), not by the 600 s hang.
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[tokio::test]
async fn sessions_all_across_servers_with_one_down() {
    let a = TestServer::start();
    let b = TestServer::start();
    make_shed(&a, "web").await;
    make_shed(&b, "api").await;
    make_session(&a, "web", r#"{"name":"agent"}"#).await;
    make_session(&b, "api", r#"{"name":"build"}"#).await;
    make_session(&b, "api", r#"{"name":"agent"}"#).await;
    let cli = Cli::new();
    cli.add_server(&a, "one");
    cli.add_server(&b, "two");

    let out = cli.ok(&["sessions", "--all"]);
    let lines: Vec<&str> = out.lines().collect();
    let header = lines[0];
    for col in [
        "SERVER", "SHED", "SESSION", "STATUS", "CMD", "ATTACHED", "WINDOWS", "CREATED", "ACTIVE",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let rows: Vec<Vec<&str>> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let keys: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[1], r[2])).collect();
    assert_eq!(
        keys,
        [
            ("one", "web", "agent"),
            ("two", "api", "agent"),
            ("two", "api", "build")
        ]
    );

    // Default server only without --all; one shed with SHED.
    let out = cli.ok(&["sessions"]);
    assert!(out.contains("web") && !out.contains("api"), "{out}");
    let out = cli.ok(&["sessions", "api"]);
    assert_eq!(out.lines().count(), 3, "{out}");

    cli.add_unreachable_server("down");
    let stdout = cli.partial(&["sessions", "--all"]);
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    let json = cli.partial_json(&["sessions", "--all", "--json"]);
    assert_eq!(json["sessions"].as_array().unwrap().len(), 3);
    assert!(json["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
}

#[tokio::test]
async fn cli_new_peek_send_kill() {
    let server = TestServer::start();
    make_shed(&server, "p").await;
    let cli = Cli::new();
    cli.add_server(&server, "s");
    let out = cli.ok(&[
        "sessions",
        "new",
        "p",
        "agent",
        "--cwd",
        "/tmp",
        "--",
        "sh",
        "-c",
        "echo \"started in $(pwd)\"; exec bash",
    ]);
    assert!(out.contains("Started session agent"), "{out}");
    let mut peek = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            peek = cli.ok(&["sessions", "peek", "p", "agent", "-n", "5"]);
            peek.contains("started in /tmp")
        }),
        "{peek}"
    );
    cli.ok(&[
        "sessions",
        "send",
        "p",
        "agent",
        "echo sent-$((1+1))",
        "--enter",
    ]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            peek = cli.ok(&["sessions", "peek", "p", "agent"]);
            peek.contains("sent-2")
        }),
        "{peek}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["sessions", "p", "--json"])).unwrap();
    assert_eq!(json["sessions"][0]["name"], "agent");
    assert_eq!(json["sessions"][0]["cwd"], "/tmp");

    // --follow prints what arrives later.
    let mut follow = ChildGuard(
        cli.command(&["sessions", "peek", "p", "agent", "--follow"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = follow.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    cli.ok(&[
        "sessions",
        "send",
        "p",
        "agent",
        "echo later-$((2+3))",
        "--enter",
    ]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = false;
    while Instant::now() < deadline && !seen {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = line.contains("later-5");
        }
    }
    drop(follow);
    assert!(seen, "--follow never printed the new output");

    cli.ok(&["sessions", "kill", "p", "agent"]);
    assert!(tmux_sessions(&server.container("p")).is_empty());
}

#[tokio::test]
async fn exec_in_a_session_is_visible_and_returns_output_and_status() {
    let server = TestServer::start();
    let key = SshKey::generate();
    server.authorize(&key);
    make_shed(&server, "p").await;
    make_session(&server, "p", r#"{"name":"work"}"#).await;
    let cli = Cli::new();
    cli.add_server_with_key(&server, "s", &key);
    let exec_in_work = |command: &[&str]| {
        let mut args = vec!["exec", "p", "--session", "work", "--"];
        args.extend_from_slice(command);
        cli.run(&args)
    };

    let out = exec_in_work(&["printf", "%s\\n", "a b", "c;d", "$(id)"]);
    assert_eq!(
        texts(&out),
        ("a b\nc;d\n$(id)\n".to_string(), String::new())
    );
    assert_eq!(out.status.code(), Some(0));

    let out = exec_in_work(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(texts(&out).0, "out\nerr\n");

    // It ran in a window of the session, where an attached user would see it.
    let out = exec_in_work(&[
        "sh",
        "-c",
        "tmux display-message -p -t \"$TMUX_PANE\" '#{session_name}:#{window_name}'",
    ]);
    assert_eq!(texts(&out).0, "work:shed-exec\n");

    let out = cli.run(&["exec", "p", "--session", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        texts(&out).1.contains("no session named \"nope\""),
        "{:?}",
        texts(&out)
    );
    // No temp files are left behind.
    let left = docker(&[
        "exec",
        &server.container("p"),
        "sh",
        "-c",
        "ls /tmp | grep shed-exec || true",
    ]);
    assert_eq!(left, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_pass_the_session_limit() {
    let server = TestServer::start_with_config("max_sessions_per_shed = 2\n");
    make_shed(&server, "race").await;
    let creates = (0..8).map(|i| {
        let url = server.url("/api/sheds/race/sessions");
        async move { post(&url, &format!(r#"{{"name":"s{i}"}}"#)).await }
    });
    let replies = futures_util::future::join_all(creates).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    for r in replies.iter().filter(|r| r.status != 201) {
        assert_eq!((r.status, r.code()), (409, "MAX_SESSIONS"), "{}", r.json);
    }
    assert_eq!(created, 2, "{created} sessions created with a limit of 2");
    assert_eq!(tmux_sessions(&server.container("race")).len(), 2);
}

/// A variant of the test image without some programs; removed on drop
/// (declare it before the server, so the server's containers go first).
struct LeanImage(String);

impl LeanImage {
    fn without(tools: &[&str]) -> LeanImage {
        let tag = format!("shed-test-lean-{}:latest", unique_prefix());
        let builder = format!("{}-builder", unique_prefix());
        let script = tools
            .iter()
            .map(|t| format!("rm -f '/usr/bin/{t}' '/bin/{t}'"))
            .collect::<Vec<_>>()
            .join("; ");
        docker(&["run", "--name", &builder, test_image(), "sh", "-c", &script]);
        let committed = docker_ok(&["commit", &builder, &tag]);
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &builder])
            .output();
        assert!(committed, "docker commit {tag} failed");
        LeanImage(tag)
    }
}

impl Drop for LeanImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["image", "rm", "-f", &self.0])
            .output();
    }
}

#[tokio::test]
async fn a_missing_tool_is_named_not_misreported() {
    let image = LeanImage::without(&["test", "[", "tee", "mv"]);
    let server = TestServer::start();
    let key = SshKey::generate();
    server.authorize(&key);
    let r = post(
        &server.url("/api/sheds"),
        &format!(r#"{{"name":"lean","image":"{}"}}"#, image.0),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    // The cwd check needs no `test` binary: the shell's builtin does it.
    let r = make_session(&server, "lean", r#"{"name":"work","cwd":"/workspace"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let r = make_session(&server, "lean", r#"{"name":"x","cwd":"/nope"}"#).await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"), "{}", r.json);

    // exec --session names the program it lacks instead of failing silently.
    let cli = Cli::new();
    cli.add_server_with_key(&server, "s", &key);
    let out = cli.run(&["exec", "lean", "--session", "work", "--", "true"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(texts(&out).1.contains("'mv'"), "{:?}", texts(&out));
}
