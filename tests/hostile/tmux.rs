//! Hostile-input tests: user text reaches tmux byte for byte, and a shed
//! (or a wedged tmux in it) cannot make the server misbehave.

use std::process::Command;
use std::time::Duration;

use crate::common::http::{delete, get, post};
use crate::common::*;

/// `docker exec CONTAINER ARGS` with the raw bytes of stdout.
fn exec_bytes(container: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new("docker")
        .arg("exec")
        .arg(container)
        .args(args)
        .output()
        .expect("docker exec");
    out.stdout
}

/// The two ways a session request reaches tmux in a shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// A `docker exec` of `tmux` per request (`control_mode = false`).
    Exec,
    /// The shed's tmux control channel.
    Channel,
}

impl Path {
    /// The `source` a session answered on this path reports.
    fn source(self) -> &'static str {
        match self {
            Path::Exec => "exec",
            Path::Channel => "channel",
        }
    }
}

/// A running shed `shed` whose session requests take `path`: on a server
/// pinned to that mode (whatever `SHED_TEST_CONTROL_MODE` says), and for the
/// channel only once it serves the shed's sessions.
async fn shed_on(path: Path, shed: &str) -> TestServer {
    let server =
        TestServer::start_with_config(format!("control_mode = {}\n", path == Path::Channel));
    make_shed(&server, shed).await;
    if path == Path::Channel {
        let r = post(
            &server.url(&format!("/api/sheds/{shed}/sessions")),
            r#"{"name":"warm"}"#,
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.json);
        wait_for_channel(&server, shed).await;
    }
    server
}

/// Whether the shed at `sessions` has sessions and every one is answered by
/// `path`, and the listing.
async fn all_on(path: Path, sessions: &str) -> (bool, serde_json::Value) {
    let r = get(sessions).await;
    let on = r.json["sessions"]
        .as_array()
        .is_some_and(|all| !all.is_empty() && all.iter().all(|s| s["source"] == path.source()));
    (on, r.json)
}

/// Checks that the shed's sessions are still answered by `path`: the cases
/// went that way, not through a fallback.
async fn still_on(path: Path, sessions: &str) {
    let (on, listing) = all_on(path, sessions).await;
    assert!(on, "not every session is on the {path:?} path: {listing}");
}

