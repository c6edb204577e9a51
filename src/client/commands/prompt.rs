//! Talking to the person at the terminal: confirmations and the spinner.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;

/// Whether someone is at a terminal to answer a question: prompts go to
/// stderr and answers come from stdin, so both must be terminals.
pub(super) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks `prompt` on stderr; true only for an explicit yes.
pub(super) fn confirm(prompt: &str) -> anyhow::Result<bool> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// A spinner on stderr while a slow call runs; silent when stderr is not a terminal.
pub(super) struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    /// Starts spinning with `message`.
    pub(super) fn start(message: String) -> Spinner {
        if !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(bar))
    }

    /// Stops and erases the spinner.
    pub(super) fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}
