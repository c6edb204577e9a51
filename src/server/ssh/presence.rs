//! Which sheds have an SSH gateway connection open, so that auto-stop never
//! stops a shed someone is logged in to (an `ssh NAME@host` shell is a
//! plain exec, not a tmux client, so the sessions alone do not show it).
//!
//! Bounded: a shed has an entry only while at least one authenticated
//! connection to it is open, so at most `ssh_max_connections` entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Open authenticated connections per shed.
#[derive(Default)]
pub struct Presence {
    open: Mutex<HashMap<String, usize>>,
}

impl Presence {
    /// An empty registry.
    pub fn new() -> Arc<Presence> {
        Arc::default()
    }

    /// Counts a connection to `shed` until the guard is dropped.
    pub fn enter(self: &Arc<Self>, shed: &str) -> PresenceGuard {
        *self.lock().entry(shed.to_string()).or_default() += 1;
        PresenceGuard {
            presence: self.clone(),
            shed: shed.to_string(),
        }
    }

    /// How many connections to `shed` are open.
    pub fn open(&self, shed: &str) -> usize {
        self.lock().get(shed).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One open connection to a shed; dropping it (the connection ended) uncounts it.
pub struct PresenceGuard {
    presence: Arc<Presence>,
    shed: String,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let mut open = self.presence.lock();
        if let Some(n) = open.get_mut(&self.shed) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.shed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_while_open_and_forgotten_after() {
        let p = Presence::new();
        let a = p.enter("box");
        let b = p.enter("box");
        assert_eq!(p.open("box"), 2);
        assert_eq!(p.open("other"), 0);
        drop(a);
        assert_eq!(p.open("box"), 1);
        drop(b);
        assert_eq!(p.open("box"), 0);
        assert!(p.lock().is_empty());
    }
}
