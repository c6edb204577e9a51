//! Building `ssh` command lines for the system OpenSSH client, and the
//! files shed manages for it: `known_hosts` beside the config, and a block
//! in `~/.ssh/config`.

use std::path::{Path, PathBuf};
use std::process::Command;

use russh::keys::ssh_key::{HashAlg, PublicKey};
use thiserror::Error;

use crate::client::config::ServerEntry;

/// Why shed will not hand something to ssh.
#[derive(Debug, Error)]
pub enum SshError {
    /// A path ssh could not read back exactly from its config syntax.
    #[error("{0:?}: ssh cannot use a path with a line break or a control character, or that is not UTF-8")]
    BadPath(PathBuf),
    /// The server's host key is not one SSH public key.
    #[error("the server sent an invalid SSH host key: {0}")]
    BadHostKey(russh::keys::ssh_key::Error),
    /// The server's host key has a line break or control character in it,
    /// which would smuggle another line into `known_hosts`.
    #[error(
        "the server sent an invalid SSH host key: it contains a line break or a control character"
    )]
    HostKeyControlCharacter,
}

/// `path` as one ssh_config argument, for `-o KEY=VALUE` and for
/// `~/.ssh/config`: ssh splits values at spaces unless they are in double
/// quotes (ssh_config(5)), takes `\"` and `\\` inside quotes literally, and
/// expands `%` tokens in file paths, so `%` is doubled.
pub fn quote_path(path: &Path) -> Result<String, SshError> {
    let text = path
        .to_str()
        .filter(|t| !t.chars().any(char::is_control))
        .ok_or_else(|| SshError::BadPath(path.to_path_buf()))?;
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// A gateway host key, checked and re-encoded by shed: never the server's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// `ALGORITHM BASE64`, without a comment.
    pub openssh: String,
    /// `SHA256:...`, as `ssh-keygen -lf` shows it.
    pub fingerprint: String,
}

impl HostKey {
    /// Parses exactly one OpenSSH public key (`ALGORITHM BASE64 [COMMENT]`).
    pub fn parse(text: &str) -> Result<HostKey, SshError> {
        // A line break would smuggle a second known_hosts line (a
        // `@cert-authority *` one, say) in behind the key.
        if text.chars().any(char::is_control) {
            return Err(SshError::HostKeyControlCharacter);
        }
        let key = PublicKey::from_openssh(text.trim()).map_err(SshError::BadHostKey)?;
        HostKey::from_key(&key)
    }

    fn from_key(key: &PublicKey) -> Result<HostKey, SshError> {
        let bare = PublicKey::new(key.key_data().clone(), "");
        let openssh = bare
            .to_openssh()
            .map_err(SshError::BadHostKey)?
            .trim()
            .to_string();
        Ok(HostKey {
            openssh,
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        })
    }
}

/// Where shed keeps the gateways' host keys: beside the config file.
pub fn known_hosts_path(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("known_hosts")
}

/// Whether ssh should allocate a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tty {
    /// `-t`: interactive use.
    Force,
    /// `-T`: plain pipes, so stdout and stderr stay apart.
    Disable,
}

/// The `ssh` invocation reaching shed `shed` through `server`'s gateway.
pub fn ssh_command(
    server: &ServerEntry,
    known_hosts: &Path,
    shed: &str,
    tty: Tty,
    remote_command: Option<&str>,
) -> Result<Command, SshError> {
    ssh_command_with(server, known_hosts, shed, tty, remote_command, &[])
}

