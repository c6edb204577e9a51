//! The snapshot file: parsing with bounds (the agent inside a shed may
//! have written it), serialising within [`MAX_SNAPSHOT_BYTES`], and the
//! default restore policy.

use std::collections::HashSet;

use thiserror::Error;

use crate::api::snapshot::{RestorePolicy, SavedSession, Snapshot, SNAPSHOT_VERSION};
use crate::api::validate_session_name;
use crate::server::agent::rules::Rules;

/// Largest snapshot file read or written.
pub const MAX_SNAPSHOT_BYTES: usize = 8 * 1024 * 1024;
/// Most sessions in one snapshot.
pub const MAX_SESSIONS: usize = crate::server::control::model::MAX_SESSIONS;
/// Most windows of one saved session.
pub const MAX_WINDOWS: usize = 128;
/// Most panes in one snapshot, over all its sessions.
pub const MAX_PANES: usize = crate::server::control::model::MAX_PANES;
/// Longest short text: a window name, a cwd, a layout, a resume id, an env name.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest command line or env value.
pub const MAX_LONG_TEXT_BYTES: usize = 64 * 1024;
/// Most env entries of one session.
pub const MAX_ENV: usize = 256;
/// Most history bytes kept per pane (the tail).
pub const MAX_PANE_HISTORY_BYTES: usize = 512 * 1024;

/// Why a snapshot file was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    /// Larger than [`MAX_SNAPSHOT_BYTES`].
    #[error("snapshot is larger than {MAX_SNAPSHOT_BYTES} bytes")]
    TooLarge,
    /// Not JSON of the snapshot's shape.
    #[error("snapshot is not valid: {0}")]
    Invalid(String),
    /// Written by a newer server.
    #[error("snapshot version {0} is newer than this server's ({SNAPSHOT_VERSION})")]
    NewerVersion(u32),
    /// A value is out of bounds or malformed.
    #[error("snapshot refused: {0}")]
    Bad(String),
}

/// Parses and checks a snapshot file.
pub fn parse(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    if bytes.len() > MAX_SNAPSHOT_BYTES {
        return Err(FormatError::TooLarge);
    }
    // The version first, so a newer file is named as such rather than as
    // invalid when its shape changed.
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned =
        serde_json::from_slice(bytes).map_err(|e| FormatError::Invalid(short(&e.to_string())))?;
    if versioned.version > SNAPSHOT_VERSION {
        return Err(FormatError::NewerVersion(versioned.version));
    }
    if versioned.version == 0 {
        return Err(FormatError::Bad("version 0".into()));
    }
    let snapshot: Snapshot =
        serde_json::from_slice(bytes).map_err(|e| FormatError::Invalid(short(&e.to_string())))?;
    check(&snapshot)?;
    Ok(snapshot)
}

/// Checks every bound and rule a snapshot must keep.
pub fn check(snapshot: &Snapshot) -> Result<(), FormatError> {
    let bad = |m: String| Err(FormatError::Bad(m));
    if snapshot.sessions.len() > MAX_SESSIONS {
        return bad(format!("more than {MAX_SESSIONS} sessions"));
    }
    text("run", &snapshot.run, MAX_TEXT_BYTES)?;
    if let Some(r) = &snapshot.restored_for {
        text("restored_for", r, MAX_TEXT_BYTES)?;
    }
    let mut names = HashSet::new();
    let mut panes = 0usize;
    for session in &snapshot.sessions {
        if !names.insert(session.name.as_str()) {
            return bad(format!("session {:?} appears twice", session.name));
        }
        panes += check_session(session)?;
        if panes > MAX_PANES {
            return bad(format!("more than {MAX_PANES} panes"));
        }
    }
    Ok(())
}

