//! The gateway's host key and the client keys it accepts.

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, NaiveDateTime, Utc};
use russh::keys::ssh_key::authorized_keys::ConfigOpts;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{Algorithm, LineEnding};
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use thiserror::Error;

use crate::api::fingerprint::is_fingerprint;

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
    /// A key given to `shed-server keys add` is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The key is already listed.
    #[error("key {0} is already listed")]
    Duplicate(String),
    /// No key has this fingerprint or comment.
    #[error("no key with fingerprint or comment {0:?}")]
    NotFound(String),
    /// Several keys have this comment.
    #[error("several keys have the comment {0:?}; name one by fingerprint")]
    Ambiguous(String),
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
    /// Whether `key` may log in from `peer`: some line lists it and its
    /// options (`from=`, `expiry-time=`) allow this login. Unreadable files,
    /// bad lines and lines with options shed cannot honour deny, and are logged.
    pub fn allows(&self, key: &PublicKey, peer: Option<IpAddr>) -> bool {
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
        let now = Utc::now();
        text.lines()
            .enumerate()
            .filter(|(_, line)| is_key_line(line))
            .any(|(i, line)| match parse_line(line) {
                Ok(entry) if entry.public_key().key_data() == key.key_data() => {
                    match parse_options(entry.config_opts()) {
                        Ok(options) => options_allow(&options, peer, now, key),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), line = i + 1, key = %fingerprint(key), error = %e, "refusing an authorized_keys line");
                            false
                        }
                    }
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(path = %path.display(), line = i + 1, error = %e, "skipping an unreadable authorized_keys line");
                    false
                }
            })
    }
}

/// One authorized_keys line: options and key.
#[derive(Debug, Clone)]
pub struct Entry {
    options: ConfigOpts,
    key: PublicKey,
}

impl Entry {
    /// The options field, possibly empty.
    pub fn config_opts(&self) -> &ConfigOpts {
        &self.options
    }

    /// The key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }
}

/// Parses `[options] type base64 [comment]` as sshd does: the line starts
/// with a key type, or with an options field that ends at the first space
/// outside double quotes. (ssh-key's own `Entry` parser gets lines with
/// options but no comment wrong.)
pub fn parse_line(line: &str) -> Result<Entry, LineError> {
    let line = line.trim();
    let first = line.split([' ', '\t']).next().unwrap_or("");
    if Algorithm::new(first).is_ok() {
        let key = PublicKey::from_openssh(line)?;
        return Ok(Entry {
            options: ConfigOpts::default(),
            key,
        });
    }
    let mut quoted = false;
    let end = line
        .char_indices()
        .find(|&(_, c)| {
            if c == '"' {
                quoted = !quoted;
            }
            !quoted && (c == ' ' || c == '\t')
        })
        .map(|(i, _)| i)
        .ok_or(LineError::NoKey)?;
    let options = ConfigOpts::new(&line[..end]).map_err(LineError::Options)?;
    let key = PublicKey::from_openssh(line[end..].trim_start())?;
    Ok(Entry { options, key })
}

/// Why an authorized_keys line cannot be read.
#[derive(Debug, Error)]
pub enum LineError {
    /// An options field and nothing after it.
    #[error("no key after the options")]
    NoKey,
    /// The options field does not parse.
    #[error("bad options: {0}")]
    Options(russh::keys::ssh_key::Error),
    /// The key itself does not parse.
    #[error("{0}")]
    Key(#[from] russh::keys::ssh_key::Error),
}

/// An authorized_keys option shed enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOption {
    /// `from="PATTERN-LIST"`: the client address must match.
    From(String),
    /// `expiry-time="TIMESTAMP"`: the key is refused from this instant on.
    ExpiryTime(DateTime<Utc>),
}

impl std::fmt::Display for KeyOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOption::From(patterns) => write!(f, "from=\"{patterns}\""),
            KeyOption::ExpiryTime(at) => {
                write!(f, "expiry-time=\"{}\"", at.format("%Y%m%d%H%M%SZ"))
            }
        }
    }
}

