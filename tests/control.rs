//! The control-mode engine against the host's real tmux (3.2 or newer), each
//! test on a private socket (`tmux -L`) that is killed when it ends.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shed::server::control::client::{
    attach_args, ClientConfig, CloseReason, ControlClient, ControlError, SessionSpec,
};
use shed::server::control::model::{Model, STATE_OPTION};
use shed::server::control::{Backoff, CONTROL_SESSION};
use shed::server::tmux::TmuxFailure;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A tmux server of the test's own, and the control client's process.
struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    fn new() -> Self {
        let socket = format!(
            "shed-ctl-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            socket,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new("tmux");
        cmd.args(["-L", &self.socket, "-f", "/dev/null"])
            .env_remove("TMUX");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("running tmux")
    }

    /// Starts `tmux -C` attached to the hidden session as a child process.
    async fn try_connect(&self) -> Result<(ControlClient, tokio::process::Child), ControlError> {
        let mut child = tokio::process::Command::from(self.command())
            .args(attach_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting tmux -C");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take().expect("stdin");
        let client = ControlClient::start(stdout, stdin, ClientConfig::default()).await?;
        Ok((client, child))
    }

    async fn connect(&self) -> (ControlClient, tokio::process::Child) {
        self.try_connect().await.expect("control client attaches")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Polls `check` until it gives a value or `limit` passes.
async fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the subscription to deliver a model satisfying `ok`.
async fn model_where(client: &ControlClient, ok: impl Fn(&Model) -> bool) -> Model {
    let mut rx = client.model();
    let found = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|m| m.as_deref().is_some_and(&ok)),
    )
    .await;
    match found {
        Ok(Ok(m)) => m.as_deref().cloned().unwrap_or_default(),
        _ => panic!("no such model; last: {:#?}", client.model().borrow()),
    }
}

fn spec(name: &str, command: Option<&str>, cwd: &Path) -> SessionSpec {
    SessionSpec {
        name: name.into(),
        command: command.map(String::from),
        cwd: cwd.to_string_lossy().into_owned(),
        env: vec![],
        options: vec![],
    }
}

#[tokio::test]
async fn the_subscription_follows_sessions_bells_dead_panes_and_options() {
    let tmux = Tmux::new();
    let (client, _child) = tmux.connect().await;
    client.subscribe().await.expect("subscribe");
    let m = model_where(&client, |_| true).await;
    assert!(
        m.get(CONTROL_SESSION).is_none(),
        "the hidden session is hidden"
    );

    let cwd = tmux.dir.path();
    client
        .new_session(&spec("work", None, cwd))
        .await
        .expect("new-session");
    let m = model_where(&client, |m| m.get("work").is_some()).await;
    let infos = m.sessions("shed", "srv", chrono::Utc::now());
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].name, "work");
    assert_eq!(infos[0].windows, 1);

    // A bell in a detached session.
    client
        .send_input("work", b"printf '\\a'", true)
        .await
        .expect("send-keys");
    model_where(&client, |m| m.get("work").is_some_and(|s| s.bell())).await;

    // A user option on the pane.
    let out = tmux.run(&["set-option", "-p", "-t", "=work:", STATE_OPTION, "busy"]);
    assert!(out.status.success(), "{out:?}");
    let m = model_where(&client, |m| {
        m.get("work").is_some_and(|s| {
            s.panes
                .iter()
                .any(|p| p.options.get(STATE_OPTION).map(String::as_str) == Some("busy"))
        })
    })
    .await;
    assert!(m.get("work").unwrap().panes[0].pid.is_some());

    // A command that ends leaves a dead pane with its status and output.
    // It ends on cue: tmux 3.3a can lose the status of a command that
    // exits in the same instant its session is made.
    client
        .new_session(&spec("dies", Some("read go; echo last-words; exit 3"), cwd))
        .await
        .expect("new-session with a command");
    model_where(&client, |m| m.get("dies").is_some()).await;
    client
        .send_input("dies", b"go", true)
        .await
        .expect("send-keys");
    model_where(&client, |m| {
        m.get("dies")
            .is_some_and(|s| s.panes.iter().any(|p| p.dead && p.dead_status == Some(3)))
    })
    .await;
    let text = client.capture_pane("dies", 50).await.expect("capture-pane");
    assert!(text.contains("last-words"), "{text:?}");

    // Commands fail as the exec path classifies them.
    match client.new_session(&spec("work", None, cwd)).await {
        Err(ControlError::Tmux { failure, .. }) => assert_eq!(failure, TmuxFailure::Duplicate),
        other => panic!("{other:?}"),
    }
    match client.kill_session("nope").await {
        Err(ControlError::Tmux { failure, .. }) => {
            assert_eq!(failure, TmuxFailure::NoSuchSession)
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client.new_session(&spec(CONTROL_SESSION, None, cwd)).await,
        Err(ControlError::Reserved(_))
    ));

    // A read right after a write sees it.
    client.kill_session("work").await.expect("kill-session");
    let snap = client.snapshot().await.expect("snapshot");
    assert!(snap.get("work").is_none() && snap.get("dies").is_some());
    assert!(snap.get(CONTROL_SESSION).is_none());
    model_where(&client, |m| m.get("work").is_none()).await;

    client.shutdown().await;
    assert_eq!(client.closed().await, CloseReason::Shutdown);
}

