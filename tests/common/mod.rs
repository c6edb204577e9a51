//! Shared helpers for integration tests: the test image, real shed-server
//! processes on 127.0.0.1:0, the CLI binary, and cleanup by label.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Tag of the image built from the host's binaries.
pub const TEST_IMAGE: &str = "shed-test:latest";

/// Fails loudly when there is no Docker engine: Docker tests never skip.
pub fn require_docker() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let out = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
            Err(e) => Err(e.to_string()),
        }
    });
    if let Err(e) = ready {
        panic!(
            "these tests need a running Docker engine (CI={}): {e}",
            std::env::var("CI").unwrap_or_default()
        );
    }
}

/// Builds the test image once per test binary (the script is idempotent and
/// takes a few seconds; a lock keeps parallel binaries from racing).
pub fn test_image() -> &'static str {
    require_docker();
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        build_image(&[], TEST_IMAGE);
    });
    TEST_IMAGE
}

/// Runs docker/build-test-image.sh under a lock.
pub fn build_image(flags: &[&str], tag: &str) {
    let script = repo_root().join("docker/build-test-image.sh");
    let out = Command::new("flock")
        .arg("/tmp/shed-test-image.lock")
        .arg("bash")
        .arg(&script)
        .args(flags)
        .arg(tag)
        .output()
        .expect("running flock/bash");
    assert!(
        out.status.success(),
        "building {tag} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The crate's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A prefix no other test (or test run) uses.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("st{}x{n}x{:x}", std::process::id(), nanos % 0xfffff)
}

/// Runs `docker ARGS` and returns trimmed stdout; panics on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether `docker ARGS` succeeds.
pub fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Names of containers carrying this prefix's marker label.
pub fn containers_with_prefix(prefix: &str) -> Vec<String> {
    let filter = format!("label={prefix}.shed=true");
    lines(&docker(&[
        "ps",
        "-a",
        "--filter",
        &filter,
        "--format",
        "{{.Names}}",
    ]))
}

/// Names of volumes carrying this prefix's marker label.
pub fn volumes_with_prefix(prefix: &str) -> Vec<String> {
    let filter = format!("label={prefix}.shed=true");
    lines(&docker(&["volume", "ls", "-q", "--filter", &filter]))
}

fn lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// Removes every container and volume of a prefix, by label and by name.
pub fn cleanup_prefix(prefix: &str) {
    let by_name = format!("name=^{prefix}-shed-");
    let mut containers = containers_with_prefix(prefix);
    containers.extend(lines(&docker(&[
        "ps",
        "-a",
        "--filter",
        &by_name,
        "--format",
        "{{.Names}}",
    ])));
    for c in containers {
        let _ = Command::new("docker").args(["rm", "-f", "-v", &c]).output();
    }
    let mut volumes = volumes_with_prefix(prefix);
    volumes.extend(lines(&docker(&[
        "volume", "ls", "-q", "--filter", &by_name,
    ])));
    for v in volumes {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &v])
            .output();
    }
}

/// Options for a test server.
#[derive(Clone, Default)]
pub struct ServerOpts {
    /// `isolation_prefix`; a fresh one if `None`.
    pub prefix: Option<String>,
    /// Extra TOML lines appended to the config.
    pub extra: String,
    /// Server name.
    pub name: Option<String>,
    /// `data_dir`, to keep the host key across restarts; a temp dir if `None`.
    pub data_dir: Option<PathBuf>,
}

/// A running shed-server process; killed, and its sheds removed, on drop.
pub struct TestServer {
    child: Child,
    /// Port of the HTTP API.
    pub port: u16,
    /// Port of the SSH gateway.
    pub ssh_port: u16,
    /// Its isolation prefix.
    pub prefix: String,
    /// Its name.
    pub name: String,
    /// Its temporary directory (config, data_dir, log).
    pub dir: tempfile::TempDir,
    cleanup: bool,
}

impl TestServer {
    /// Starts a server with a fresh prefix and the test image as default.
    pub fn start() -> TestServer {
        Self::start_with(ServerOpts::default())
    }

