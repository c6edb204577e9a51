//! The HTTP accept loop: axum's router behind hyper, with a header-read
//! timeout, an idle timeout and a connection cap, so that slow or idle
//! clients cannot crowd out the rest, optionally under TLS.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::server::config::ServerConfig;

/// Pause after a failed accept (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// How long shutdown waits for in-flight requests (and streams) to finish
/// before closing what is left.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Least time between two log lines about refused connections.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The HTTP listener's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request's headers, then again its body, and to
    /// finish the TLS handshake.
    pub header_timeout: Duration,
    /// Time a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Connections held at once.
    pub max_connections: usize,
}

impl Limits {
    /// The bounds set in `config`.
    pub fn from_config(config: &ServerConfig) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(config.http_header_timeout_secs),
            idle_timeout: Duration::from_secs(config.http_idle_timeout_secs),
            max_connections: config.http_max_connections,
        }
    }
}

/// A request body that did not arrive in full within the header timeout
/// after its head; the client gets 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// A request body that must arrive in full by a deadline, so that a client
/// trickling its body cannot hold a request (and its connection) forever.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// One open connection, as the registry sees it.
struct Conn {
    /// Requests whose response has not been fully sent; a streaming response
    /// counts until its body ends, so it is never idle.
    in_flight: AtomicUsize,
    /// Whether a complete request head ever arrived.
    served: AtomicBool,
    /// Milliseconds since `epoch` of the last request start or end.
    last_active_ms: AtomicU64,
    epoch: Instant,
    /// Told to close at once, to make room for a new connection.
    evict: Notify,
}

impl Conn {
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Instant::now() + idle;
        }
        self.epoch + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed)) + idle
    }
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn start(conn: Arc<Conn>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.served.store(true, Ordering::Relaxed);
        conn.touch();
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, oldest first, capped at `max`.
struct Registry {
    max: usize,
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    emptied: Notify,
}

impl Registry {
    fn new(max: usize) -> Registry {
        Registry {
            max,
            conns: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            emptied: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection. At the cap, the oldest connection with
    /// nothing in flight (preferring one that never sent a full request
    /// head) is evicted to make room; if every connection is busy, `None`.
    fn admit(&self) -> Option<(u64, Arc<Conn>)> {
        let mut conns = self.lock();
        if conns.len() >= self.max {
            let idle = |c: &Arc<Conn>| c.in_flight.load(Ordering::Acquire) == 0;
            let victim = conns
                .iter()
                .find(|(_, c)| idle(c) && !c.served.load(Ordering::Relaxed))
                .or_else(|| conns.iter().find(|(_, c)| idle(c)))
                .map(|(id, _)| *id)?;
            if let Some(old) = conns.remove(&victim) {
                old.evict.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            last_active_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            evict: Notify::new(),
        });
        conns.insert(id, conn.clone());
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        let mut conns = self.lock();
        conns.remove(&id);
        if conns.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.len() == 0 {
                return;
            }
            emptied.await;
        }
    }
}

/// Removes its connection from the registry when the connection task ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until
/// `shutdown` completes; then stops accepting, lets in-flight requests
/// finish for up to [`SHUTDOWN_DRAIN_TIMEOUT`], and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Registry::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut last_refusal_log: Option<Instant> = None;
    let mut refused = 0u64;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS...: the listener is still good;
                    // wait for connections to close and try again.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed; retrying shortly");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let Some((id, conn)) = registry.admit() else {
            refused += 1;
            // One line per interval, not one per refusal: a flood must not flood the log.
            if last_refusal_log.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL) {
                tracing::warn!(
                    max = limits.max_connections,
                    refused,
                    "refusing HTTP connections: every connection has a request in flight"
                );
                last_refusal_log = Some(Instant::now());
                refused = 0;
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let registered = Registered {
            registry: registry.clone(),
            id,
        };
        let (router, tls, stop) = (router.clone(), tls.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let _registered = registered;
            match tls {
                None => serve_connection(stream, conn, router, limits, stop).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
                    let stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake timed out");
                                return;
                            }
                        },
                        _ = conn.evict.notified() => return,
                    };
                    serve_connection(stream, conn, router, limits, stop).await
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = registry.len();
    if open > 0 {
        tracing::info!(
            connections = open,
            "waiting for open HTTP connections to finish"
        );
    }
    if tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, registry.wait_empty())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = registry.len(),
            "HTTP connections still open after the drain timeout; closing them"
        );
    }
}