/// Why an authorized_keys line's options are refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionError {
    /// An option shed cannot honour (`command=`, `restrict`, `no-pty`, ...):
    /// the line is refused rather than granting more than it says.
    #[error("option {0:?} is not supported by shed; the line is refused")]
    Unsupported(String),
    /// A supported option with a value that cannot be read.
    #[error("option {name:?}: {message}")]
    Malformed {
        /// The option.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// Parses a line's options, refusing any shed does not enforce.
pub fn parse_options(opts: &ConfigOpts) -> Result<Vec<KeyOption>, OptionError> {
    opts.iter()
        .map(|option| {
            let (name, value) = match option.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (option, None),
            };
            let lower = name.to_ascii_lowercase();
            let malformed = |message: &str| OptionError::Malformed {
                name: lower.clone(),
                message: message.into(),
            };
            let value = || {
                value
                    .and_then(|v| v.strip_prefix('"'))
                    .and_then(|v| v.strip_suffix('"'))
                    .filter(|v| !v.is_empty() && !v.contains(['"', '\\']))
                    .ok_or_else(|| malformed("expected a non-empty quoted value"))
            };
            match lower.as_str() {
                "from" => Ok(KeyOption::From(value()?.to_string())),
                "expiry-time" => parse_expiry(value()?)
                    .map(KeyOption::ExpiryTime)
                    .ok_or_else(|| malformed("expected YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]")),
                _ => Err(OptionError::Unsupported(lower)),
            }
        })
        .collect()
}

/// OpenSSH's expiry-time: YYYYMMDD or YYYYMMDDHHMM[SS], in the server's
/// local time, or UTC with a trailing `Z`.
pub fn parse_expiry(text: &str) -> Option<DateTime<Utc>> {
    let (digits, utc) = match text.strip_suffix(['Z', 'z']) {
        Some(digits) => (digits, true),
        None => (text, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match digits.len() {
        8 => format!("{digits}000000"),
        12 => format!("{digits}00"),
        14 => digits.to_string(),
        _ => return None,
    };
    let naive = NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S").ok()?;
    if utc {
        Some(naive.and_utc())
    } else {
        naive
            .and_local_timezone(Local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }
}

fn options_allow(
    options: &[KeyOption],
    peer: Option<IpAddr>,
    now: DateTime<Utc>,
    key: &PublicKey,
) -> bool {
    options.iter().all(|option| match option {
        KeyOption::ExpiryTime(at) => {
            let alive = now < *at;
            if !alive {
                tracing::warn!(key = %fingerprint(key), expired = %at, "ssh key refused: its expiry-time has passed");
            }
            alive
        }
        KeyOption::From(patterns) => {
            let allowed = peer.is_some_and(|ip| from_allows(patterns, ip));
            if !allowed {
                tracing::warn!(key = %fingerprint(key), peer = ?peer, from = ?patterns, "ssh key refused: the address does not match its from= option");
            }
            allowed
        }
    })
}

/// OpenSSH's `from=` pattern-list against a client address: `*` and `?`
/// wildcards on the address text, CIDR blocks, and `!` negation, which
/// refuses outright. Host name patterns would need reverse DNS, which an
/// attacker controls, so they never match.
pub fn from_allows(patterns: &str, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let text = ip.to_string();
    let mut allowed = false;
    for pattern in patterns.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let matched = if let Some((net, len)) = pattern.split_once('/') {
            match cidr_contains(net, len, ip) {
                Some(matched) => matched,
                None => {
                    // OpenSSH refuses the whole list when a CIDR is malformed.
                    tracing::warn!(pattern = ?pattern, "authorized_keys from=: malformed CIDR; refusing");
                    return false;
                }
            }
        } else if pattern
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':' | b'*' | b'?'))
        {
            wildcard_match(pattern.to_ascii_lowercase().as_bytes(), text.as_bytes())
        } else {
            tracing::warn!(pattern = ?pattern, "authorized_keys from=: host name patterns are not checked (no reverse DNS); it does not match");
            false
        };
        if matched && negated {
            return false;
        }
        allowed |= matched;
    }
    allowed
}

