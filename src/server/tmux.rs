//! tmux command lines and output parsing for the sessions API.
//!
//! Every target is written `=NAME` (a session) or `=NAME:` (its active
//! pane): the `=` makes tmux match the whole name exactly. Without it, tmux
//! resolves `-t debug` by prefix and would act on `debug-long`.

use chrono::{DateTime, Utc};

use crate::api::{SessionInfo, SessionStatus};

/// Separates fields in `list-sessions -F` output; it cannot occur in a
/// session name, a number or a command name.
const SEP: char = '\u{1f}';

/// The exact-match target of a session.
pub fn session_target(name: &str) -> String {
    format!("={name}")
}

/// The exact-match target of a session's active pane.
pub fn pane_target(name: &str) -> String {
    format!("={name}:")
}

/// `tmux list-sessions` printing every field of every session in one exec.
pub fn list_command() -> Vec<String> {
    let fields = [
        "#{session_name}",
        "#{session_created}",
        "#{session_activity}",
        "#{window_activity}",
        "#{session_attached}",
        "#{session_windows}",
        "#{pane_current_command}",
        "#{pane_dead}",
        "#{pane_dead_status}",
        // Last: the only field that may hold the separator.
        "#{pane_current_path}",
    ];
    vec![
        "tmux".into(),
        "list-sessions".into(),
        "-F".into(),
        fields.join(&SEP.to_string()),
    ]
}

/// Parses [`list_command`] output, sorted by name. Lines that do not parse
/// (a tmux too old for a field, say) are skipped rather than guessed at.
pub fn parse_sessions(
    text: &str,
    shed: &str,
    server: &str,
    now: DateTime<Utc>,
) -> Vec<SessionInfo> {
    let mut sessions: Vec<SessionInfo> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.splitn(10, SEP).collect();
            if f.len() != 10 {
                return None;
            }
            let time = |s: &str| {
                s.parse::<i64>()
                    .ok()
                    .and_then(|t| DateTime::from_timestamp(t, 0))
            };
            let created_at = time(f[1])?;
            let session_activity = time(f[2])?;
            // window_activity moves on output, session_activity on input.
            let output_activity = time(f[3]).unwrap_or(session_activity);
            let last_activity = session_activity.max(output_activity);
            let attached: u32 = f[4].parse().ok()?;
            let status = SessionStatus::of(attached, output_activity, now);
            Some(SessionInfo {
                name: f[0].to_string(),
                shed: shed.to_string(),
                server: server.to_string(),
                created_at,
                last_activity,
                idle_seconds: (now - last_activity).num_seconds().max(0) as u64,
                attached,
                windows: f[5].parse().ok()?,
                current_command: f[6].to_string(),
                cwd: f[9].to_string(),
                status,
                exited: f[7] == "1",
                exit_status: (f[7] == "1").then(|| f[8].parse().ok()).flatten(),
                source: crate::api::SessionSource::Exec,
                agent: Default::default(),
            })
        })
        .collect();
    sessions.sort_by(|a, b| a.name.cmp(&b.name));
    sessions
}

/// `text` as one tmux argument that tmux passes on unchanged.
///
/// tmux's argv parser (`cmd_parse_from_arguments`, 3.3a) takes an argument
/// ending in `;` as a command separator and strips the `;`, and turns a
/// trailing `\;` into `;`. A backslash before the final `;` makes both come
/// back as given: `a;` is sent as `a\;`, `a\;` as `a\\;`.
pub fn literal_arg(text: &str) -> String {
    match text.strip_suffix(';') {
        Some(head) => format!("{head}\\;"),
        None => text.to_string(),
    }
}

/// `text` as a tmux argument that tmux also expands as a format (such as
/// `new-session -c`), so `#{...}` and `#(...)` stay text instead of becoming
/// a lookup or a shell command. tmux 3.3a reads `##` as `#`, except in a run
/// of `#` followed by `[` (a style), which it leaves alone: such runs are kept,
/// every other `#` is doubled.
pub fn literal_format_arg(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut hashes = 0;
    for c in text.chars() {
        if c == '#' {
            hashes += 1;
            continue;
        }
        let run = if c == '[' { hashes } else { 2 * hashes };
        out.extend(std::iter::repeat_n('#', run));
        hashes = 0;
        out.push(c);
    }
    out.extend(std::iter::repeat_n('#', 2 * hashes));
    literal_arg(&out)
}

/// How a failed tmux command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TmuxFailure {
    /// The image has no tmux binary.
    NotInstalled,
    /// No tmux server runs (so there are no sessions).
    NoServer,
    /// The target session does not exist.
    NoSuchSession,
    /// `new-session` found the name taken.
    Duplicate,
    /// Anything else.
    Other,
}

