//! shed-server configuration: the TOML file, its search path and its checks.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Environment variable naming the server config file.
pub const CONFIG_ENV: &str = "SHED_SERVER_CONFIG";

/// A bind mount added to every shed, e.g. `~/.ssh` or `~/.claude`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// Host path; a leading `~/` means the server user's home.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    /// Mount read-only.
    #[serde(default)]
    pub readonly: bool,
}

/// The parsed and checked server configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Server name reported to clients and stored in the `shed.server` label.
    pub name: String,
    /// Address the HTTP API and SSH gateway listen on.
    pub bind: IpAddr,
    /// HTTP API port; 0 picks a free port (useful in tests).
    pub http_port: u16,
    /// SSH gateway port.
    pub ssh_port: u16,
    /// Image used when a create request names none.
    pub default_image: String,
    /// Where the server keeps its own state (SSH host key, ...).
    pub data_dir: PathBuf,
    /// Prefix for container and volume names and label keys, so that several
    /// servers can share one Docker engine without seeing each other's sheds.
    pub isolation_prefix: Option<String>,
    /// Bind mounts added to every new shed.
    pub mounts: Vec<MountConfig>,
    /// File of `KEY=VALUE` lines injected into new sheds' environment.
    pub env_file: Option<PathBuf>,
    /// Bearer token required on every endpoint except `/api/health`.
    pub api_token: Option<String>,
    /// Allows a non-loopback `bind` without `api_token`.
    pub insecure_no_auth: bool,
    /// authorized_keys file for the SSH gateway; default `~/.ssh/authorized_keys`.
    pub authorized_keys: Option<PathBuf>,
    /// Accept any SSH key (trusted networks only; logs a warning).
    pub allow_any_key: bool,
    /// Docker endpoint (`unix://...` or `tcp://...`); defaults to `DOCKER_HOST`, then the local socket.
    pub docker_host: Option<String>,
    /// User that runs every exec in a shed; empty means the image's default user.
    pub container_user: Option<String>,
    /// Most tmux sessions one shed may have.
    pub max_sessions_per_shed: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: default_server_name(),
            bind: IpAddr::from([127, 0, 0, 1]),
            http_port: 8080,
            ssh_port: 2222,
            default_image: "shed-base:latest".into(),
            data_dir: default_data_dir(),
            isolation_prefix: None,
            mounts: Vec::new(),
            env_file: None,
            api_token: None,
            insecure_no_auth: false,
            authorized_keys: None,
            allow_any_key: false,
            docker_host: None,
            container_user: None,
            max_sessions_per_shed: 32,
        }
    }
}

fn default_server_name() -> String {
    gethostname::gethostname()
        .to_string_lossy()
        .split('.')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("shed-server")
        .to_string()
}

fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("shed-server"))
        .unwrap_or_else(|| PathBuf::from("/var/lib/shed-server"))
}

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's description, which names the key and line.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{path}: invalid `{key}`: {message}")]
    Invalid {
        /// The file, or `<defaults>`.
        path: PathBuf,
        /// The offending key.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// Where a configuration came from, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Loaded from this file.
    File(PathBuf),
    /// No file found; built-in defaults.
    Defaults,
}

