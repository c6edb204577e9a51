//! The `[[notify]]` entries of server.toml and their checks: a bad URL, a
//! missing secret or an empty command stops the server at start-up with a
//! message naming the entry, instead of failing at the first notification.

use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

use crate::api::agent::AgentState;

/// Most `[[notify]]` entries one server may have.
pub const MAX_NOTIFY_TARGETS: usize = 32;
/// Default `min_hold_secs`: how long a state must hold before it is sent.
pub const DEFAULT_MIN_HOLD_SECS: u64 = 2;
/// Default `min_interval_secs`: at most one notification per session per
/// this many seconds. Half a minute keeps an agent that asks three questions
/// in a row from paging three times, and still tells its user within a
/// minute of the last one.
pub const DEFAULT_MIN_INTERVAL_SECS: u64 = 30;
/// Default `timeout_secs` of one delivery attempt.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Default `retries` after a failed delivery attempt.
pub const DEFAULT_RETRIES: u32 = 3;
/// Largest `retries`.
pub const MAX_RETRIES: u32 = 10;
/// Largest secret or secret file read, in bytes.
pub const MAX_SECRET_BYTES: usize = 4096;

/// How a `[[notify]]` entry delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    /// A signed JSON POST.
    Webhook,
    /// A plain-text POST to an ntfy-style topic URL.
    Ntfy,
    /// A program run without a shell, the JSON on its stdin.
    Command,
}

impl NotifyKind {
    /// The config name, e.g. `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Webhook => "webhook",
            NotifyKind::Ntfy => "ntfy",
            NotifyKind::Command => "command",
        }
    }
}

impl std::fmt::Display for NotifyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with the `[[notify]]` entries; the text names the key.
#[derive(Debug, Error)]
pub enum NotifyConfigError {
    /// More entries than [`MAX_NOTIFY_TARGETS`]; how many there are.
    #[error("{0} entries; at most {MAX_NOTIFY_TARGETS}")]
    TooMany(usize),
    /// One entry is wrong.
    #[error("entry {index} ({kind}): {error}")]
    Entry {
        /// The entry's position, from 1.
        index: usize,
        /// Its kind.
        kind: NotifyKind,
        /// What is wrong with it.
        error: Box<NotifyConfigError>,
    },
    /// Both `secret` and `secret_file` are set.
    #[error("set `secret` or `secret_file`, not both")]
    BothSecrets,
    /// A webhook without a key.
    #[error("a webhook needs `secret` or `secret_file` to sign with")]
    NoSecret,
    /// `secret_file` cannot be read.
    #[error("secret_file {path}: {source}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `secret_file` is longer than [`MAX_SECRET_BYTES`].
    #[error("secret_file {0}: longer than {MAX_SECRET_BYTES} bytes")]
    SecretFileTooLong(PathBuf),
    /// The key is too short to be a key.
    #[error("the secret must be at least 8 bytes")]
    SecretTooShort,
    /// The key is longer than [`MAX_SECRET_BYTES`].
    #[error("the secret is longer than {MAX_SECRET_BYTES} bytes")]
    SecretTooLong,
    /// A kind that takes a secret only for webhooks was given one.
    #[error("only a webhook takes `secret` (this is a {0})")]
    SecretNotTaken(NotifyKind),
    /// A webhook or ntfy entry without `url`.
    #[error("a {0} needs `url`")]
    NoUrl(NotifyKind),
    /// A command entry with `url`.
    #[error("a command takes no `url`")]
    UrlNotTaken,
    /// `url` does not parse.
    #[error("`url` {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// The parser's description.
        reason: String,
    },
    /// `url` is not http or https.
    #[error("`url` {0:?}: expected an http:// or https:// URL")]
    UrlScheme(String),
    /// `url` has no host.
    #[error("`url` {0:?}: no host")]
    UrlNoHost(String),
    /// A webhook or ntfy entry with `command`.
    #[error("a {0} takes no `command`")]
    CommandNotTaken(NotifyKind),
    /// A command entry with an empty `command`.
    #[error("`command` must name a program: command = [\"prog\", \"arg\"]")]
    NoProgram,
    /// `command`'s program is blank.
    #[error("`command`'s program must not be empty")]
    EmptyProgram,
    /// An argument with a NUL byte, which no argv can carry.
    #[error("`command` must not contain NUL bytes")]
    NulInCommand,
    /// `states` is empty.
    #[error("`states` must name at least one state")]
    NoStates,
    /// A name in `states` that is no agent state.
    #[error("unknown state {0:?} in `states`; expected working, waiting, idle, exited or unknown")]
    UnknownState(String),
    /// A name in `sheds` that is no valid shed name.
    #[error("`sheds`: {shed:?}: {error}")]
    BadShed {
        /// The name as given.
        shed: String,
        /// Why it is not a shed name.
        error: crate::api::names::NameError,
    },
    /// A number outside its range.
    #[error("`{key}` = {value} is not between {low} and {high}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value given.
        value: u64,
        /// The smallest allowed.
        low: u64,
        /// The largest allowed.
        high: u64,
    },
}

