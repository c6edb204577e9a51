//! The `shed` CLI end to end: real binaries, real servers, real Docker.

mod common;

use common::*;

#[test]
fn readme_walkthrough_add_create_list_stop_start_delete() {
    let server = TestServer::start();
    let cli = Cli::new();
    let port = server.port.to_string();
    let out = cli.ok(&["server", "add", "127.0.0.1", "--port", &port]);
    assert!(
        out.contains(&server.name) && out.contains("default"),
        "{out}"
    );
    let config = std::fs::read_to_string(cli.config_path()).unwrap();
    assert!(
        config.contains(&format!("default_server = \"{}\"", server.name)),
        "{config}"
    );
    assert!(
        config.contains(&format!("ssh_port = {}", server.ssh_port)),
        "{config}"
    );
    // The gateway's host key is recorded beside the config.
    let known = std::fs::read_to_string(cli.dir.path().join("known_hosts")).unwrap();
    assert!(
        known.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", server.ssh_port)),
        "{known}"
    );

    let out = cli.ok(&["create", "demo"]);
    assert!(out.contains("Created shed demo"), "{out}");
    assert!(docker_ok(&["inspect", &server.container("demo")]));

    let out = cli.ok(&["list"]);
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("SERVER") && header.contains("STATUS") && header.contains("CREATED"),
        "{out}"
    );
    let row = out.lines().find(|l| l.contains("demo")).expect("demo row");
    assert!(row.contains("running") && row.contains("just now"), "{row}");
    // Columns line up under their headers.
    assert_eq!(header.find("STATUS"), row.find("running"), "{out}");

    let json: serde_json::Value = serde_json::from_str(&cli.ok(&["list", "--json"])).unwrap();
    assert_eq!(json["sheds"][0]["name"], "demo");
    assert_eq!(json["errors"], serde_json::json!([]));

    cli.ok(&["stop", "demo"]);
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.State.Running}}",
            &server.container("demo")
        ]),
        "false"
    );
    let out = cli.run(&["stop", "demo"]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("already stopped") && err.lines().count() == 1,
        "{err}"
    );
    cli.ok(&["start", "demo"]);
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.State.Running}}",
            &server.container("demo")
        ]),
        "true"
    );

    // No TTY: delete proceeds without a prompt.
    cli.ok(&["delete", "demo"]);
    assert!(containers_with_prefix(&server.prefix).is_empty());
    assert!(volumes_with_prefix(&server.prefix).is_empty());
    let out = cli.ok(&["list"]);
    assert!(out.contains("No sheds"), "{out}");
}