impl ServerConfig {
    /// Finds and loads the config: `explicit`, then `$SHED_SERVER_CONFIG`,
    /// `./server.toml`, `~/.config/shed/server.toml`, `/etc/shed/server.toml`,
    /// and finally built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<(ServerConfig, ConfigSource), ConfigError> {
        if let Some(path) = explicit {
            return Ok((Self::from_file(path)?, ConfigSource::File(path.into())));
        }
        if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            return Ok((Self::from_file(&path)?, ConfigSource::File(path)));
        }
        for path in Self::search_path() {
            if path.is_file() {
                return Ok((Self::from_file(&path)?, ConfigSource::File(path)));
            }
        }
        let config = ServerConfig::default();
        config.check(Path::new("<defaults>"))?;
        Ok((config, ConfigSource::Defaults))
    }

    fn search_path() -> Vec<PathBuf> {
        let mut paths = vec![PathBuf::from("server.toml")];
        if let Some(dir) = dirs::config_dir() {
            paths.push(dir.join("shed").join("server.toml"));
        }
        paths.push(PathBuf::from("/etc/shed/server.toml"));
        paths
    }

    /// Loads and checks one file.
    pub fn from_file(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and checks TOML text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<ServerConfig, ConfigError> {
        let mut config: ServerConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.expand_home();
        config.check(path)?;
        Ok(config)
    }

    fn expand_home(&mut self) {
        for mount in &mut self.mounts {
            mount.source = expand_tilde(&mount.source);
        }
        for path in [&mut self.env_file, &mut self.authorized_keys]
            .into_iter()
            .flatten()
        {
            *path = expand_tilde(path);
        }
        self.data_dir = expand_tilde(&self.data_dir);
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.into(),
            key,
            message,
        };
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty".into()));
        }
        if self.default_image.trim().is_empty() {
            return Err(invalid("default_image", "must not be empty".into()));
        }
        if !(1..=1000).contains(&self.max_sessions_per_shed) {
            return Err(invalid(
                "max_sessions_per_shed",
                format!("{} is not between 1 and 1000", self.max_sessions_per_shed),
            ));
        }
        if let Some(prefix) = &self.isolation_prefix {
            let ok = !prefix.is_empty()
                && prefix.len() <= 32
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && prefix.as_bytes()[0].is_ascii_alphanumeric();
            if !ok {
                return Err(invalid(
                    "isolation_prefix",
                    format!("{prefix:?}: use 1-32 lowercase letters, digits and '-'"),
                ));
            }
        }
        if let Some(token) = &self.api_token {
            if token.len() < 8 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(
                    "api_token",
                    "must be at least 8 characters with no whitespace".into(),
                ));
            }
        }
        if !self.bind.is_loopback() && self.api_token.is_none() && !self.insecure_no_auth {
            return Err(invalid(
                "bind",
                format!(
                    "{} is not a loopback address and no api_token is set; set api_token, \
                     or set insecure_no_auth = true to expose the API without authentication",
                    self.bind
                ),
            ));
        }
        for mount in &self.mounts {
            if !mount.target.starts_with('/') {
                return Err(invalid(
                    "mounts",
                    format!("target {:?} must be an absolute path", mount.target),
                ));
            }
            if !mount.source.is_absolute() {
                return Err(invalid(
                    "mounts",
                    format!("source {:?} must be an absolute path", mount.source),
                ));
            }
        }
        if let Some(env_file) = &self.env_file {
            parse_env_file(env_file).map_err(|message| invalid("env_file", message))?;
        }
        if let Some(host) = &self.docker_host {
            if !["unix://", "tcp://", "http://"]
                .iter()
                .any(|scheme| host.starts_with(scheme))
            {
                return Err(invalid(
                    "docker_host",
                    format!("{host:?}: expected unix://PATH or tcp://HOST:PORT"),
                ));
            }
        }
        Ok(())
    }

    /// The Docker endpoint to use: `docker_host`, then `DOCKER_HOST`, then the local socket.
    pub fn docker_endpoint(&self) -> String {
        self.docker_host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
    }

    /// The authorized_keys file the gateway checks.
    pub fn authorized_keys_path(&self) -> PathBuf {
        self.authorized_keys.clone().unwrap_or_else(|| {
            dirs::home_dir()
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(".ssh")
                .join("authorized_keys")
        })
    }

    /// The environment injected into new sheds, from `env_file`.
    pub fn shed_env(&self) -> Result<Vec<String>, String> {
        match &self.env_file {
            Some(path) => parse_env_file(path),
            None => Ok(Vec::new()),
        }
    }
}

/// Reads `KEY=VALUE` lines; blank lines and `#` comments are skipped.
fn parse_env_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut vars = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        match line.split_once('=') {
            Some((key, _))
                if !key.is_empty()
                    && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !key.as_bytes()[0].is_ascii_digit() =>
            {
                vars.push(line.to_string())
            }
            _ => {
                return Err(format!(
                    "{} line {}: expected KEY=VALUE",
                    path.display(),
                    i + 1
                ))
            }
        }
    }
    Ok(vars)
}

/// Expands a leading `~/` to the current user's home directory.
pub fn expand_tilde(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

/// The commented example printed by `shed-server default-config`.
pub const EXAMPLE_CONFIG: &str = include_str!("../../config/server.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.http_port, 8080);
        assert_eq!(config.ssh_port, 2222);
        assert_eq!(config.default_image, "shed-base:latest");
        assert!(config.bind.is_loopback());
        assert!(!config.name.is_empty());
    }

    #[test]
    fn example_config_parses() {
        parse(EXAMPLE_CONFIG).unwrap();
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let err = parse("http_prot = 1\n").unwrap_err().to_string();
        assert!(err.contains("test.toml"), "{err}");
        assert!(err.contains("http_prot"), "{err}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let err = parse("http_port = \"eighty\"\n").unwrap_err().to_string();
        assert!(err.contains("http_port"), "{err}");
        let err = parse("isolation_prefix = \"Bad Prefix\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("isolation_prefix"), "{err}");
    }

    #[test]
    fn public_bind_needs_token_or_explicit_opt_out() {
        let err = parse("bind = \"0.0.0.0\"\n").unwrap_err().to_string();
        assert!(err.contains("api_token"), "{err}");
        parse("bind = \"0.0.0.0\"\napi_token = \"0123456789abcdef\"\n").unwrap();
        parse("bind = \"0.0.0.0\"\ninsecure_no_auth = true\n").unwrap();
    }

    #[test]
    fn mounts_need_absolute_targets() {
        let err = parse("[[mounts]]\nsource = \"/tmp\"\ntarget = \"rel\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mounts"), "{err}");
    }

    #[test]
    fn env_file_lines_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(&path, "# comment\nA=1\nexport B=two words\n\n").unwrap();
        let config = parse(&format!("env_file = {:?}\n", path)).unwrap();
        assert_eq!(config.shed_env().unwrap(), vec!["A=1", "B=two words"]);
        std::fs::write(&path, "not a var\n").unwrap();
        let err = parse(&format!("env_file = {:?}\n", path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("env_file") && err.contains("line 1"), "{err}");
    }
}
