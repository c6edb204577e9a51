//! The tmux commands that recreate a saved session: its windows and panes
//! with their names, layout and cwd, its env, each pane printing its saved
//! history and then running what the session's policy says.
//!
//! Every user value travels as its own argument, escaped for tmux's argv
//! parser (and its format expander where tmux expands one); the pane runs
//! a fixed script that takes the history file, the mode and the command as
//! arguments, so no text is ever parsed by a shell or by tmux.

use crate::api::snapshot::{RestoreAction, RestorePolicy, SavedPane, SavedSession};
use crate::server::agent::rules::Rules;
use crate::server::tmux as tmux_text;

use super::capture::{Created, CREATE_OPTION};

/// What every restored pane runs: prints the saved history (and removes its
/// file), then a shell, the command (`run`), or the command once the user
/// presses Enter (`ask`).
///
/// Its fourth argument is the session's `PATH` (`-` for none): tmux gives a
/// new pane the `PATH` of the client that asked for it when that client is
/// not attached (spawn.c, so that `tmux new CMD` finds CMD), and a restore
/// runs tmux through an exec, so `-e PATH=...` alone would be lost.
pub const PANE_SCRIPT: &str = r#"f=$1; mode=$2; cmd=$3
case ${4:--} in -) ;; *) export PATH="$4" ;; esac
if [ -n "$f" ] && [ -f "$f" ]; then cat -- "$f"; rm -f -- "$f"; fi
case $mode in
run) exec /bin/sh -c -- "$cmd" ;;
ask)
  printf '[shed] this session ran: %s\n[shed] press Enter to run it again, or type n and Enter for a shell: ' "$cmd"
  read -r answer || answer=n
  case $answer in ''|y|Y|yes) exec /bin/sh -c -- "$cmd" ;; esac ;;
esac
exec "${SHELL:-/bin/sh}" -l
"#;

/// The line printed before a pane's saved history.
pub const HISTORY_START: &str = "──── shed: saved history of this pane ────";
/// The line printed after it.
pub const HISTORY_END: &str =
    "──── shed: restored after a restart; the lines above are a copy of what was here ────";

/// What one pane runs after its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaneRun {
    /// A fresh login shell.
    Shell,
    /// This command line.
    Run(String),
    /// This command line, once the user presses Enter.
    Ask(String),
}

impl PaneRun {
    fn mode(&self) -> (&'static str, &str) {
        match self {
            PaneRun::Shell => ("shell", ""),
            PaneRun::Run(c) => ("run", c),
            PaneRun::Ask(c) => ("ask", c),
        }
    }

    /// How a report shows it.
    pub fn describe(&self) -> String {
        match self {
            PaneRun::Shell => "shell".into(),
            PaneRun::Run(c) => c.clone(),
            PaneRun::Ask(c) => format!("{c} (after Enter)"),
        }
    }
}

/// What `pane` runs: `first` is the pane the session's command ran in.
pub fn pane_run(session: &SavedSession, pane: &SavedPane, first: bool, rules: &Rules) -> PaneRun {
    let resumed = || {
        let kind = pane.agent?;
        let id = pane.resume_id.as_deref()?;
        rules.resume_command(kind, id)
    };
    match session.restore {
        RestorePolicy::Resume => match resumed() {
            Some(command) => PaneRun::Run(command),
            // No conversation to go back to: offer the command instead.
            None => match (&session.command, first) {
                (Some(c), true) => PaneRun::Ask(c.clone()),
                _ => PaneRun::Shell,
            },
        },
        _ if !first => PaneRun::Shell,
        RestorePolicy::Shell => PaneRun::Shell,
        RestorePolicy::Rerun => match &session.command {
            Some(c) => PaneRun::Run(c.clone()),
            None => PaneRun::Shell,
        },
        RestorePolicy::Ask => match &session.command {
            Some(c) => PaneRun::Ask(c.clone()),
            None => PaneRun::Shell,
        },
    }
}

