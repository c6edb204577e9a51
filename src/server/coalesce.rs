//! Single-flight: concurrent identical reads share one execution.
//!
//! Listing a shed's sessions costs a `docker exec`, and dockerd serialises
//! much of exec handling, so a hundred clients asking at once would queue a
//! hundred execs and time out. With single-flight they all await the one
//! that is already running and get its answer, which is as fresh as any of
//! them could have had.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};

/// One computation in flight: its generation (so a finished run removes
/// only itself) and the shared answer.
type Entry<V> = (u64, Shared<BoxFuture<'static, V>>);

/// Shares in-flight computations of `V` by key.
///
/// Each computation runs as its own task: it finishes, and leaves the map,
/// even when every caller waiting for it has gone (a client hung up, a
/// timeout fired). Otherwise an undriven future would keep its Docker
/// connection open and hand its stale answer to the next caller.
pub struct SingleFlight<V: Clone> {
    inflight: Arc<Mutex<HashMap<String, Entry<V>>>>,
    generation: AtomicU64,
    /// The answer when the computation's task panicked.
    on_panic: fn(String) -> V,
}

impl<V: Clone + Default + Send + Sync + 'static> Default for SingleFlight<V> {
    fn default() -> Self {
        SingleFlight::new(|_| V::default())
    }
}

impl<V: Clone + Send + Sync + 'static> SingleFlight<V> {
    /// An empty set; `on_panic` turns a panic message into the answer.
    pub fn new(on_panic: fn(String) -> V) -> Self {
        SingleFlight {
            inflight: Arc::new(Mutex::new(HashMap::new())),
            generation: AtomicU64::new(0),
            on_panic,
        }
    }

    /// Joins the computation running for `key`, or starts one with `start`.
    pub async fn run(&self, key: String, start: impl FnOnce() -> BoxFuture<'static, V>) -> V {
        let shared = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(&key) {
                Some((_, shared)) => shared.clone(),
                None => {
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                    let work = start();
                    let map = Arc::clone(&self.inflight);
                    let owned_key = key.clone();
                    let task = tokio::spawn(async move {
                        let value = work.await;
                        let mut inflight = map.lock().unwrap_or_else(|e| e.into_inner());
                        // Only this run leaves; a newer one for the key stays.
                        if inflight
                            .get(&owned_key)
                            .is_some_and(|(g, _)| *g == generation)
                        {
                            inflight.remove(&owned_key);
                        }
                        value
                    });
                    let on_panic = self.on_panic;
                    let shared = async move {
                        task.await
                            .unwrap_or_else(|e| on_panic(format!("coalesced work failed: {e}")))
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key, (generation, shared.clone()));
                    shared
                }
            }
        };
        shared.await
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

    #[tokio::test]
    async fn work_finishes_and_leaves_the_map_when_every_waiter_is_gone() {
        let flight = Arc::new(SingleFlight::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let counter = runs.clone();
        let waiter = {
            let flight = flight.clone();
            tokio::spawn(async move {
                flight
                    .run("k".into(), move || {
                        async move {
                            let _ = released.await;
                            counter.fetch_add(1, Ordering::SeqCst) + 1
                        }
                        .boxed()
                    })
                    .await
            })
        };
        // The only waiter leaves while the work is still under way.
        while flight.inflight.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        release.send(()).unwrap();
        // The work still runs to its end and takes its entry away with it.
        let mut finished = false;
        for _ in 0..1000 {
            if runs.load(Ordering::SeqCst) == 1 && flight.inflight.lock().unwrap().is_empty() {
                finished = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(finished, "the abandoned work was never driven to its end");
        // So the next caller starts afresh rather than joining a stale run.
        let next = flight.run("k".into(), || async { 42 }.boxed()).await;
        assert_eq!(next, 42);
    }
}