fn cidr_contains(net: &str, len: &str, ip: IpAddr) -> Option<bool> {
    let net: IpAddr = net.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    match (net.to_canonical(), ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            Some(u32::from(net) & mask == u32::from(ip) & mask)
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            Some(u128::from(net) & mask == u128::from(ip) & mask)
        }
        (IpAddr::V4(_), _) if len <= 32 => Some(false),
        (IpAddr::V6(_), _) if len <= 128 => Some(false),
        _ => None,
    }
}

/// `*` and `?` glob, linear in practice: it backtracks only to the last `*`.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// SHA-256 fingerprint as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// One key of an authorized_keys file, as `shed-server keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// `SHA256:...`.
    pub fingerprint: String,
    /// Algorithm, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The key's comment, possibly empty.
    pub comment: String,
    /// The line's options as written, possibly empty.
    pub options: String,
}

impl KeyInfo {
    fn of(entry: &Entry) -> KeyInfo {
        KeyInfo {
            fingerprint: fingerprint(entry.public_key()),
            algorithm: entry.public_key().algorithm().to_string(),
            comment: entry.public_key().comment().to_string(),
            options: entry.config_opts().to_string(),
        }
    }
}

fn read_or_empty(path: &Path) -> Result<String, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(KeyError::Io {
            path: path.into(),
            source,
        }),
    }
}

fn is_key_line(line: &str) -> bool {
    let line = line.trim();
    !line.is_empty() && !line.starts_with('#')
}

/// The keys in an authorized_keys file (none if it does not exist); a line
/// that cannot be read is an error naming its line number.
pub fn list_keys(path: &Path) -> Result<Vec<KeyInfo>, KeyError> {
    let text = read_or_empty(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| is_key_line(line))
        .map(|(i, line)| {
            parse_line(line)
                .map(|entry| KeyInfo::of(&entry))
                .map_err(|e| KeyError::Format {
                    path: path.into(),
                    message: format!("line {}: {e}", i + 1),
                })
        })
        .collect()
}

/// Adds one public key line (`[options] type base64 [comment]`, as in a
/// .pub file or an authorized_keys line) to the file, atomically and with
/// mode 0600. Refuses a malformed line, an unsupported option and a key
/// already listed.
pub fn add_key(path: &Path, line: &str) -> Result<KeyInfo, KeyError> {
    let mut lines = line.lines().filter(|l| is_key_line(l));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(KeyError::Invalid(
            "expected exactly one public key line".into(),
        ));
    };
    let line = line.trim();
    let entry =
        parse_line(line).map_err(|e| KeyError::Invalid(format!("not a public key line: {e}")))?;
    parse_options(entry.config_opts()).map_err(|e| KeyError::Invalid(e.to_string()))?;
    let info = KeyInfo::of(&entry);
    let text = read_or_empty(path)?;
    let listed = text
        .lines()
        .filter_map(|l| parse_line(l).ok())
        .any(|e| e.public_key().key_data() == entry.public_key().key_data());
    if listed {
        return Err(KeyError::Duplicate(info.fingerprint));
    }
    let mut text = text;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    crate::files::write_private(path, text.as_bytes()).map_err(|source| KeyError::Io {
        path: path.into(),
        source,
    })?;
    Ok(info)
}

