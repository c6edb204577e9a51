//! The tmux control-mode engine: one long-lived `tmux -C` client per
//! running shed, replacing one `docker exec tmux ...` per session read.
//!
//! # How the pieces fit
//!
//! - [`protocol`] splits tmux's output into bounded lines and parses them
//!   into events: command replies framed by `%begin`/`%end`/`%error`,
//!   subscription values, session notifications, `%exit`. Pane output is
//!   recognised and dropped (the client also asks for none).
//! - [`quote`] writes commands in tmux's command syntax so every argument
//!   comes back byte for byte; input goes as hex (`send-keys -H`).
//! - [`model`] builds the one subscription format over every session,
//!   window and pane, parses its values into a [`model::Model`], turns a
//!   model into the API's `SessionInfo`s with the exec path's status rules,
//!   and diffs two models into created / closed / changed events.
//! - [`client`] drives one control client over any reader/writer pair:
//!   waits until attached, matches replies to commands in order, keeps the
//!   latest model in a `watch` channel, and closes on `%exit`, EOF, an I/O
//!   error or a command timeout.
//!
//! # Wiring into the Docker backend (next step)
//!
//! One channel per running shed: a Docker exec of
//! `tmux` + [`client::attach_args`] (attached stdin/stdout, no tty, as the
//! same container user as every other exec), adapted to `AsyncRead` with
//! `tokio_util::io::StreamReader` over the exec's output stream and passed
//! with its input to [`client::ControlClient::start`], then
//! [`client::ControlClient::subscribe`]. Opened when a shed starts, when
//! Docker events report a start, and on demand at the first session request;
//! closed when the shed stops. On close ([`client::ControlClient::closed`])
//! it reconnects after [`Backoff`] delays. While no channel is open (tmux
//! older than 3.2 refuses the subscription, the exec fails, a reconnect
//! gap), the exec path serves requests as today; a tmux that vanished (a
//! user's `kill-server`) lists as empty there, not as an error. Reads come
//! from the model; a read right after a write uses
//! [`client::ControlClient::snapshot`]; `/api/events` is fed by
//! [`model::Model::diff`] over successive models.
//!
//! # Bounds
//!
//! Lines: [`protocol::MAX_LINE_BYTES`]; reply bodies:
//! [`protocol::MAX_REPLY_LINES`] / [`protocol::MAX_REPLY_BYTES`]; the
//! model: [`model::MAX_SESSIONS`], [`model::MAX_PANES`],
//! [`model::MAX_VALUE_BYTES`], [`model::MAX_OPTIONS`]; commands:
//! [`quote::MAX_COMMAND_LINE`], [`client::REQUEST_QUEUE`] waiting,
//! [`client::MAX_IN_FLIGHT`] unanswered, [`client::COMMAND_TIMEOUT`] each;
//! notifications: [`client::NOTIFICATION_QUEUE`], dropped beyond it.

pub mod client;
pub mod model;
pub mod protocol;
pub mod quote;

use std::time::Duration;

/// The hidden session the control client attaches to. Session names from
/// the API start with a letter or digit, so it can never be created there;
/// the model leaves it out and the client refuses to create or kill it.
pub const CONTROL_SESSION: &str = "_shed";

/// Whether `name` is reserved for the control client.
pub fn is_reserved(name: &str) -> bool {
    name == CONTROL_SESSION
}

/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);

/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Doubling reconnect delays between [`BACKOFF_MIN`] and [`BACKOFF_MAX`].
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// Starts at [`BACKOFF_MIN`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }

    /// Back to [`BACKOFF_MIN`], after a connection that worked.
    pub fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets() {
        let mut b = Backoff::new();
        assert_eq!(b.next_delay(), BACKOFF_MIN);
        assert_eq!(b.next_delay(), BACKOFF_MIN * 2);
        for _ in 0..20 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), BACKOFF_MAX);
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_MIN);
        assert!(is_reserved("_shed") && !is_reserved("shed"));
    }
}
