//! `shed-server install` / `uninstall`: a systemd unit that runs
//! `shed-server serve` at boot (system unit) or at login (user unit).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// File name of the unit, in whichever unit directory is used.
pub const UNIT_NAME: &str = "shed-server.service";

/// Overrides the directory the unit is written to. Systemd does not read
/// such a directory, so with it set no `systemctl` command is run; tests and
/// packagers use it.
pub const UNIT_DIR_ENV: &str = "SHED_SYSTEMD_DIR";

/// What goes into the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    /// Absolute path of the shed-server binary.
    pub binary: PathBuf,
    /// Absolute path of the config file it serves with.
    pub config: PathBuf,
    /// `User=` of a system unit; `None` runs it as root. Ignored for user units,
    /// which always run as their owner.
    pub user: Option<String>,
    /// A system unit (`/etc/systemd/system`) rather than a user unit.
    pub system: bool,
}

/// Why a unit cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstallError {
    /// A path that systemd could not be given safely.
    #[error("{0}: systemd cannot run a path with a newline or other control character")]
    UnsafePath(String),
    /// A path that is not absolute; systemd needs absolute ones.
    #[error("{0}: not an absolute path")]
    RelativePath(String),
    /// A user name that is not a plain POSIX name.
    #[error("{0:?}: not a valid user name")]
    BadUser(String),
}

/// The unit file's text.
pub fn render_unit(spec: &UnitSpec) -> Result<String, InstallError> {
    let binary = exec_arg(&spec.binary)?;
    let config = exec_arg(&spec.config)?;
    let mut unit = String::new();
    unit.push_str("# Written by `shed-server install`; `shed-server uninstall` removes it.\n");
    unit.push_str("[Unit]\n");
    unit.push_str("Description=shed-server: persistent Docker workspaces over HTTP and SSH\n");
    if spec.system {
        // Wants, not Requires: a Docker restart must not stop shed-server,
        // which reconnects to Docker by itself (503 meanwhile).
        unit.push_str("Wants=docker.service network-online.target\n");
        unit.push_str("After=docker.service network-online.target\n");
    } else {
        // A user manager cannot order itself after system units; the server
        // waits for Docker on its own.
        unit.push_str("After=default.target\n");
    }
    unit.push_str("\n[Service]\n");
    unit.push_str("Type=simple\n");
    if spec.system {
        if let Some(user) = &spec.user {
            if !valid_user(user) {
                return Err(InstallError::BadUser(user.clone()));
            }
            let _ = writeln!(unit, "User={user}");
        }
    }
    let _ = writeln!(unit, "ExecStart={binary} serve --config {config}");
    unit.push_str("Restart=on-failure\n");
    unit.push_str("RestartSec=5\n");
    // The server raises its soft limit to this hard limit for its connections.
    unit.push_str("LimitNOFILE=65536\n");
    unit.push_str("NoNewPrivileges=yes\n");
    if spec.system {
        // Nothing here blocks /run/docker.sock or TCP to a Docker host: /run
        // stays writable, and AF_UNIX/AF_INET/AF_INET6 are what the API,
        // the gateway and Docker need. The home directory is not protected
        // because data_dir and the config usually live there.
        unit.push_str("PrivateTmp=yes\n");
        unit.push_str("ProtectSystem=full\n");
        unit.push_str("ProtectKernelTunables=yes\n");
        unit.push_str("ProtectKernelModules=yes\n");
        unit.push_str("ProtectControlGroups=yes\n");
        unit.push_str("RestrictSUIDSGID=yes\n");
        unit.push_str("LockPersonality=yes\n");
        unit.push_str("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n");
    }
    unit.push_str("\n[Install]\n");
    let target = if spec.system {
        "multi-user.target"
    } else {
        "default.target"
    };
    let _ = writeln!(unit, "WantedBy={target}");
    Ok(unit)
}