/// Serves HTTP/1.1 on one connection until the client leaves, a timeout
/// fires, the registry evicts it, or shutdown drains it.
async fn serve_connection<I>(
    io: I,
    conn: Arc<Conn>,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = InFlight::start(conn.clone());
            let router = router.clone();
            let request = request.map(|inner| DeadlineBody {
                inner,
                deadline: Box::pin(tokio::time::sleep(limits.header_timeout)),
            });
            async move {
                let response = router.oneshot(request).await?;
                // The request stays in flight until its body is sent in full,
                // so a long stream is never cut as idle.
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &in_flight;
                        frame
                    }))
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let idle_deadline = conn.idle_deadline(limits.idle_timeout);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            _ = conn.evict.notified() => {
                tracing::debug!("closing an idle HTTP connection to admit a new one");
                return;
            }
            _ = stop.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(idle_deadline), if !draining => {
                if conn.in_flight.load(Ordering::Acquire) == 0
                    && conn.idle_deadline(limits.idle_timeout) <= Instant::now()
                {
                    tracing::debug!("closing an idle HTTP connection");
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_unserved_idle_connection_goes() {
        let registry = Registry::new(3);
        let (a, conn_a) = registry.admit().unwrap();
        let (_b, conn_b) = registry.admit().unwrap();
        let (c, conn_c) = registry.admit().unwrap();
        // a served a request and is idle; b is mid-request; c never sent one.
        drop(InFlight::start(conn_a));
        let _busy = InFlight::start(conn_b);
        let (_d, conn_d) = registry.admit().unwrap();
        assert!(registry.lock().contains_key(&a));
        assert!(!registry.lock().contains_key(&c));
        drop(conn_c);
        // With no unserved connection left, the oldest idle one goes.
        drop(InFlight::start(conn_d));
        registry.admit().unwrap();
        assert!(!registry.lock().contains_key(&a));
    }

    /// A response streamed for longer than both timeouts is neither cut as
    /// idle nor evicted at the cap: it is in flight until its body ends.
    #[tokio::test]
    async fn a_long_streaming_response_is_never_idle() {
        use axum::routing::get;
        let router = Router::new().route(
            "/stream",
            get(|| async {
                let chunks = futures_util::stream::unfold(0u8, |n| async move {
                    if n == 3 {
                        return None;
                    }
                    if n > 0 {
                        tokio::time::sleep(Duration::from_millis(800)).await;
                    }
                    Some((Ok::<_, std::io::Error>(vec![b'a' + n]), n + 1))
                });
                Body::from_stream(chunks)
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_connections: 1,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, None, limits, async move {
            let _ = stopped.await;
        }));
        let mut response = reqwest::get(format!("http://{addr}/stream")).await.unwrap();
        let mut body = response.chunk().await.unwrap().unwrap().to_vec();
        // A newcomer at the cap must not push the busy stream out.
        let newcomer = tokio::net::TcpStream::connect(addr).await.unwrap();
        while let Some(chunk) = response.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        assert_eq!(body, b"abc");
        drop(newcomer);
        let _ = stop.send(());
        server.await.unwrap();
    }

    #[test]
    fn when_every_connection_is_busy_a_new_one_is_refused() {
        let registry = Registry::new(1);
        let (_, conn) = registry.admit().unwrap();
        let _busy = InFlight::start(conn);
        assert!(registry.admit().is_none());
        assert_eq!(registry.len(), 1);
    }
}