/// Property: text sent through `POST {sessions}/NAME/input` arrives in the
/// program byte for byte. `sessions` is the sessions URL of a running shed
/// whose container is `container`, whose requests take `path`.
///
/// The program sets its tty raw (no echo, no signals, no CR/LF mapping, no
/// flow control, no ^V/^O) before recording stdin, so every control
/// character except NUL reaches it literally; NUL is refused by the API.
async fn input_arrives_exactly(path: Path, sessions: &str, container: &str, cases: usize) {
    let r = post(
        sessions,
        r#"{"name":"rec","command":"stty raw -echo -iexten; exec cat > /tmp/rec"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["source"], path.source(), "{}", r.json);
    let (ready, _) = eventually(Duration::from_secs(15), || async {
        let mode = exec_bytes(container, &["sh", "-c", "test -e /tmp/rec && echo yes"]);
        (mode.starts_with(b"yes"), ())
    })
    .await;
    assert!(ready, "the recorder did not start");
    let mut gen = HostileGen::new(prop_seed());
    let mut expected: Vec<u8> = Vec::new();
    for case in 0..cases {
        let text = gen.hostile(true);
        let body = serde_json::json!({ "text": text, "enter": false }).to_string();
        let r = post(&format!("{sessions}/rec/input"), &body).await;
        assert_eq!(r.status, 204, "case {case} {text:?}: {}", r.json);
        expected.extend_from_slice(text.as_bytes());
        let (done, got) = eventually(Duration::from_secs(10), || async {
            let got = exec_bytes(container, &["cat", "/tmp/rec"]);
            (got.len() >= expected.len(), got)
        })
        .await;
        assert!(
            done && got == expected,
            "case {case} (seed {}): sent {text:?}\nexpected {:?}\n     got {:?}",
            prop_seed(),
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(&got)
        );
    }
    // Checked while the recorder still runs, so the list is not empty.
    still_on(path, sessions).await;
    let r = delete(&format!("{sessions}/rec")).await;
    assert_eq!(r.status, 204, "{}", r.json);
}

/// Property: a session's `command`, `env` values and `cwd` reach the
/// program byte for byte through `POST {sessions}`: the command compares its
/// own argv (the last argument of the shell, from /proc) with what was sent,
/// prints the env value, and `pwd -P` names the hostile directory. Each
/// create must be answered by `path`.
async fn session_args_arrive_exactly(path: Path, sessions: &str, container: &str, cases: usize) {
    let mut gen = HostileGen::new(prop_seed() ^ 0x00c0_ffee);
    for case in 0..cases {
        // The recording part comes first and the hostile text follows in a
        // comment, so whatever it contains the records are written.
        let lead = if gen.below(3) == 0 {
            "-shed-x 2>/dev/null; "
        } else {
            ""
        };
        let command = format!(
            "{lead}printf %s \"$SHED_P\" > /tmp/e{case}; pwd -P > /tmp/p{case}; \
             cat /proc/$$/cmdline > /tmp/c{case} # {}",
            gen.hostile(false)
        );
        let value = gen.hostile(true);
        // A directory name may hold anything but '/' and NUL.
        let dir_name: String = gen.hostile(true).replace('/', "_");
        let cwd = format!("/tmp/d{case}-{dir_name}");
        Command::new("docker")
            .args(["exec", container, "mkdir", "-p", "--", &cwd])
            .output()
            .expect("mkdir");
        let body = serde_json::json!({
            "name": format!("s{case}"),
            "command": command,
            "cwd": cwd,
            "env": { "SHED_P": value },
        })
        .to_string();
        let r = post(sessions, &body).await;
        assert_eq!(
            r.status,
            201,
            "case {case} (seed {}): command {command:?} cwd {cwd:?}: {}",
            prop_seed(),
            r.json
        );
        assert_eq!(r.json["source"], path.source(), "case {case}: {}", r.json);
        let file = format!("/tmp/c{case}");
        let (done, argv) = eventually(Duration::from_secs(10), || async {
            let argv = exec_bytes(container, &["cat", &file]);
            (!argv.is_empty(), argv)
        })
        .await;
        assert!(done, "case {case}: the command never ran: {command:?}");
        let last = argv
            .strip_suffix(b"\0")
            .unwrap_or(&argv)
            .rsplit(|b| *b == 0)
            .next()
            .unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(last),
            command,
            "case {case} (seed {}): command changed on its way to sh -c",
            prop_seed()
        );
        let env = exec_bytes(container, &["cat", &format!("/tmp/e{case}")]);
        assert_eq!(
            String::from_utf8_lossy(&env),
            value,
            "case {case} (seed {}): env value changed",
            prop_seed()
        );
        let pwd = exec_bytes(container, &["cat", &format!("/tmp/p{case}")]);
        assert_eq!(
            String::from_utf8_lossy(&pwd),
            format!("{cwd}\n"),
            "case {case} (seed {}): cwd changed",
            prop_seed()
        );
        let r = delete(&format!("{sessions}/s{case}")).await;
        assert_eq!(r.status, 204, "{}", r.json);
    }
}

/// Runs [`input_arrives_exactly`] on a fresh shed whose requests take `path`.
async fn input_case(path: Path) {
    let server = shed_on(path, "prop").await;
    input_arrives_exactly(
        path,
        &server.url("/api/sheds/prop/sessions"),
        &server.container("prop"),
        40,
    )
    .await;
}

/// Runs [`session_args_arrive_exactly`] on a fresh shed whose requests take
/// `path`.
async fn session_args_case(path: Path) {
    let server = shed_on(path, "prop").await;
    let sessions = server.url("/api/sheds/prop/sessions");
    session_args_arrive_exactly(path, &sessions, &server.container("prop"), 20).await;
    if path == Path::Channel {
        // The warm session is still there to be listed.
        still_on(path, &sessions).await;
    }
}

#[tokio::test]
async fn input_reaches_the_program_byte_for_byte_on_the_exec_path() {
    input_case(Path::Exec).await;
}

#[tokio::test]
async fn input_reaches_the_program_byte_for_byte_over_the_channel() {
    input_case(Path::Channel).await;
}

#[tokio::test]
async fn command_env_and_cwd_reach_the_program_byte_for_byte_on_the_exec_path() {
    session_args_case(Path::Exec).await;
}

#[tokio::test]
async fn command_env_and_cwd_reach_the_program_byte_for_byte_over_the_channel() {
    session_args_case(Path::Channel).await;
}

