//! The tmux commands that recreate a saved session: its windows and panes
//! with their names, layout and cwd, its env, each pane printing its saved
//! history and then running what the session's policy says.
//!
//! Every user value travels as its own argument, escaped for tmux's argv
//! parser (and its format expander where tmux expands one); the pane runs
//! a fixed script that takes the history file, the mode and the command as
//! arguments, so no text is ever parsed by a shell or by tmux. The whole
//! restore of a shed is one script ([`restore_script`]), one exec, where
//! each such argument is a single-quoted shell word.

use std::collections::BTreeMap;

use crate::api::snapshot::{RestoreAction, RestorePolicy, SavedPane, SavedSession};
use crate::server::agent::rules::Rules;
use crate::server::tmux as tmux_text;

use super::capture::{Created, CREATE_OPTION};

/// What every restored pane runs: prints the saved history (and removes its
/// file, and the restore's directory once it is empty), then a shell, the command (`run`), or the command once the user
/// presses Enter (`ask`).
///
/// Its fourth argument is the session's `PATH` (`-` for none): tmux gives a
/// new pane the `PATH` of the client that asked for it when that client is
/// not attached (spawn.c, so that `tmux new CMD` finds CMD), and a restore
/// runs tmux through an exec, so `-e PATH=...` alone would be lost.
pub const PANE_SCRIPT: &str = r#"f=$1; mode=$2; cmd=$3
case ${4:--} in -) ;; *) export PATH="$4" ;; esac
if [ -n "$f" ] && [ -f "$f" ]; then cat -- "$f"; rm -f -- "$f"; rmdir -- "${f%/*}" 2>/dev/null; fi
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

/// Where a restore writes its history files: this, then 32 random hex
/// digits, a directory made fresh for each restore.
pub const RESTORE_DIR_PREFIX: &str = "/tmp/shed-restore.";

/// Heads the heredoc delimiter of each history file in a [`restore_script`].
const HEREDOC_END: &str = "SHED_HISTORY_END";

/// Runs one tmux step of a restore script and prints its outcome:
/// `ok S I`, or `err S I MESSAGE` on one line.
const STEP_FUNCTION: &str = r#"step() { s=$1; i=$2; shift 2
  if out=$(tmux "$@" 2>&1 </dev/null); then echo "ok $s $i"; return 0; fi
  printf 'err %s %s %s\n' "$s" "$i" "$(printf %s "$out" | tr '\n\r' '  ')"
  return 1
}
"#;

/// One session of a [`restore_script`].
pub struct ScriptSession {
    /// Its index in the snapshot, which the output lines carry.
    pub index: usize,
    /// Its tmux steps, as [`plan_session`] made them (each starting with `tmux`).
    pub steps: Vec<Vec<String>>,
    /// The history files its panes print: path and content.
    pub files: Vec<(String, String)>,
}

/// What one step of a restore script did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// tmux did it.
    Done,
    /// tmux refused it, with this message.
    Failed(String),
}