/// [`ssh_command`] with extra `-o` options (`KEY=VALUE`).
fn ssh_command_with(
    server: &ServerEntry,
    known_hosts: &Path,
    shed: &str,
    tty: Tty,
    remote_command: Option<&str>,
    options: &[&str],
) -> Result<Command, SshError> {
    let mut cmd = Command::new("ssh");
    cmd.arg(match tty {
        Tty::Force => "-t",
        Tty::Disable => "-T",
    });
    for option in options {
        cmd.arg("-o").arg(option);
    }
    cmd.arg("-p").arg(server.ssh_port.to_string());
    cmd.arg("-o")
        .arg(format!("UserKnownHostsFile={}", quote_path(known_hosts)?));
    cmd.arg("-o").arg("StrictHostKeyChecking=yes");
    if let Some(identity) = &server.identity_file {
        cmd.arg("-o")
            .arg(format!("IdentityFile={}", quote_path(identity)?));
        cmd.arg("-o").arg("IdentitiesOnly=yes");
    }
    cmd.arg(format!("{shed}@{}", server.host));
    if let Some(remote) = remote_command {
        cmd.arg("--").arg(remote);
    }
    Ok(cmd)
}

/// The SSH user of [`login_probe`]: a valid shed name, so the gateway gets
/// as far as checking the key (it refuses invalid names before that), and
/// one no shed is likely to have, so an accepted key meets "no shed named".
const PROBE_SHED: &str = "shed-login-probe";
/// Longest wait for the probe's connection.
const PROBE_CONNECT_SECS: u32 = 10;

/// What a test login to a server's SSH gateway showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginProbe {
    /// The gateway accepted the key.
    Accepted,
    /// The gateway refused every key ssh offered.
    KeyRefused,
    /// No login happened for another reason: ssh's last line of stderr.
    Failed(String),
}

/// Tries a login to `server`'s gateway with the identity the CLI will use,
/// without a terminal or prompts. Authentication comes before the shed
/// lookup, so a refused key shows as ssh's "Permission denied" (exit 255)
/// and an accepted one as the gateway's "no shed named" (exit 1).
pub async fn login_probe(server: &ServerEntry, known_hosts: &Path) -> LoginProbe {
    let connect = format!("ConnectTimeout={PROBE_CONNECT_SECS}");
    let options = ["BatchMode=yes", connect.as_str()];
    let cmd = match ssh_command_with(
        server,
        known_hosts,
        PROBE_SHED,
        Tty::Disable,
        Some("true"),
        &options,
    ) {
        Ok(cmd) => cmd,
        Err(e) => return LoginProbe::Failed(e.to_string()),
    };
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let limit = std::time::Duration::from_secs(u64::from(PROBE_CONNECT_SECS) * 2);
    let output = match tokio::time::timeout(limit, cmd.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return LoginProbe::Failed(format!("running ssh: {e}")),
        Err(_) => return LoginProbe::Failed("ssh did not finish in time".into()),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(255) if stderr.contains("Permission denied") => LoginProbe::KeyRefused,
        Some(255) | None => LoginProbe::Failed(
            stderr
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("ssh failed")
                .trim()
                .to_string(),
        ),
        Some(_) => LoginProbe::Accepted,
    }
}

/// The public key file beside `identity` and its SHA-256 fingerprint, for
/// telling the user which key a server must list.
pub fn public_key_of(identity: &Path) -> Option<(PathBuf, String)> {
    let mut public = identity.as_os_str().to_owned();
    public.push(".pub");
    let public = PathBuf::from(public);
    let text = std::fs::read_to_string(&public).ok()?;
    let key = PublicKey::from_openssh(text.trim()).ok()?;
    Some((public, key.fingerprint(HashAlg::Sha256).to_string()))
}

/// What known_hosts says about `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownHost {
    /// No entry.
    Absent,
    /// An entry with this very key.
    Same,
    /// An entry with another key; its fingerprint (or its text, if unreadable).
    Changed(String),
}

