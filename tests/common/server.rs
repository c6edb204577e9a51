//! Real shed-server processes on 127.0.0.1:0, and what a user learns about
//! one out of band (its key fingerprints).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{cleanup_prefix, test_image, texts, unique_prefix, wait_until};

/// The `source` sessions are served by once a shed's channel is up: `exec`
/// when the suite runs with `SHED_TEST_CONTROL_MODE=false`, else `channel`.
pub fn expected_source() -> &'static str {
    match std::env::var("SHED_TEST_CONTROL_MODE").as_deref() {
        Ok("false") => "exec",
        _ => "channel",
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
    /// `ssh_port`; 0 (a free one) if `None`.
    pub ssh_port: Option<u16>,
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

    /// Starts a server whose config ends in the TOML lines `extra`.
    pub fn start_with_config(extra: impl Into<String>) -> TestServer {
        Self::start_with(ServerOpts {
            extra: extra.into(),
            ..ServerOpts::default()
        })
    }

    /// Starts a server with options.
    pub fn start_with(mut opts: ServerOpts) -> TestServer {
        // SHED_TEST_CONTROL_MODE=false runs a whole suite on the exec path
        // (tests that choose a mode themselves keep theirs).
        if let Ok(mode) = std::env::var("SHED_TEST_CONTROL_MODE") {
            if !opts.extra.contains("control_mode") {
                opts.extra.push_str(&format!("\ncontrol_mode = {mode}\n"));
            }
        }
        let image = test_image();
        let prefix = opts.prefix.clone().unwrap_or_else(unique_prefix);
        let name = opts.name.clone().unwrap_or_else(|| format!("srv-{prefix}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "name = {name:?}\nhttp_port = 0\nssh_port = {}\nisolation_prefix = {prefix:?}\n\
             default_image = {image:?}\ndata_dir = {:?}\nauthorized_keys = {:?}\n{}\n",
            opts.ssh_port.unwrap_or(0),
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

    /// Its config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("server.toml")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Container name of a shed on this server.
    pub fn container(&self, shed: &str) -> String {
        format!("{}.shed-{shed}", self.prefix)
    }

    /// Volume name of a shed on this server.
    pub fn volume(&self, shed: &str) -> String {
        format!("{}.shed-{shed}-workspace", self.prefix)
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

/// Parses `shed-server NAME listening on http://IP:PORT ssh://IP:PORT`
/// (`https://` when the API is served over TLS).
pub fn parse_listening(line: &str) -> Option<Ports> {
    let port = |scheme: &str| -> Option<u16> {
        let rest = &line[line.find(scheme)? + scheme.len()..];
        let addr = rest.split_whitespace().next()?;
        addr.rsplit_once(':')?.1.parse().ok()
    };
    Some(Ports {
        http: port(" http://").or_else(|| port(" https://"))?,
        ssh: port(" ssh://")?,
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

/// The fingerprint of `server`'s SSH host key, or with `tls` of its HTTPS
/// certificate, as `shed-server host-key` prints it from the server's own
/// config: out of band, the way a user is told to check it.
pub fn server_fingerprint(server: &TestServer, tls: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shed-server"));
    cmd.arg("host-key")
        .arg("--config")
        .arg(server.config_path());
    if tls {
        cmd.arg("--tls");
    }
    let out = cmd.output().expect("running shed-server host-key");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "shed-server host-key: {stderr}");
    stdout.trim().to_string()
}

/// The fingerprint of `server`'s SSH host key (see [`server_fingerprint`]).
pub fn host_key_fingerprint(server: &TestServer) -> String {
    server_fingerprint(server, false)
}