#[tokio::test]
async fn kill_server_closes_the_client_and_a_reconnect_works() {
    let tmux = Tmux::new();
    let (client, _child) = tmux.connect().await;
    client.subscribe().await.expect("subscribe");
    let out = tmux.run(&["kill-server"]);
    assert!(out.status.success(), "{out:?}");
    let reason = tokio::time::timeout(Duration::from_secs(10), client.closed())
        .await
        .expect("the client notices");
    assert!(
        matches!(reason, CloseReason::Eof | CloseReason::Exit(_)),
        "{reason:?}"
    );
    assert!(matches!(
        client.snapshot().await,
        Err(ControlError::Closed(_))
    ));

    // A server still shutting down can refuse the first attempts, as it
    // can in a shed: reconnect with backoff.
    let mut backoff = Backoff::new();
    let (client, _child) = loop {
        match tmux.try_connect().await {
            Ok(c) => break c,
            Err(e) => {
                let delay = backoff.next_delay();
                assert!(delay < Duration::from_secs(4), "no reconnect: {e}");
                tokio::time::sleep(delay).await;
            }
        }
    };
    client.subscribe().await.expect("subscribe again");
    let snap = client.snapshot().await.expect("snapshot");
    assert!(snap.sessions.is_empty(), "{snap:?}");
    client
        .new_session(&spec("again", None, tmux.dir.path()))
        .await
        .expect("new-session after reconnecting");
    model_where(&client, |m| m.get("again").is_some()).await;
}

