//! Reliability: a killed container, a server restart under a running agent,
//! SIGTERM with a request in flight, and bad input on every endpoint.

mod common;

use common::http::{get, post, send};
use common::*;
use std::time::Duration;

/// Processes in the container whose command line starts with `command`.
fn processes_running(container: &str, command: &str) -> Vec<String> {
    docker(&["top", container, "-eo", "pid,args"])
        .lines()
        .skip(1)
        .filter(|l| {
            l.trim_start()
                .split_once(char::is_whitespace)
                .is_some_and(|(_, args)| args.trim_start().starts_with(command))
        })
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn a_killed_container_reads_as_stopped_and_the_next_login_starts_it() {
    let server = TestServer::start();
    let key = SshKey::generate();
    server.authorize(&key);
    make_shed(&server, "k").await;
    post(&server.url("/api/sheds/k/sessions"), r#"{"name":"agent"}"#).await;
    docker(&["kill", &server.container("k")]);

    let r = get(&server.url("/api/sheds/k")).await;
    assert_eq!(r.json["status"], "stopped");
    let r = get(&server.url("/api/sheds/k/sessions")).await;
    assert_eq!((r.status, r.code()), (409, "SHED_NOT_RUNNING"));
    let r = get(&server.url("/api/sheds/k/sessions/agent/output")).await;
    assert_eq!((r.status, r.code()), (409, "SHED_NOT_RUNNING"));

    let out = server
        .ssh(&key, "k", &[])
        .arg("echo back")
        .output()
        .unwrap();
    assert_eq!(texts(&out).0, "back\n", "{:?}", texts(&out));
    assert_eq!(
        get(&server.url("/api/sheds/k")).await.json["status"],
        "running"
    );
}

#[tokio::test]
async fn a_server_restart_leaves_running_agents_alone() {
    let data = tempfile::tempdir().unwrap();
    let key = SshKey::generate();
    let opts = ServerOpts {
        data_dir: Some(data.path().to_path_buf()),
        ..Default::default()
    };
    let mut first = TestServer::start_with(opts.clone());
    first.authorize(&key);
    make_shed(&first, "r").await;
    let r = post(
        &first.url("/api/sheds/r/sessions"),
        r#"{"name":"agent","command":"echo agent-started-marker; exec sleep 86400"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let container = first.container("r");
    let agent_before = processes_running(&container, "sleep 86400");
    assert_eq!(agent_before.len(), 1, "{agent_before:?}");

    assert!(first.terminate().success());
    // The agent did not notice.
    assert_eq!(processes_running(&container, "sleep 86400"), agent_before);

    let second = TestServer::start_sharing(ServerOpts {
        prefix: Some(first.prefix.clone()),
        ..opts
    });
    second.authorize(&key);
    let r = get(&second.url("/api/sheds/r/sessions")).await;
    assert_eq!(r.json["sessions"][0]["name"], "agent", "{}", r.json);
    assert_eq!(r.json["sessions"][0]["current_command"], "sleep");
    let r = get(&second.url("/api/sheds/r/sessions/agent/output")).await;
    assert!(r.json["output"]
        .as_str()
        .unwrap()
        .contains("agent-started-marker"));

    // An attach after the restart shows the earlier output.
    let cli = Cli::new();
    cli.add_server_with_key(&second, "s", &key);
    let host = HostTmux::new();
    let env = cli.env();
    let attach = format!("{} attach r -S agent", env!("CARGO_BIN_EXE_shed"));
    host.start("h", 100, 30, &env, &attach);
    host.wait_for("h", "the agent's earlier output", |screen| {
        screen.contains("agent-started-marker")
    });
    drop(host);
    drop(second);
    cleanup_prefix(&first.prefix);
}

// Multi-threaded: the request must run while the test thread waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight() {
    // A replaced tmux binary wedges execs, not a control channel already
    // attached to a live tmux server: this tests the exec path's bounds.
    let mut server = TestServer::start_with_config("control_mode = false\n");
    make_shed(&server, "slow").await;
    post(&server.url("/api/sheds/slow/sessions"), r#"{"name":"x"}"#).await;
    // Wedge tmux so that /api/sessions takes the full per-shed timeout.
    wedge_tmux(&server.container("slow"), 601);
    let url = server.url("/api/sessions");
    let request = tokio::spawn(async move { get(&url).await });
    let container = server.container("slow");
    assert!(wait_until(Duration::from_secs(10), || !processes_running(
        &container,
        "sleep 601"
    )
    .is_empty()));

    let status = server.terminate();
    let reply = request.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["warnings"][0]["shed"], "slow");
    assert!(status.success(), "{status}");
    assert!(server.log().contains("finishing in-flight requests"));
}

#[tokio::test]
async fn bad_input_everywhere_is_4xx_with_no_side_effect() {
    let server = TestServer::start();
    make_shed(&server, "ok").await;
    post(&server.url("/api/sheds/ok/sessions"), r#"{"name":"s"}"#).await;
    let containers_before = containers_with_prefix(&server.prefix);
    let volumes_before = volumes_with_prefix(&server.prefix);
    let sessions_before = tmux_sessions(&server.container("ok"));
    assert_eq!(sessions_before, ["s"]);

    let long = "a".repeat(10 * 1024);
    let bad_sheds = [
        "..%2Fetc", "a%3Bb", "%24(id)", "%60id%60", "a%20b", "%C3%A9", "a%00b", "UPPER", "-x",
        &long,
    ];
    let bad_sessions = [
        "a.b", "a%3Ab", "..%2Fx", "a%3Bb", "%24(id)", "a%20b", "%C3%A9", "a%00b", &long,
    ];
    let mut cases: Vec<(String, String, Option<String>)> = Vec::new();
    for shed in bad_sheds {
        for (method, path, body) in [
            ("GET", "", None),
            ("DELETE", "", None),
            ("POST", "/start", None),
            ("POST", "/stop", None),
            ("GET", "/sessions", None),
            ("POST", "/sessions", Some(r#"{"name":"n"}"#)),
        ] {
            cases.push((
                method.into(),
                format!("/api/sheds/{shed}{path}"),
                body.map(String::from),
            ));
        }
    }
    for session in bad_sessions {
        for (method, path, body) in [
            ("GET", "", None),
            ("DELETE", "", None),
            ("GET", "/output", None),
            (
                "POST",
                "/input",
                Some(r#"{"text":"touch /tmp/pwned","enter":true}"#),
            ),
        ] {
            cases.push((
                method.into(),
                format!("/api/sheds/ok/sessions/{session}{path}"),
                body.map(String::from),
            ));
        }
    }
    let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(1024 * 1024 + 10));
    for (path, body) in [
        ("/api/sheds", r#"{"name":"a""#.to_string()),
        ("/api/sheds", r#"{"name":7}"#.to_string()),
        ("/api/sheds", r#"{"name":"a","unknown":1}"#.to_string()),
        ("/api/sheds", r#"{"name":"a\u0000"}"#.to_string()),
        (
            "/api/sheds",
            r#"{"name":"a","image":"x\u0000"}"#.to_string(),
        ),
        ("/api/sheds", r#"[]"#.to_string()),
        ("/api/sheds", big.clone()),
        (
            "/api/sheds/ok/sessions",
            r#"{"name":"n","command":"a\u0000b"}"#.to_string(),
        ),
        (
            "/api/sheds/ok/sessions",
            r#"{"name":"n","cwd":"\u0000"}"#.to_string(),
        ),
        (
            "/api/sheds/ok/sessions",
            r#"{"name":"n","env":{"A":"\u0000"}}"#.to_string(),
        ),
        (
            "/api/sheds/ok/sessions",
            r#"{"name":"n","env":["A"]}"#.to_string(),
        ),
        ("/api/sheds/ok/sessions", big.clone()),
        (
            "/api/sheds/ok/sessions/s/input",
            r#"{"text":5}"#.to_string(),
        ),
        (
            "/api/sheds/ok/sessions/s/input",
            r#"{"text":"x","enter":"yes"}"#.to_string(),
        ),
        (
            "/api/sheds/ok/sessions/s/input",
            r#"{"text":"a\u0000"}"#.to_string(),
        ),
    ] {
        cases.push(("POST".into(), path.into(), Some(body)));
    }
    for (method, path, body) in &cases {
        let r = send(method, &server.url(path), body.as_deref(), &[]).await;
        let shown: String = path.chars().take(80).collect();
        assert!(
            (400..500).contains(&r.status),
            "{method} {shown}: {} {}",
            r.status,
            r.json
        );
        assert!(
            r.json["error"]["code"].is_string(),
            "{method} {shown}: {}",
            r.json
        );
    }
    // Wrong content type on every POST with a body.
    for path in [
        "/api/sheds",
        "/api/sheds/ok/sessions",
        "/api/sheds/ok/sessions/s/input",
    ] {
        let r = send(
            "POST",
            &server.url(path),
            None,
            &[("content-type", "text/plain")],
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (415, "UNSUPPORTED_MEDIA_TYPE"),
            "{path}"
        );
    }

    assert_eq!(containers_with_prefix(&server.prefix), containers_before);
    assert_eq!(volumes_with_prefix(&server.prefix), volumes_before);
    let sessions_after = tmux_sessions(&server.container("ok"));
    assert_eq!(sessions_after, sessions_before);
    assert!(!docker_ok(&[
        "exec",
        &server.container("ok"),
        "test",
        "-e",
        "/tmp/pwned"
    ]));
    assert!(
        !server.log().contains("request failed"),
        "a 5xx was logged:\n{}",
        server.log()
    );
}