/// Classifies a tmux failure from its exit code and output.
pub fn classify(exit_code: i64, output: &str) -> TmuxFailure {
    if matches!(exit_code, 126 | 127)
        && (output.contains("executable file not found") || output.contains("not found"))
    {
        return TmuxFailure::NotInstalled;
    }
    if output.contains("no server running") || output.contains("error connecting to") {
        TmuxFailure::NoServer
    } else if output.contains("can't find session")
        || output.contains("can't find pane")
        || output.contains("can't find window")
    {
        TmuxFailure::NoSuchSession
    } else if output.contains("duplicate session") {
        TmuxFailure::Duplicate
    } else {
        TmuxFailure::Other
    }
}

/// The last `lines` lines of captured pane text, without the blank rows
/// below the cursor that capture-pane pads the screen with.
pub fn last_lines(captured: &str, lines: usize) -> String {
    let all: Vec<&str> = captured.trim_end_matches(['\n', ' ']).lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(fields: &[&str]) -> String {
        fields.join(&SEP.to_string())
    }

    #[test]
    fn literal_args_protect_a_trailing_semicolon() {
        assert_eq!(literal_arg("a"), "a");
        assert_eq!(literal_arg("a;b"), "a;b");
        assert_eq!(literal_arg(";"), "\\;");
        assert_eq!(literal_arg("end;"), "end\\;");
        assert_eq!(literal_arg("end\\;"), "end\\\\;");
        assert_eq!(literal_format_arg("/#{x}#(y);"), "/##{x}##(y)\\;");
        assert_eq!(literal_format_arg("a#[b##[c#"), "a#[b##[c##");
    }

    #[test]
    fn targets_are_exact() {
        assert_eq!(session_target("debug"), "=debug");
        assert_eq!(pane_target("debug"), "=debug:");
    }

    #[test]
    fn parses_and_sorts_sessions() {
        let now = DateTime::from_timestamp(1_000_100, 0).unwrap();
        let text = [
            line(&[
                "zeta",
                "1000000",
                "1000000",
                "1000095",
                "0",
                "2",
                "claude",
                "0",
                "",
                "/workspace/my|dir",
            ]),
            line(&[
                "alpha",
                "1000000",
                "1000050",
                "1000010",
                "1",
                "1",
                "bash",
                "0",
                "",
                "/workspace",
            ]),
            line(&[
                "idle", "1000000", "1000000", "1000000", "0", "1", "bash", "1", "127", "/",
            ]),
            "garbage".to_string(),
        ]
        .join("\n");
        let sessions = parse_sessions(&text, "s", "srv", now);
        let names: Vec<&str> = sessions.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["alpha", "idle", "zeta"]);
        assert_eq!(sessions[0].status, SessionStatus::Attached);
        assert_eq!(sessions[0].idle_seconds, 50);
        assert_eq!(sessions[1].status, SessionStatus::Idle);
        assert_eq!(sessions[1].idle_seconds, 100);
        assert!(sessions[1].exited && !sessions[0].exited && !sessions[2].exited);
        assert_eq!(sessions[1].exit_status, Some(127));
        assert_eq!(sessions[0].exit_status, None);
        assert_eq!(sessions[2].status, SessionStatus::Active);
        assert_eq!(sessions[2].current_command, "claude");
        assert_eq!(sessions[2].cwd, "/workspace/my|dir");
        assert_eq!(sessions[2].windows, 2);
    }

    #[test]
    fn classifies_failures() {
        assert_eq!(
            classify(126, "exec: \"tmux\": executable file not found in $PATH"),
            TmuxFailure::NotInstalled
        );
        assert_eq!(
            classify(1, "no server running on /tmp/tmux-0/default"),
            TmuxFailure::NoServer
        );
        assert_eq!(
            classify(
                1,
                "error connecting to /tmp/tmux-0/default (No such file or directory)"
            ),
            TmuxFailure::NoServer
        );
        assert_eq!(
            classify(1, "can't find session: debug"),
            TmuxFailure::NoSuchSession
        );
        assert_eq!(classify(1, "duplicate session: x"), TmuxFailure::Duplicate);
        assert_eq!(classify(1, "something odd"), TmuxFailure::Other);
    }

    #[test]
    fn last_lines_trims_padding() {
        assert_eq!(last_lines("a\nb\nc  \n\n\n", 2), "b\nc");
        assert_eq!(last_lines("a\n", 10), "a");
        assert_eq!(last_lines("", 3), "");
    }
}