#[tokio::test]
async fn values_with_control_characters_cannot_break_the_model() {
    let tmux = Tmux::new();
    let (client, _child) = tmux.connect().await;
    client.subscribe().await.expect("subscribe");
    let odd = tmux.path("a\nb\u{1f}c\u{1e}d\u{1d}e");
    std::fs::create_dir(&odd).expect("mkdir");
    let odd = odd.to_string_lossy().into_owned();
    for args in [
        &["new-session", "-d", "-s", "odd", "-c", odd.as_str()][..],
        &[
            "set-option",
            "-t",
            "odd",
            STATE_OPTION,
            "x\ny\u{1f}z\u{1b}[2J",
        ],
        &["new-session", "-d", "-s", "we;ird #{x} \u{7}", "-c", "/"],
        &["new-session", "-d", "-s", "plain", "-c", "/"],
    ] {
        let out = tmux.run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let want = odd.replace(['\n', '\u{1f}', '\u{1e}', '\u{1d}'], "?");
    let m = model_where(&client, |m| m.sessions.len() == 3).await;
    let s = m.get("odd").expect("odd");
    assert_eq!(s.cwd, want);
    assert_eq!(s.options.get(STATE_OPTION).unwrap(), "x?y?z?[2J");
    assert_eq!(s.panes.len(), 1);
    assert_eq!(m.get("plain").expect("plain").cwd, "/");
    assert!(m.sessions.keys().any(|k| k.starts_with("we;ird")), "{m:?}");
    let snap = client.snapshot().await.expect("snapshot");
    assert_eq!(snap.sessions, m.sessions);

    // tmux 3.3a expands `new-session -s` as a format; the name stays literal.
    let name = "n#{host}##;";
    client
        .new_session(&spec(name, None, Path::new("/")))
        .await
        .expect("new-session");
    let snap = client.snapshot().await.expect("snapshot");
    assert!(snap.get(name).is_some(), "{:?}", snap.sessions.keys());
    client.kill_session(name).await.expect("kill-session");
}

/// A deterministic generator (xorshift64), so a failure replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn pick(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Text built from what tmux's parser, its format expander, a shell or
    /// key-name lookup would treat specially, Unicode, and control
    /// characters other than NUL (line breaks only if `breaks`).
    fn hostile(&mut self, breaks: bool) -> String {
        const PIECES: &[&str] = &[
            ";",
            "\\;",
            "\\",
            "\\\\",
            "#{",
            "#(",
            "#[",
            "##",
            "#",
            "#{pane_id}",
            "{",
            "}",
            "'",
            "\"",
            "`",
            "$",
            "$HOME",
            "${X}",
            "~",
            "~root",
            "-",
            "--",
            " ",
            "%if",
            "%hidden",
            "=",
            "a",
            "Z",
            "7",
            "é",
            "漢",
            "🦀",
            "\u{301}",
            "\u{85}",
            "\u{2028}",
            "C-c",
            "Enter",
            "\\e",
            "\\n",
            "\\001",
            "\\u0041",
            ",",
            ":",
            "*",
        ];
        let mut s = String::new();
        if self.pick(3) == 0 {
            s.push('-');
        }
        for _ in 0..=self.pick(10) {
            if self.pick(4) == 0 {
                let c = match self.pick(33) {
                    32 => '\u{7f}',
                    n => char::from(n as u8 + 1),
                };
                if breaks || (c != '\n' && c != '\r') {
                    s.push(c);
                }
            } else {
                s.push_str(PIECES[self.pick(PIECES.len())]);
            }
        }
        match self.pick(3) {
            0 => s.push(';'),
            1 => s.push_str("\\;"),
            _ => {}
        }
        s
    }
}

fn seed() -> u64 {
    std::env::var("SHED_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c0_ffee_5eed_0011u64)
        .max(1)
}

/// Waits for a file to hold at least `len` bytes and returns them.
async fn file_bytes(path: &Path, len: usize) -> Vec<u8> {
    eventually(Duration::from_secs(10), || {
        std::fs::read(path).ok().filter(|b| b.len() >= len)
    })
    .await
    .unwrap_or_else(|| std::fs::read(path).unwrap_or_default())
}

/// Runs `command` (with `env`, in `cwd`) as a session and returns what it
/// wrote to `out` once the file holds `len` bytes.
async fn session_output(
    client: &ControlClient,
    name: &str,
    command: &str,
    cwd: &str,
    env: Vec<(String, String)>,
    out: &Path,
    len: usize,
) -> Vec<u8> {
    client
        .new_session(&SessionSpec {
            name: name.into(),
            command: Some(command.into()),
            cwd: cwd.into(),
            env,
            options: vec![],
        })
        .await
        .unwrap_or_else(|e| panic!("new-session {name}: {e}"));
    let got = file_bytes(out, len).await;
    client.kill_session(name).await.expect("kill-session");
    got
}

/// Starts session `name` on a raw tty that records every byte but NUL
/// into a file, and waits for it to start; the file.
async fn recorder(client: &ControlClient, tmux: &Tmux, name: &str) -> PathBuf {
    let rec = tmux.path(name);
    let command = format!("stty raw -echo -iexten; exec cat > '{}'", rec.display());
    client
        .new_session(&spec(name, Some(&command), tmux.dir.path()))
        .await
        .expect("recorder");
    eventually(Duration::from_secs(10), || rec.exists().then_some(()))
        .await
        .expect("the recorder started");
    rec
}

/// How typed text reaches a pane.
#[derive(Clone, Copy, Debug)]
enum Typing {
    /// The client's `send_input`.
    Input,
    /// A bare `send-keys -l`, quoted by the client.
    SendKeysLiteral,
}

/// Types `cases` hostile texts into a fresh recorder via `typing`, checking
/// after each that the recorder holds every byte typed so far.
async fn typed_byte_for_byte(
    client: &ControlClient,
    tmux: &Tmux,
    rng: &mut Rng,
    seed: u64,
    cases: usize,
    typing: Typing,
) {
    let name = match typing {
        Typing::Input => "rec",
        Typing::SendKeysLiteral => "rec-l",
    };
    let rec = recorder(client, tmux, name).await;
    let mut expected = Vec::new();
    for case in 0..cases {
        let text = rng.hostile(true);
        let sent = match typing {
            Typing::Input => client.send_input(name, text.as_bytes(), false).await,
            Typing::SendKeysLiteral => client
                .run(&["send-keys", "-t", &format!("={name}:"), "-l", "--", &text])
                .await
                .map(drop),
        };
        sent.unwrap_or_else(|e| panic!("{typing:?} case {case} {text:?}: {e}"));
        expected.extend_from_slice(text.as_bytes());
        let got = file_bytes(&rec, expected.len()).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{typing:?} case {case} (seed {seed}): {text:?}"
        );
        assert_eq!(
            got, expected,
            "{typing:?} case {case} (seed {seed}): {text:?}"
        );
    }
}