/// The directory the unit goes to: `$SHED_SYSTEMD_DIR`, else
/// `/etc/systemd/system` for a system unit, else `~/.config/systemd/user`.
pub fn unit_dir(system: bool) -> PathBuf {
    if let Some(dir) = std::env::var_os(UNIT_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if system {
        PathBuf::from("/etc/systemd/system")
    } else {
        dirs::config_dir()
            .unwrap_or_else(|| PathBuf::from(".config"))
            .join("systemd")
            .join("user")
    }
}

/// Whether systemctl should be run: systemd is the running init (the check
/// `sd_booted()` makes), systemctl exists, and the unit directory is one
/// systemd reads.
pub fn systemd_usable() -> bool {
    std::env::var_os(UNIT_DIR_ENV).is_none_or(|d| d.is_empty())
        && Path::new("/run/systemd/system").is_dir()
        && which("systemctl")
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// `systemctl` with `--user` for user units, as words for display and for
/// running.
pub fn systemctl(system: bool, args: &[&str]) -> Vec<String> {
    let mut words = vec!["systemctl".to_string()];
    if !system {
        words.push("--user".into());
    }
    words.extend(args.iter().map(|a| a.to_string()));
    words
}

/// One ExecStart argument: quoted when it has spaces or quotes, with `%`
/// and `$` escaped so systemd takes them literally instead of as specifiers
/// and variables.
fn exec_arg(path: &Path) -> Result<String, InstallError> {
    let text = path.to_string_lossy();
    if text.chars().any(|c| c.is_control()) {
        return Err(InstallError::UnsafePath(text.escape_debug().to_string()));
    }
    if !path.is_absolute() {
        return Err(InstallError::RelativePath(text.into_owned()));
    }
    let escaped = text.replace('%', "%%").replace('$', "$$");
    if escaped.contains([' ', '\t', '"', '\'', '\\', ';']) {
        Ok(format!(
            "\"{}\"",
            escaped.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Ok(escaped)
    }
}

/// The names useradd accepts by default, so nothing else reaches the unit.
fn valid_user(user: &str) -> bool {
    let mut chars = user.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && user.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(system: bool) -> UnitSpec {
        UnitSpec {
            binary: "/usr/local/bin/shed-server".into(),
            config: "/etc/shed/server.toml".into(),
            user: Some("alice".into()),
            system,
        }
    }

    fn line<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    }

    #[test]
    fn a_system_unit_runs_serve_after_docker_as_the_user() {
        let unit = render_unit(&spec(true)).unwrap();
        assert_eq!(
            line(&unit, "ExecStart"),
            ["/usr/local/bin/shed-server serve --config /etc/shed/server.toml"]
        );
        assert_eq!(line(&unit, "User"), ["alice"]);
        assert_eq!(line(&unit, "Restart"), ["on-failure"]);
        assert!(line(&unit, "After")[0].contains("docker.service"), "{unit}");
        assert!(line(&unit, "Wants")[0].contains("docker.service"), "{unit}");
        assert_eq!(line(&unit, "WantedBy"), ["multi-user.target"]);
        // The Docker socket lives in /run and must stay reachable.
        for key in ["ProtectHome", "InaccessiblePaths", "PrivateDevices"] {
            assert!(line(&unit, key).is_empty(), "{key} in {unit}");
        }
        assert!(line(&unit, "RestrictAddressFamilies")[0].contains("AF_UNIX"));
        for section in ["[Unit]", "[Service]", "[Install]"] {
            assert!(unit.lines().any(|l| l == section), "{section} in {unit}");
        }
    }

    #[test]
    fn a_user_unit_has_no_user_and_no_system_dependencies() {
        let unit = render_unit(&spec(false)).unwrap();
        assert!(line(&unit, "User").is_empty(), "{unit}");
        assert!(!unit.contains("docker.service"), "{unit}");
        assert!(line(&unit, "PrivateTmp").is_empty(), "{unit}");
        assert_eq!(line(&unit, "WantedBy"), ["default.target"]);
        let root = render_unit(&UnitSpec {
            user: None,
            ..spec(true)
        })
        .unwrap();
        assert!(line(&root, "User").is_empty(), "{root}");
    }

    #[test]
    fn paths_are_quoted_and_escaped_for_systemd() {
        let unit = render_unit(&UnitSpec {
            binary: "/opt/my apps/shed-server".into(),
            config: "/home/a/100%$HOME\"x.toml".into(),
            ..spec(true)
        })
        .unwrap();
        assert_eq!(
            line(&unit, "ExecStart"),
            [r#""/opt/my apps/shed-server" serve --config "/home/a/100%%$$HOME\"x.toml""#]
        );
    }

    #[test]
    fn unsafe_input_is_refused() {
        let newline = UnitSpec {
            config: "/etc/shed/x\nExecStartPre=/bin/evil".into(),
            ..spec(true)
        };
        assert!(matches!(
            render_unit(&newline),
            Err(InstallError::UnsafePath(_))
        ));
        let relative = UnitSpec {
            config: "server.toml".into(),
            ..spec(true)
        };
        assert!(matches!(
            render_unit(&relative),
            Err(InstallError::RelativePath(_))
        ));
        for user in ["root\nUser=x", "Alice", "", "a b", "-x"] {
            let bad = UnitSpec {
                user: Some(user.into()),
                ..spec(true)
            };
            assert!(
                matches!(render_unit(&bad), Err(InstallError::BadUser(_))),
                "{user:?}"
            );
        }
    }
}