/// One `[[notify]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `webhook`, `ntfy` or `command`.
    pub kind: NotifyKind,
    /// Where webhook and ntfy entries POST (http or https).
    #[serde(default)]
    pub url: Option<String>,
    /// The webhook's HMAC key.
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the webhook's HMAC key (trailing newline ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The command entry's argv, run without a shell.
    #[serde(default)]
    pub command: Vec<String>,
    /// Agent states that notify; default `["waiting", "exited"]`.
    #[serde(default = "default_states")]
    pub states: Vec<String>,
    /// Only these sheds; empty means every shed.
    #[serde(default)]
    pub sheds: Vec<String>,
    /// Seconds a new state must hold before it is sent.
    #[serde(default = "default_min_hold")]
    pub min_hold_secs: u64,
    /// At most one notification per session per this many seconds.
    #[serde(default = "default_min_interval")]
    pub min_interval_secs: u64,
    /// Also notify about sessions someone is attached to.
    #[serde(default)]
    pub include_attached: bool,
    /// Seconds one delivery attempt may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Further attempts after a failed one (network errors, 5xx and 429;
    /// a command's failure), with exponential backoff.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_states() -> Vec<String> {
    vec!["waiting".into(), "exited".into()]
}
fn default_min_hold() -> u64 {
    DEFAULT_MIN_HOLD_SECS
}
fn default_min_interval() -> u64 {
    DEFAULT_MIN_INTERVAL_SECS
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECS
}
fn default_retries() -> u32 {
    DEFAULT_RETRIES
}

impl NotifyConfig {
    /// A webhook entry with default settings, for tests and examples.
    pub fn webhook(url: &str, secret: &str) -> NotifyConfig {
        NotifyConfig {
            kind: NotifyKind::Webhook,
            url: Some(url.into()),
            secret: Some(secret.into()),
            secret_file: None,
            command: Vec::new(),
            states: default_states(),
            sheds: Vec::new(),
            min_hold_secs: DEFAULT_MIN_HOLD_SECS,
            min_interval_secs: DEFAULT_MIN_INTERVAL_SECS,
            include_attached: false,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            retries: DEFAULT_RETRIES,
        }
    }

    /// The states that notify, parsed (checked at load, so none is dropped).
    pub fn agent_states(&self) -> Vec<AgentState> {
        self.states
            .iter()
            .filter_map(|s| AgentState::parse(s))
            .collect()
    }

