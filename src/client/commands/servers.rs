//! `shed server add|list|remove|set-default`: the servers in the config, and
//! pinning a new server's TLS certificate and SSH host key.

use anyhow::{anyhow, bail, Context};

use super::prompt::{confirm, interactive};
use super::{Ctx, Outcome};
use crate::api::fingerprint::is_fingerprint;
use crate::api::ErrorCode;
use crate::client::api_client::{presented_certificate, ApiClient};
use crate::client::cli::ServerCommand;
use crate::client::config::{is_loopback_host, Scheme, ServerEntry};
use crate::client::output::{clean, table, warn};
use crate::client::ssh::{self, HostKey, KnownHost, LoginProbe};

impl Ctx {
    /// `shed server ...`.
    pub(super) async fn server_command(mut self, cmd: ServerCommand) -> anyhow::Result<Outcome> {
        match cmd {
            ServerCommand::Add {
                host,
                name,
                port,
                token,
                identity,
                fingerprint,
                tls_fingerprint,
                replace_host_key,
                allow_plain_http,
            } => {
                let (scheme, host, http_port) = parse_server_address(&host, port)?;
                let entry = ServerEntry {
                    host,
                    http_port,
                    ssh_port: 2222,
                    token,
                    identity_file: identity,
                    scheme,
                    tls_fingerprint: None,
                    allow_plain_http,
                };
                let pins = Pins {
                    ssh: fingerprint,
                    tls: tls_fingerprint,
                    replace_host_key,
                };
                self.add_server(entry, name, pins).await?;
            }
            ServerCommand::List => {
                if self.config.servers.is_empty() {
                    println!("No servers configured. Add one with `shed server add HOST`.");
                    return Ok(Outcome::Success);
                }
                let rows = self
                    .config
                    .servers
                    .iter()
                    .map(|(name, e)| {
                        let default = self.config.default_server.as_deref() == Some(name.as_str());
                        vec![
                            name.clone(),
                            e.host.clone(),
                            e.http_port.to_string(),
                            e.ssh_port.to_string(),
                            if default { "*".into() } else { String::new() },
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(&["NAME", "HOST", "HTTP", "SSH", "DEFAULT"], rows)
                );
            }
            ServerCommand::Remove { name } => {
                self.client(&name)?;
                self.config.servers.remove(&name);
                if self.config.default_server.as_deref() == Some(name.as_str()) {
                    self.config.default_server = self.config.servers.keys().next().cloned();
                }
                self.save()?;
                match &self.config.default_server {
                    Some(default) => println!("Removed server {name}; the default is {default}"),
                    None => println!("Removed server {name}"),
                }
            }
            ServerCommand::SetDefault { name } => {
                self.client(&name)?;
                self.config.default_server = Some(name.clone());
                self.save()?;
                println!("Default server is now {name}");
            }
        }
        Ok(Outcome::Success)
    }

    /// `shed server add`: pins the TLS certificate (https) before any request
    /// carries the token, then the SSH host key, then saves.
    async fn add_server(
        &mut self,
        mut entry: ServerEntry,
        name: Option<String>,
        pins: Pins,
    ) -> anyhow::Result<()> {
        let url = entry.base_url();
        let label = name.as_deref().unwrap_or("new server");
        if entry.scheme == Scheme::Http
            && entry.token.is_some()
            && !entry.is_loopback()
            && !entry.allow_plain_http
        {
            bail!(
                "refusing to send the token in clear text to {url}: use https://{}:{}, or pass --allow-plain-http if the network is trusted",
                entry.host,
                entry.http_port
            );
        }
        if entry.scheme == Scheme::Https {
            let presented = presented_certificate(label, &url).await?;
            accept_fingerprint(
                "TLS certificate",
                &presented,
                pins.tls.as_deref(),
                "--tls-fingerprint",
                "the fingerprint shed-server logs at startup",
            )?;
            entry.tls_fingerprint = Some(presented);
        }
        let probe = ApiClient::new(label, &entry);
        let info = probe.info().await.map_err(|e| match e.code() {
            Some(ErrorCode::Unauthorized) if entry.token.is_some() => {
                anyhow!("{url} refused the API token given with --token; pass the server's api_token (in its server.toml)")
            }
            Some(ErrorCode::Unauthorized) => {
                anyhow!("{url} requires an API token; pass --token")
            }
            _ => anyhow!(e),
        })?;
        // The server's own name is checked as it came: a name that needs
        // cleaning is refused, not repaired.
        let name = name.unwrap_or(info.name);
        check_server_name(&name)?;
        if self.config.servers.contains_key(&name) {
            bail!("a server named {name:?} is already configured; remove it first or pick another --name");
        }
        entry.ssh_port = info.ssh_port;
        let host_key = HostKey::parse(&probe.ssh_host_key().await?.public_key)
            .with_context(|| format!("adding {url}"))?;
        accept_fingerprint(
            "SSH host key",
            &host_key.fingerprint,
            pins.ssh.as_deref(),
            "--fingerprint",
            "`shed-server host-key` on the server",
        )?;
        let known_hosts = self.known_hosts();
        let known = ssh::known_host(&known_hosts, &entry.host, entry.ssh_port, &host_key)
            .with_context(|| format!("reading {}", known_hosts.display()))?;
        if let KnownHost::Changed(old) = known {
            if !pins.replace_host_key {
                bail!(
                    "THE SSH HOST KEY OF {}:{} HAS CHANGED: {} knows {old}, the server now sends {}. Someone may be intercepting the connection, or the server was reinstalled. If you are sure the new key is right, run the same command with --replace-host-key",
                    entry.host,
                    entry.ssh_port,
                    known_hosts.display(),
                    host_key.fingerprint
                );
            }
            warn(&format!(
                "replacing the host key of {}:{} ({old}) with {}",
                entry.host, entry.ssh_port, host_key.fingerprint
            ));
        }
        ssh::write_known_host(&known_hosts, &entry.host, entry.ssh_port, &host_key)
            .with_context(|| format!("writing {}", known_hosts.display()))?;
        self.config.servers.insert(name.clone(), entry);
        let is_default = self.config.default_server.is_none();
        if is_default {
            self.config.default_server = Some(name.clone());
        }
        self.save()?;
        let default_note = if is_default {
            "; it is the default"
        } else {
            ""
        };
        println!(
            "Added server {name} ({url}, ssh port {}, shed-server {}){default_note}",
            info.ssh_port,
            clean(&info.version)
        );
        // Only a warning: the HTTP side works regardless, and the key can
        // be added on the server later without re-adding it here.
        let entry = self.config.servers.get(&name).expect("just added");
        match ssh::login_probe(entry, &known_hosts).await {
            LoginProbe::Accepted => {}
            LoginProbe::KeyRefused => warn(&key_refused(
                entry,
                Some("so console, exec and attach will fail"),
            )),
            LoginProbe::Failed(why) => warn(&format!(
                "could not test a login to the SSH gateway at {}:{}: {}",
                entry.host,
                entry.ssh_port,
                clean(&why)
            )),
        }
        Ok(())
    }
}

/// What to do when the gateway refuses the laptop's key, as one line: which
/// file on the server must list which key. `consequence` follows the
/// refusal when the login was only a test.
pub(super) fn key_refused(entry: &ServerEntry, consequence: Option<&str>) -> String {
    let key = match entry.identity_file.as_deref().and_then(ssh::public_key_of) {
        Some((public, fingerprint)) => format!("{} ({fingerprint})", public.display()),
        None => match &entry.identity_file {
            Some(identity) => format!("the public key of {}", identity.display()),
            None => {
                "your public key (e.g. ~/.ssh/id_ed25519.pub; pick one with --identity)".to_string()
            }
        },
    };
    let consequence = consequence.map(|c| format!(", {c}")).unwrap_or_default();
    format!(
        "the SSH gateway at {}:{} refused your key (Permission denied){consequence}: its authorized_keys must list {key}; on the server run `shed-server keys add KEY.pub` with that file",
        entry.host, entry.ssh_port
    )
}

/// The fingerprints given to `shed server add`.
struct Pins {
    ssh: Option<String>,
    tls: Option<String>,
    replace_host_key: bool,
}

/// Accepts `presented` if it is the fingerprint the user passed with `flag`,
/// or if the user confirms it at a terminal. Never silently: without a
/// terminal and without the flag, the error shows the fingerprint and the
/// exact flag to pass once it has been checked.
fn accept_fingerprint(
    what: &str,
    presented: &str,
    given: Option<&str>,
    flag: &str,
    where_to_check: &str,
) -> anyhow::Result<()> {
    match given {
        Some(given) if !is_fingerprint(given) => {
            bail!("{flag} {given:?} is not a fingerprint like SHA256:<43 base64 characters>")
        }
        Some(given) if given == presented => Ok(()),
        Some(given) => bail!(
            "the server's {what} has fingerprint {presented}, not {given}: refusing it, as someone may be intercepting the connection"
        ),
        None if interactive() => {
            eprintln!("The server's {what} has fingerprint {presented}");
            eprintln!("Compare it with {where_to_check}.");
            if confirm("Trust it? [y/N] ")? {
                Ok(())
            } else {
                bail!("not added: the {what} was not accepted")
            }
        }
        None => bail!(
            "the server's {what} has fingerprint {presented}; compare it with {where_to_check}, then run the same command with {flag} {presented}"
        ),
    }
}

/// Splits `shed server add`'s HOST argument: a host name or address (https,
/// or http for loopback), or `http(s)://HOST[:PORT]`.
fn parse_server_address(arg: &str, default_port: u16) -> anyhow::Result<(Scheme, String, u16)> {
    let usage = || {
        anyhow!(
            "{arg:?} is not a server address: use a host name or IP address, or https://HOST[:PORT]"
        )
    };
    let (scheme, rest) = if let Some(rest) = arg.strip_prefix("https://") {
        (Some(Scheme::Https), rest)
    } else if let Some(rest) = arg.strip_prefix("http://") {
        (Some(Scheme::Http), rest)
    } else {
        (None, arg)
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or_else(usage)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(usage)?)),
        }
    } else {
        match rest.split_once(':') {
            // More than one colon: a bare IPv6 address.
            Some((_, after)) if after.contains(':') => (rest, None),
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(usage)?,
        None => default_port,
    };
    if !host_is_plain(host) {
        return Err(usage());
    }
    let scheme = scheme.unwrap_or(if is_loopback_host(host) {
        Scheme::Http
    } else {
        Scheme::Https
    });
    Ok((scheme, host.to_string(), port))
}

