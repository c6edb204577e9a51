//! Session snapshots (issue 13): every session of a shed saved in a
//! versioned JSON file on its workspace volume, and recreated when the shed
//! runs without them. One file per concern: [`format`] (the file and its
//! bounds), [`store`] (the atomic write and the "never shrink" rule),
//! [`capture`] (reading tmux), [`restore`] (the commands that recreate),
//! [`autosave`] (when saves and restores happen). The Docker side lives in
//! `server::docker::snapshots`.

pub mod autosave;
pub mod capture;
pub mod format;
pub mod restore;
pub mod store;

/// Lines of tmux history kept above `snapshot_history_lines`: room for the
/// restored history's marker lines and the screen under it.
pub const HISTORY_LIMIT_ROOM: usize = 500;

/// The tmux command that raises the global `history-limit` so that a pane
/// made after it keeps the `lines` lines a snapshot saves (tmux keeps 2000
/// by default and fixes a pane's limit when the pane is made). A larger
/// value, the user's, is left alone. `None` when no history is saved.
///
/// `#{e|<:...}` compares numbers (tmux 3.2's format operators; checked
/// against 3.3a), and `-F` runs no shell, so the command runs at once, in
/// order with what follows it in the same command list.
pub fn history_limit_command(lines: usize) -> Option<Vec<String>> {
    if lines == 0 {
        return None;
    }
    let limit = lines + HISTORY_LIMIT_ROOM;
    Some(vec![
        "if-shell".into(),
        "-F".into(),
        format!("#{{e|<:#{{history-limit}},{limit}}}"),
        format!("set-option -g history-limit {limit}"),
    ])
}

/// Why a save or restore is made, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveReason {
    /// Sessions, windows or panes changed.
    Change,
    /// Periodic, for the panes' history.
    Periodic,
    /// The shed is about to stop (or be deleted keeping its volume).
    Stop,
    /// A session was killed through the API.
    Kill,
}

impl SaveReason {
    /// A word for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            SaveReason::Change => "change",
            SaveReason::Periodic => "periodic",
            SaveReason::Stop => "stop",
            SaveReason::Kill => "kill",
        }
    }
}
