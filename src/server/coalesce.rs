//! Single-flight: concurrent identical reads share one execution.
//!
//! Listing a shed's sessions costs a `docker exec`, and dockerd serialises
//! much of exec handling, so a hundred clients asking at once would queue a
//! hundred execs and time out. With single-flight they all await the one
//! that is already running and get its answer, which is as fresh as any of
//! them could have had.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::{BoxFuture, FutureExt, Shared};

/// Shares in-flight computations of `V` by key.
pub struct SingleFlight<V: Clone> {
    inflight: Mutex<HashMap<String, Shared<BoxFuture<'static, V>>>>,
}

impl<V: Clone> Default for SingleFlight<V> {
    fn default() -> Self {
        SingleFlight {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> SingleFlight<V> {
    /// Joins the computation running for `key`, or starts one with `start`.
    pub async fn run(&self, key: String, start: impl FnOnce() -> BoxFuture<'static, V>) -> V {
        let shared = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            inflight
                .entry(key.clone())
                .or_insert_with(|| start().shared())
                .clone()
        };
        let value = shared.clone().await;
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        // Only the finished computation leaves; a newer one for the key stays.
        if inflight.get(&key).is_some_and(|f| f.ptr_eq(&shared)) {
            inflight.remove(&key);
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_calls_share_one_run_and_later_calls_run_again() {
        let flight = Arc::new(SingleFlight::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let call = |flight: Arc<SingleFlight<usize>>, runs: Arc<AtomicUsize>| async move {
            flight
                .run("k".into(), move || {
                    async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        runs.fetch_add(1, Ordering::SeqCst) + 1
                    }
                    .boxed()
                })
                .await
        };
        let results =
            futures_util::future::join_all((0..20).map(|_| call(flight.clone(), runs.clone())))
                .await;
        assert!(results.iter().all(|r| *r == 1), "{results:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(call(flight.clone(), runs.clone()).await, 2);
        assert!(flight.inflight.lock().unwrap().is_empty());
    }
}
