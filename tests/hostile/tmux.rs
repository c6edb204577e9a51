//! Hostile-input tests: user text reaches tmux byte for byte, and a shed
//! (or a wedged tmux in it) cannot make the server misbehave.

use std::process::Command;
use std::time::Duration;

use crate::common::http::{delete, get, post};
use crate::common::*;

/// A small deterministic generator (xorshift64*), so a failing case can be
/// replayed from the seed printed with it.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A string made of pieces tmux, a shell or a format parser would
    /// treat specially, plus Unicode and every control character but NUL.
    fn hostile(&mut self, newlines: bool) -> String {
        const PIECES: &[&str] = &[
            ";", "\\;", "\\", "\\\\;", "#{", "#(", "#[", "}", ")", "##", "#", "'", "\"", "`", "$",
            "$(", "-", "--", " ", "~", "*", "{", "a", "Z", "0", "é", "漢", "😀", "\u{301}",
            "\u{85}", "\u{200b}", "C-c", "Enter", "%", ",",
        ];
        let mut s = String::new();
        if self.below(4) == 0 {
            s.push('-');
        }
        for _ in 0..self.below(12) + 1 {
            if self.below(5) == 0 {
                // A control character: 0x01..=0x1f or DEL.
                let c = match self.below(33) {
                    32 => '\u{7f}',
                    n => char::from(n as u8 + 1),
                };
                if newlines || (c != '\n' && c != '\r') {
                    s.push(c);
                }
            } else {
                s.push_str(PIECES[self.below(PIECES.len())]);
            }
        }
        match self.below(4) {
            0 => s.push(';'),
            1 => s.push_str("\\;"),
            _ => {}
        }
        s
    }
}

/// Seed for the generators; `SHED_PROP_SEED` replays a failure.
fn seed() -> u64 {
    std::env::var("SHED_PROP_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0x5eed_cafe_f00d_0001)
        // xorshift never leaves the all-zero state.
        .max(1)
}

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

/// Property: text sent through `POST {sessions}/NAME/input` arrives in the
/// program byte for byte. `sessions` is the sessions URL of a running shed
/// whose container is `container`, so another request path (tmux control
/// mode, later) can be checked with the same cases.
///
/// The program sets its tty raw (no echo, no signals, no CR/LF mapping, no
/// flow control, no ^V/^O) before recording stdin, so every control
/// character except NUL reaches it literally; NUL is refused by the API.
pub async fn input_arrives_exactly(sessions: &str, container: &str, cases: usize) {
    let r = post(
        sessions,
        r#"{"name":"rec","command":"stty raw -echo -iexten; exec cat > /tmp/rec"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let (ready, _) = eventually(Duration::from_secs(15), || async {
        let mode = exec_bytes(container, &["sh", "-c", "test -e /tmp/rec && echo yes"]);
        (mode.starts_with(b"yes"), ())
    })
    .await;
    assert!(ready, "the recorder did not start");
    let mut gen = Gen(seed());
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
            seed(),
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(&got)
        );
    }
    let r = delete(&format!("{sessions}/rec")).await;
    assert_eq!(r.status, 204, "{}", r.json);
}

/// Property: a session's `command`, `env` values and `cwd` reach the
/// program byte for byte through `POST {sessions}`: the command compares its
/// own argv (the last argument of the shell, from /proc) with what was sent,
/// prints the env value, and `pwd -P` names the hostile directory.
pub async fn session_args_arrive_exactly(sessions: &str, container: &str, cases: usize) {
    let mut gen = Gen(seed() ^ 0x00c0_ffee);
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
            seed(),
            r.json
        );
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
            seed()
        );
        let env = exec_bytes(container, &["cat", &format!("/tmp/e{case}")]);
        assert_eq!(
            String::from_utf8_lossy(&env),
            value,
            "case {case} (seed {}): env value changed",
            seed()
        );
        let pwd = exec_bytes(container, &["cat", &format!("/tmp/p{case}")]);
        assert_eq!(
            String::from_utf8_lossy(&pwd),
            format!("{cwd}\n"),
            "case {case} (seed {}): cwd changed",
            seed()
        );
        let r = delete(&format!("{sessions}/s{case}")).await;
        assert_eq!(r.status, 204, "{}", r.json);
    }
}

#[tokio::test]
async fn input_reaches_the_program_byte_for_byte() {
    let server = TestServer::start();
    make_shed(&server, "prop").await;
    input_arrives_exactly(
        &server.url("/api/sheds/prop/sessions"),
        &server.container("prop"),
        40,
    )
    .await;
}

#[tokio::test]
async fn command_env_and_cwd_reach_the_program_byte_for_byte() {
    let server = TestServer::start();
    make_shed(&server, "prop").await;
    session_args_arrive_exactly(
        &server.url("/api/sheds/prop/sessions"),
        &server.container("prop"),
        20,
    )
    .await;
}

/// Waits until shed `shed`'s sessions (it has one) are served by its
/// control channel.
async fn wait_for_channel(server: &TestServer, shed: &str) {
    let url = server.url(&format!("/api/sheds/{shed}/sessions"));
    let (up, last) = eventually(Duration::from_secs(20), || async {
        let r = get(&url).await;
        let up = r.json["sessions"]
            .as_array()
            .is_some_and(|all| !all.is_empty() && all.iter().all(|s| s["source"] == "channel"));
        (up, r.json)
    })
    .await;
    assert!(up, "no control channel: {last}");
}

#[tokio::test]
async fn input_and_session_args_arrive_byte_for_byte_over_the_channel() {
    let server = TestServer::start();
    make_shed(&server, "chan").await;
    let sessions = server.url("/api/sheds/chan/sessions");
    let r = post(&sessions, r#"{"name":"warm"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    wait_for_channel(&server, "chan").await;
    let container = server.container("chan");
    input_arrives_exactly(&sessions, &container, 40).await;
    session_args_arrive_exactly(&sessions, &container, 20).await;
    // Still the channel that carried them, not a fallback.
    wait_for_channel(&server, "chan").await;
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

#[tokio::test]
async fn a_flooding_tmux_does_not_grow_the_server_without_bound() {
    // A compromised shed answers `tmux list-sessions` with 256 MiB: the
    // server keeps a bounded tail, not all of it.
    let server = TestServer::start();
    make_shed(&server, "flood").await;
    let container = server.container("flood");
    docker(&[
        "exec",
        &container,
        "sh",
        "-c",
        "t=$(command -v tmux); mv $t $t.real; \
         printf '#!/bin/sh\\nexec head -c 268435456 /dev/zero\\n' > $t; chmod +x $t",
    ]);
    let before = peak_rss_kib(&server);
    let r = get(&server.url("/api/sheds/flood/sessions")).await;
    assert!(r.status < 600, "{}", r.json);
    let grown_mib = (peak_rss_kib(&server).saturating_sub(before)) / 1024;
    assert!(
        grown_mib < 100,
        "the server's peak memory grew by {grown_mib} MiB reading one tmux answer"
    );
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
    let server = TestServer::start_with(ServerOpts {
        extra: "control_mode = false\n".into(),
        ..Default::default()
    });
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
