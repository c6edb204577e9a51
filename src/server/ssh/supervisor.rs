//! Keeps the gateway's accept loop running: restarts it, with backoff, when
//! it returns or panics, and tells `/api/health` whether it is up.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// First wait before restarting a gateway that stopped.
pub const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between restarts.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A run this long counts as healthy: the next failure waits the minimum again.
pub const RESTART_BACKOFF_RESET: Duration = Duration::from_secs(60);

/// Whether the SSH gateway is serving, shared with the health endpoint.
#[derive(Debug, Clone, Default)]
pub struct GatewayHealth {
    up: Arc<AtomicBool>,
    restarts: Arc<AtomicU64>,
}

impl GatewayHealth {
    /// A handle that reports the gateway up (for routers built without one).
    pub fn up() -> GatewayHealth {
        let health = GatewayHealth::default();
        health.up.store(true, Ordering::SeqCst);
        health
    }

    /// Whether the accept loop is running.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// How often the gateway has been started again (after it stopped, or
    /// after it could not start).
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

/// Delays between restarts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
    /// A run at least this long resets the delay to `min`.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: RESTART_BACKOFF_MIN,
            max: RESTART_BACKOFF_MAX,
            reset_after: RESTART_BACKOFF_RESET,
        }
    }
}

/// Keeps a service running, for ever: `start()` prepares it (binding its
/// socket, say) and returns the future that serves, which runs as its own
/// task. Whenever preparing fails, or the task returns or panics, marks
/// `health` down, waits, and starts it again; `health` is up only while a
/// prepared task runs.
pub async fn supervise<F, Fut, E>(health: GatewayHealth, backoff: Backoff, mut start: F)
where
    F: FnMut() -> Result<Fut, E>,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut delay = backoff.min;
    loop {
        let started = tokio::time::Instant::now();
        match start() {
            Ok(serving) => {
                let task = tokio::spawn(serving);
                health.set(true);
                let outcome = task.await;
                health.set(false);
                match outcome {
                    Ok(Ok(())) => tracing::error!("the SSH gateway stopped; restarting it"),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "the SSH gateway failed; restarting it")
                    }
                    Err(e) if e.is_panic() => {
                        tracing::error!("the SSH gateway panicked; restarting it")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the SSH gateway was cancelled; restarting it")
                    }
                }
            }
            Err(e) => {
                health.set(false);
                tracing::error!(error = %e, retry_in = ?delay, "the SSH gateway cannot start; retrying");
            }
        }
        if started.elapsed() >= backoff.reset_after {
            delay = backoff.min;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(backoff.max);
        health.restarts.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn quick() -> Backoff {
        Backoff {
            min: Duration::from_millis(1),
            max: Duration::from_millis(5),
            reset_after: Duration::from_secs(60),
        }
    }

    async fn until(what: impl Fn() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if what() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        what()
    }

    #[tokio::test]
    async fn a_failing_or_panicking_gateway_is_restarted() {
        let health = GatewayHealth::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let supervisor = tokio::spawn(supervise(health.clone(), quick(), move || {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            Ok(async move {
                match run {
                    0 => Err("accept failed".to_string()),
                    1 => panic!("gateway bug"),
                    2 => Ok(()),
                    _ => std::future::pending().await,
                }
            })
        }));
        assert!(until(|| runs.load(Ordering::SeqCst) == 4).await);
        assert!(until(|| health.is_up()).await);
        assert_eq!(health.restarts(), 3);
        supervisor.abort();
    }

    #[tokio::test]
    async fn health_says_down_while_the_gateway_waits_to_restart() {
        let health = GatewayHealth::up();
        let slow = Backoff {
            min: Duration::from_secs(3600),
            ..quick()
        };
        let supervisor = tokio::spawn(supervise(health.clone(), slow, || {
            Ok(async { Err::<(), _>("accept failed") })
        }));
        assert!(until(|| !health.is_up()).await);
        assert_eq!(health.restarts(), 0);
        supervisor.abort();
    }

    #[tokio::test]
    async fn a_gateway_that_cannot_start_is_down_until_it_can() {
        // Up from the start, as the server reports a gateway bound at start.
        let health = GatewayHealth::up();
        let tries = Arc::new(AtomicUsize::new(0));
        let counter = tries.clone();
        let slow_first = Backoff {
            min: Duration::from_millis(200),
            ..quick()
        };
        let supervisor = tokio::spawn(supervise(health.clone(), slow_first, move || match counter
            .fetch_add(1, Ordering::SeqCst)
        {
            0 | 1 => Err("address in use"),
            _ => Ok(std::future::pending()),
        }));
        assert!(until(|| !health.is_up()).await, "up while it cannot start");
        assert!(until(|| tries.load(Ordering::SeqCst) == 3).await);
        assert!(until(|| health.is_up()).await);
        assert_eq!(health.restarts(), 2);
        supervisor.abort();
    }
}