/// Checks one session's bounds; its pane count.
pub fn check_session(session: &SavedSession) -> Result<usize, FormatError> {
    let bad = |m: String| Err(FormatError::Bad(m));
    let mut panes = 0usize;
    if validate_session_name(&session.name).is_err()
        || crate::server::control::is_reserved(&session.name)
    {
        return bad(format!("invalid session name {:?}", clip(&session.name)));
    }
    if let Some(command) = &session.command {
        text("command", command, MAX_LONG_TEXT_BYTES)?;
    }
    if session.env.len() > MAX_ENV {
        return bad(format!("more than {MAX_ENV} env entries"));
    }
    for (key, value) in &session.env {
        if !is_env_name(key) {
            return bad(format!("invalid env name {:?}", clip(key)));
        }
        text("env value", value, MAX_LONG_TEXT_BYTES)?;
    }
    if session.windows.is_empty() || session.windows.len() > MAX_WINDOWS {
        return bad(format!(
            "session {:?} has {} windows (1 to {MAX_WINDOWS})",
            session.name,
            session.windows.len()
        ));
    }
    for window in &session.windows {
        text("window name", &window.name, MAX_TEXT_BYTES)?;
        text("layout", &window.layout, MAX_TEXT_BYTES)?;
        if !layout_ok(&window.layout) {
            return bad("malformed window layout".into());
        }
        if window.panes.is_empty() {
            return bad(format!("a window of {:?} has no panes", session.name));
        }
        for pane in &window.panes {
            panes += 1;
            text("cwd", &pane.cwd, MAX_TEXT_BYTES)?;
            if !pane.cwd.starts_with('/') {
                return bad("a pane's cwd is not absolute".into());
            }
            if let Some(id) = &pane.resume_id {
                text("resume id", id, MAX_TEXT_BYTES)?;
            }
            if pane.history.len() > MAX_PANE_HISTORY_BYTES {
                return bad(format!(
                    "a pane's history is over {MAX_PANE_HISTORY_BYTES} bytes"
                ));
            }
        }
    }
    Ok(panes)
}

/// The file's bytes, within [`MAX_SNAPSHOT_BYTES`]: while it is too large,
/// every pane's history is cut to (the tail of) half the longest one.
pub fn to_bytes(snapshot: &mut Snapshot) -> Vec<u8> {
    loop {
        let bytes = serde_json::to_vec(snapshot).unwrap_or_default();
        if bytes.len() <= MAX_SNAPSHOT_BYTES {
            return bytes;
        }
        let panes = snapshot
            .sessions
            .iter_mut()
            .flat_map(|s| s.windows.iter_mut())
            .flat_map(|w| w.panes.iter_mut());
        let longest = panes.map(|p| p.history.len()).max().unwrap_or(0);
        if longest == 0 {
            // Nothing left to cut; the bounds on everything else keep this
            // from happening with a checked snapshot.
            return bytes;
        }
        let cap = longest / 2;
        for pane in snapshot
            .sessions
            .iter_mut()
            .flat_map(|s| s.windows.iter_mut())
            .flat_map(|w| w.panes.iter_mut())
        {
            if pane.history.len() > cap {
                pane.history = tail(&pane.history, cap).to_string();
            }
        }
    }
}

/// The policy a session gets when its create named none: an agent is
/// resumed, another command asked about, a plain shell is a shell.
pub fn default_policy(command: Option<&str>, rules: &Rules) -> RestorePolicy {
    match command {
        None => RestorePolicy::Shell,
        Some(c) if rules.kind_of(c).is_some() => RestorePolicy::Resume,
        Some(_) => RestorePolicy::Ask,
    }
}

/// Panes over all sessions.
pub fn pane_count(sessions: &[SavedSession]) -> usize {
    sessions
        .iter()
        .flat_map(|s| &s.windows)
        .map(|w| w.panes.len())
        .sum()
}

/// The last `max` bytes of `s`, starting on a character boundary.
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Whether `layout` has only the characters of a tmux layout string.
pub fn layout_ok(layout: &str) -> bool {
    layout.len() <= MAX_TEXT_BYTES
        && layout
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b",x{}[]".contains(&b))
}

