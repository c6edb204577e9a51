//! The real OpenSSH client against the gateway: keys, commands, and a guard
//! for the processes they spawn.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::TestServer;

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

/// Kills and reaps a child process when dropped, so a failing test leaves no process behind.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A russh client handler that trusts any host key: for tests that need
/// what OpenSSH's client cannot do (send `signal` requests, misbehave).
pub struct AnyHostKey;

impl russh::client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}