    /// Starts a server with options.
    pub fn start_with(opts: ServerOpts) -> TestServer {
        let image = test_image();
        let prefix = opts.prefix.clone().unwrap_or_else(unique_prefix);
        let name = opts.name.clone().unwrap_or_else(|| format!("srv-{prefix}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "name = {name:?}\nhttp_port = 0\nssh_port = 0\nisolation_prefix = {prefix:?}\n\
             default_image = {image:?}\ndata_dir = {:?}\nauthorized_keys = {:?}\n{}\n",
            opts.data_dir
                .clone()
                .unwrap_or_else(|| dir.path().join("data")),
            dir.path().join("authorized_keys"),
            opts.extra
        );
        let config_path = dir.path().join("server.toml");
        std::fs::write(&config_path, config).unwrap();
        let (child, ports) = spawn_server(&config_path, dir.path())
            .unwrap_or_else(|log| panic!("shed-server did not start:\n{log}"));
        TestServer {
            child,
            port: ports.http,
            ssh_port: ports.ssh,
            prefix,
            name,
            dir,
            cleanup: true,
        }
    }

    /// Like [`TestServer::start_with`], but leaves Docker objects alone on drop
    /// (for a second server sharing another's prefix).
    pub fn start_sharing(opts: ServerOpts) -> TestServer {
        let mut server = Self::start_with(opts);
        server.cleanup = false;
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the server process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Container name of a shed on this server.
    pub fn container(&self, shed: &str) -> String {
        format!("{}-shed-{shed}", self.prefix)
    }

    /// Volume name of a shed on this server.
    pub fn volume(&self, shed: &str) -> String {
        format!("{}-shed-{shed}-workspace", self.prefix)
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        wait_child(&mut self.child, Duration::from_secs(20))
            .expect("server did not exit after SIGTERM")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.cleanup {
            cleanup_prefix(&self.prefix);
        }
        if std::thread::panicking() {
            eprintln!("--- shed-server {} log ---\n{}", self.name, self.log());
        }
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let mut status = None;
    wait_until(limit, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Ports of a running server.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// HTTP API.
    pub http: u16,
    /// SSH gateway.
    pub ssh: u16,
}

/// Parses `shed-server NAME listening on http://IP:PORT ssh://IP:PORT`.
pub fn parse_listening(line: &str) -> Option<Ports> {
    let port = |scheme: &str| -> Option<u16> {
        let rest = &line[line.find(scheme)? + scheme.len()..];
        let addr = rest.split_whitespace().next()?;
        addr.rsplit_once(':')?.1.parse().ok()
    };
    Some(Ports {
        http: port("http://")?,
        ssh: port("ssh://")?,
    })
}

/// Spawns `shed-server serve --config FILE`, waits for its "listening" line,
/// and returns the child and ports; on failure, the log.
pub fn spawn_server(config: &Path, dir: &Path) -> Result<(Child, Ports), String> {
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shed-server"))
        .args(["serve", "--config"])
        .arg(config)
        .env("SHED_LOG", "info,shed=debug")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawning shed-server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if let Some(ports) = parse_listening(&line) {
                    return Ok((child, ports));
                }
            }
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    let _ = child.wait();
                    return Err(format!(
                        "exited with {status}\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    ));
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "no 'listening' line within 20s\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    ))
}

/// A CLI config in a temp dir, and a way to run `shed` against it.
pub struct Cli {
    /// Holds the config file.
    pub dir: tempfile::TempDir,
}

impl Cli {
    /// An empty client config.
    pub fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Path of the config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Runs `shed ARGS` with this config and no stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_shed"))
            .args(args)
            .env("SHED_CONFIG", self.config_path())
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("running shed")
    }

    /// Runs `shed ARGS` and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "shed {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds `server` under `name`, with extra `shed server add` flags.
    pub fn add_server_with(&self, server: &TestServer, name: &str, extra: &[&str]) {
        let port = server.port.to_string();
        let mut args = vec![
            "server",
            "add",
            "127.0.0.1",
            "--port",
            &port,
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// Adds `server` under `name`.
    pub fn add_server(&self, server: &TestServer, name: &str) {
        self.add_server_with(server, name, &[]);
    }
}

/// Stdout and stderr of an output, as text.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `check` holds or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls the async `probe` until it reports done or `limit` passes; returns
/// whether it got there, and the last value it produced.
pub async fn eventually<T, F, Fut>(limit: Duration, mut probe: F) -> (bool, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, T)>,
{
    let deadline = Instant::now() + limit;
    loop {
        let (done, value) = probe().await;
        if done || Instant::now() >= deadline {
            return (done, value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Minimal blocking HTTP helpers over reqwest's async client.
pub mod http {
    use serde_json::Value;

    /// A response's status and JSON body (`Null` when empty).
    pub struct Reply {
        /// HTTP status.
        pub status: u16,
        /// Parsed body.
        pub json: Value,
    }

    impl Reply {
        /// The error code of an error body.
        pub fn code(&self) -> &str {
            self.json["error"]["code"]
                .as_str()
                .unwrap_or("<no error code>")
        }
    }

    /// Sends a request; `body` is sent as JSON text when given.
    pub async fn send(
        method: &str,
        url: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request failed");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply { status, json }
    }

    /// GET.
    pub async fn get(url: &str) -> Reply {
        send("GET", url, None, &[]).await
    }

    /// POST with a JSON body.
    pub async fn post(url: &str, body: &str) -> Reply {
        send("POST", url, Some(body), &[]).await
    }

    /// POST without a body.
    pub async fn post_empty(url: &str) -> Reply {
        send("POST", url, None, &[]).await
    }

    /// DELETE.
    pub async fn delete(url: &str) -> Reply {
        send("DELETE", url, None, &[]).await
    }
}

/// An ed25519 key pair made with the real `ssh-keygen`.
pub struct SshKey {
    /// Private key file.
    pub private: PathBuf,
    /// Public key line.
    pub public: String,
    _dir: tempfile::TempDir,
}

impl SshKey {
    /// Generates a fresh key.
    pub fn generate() -> SshKey {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "shed-test", "-f"])
            .arg(&private)
            .output()
            .expect("ssh-keygen (install openssh-client)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
        SshKey {
            private,
            public,
            _dir: dir,
        }
    }
}

impl TestServer {
    /// Lists `key` in this server's authorized_keys.
    pub fn authorize(&self, key: &SshKey) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("authorized_keys"))
            .unwrap();
        file.write_all(key.public.as_bytes()).unwrap();
    }

    /// Runs the real `ssh` client against the gateway as `user`, with `key`
    /// and no host key checking (tests of the CLI check host keys).
    pub fn ssh(&self, key: &SshKey, user: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-i")
        .arg(&key.private)
        .args(["-p", &self.ssh_port.to_string()])
        .args(extra)
        .arg(format!("{user}@127.0.0.1"))
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null());
        cmd
    }
}

impl Cli {
    /// Adds `server` with `key` as its identity.
    pub fn add_server_with_key(&self, server: &TestServer, name: &str, key: &SshKey) {
        let identity = key.private.to_string_lossy().into_owned();
        self.add_server_with(server, name, &["--identity", &identity]);
    }

    /// A `shed` command with this config, for callers that need pipes.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shed"));
        cmd.args(args)
            .env("SHED_CONFIG", self.config_path())
            .env("HOME", self.dir.path())
            .env_remove("SSH_AUTH_SOCK");
        cmd
    }
}

/// A private tmux server on the host, to drive interactive programs the way
/// a person at a terminal would.
pub struct HostTmux {
    socket: String,
}

impl HostTmux {
    /// A new, empty tmux server with its own socket.
    pub fn new() -> HostTmux {
        HostTmux {
            socket: format!("shedtest-{}", unique_prefix()),
        }
    }

    /// Runs `tmux -L SOCKET ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux (install tmux)")
    }

    /// Starts `command` in a new detached session of the given size.
    pub fn start(
        &self,
        session: &str,
        cols: u16,
        rows: u16,
        env: &[(&str, String)],
        command: &str,
    ) {
        let (cols, rows) = (cols.to_string(), rows.to_string());
        let mut args = vec!["new-session", "-d", "-s", session, "-x", &cols, "-y", &rows];
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for e in &env {
            args.push("-e");
            args.push(e);
        }
        args.push(command);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Keep the pane around after the program exits, to read what it printed.
        self.run(&["set-option", "-t", session, "remain-on-exit", "on"]);
    }

    /// The visible screen of a session's pane.
    pub fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", session]).stdout)
            .into_owned()
    }

    /// Types keys (tmux key names, like `Enter` or `C-c`).
    pub fn keys(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Waits until the screen satisfies `check`; panics with the screen if not.
    pub fn wait_for(&self, session: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = wait_until(Duration::from_secs(15), || {
            last = self.screen(session);
            check(&last)
        });
        assert!(ok, "timed out waiting for {what}; screen:\n{last}");
        last
    }

    /// Whether the session's pane program has exited.
    pub fn pane_dead(&self, session: &str) -> bool {
        let out = self.run(&["display-message", "-p", "-t", session, "#{pane_dead}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }
}

impl Drop for HostTmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Kills and reaps a child process when dropped, so a failing test leaves no process behind.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Replaces tmux in a container with a program that sleeps `secs` seconds,
/// so every tmux call there hangs, as in a wedged shed.
pub fn wedge_tmux(container: &str, secs: u32) {
    let script = format!(
        "t=$(command -v tmux); mv $t $t.real; printf '#!/bin/sh\\nexec sleep {secs}\\n' > $t; chmod +x $t"
    );
    docker(&["exec", container, "sh", "-c", &script]);
}
