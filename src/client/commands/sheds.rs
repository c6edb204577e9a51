//! `shed create|list|start|stop|delete`: the sheds themselves.

use chrono::Utc;

use super::prompt::{confirm, interactive, Spinner};
use super::{all_failed, ask_all, check_shed_name, outcome, Ctx, Outcome, ServerFailure};
use crate::api::{CreateShedRequest, ErrorCode, KeptVolume, Shed};
use crate::client::output::{clean, relative_time, table, warn};

impl Ctx {
    /// `shed create NAME [--image] [--repo] [--idle-stop-after]` on the selected server.
    pub(super) async fn create(
        &self,
        name: String,
        image: Option<String>,
        repo: Option<String>,
        idle_stop_after: Option<u64>,
    ) -> anyhow::Result<Outcome> {
        check_shed_name(&name)?;
        let client = self.selected()?;
        let spinner = Spinner::start(format!(
            "Creating shed {name} on {}{}",
            client.server(),
            repo.as_deref()
                .map(|r| format!(" (cloning {r})"))
                .unwrap_or_default()
        ));
        let request = CreateShedRequest {
            name,
            image,
            repo,
            idle_stop_after,
        };
        let result = client.create(&request).await;
        spinner.finish();
        let shed = result?;
        println!(
            "Created shed {} on {} ({}, image {})",
            shed.name,
            client.server(),
            shed.status,
            clean(&shed.image)
        );
        for warning in &shed.warnings {
            warn(warning);
        }
        Ok(Outcome::Success)
    }

    /// `shed list [--all] [--json]`.
    pub(super) async fn list(&self, all: bool, json: bool) -> anyhow::Result<Outcome> {
        let clients = if all {
            self.all_clients()?
        } else {
            vec![self.selected()?]
        };
        let answers = ask_all(&clients, |c| c.list_with_kept()).await;
        let mut sheds = Vec::new();
        let mut kept = Vec::new();
        for (client, list) in answers.ok {
            // Show the name `-s` accepts, not the server's own name for itself.
            sheds.extend(list.sheds.into_iter().map(|shed| Shed {
                server: client.server().to_string(),
                ..shed
            }));
            kept.extend(
                list.kept_volumes
                    .into_iter()
                    .map(|k| (client.server().to_string(), k)),
            );
        }
        let failures: Vec<ServerFailure> = answers
            .failed
            .iter()
            .map(|(client, e)| ServerFailure::server(client, e))
            .collect();
        all_failed(&failures, clients.len())?;
        sheds.sort_by(|a, b| (&a.server, &a.name).cmp(&(&b.server, &b.name)));
        kept.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
        if json {
            let kept: Vec<_> = kept
                .iter()
                .map(|(server, k)| {
                    serde_json::json!({
                        "server": server,
                        "name": k.name,
                        "volume": k.volume,
                        "kept_at": k.kept_at,
                    })
                })
                .collect();
            let out = serde_json::json!({"sheds": sheds, "kept_volumes": kept, "errors": failures});
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            for failure in &failures {
                warn(&failure.message);
            }
            if sheds.is_empty() {
                println!("No sheds. Create one with `shed create NAME`.");
            } else {
                print_sheds(&sheds);
            }
            print_kept(&kept, all);
        }
        Ok(outcome(&failures))
    }

    /// `shed start NAME` (`start`) or `shed stop NAME`. Asking for the state
    /// a shed is already in succeeds with a note, as `systemctl` does; the API
    /// itself answers 409 there.
    pub(super) async fn start_stop(&self, name: &str, start: bool) -> anyhow::Result<Outcome> {
        let (client, _) = self.find_shed(name).await?;
        let result = if start {
            client.start(name).await
        } else {
            client.stop(name).await
        };
        let already = match &result {
            Err(e) => matches!(
                (start, e.code()),
                (true, Some(ErrorCode::ShedAlreadyRunning))
                    | (false, Some(ErrorCode::ShedAlreadyStopped))
            ),
            Ok(_) => false,
        };
        if already {
            let state = if start { "running" } else { "stopped" };
            println!("Shed {name} is already {state} on {}", client.server());
            return Ok(Outcome::Success);
        }
        let shed = result?;
        let verb = if start { "Started" } else { "Stopped" };
        println!("{verb} shed {} on {}", shed.name, client.server());
        Ok(Outcome::Success)
    }

    /// `shed delete NAME [--keep-volume] [--force]`: asks first at a terminal.
    pub(super) async fn delete(
        &self,
        name: &str,
        keep_volume: bool,
        force: bool,
    ) -> anyhow::Result<Outcome> {
        let (client, _) = self.find_shed(name).await?;
        if !force && interactive() {
            let what = if keep_volume {
                "(its workspace volume is kept)"
            } else {
                "and its workspace volume"
            };
            if !confirm(&format!(
                "Delete shed {name} on {} {what}? [y/N] ",
                client.server()
            ))? {
                // Declining is an answer, not a failure (as with `rm -i`).
                println!("Not deleted.");
                return Ok(Outcome::Success);
            }
        }
        client.delete(name, keep_volume).await?;
        let kept = if keep_volume {
            " (workspace volume kept)"
        } else {
            ""
        };
        println!("Deleted shed {name} on {}{kept}", client.server());
        Ok(Outcome::Success)
    }
}

/// One line per kept volume: without it a `delete --keep-volume` leaves no
/// trace in the CLI, and the way back (a create of the same name) is unknown.
fn print_kept(kept: &[(String, KeptVolume)], all: bool) {
    for (server, k) in kept {
        let (on, select) = if all {
            (format!(" on {server}"), format!("-s {server} "))
        } else {
            (String::new(), String::new())
        };
        println!(
            "Kept volume for {}{on}: {} (recreate with `shed {select}create {}`)",
            k.name,
            clean(&k.volume),
            k.name
        );
    }
}

fn print_sheds(sheds: &[Shed]) {
    let now = Utc::now();
    let rows = sheds
        .iter()
        .map(|s| {
            vec![
                s.server.clone(),
                s.name.clone(),
                s.status.to_string(),
                s.image.clone(),
                relative_time(s.created_at, now),
                s.repo.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["SERVER", "NAME", "STATUS", "IMAGE", "CREATED", "REPO"],
            rows
        )
    );
}