#[test]
fn errors_are_one_line_and_nonzero() {
    let server = TestServer::start();
    let cli = Cli::new();

    let out = cli.run(&["list"]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("shed server add"), "{err}");

    cli.add_server(&server, "one");
    for (args, needle) in [
        (vec!["create", "Bad_Name"], "invalid shed name"),
        (
            vec!["create", "x", "--image", "shed-no-such:image"],
            "not found",
        ),
        (vec!["start", "ghost"], "no shed named \"ghost\""),
        (vec!["-s", "nope", "list"], "unknown server \"nope\""),
        (
            vec![
                "server",
                "add",
                "127.0.0.1",
                "--port",
                "1",
                "--name",
                "dead",
            ],
            "127.0.0.1:1",
        ),
        (vec!["server", "add", "http://127.0.0.1"], "HOST"),
    ] {
        let out = cli.run(&args);
        let (_, err) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            err.lines().count(),
            1,
            "{args:?} printed more than one line: {err}"
        );
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    // The failed image create left nothing behind.
    assert!(containers_with_prefix(&server.prefix).is_empty());

    let out = cli.run(&[
        "server",
        "add",
        "127.0.0.1",
        "--port",
        &server.port.to_string(),
        "--name",
        "one",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(texts(&out).1.contains("already configured"));
}

#[test]
fn several_servers_lookup_and_partial_results() {
    let a = TestServer::start();
    let b = TestServer::start();
    let cli = Cli::new();
    cli.add_server(&a, "alpha");
    cli.add_server(&b, "beta");
    cli.ok(&["server", "set-default", "beta"]);
    let out = cli.ok(&["server", "list"]);
    let beta_row = out.lines().find(|l| l.starts_with("beta")).unwrap();
    assert!(beta_row.trim_end().ends_with('*'), "{out}");

    cli.ok(&["-s", "alpha", "create", "only-a"]);
    cli.ok(&["create", "only-b"]);
    cli.ok(&["-s", "alpha", "create", "both"]);
    cli.ok(&["-s", "beta", "create", "both"]);
    assert!(docker_ok(&["inspect", &a.container("only-a")]));
    assert!(docker_ok(&["inspect", &b.container("only-b")]));

    // Without -s, a command finds the one server that has the shed.
    cli.ok(&["stop", "only-a"]);
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{.State.Running}}",
            &a.container("only-a")
        ]),
        "false"
    );
    // ...and refuses to guess when several have it.
    let out = cli.run(&["stop", "both"]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("several servers") && err.contains("alpha") && err.contains("beta"),
        "{err}"
    );
    cli.ok(&["-s", "beta", "stop", "both"]);
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &a.container("both")]),
        "true"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &b.container("both")]),
        "false"
    );

    // Default server only, unless --all.
    let out = cli.ok(&["list"]);
    assert!(out.contains("only-b") && !out.contains("only-a"), "{out}");
    let out = cli.ok(&["list", "--all"]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(
        rows[0].starts_with("alpha") && rows[3].starts_with("beta"),
        "sorted by server: {out}"
    );

    // A server that is down: the others still print, the dead one is named, exit 3.
    let mut config = std::fs::read_to_string(cli.config_path()).unwrap();
    config.push_str("\n[servers.down]\nhost = \"127.0.0.1\"\nhttp_port = 1\n");
    std::fs::write(cli.config_path(), config).unwrap();
    let out = cli.run(&["list", "--all"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert_eq!(stdout.lines().skip(1).count(), 4, "{stdout}");
    assert!(
        stderr.contains("\"down\"") && stderr.contains("127.0.0.1:1"),
        "{stderr}"
    );
    let out = cli.run(&["list", "--all", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["sheds"].as_array().unwrap().len(), 4);
    assert_eq!(json["errors"][0]["server"], "down");
    // Lookups still work with one server down.
    cli.ok(&["start", "only-a"]);

    cli.ok(&["server", "remove", "down"]);
    cli.ok(&["delete", "--force", "only-b"]);
    assert!(!docker_ok(&["inspect", &b.container("only-b")]));
    cli.ok(&["delete", "--keep-volume", "only-a"]);
    assert!(docker_ok(&["volume", "inspect", &a.volume("only-a")]));
}

#[test]
fn token_servers_need_the_token() {
    let server = TestServer::start_with(ServerOpts {
        extra: "api_token = \"cli-token-123456\"\n".into(),
        ..Default::default()
    });
    let cli = Cli::new();
    let port = server.port.to_string();
    let out = cli.run(&["server", "add", "127.0.0.1", "--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert!(texts(&out).1.contains("--token"), "{:?}", texts(&out));
    cli.ok(&[
        "server",
        "add",
        "127.0.0.1",
        "--port",
        &port,
        "--token",
        "cli-token-123456",
    ]);
    cli.ok(&["create", "tok"]);
    assert!(cli.ok(&["list"]).contains("tok"));
}

#[test]
fn completions_are_generated() {
    let cli = Cli::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = cli.ok(&["completions", shell]);
        assert!(out.contains("shed") && out.contains("create"), "{shell}");
    }
}

#[test]
fn on_a_terminal_delete_asks_and_create_shows_a_spinner() {
    let server = TestServer::start();
    let cli = Cli::new();
    cli.add_server(&server, "s");
    cli.ok(&["create", "keep"]);
    let host = HostTmux::new();
    let env = [
        (
            "SHED_CONFIG",
            cli.config_path().to_string_lossy().into_owned(),
        ),
        ("HOME", cli.dir.path().to_string_lossy().into_owned()),
    ];
    let shed = env!("CARGO_BIN_EXE_shed");

    // "n" keeps the shed.
    host.start("no", 100, 20, &env, &format!("{shed} delete keep"));
    host.wait_for("no", "the prompt", |s| s.contains("Delete shed keep on s"));
    host.keys("no", &["n", "Enter"]);
    host.wait_for("no", "the refusal", |s| s.contains("error: not deleted"));
    assert!(docker_ok(&["inspect", &server.container("keep")]));

    // "y" deletes it.
    host.start("yes", 100, 20, &env, &format!("{shed} delete keep"));
    host.wait_for("yes", "the prompt", |s| s.contains("Delete shed keep on s"));
    host.keys("yes", &["y", "Enter"]);
    host.wait_for("yes", "the deletion", |s| s.contains("Deleted shed keep"));
    assert!(!docker_ok(&["inspect", &server.container("keep")]));

    // The spinner is drawn while create works (pipe-pane records every
    // byte the pane got, so a frame that was later cleared still shows).
    let recording = cli.dir.path().join("pane.log");
    let create = format!("read go; exec {shed} create spun --repo file:///srv/git/hello.git");
    host.start("spin", 100, 20, &env, &format!("sh -c '{create}'"));
    let pipe = format!("cat >> {}", recording.display());
    host.run(&["pipe-pane", "-t", "spin", "-o", &pipe]);
    host.keys("spin", &["Enter"]);
    host.wait_for("spin", "the result", |s| s.contains("Created shed spun"));
    let bytes = std::fs::read(&recording).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("Creating shed spun on s (cloning file:///srv/git/hello.git)"),
        "no spinner frame in:\n{text}"
    );
}
