//! The `[[notify]]` entries of server.toml and their checks: a bad URL, a
//! missing secret or an empty command stops the server at start-up with a
//! message naming the entry, instead of failing at the first notification.

use std::path::PathBuf;

use serde::Deserialize;

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
    pub fn secret_bytes(&self) -> Result<Vec<u8>, String> {
        let secret = match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => return Err("set `secret` or `secret_file`, not both".into()),
            (Some(secret), None) => secret.as_bytes().to_vec(),
            (None, Some(path)) => {
                let mut bytes = std::fs::read(path)
                    .map_err(|e| format!("secret_file {}: {e}", path.display()))?;
                if bytes.len() > MAX_SECRET_BYTES {
                    return Err(format!(
                        "secret_file {}: longer than {MAX_SECRET_BYTES} bytes",
                        path.display()
                    ));
                }
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                bytes
            }
            (None, None) => {
                return Err("a webhook needs `secret` or `secret_file` to sign with".into())
            }
        };
        if secret.len() < 8 {
            return Err("the secret must be at least 8 bytes".into());
        }
        if secret.len() > MAX_SECRET_BYTES {
            return Err(format!(
                "the secret is longer than {MAX_SECRET_BYTES} bytes"
            ));
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
    pub fn check(&self) -> Result<(), String> {
        match self.kind {
            NotifyKind::Webhook | NotifyKind::Ntfy => {
                let url = self
                    .url
                    .as_deref()
                    .ok_or_else(|| format!("a {} needs `url`", self.kind.as_str()))?;
                check_url(url)?;
                if !self.command.is_empty() {
                    return Err(format!("a {} takes no `command`", self.kind.as_str()));
                }
            }
            NotifyKind::Command => {
                if self.url.is_some() {
                    return Err("a command takes no `url`".into());
                }
                match self.command.first() {
                    None => {
                        return Err(
                            "`command` must name a program: command = [\"prog\", \"arg\"]".into(),
                        )
                    }
                    Some(prog) if prog.trim().is_empty() => {
                        return Err("`command`'s program must not be empty".into())
                    }
                    Some(_) => {}
                }
                if self.command.iter().any(|a| a.contains('\0')) {
                    return Err("`command` must not contain NUL bytes".into());
                }
            }
        }
        match self.kind {
            NotifyKind::Webhook => {
                self.secret_bytes()?;
            }
            _ if self.secret.is_some() || self.secret_file.is_some() => {
                return Err(format!(
                    "only a webhook takes `secret` (this is a {})",
                    self.kind.as_str()
                ));
            }
            _ => {}
        }
        if self.states.is_empty() {
            return Err("`states` must name at least one state".into());
        }
        for state in &self.states {
            // Parsed by name, not through serde, whose fallback would read a
            // typo as `unknown`.
            if AgentState::parse(state).is_none() {
                return Err(format!(
                    "unknown state {state:?} in `states`; expected working, waiting, idle, exited or unknown"
                ));
            }
        }
        for shed in &self.sheds {
            crate::api::names::validate_shed_name(shed)
                .map_err(|e| format!("`sheds`: {shed:?}: {e}"))?;
        }
        for (key, value, high) in [
            ("min_hold_secs", self.min_hold_secs, 3600),
            ("min_interval_secs", self.min_interval_secs, 86_400),
        ] {
            if value > high {
                return Err(format!("`{key}` = {value} is not between 0 and {high}"));
            }
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return Err(format!(
                "`timeout_secs` = {} is not between 1 and 300",
                self.timeout_secs
            ));
        }
        if self.retries > MAX_RETRIES {
            return Err(format!(
                "`retries` = {} is not between 0 and {MAX_RETRIES}",
                self.retries
            ));
        }
        Ok(())
    }
}

/// An absolute http or https URL with a host.
fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`url` {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "`url` {url:?}: expected an http:// or https:// URL"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`url` {url:?}: no host"));
    }
    Ok(())
}

/// Checks every entry; the message names the entry (1-based) and its kind.
pub fn check_all(entries: &[NotifyConfig]) -> Result<(), String> {
    if entries.len() > MAX_NOTIFY_TARGETS {
        return Err(format!(
            "{} entries; at most {MAX_NOTIFY_TARGETS}",
            entries.len()
        ));
    }
    for (i, entry) in entries.iter().enumerate() {
        entry
            .check()
            .map_err(|message| format!("entry {} ({}): {message}", i + 1, entry.kind.as_str()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::server::config::ServerConfig;
    use std::path::Path;

    fn parse(text: &str) -> Result<ServerConfig, String> {
        ServerConfig::from_toml(text, Path::new("test.toml")).map_err(|e| e.to_string())
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
        let err = parse(&format!(
            "[[notify]]\nkind = \"webhook\"\nurl = \"https://x.example/\"\nsecret_file = {missing:?}\n"
        ))
        .unwrap_err();
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
            let err = parse(&bad).unwrap_err();
            assert!(err.contains("notify") || err.contains("kind"), "{bad}: {err}");
            assert!(err.contains(expect), "{bad}: expected {expect:?} in {err}");
        }
        let err = parse(&format!(
            "{hook}url = \"https://x.example/\"\n[[notify]]\nkind = \"command\"\n"
        ))
        .unwrap_err();
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