/// The first `max` bytes of `s`, ending on a character boundary.
pub fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `key` is a shell variable name (the create API's rule).
pub fn is_env_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 256
        && !key.as_bytes()[0].is_ascii_digit()
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn text(what: &str, value: &str, max: usize) -> Result<(), FormatError> {
    if value.len() > max {
        return Err(FormatError::Bad(format!("a {what} is over {max} bytes")));
    }
    if value.contains('\0') {
        return Err(FormatError::Bad(format!("a {what} contains NUL")));
    }
    Ok(())
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Fixtures for this module's tests and its neighbours'.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::api::snapshot::{SavedPane, SavedWindow};

    /// A one-session snapshot with two panes.
    pub(crate) fn sample() -> Snapshot {
        let pane = |i, history: &str| SavedPane {
            index: i,
            cwd: "/workspace".into(),
            active: i == 0,
            agent: None,
            resume_id: None,
            history: history.into(),
        };
        Snapshot {
            version: SNAPSHOT_VERSION,
            saved_at: chrono::Utc::now(),
            run: "2026-01-01T00:00:00Z".into(),
            restored_for: None,
            sessions: vec![SavedSession {
                name: "main".into(),
                command: Some("make test".into()),
                env: [("A".to_string(), "b c".to_string())].into(),
                restore: RestorePolicy::Ask,
                windows: vec![SavedWindow {
                    index: 0,
                    name: "w".into(),
                    layout: "b25d,80x24,0,0{40x24,0,0,1,39x24,41,0,2}".into(),
                    width: 80,
                    height: 24,
                    active: true,
                    panes: vec![pane(0, "one\ntwo"), pane(1, "")],
                }],
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sample;
    use super::*;

    #[test]
    fn a_snapshot_survives_the_round_trip() {
        let mut snapshot = sample();
        let bytes = to_bytes(&mut snapshot);
        assert_eq!(parse(&bytes).unwrap(), snapshot);
    }

    #[test]
    fn corrupt_and_hostile_files_are_refused_not_trusted() {
        assert!(matches!(parse(b""), Err(FormatError::Invalid(_))));
        assert!(matches!(
            parse(b"{\"version\":1"),
            Err(FormatError::Invalid(_))
        ));
        assert!(matches!(parse(b"\0\0\0"), Err(FormatError::Invalid(_))));
        let big = vec![b' '; MAX_SNAPSHOT_BYTES + 1];
        assert_eq!(parse(&big), Err(FormatError::TooLarge));
        let newer = br#"{"version": 99, "whatever": []}"#;
        assert_eq!(parse(newer), Err(FormatError::NewerVersion(99)));

        let refused = |edit: &dyn Fn(&mut Snapshot)| {
            let mut s = sample();
            edit(&mut s);
            let bytes = serde_json::to_vec(&s).unwrap();
            matches!(parse(&bytes), Err(FormatError::Bad(_)))
        };
        assert!(refused(&|s| s.sessions[0].name = "a b".into()));
        assert!(refused(&|s| s.sessions[0].name = "-x".into()));
        assert!(refused(&|s| s.sessions.push(s.sessions[0].clone())));
        assert!(refused(&|s| {
            s.sessions[0].env.insert("A=B".into(), "x".into());
        }));
        assert!(refused(
            &|s| s.sessions[0].windows[0].panes[0].cwd = "rel".into()
        ));
        assert!(refused(
            &|s| s.sessions[0].windows[0].layout = "1,2;rm".into()
        ));
        assert!(refused(&|s| s.sessions[0].windows.clear()));
        assert!(refused(&|s| s.sessions[0].command = Some("a\0b".into())));
        assert!(refused(&|s| {
            s.sessions[0].windows[0].panes[0].history = "x".repeat(MAX_PANE_HISTORY_BYTES + 1)
        }));
        assert!(refused(&|s| {
            let one = s.sessions[0].clone();
            s.sessions = (0..=MAX_SESSIONS)
                .map(|i| SavedSession {
                    name: format!("s{i}"),
                    ..one.clone()
                })
                .collect();
        }));
    }

    #[test]
    fn an_oversized_snapshot_loses_history_not_sessions() {
        let mut s = sample();
        let window = s.sessions[0].windows[0].clone();
        s.sessions[0].windows = (0..40)
            .map(|i| {
                let mut w = window.clone();
                w.index = i;
                for p in &mut w.panes {
                    p.history = "h".repeat(MAX_PANE_HISTORY_BYTES);
                }
                w
            })
            .collect();
        let bytes = to_bytes(&mut s);
        assert!(bytes.len() <= MAX_SNAPSHOT_BYTES);
        let back = parse(&bytes).unwrap();
        assert_eq!(back.sessions[0].windows.len(), 40);
    }

    #[test]
    fn default_policies() {
        let rules = Rules::builtin();
        assert_eq!(default_policy(None, &rules), RestorePolicy::Shell);
        assert_eq!(default_policy(Some("make"), &rules), RestorePolicy::Ask);
        assert_eq!(
            default_policy(Some("/opt/x/claude --foo"), &rules),
            RestorePolicy::Resume
        );
    }
}