/// Looks `host:port` up in the known_hosts file at `path`.
pub fn known_host(path: &Path, host: &str, port: u16, key: &HostKey) -> std::io::Result<KnownHost> {
    let pattern = host_pattern(host, port);
    let existing = read_or_empty(path)?;
    let mut found = KnownHost::Absent;
    for line in existing.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() != Some(pattern.as_str()) {
            continue;
        }
        let text = fields.collect::<Vec<_>>().join(" ");
        match HostKey::parse(&text) {
            Ok(old) if old.openssh == key.openssh => {
                if found == KnownHost::Absent {
                    found = KnownHost::Same;
                }
            }
            Ok(old) => return Ok(KnownHost::Changed(old.fingerprint)),
            Err(_) => return Ok(KnownHost::Changed(text)),
        }
    }
    Ok(found)
}

/// The known_hosts host field for `host:port`.
fn host_pattern(host: &str, port: u16) -> String {
    crate::api::known_hosts_line(host, port, "")
        .trim_end()
        .to_string()
}

fn read_or_empty(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// Replaces the known_hosts entry for `host:port` with `key`, atomically.
pub fn write_known_host(path: &Path, host: &str, port: u16, key: &HostKey) -> std::io::Result<()> {
    let pattern = host_pattern(host, port);
    let line = format!("{pattern} {}", key.openssh);
    let existing = read_or_empty(path)?;
    let mut lines: Vec<&str> = existing
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(pattern.as_str()))
        .collect();
    lines.push(&line);
    crate::files::write_private(path, (lines.join("\n") + "\n").as_bytes())
}

/// First line of shed's block in `~/.ssh/config`.
pub const BLOCK_BEGIN: &str = "# >>> shed: managed by `shed ssh-config`, edits are overwritten >>>";
/// Last line of shed's block.
pub const BLOCK_END: &str = "# <<< shed <<<";

/// One `Host shed-NAME` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The alias, e.g. `shed-demo`.
    pub alias: String,
    /// The entry's option lines, indented.
    pub lines: Vec<String>,
}

impl HostEntry {
    /// The entry for shed `shed` on `server`.
    pub fn new(
        alias: String,
        shed: &str,
        server: &ServerEntry,
        known_hosts: &Path,
    ) -> Result<HostEntry, SshError> {
        let mut lines = vec![
            format!("    HostName {}", server.host),
            format!("    Port {}", server.ssh_port),
            format!("    User {shed}"),
            format!("    UserKnownHostsFile {}", quote_path(known_hosts)?),
            "    StrictHostKeyChecking yes".to_string(),
        ];
        if let Some(identity) = &server.identity_file {
            lines.push(format!("    IdentityFile {}", quote_path(identity)?));
            lines.push("    IdentitiesOnly yes".to_string());
        }
        Ok(HostEntry { alias, lines })
    }

    fn render(&self) -> String {
        let mut out = format!("Host {}\n", self.alias);
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// An ssh config split around shed's managed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    had_block: bool,
    before: String,
    /// Entries inside the block, in order.
    pub entries: Vec<HostEntry>,
    after: String,
}

impl SshConfig {
    /// Splits `text` around the managed block (which may be absent).
    pub fn parse(text: &str) -> SshConfig {
        let (Some(start), Some(end)) = (text.find(BLOCK_BEGIN), text.find(BLOCK_END)) else {
            return SshConfig {
                had_block: false,
                before: text.to_string(),
                entries: Vec::new(),
                after: String::new(),
            };
        };
        if end < start {
            return SshConfig {
                had_block: false,
                before: text.to_string(),
                entries: Vec::new(),
                after: String::new(),
            };
        }
        let inner = &text[start + BLOCK_BEGIN.len()..end];
        let mut entries: Vec<HostEntry> = Vec::new();
        for line in inner.lines() {
            if let Some(alias) = line.strip_prefix("Host ") {
                entries.push(HostEntry {
                    alias: alias.trim().to_string(),
                    lines: Vec::new(),
                });
            } else if let (Some(entry), false) = (entries.last_mut(), line.trim().is_empty()) {
                entry.lines.push(line.to_string());
            }
        }
        let after_start = end + BLOCK_END.len();
        SshConfig {
            had_block: true,
            before: text[..start].to_string(),
            entries,
            after: text[after_start..]
                .strip_prefix('\n')
                .unwrap_or(&text[after_start..])
                .to_string(),
        }
    }

