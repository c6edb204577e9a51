//! Agent hooks that report state to shed: the `shed-hook` helper and, per
//! agent, the configuration that calls it, written into a shed as root at
//! system paths (never into the user's home, which may be mounted from the
//! laptop). A file that exists and is not shed's own is left untouched and
//! reported as skipped. What each agent offers, and where it was read, is in
//! `docs/hooks.md`.

use std::time::Duration;

use crate::api::hooks::{AgentHooks, HookAgent, HookFile, HookFileStatus, HooksReport};
use crate::server::backend::{BackendError, ShedBackend};

/// The helper, a POSIX sh script needing only `sh`, `tmux` and `sed`.
pub const HELPER: &str = include_str!("shed-hook.sh");
/// Where the helper goes in a shed; every configuration calls it by this path.
pub const HELPER_PATH: &str = "/usr/local/bin/shed-hook";
/// Claude Code's managed settings with shed's hooks.
pub const CLAUDE_SETTINGS: &str = include_str!("claude-managed-settings.json");
/// Codex's system `hooks.json`.
pub const CODEX_HOOKS: &str = include_str!("codex-hooks.json");
/// Codex's system `config.toml`, which turns hooks on.
pub const CODEX_CONFIG: &str = include_str!("codex-config.toml");
/// Gemini CLI's system defaults with shed's hooks.
pub const GEMINI_DEFAULTS: &str = include_str!("gemini-system-defaults.json");
/// The string that marks a file as shed's own, so a later install may
/// rewrite it: a comment in the helper and the TOML, and a shell comment at
/// the end of every hook command in the JSON files (a key of shed's own
/// could make an agent that checks its settings strictly skip the file).
pub const MARKER: &str = "shed-managed-file";
/// Longest an install may take in a shed.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most characters of a skip reason or tool name taken from the shed's
/// answer: a compromised shed may answer anything.
const MAX_ANSWER_CHARS: usize = 300;
/// Programs the helper needs in the shed, checked before anything is written.
const NEEDED_TOOLS: [&str; 2] = ["tmux", "sed"];

/// One file to write: where, with what mode, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookTarget {
    /// Absolute path in the shed.
    pub path: &'static str,
    /// Octal mode, as `chmod` takes it.
    pub mode: &'static str,
    /// The file's content.
    pub content: &'static str,
}

/// The files of `agent`'s hooks, in the order they are written.
pub fn targets(agent: HookAgent) -> Vec<HookTarget> {
    let config = |path, content| HookTarget {
        path,
        mode: "644",
        content,
    };
    match agent {
        HookAgent::Claude => vec![config(
            "/etc/claude-code/managed-settings.json",
            CLAUDE_SETTINGS,
        )],
        HookAgent::Codex => vec![
            config("/etc/codex/hooks.json", CODEX_HOOKS),
            config("/etc/codex/config.toml", CODEX_CONFIG),
        ],
        HookAgent::Gemini => vec![config(
            "/etc/gemini-cli/system-defaults.json",
            GEMINI_DEFAULTS,
        )],
    }
}

/// The helper's file.
fn helper_target() -> HookTarget {
    HookTarget {
        path: HELPER_PATH,
        mode: "755",
        content: HELPER,
    }
}

/// Runs as root in the shed: `$1` the marker, then `PATH MODE CONTENT`
/// triples. Prints `missing<TAB>TOOL` and stops when a needed program is
/// absent; otherwise one `installed<TAB>PATH` or `skipped<TAB>PATH<TAB>WHY`
/// line per file. A file is replaced by rename, so a reader never sees half.
const INSTALL_SCRIPT: &str = r#"marker=$1; shift
for tool in NEEDED mkdir chmod mv rm; do
    command -v "$tool" >/dev/null 2>&1 || { printf 'missing\t%s\n' "$tool"; exit 0; }