/// Waits until shed `shed`'s sessions (it has one) are served by its
/// control channel.
async fn wait_for_channel(server: &TestServer, shed: &str) {
    let url = server.url(&format!("/api/sheds/{shed}/sessions"));
    let (up, last) = eventually(Duration::from_secs(20), || all_on(Path::Channel, &url)).await;
    assert!(up, "no control channel: {last}");
}

#[tokio::test]
async fn the_reported_trailing_semicolon_cases() {
    // The exact reproductions from the issue, kept as named cases.
    let server = TestServer::start();
    make_shed(&server, "semi").await;
    let sessions = server.url("/api/sheds/semi/sessions");
    let container = server.container("semi");
    let r = post(
        &sessions,
        r#"{"name":"rec","command":"stty raw -echo -iexten; exec cat > /tmp/rec"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    wait_until(Duration::from_secs(15), || {
        exec_bytes(&container, &["sh", "-c", "test -e /tmp/rec && echo y"]).starts_with(b"y")
    });
    let sent = ["echo a\\; b; echo end;", "X\\;", "|"];
    for text in sent {
        let body = serde_json::json!({ "text": text }).to_string();
        let r = post(&format!("{sessions}/rec/input"), &body).await;
        assert_eq!(r.status, 204, "{}", r.json);
    }
    let expected = sent.concat();
    let (_, got) = eventually(Duration::from_secs(10), || async {
        let got = exec_bytes(&container, &["cat", "/tmp/rec"]);
        (got.len() >= expected.len(), got)
    })
    .await;
    assert_eq!(String::from_utf8_lossy(&got), expected);

    // A cwd with a format in it is a directory name, not a command.
    let dir = "/tmp/#(touch /tmp/pwned)#{session_name}";
    docker(&["exec", &container, "mkdir", "-p", dir]);
    let body = serde_json::json!({"name": "fmt", "cwd": dir, "command": "-x; sleep 600"});
    let r = post(&sessions, &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["cwd"], dir);
    assert!(!docker_ok(&[
        "exec",
        &container,
        "test",
        "-e",
        "/tmp/pwned"
    ]));
}

/// The server's peak resident memory, in KiB.
fn peak_rss_kib(server: &TestServer) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What the flooding tmux writes: 16 times the server's tail of an exec's
/// output (`EXEC_OUTPUT_LIMIT`, 16 MiB).
const FLOOD_MIB: u64 = 256;
/// Most the server's peak memory may grow while it reads the flood: the
/// tail, its copy as text and the stream's buffers, well under the flood.
const FLOOD_GROWTH_BOUND_MIB: u64 = 64;

#[tokio::test]
async fn a_flooding_tmux_does_not_grow_the_server_without_bound() {
    // A compromised shed answers `tmux list-sessions` with 256 MiB and then
    // hangs: the server keeps a bounded tail, not all of it, and the call
    // times out. Pinned to the exec path: a control channel attached to the
    // real tmux would never run the replaced binary.
    let server = TestServer::start_with_config("control_mode = false\n");
    make_shed(&server, "flood").await;
    let container = server.container("flood");
    // The marker is written once the last byte is in the pipe, so its
    // presence proves the server read (all but a pipe buffer of) the flood.
    let script = format!(
        "t=$(command -v tmux); mv $t $t.real; \
         printf '#!/bin/sh\\nhead -c {} /dev/zero\\ntouch /tmp/flooded\\nexec sleep 900\\n' > $t; \
         chmod +x $t",
        FLOOD_MIB * 1024 * 1024
    );
    docker(&["exec", &container, "sh", "-c", &script]);
    let before = peak_rss_kib(&server);
    let r = get(&server.url("/api/sheds/flood/sessions")).await;
    assert_eq!((r.status, r.code()), (504, "TIMEOUT"), "{}", r.json);
    assert!(
        docker_ok(&["exec", &container, "test", "-e", "/tmp/flooded"]),
        "the server did not read the {FLOOD_MIB} MiB flood before the call timed out"
    );
    let grown_mib = (peak_rss_kib(&server).saturating_sub(before)) / 1024;
    assert!(
        grown_mib < FLOOD_GROWTH_BOUND_MIB,
        "the server's peak memory grew by {grown_mib} MiB reading one {FLOOD_MIB} MiB tmux answer"
    );
    eprintln!("peak memory grew by {grown_mib} MiB reading {FLOOD_MIB} MiB");
    let health = get(&server.url("/api/health")).await;
    assert_eq!(health.status, 200, "{}", health.json);
}

