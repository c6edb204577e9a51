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
    /// A second token that may only read: GET and HEAD, and a browser
    /// terminal that shows but takes no input.
    pub api_token_read_only: Option<String>,
    /// Allows a non-loopback `bind` without `api_token`.
    pub insecure_no_auth: bool,
    /// authorized_keys file for the SSH gateway; default `data_dir/authorized_keys`.
    pub authorized_keys: Option<PathBuf>,
    /// Accept any SSH key (trusted networks only; logs a warning).
    pub allow_any_key: bool,
    /// Docker endpoint (`unix://...` or `tcp://...`); defaults to `DOCKER_HOST`, then the local socket.
    pub docker_host: Option<String>,
    /// User that runs every exec in a shed; empty means the image's default user.
    pub container_user: Option<String>,
    /// Most tmux sessions one shed may have.
    pub max_sessions_per_shed: usize,
    /// Extra names the HTTP API answers to in `Host` (besides loopback names,
    /// the bind address and the server's own names), e.g. `buildbox.lan`.
    pub allowed_hosts: Vec<String>,
    /// Whether the HTTP API speaks TLS; `auto` means on for non-loopback binds.
    pub tls: TlsMode,
    /// Seconds a client has to send a request's headers (and finish a TLS handshake).
    pub http_header_timeout_secs: u64,
    /// Seconds a connection may sit with no request in flight before it is closed.
    pub http_idle_timeout_secs: u64,
    /// Most HTTP connections held at once; past it, the oldest idle one is closed.
    pub http_max_connections: usize,
    /// Seconds an SSH connection may take to authenticate before it is closed (sshd's LoginGraceTime).
    pub ssh_login_grace_secs: u64,
    /// Most SSH connections open at once, authenticated or not.
    pub ssh_max_connections: usize,
    /// Most SSH connections not yet authenticated (sshd's MaxStartups); below `ssh_max_connections`.
    pub ssh_max_unauthenticated: usize,
    /// Most unauthenticated SSH connections from one address (IPv6: one /64).
    pub ssh_max_unauthenticated_per_ip: usize,
    /// Most channels (sessions and forwards) open at once on one SSH connection.
    pub ssh_max_channels_per_connection: usize,
    /// Events kept for `GET /api/events` clients resuming with `Last-Event-ID`.
    pub event_ring_size: usize,
    /// Whether each running shed gets a live tmux control channel that
    /// serves session requests; `false` runs every request as an exec.
    pub control_mode: bool,
    /// Screen rules that replace, disable or add to the built-in ones.
    pub screen_rules: crate::server::agent::rules::ScreenRulesConfig,
    /// Whether a create installs the agent state hooks (`shed-hook` and the
    /// Claude Code, Codex and Gemini CLI configurations) into the new shed.
    pub install_hooks: bool,
    /// Notification targets (`[[notify]]`), sent on agent state changes.
    pub notify: Vec<crate::server::notify::NotifyConfig>,
    /// Lines of each pane's history a session snapshot keeps (0: none).
    pub snapshot_history_lines: usize,
    /// Seconds between the periodic snapshots of every running shed, which
    /// keep the panes' history fresh (0: only on changes and before stops).
    pub snapshot_interval_secs: u64,
    /// Seconds a running shed may have no session working and no client
    /// attached before it stops itself; 0 (the default) never. Written as
    /// seconds or as `"30m"`; a create may set a shed's own.
    #[serde(deserialize_with = "crate::api::idle::deserialize_idle_stop_after")]
    pub idle_stop_after: u64,
}