/// The byte-for-byte property of the hardening issue, through control mode:
/// typed input, a session's command, env values and its working directory.
#[tokio::test]
async fn hostile_text_arrives_byte_for_byte() {
    const CASES: usize = 30;
    let tmux = Tmux::new();
    let (client, _child) = tmux.connect().await;
    let seed = seed();
    let mut rng = Rng(seed);
    let dir = tmux.dir.path().to_string_lossy().into_owned();

    // (a) Input: a raw tty records every byte but NUL.
    typed_byte_for_byte(&client, &tmux, &mut rng, seed, CASES, Typing::Input).await;
    // (a') The same through `send-keys -l` and the quoting alone: -H is
    // what the client uses, this shows the quoted form is exact too.
    typed_byte_for_byte(
        &client,
        &tmux,
        &mut rng,
        seed,
        CASES,
        Typing::SendKeysLiteral,
    )
    .await;

    for case in 0..CASES {
        // (b) The command: sh's own last argument, read back from /proc. The
        // hostile text sits in a comment, so it needs no line break.
        let text = rng.hostile(false);
        let out = tmux.path(&format!("argv{case}"));
        let command = format!("cat /proc/$$/cmdline > '{}'; exit 0 #{text}", out.display());
        let got =
            session_output(&client, "argv", &command, &dir, vec![], &out, command.len()).await;
        let last = got
            .strip_suffix(b"\0")
            .and_then(|b| b.rsplit(|&c| c == 0).next())
            .unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(last),
            command,
            "command case {case} (seed {seed})"
        );

        // (c) An env value.
        let value = rng.hostile(true);
        let out = tmux.path(&format!("env{case}"));
        let command = format!("printf %s \"$SHED_V\" > '{}'", out.display());
        let env = vec![("SHED_V".to_string(), value.clone())];
        let got = session_output(&client, "env", &command, &dir, env, &out, value.len()).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            value,
            "env case {case} (seed {seed})"
        );

        // (d) A working directory with a hostile name.
        let name = rng.hostile(true).replace('/', "_");
        if name == "." || name == ".." || name.len() > 200 {
            continue;
        }
        let cwd = tmux.dir.path().join("dirs").join(&name);
        std::fs::create_dir_all(&cwd).expect("mkdir");
        let cwd = cwd.canonicalize().expect("canonical cwd");
        let out = tmux.path(&format!("cwd{case}"));
        let command = format!("pwd -P > '{}'", out.display());
        let want = format!("{}\n", cwd.to_string_lossy());
        let got = session_output(
            &client,
            "cwd",
            &command,
            &cwd.to_string_lossy(),
            vec![],
            &out,
            want.len(),
        )
        .await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            want,
            "cwd case {case} (seed {seed}): {name:?}"
        );
    }
    client.shutdown().await;
}