    /// Adds or replaces an entry by alias.
    pub fn upsert(&mut self, entry: HostEntry) {
        match self.entries.iter_mut().find(|e| e.alias == entry.alias) {
            Some(existing) => *existing = entry,
            None => self.entries.push(entry),
        }
    }

    /// Removes an entry; whether it was there.
    pub fn remove(&mut self, alias: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.alias != alias);
        before != self.entries.len()
    }

    /// Just the managed block, as it would be written.
    pub fn block(&self) -> String {
        if self.entries.is_empty() {
            return String::new();
        }
        let mut out = format!("{BLOCK_BEGIN}\n");
        for entry in &self.entries {
            out.push_str(&entry.render());
        }
        out.push_str(BLOCK_END);
        out.push('\n');
        out
    }

    /// The whole file. A new block goes first, because ssh takes the first
    /// value it finds and a `Host *` section often comes last.
    pub fn render(&self) -> String {
        let block = self.block();
        if self.had_block {
            format!("{}{block}{}", self.before, self.after)
        } else {
            format!("{block}{}", self.before)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHGnER1S4HN16Tnx7DGsFnq+EObcznxvGJyO+DBbbVJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIWWTdiZSKd9Jz9QiF2U6cB9tSejJpoEtJyoqjnFpFBX";

    fn server() -> ServerEntry {
        ServerEntry {
            host: "box".into(),
            http_port: 8080,
            ssh_port: 2222,
            token: None,
            identity_file: Some("/k/id".into()),
            scheme: Default::default(),
            tls_fingerprint: None,
            allow_plain_http: false,
        }
    }

    #[test]
    fn ssh_command_shape() {
        let cmd = ssh_command(
            &server(),
            Path::new("/c/known_hosts"),
            "demo",
            Tty::Force,
            Some("tmux new-session -A -s default"),
        )
        .unwrap();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-t",
                "-p",
                "2222",
                "-o",
                "UserKnownHostsFile=\"/c/known_hosts\"",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentityFile=\"/k/id\"",
                "-o",
                "IdentitiesOnly=yes",
                "demo@box",
                "--",
                "tmux new-session -A -s default"
            ]
        );
    }

