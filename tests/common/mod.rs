//! Shared helpers for integration tests, one file per concern; test files
//! keep `use common::*;`.
// Each test binary uses a different part of these helpers.
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod browser;
mod cli;
mod events;
pub mod fake_api;
mod hostile_text;
pub mod http;
mod image;
pub mod receiver;
mod server;
mod sheds;
mod ssh;
mod tmux;
mod ui;

pub use cli::*;
pub use events::*;
pub use hostile_text::*;
pub use image::*;
pub use server::*;
pub use sheds::*;
pub use ssh::*;
pub use tmux::*;
pub use ui::*;

/// The crate's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A prefix no other test (or test run) uses.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("st{}x{n}x{:x}", std::process::id(), nanos % 0xfffff)
}

/// Stdout and stderr of an output, as text.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `check` holds or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls the async `probe` until it reports done or `limit` passes; returns
/// whether it got there, and the last value it produced.
pub async fn eventually<T, F, Fut>(limit: Duration, mut probe: F) -> (bool, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, T)>,
{
    let deadline = Instant::now() + limit;
    loop {
        let (done, value) = probe().await;
        if done || Instant::now() >= deadline {
            return (done, value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