fn sh_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_words::quote(w).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The whole restore as one shell script for `/bin/sh -s`, so that it
/// takes one exec however many sessions and panes there are: it makes
/// `dir` (and fails if anything is there already, so nothing planted is
/// written through), writes every history file into it, then runs each
/// session's steps in order, printing each step's outcome (see
/// [`parse_outcomes`]). A session whose first step fails gets no further
/// steps, as it does not exist. `first` (tmux arguments, such as the
/// history-limit) runs in the same tmux command as the first session's
/// first step: that step may be the one to start the tmux server.
///
/// Every value is a single-quoted shell word and every history file a
/// heredoc with a quoted delimiter that no line of any file equals, so
/// no text is read by the shell. An argument with a NUL byte cannot be
/// passed at all: its session fails at its first step.
pub fn restore_script(dir: &str, first: &[String], sessions: &[ScriptSession]) -> String {
    let mut end = HEREDOC_END.to_string();
    while sessions
        .iter()
        .flat_map(|s| &s.files)
        .any(|(_, text)| text.lines().any(|line| line == end))
    {
        end.push('_');
    }
    let mut out = String::from("umask 077\n");
    out.push_str(&format!("d={}\n", shell_words::quote(dir)));
    out.push_str("mkdir -m 700 -- \"$d\" || exit 3\n");
    out.push_str(STEP_FUNCTION);
    for (path, text) in sessions.iter().flat_map(|s| &s.files) {
        // history_text gives no NUL and ends with a newline, so the
        // delimiter stands on its own line.
        let text = text.replace('\0', "?");
        out.push_str(&format!("cat > {} <<'{end}'\n", shell_words::quote(path)));
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&end);
        out.push('\n');
    }
    let mut first = (!first.is_empty()).then_some(first);
    for session in sessions {
        let remove = |files: &mut dyn Iterator<Item = &String>| {
            let files: Vec<String> = files.cloned().collect();
            if files.is_empty() {
                ":".to_string()
            } else {
                format!("rm -f -- {}", sh_words(&files))
            }
        };
        let all_files = remove(&mut session.files.iter().map(|(p, _)| p));
        let Some((step0, rest)) = session.steps.split_first() else {
            continue;
        };
        if session.steps.iter().flatten().any(|a| a.contains('\0')) {
            out.push_str(&format!(
                "echo 'err {} 0 an argument holds a NUL byte'; {all_files}\n",
                session.index
            ));
            continue;
        }
        let mut args: Vec<String> = Vec::new();
        if let Some(prefix) = first.take() {
            args.extend(prefix.iter().cloned());
            args.push(";".into());
        }
        args.extend(step0.iter().skip(1).cloned());
        out.push_str(&format!(
            "if step {} 0 {}; then\n",
            session.index,
            sh_words(&args)
        ));
        for (i, step) in rest.iter().enumerate() {
            // A step that fails leaves its panes unmade: their files go.
            let mut files = session
                .files
                .iter()
                .map(|(p, _)| p)
                .filter(|p| step.contains(p));
            out.push_str(&format!(
                "  step {} {} {} || {}\n",
                session.index,
                i + 1,
                sh_words(&step[1..]),
                remove(&mut files)
            ));
        }
        out.push_str(&format!("  :\nelse\n  {all_files}\nfi\n"));
    }
    // Gone already if every pane has printed its file.
    out.push_str("rmdir -- \"$d\" 2>/dev/null\nexit 0\n");
    out
}