/// The `tls` key: whether the HTTP API is served over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS on non-loopback binds, plain HTTP on loopback.
    #[default]
    Auto,
    /// Always TLS.
    On,
    /// Never TLS (the token then travels in clear text off loopback).
    Off,
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
            api_token_read_only: None,
            insecure_no_auth: false,
            authorized_keys: None,
            allow_any_key: false,
            docker_host: None,
            container_user: None,
            max_sessions_per_shed: 32,
            allowed_hosts: Vec::new(),
            tls: TlsMode::Auto,
            http_header_timeout_secs: 10,
            http_idle_timeout_secs: 60,
            http_max_connections: 512,
            ssh_login_grace_secs: 30,
            ssh_max_connections: 1000,
            ssh_max_unauthenticated: 100,
            ssh_max_unauthenticated_per_ip: 10,
            ssh_max_channels_per_connection: 64,
            event_ring_size: crate::server::events::DEFAULT_RING_SIZE,
            control_mode: true,
            screen_rules: Default::default(),
            install_hooks: true,
            notify: Vec::new(),
            snapshot_history_lines: 2000,
            snapshot_interval_secs: 300,
            idle_stop_after: 0,
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
        for path in [
            &mut self.env_file,
            &mut self.authorized_keys,
            &mut self.screen_rules.file,
        ]
        .into_iter()
        .flatten()
        {
            *path = expand_tilde(path);
        }
        self.data_dir = expand_tilde(&self.data_dir);
        for entry in &mut self.notify {
            entry.expand_home();
        }
    }

    /// Checks the values as a whole; `path` is only used in messages. Loading
    /// already does this; call it again after changing fields (as the
    /// command-line overrides of `serve` do).
    pub fn check(&self, path: &Path) -> Result<(), ConfigError> {
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
        self.check_ssh_limits(path)?;
        let max_lines = crate::server::sessions::MAX_OUTPUT_LINES;
        if self.snapshot_history_lines > max_lines {
            return Err(invalid(
                "snapshot_history_lines",
                format!("{} is over {max_lines}", self.snapshot_history_lines),
            ));
        }
        if self.snapshot_interval_secs != 0 && !(10..=86_400).contains(&self.snapshot_interval_secs)
        {
            return Err(invalid(
                "snapshot_interval_secs",
                format!(
                    "{} is not 0 (off) or between 10 and 86400",
                    self.snapshot_interval_secs
                ),
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
        for (key, token) in [
            ("api_token", &self.api_token),
            ("api_token_read_only", &self.api_token_read_only),
        ] {
            if let Some(token) = token {
                if token.len() < 8 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(invalid(
                        key,
                        "must be at least 8 characters with no whitespace".into(),
                    ));
                }
            }
        }
        if let Some(read_only) = &self.api_token_read_only {
            // Without api_token everything is open, so a read-only token would restrict nothing.
            match &self.api_token {
                None => {
                    return Err(invalid(
                        "api_token_read_only",
                        "needs api_token: without it every request is allowed anyway".into(),
                    ))
                }
                Some(full) if full == read_only => {
                    return Err(invalid(
                        "api_token_read_only",
                        "must differ from api_token".into(),
                    ))
                }
                Some(_) => {}
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
            parse_env_file(env_file).map_err(|e| invalid("env_file", e.to_string()))?;
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
        self.check_http(path)?;
        if !(1..=crate::server::events::MAX_RING_SIZE).contains(&self.event_ring_size) {
            return Err(invalid(
                "event_ring_size",
                format!(
                    "{} is not between 1 and {}",
                    self.event_ring_size,
                    crate::server::events::MAX_RING_SIZE
                ),
            ));
        }
        self.rules().map_err(|e| invalid("screen_rules", e.0))?;
        crate::server::notify::config::check_all(&self.notify)
            .map_err(|e| invalid("notify", e.to_string()))?;
        Ok(())
    }

    /// The screen rules in force: the built-in ones with `screen_rules`
    /// applied. Loading already checks that they compile.
    pub fn rules(
        &self,
    ) -> Result<crate::server::agent::rules::Rules, crate::server::agent::rules::RulesError> {
        crate::server::agent::rules::Rules::with_overrides(&self.screen_rules)
    }

    fn check_http(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.into(),
            key,
            message,
        };
        for host in &self.allowed_hosts {
            let ok = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
            if !ok {
                return Err(invalid(
                    "allowed_hosts",
                    format!("{host:?} is not a host name or IP address (no port, no scheme)"),
                ));
            }
        }
        for (key, secs) in [
            ("http_header_timeout_secs", self.http_header_timeout_secs),
            ("http_idle_timeout_secs", self.http_idle_timeout_secs),
        ] {
            if !(1..=3600).contains(&secs) {
                return Err(invalid(key, format!("{secs} is not between 1 and 3600")));
            }
        }
        if !(1..=100_000).contains(&self.http_max_connections) {
            return Err(invalid(
                "http_max_connections",
                format!("{} is not between 1 and 100000", self.http_max_connections),
            ));
        }
        Ok(())
    }

    /// Whether the HTTP API is served over TLS under this config.
    pub fn tls_enabled(&self) -> bool {
        match self.tls {
            TlsMode::On => true,
            TlsMode::Off => false,
            TlsMode::Auto => !self.bind.is_loopback(),
        }
    }

    /// The Docker endpoint to use: `docker_host`, then `DOCKER_HOST`, then the local socket.
    pub fn docker_endpoint(&self) -> String {
        self.docker_host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
    }

    /// The authorized_keys file the gateway checks: `authorized_keys`, or
    /// `data_dir/authorized_keys`, managed with `shed-server keys`.
    pub fn authorized_keys_path(&self) -> PathBuf {
        self.authorized_keys
            .clone()
            .unwrap_or_else(|| self.data_dir.join("authorized_keys"))
    }

    /// The environment injected into new sheds, from `env_file`.
    pub fn shed_env(&self) -> Result<Vec<String>, EnvFileError> {
        match &self.env_file {
            Some(path) => parse_env_file(path),
            None => Ok(Vec::new()),
        }
    }
}

/// Why `env_file` cannot give the sheds' environment.
#[derive(Debug, Error)]
pub enum EnvFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line that is not `KEY=VALUE`.
    #[error("{path} line {line}: expected KEY=VALUE")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
    },
}

