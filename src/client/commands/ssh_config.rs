//! `shed ssh-config [NAME] [--install|--uninstall]`: `Host shed-NAME` entries
//! so plain `ssh`, scp and editors reach the sheds.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Context};

use super::servers::{check_server_name, host_is_plain};
use super::{ask_all, check_shed_name, Ctx, Outcome};
use crate::client::output::warn;
use crate::client::ssh::{HostEntry, SshConfig};

impl Ctx {
    /// Prints the entries, or writes them into (or removes them from) `~/.ssh/config`.
    pub(super) async fn ssh_config(
        &self,
        name: Option<&str>,
        install: bool,
        uninstall: bool,
    ) -> anyhow::Result<Outcome> {
        let home = dirs::home_dir().ok_or_else(|| anyhow!("cannot find the home directory"))?;
        let path = home.join(".ssh").join("config");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut config = SshConfig::parse(&text);
        let mut outcome = Outcome::Success;
        if uninstall {
            match name {
                Some(name) => {
                    check_shed_name(name)?;
                    let alias = format!("shed-{name}");
                    if !config.remove(&alias) {
                        bail!("{} has no entry for {alias}", path.display());
                    }
                }
                None => config.entries.clear(),
            }
        } else {
            let mut wanted: Vec<(String, String)> = Vec::new();
            match name {
                Some(name) => {
                    let (client, _) = self.find_shed(name).await?;
                    wanted.push((name.to_string(), client.server().to_string()));
                }
                None => {
                    let clients = self.all_clients()?;
                    let answers = ask_all(&clients, |c| c.list()).await;
                    for (client, sheds) in answers.ok {
                        wanted.extend(
                            sheds
                                .into_iter()
                                .map(|s| (s.name, client.server().to_string())),
                        );
                    }
                    for (_, e) in &answers.failed {
                        warn(&e.to_string());
                        outcome = Outcome::Partial;
                    }
                    // Regenerate: entries of sheds that are gone disappear.
                    config.entries.clear();
                }
            }
            let mut seen = HashMap::new();
            for (shed, _) in &wanted {
                *seen.entry(shed.clone()).or_insert(0) += 1;
            }
            for (shed, server) in &wanted {
                // A name on several servers gets one alias per server.
                let alias = if seen[shed] > 1 {
                    format!("shed-{shed}.{server}")
                } else {
                    format!("shed-{shed}")
                };
                // Every name has been checked already; checked again here
                // because a line break would add ssh directives.
                check_shed_name(shed)?;
                check_server_name(server)?;
                let entry = &self.config.servers[server];
                if !host_is_plain(&entry.host) {
                    bail!(
                        "server {server:?} has an invalid host {:?} in {}",
                        entry.host,
                        self.config_path.display()
                    );
                }
                config.upsert(HostEntry::new(alias, shed, entry, &self.known_hosts())?);
            }
        }
        if !install && !uninstall {
            print!("{}", config.block());
            return Ok(outcome);
        }
        // ssh refuses a config that others can write.
        crate::files::write_private(&path, config.render().as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        let aliases: Vec<&str> = config.entries.iter().map(|e| e.alias.as_str()).collect();
        if aliases.is_empty() {
            println!("Removed shed's entries from {}", path.display());
        } else {
            println!("{} now has: {}", path.display(), aliases.join(", "));
        }
        Ok(outcome)
    }
}