/// The outcome of each step a [`restore_script`] ran, by session index and
/// step index; a step missing was not run.
pub fn parse_outcomes(text: &str) -> BTreeMap<(usize, usize), StepOutcome> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.splitn(4, ' ');
        let (Some(kind), Some(s), Some(i)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let (Ok(s), Ok(i)) = (s.parse::<usize>(), i.parse::<usize>()) else {
            continue;
        };
        let outcome = match kind {
            "ok" => StepOutcome::Done,
            "err" => StepOutcome::Failed(words.next().unwrap_or("").trim().to_string()),
            _ => continue,
        };
        out.insert((s, i), outcome);
    }
    out
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
        let resumed = match rules.resume_command(AgentKind::Claude, "c1") {
            Some(c) => PaneRun::Run(c),
            None => PaneRun::Ask("claude".into()),
        };
        // (policy, command, pane, is the first pane, what it runs)
        let cases = [
            (RestorePolicy::Shell, Some("make"), 0, true, PaneRun::Shell),
            (
                RestorePolicy::Rerun,
                Some("make"),
                0,
                true,
                PaneRun::Run("make".into()),
            ),
            (RestorePolicy::Rerun, Some("make"), 1, false, PaneRun::Shell),
            (
                RestorePolicy::Ask,
                Some("make"),
                0,
                true,
                PaneRun::Ask("make".into()),
            ),
            (RestorePolicy::Ask, None, 0, true, PaneRun::Shell),
            (RestorePolicy::Resume, Some("claude"), 0, true, resumed),
        ];
        for (policy, command, pane, first, want) in cases {
            let s = session(policy, command);
            assert_eq!(
                pane_run(&s, &s.windows[0].panes[pane], first, &rules),
                want,
                "{policy:?} {command:?} pane {pane}"
            );
        }
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
            let out = run_with_input(
                std::process::Command::new("/bin/sh")
                    .args(["-c", PANE_SCRIPT, "shed-restore", file, mode, cmd])
                    .env("SHELL", "/bin/true"),
                input,
            );
            String::from_utf8(out.stdout).unwrap()
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

    /// Runs `cmd` with `input` on its standard input; its output captured.
    fn run_with_input(cmd: &mut std::process::Command, input: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = cmd
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
        child.wait_with_output().unwrap()
    }

    /// Runs a restore script with a stand-in `tmux` that records each
    /// call's arguments (NUL after each, a newline after each call) and
    /// fails any call holding `fail-me`: the script's status, its output,
    /// and the recorded calls.
    fn run_script(script: &str, bin: &std::path::Path) -> (i32, String, Vec<Vec<String>>) {
        let log = bin.join("calls");
        let tmux = bin.join("tmux");
        std::fs::write(
            &tmux,
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done >> \"$LOG\"\n\
             printf '\\n' >> \"$LOG\"\n\
             case \"$*\" in *fail-me*) echo \"duplicate session: x\" >&2; exit 1 ;; esac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmux, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = run_with_input(
            std::process::Command::new("/bin/sh")
                .arg("-s")
                .env("PATH", path)
                .env("LOG", &log)
                .stderr(std::process::Stdio::null()),
            script,
        );
        let calls = std::fs::read(&log).unwrap_or_default();
        let calls = String::from_utf8(calls).unwrap();
        let calls = calls
            .split_terminator("\0\n")
            .map(|c| c.split('\0').map(String::from).collect())
            .collect();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            calls,
        )
    }

    #[test]
    fn one_script_writes_every_history_and_runs_each_step_as_given() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let dir = tmp.path().join("restore.0123");
        let dir = dir.to_str().unwrap().to_string();
        let hostile = "it's $HOME `id` \"q\" \\ ;\nSHED_HISTORY_END\nSHED_HISTORY_END_\n\tend\n";
        let file = |n: usize| format!("{dir}/{n}");
        let sessions = vec![
            ScriptSession {
                index: 0,
                steps: vec![
                    vec![
                        "tmux".into(),
                        "new-session".into(),
                        "-s".into(),
                        "a b'c".into(),
                        file(0),
                    ],
                    vec![
                        "tmux".into(),
                        "split-window".into(),
                        "fail-me".into(),
                        file(1),
                    ],
                    vec!["tmux".into(), "select-pane".into(), "$x;".into()],
                ],
                files: vec![(file(0), hostile.into()), (file(1), "two\n".into())],
            },
            ScriptSession {
                index: 1,
                steps: vec![
                    vec![
                        "tmux".into(),
                        "new-session".into(),
                        "fail-me".into(),
                        file(2),
                    ],
                    vec!["tmux".into(), "never".into()],
                ],
                files: vec![(file(2), "three\n".into())],
            },
            ScriptSession {
                index: 2,
                steps: vec![vec!["tmux".into(), "new-session".into(), "nul\0".into()]],
                files: Vec::new(),
            },
        ];
        let first = vec!["if-shell".to_string(), "-F".into(), "#{x}".into()];
        let script = restore_script(&dir, &first, &sessions);
        let (code, out, calls) = run_script(&script, &bin);
        assert_eq!(code, 0, "{out}");
        // Each call's arguments arrive exactly; the first carries `first`.
        assert_eq!(
            calls,
            vec![
                vec![
                    "if-shell",
                    "-F",
                    "#{x}",
                    ";",
                    "new-session",
                    "-s",
                    "a b'c",
                    &file(0)
                ],
                vec!["split-window", "fail-me", &file(1)],
                vec!["select-pane", "$x;"],
                vec!["new-session", "fail-me", &file(2)],
            ]
        );
        let outcomes = parse_outcomes(&out);
        assert_eq!(outcomes[&(0, 0)], StepOutcome::Done);
        assert_eq!(
            outcomes[&(0, 1)],
            StepOutcome::Failed("duplicate session: x".into())
        );
        assert_eq!(outcomes[&(0, 2)], StepOutcome::Done);
        assert!(matches!(outcomes[&(1, 0)], StepOutcome::Failed(_)));
        assert!(!outcomes.contains_key(&(1, 1)), "{out}");
        assert!(matches!(&outcomes[&(2, 0)], StepOutcome::Failed(m) if m.contains("NUL")));
        // The history of a made pane is there byte for byte, in a 0700
        // directory; the files of panes never made are gone.
        assert_eq!(std::fs::read_to_string(file(0)).unwrap(), hostile);
        assert!(!std::path::Path::new(&file(1)).exists());
        assert!(!std::path::Path::new(&file(2)).exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(file(0)).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A path already there (planted) stops the script before it writes.
        std::fs::remove_file(bin.join("calls")).unwrap();
        let (code, _, calls) = run_script(&script, &bin);
        assert_ne!(code, 0);
        assert!(calls.is_empty(), "{calls:?}");
        assert_eq!(std::fs::read_to_string(file(0)).unwrap(), hostile);
    }

    #[test]
    fn the_history_limit_is_only_ever_raised() {
        assert_eq!(crate::server::snapshot::history_limit_command(0), None);
        let cmd = crate::server::snapshot::history_limit_command(3000).unwrap();
        assert_eq!(cmd[..2], ["if-shell", "-F"]);
        assert_eq!(cmd[2], "#{e|<:#{history-limit},3500}");
        assert_eq!(cmd[3], "set-option -g history-limit 3500");
    }
}