/// The file content printed into a pane: its history between markers;
/// nothing when it has none. Control characters other than newline and
/// tab become `?`: saved history is plain text, and a tampered file must
/// not send escape sequences to the user's terminal.
pub fn history_text(pane: &SavedPane, saved_at: &str) -> Option<String> {
    if pane.history.trim().is_empty() {
        return None;
    }
    let history: String = pane
        .history
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect();
    Some(format!(
        "{HISTORY_START} (saved {saved_at})\n{history}\n{HISTORY_END}\n"
    ))
}

/// The tmux execs that recreate one session, in order, and what the report
/// says about it. `files` gives each pane's history file (`""` for none), in
/// window then pane order.
pub struct SessionPlan {
    /// One argv per exec, each starting with `tmux`.
    pub steps: Vec<Vec<String>>,
    /// The report's entry.
    pub action: RestoreAction,
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn pane_command(file: &str, run: &PaneRun, path: Option<&String>) -> Vec<String> {
    let (mode, command) = run.mode();
    let mut cmd = args(&["--", "/bin/sh", "-c", PANE_SCRIPT, "shed-restore"]);
    cmd.push(tmux_text::literal_arg(file));
    cmd.push(mode.into());
    // Empty arguments are dropped by tmux's parser: always give one.
    cmd.push(tmux_text::literal_arg(if command.is_empty() {
        "-"
    } else {
        command
    }));
    cmd.push(match path {
        Some(path) if !path.is_empty() && path != "-" => tmux_text::literal_arg(path),
        _ => "-".into(),
    });
    cmd
}

/// Plans the restore of `session` (see [`SessionPlan`]).
pub fn plan_session(session: &SavedSession, rules: &Rules, files: &[String]) -> SessionPlan {
    let name = session.name.as_str();
    // set-option's -t is a pane target: `=NAME` alone is a window name.
    let target = tmux_text::pane_target(name);
    let mut files = files
        .iter()
        .map(String::as_str)
        .chain(std::iter::repeat(""));
    let mut steps = Vec::new();
    let mut panes = 0;
    let mut first_run = PaneRun::Shell;
    let mut selects: Vec<String> = vec!["tmux".into()];
    for (w, window) in session.windows.iter().enumerate() {
        // The first window is made by new-session (at tmux's base-index),
        // the others at their saved index.
        let win_target = if w == 0 {
            format!("={name}:^")
        } else {
            format!("={name}:{}", window.index)
        };
        let mut step: Vec<String> = vec!["tmux".into()];
        let runs: Vec<PaneRun> = window
            .panes
            .iter()
            .enumerate()
            .map(|(p, pane)| pane_run(session, pane, w == 0 && p == 0, rules))
            .collect();
        let pane_files: Vec<&str> = window
            .panes
            .iter()
            .map(|_| files.next().unwrap_or(""))
            .collect();
        let first = &window.panes[0];
        if w == 0 {
            first_run = runs[0].clone();
            step.extend(args(&["new-session", "-d", "-s", name]));
            step.extend(args(&["-x", &window.width.max(10).to_string()]));
            step.extend(args(&["-y", &window.height.max(5).to_string()]));
            step.push("-n".into());
            step.push(tmux_text::literal_format_arg(&window.name));
            step.push("-c".into());
            step.push(tmux_text::literal_format_arg(&first.cwd));
            for (key, value) in &session.env {
                step.push("-e".into());
                step.push(tmux_text::literal_arg(&format!("{key}={value}")));
            }
            step.extend(pane_command(
                pane_files[0],
                &runs[0],
                session.env.get("PATH"),
            ));
            let created = Created {
                command: session.command.clone(),
                env: session.env.clone(),
                restore: Some(session.restore),
            };
            step.extend(args(&[";", "set-option", "-t", &target, CREATE_OPTION]));
            step.push(tmux_text::literal_arg(&created.to_option()));
            steps.push(step);
            step = vec!["tmux".into()];
        } else {
            step.extend(args(&["new-window", "-d", "-t", &win_target, "-n"]));
            step.push(tmux_text::literal_format_arg(&window.name));
            step.push("-c".into());
            step.push(tmux_text::literal_format_arg(&first.cwd));
            step.extend(pane_command(
                pane_files[0],
                &runs[0],
                session.env.get("PATH"),
            ));
            step.push(";".into());
        }
        // Each split goes right after the first pane, so splitting for the
        // last pane first leaves them in their saved order.
        for p in (1..window.panes.len()).rev() {
            step.extend(args(&["split-window", "-d", "-t", &win_target, "-c"]));
            step.push(tmux_text::literal_format_arg(&window.panes[p].cwd));
            step.extend(pane_command(
                pane_files[p],
                &runs[p],
                session.env.get("PATH"),
            ));
            step.push(";".into());
        }
        if window.panes.len() > 1 && !window.layout.is_empty() {
            step.extend(args(&[
                "select-layout",
                "-t",
                &win_target,
                &window.layout,
                ";",
            ]));
        }
        if runs.iter().any(|r| *r != PaneRun::Shell) {
            // As at create: a command's pane stays when it ends, so its
            // last words can be read.
            step.extend(args(&[
                "set-option",
                "-w",
                "-t",
                &win_target,
                "remain-on-exit",
                "on",
                ";",
            ]));
        }
        if step.len() > 1 {
            step.pop();
            steps.push(step);
        }
        if let Some(active) = window.panes.iter().find(|p| p.active) {
            // Saved under the same pane-base-index, the index is the same.
            let pane = format!("{win_target}.{}", active.index);
            selects.extend(args(&["select-pane", "-t", &pane, ";"]));
        }
        if window.active {
            selects.extend(args(&["select-window", "-t", &win_target, ";"]));
        }
        panes += window.panes.len();
    }
    if selects.len() > 1 {
        selects.pop();
        steps.push(selects);
    }
    SessionPlan {
        steps,
        action: RestoreAction {
            session: name.into(),
            windows: session.windows.len(),
            panes,
            policy: session.restore,
            runs: first_run.describe(),
            skipped: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::agent::AgentKind;
    use crate::api::snapshot::SavedWindow;

    fn pane(index: u32, agent: Option<AgentKind>, resume: Option<&str>) -> SavedPane {
        SavedPane {
            index,
            cwd: "/w;".into(),
            active: index == 1,
            agent,
            resume_id: resume.map(String::from),
            history: String::new(),
        }
    }

    fn session(restore: RestorePolicy, command: Option<&str>) -> SavedSession {
        SavedSession {
            name: "s".into(),
            command: command.map(String::from),
            env: [("A".to_string(), "x;".to_string())].into(),
            restore,
            windows: vec![
                SavedWindow {
                    index: 0,
                    name: "#{pane_id}".into(),
                    layout: "abcd,80x24,0,0{40x24,0,0,1,39x24,41,0,2}".into(),
                    width: 80,
                    height: 24,
                    active: false,
                    panes: vec![
                        pane(0, Some(AgentKind::Claude), Some("c1")),
                        pane(1, None, None),
                    ],
                },
                SavedWindow {
                    index: 3,
                    name: "two".into(),
                    layout: String::new(),
                    width: 80,
                    height: 24,
                    active: true,
                    panes: vec![pane(0, None, None)],
                },
            ],
        }
    }

    #[test]
    fn policies_decide_what_the_first_pane_runs() {
        let rules = Rules::builtin();
        let s = session(RestorePolicy::Shell, Some("make"));
        assert_eq!(
            pane_run(&s, &s.windows[0].panes[0], true, &rules),
            PaneRun::Shell
        );
        let s = session(RestorePolicy::Rerun, Some("make"));
        assert_eq!(
            pane_run(&s, &s.windows[0].panes[0], true, &rules),
            PaneRun::Run("make".into())
        );
        assert_eq!(
            pane_run(&s, &s.windows[0].panes[1], false, &rules),
            PaneRun::Shell
        );
        let s = session(RestorePolicy::Ask, Some("make"));
        assert_eq!(
            pane_run(&s, &s.windows[0].panes[0], true, &rules),
            PaneRun::Ask("make".into())
        );
        let s = session(RestorePolicy::Ask, None);
        assert_eq!(
            pane_run(&s, &s.windows[0].panes[0], true, &rules),
            PaneRun::Shell
        );
        let s = session(RestorePolicy::Resume, Some("claude"));
        let expected = match rules.resume_command(AgentKind::Claude, "c1") {
            Some(c) => PaneRun::Run(c),
            None => PaneRun::Ask("claude".into()),
        };
        assert_eq!(pane_run(&s, &s.windows[0].panes[0], true, &rules), expected);
    }

    #[test]
    fn the_plan_escapes_user_text_and_keeps_pane_order() {
        let s = session(RestorePolicy::Rerun, Some("make;"));
        let files = vec!["/tmp/h0".to_string(), "/tmp/h1".to_string()];
        let plan = plan_session(&s, &Rules::builtin(), &files);
        assert_eq!(plan.action.windows, 2);
        assert_eq!(plan.action.panes, 3);
        assert_eq!(plan.action.runs, "make;");
        let first = &plan.steps[0];
        assert_eq!(&first[..4], ["tmux", "new-session", "-d", "-s"]);
        // The window name is not a format, env and command keep their `;`.
        assert!(first.contains(&"##{pane_id}".to_string()), "{first:?}");
        assert!(first.contains(&"A=x\\;".to_string()), "{first:?}");
        assert!(first.contains(&"make\\;".to_string()), "{first:?}");
        assert!(first.contains(&"/tmp/h0".to_string()));
        assert!(first.contains(&CREATE_OPTION.to_string()));
        // The split carries the second pane's file; then the layout.
        let splits = &plan.steps[1];
        assert_eq!(splits[1], "split-window");
        assert!(splits.contains(&"/tmp/h1".to_string()));
        assert!(splits.contains(&"select-layout".to_string()));
        assert!(splits.contains(&"remain-on-exit".to_string()));
        let window = &plan.steps[2];
        assert_eq!(&window[1..5], ["new-window", "-d", "-t", "=s:3"]);
        let selects = plan.steps.last().unwrap();
        assert!(selects.contains(&"=s:^.1".to_string()), "{selects:?}");
        assert!(selects.contains(&"select-window".to_string()));
        assert_ne!(selects.last().map(String::as_str), Some(";"));
    }

    #[test]
    fn history_is_marked_and_carries_no_escape_sequences() {
        let mut p = pane(0, None, None);
        assert_eq!(history_text(&p, "t"), None);
        p.history = "ok\tline\n\u{1b}]52;c;aGk=\u{7}\u{9b}2J".into();
        let text = history_text(&p, "t").unwrap();
        assert!(text.starts_with(HISTORY_START), "{text}");
        assert!(text.contains("ok\tline\n?]52;c;aGk=??2J\n"), "{text:?}");
        assert!(text.trim_end().ends_with(HISTORY_END), "{text}");
    }

    #[test]
    fn the_pane_script_prints_the_history_then_runs_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h");
        std::fs::write(&file, "old line\n").unwrap();
        let run = |file: &str, mode: &str, cmd: &str, input: &str| {
            use std::io::Write;
            let mut child = std::process::Command::new("/bin/sh")
                .args(["-c", PANE_SCRIPT, "shed-restore", file, mode, cmd])
                .env("SHELL", "/bin/true")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
        };
        let f = file.to_str().unwrap();
        assert_eq!(run(f, "run", "echo 'ran $1'", ""), "old line\nran $1\n");
        assert!(!file.exists(), "the history file is removed once printed");
        let out = run("", "ask", "echo yes", "\n");
        assert!(out.ends_with("yes\n"), "{out}");
        let out = run("", "ask", "echo yes", "n\n");
        assert!(out.ends_with("for a shell: "), "{out}");
        assert_eq!(run("", "shell", "-", ""), "");
        // The session's PATH wins over the one tmux gave the pane.
        let out = std::process::Command::new("/bin/sh")
            .args([
                "-c",
                PANE_SCRIPT,
                "shed-restore",
                "",
                "run",
                "echo $PATH",
                "/opt/x:/bin",
            ])
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/opt/x:/bin\n");
    }
}