/// Removes the key with this fingerprint (every line listing it), or the
/// one key with this comment, rewriting the file atomically; other lines,
/// comments included, are kept as they are.
pub fn remove_key(path: &Path, selector: &str) -> Result<Vec<KeyInfo>, KeyError> {
    let text = read_or_empty(path)?;
    let parsed: Vec<(&str, Option<Entry>)> = text
        .lines()
        .map(|line| {
            (
                line,
                is_key_line(line).then(|| parse_line(line).ok()).flatten(),
            )
        })
        .collect();
    let selected = |entry: &Entry| {
        if is_fingerprint(selector) {
            fingerprint(entry.public_key()) == selector
        } else {
            entry.public_key().comment().to_string() == selector
        }
    };
    let removed: Vec<KeyInfo> = parsed
        .iter()
        .filter_map(|(_, entry)| entry.as_ref().filter(|e| selected(e)).map(KeyInfo::of))
        .collect();
    if removed.is_empty() {
        return Err(KeyError::NotFound(selector.into()));
    }
    let distinct: std::collections::BTreeSet<_> =
        removed.iter().map(|k| k.fingerprint.as_str()).collect();
    if distinct.len() > 1 {
        return Err(KeyError::Ambiguous(selector.into()));
    }
    let mut kept = String::new();
    for (line, entry) in &parsed {
        if !entry.as_ref().is_some_and(&selected) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    crate::files::write_private(path, kept.as_bytes()).map_err(|source| KeyError::Io {
        path: path.into(),
        source,
    })?;
    Ok(removed)
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

    fn local() -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, 1]))
    }

    #[test]
    fn only_listed_keys_are_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let listed = load_or_create_host_key(&dir.path().join("a")).unwrap();
        let other = load_or_create_host_key(&dir.path().join("b")).unwrap();
        let path = dir.path().join("authorized_keys");
        let line = listed.public_key().to_openssh().unwrap();
        std::fs::write(&path, format!("# comment\n\n{line} me@laptop\n")).unwrap();
        let policy = KeyPolicy::AuthorizedKeys(path.clone());
        assert!(policy.allows(listed.public_key(), local()));
        assert!(!policy.allows(other.public_key(), local()));
        assert!(KeyPolicy::AnyKey.allows(other.public_key(), local()));
        let missing = KeyPolicy::AuthorizedKeys(dir.path().join("missing"));
        assert!(!missing.allows(listed.public_key(), local()));
    }

    #[test]
    fn lines_with_options_shed_cannot_honour_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create_host_key(&dir.path().join("a")).unwrap();
        let line = key.public_key().to_openssh().unwrap();
        let path = dir.path().join("authorized_keys");
        let policy = KeyPolicy::AuthorizedKeys(path.clone());
        for option in [
            "no-pty",
            "restrict",
            "command=\"true\"",
            "permitopen=\"x:1\"",
        ] {
            std::fs::write(&path, format!("{option} {line} me\n")).unwrap();
            assert!(!policy.allows(key.public_key(), local()), "{option}");
        }
        // Another line for the same key without options still counts.
        std::fs::write(&path, format!("no-pty {line} me\n{line} me\n")).unwrap();
        assert!(policy.allows(key.public_key(), local()));
    }

    #[test]
    fn from_and_expiry_time_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create_host_key(&dir.path().join("a")).unwrap();
        let line = key.public_key().to_openssh().unwrap();
        let path = dir.path().join("authorized_keys");
        let policy = KeyPolicy::AuthorizedKeys(path.clone());
        let check = |options: &str, peer: Option<IpAddr>| {
            std::fs::write(&path, format!("{options} {line}\n")).unwrap();
            policy.allows(key.public_key(), peer)
        };
        assert!(check("from=\"127.0.0.1\"", local()));
        assert!(!check("from=\"10.0.0.0/8\"", local()));
        assert!(check("from=\"10.0.0.0/8,127.*\"", local()));
        assert!(!check("from=\"*,!127.0.0.1\"", local()));
        assert!(!check("from=\"*\"", None));
        assert!(!check("from=\"localhost\"", local()));
        assert!(!check("expiry-time=\"20000101\"", local()));
        assert!(check("expiry-time=\"29991231235959Z\"", local()));
        assert!(!check(
            "from=\"127.0.0.1\",expiry-time=\"200001010000Z\"",
            local()
        ));
        assert!(!check("expiry-time=\"2000\"", local()));
    }

    #[test]
    fn lines_parse_with_or_without_options_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create_host_key(&dir.path().join("a")).unwrap();
        let bare = key.public_key().to_openssh().unwrap();
        for (line, options, comment) in [
            (bare.clone(), "", ""),
            (format!("{bare} a comment"), "", "a comment"),
            (format!("no-pty {bare}"), "no-pty", ""),
            (
                format!("from=\"10.0.0.1,10.0.0.2\",no-pty {bare} me"),
                "from=\"10.0.0.1,10.0.0.2\",no-pty",
                "me",
            ),
        ] {
            let entry = parse_line(&line).unwrap();
            assert_eq!(entry.config_opts().as_str(), options, "{line}");
            assert_eq!(entry.public_key().comment().to_string(), comment, "{line}");
        }
        assert!(parse_line("no-pty").is_err());
        assert!(parse_line("from=\"x y ssh-ed25519 AAAA").is_err());
    }

    #[test]
    fn from_patterns_follow_openssh() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(from_allows("192.168.1.?", ip("192.168.1.7")));
        assert!(!from_allows("192.168.1.?", ip("192.168.1.70")));
        assert!(from_allows("192.168.0.0/16", ip("192.168.200.1")));
        assert!(from_allows("192.168.0.0/16", ip("::ffff:192.168.3.4")));
        assert!(from_allows("2001:db8::/32", ip("2001:db8:1::5")));
        assert!(!from_allows("2001:db8::/32", ip("10.0.0.1")));
        assert!(!from_allows("10.0.0.0/40", ip("10.0.0.1")));
        assert!(!from_allows("*,!10.0.0.0/8", ip("10.1.1.1")));
        assert!(from_allows("*,!10.0.0.0/8", ip("11.1.1.1")));
        assert!(!from_allows("*.example.com", ip("10.0.0.1")));
        assert!(wildcard_match(b"a*b*c", b"aXXbYYc"));
        assert!(!wildcard_match(b"a*b*c", b"aXXbYY"));
    }

    #[test]
    fn expiry_times_use_openssh_forms() {
        let utc = |s: &str| {
            parse_expiry(s)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        };
        assert_eq!(utc("20300102Z"), "2030-01-02 00:00:00");
        assert_eq!(utc("203001021304Z"), "2030-01-02 13:04:00");
        assert_eq!(utc("20300102130405Z"), "2030-01-02 13:04:05");
        assert!(parse_expiry("20300102").is_some());
        for bad in ["2030010", "20301302Z", "2030-01-02", "203001021304056"] {
            assert!(parse_expiry(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn keys_are_added_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_host_key(&dir.path().join("a")).unwrap();
        let b = load_or_create_host_key(&dir.path().join("b")).unwrap();
        let a_line = format!("{} alice@laptop", a.public_key().to_openssh().unwrap());
        let b_line = format!(
            "from=\"10.0.0.0/8\" {} bob@laptop",
            b.public_key().to_openssh().unwrap()
        );
        let path = dir.path().join("data").join("authorized_keys");
        assert!(list_keys(&path).unwrap().is_empty());
        let added = add_key(&path, &format!("{a_line}\n")).unwrap();
        assert_eq!(added.fingerprint, fingerprint(a.public_key()));
        add_key(&path, &b_line).unwrap();
        assert!(matches!(
            add_key(&path, &a_line),
            Err(KeyError::Duplicate(_))
        ));
        assert!(matches!(
            add_key(&path, "ssh-ed25519 AAAAnotbase64"),
            Err(KeyError::Invalid(_))
        ));
        let with_command = format!("command=\"ls\" {}", a.public_key().to_openssh().unwrap());
        assert!(matches!(
            add_key(&path, &with_command),
            Err(KeyError::Invalid(m)) if m.contains("command")
        ));
        let keys = list_keys(&path).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].comment, "bob@laptop");
        assert_eq!(keys[1].options, "from=\"10.0.0.0/8\"");
        assert_eq!(keys[0].algorithm, "ssh-ed25519");

        assert!(matches!(
            remove_key(&path, "nobody"),
            Err(KeyError::NotFound(_))
        ));
        remove_key(&path, "bob@laptop").unwrap();
        remove_key(&path, &fingerprint(a.public_key())).unwrap();
        assert!(list_keys(&path).unwrap().is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