    /// The webhook's key: `secret`, or the contents of `secret_file`.
    pub fn secret_bytes(&self) -> Result<Vec<u8>, NotifyConfigError> {
        let secret = match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => return Err(NotifyConfigError::BothSecrets),
            (Some(secret), None) => secret.as_bytes().to_vec(),
            (None, Some(path)) => {
                let mut bytes =
                    std::fs::read(path).map_err(|source| NotifyConfigError::SecretFile {
                        path: path.clone(),
                        source,
                    })?;
                if bytes.len() > MAX_SECRET_BYTES {
                    return Err(NotifyConfigError::SecretFileTooLong(path.clone()));
                }
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                bytes
            }
            (None, None) => return Err(NotifyConfigError::NoSecret),
        };
        if secret.len() < 8 {
            return Err(NotifyConfigError::SecretTooShort);
        }
        if secret.len() > MAX_SECRET_BYTES {
            return Err(NotifyConfigError::SecretTooLong);
        }
        Ok(secret)
    }

    /// Expands a leading `~/` in `secret_file`.
    pub fn expand_home(&mut self) {
        if let Some(path) = &mut self.secret_file {
            *path = crate::server::config::expand_tilde(path);
        }
    }

    /// Checks the entry; the message says what is wrong, without the entry's position.
    pub fn check(&self) -> Result<(), NotifyConfigError> {
        match self.kind {
            NotifyKind::Webhook | NotifyKind::Ntfy => {
                let url = self
                    .url
                    .as_deref()
                    .ok_or(NotifyConfigError::NoUrl(self.kind))?;
                check_url(url)?;
                if !self.command.is_empty() {
                    return Err(NotifyConfigError::CommandNotTaken(self.kind));
                }
            }
            NotifyKind::Command => {
                if self.url.is_some() {
                    return Err(NotifyConfigError::UrlNotTaken);
                }
                match self.command.first() {
                    None => return Err(NotifyConfigError::NoProgram),
                    Some(prog) if prog.trim().is_empty() => {
                        return Err(NotifyConfigError::EmptyProgram)
                    }
                    Some(_) => {}
                }
                if self.command.iter().any(|a| a.contains('\0')) {
                    return Err(NotifyConfigError::NulInCommand);
                }
            }
        }
        match self.kind {
            NotifyKind::Webhook => {
                self.secret_bytes()?;
            }
            _ if self.secret.is_some() || self.secret_file.is_some() => {
                return Err(NotifyConfigError::SecretNotTaken(self.kind));
            }
            _ => {}
        }
        if self.states.is_empty() {
            return Err(NotifyConfigError::NoStates);
        }
        for state in &self.states {
            // Parsed by name, not through serde, whose fallback would read a
            // typo as `unknown`.
            if AgentState::parse(state).is_none() {
                return Err(NotifyConfigError::UnknownState(state.clone()));
            }
        }
        for shed in &self.sheds {
            crate::api::names::validate_shed_name(shed).map_err(|error| {
                NotifyConfigError::BadShed {
                    shed: shed.clone(),
                    error,
                }
            })?;
        }
        for (key, value, low, high) in [
            ("min_hold_secs", self.min_hold_secs, 0, 3600),
            ("min_interval_secs", self.min_interval_secs, 0, 86_400),
            ("timeout_secs", self.timeout_secs, 1, 300),
            (
                "retries",
                u64::from(self.retries),
                0,
                u64::from(MAX_RETRIES),
            ),
        ] {
            if !(low..=high).contains(&value) {
                return Err(NotifyConfigError::OutOfRange {
                    key,
                    value,
                    low,
                    high,
                });
            }
        }
        Ok(())
    }
}

/// An absolute http or https URL with a host.
fn check_url(url: &str) -> Result<(), NotifyConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| NotifyConfigError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(NotifyConfigError::UrlScheme(url.to_string()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(NotifyConfigError::UrlNoHost(url.to_string()));
    }
    Ok(())
}

