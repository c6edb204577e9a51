//! The `shed` CLI binary, run against a config in a temp dir.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::{host_key_fingerprint, texts, SshKey, TestServer};

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

    /// The environment `shed` sees this config in, for a command started
    /// elsewhere (a host tmux pane).
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            (
                "SHED_CONFIG",
                self.config_path().to_string_lossy().into_owned(),
            ),
            ("HOME", self.dir.path().to_string_lossy().into_owned()),
        ]
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
        self.check_ok(args, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Asserts that `shed ARGS`, which printed `out`, succeeded.
    fn check_ok(&self, args: &[&str], out: &Output) {
        assert!(
            out.status.success(),
            "shed {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `shed server add 127.0.0.1 --port PORT --fingerprint FINGERPRINT
    /// EXTRA...`, the way a user adds a server on this machine.
    pub fn add_local(&self, port: u16, fingerprint: &str, extra: &[&str]) -> Output {
        let port = port.to_string();
        let mut args = vec![
            "server",
            "add",
            "127.0.0.1",
            "--port",
            &port,
            "--fingerprint",
            fingerprint,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Adds `server` under `name`, with extra `shed server add` flags,
    /// pinning its host key by fingerprint as a careful user would.
    pub fn add_server_with(&self, server: &TestServer, name: &str, extra: &[&str]) {
        let mut flags = vec!["--name", name];
        flags.extend_from_slice(extra);
        self.add_local_ok(server.port, &host_key_fingerprint(server), &flags);
    }

    /// [`Cli::add_local`], asserting success; returns stdout.
    pub fn add_local_ok(&self, port: u16, fingerprint: &str, extra: &[&str]) -> String {
        let out = self.add_local(port, fingerprint, extra);
        self.check_ok(&["server", "add", "127.0.0.1"], &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Lists an unreachable server (port 1) as `name` in the config, to see
    /// how commands fare with one server down.
    pub fn add_unreachable_server(&self, name: &str) {
        let mut config = std::fs::read_to_string(self.config_path()).unwrap_or_default();
        config.push_str(&format!(
            "\n[servers.{name}]\nhost = \"127.0.0.1\"\nhttp_port = 1\n"
        ));
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// Adds `server` under `name`.
    pub fn add_server(&self, server: &TestServer, name: &str) {
        self.add_server_with(server, name, &[]);
    }
}

impl Cli {
    /// Adds `server` with `key` as its identity.
    pub fn add_server_with_key(&self, server: &TestServer, name: &str, key: &SshKey) {
        let identity = key.private.to_string_lossy().into_owned();
        self.add_server_with(server, name, &["--identity", &identity]);
    }

    /// Runs `shed ARGS` with the server of [`Cli::add_unreachable_server`]
    /// named `down`: asserts a partial result (exit 3, the dead server named
    /// on stderr) and returns stdout.
    pub fn partial(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
        assert!(
            stderr.contains("\"down\"") && stderr.contains("127.0.0.1:1"),
            "{stderr}"
        );
        stdout
    }

    /// Like [`Cli::partial`] for a `--json` command: asserts exit 3 and that
    /// the one error is about `down`; returns the document.
    pub fn partial_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(3));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["errors"][0]["server"], "down");
        json
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