/// Whether `host` is a plain host name or IP address: nothing that ssh or a
/// URL could read as more than a host.
pub(super) fn host_is_plain(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
}

/// Checks a server's name: it becomes part of ssh aliases and config keys.
pub(super) fn check_server_name(name: &str) -> anyhow::Result<()> {
    if crate::client::config::is_valid_server_name(name) {
        Ok(())
    } else {
        bail!("invalid server name {name:?}: use letters, digits, '-', '_' and '.'; pass --name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        let ok = [
            ("127.0.0.1", (Scheme::Http, "127.0.0.1", 8080)),
            ("localhost", (Scheme::Http, "localhost", 8080)),
            ("box.example.com", (Scheme::Https, "box.example.com", 8080)),
            ("box:9000", (Scheme::Https, "box", 9000)),
            ("https://box", (Scheme::Https, "box", 8080)),
            ("https://box:8443/", (Scheme::Https, "box", 8443)),
            ("http://10.0.0.5:81", (Scheme::Http, "10.0.0.5", 81)),
            ("https://[::1]:8443", (Scheme::Https, "::1", 8443)),
            ("::1", (Scheme::Http, "::1", 8080)),
            ("[fe80::1]", (Scheme::Https, "fe80::1", 8080)),
        ];
        for (arg, (scheme, host, port)) in ok {
            let got = parse_server_address(arg, 8080).unwrap();
            assert_eq!(got, (scheme, host.to_string(), port), "{arg}");
        }
        for bad in [
            "",
            "ftp://box",
            "https://",
            "https://box/api",
            "https://user@box",
            "box:0",
            "box:99999",
            "https://[::1",
            "-oProxyCommand=x",
            "box name",
            "box\nHost *",
        ] {
            assert!(parse_server_address(bad, 8080).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_are_accepted_only_when_they_match() {
        let fp = crate::api::fingerprint::sha256_fingerprint(b"key");
        let other = crate::api::fingerprint::sha256_fingerprint(b"other");
        assert!(accept_fingerprint("k", &fp, Some(&fp), "--f", "x").is_ok());
        let err = accept_fingerprint("k", &fp, Some(&other), "--f", "x").unwrap_err();
        assert!(err.to_string().contains(&fp), "{err}");
        assert!(accept_fingerprint("k", &fp, Some("SHA256:short"), "--f", "x").is_err());
    }
}