done
while [ $# -ge 3 ]; do
    path=$1 mode=$2 content=$3
    shift 3
    if [ -L "$path" ]; then
        printf 'skipped\t%s\t%s\n' "$path" "it is a symbolic link"
        continue
    fi
    if [ -e "$path" ]; then
        if [ ! -f "$path" ]; then
            printf 'skipped\t%s\t%s\n' "$path" "it exists and is not a regular file"
            continue
        fi
        if [ -z "$(sed -n "/$marker/p" "$path")" ]; then
            printf 'skipped\t%s\t%s\n' "$path" "it exists and is not shed's (it has no $marker mark); add shed's hooks to it by hand, see docs/hooks.md"
            continue
        fi
    fi
    dir=${path%/*}
    tmp="$dir/.shed-install.$$"
    if mkdir -p "$dir" && printf '%s' "$content" >"$tmp" && chmod "$mode" "$tmp" && mv -f "$tmp" "$path"; then
        printf 'installed\t%s\n' "$path"
    else
        rm -f "$tmp"
        printf 'skipped\t%s\t%s\n' "$path" "writing it failed (read-only file system?)"
    fi
done
"#;

/// The argv of one install of `agents` (and the helper).
fn install_command(agents: &[HookAgent]) -> Vec<String> {
    let script = INSTALL_SCRIPT.replace("NEEDED", &NEEDED_TOOLS.join(" "));
    let mut cmd = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        script,
        "sh".into(),
        MARKER.into(),
    ];
    let files = std::iter::once(helper_target()).chain(agents.iter().flat_map(|a| targets(*a)));
    for t in files {
        cmd.extend([
            t.path.to_string(),
            t.mode.to_string(),
            t.content.to_string(),
        ]);
    }
    cmd
}

/// `agents` without repeats, in [`HookAgent::ALL`] order; all of them for `None`.
pub fn chosen(agents: Option<&[HookAgent]>) -> Vec<HookAgent> {
    match agents {
        None => HookAgent::ALL.to_vec(),
        Some(list) => HookAgent::ALL
            .into_iter()
            .filter(|a| list.contains(a))
            .collect(),
    }
}

/// Installs the helper and `agents`' hooks into running shed `shed`.
pub async fn install(
    backend: &dyn ShedBackend,
    shed: &str,
    agents: &[HookAgent],
) -> Result<HooksReport, BackendError> {
    let output = backend
        .exec_as_root(shed, install_command(agents), INSTALL_TIMEOUT)
        .await?;
    if output.exit_code == 126 || output.exit_code == 127 {
        return Err(missing(shed, "sh"));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_report(shed, agents, &stdout)
}

fn bounded(text: &str) -> String {
    text.chars().take(MAX_ANSWER_CHARS).collect()
}

fn missing(shed: &str, tool: &str) -> BackendError {
    BackendError::ToolMissing {
        shed: shed.into(),
        tool: tool.into(),
        needed_for: "agent state hooks".into(),
    }
}

/// The report from the install script's output: every file it was given
/// gets the status the script printed, or a skip when it printed none.
fn parse_report(
    shed: &str,
    agents: &[HookAgent],
    stdout: &str,
) -> Result<HooksReport, BackendError> {
    let mut statuses = std::collections::HashMap::new();
    for line in stdout.lines() {
        let mut fields = line.splitn(3, '\t');
        match (fields.next(), fields.next(), fields.next()) {
            (Some("missing"), Some(tool), _) => return Err(missing(shed, &bounded(tool))),
            (Some("installed"), Some(path), _) => {
                statuses.insert(path.to_string(), (HookFileStatus::Installed, None));
            }
            (Some("skipped"), Some(path), why) => {
                statuses.insert(
                    path.to_string(),
                    (
                        HookFileStatus::Skipped,
                        Some(bounded(why.unwrap_or("skipped"))),
                    ),
                );
            }
            _ => {}
        }
    }
    let file = |t: HookTarget| {
        let (status, reason) = statuses.get(t.path).cloned().unwrap_or((
            HookFileStatus::Skipped,
            Some("the shed did not say whether it was written".into()),
        ));
        HookFile {
            path: t.path.into(),
            status,
            reason,
        }
    };
    Ok(HooksReport {
        shed: shed.into(),
        helper: file(helper_target()),
        agents: agents
            .iter()
            .map(|&agent| AgentHooks {
                agent,
                files: targets(agent).into_iter().map(file).collect(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests;
