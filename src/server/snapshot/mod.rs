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
