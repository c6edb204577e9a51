//! `shed hooks install`: the agent state hooks, written into a shed by its server.

use super::{Ctx, Outcome};
use crate::api::hooks::{HookAgent, HookFile, HookFileStatus, InstallHooksRequest};
use crate::client::output::table;

impl Ctx {
    /// `shed hooks install NAME [--agent NAME]... [--json]`.
    pub(super) async fn install_hooks(
        &self,
        name: &str,
        agents: Vec<HookAgent>,
        json: bool,
    ) -> anyhow::Result<Outcome> {
        let (client, _) = self.find_shed(name).await?;
        let request = InstallHooksRequest {
            agents: (!agents.is_empty()).then_some(agents),
        };
        let report = client.install_hooks(name, &request).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(Outcome::Success);
        }
        let row = |who: &str, f: &HookFile| {
            let status = match f.status {
                HookFileStatus::Installed => "installed".to_string(),
                HookFileStatus::Skipped => {
                    format!(
                        "skipped: {}",
                        f.reason.as_deref().unwrap_or("no reason given")
                    )
                }
            };
            vec![who.to_string(), f.path.clone(), status]
        };
        let mut rows = vec![row("shed-hook", &report.helper)];
        for agent in &report.agents {
            for file in &agent.files {
                rows.push(row(agent.agent.as_str(), file));
            }
        }
        println!("Hooks in shed {name} on {}:", client.server());
        println!("{}", table(&["AGENT", "FILE", "RESULT"], rows));
        Ok(Outcome::Success)
    }
}
