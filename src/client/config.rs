//! The CLI's config file: the servers it knows and which one is the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Environment variable naming the client config file.
pub const CONFIG_ENV: &str = "SHED_CONFIG";

/// One configured shed-server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// Host name or IP address.
    pub host: String,
    /// HTTP API port.
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// SSH gateway port.
    #[serde(default = "default_ssh_port")]
    pub ssh_port: u16,
    /// Bearer token for the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// SSH private key to use with this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<PathBuf>,
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Scheme,
    /// Pinned fingerprint (`SHA256:...`) of the server's TLS certificate; https only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
    /// The user's explicit consent to send the token over plain HTTP to a
    /// host that is not loopback.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_plain_http: bool,
}

/// How the CLI talks to a server's API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP: loopback, or with `allow_plain_http`.
    #[default]
    Http,
    /// TLS, verified against the pinned certificate fingerprint.
    Https,
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

fn default_http_port() -> u16 {
    8080
}

fn default_ssh_port() -> u16 {
    2222
}

impl ServerEntry {
    /// Base URL of the server's HTTP API.
    pub fn base_url(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}://{host}:{}", self.scheme, self.http_port)
    }

    /// Whether the host is this machine (`localhost` or a loopback address),
    /// where plain HTTP exposes nothing to the network.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

/// Longest server name accepted.
pub const MAX_SERVER_NAME_LEN: usize = 64;

/// Whether `name` follows the server name rule: letters, digits, '-', '_'
/// and '.', at most [`MAX_SERVER_NAME_LEN`] bytes. Names become part of ssh
/// aliases, config keys and `shed ui`'s URLs.
pub fn is_valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVER_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        // "." and ".." would be path segments a URL parser removes.
        && !name.bytes().all(|b| b == b'.')
}

/// Whether `host` is `localhost` or a loopback IP address (brackets allowed).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The whole client config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Server used when `-s` is not given and no shed lookup applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server: Option<String>,
    /// Known servers by name.
    #[serde(default)]
    pub servers: BTreeMap<String, ServerEntry>,
}

/// Why the config could not be read or written.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// I/O failure on the file or its directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Bad TOML, an unknown key, or a wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's description, naming the key.
        message: String,
    },
    /// `default_server` names a server that is not configured.
    #[error("{path}: default_server {name:?} is not among [servers]")]
    UnknownDefault {
        /// The file.
        path: PathBuf,
        /// The dangling name.
        name: String,
    },
}

impl ClientConfig {
    /// The config path: `--config`/`SHED_CONFIG` if given, else `~/.config/shed/config.toml`.
    pub fn default_path() -> PathBuf {
        dirs::config_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("shed")
            .join("config.toml")
    }

    /// Loads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Io {
                    path: path.into(),
                    source,
                })
            }
        };
        let config: ClientConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        if let Some(name) = &config.default_server {
            if !config.servers.contains_key(name) {
                return Err(ConfigError::UnknownDefault {
                    path: path.into(),
                    name: name.clone(),
                });
            }
        }
        Ok(config)
    }

    /// Writes the file atomically with mode 0600, since it may hold tokens.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.into(),
            source,
        };
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        crate::files::write_private(path, text.as_bytes()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_empty_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = ClientConfig::load(&dir.path().join("none.toml")).unwrap();
        assert!(config.servers.is_empty());
    }

    #[test]
    fn save_then_load_round_trips_with_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.toml");
        let mut config = ClientConfig::default();
        config.servers.insert(
            "a".into(),
            ServerEntry {
                host: "127.0.0.1".into(),
                http_port: 1,
                ssh_port: 2,
                token: Some("tok".into()),
                identity_file: None,
                scheme: Scheme::Https,
                tls_fingerprint: Some("SHA256:x".into()),
                allow_plain_http: false,
            },
        );
        config.default_server = Some("a".into());
        config.save(&path).unwrap();
        assert_eq!(ClientConfig::load(&path).unwrap(), config);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn unknown_keys_and_dangling_default_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[servers.a]\nhost = \"h\"\nprot = 1\n").unwrap();
        let err = ClientConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
        std::fs::write(&path, "default_server = \"b\"\n[servers.a]\nhost = \"h\"\n").unwrap();
        let err = ClientConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("default_server"), "{err}");
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let entry = ServerEntry {
            host: "::1".into(),
            http_port: 8080,
            ssh_port: 2222,
            token: None,
            identity_file: None,
            scheme: Scheme::Http,
            tls_fingerprint: None,
            allow_plain_http: false,
        };
        assert_eq!(entry.base_url(), "http://[::1]:8080");
        assert!(entry.is_loopback());
        assert!(is_loopback_host("127.0.0.2") && is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("10.0.0.1") && !is_loopback_host("box"));
    }

    #[test]
    fn the_commented_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/client.toml");
        let config = ClientConfig::load(&path).unwrap();
        assert_eq!(config.servers["laptop"].base_url(), "http://127.0.0.1:8080");
        let buildbox = &config.servers["buildbox"];
        assert_eq!(buildbox.base_url(), "https://buildbox.example.com:8080");
        assert!(buildbox
            .tls_fingerprint
            .as_deref()
            .is_some_and(crate::api::fingerprint::is_fingerprint));
    }
}