/// Reads `KEY=VALUE` lines; blank lines and `#` comments are skipped.
fn parse_env_file(path: &Path) -> Result<Vec<String>, EnvFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| EnvFileError::Read {
        path: path.into(),
        source,
    })?;
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
                return Err(EnvFileError::BadLine {
                    path: path.into(),
                    line: i + 1,
                })
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

impl ServerConfig {
    fn check_ssh_limits(&self, path: &Path) -> Result<(), ConfigError> {
        let range = |key: &'static str, value: u64, low: u64, high: u64| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    path: path.into(),
                    key,
                    message: format!("{value} is not between {low} and {high}"),
                })
            }
        };
        let n = |v: usize| v as u64;
        range("ssh_login_grace_secs", self.ssh_login_grace_secs, 1, 3600)?;
        range(
            "ssh_max_connections",
            n(self.ssh_max_connections),
            2,
            100_000,
        )?;
        // Unauthenticated connections must leave room for authenticated
        // ones, or a flood of idle sockets would lock every user out.
        range(
            "ssh_max_unauthenticated",
            n(self.ssh_max_unauthenticated),
            1,
            n(self.ssh_max_connections) - 1,
        )?;
        range(
            "ssh_max_unauthenticated_per_ip",
            n(self.ssh_max_unauthenticated_per_ip),
            1,
            n(self.ssh_max_unauthenticated),
        )?;
        range(
            "ssh_max_channels_per_connection",
            n(self.ssh_max_channels_per_connection),
            1,
            10_000,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::from_toml(text, Path::new("test.toml"))
    }

    /// Asserts that `text` is refused with an error that mentions `needle`.
    fn assert_refused(text: &str, needle: &str) {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
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
    fn screen_rules_overrides_load_and_bad_ones_refuse_to_start() {
        let config = parse("").unwrap();
        assert_eq!(config.rules().unwrap().version(), "1");
        let config = parse(
            r#"
            [[screen_rules.rule]]
            agent = "claude"
            name = "busy-line"
            enabled = false

            [[screen_rules.rule]]
            agent = "aider"
            name = "waiting-for-model"
            state = "working"
            patterns = ['^Waiting for ']
            "#,
        )
        .unwrap();
        let rules = config.rules().unwrap();
        assert_eq!(rules.version(), "1+local");
        let m = rules
            .classify(crate::api::agent::AgentKind::Aider, "Waiting for sonnet\n")
            .unwrap();
        assert_eq!(m.rule, "aider/waiting-for-model");

        let err = parse(
            r#"
            [[screen_rules.rule]]
            agent = "codex"
            name = "mine"
            state = "waiting"
            patterns = ['[unclosed']
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("invalid `screen_rules`"), "{err}");
        assert!(err.contains("rule codex/mine: bad pattern"), "{err}");
        assert_refused(
            "[screen_rules]\nfile = \"/nonexistent/rules.toml\"\n",
            "cannot read /nonexistent/rules.toml",
        );
        assert_refused("[screen_rules]\nrules = []\n", "unknown field");
    }

    #[test]
    fn event_ring_size_is_checked() {
        assert_eq!(
            parse("").unwrap().event_ring_size,
            crate::server::events::DEFAULT_RING_SIZE
        );
        parse("event_ring_size = 1\n").unwrap();
        for bad in [0, crate::server::events::MAX_RING_SIZE + 1] {
            assert_refused(&format!("event_ring_size = {bad}\n"), "event_ring_size");
        }
    }

    #[test]
    fn example_config_parses() {
        parse(EXAMPLE_CONFIG).unwrap();
    }

    #[test]
    fn the_example_screen_rule_parses_uncommented() {
        let block: String = EXAMPLE_CONFIG
            .lines()
            .skip_while(|l| *l != "# [[screen_rules.rule]]")
            .map_while(|l| l.strip_prefix("# "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            block.contains("patterns"),
            "the example lost its rule: {block:?}"
        );
        let rules = parse(&block).unwrap().rules().unwrap();
        let m = rules
            .classify(
                crate::api::agent::AgentKind::Claude,
                "✻ Thinking… (esc to stop)\n",
            )
            .unwrap();
        assert_eq!(m.rule, "claude/busy-line");
    }

    #[test]
    fn a_read_only_token_needs_a_different_full_token() {
        assert_refused(
            "api_token_read_only = \"viewer-0123456\"\n",
            "api_token_read_only",
        );
        let same = "api_token = \"same-0123456\"\napi_token_read_only = \"same-0123456\"\n";
        assert!(parse(same).unwrap_err().to_string().contains("differ"));
        let short = "api_token = \"full-0123456\"\napi_token_read_only = \"short\"\n";
        assert!(parse(short).is_err());
        let ok = parse("api_token = \"full-0123456\"\napi_token_read_only = \"viewer-0123456\"\n")
            .unwrap();
        assert_eq!(ok.api_token_read_only.as_deref(), Some("viewer-0123456"));
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let err = parse("http_prot = 1\n").unwrap_err().to_string();
        assert!(err.contains("test.toml"), "{err}");
        assert!(err.contains("http_prot"), "{err}");
    }

    #[test]
    fn bad_value_names_the_key() {
        assert_refused("http_port = \"eighty\"\n", "http_port");
        assert_refused("isolation_prefix = \"Bad Prefix\"\n", "isolation_prefix");
    }

    #[test]
    fn public_bind_needs_token_or_explicit_opt_out() {
        assert_refused("bind = \"0.0.0.0\"\n", "api_token");
        parse("bind = \"0.0.0.0\"\napi_token = \"0123456789abcdef\"\n").unwrap();
        parse("bind = \"0.0.0.0\"\ninsecure_no_auth = true\n").unwrap();
    }

    #[test]
    fn mounts_need_absolute_targets() {
        assert_refused(
            "[[mounts]]\nsource = \"/tmp\"\ntarget = \"rel\"\n",
            "mounts",
        );
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

    #[test]
    fn http_keys_are_checked() {
        let config =
            parse("allowed_hosts = [\"shed.example\", \"10.0.0.7\"]\ntls = \"on\"\n").unwrap();
        assert!(config.tls_enabled());
        assert!(!parse("").unwrap().tls_enabled());
        let public = parse("bind = \"0.0.0.0\"\ninsecure_no_auth = true\n").unwrap();
        assert!(public.tls_enabled());
        for bad in [
            "allowed_hosts = [\"http://x\"]\n",
            "allowed_hosts = [\"\"]\n",
            "tls = \"maybe\"\n",
            "http_header_timeout_secs = 0\n",
            "http_max_connections = 0\n",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            let key = bad.split(' ').next().unwrap();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn ssh_limits_leave_room_for_authenticated_connections() {
        assert_refused(
            "ssh_max_connections = 10\nssh_max_unauthenticated = 10\n",
            "ssh_max_unauthenticated",
        );
        assert_refused("ssh_login_grace_secs = 0\n", "ssh_login_grace_secs");
        assert_refused(
            "ssh_max_unauthenticated = 5\nssh_max_unauthenticated_per_ip = 6\n",
            "ssh_max_unauthenticated_per_ip",
        );
    }

    #[test]
    fn idle_stop_after_takes_seconds_or_a_unit_and_is_off_by_default() {
        assert_eq!(parse("").unwrap().idle_stop_after, 0);
        assert_eq!(parse("idle_stop_after = 90\n").unwrap().idle_stop_after, 90);
        assert_eq!(
            parse("idle_stop_after = \"30m\"\n")
                .unwrap()
                .idle_stop_after,
            1800
        );
        assert_eq!(
            parse("idle_stop_after = \"off\"\n")
                .unwrap()
                .idle_stop_after,
            0
        );
        for bad in [
            "idle_stop_after = \"soon\"\n",
            "idle_stop_after = -5\n",
            "idle_stop_after = 99999999\n",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("idle_stop_after"), "{bad}: {err}");
        }
    }

    #[test]
    fn authorized_keys_default_to_the_data_dir() {
        let config = parse("data_dir = \"/srv/shed\"\n").unwrap();
        assert_eq!(
            config.authorized_keys_path(),
            PathBuf::from("/srv/shed/authorized_keys")
        );
    }
}