/// Processes in a container whose command line starts with `prefix`, read
/// from /proc inside it.
fn processes(container: &str, prefix: &str) -> usize {
    let script = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done";
    let out = exec_bytes(container, &["sh", "-c", script]);
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .count()
}

#[tokio::test]
async fn timed_out_tmux_calls_do_not_pile_up_in_the_shed() {
    // A replaced tmux binary wedges execs, not a control channel already
    // attached to a live tmux server: this tests the exec path's bounds.
    let server = TestServer::start_with_config("control_mode = false\n");
    make_shed(&server, "wedged").await;
    let container = server.container("wedged");
    wedge_tmux(&container, 900);
    // Distinct requests, so none is coalesced into another.
    let polls = (1..=4).map(|lines| {
        let url = server.url(&format!(
            "/api/sheds/wedged/sessions/x/output?lines={lines}"
        ));
        async move { get(&url).await }
    });
    for r in futures_util::future::join_all(polls).await {
        assert_eq!((r.status, r.code()), (504, "TIMEOUT"), "{}", r.json);
    }
    let (gone, left) = eventually(Duration::from_secs(15), || async {
        let left = processes(&container, "sleep 900");
        (left == 0, left)
    })
    .await;
    assert!(gone, "{left} timed-out tmux calls still run in the shed");
}

#[tokio::test]
async fn credentials_in_a_repo_url_are_never_stored_or_shown() {
    let server = TestServer::start();
    let sheds = server.url("/api/sheds");
    // The test image maps this URL to its local repository.
    let r = post(
        &sheds,
        r#"{"name":"cred","repo":"https://user:s3cret@git.invalid/hello.git"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.json["repo"], "https://git.invalid/hello.git");
    let r = get(&server.url("/api/sheds/cred")).await;
    assert_eq!(r.json["repo"], "https://git.invalid/hello.git");
    let labels = docker(&[
        "inspect",
        "-f",
        "{{json .Config.Labels}}",
        &server.container("cred"),
    ]);
    assert!(!labels.contains("s3cret"), "{labels}");

    let r = post(
        &sheds,
        r#"{"name":"leak","repo":"https://user:s3cret@127.0.0.1:9/nope.git"}"#,
    )
    .await;
    assert_eq!(r.code(), "CLONE_FAILED", "{}", r.json);
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("https://127.0.0.1:9/nope.git"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    assert!(!server.log().contains("s3cret"), "{}", server.log());
}

#[tokio::test]
async fn another_prefix_cannot_reach_or_adopt_a_sheds_volume() {
    // Prefix P with shed "shed-demo" and prefix "P-shed" with shed "demo"
    // were both "P-shed-shed-demo": the second server adopted the first's
    // kept workspace.
    let a = TestServer::start();
    let b = TestServer::start_with(ServerOpts {
        prefix: Some(format!("{}-shed", a.prefix)),
        ..Default::default()
    });
    let r = post(&a.url("/api/sheds"), r#"{"name":"shed-demo"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    docker(&[
        "exec",
        &a.container("shed-demo"),
        "sh",
        "-c",
        "echo secret-of-a > /workspace/notes",
    ]);
    let r = delete(&a.url("/api/sheds/shed-demo?keep_volume=true")).await;
    assert_eq!(r.status, 204, "{}", r.json);
    let r = post(&b.url("/api/sheds"), r#"{"name":"demo"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert!(!docker_ok(&[
        "exec",
        &b.container("demo"),
        "test",
        "-e",
        "/workspace/notes"
    ]));
    assert_ne!(a.volume("shed-demo"), b.volume("demo"));
    assert!(docker_ok(&["volume", "inspect", &a.volume("shed-demo")]));

    // A volume under b's name that carries a's labels is refused, not adopted.
    let planted = b.volume("planted");
    let marker = format!("{}.shed=true", a.prefix);
    let name = format!("{}.shed.name=planted", a.prefix);
    docker(&[
        "volume", "create", "--label", &marker, "--label", &name, &planted,
    ]);
    let r = post(&b.url("/api/sheds"), r#"{"name":"planted"}"#).await;
    let _ = std::process::Command::new("docker")
        .args(["volume", "rm", "-f", &planted])
        .output();
    assert_eq!((r.status, r.code()), (409, "VOLUME_CONFLICT"), "{}", r.json);
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&planted), "{message}");
}
