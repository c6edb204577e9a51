//! The `shed` CLI end to end: real binaries, real servers, real Docker.

mod common;

use common::*;

#[test]
fn readme_walkthrough_add_create_list_stop_start_delete() {
    let server = TestServer::start();
    let cli = Cli::new();
    let out = cli.add_local_ok(server.port, &host_key_fingerprint(&server), &[]);
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
    assert!(!is_running(&server.container("demo")));
    // Stopping a stopped shed is done already, not an error (the API's 409).
    let out = cli.run(&["stop", "demo"]);
    let (stdout, err) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        stdout,
        format!("Shed demo is already stopped on {}\n", server.name)
    );
    cli.ok(&["start", "demo"]);
    assert!(is_running(&server.container("demo")));

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
        (
            vec!["server", "add", "ftp://127.0.0.1"],
            "not a server address",
        ),
        (
            vec!["server", "add", "http://127.0.0.1/api"],
            "not a server address",
        ),
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
    assert!(!is_running(&a.container("only-a")));
    // ...and refuses to guess when several have it.
    let out = cli.run(&["stop", "both"]);
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("several servers") && err.contains("alpha") && err.contains("beta"),
        "{err}"
    );
    cli.ok(&["-s", "beta", "stop", "both"]);
    assert!(is_running(&a.container("both")));
    assert!(!is_running(&b.container("both")));

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
    cli.add_unreachable_server("down");
    let stdout = cli.partial(&["list", "--all"]);
    assert_eq!(stdout.lines().skip(1).count(), 4, "{stdout}");
    let json = cli.partial_json(&["list", "--all", "--json"]);
    assert_eq!(json["sheds"].as_array().unwrap().len(), 4);
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
    let server = TestServer::start_with_config("api_token = \"cli-token-123456\"\n");
    let cli = Cli::new();
    let port = server.port.to_string();
    let out = cli.run(&["server", "add", "127.0.0.1", "--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert!(texts(&out).1.contains("--token"), "{:?}", texts(&out));
    let fingerprint = host_key_fingerprint(&server);
    cli.add_local_ok(server.port, &fingerprint, &["--token", "cli-token-123456"]);
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
    let env = cli.env();
    let shed = env!("CARGO_BIN_EXE_shed");

    // "n" keeps the shed.
    // "n" is an answer, not a failure: rc 0, as with `rm -i`.
    host.start(
        "no",
        100,
        20,
        &env,
        &format!("sh -c '{shed} delete keep; echo rc=$?'"),
    );
    host.wait_for("no", "the prompt", |s| s.contains("Delete shed keep on s"));
    host.keys("no", &["n", "Enter"]);
    host.wait_for("no", "the refusal", |s| {
        s.contains("Not deleted.") && s.contains("rc=0")
    });
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

/// The CLI against a real server speaking TLS: the certificate is pinned by
/// the fingerprint `shed-server host-key --tls` prints, the token travels
/// only inside TLS, and a wrong pin is refused before anything is sent.
#[test]
fn the_cli_pins_a_real_servers_tls_certificate() {
    const TOKEN: &str = "tls-token-0123456789";
    let server = TestServer::start_with_config(format!("tls = \"on\"\napi_token = {TOKEN:?}\n"));
    let tls_fingerprint = server_fingerprint(&server, true);
    assert!(
        shed::api::fingerprint::is_fingerprint(&tls_fingerprint),
        "{tls_fingerprint}"
    );
    assert!(
        server.log().contains(&tls_fingerprint),
        "the server logs the fingerprint it serves:\n{}",
        server.log()
    );
    let ssh_fingerprint = host_key_fingerprint(&server);
    let url = format!("https://127.0.0.1:{}", server.port);

    let wrong = Cli::new();
    let other = shed::api::fingerprint::sha256_fingerprint(b"not this certificate");
    let out = wrong.run(&[
        "server",
        "add",
        &url,
        "--token",
        TOKEN,
        "--tls-fingerprint",
        &other,
        "--fingerprint",
        &ssh_fingerprint,
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains(&tls_fingerprint), "{stderr}");
    assert!(
        !wrong.config_path().exists(),
        "a refused server was saved anyway"
    );

    let cli = Cli::new();
    cli.ok(&[
        "server",
        "add",
        &url,
        "--name",
        "tls",
        "--token",
        TOKEN,
        "--tls-fingerprint",
        &tls_fingerprint,
        "--fingerprint",
        &ssh_fingerprint,
    ]);
    let config = std::fs::read_to_string(cli.config_path()).unwrap();
    assert!(config.contains(&tls_fingerprint), "{config}");
    cli.ok(&["create", "pinned"]);
    let list = cli.ok(&["list"]);
    assert!(list.contains("pinned"), "{list}");
}

#[test]
fn a_kept_volume_is_listed_until_a_create_reuses_it() {
    let server = TestServer::start();
    let cli = Cli::new();
    cli.add_server(&server, "local");
    cli.ok(&["create", "keeper"]);
    cli.ok(&["delete", "--keep-volume", "keeper"]);

    let out = cli.ok(&["list"]);
    assert!(
        out.contains("No sheds")
            && out.contains("Kept volume for keeper")
            && out.contains(&server.volume("keeper"))
            && out.contains("`shed create keeper`"),
        "{out}"
    );
    let json: serde_json::Value = serde_json::from_str(&cli.ok(&["list", "--json"])).unwrap();
    let kept = json["kept_volumes"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{json}");
    assert_eq!(kept[0]["name"], "keeper");
    assert_eq!(kept[0]["server"], "local");
    assert_eq!(kept[0]["volume"], server.volume("keeper").as_str());
    assert!(kept[0]["kept_at"].is_string(), "{json}");

    cli.ok(&["create", "keeper"]);
    let json: serde_json::Value = serde_json::from_str(&cli.ok(&["list", "--json"])).unwrap();
    assert_eq!(json["kept_volumes"], serde_json::json!([]), "{json}");
    assert_eq!(json["sheds"][0]["name"], "keeper", "{json}");
    let out = cli.ok(&["list"]);
    assert!(!out.contains("Kept volume"), "{out}");
}
