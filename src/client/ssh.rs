//! Building `ssh` command lines for the system OpenSSH client, and the
//! files shed manages for it: `known_hosts` beside the config, and a block
//! in `~/.ssh/config`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::client::config::ServerEntry;

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
) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.arg(match tty {
        Tty::Force => "-t",
        Tty::Disable => "-T",
    });
    cmd.arg("-p").arg(server.ssh_port.to_string());
    cmd.arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()));
    cmd.arg("-o").arg("StrictHostKeyChecking=yes");
    if let Some(identity) = &server.identity_file {
        cmd.arg("-i").arg(identity);
        cmd.arg("-o").arg("IdentitiesOnly=yes");
    }
    cmd.arg(format!("{shed}@{}", server.host));
    if let Some(remote) = remote_command {
        cmd.arg("--").arg(remote);
    }
    cmd
}

/// Replaces the known_hosts entry for `host:port` with `public_key`.
pub fn write_known_host(
    path: &Path,
    host: &str,
    port: u16,
    public_key: &str,
) -> std::io::Result<()> {
    let line = crate::api::known_hosts_line(host, port, public_key);
    let pattern = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut lines: Vec<&str> = existing
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(pattern.as_str()))
        .collect();
    lines.push(&line);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, lines.join("\n") + "\n")
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
    pub fn new(alias: String, shed: &str, server: &ServerEntry, known_hosts: &Path) -> HostEntry {
        let mut lines = vec![
            format!("    HostName {}", server.host),
            format!("    Port {}", server.ssh_port),
            format!("    User {shed}"),
            format!("    UserKnownHostsFile \"{}\"", known_hosts.display()),
            "    StrictHostKeyChecking yes".to_string(),
        ];
        if let Some(identity) = &server.identity_file {
            lines.push(format!("    IdentityFile \"{}\"", identity.display()));
            lines.push("    IdentitiesOnly yes".to_string());
        }
        HostEntry { alias, lines }
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

    fn server() -> ServerEntry {
        ServerEntry {
            host: "box".into(),
            http_port: 8080,
            ssh_port: 2222,
            token: None,
            identity_file: Some("/k/id".into()),
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
        );
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
                "UserKnownHostsFile=/c/known_hosts",
                "-o",
                "StrictHostKeyChecking=yes",
                "-i",
                "/k/id",
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
        write_known_host(&path, "h", 2222, "ssh-ed25519 AAAA1").unwrap();
        write_known_host(&path, "other", 2222, "ssh-ed25519 BBBB").unwrap();
        write_known_host(&path, "h", 2222, "ssh-ed25519 AAAA2").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "[other]:2222 ssh-ed25519 BBBB\n[h]:2222 ssh-ed25519 AAAA2\n"
        );
    }

    #[test]
    fn managed_block_round_trips_and_keeps_user_text() {
        let user = "Host work\n    User me\n";
        let mut config = SshConfig::parse(user);
        config.upsert(HostEntry::new(
            "shed-a".into(),
            "a",
            &server(),
            Path::new("/kh"),
        ));
        let text = config.render();
        assert!(text.starts_with(BLOCK_BEGIN), "{text}");
        assert!(text.ends_with(user), "{text}");
        let mut again = SshConfig::parse(&text);
        assert_eq!(again.entries.len(), 1);
        again.upsert(HostEntry::new(
            "shed-b".into(),
            "b",
            &server(),
            Path::new("/kh"),
        ));
        again.upsert(HostEntry::new(
            "shed-a".into(),
            "a",
            &server(),
            Path::new("/kh"),
        ));
        let text = again.render();
        assert_eq!(text.matches("Host shed-a\n").count(), 1, "{text}");
        assert!(text.contains("Host shed-b\n") && text.contains("User b"));
        assert!(text.ends_with(user), "{text}");
        let mut removed = SshConfig::parse(&text);
        assert!(removed.remove("shed-a"));
        assert!(removed.remove("shed-b"));
        assert_eq!(removed.render(), user);
    }
}
