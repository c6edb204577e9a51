//! The gateway's host key and the client keys it accepts.

use std::io::Read;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{AuthorizedKeys, LineEnding};
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use thiserror::Error;

/// File name of the host key inside `data_dir`.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// Host key or authorized_keys problems.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A key file could not be parsed or encoded.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Loads the ed25519 host key from `data_dir`, generating it on first start,
/// so clients see the same host key across restarts.
pub fn load_or_create_host_key(data_dir: &Path) -> Result<PrivateKey, KeyError> {
    let path = data_dir.join(HOST_KEY_FILE);
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    let format = |message: String| KeyError::Format {
        path: path.clone(),
        message,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => return PrivateKey::from_openssh(text).map_err(|e| format(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(io)?;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| format(e.to_string()))?;
    crate::files::write_private(&path, text.as_bytes()).map_err(io)?;
    tracing::info!(path = %path.display(), "generated a new SSH host key");
    Ok(key)
}

/// Which client keys may log in.
#[derive(Debug, Clone)]
pub enum KeyPolicy {
    /// Keys listed in this authorized_keys file, re-read at every login so
    /// that edits apply at once.
    AuthorizedKeys(PathBuf),
    /// Any key at all (`allow_any_key = true`).
    AnyKey,
}

impl KeyPolicy {
    /// Whether `key` may log in. Unreadable files and bad lines deny, and are logged.
    pub fn allows(&self, key: &PublicKey) -> bool {
        let path = match self {
            KeyPolicy::AnyKey => return true,
            KeyPolicy::AuthorizedKeys(path) => path,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read authorized_keys; refusing the key");
                return false;
            }
        };
        AuthorizedKeys::new(&text).any(|entry| match entry {
            Ok(entry) => entry.public_key().key_data() == key.key_data(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable authorized_keys line");
                false
            }
        })
    }
}

/// SHA-256 fingerprint as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = load_or_create_host_key(&data).unwrap();
        let second = load_or_create_host_key(&data).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join(HOST_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn only_listed_keys_are_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let listed = load_or_create_host_key(&dir.path().join("a")).unwrap();
        let other = load_or_create_host_key(&dir.path().join("b")).unwrap();
        let path = dir.path().join("authorized_keys");
        let line = listed.public_key().to_openssh().unwrap();
        std::fs::write(&path, format!("# comment\n\nno-pty {line} me@laptop\n")).unwrap();
        let policy = KeyPolicy::AuthorizedKeys(path.clone());
        assert!(policy.allows(listed.public_key()));
        assert!(!policy.allows(other.public_key()));
        assert!(KeyPolicy::AnyKey.allows(other.public_key()));
        let missing = KeyPolicy::AuthorizedKeys(dir.path().join("missing"));
        assert!(!missing.allows(listed.public_key()));
    }
}
