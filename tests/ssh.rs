//! The SSH gateway and the CLI commands built on it, with the real OpenSSH
//! client, real Docker and real tmux.

mod common;

use common::http::{get, post, post_empty};
use common::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

/// A server with one running shed `demo`, a key it accepts, and a CLI set up for it.
struct Setup {
    server: TestServer,
    key: SshKey,
    cli: Cli,
}

async fn setup() -> Setup {
    let server = TestServer::start();
    let key = SshKey::generate();
    server.authorize(&key);
    let r = post(&server.url("/api/sheds"), r#"{"name":"demo"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let cli = Cli::new();
    cli.add_server_with_key(&server, "local", &key);
    Setup { server, key, cli }
}

/// Processes in the container whose command line contains `needle`.
fn processes_matching(container: &str, needle: &str) -> Vec<String> {
    docker(&["top", container, "-eo", "pid,args"])
        .lines()
        .skip(1)
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn exec_output_exit_code_quoting_and_stdin() {
    let s = setup().await;

    let out = s
        .cli
        .run(&["exec", "demo", "--", "printf", "%s\\n", "a b", "c;d"]);
    assert_eq!(texts(&out), ("a b\nc;d\n".to_string(), String::new()));
    assert_eq!(out.status.code(), Some(0));

    let out = s.cli.run(&[
        "exec", "demo", "--", "echo", "$(id)", "`x`", "*", "'q'", "\"dq\"",
    ]);
    assert_eq!(texts(&out).0, "$(id) `x` * 'q' \"dq\"\n");

    let out = s.cli.run(&[
        "exec",
        "demo",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(texts(&out), ("out\n".to_string(), "err\n".to_string()));

    let out = s
        .cli
        .run(&["exec", "demo", "--", "sh", "-c", "echo $SHED_NAME; pwd"]);
    assert_eq!(texts(&out).0, "demo\n/workspace\n");

    // stdin is forwarded and its EOF ends `cat`.
    let mut child = s
        .cli
        .command(&["exec", "demo", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hi\nthere\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\nthere\n");
    assert!(out.status.success());

    // The exit status is the command's own, through plain ssh too.
    let out = s
        .server
        .ssh(&s.key, "demo", &[])
        .arg("exit 3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[tokio::test]
async fn output_streams_and_a_closed_connection_leaves_nothing_running() {
    let s = setup().await;
    let container = s.server.container("demo");
    let child = s
        .cli
        .command(&[
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            "echo first; exec sleep 4242",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    // The first line arrives while the command still runs: output is streamed.
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    assert!(wait_until(Duration::from_secs(10), || !processes_matching(
        &container,
        "sleep 4242"
    )
    .is_empty()));
    assert!(child.0.try_wait().unwrap().is_none(), "exec ended early");

    drop(child);
    assert!(
        wait_until(Duration::from_secs(15), || processes_matching(
            &container,
            "sleep 4242"
        )
        .is_empty()),
        "the command outlived its connection: {:?}",
        processes_matching(&container, "sleep")
    );
}

#[tokio::test]
async fn a_command_killed_by_a_signal_reports_the_signal() {
    let s = setup().await;
    let out = s
        .server
        .ssh(&s.key, "demo", &["-v"])
        .arg("kill -TERM $$")
        .output()
        .unwrap();
    let (_, err) = texts(&out);
    // OpenSSH exits 255 on an exit-signal and logs the signal it was told of.
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(
        err.contains("exit-signal") || err.contains("signal"),
        "{err}"
    );
    assert!(!err.contains("Permission denied"), "{err}");
}

#[tokio::test]
async fn unlisted_keys_passwords_and_none_are_refused() {
    let s = setup().await;
    let stranger = SshKey::generate();
    let out = s
        .server
        .ssh(&stranger, "demo", &[])
        .arg("true")
        .output()
        .unwrap();
    let (_, err) = texts(&out);
    assert_eq!(out.status.code(), Some(255));
    assert!(err.contains("Permission denied"), "{err}");
    assert!(
        s.server.log().contains("ssh key refused"),
        "{}",
        s.server.log()
    );

    for method in ["password", "keyboard-interactive", "none"] {
        let pref = format!("PreferredAuthentications={method}");
        let out = s
            .server
            .ssh(
                &s.key,
                "demo",
                &["-o", &pref, "-o", "PubkeyAuthentication=no"],
            )
            .arg("true")
            .output()
            .unwrap();
        let (_, err) = texts(&out);
        assert_eq!(out.status.code(), Some(255), "{method}: {err}");
        assert!(err.contains("Permission denied"), "{method}: {err}");
        assert!(
            err.contains("(publickey)"),
            "{method}: only publickey is offered: {err}"
        );
    }

    // The listed key works, and the login is logged with its fingerprint.
    let out = s
        .server
        .ssh(&s.key, "demo", &[])
        .arg("true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", texts(&out));
    let fp = std::process::Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(s.key.private.with_extension("pub"))
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout);
    let fp = fp.split_whitespace().nth(1).unwrap();
    let log = s.server.log();
    assert!(
        log.contains("ssh login") && log.contains(fp) && log.contains("shed=\"demo\""),
        "{log}"
    );
}

#[tokio::test]
async fn allow_any_key_is_an_explicit_opt_in() {
    let server = TestServer::start_with_config("allow_any_key = true\n");
    post(&server.url("/api/sheds"), r#"{"name":"open"}"#).await;
    let stranger = SshKey::generate();
    let out = server
        .ssh(&stranger, "open", &[])
        .arg("echo in")
        .output()
        .unwrap();
    assert_eq!(texts(&out).0, "in\n");
    assert!(server.log().contains("accepts ANY key"));
}

#[tokio::test]
async fn an_unknown_shed_is_one_line_and_exit_1() {
    let s = setup().await;
    let out = s
        .server
        .ssh(&s.key, "ghost", &[])
        .arg("true")
        .output()
        .unwrap();
    let (stdout, err) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("no shed named \"ghost\""), "{err}");
    // Also with a pty and no command.
    let out = s.server.ssh(&s.key, "ghost", &["-tt"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn a_stopped_shed_is_started_by_login() {
    let s = setup().await;
    let r = post_empty(&s.server.url("/api/sheds/demo/stop")).await;
    assert_eq!(r.json["status"], "stopped");
    let out = s.cli.run(&["exec", "demo", "--", "echo", "awake"]);
    assert_eq!(texts(&out).0, "awake\n", "{:?}", texts(&out));
    // The wait is explained on stderr, which stays out of the output.
    assert!(
        texts(&out).1.contains("shed demo is stopped; starting it"),
        "{:?}",
        texts(&out)
    );
    assert_eq!(
        get(&s.server.url("/api/sheds/demo")).await.json["status"],
        "running"
    );
}

#[tokio::test]
async fn sessions_new_starts_a_stopped_shed_and_a_listing_does_not() {
    let s = setup().await;
    let stopped = |r: &common::http::Reply| r.json["status"] == "stopped";
    let r = post_empty(&s.server.url("/api/sheds/demo/stop")).await;
    assert!(stopped(&r), "{}", r.json);

    // A look: says how to start it, starts nothing.
    let out = s.cli.run(&["sessions", "demo"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("shed demo is stopped; start it with `shed start demo`"),
        "{stdout}"
    );
    assert!(stopped(&get(&s.server.url("/api/sheds/demo")).await));

    // Work in it: started on demand, with a notice on stderr.
    let out = s
        .cli
        .run(&["sessions", "new", "demo", "agent", "--", "sleep", "300"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("shed demo is stopped; starting it"),
        "{stderr}"
    );
    assert!(
        stdout.starts_with("Started session agent in shed demo"),
        "{stdout}"
    );
    assert_eq!(
        get(&s.server.url("/api/sheds/demo")).await.json["status"],
        "running"
    );
    assert!(
        tmux_sessions(&s.server.container("demo")).contains(&"agent".to_string()),
        "{:?}",
        tmux_sessions(&s.server.container("demo"))
    );
}

#[tokio::test]
async fn attach_to_a_missing_session_says_it_creates_it() {
    let s = setup().await;
    let host = HostTmux::new();
    let env = s.cli.env();
    // stderr to a file: the attached tmux repaints the terminal over it.
    let attach = |pane: &str| {
        let err = s.cli.dir.path().join(format!("{pane}.err"));
        let command = format!(
            "{} attach demo -S fresh 2>'{}'",
            env!("CARGO_BIN_EXE_shed"),
            err.display()
        );
        host.start(pane, 100, 30, &env, &command);
        host.wait_for(pane, "tmux's status line", |screen| {
            screen.contains("[fresh]")
        });
        host.keys(pane, &["C-b", "d"]);
        assert!(wait_until(Duration::from_secs(10), || host.pane_dead(pane)));
        std::fs::read_to_string(err).unwrap()
    };
    let said = attach("one");
    assert!(
        said.contains("shed: no session \"fresh\" in shed demo; creating it"),
        "{said}"
    );
    assert_eq!(tmux_sessions(&s.server.container("demo")), ["fresh"]);
    // It exists now, once the server has seen it (it was made over ssh, and
    // the control channel's model follows tmux within a second or so): a
    // plain reattach, nothing to say.
    let listed = wait_until(Duration::from_secs(10), || {
        texts(&s.cli.run(&["sessions", "demo"])).0.contains("fresh")
    });
    assert!(listed, "the server never listed session fresh");
    let said = attach("two");
    assert!(!said.contains("creating it"), "{said}");
}

#[tokio::test]
async fn the_host_key_is_stable_across_restarts_and_checked_by_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let opts = ServerOpts {
        data_dir: Some(data.path().to_path_buf()),
        ..Default::default()
    };
    let first = TestServer::start_with(opts.clone());
    let key1 = get(&first.url("/api/ssh-host-key")).await.json["public_key"].clone();
    assert!(key1.as_str().unwrap().starts_with("ssh-ed25519 "));
    let mut first = first;
    first.terminate();
    let second = TestServer::start_sharing(ServerOpts {
        prefix: Some(first.prefix.clone()),
        ..opts
    });
    let key2 = get(&second.url("/api/ssh-host-key")).await.json["public_key"].clone();
    assert_eq!(key1, key2);

    // `server add` records the key beside the config, and ssh checks it.
    let key = SshKey::generate();
    second.authorize(&key);
    post(&second.url("/api/sheds"), r#"{"name":"hk"}"#).await;
    let cli = Cli::new();
    cli.add_server_with_key(&second, "s", &key);
    let known = std::fs::read_to_string(cli.dir.path().join("known_hosts")).unwrap();
    assert_eq!(
        known.trim(),
        format!("[127.0.0.1]:{} {}", second.ssh_port, key2.as_str().unwrap())
    );
    assert_eq!(
        cli.ok(&["exec", "hk", "--", "echo", "trusted"]),
        "trusted\n"
    );
    // A different host key at that address is refused.
    std::fs::write(
        cli.dir.path().join("known_hosts"),
        format!("[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHgzJ6L6BYpBULj0V6o2Hy0kMaNAGLxVa0XVJY5aWyTQ\n", second.ssh_port),
    )
    .unwrap();
    let out = cli.run(&["exec", "hk", "--", "echo", "trusted"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        texts(&out).1.contains("HOST IDENTIFICATION HAS CHANGED")
            || texts(&out).1.contains("verification failed")
    );
    drop(second);
    cleanup_prefix(&first.prefix);
}

#[tokio::test]
async fn attach_detach_reattach_and_resize_end_to_end() {
    let s = setup().await;
    let host = HostTmux::new();
    let shed_bin = env!("CARGO_BIN_EXE_shed");
    let env = s.cli.env();
    let attach = format!("{shed_bin} attach demo -S work");
    host.start("one", 100, 30, &env, &attach);
    host.wait_for("one", "tmux's status line", |screen| {
        screen.contains("[work]")
    });
    host.keys("one", &["echo marker-$((6*7))", "Enter"]);
    host.wait_for("one", "the command's output", |screen| {
        screen.contains("marker-42")
    });

    // Detach: the ssh (and shed) exits, the session lives on in the shed.
    host.keys("one", &["C-b", "d"]);
    assert!(wait_until(Duration::from_secs(10), || host.pane_dead("one")));
    assert_eq!(tmux_sessions(&s.server.container("demo")), ["work"]);

    // Reattach: the earlier output is still on the screen.
    host.start("two", 100, 30, &env, &attach);
    host.wait_for("two", "the earlier output", |screen| {
        screen.contains("marker-42")
    });

    // Resize the host pane: `tput cols` inside follows. A resize travels
    // ssh -> gateway -> Docker -> tmux, so ask again until it has arrived.
    let cols_become = |want: &str| {
        let ok = wait_until(Duration::from_secs(15), || {
            host.keys("two", &["clear; tput cols", "Enter"]);
            wait_until(Duration::from_millis(500), || {
                host.screen("two").lines().any(|l| l.trim() == want)
            })
        });
        assert!(ok, "columns never became {want}:\n{}", host.screen("two"));
    };
    cols_become("100");
    host.run(&["resize-window", "-t", "two", "-x", "72", "-y", "30"]);
    cols_become("72");

    // Ctrl-C interrupts the foreground program, as in a local terminal.
    host.keys("two", &["clear; sleep 300", "Enter"]);
    assert!(wait_until(Duration::from_secs(10), || !processes_matching(
        &s.server.container("demo"),
        "sleep 300"
    )
    .is_empty()));
    host.keys("two", &["C-c"]);
    host.keys("two", &["echo status=$?", "Enter"]);
    host.wait_for("two", "the interrupted status", |screen| {
        screen.contains("status=130")
    });

    // --new refuses an existing session, clearly.
    let out = s.cli.run(&["attach", "demo", "-S", "work", "--new"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        texts(&out).1.contains("duplicate session"),
        "{:?}",
        texts(&out)
    );
    // --existing refuses a typo instead of creating a new session.
    let out = s.cli.run(&["attach", "demo", "-S", "wrok", "--existing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        texts(&out)
            .1
            .contains("no session \"wrok\" in shed demo; did you mean `work`?"),
        "{:?}",
        texts(&out)
    );
    assert_eq!(tmux_sessions(&s.server.container("demo")), ["work"]);
    // Invalid session names never reach tmux.
    let out = s.cli.run(&["attach", "demo", "-S", "a.b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(texts(&out).1.contains("invalid session name"));
}

#[tokio::test]
async fn console_is_a_login_shell_in_the_workspace() {
    let s = setup().await;
    let host = HostTmux::new();
    let env = s.cli.env();
    let console = format!("{} console demo", env!("CARGO_BIN_EXE_shed"));
    host.start("c", 100, 30, &env, &console);
    host.keys(
        "c",
        &[
            "echo at:$(pwd):$SHED_NAME:$TERM; shopt -q login_shell && echo login-yes",
            "Enter",
        ],
    );
    // TERM comes from the pty request: the host tmux pane's terminal type.
    host.wait_for("c", "the shell's answer", |screen| {
        (screen.contains("at:/workspace:demo:screen") || screen.contains("at:/workspace:demo:tmux"))
            && screen.contains("login-yes")
    });
    host.keys("c", &["exit", "Enter"]);
    assert!(wait_until(Duration::from_secs(10), || host.pane_dead("c")));
}

#[tokio::test]
async fn exec_works_from_a_config_dir_with_a_space() {
    // macOS puts configs under "~/Library/Application Support".
    let server = TestServer::start();
    let key = SshKey::generate();
    server.authorize(&key);
    let r = post(&server.url("/api/sheds"), r#"{"name":"spaced"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let cli = Cli {
        dir: tempfile::Builder::new()
            .prefix("Application Support %h ")
            .tempdir()
            .unwrap(),
    };
    cli.add_server_with_key(&server, "s", &key);
    assert!(cli.dir.path().join("known_hosts").exists());
    assert_eq!(
        cli.ok(&["exec", "spaced", "--", "echo", "found"]),
        "found\n"
    );
}

#[tokio::test]
async fn ssh_config_install_and_uninstall() {
    let s = setup().await;
    let home = s.cli.dir.path();
    let ssh_dir = home.join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::write(ssh_dir.join("config"), "Host mine\n    User me\n").unwrap();

    let preview = s.cli.ok(&["ssh-config", "demo"]);
    assert!(preview.contains("Host shed-demo"), "{preview}");
    assert_eq!(
        std::fs::read_to_string(ssh_dir.join("config")).unwrap(),
        "Host mine\n    User me\n"
    );

    s.cli.ok(&["ssh-config", "--install"]);
    let config = std::fs::read_to_string(ssh_dir.join("config")).unwrap();
    assert!(
        config.contains("Host shed-demo") && config.ends_with("Host mine\n    User me\n"),
        "{config}"
    );
    assert!(config.contains(&format!("Port {}", s.server.ssh_port)));
    // The real ssh client reaches the shed through the alias.
    let out = std::process::Command::new("ssh")
        .args(["-F"])
        .arg(ssh_dir.join("config"))
        .args(["-o", "BatchMode=yes", "shed-demo", "echo", "via-alias"])
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    assert_eq!(texts(&out).0, "via-alias\n", "{:?}", texts(&out));

    // Installing twice does not duplicate; uninstall restores the user's file.
    s.cli.ok(&["ssh-config", "demo", "--install"]);
    let config = std::fs::read_to_string(ssh_dir.join("config")).unwrap();
    assert_eq!(config.matches("Host shed-demo").count(), 1, "{config}");
    s.cli.ok(&["ssh-config", "--uninstall"]);
    assert_eq!(
        std::fs::read_to_string(ssh_dir.join("config")).unwrap(),
        "Host mine\n    User me\n"
    );
}

#[tokio::test]
async fn ssh_signal_requests_reach_the_process() {
    use russh::keys::{load_secret_key, PrivateKeyWithHashAlg};
    use russh::{ChannelMsg, Sig};
    use std::sync::Arc;

    let s = setup().await;
    let config = Arc::new(russh::client::Config::default());
    let mut session = russh::client::connect(config, ("127.0.0.1", s.server.ssh_port), AnyHostKey)
        .await
        .unwrap();
    let key = load_secret_key(&s.key.private, None).unwrap();
    let auth = session
        .authenticate_publickey("demo", PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .unwrap();
    assert!(auth.success());
    let mut channel = session.channel_open_session().await.unwrap();
    channel
        .exec(
            true,
            "trap 'echo got-int; exit 5' INT; echo ready; while :; do sleep 0.1; done",
        )
        .await
        .unwrap();
    let mut output = String::new();
    let mut exit = None;
    let mut signalled = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, channel.wait()).await {
        match msg {
            ChannelMsg::Data { data } => {
                output.push_str(&String::from_utf8_lossy(&data));
                if output.contains("ready") && !signalled {
                    channel.signal(Sig::INT).await.unwrap();
                    signalled = true;
                }
            }
            ChannelMsg::ExitStatus { exit_status } => exit = Some(exit_status),
            _ => {}
        }
    }
    assert!(output.contains("got-int"), "{output}");
    assert_eq!(exit, Some(5));
}

#[tokio::test]
async fn every_exec_runs_as_the_configured_container_user() {
    let server = TestServer::start_with_config("container_user = \"shed\"\n");
    let key = SshKey::generate();
    server.authorize(&key);
    let r = post(
        &server.url("/api/sheds"),
        r#"{"name":"u","repo":"file:///srv/git/hello.git"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let cli = Cli::new();
    cli.add_server_with_key(&server, "s", &key);
    assert_eq!(cli.ok(&["exec", "u", "--", "id", "-un"]), "shed\n");
    // The clone ran as that user too, so the user owns the checkout.
    assert_eq!(
        cli.ok(&["exec", "u", "--", "stat", "-c", "%U", "/workspace/hello"]),
        "shed\n"
    );
    // tmux keeps one socket per user: a session made through the gateway is
    // visible to the same user's tmux, which is what the sessions API will use.
    cli.ok(&[
        "exec",
        "u",
        "--",
        "tmux",
        "new-session",
        "-d",
        "-s",
        "probe",
    ]);
    let container = server.container("u");
    assert_eq!(tmux_sessions_of("shed", &container), ["probe"]);
}

#[tokio::test]
async fn port_forwarding_reaches_only_the_sheds_loopback() {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};

    let s = setup().await;
    let container = s.server.container("demo");
    // A one-shot listener inside the shed: greets, then records what it gets.
    docker(&[
        "exec",
        "-d",
        &container,
        "sh",
        "-c",
        "echo hello-from-shed | nc -N -l 127.0.0.1 7777 > /tmp/got",
    ]);
    assert!(wait_until(Duration::from_secs(10), || !processes_matching(
        &container, "nc -N -l"
    )
    .is_empty()));

    let free_port = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (good, bad) = (free_port(), free_port());
    let forwards = [
        format!("{good}:127.0.0.1:7777"),
        format!("{bad}:example.invalid:80"),
    ];
    let _ssh = ChildGuard(
        s.server
            .ssh(
                &s.key,
                "demo",
                &["-N", "-L", &forwards[0], "-L", &forwards[1]],
            )
            .spawn()
            .unwrap(),
    );
    let connect = |port: u16| {
        let mut stream = None;
        wait_until(Duration::from_secs(10), || {
            stream = TcpStream::connect(("127.0.0.1", port)).ok();
            stream.is_some()
        });
        stream.expect("ssh -L never listened")
    };

    let mut stream = connect(good);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"ping\n").unwrap();
    let mut greeting = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut greeting).unwrap();
    assert_eq!(greeting, "hello-from-shed\n");
    stream.shutdown(Shutdown::Both).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || docker(&[
            "exec", &container, "cat", "/tmp/got"
        ]) == "ping"),
        "the listener did not receive the client's bytes"
    );

    // Anything but the shed's loopback is refused before any connection is made.
    let mut refused = connect(bad);
    refused
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut nothing = Vec::new();
    let _ = refused.read_to_end(&mut nothing);
    assert!(nothing.is_empty());
    assert!(
        wait_until(Duration::from_secs(5), || s
            .server
            .log()
            .contains("port forward refused")),
        "{}",
        s.server.log()
    );
}