/// Checks every entry; the message names the entry (1-based) and its kind.
pub fn check_all(entries: &[NotifyConfig]) -> Result<(), NotifyConfigError> {
    if entries.len() > MAX_NOTIFY_TARGETS {
        return Err(NotifyConfigError::TooMany(entries.len()));
    }
    for (i, entry) in entries.iter().enumerate() {
        entry.check().map_err(|error| NotifyConfigError::Entry {
            index: i + 1,
            kind: entry.kind,
            error: Box::new(error),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::server::config::{ConfigError, ServerConfig};
    use std::path::Path;

    fn parse(text: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::from_toml(text, Path::new("test.toml"))
    }

    /// The error's text, as the server prints it, for a config that must fail.
    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn entries_parse_with_defaults() {
        let config = parse(
            "[[notify]]\nkind = \"webhook\"\nurl = \"https://hooks.example/x\"\nsecret = \"0123456789\"\n\
             [[notify]]\nkind = \"ntfy\"\nurl = \"http://127.0.0.1:9/topic\"\nsheds = [\"dev\"]\nstates = [\"idle\"]\n\
             [[notify]]\nkind = \"command\"\ncommand = [\"notify-send\", \"shed\"]\ninclude_attached = true\n",
        )
        .unwrap();
        assert_eq!(config.notify.len(), 3);
        let hook = &config.notify[0];
        assert_eq!(hook.states, ["waiting", "exited"]);
        assert_eq!(hook.min_hold_secs, super::DEFAULT_MIN_HOLD_SECS);
        assert_eq!(hook.min_interval_secs, super::DEFAULT_MIN_INTERVAL_SECS);
        assert!(!hook.include_attached);
        assert_eq!(hook.secret_bytes().unwrap(), b"0123456789");
        assert_eq!(config.notify[1].sheds, ["dev"]);
        assert!(config.notify[2].include_attached);
        assert!(parse("").unwrap().notify.is_empty());
    }

    #[test]
    fn secret_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-a-file-123\n").unwrap();
        let config = parse(&format!(
            "[[notify]]\nkind = \"webhook\"\nurl = \"https://x.example/\"\nsecret_file = {path:?}\n"
        ))
        .unwrap();
        assert_eq!(config.notify[0].secret_bytes().unwrap(), b"from-a-file-123");
        let missing = dir.path().join("nope");
        let err = error(&format!(
            "[[notify]]\nkind = \"webhook\"\nurl = \"https://x.example/\"\nsecret_file = {missing:?}\n"
        ));
        assert!(err.contains("notify") && err.contains("nope"), "{err}");
    }

    #[test]
    fn bad_entries_stop_the_load_with_a_clear_message() {
        let hook = "[[notify]]\nkind = \"webhook\"\nsecret = \"0123456789\"\n";
        for (bad, expect) in [
            (format!("{hook}url = \"not a url\"\n"), "url"),
            (format!("{hook}url = \"ftp://x.example/\"\n"), "http"),
            (hook.to_string(), "needs `url`"),
            ("[[notify]]\nkind = \"webhook\"\nurl = \"https://x.example/\"\n".into(), "secret"),
            ("[[notify]]\nkind = \"webhook\"\nurl = \"https://x.example/\"\nsecret = \"short\"\n".into(), "8 bytes"),
            ("[[notify]]\nkind = \"command\"\ncommand = []\n".into(), "command"),
            ("[[notify]]\nkind = \"command\"\ncommand = [\"\"]\n".into(), "empty"),
            ("[[notify]]\nkind = \"command\"\n".into(), "command"),
            (format!("{hook}url = \"https://x.example/\"\nstates = [\"wating\"]\n"), "wating"),
            (format!("{hook}url = \"https://x.example/\"\nstates = []\n"), "states"),
            (format!("{hook}url = \"https://x.example/\"\nsheds = [\"Bad Name\"]\n"), "sheds"),
            (format!("{hook}url = \"https://x.example/\"\ntimeout_secs = 0\n"), "timeout_secs"),
            (format!("{hook}url = \"https://x.example/\"\nretries = 99\n"), "retries"),
            (format!("{hook}url = \"https://x.example/\"\nmin_hold_secs = 99999\n"), "min_hold_secs"),
            (format!("{hook}url = \"https://x.example/\"\nbogus = 1\n"), "bogus"),
            ("[[notify]]\nkind = \"pager\"\n".into(), "pager"),
            ("[[notify]]\nkind = \"ntfy\"\nurl = \"https://x.example/\"\nsecret = \"0123456789\"\n".into(), "only a webhook"),
        ] {
            let err = error(&bad);
            assert!(err.contains("notify") || err.contains("kind"), "{bad}: {err}");
            assert!(err.contains(expect), "{bad}: expected {expect:?} in {err}");
        }
        let err = error(&format!(
            "{hook}url = \"https://x.example/\"\n[[notify]]\nkind = \"command\"\n"
        ));
        assert!(err.contains("entry 2 (command)"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use crate::server::config::{ServerConfig, EXAMPLE_CONFIG};
    use std::path::Path;

    #[test]
    fn the_commented_example_entries_parse() {
        let start = EXAMPLE_CONFIG.find("# [[notify]]").expect("an example");
        // The example runs to the next blank line, where another key's begins.
        let text: String = EXAMPLE_CONFIG[start..]
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .collect::<Vec<_>>()
            .join("\n");
        let config = ServerConfig::from_toml(&text, Path::new("example")).unwrap();
        assert_eq!(config.notify.len(), 3);
    }
}