    #[test]
    fn known_hosts_entries_are_replaced_not_duplicated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let (a, b) = (
            HostKey::parse(KEY_A).unwrap(),
            HostKey::parse(KEY_B).unwrap(),
        );
        assert_eq!(known_host(&path, "h", 2222, &a).unwrap(), KnownHost::Absent);
        write_known_host(&path, "h", 2222, &a).unwrap();
        write_known_host(&path, "other", 2222, &b).unwrap();
        assert_eq!(known_host(&path, "h", 2222, &a).unwrap(), KnownHost::Same);
        assert_eq!(
            known_host(&path, "h", 2222, &b).unwrap(),
            KnownHost::Changed(a.fingerprint.clone())
        );
        write_known_host(&path, "h", 2222, &b).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("[other]:2222 {KEY_B}\n[h]:2222 {KEY_B}\n"));
    }

    #[test]
    fn managed_block_round_trips_and_keeps_user_text() {
        let user = "Host work\n    User me\n";
        let mut config = SshConfig::parse(user);
        config.upsert(HostEntry::new("shed-a".into(), "a", &server(), Path::new("/kh")).unwrap());
        let text = config.render();
        assert!(text.starts_with(BLOCK_BEGIN), "{text}");
        assert!(text.ends_with(user), "{text}");
        let mut again = SshConfig::parse(&text);
        assert_eq!(again.entries.len(), 1);
        again.upsert(HostEntry::new("shed-b".into(), "b", &server(), Path::new("/kh")).unwrap());
        again.upsert(HostEntry::new("shed-a".into(), "a", &server(), Path::new("/kh")).unwrap());
        let text = again.render();
        assert_eq!(text.matches("Host shed-a\n").count(), 1, "{text}");
        assert!(text.contains("Host shed-b\n") && text.contains("User b"));
        assert!(text.ends_with(user), "{text}");
        let mut removed = SshConfig::parse(&text);
        assert!(removed.remove("shed-a"));
        assert!(removed.remove("shed-b"));
        assert_eq!(removed.render(), user);
    }

    #[test]
    fn host_keys_are_parsed_and_re_encoded() {
        let key = HostKey::parse(&format!("{KEY_A} some comment")).unwrap();
        assert_eq!(key.openssh, KEY_A);
        assert_eq!(
            key.fingerprint,
            "SHA256:I8IeB+Zi4kGR3T+uR2Xqbxp7X5OrLAC3FhhNWCCJbTo"
        );
        for bad in [
            format!("{KEY_A}\n@cert-authority * {KEY_B}"),
            format!("{KEY_A}\r"),
            "ssh-ed25519 AAAA".to_string(),
            String::new(),
        ] {
            assert!(HostKey::parse(&bad).is_err(), "{bad:?}");
        }
    }

    /// What the real `ssh -G` makes of `args` (it resolves the options and
    /// prints them, connecting nowhere).
    fn ssh_g(args: &[String]) -> String {
        let out = Command::new("ssh")
            .arg("-G")
            .args(args)
            .output()
            .expect("ssh (install openssh-client)");
        assert!(
            out.status.success(),
            "ssh -G {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn paths_with_spaces_quotes_and_percents_reach_ssh_intact() {
        let dir = Path::new("/Users/me/Library/Application Support/sh\"ed %d\\x");
        let known_hosts = dir.join("known_hosts");
        let mut server = server();
        server.identity_file = Some(dir.join("id key"));
        let cmd = ssh_command(&server, &known_hosts, "demo", Tty::Disable, None).unwrap();
        // -F /dev/null: the user's own ~/.ssh/config stays out of it.
        let args: Vec<String> = ["-F", "/dev/null"]
            .into_iter()
            .map(String::from)
            .chain(
                cmd.get_args()
                    .map(|a| a.to_string_lossy().into_owned())
                    .filter(|a| a != "-T"),
            )
            .collect();
        let resolved = ssh_g(&args);
        assert!(
            resolved.contains(&format!("userknownhostsfile {}\n", known_hosts.display())),
            "{resolved}"
        );
        // ssh -G prints identity files before their %-expansion.
        let identity = format!("{}/id key", dir.display()).replace('%', "%%");
        assert!(
            resolved.contains(&format!("identityfile {identity}\n")),
            "{resolved}"
        );

        // The same paths through a `~/.ssh/config` entry.
        let tmp = tempfile::tempdir().unwrap();
        let config_file = tmp.path().join("config");
        let mut config = SshConfig::parse("");
        config.upsert(HostEntry::new("shed-demo".into(), "demo", &server, &known_hosts).unwrap());
        std::fs::write(&config_file, config.render()).unwrap();
        let resolved = ssh_g(&[
            "-F".into(),
            config_file.to_string_lossy().into_owned(),
            "shed-demo".into(),
        ]);
        assert!(
            resolved.contains(&format!("userknownhostsfile {}\n", known_hosts.display())),
            "{resolved}"
        );
        assert!(resolved.contains("user demo\n"), "{resolved}");
    }

    #[test]
    fn paths_ssh_cannot_take_are_refused() {
        assert!(quote_path(Path::new("/a\nb")).is_err());
        assert_eq!(
            quote_path(Path::new("/a b/%h\"\\")).unwrap(),
            "\"/a b/%%h\\\"\\\\\""
        );
    }
}
