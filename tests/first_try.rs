//! "A new user succeeds on the first try": the CLI's answers to common
//! mistakes and edge cases, against a scripted fake API server (no Docker),
//! so each case is exact and fast.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

/// What the fake server answers: `(method, path with query)` to status and body.
type Handler = dyn Fn(&str, &str) -> (u16, Value) + Send + Sync;

/// A scripted shed-server on 127.0.0.1, one request per connection.
struct Fake {
    port: u16,
}

impl Fake {
    fn start(handler: impl Fn(&str, &str) -> (u16, Value) + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handler: Arc<Handler> = Arc::new(handler);
        // The thread ends with the test process; it holds nothing to clean up.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut first = String::new();
                    if reader.read_line(&mut first).is_err() {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; length];
                    let _ = reader.read_exact(&mut body);
                    let mut parts = first.split(' ');
                    let method = parts.next().unwrap_or_default();
                    let path = parts.next().unwrap_or_default();
                    let (status, body) = handler(method, path);
                    // A 204 has no body.
                    let body = if status == 204 {
                        String::new()
                    } else {
                        body.to_string()
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Fake { port }
    }
}

/// A CLI config naming the fake server `fake`, in a temp dir.
struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn for_fake(fake: &Fake) -> Cli {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "default_server = \"fake\"\n[servers.fake]\nhost = \"127.0.0.1\"\nhttp_port = {}\n",
                fake.port
            ),
        )
        .unwrap();
        Cli { dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shed"));
        cmd.args(args)
            .env("SHED_CONFIG", self.dir.path().join("config.toml"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out: Output = self.command(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn shed(name: &str, status: &str) -> Value {
    json!({
        "name": name,
        "status": status,
        "created_at": "2026-01-01T00:00:00Z",
        "image": "shed-base:latest",
        "repo": null,
        "container_id": "0123456789ab",
        "server": "fake",
    })
}

fn error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

fn session(shed: &str, name: &str) -> Value {
    json!({
        "name": name,
        "shed": shed,
        "server": "fake",
        "status": "idle",
        "current_command": "bash",
        "attached": 0,
        "windows": 1,
        "idle_seconds": 0,
        "cwd": "/workspace",
        "created_at": "2026-01-01T00:00:00Z",
        "last_activity": "2026-01-01T00:00:00Z",
    })
}

/// The last `lines=N` lines of `scrollback`, as the server's output endpoint answers.
fn output(path: &str, scrollback: &[String]) -> Value {
    let n: usize = path
        .split("lines=")
        .nth(1)
        .and_then(|v| v.split('&').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let tail = &scrollback[scrollback.len().saturating_sub(n)..];
    json!({"session": "agent", "shed": "demo", "output": tail.join("\n")})
}

#[test]
fn peek_follow_prints_each_line_once_and_ends_cleanly_with_the_session() {
    // The pane holds 10 lines; a line is added after the second fetch, and
    // from the fourth fetch on the session is gone. The first fetch asked for
    // 2 lines and the later ones for more: the old client printed the whole
    // scrollback again after its first tick, then failed with rc 1.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let fake = Fake::start(move |method, path| match (method, path) {
        ("GET", "/api/sheds/demo") => (200, shed("demo", "running")),
        ("GET", p) if p.starts_with("/api/sheds/demo/sessions/agent/output") => {
            let call = counter.fetch_add(1, Ordering::SeqCst);
            let count = if call < 2 { 10 } else { 11 };
            if call >= 3 {
                return (
                    404,
                    error("SESSION_NOT_FOUND", "no session named \"agent\""),
                );
            }
            let scrollback: Vec<String> = (1..=count).map(|i| format!("line {i}")).collect();
            (200, output(p, &scrollback))
        }
        _ => (404, error("NOT_FOUND", "no such endpoint")),
    });
    let cli = Cli::for_fake(&fake);
    let (rc, stdout, stderr) =
        cli.run(&["sessions", "peek", "demo", "agent", "-n", "2", "--follow"]);
    assert_eq!(
        stdout, "line 9\nline 10\nline 11\nSession agent in shed demo ended.\n",
        "{stderr}"
    );
    assert_eq!(rc, Some(0), "{stderr}");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[test]
fn a_wrong_token_is_called_wrong_and_a_missing_one_missing() {
    let fake = Fake::start(|_, _| (401, error("UNAUTHORIZED", "missing or invalid API token")));
    let cli = Cli::for_fake(&fake);
    let port = fake.port.to_string();
    let (rc, _, stderr) = cli.run(&[
        "server",
        "add",
        "127.0.0.1",
        "--port",
        &port,
        "--token",
        "nope",
    ]);
    assert_eq!(rc, Some(1), "{stderr}");
    assert!(
        stderr.contains("refused the API token given with --token"),
        "{stderr}"
    );
    assert!(!stderr.contains("pass --token"), "{stderr}");
    let (rc, _, stderr) = cli.run(&["server", "add", "127.0.0.1", "--port", &port]);
    assert_eq!(rc, Some(1), "{stderr}");
    assert!(
        stderr.contains("requires an API token; pass --token"),
        "{stderr}"
    );
}

#[test]
fn start_and_stop_are_idempotent_for_the_cli() {
    let fake = Fake::start(|method, path| match (method, path) {
        ("GET", "/api/sheds/demo") => (200, shed("demo", "stopped")),
        ("GET", "/api/sheds/live") => (200, shed("live", "running")),
        ("POST", "/api/sheds/demo/stop") => (
            409,
            error("SHED_ALREADY_STOPPED", "shed demo is not running"),
        ),
        ("POST", "/api/sheds/live/start") => (
            409,
            error("SHED_ALREADY_RUNNING", "shed live is already running"),
        ),
        _ => (404, error("NOT_FOUND", "no such endpoint")),
    });
    let cli = Cli::for_fake(&fake);
    let (rc, stdout, stderr) = cli.run(&["stop", "demo"]);
    assert_eq!(rc, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "Shed demo is already stopped on fake\n");
    let (rc, stdout, stderr) = cli.run(&["start", "live"]);
    assert_eq!(rc, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "Shed live is already running on fake\n");
}

#[test]
fn a_stopped_shed_is_started_on_demand_but_a_listing_only_names_the_start_command() {
    // One behaviour: every command that works in a shed starts a stopped
    // one with a notice; a listing is a look and never starts anything.
    let starts = Arc::new(AtomicUsize::new(0));
    let counter = starts.clone();
    let fake = Fake::start(move |method, path| match (method, path) {
        ("GET", "/api/sheds/demo") => (200, shed("demo", "stopped")),
        ("POST", "/api/sheds/demo/start") => {
            counter.fetch_add(1, Ordering::SeqCst);
            (200, shed("demo", "running"))
        }
        ("POST", "/api/sheds/demo/sessions") => (201, session("demo", "agent")),
        ("GET", p) if p.starts_with("/api/sheds/demo/sessions/agent/output") => {
            (200, output(p, &["hello".to_string()]))
        }
        ("POST", "/api/sheds/demo/sessions/agent/input")
        | ("DELETE", "/api/sheds/demo/sessions/agent") => (204, Value::Null),
        // Only a shed that was not started gets here.
        (_, p) if p.starts_with("/api/sheds/demo/sessions") => {
            (409, error("SHED_NOT_RUNNING", "shed demo is not running"))
        }
        _ => (404, error("NOT_FOUND", "no such endpoint")),
    });
    let cli = Cli::for_fake(&fake);

    let (rc, stdout, stderr) = cli.run(&["sessions", "demo"]);
    assert_eq!(rc, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "No sessions: shed demo is stopped; start it with `shed start demo`\n"
    );
    let (rc, stdout, stderr) = cli.run(&["-s", "fake", "sessions", "demo", "--json"]);
    assert_eq!(rc, Some(0), "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json, json!({"sessions": [], "errors": []}));
    assert!(
        stderr.contains("shed demo is stopped; start it with `shed -s fake start demo`"),
        "{stderr}"
    );
    assert_eq!(
        starts.load(Ordering::SeqCst),
        0,
        "a listing started the shed"
    );

    for (i, args) in [
        &["sessions", "new", "demo", "agent"][..],
        &["sessions", "peek", "demo", "agent"],
        &["sessions", "send", "demo", "agent", "hi"],
        &["sessions", "kill", "demo", "agent"],
    ]
    .into_iter()
    .enumerate()
    {
        let (rc, stdout, stderr) = cli.run(args);
        assert_eq!(rc, Some(0), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("shed demo is stopped; starting it"),
            "{args:?}: {stderr}"
        );
        assert_eq!(starts.load(Ordering::SeqCst), i + 1, "{args:?}");
    }
}

#[test]
fn typos_get_a_did_you_mean() {
    let fake = Fake::start(|method, path| match (method, path) {
        ("GET", "/api/sheds/demo") => (200, shed("demo", "running")),
        ("GET", "/api/sheds") => (200, json!({"sheds": [shed("demo", "running")]})),
        ("GET", "/api/sheds/demo/sessions") => {
            (200, json!({"sessions": [session("demo", "agent")]}))
        }
        ("GET", p) if p.starts_with("/api/sheds/") && !p.contains("/sessions") => {
            (404, error("SHED_NOT_FOUND", "no shed named that"))
        }
        (_, p) if p.starts_with("/api/sheds/demo/sessions/agnet") => (
            404,
            error("SESSION_NOT_FOUND", "no session named \"agnet\""),
        ),
        _ => (404, error("NOT_FOUND", "no such endpoint")),
    });
    let cli = Cli::for_fake(&fake);
    let (rc, _, stderr) = cli.run(&["stop", "dmeo"]);
    assert_eq!(rc, Some(1), "{stderr}");
    assert!(stderr.contains("did you mean `demo`?"), "{stderr}");
    let (rc, _, stderr) = cli.run(&["sessions", "peek", "demo", "agnet"]);
    assert_eq!(rc, Some(1), "{stderr}");
    assert!(stderr.contains("did you mean `agent`?"), "{stderr}");
    let (rc, _, stderr) = cli.run(&["attach", "demo", "-S", "agnet", "--existing"]);
    assert_eq!(rc, Some(1), "{stderr}");
    assert!(
        stderr.contains("no session \"agnet\" in shed demo; did you mean `agent`?"),
        "{stderr}"
    );
}

#[test]
fn a_shed_named_like_a_subcommand_can_be_listed_with_dash_dash_shed() {
    let fake = Fake::start(|method, path| {
        let Some(rest) = path.strip_prefix("/api/sheds/") else {
            return (404, error("NOT_FOUND", "no such endpoint"));
        };
        match (method, rest.split_once('/')) {
            ("GET", None) => (200, shed(rest, "running")),
            ("GET", Some((name, "sessions"))) => {
                (200, json!({"sessions": [session(name, "agent")]}))
            }
            _ => (404, error("NOT_FOUND", "no such endpoint")),
        }
    });
    let cli = Cli::for_fake(&fake);
    for name in ["new", "peek", "send", "kill", "help"] {
        let (rc, stdout, stderr) = cli.run(&["sessions", "--shed", name]);
        assert_eq!(rc, Some(0), "{name}: {stderr}");
        assert!(
            stdout
                .lines()
                .any(|l| l.split_whitespace().take(3).eq(["fake", name, "agent"])),
            "{name}: {stdout}"
        );
    }
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `shed completions bash | head -1`: the reader goes away mid-output.
    let cli = Cli {
        dir: tempfile::tempdir().unwrap(),
    };
    let mut child = cli
        .command(&["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "panicked: {stderr}");
}
