//! Bounds on what a peer can hold before and after it authenticates:
//! connection caps (total, unauthenticated, unauthenticated per address),
//! the login grace time, and rate-limited logging of what was refused.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::server::config::ServerConfig;

/// Most refusal lines of one kind logged per [`LOG_WINDOW`]; the rest are
/// counted and the count is logged with the next line that gets through.
pub const LOG_BURST: u32 = 5;
/// The window of [`LOG_BURST`].
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

/// The gateway's caps, from the server config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `ssh_login_grace_secs`.
    pub login_grace: Duration,
    /// `ssh_max_connections`.
    pub max_connections: usize,
    /// `ssh_max_unauthenticated`.
    pub max_unauthenticated: usize,
    /// `ssh_max_unauthenticated_per_ip`.
    pub max_unauthenticated_per_ip: usize,
    /// `ssh_max_channels_per_connection`.
    pub max_channels_per_connection: usize,
}

impl Limits {
    /// The limits configured in `config`.
    pub fn from_config(config: &ServerConfig) -> Limits {
        Limits {
            login_grace: Duration::from_secs(config.ssh_login_grace_secs),
            max_connections: config.ssh_max_connections,
            max_unauthenticated: config.ssh_max_unauthenticated,
            max_unauthenticated_per_ip: config.ssh_max_unauthenticated_per_ip,
            max_channels_per_connection: config.ssh_max_channels_per_connection,
        }
    }
}

/// Why a new connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `ssh_max_connections` reached.
    TooManyConnections,
    /// `ssh_max_unauthenticated` reached.
    TooManyUnauthenticated,
    /// `ssh_max_unauthenticated_per_ip` reached for this address.
    TooManyFromAddress,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::TooManyConnections => "ssh_max_connections reached",
            Refusal::TooManyUnauthenticated => "ssh_max_unauthenticated reached",
            Refusal::TooManyFromAddress => "ssh_max_unauthenticated_per_ip reached",
        })
    }
}

/// Live connection counts, shared by every connection and by restarts of
/// the accept loop.
#[derive(Debug)]
pub struct Tracker {
    limits: Limits,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    unauthenticated: usize,
    /// Only addresses with unauthenticated connections, so at most
    /// `max_unauthenticated` entries.
    per_source: HashMap<IpAddr, usize>,
}

/// The per-address key: IPv6 hosts get a whole /64, so one host cannot
/// take the cap many times over.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

impl Tracker {
    /// A tracker enforcing `limits`.
    pub fn new(limits: Limits) -> Arc<Tracker> {
        Arc::new(Tracker {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// The limits enforced.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent under every early return, so a panic
        // elsewhere while holding the lock leaves nothing half-updated.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new, unauthenticated connection from `peer`, or says why not.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Arc<ConnState>, Refusal> {
        let key = source_key(peer);
        let mut counts = self.counts();
        if counts.total >= self.limits.max_connections {
            return Err(Refusal::TooManyConnections);
        }
        if counts.unauthenticated >= self.limits.max_unauthenticated {
            return Err(Refusal::TooManyUnauthenticated);
        }
        let from_source = counts.per_source.get(&key).copied().unwrap_or(0);
        if from_source >= self.limits.max_unauthenticated_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        counts.total += 1;
        counts.unauthenticated += 1;
        counts.per_source.insert(key, from_source + 1);
        Ok(Arc::new(ConnState {
            tracker: self.clone(),
            source: key,
            authenticated: AtomicBool::new(false),
            channels: AtomicUsize::new(0),
        }))
    }

    /// Connections open, and of those not authenticated.
    pub fn snapshot(&self) -> (usize, usize) {
        let counts = self.counts();
        (counts.total, counts.unauthenticated)
    }

    fn leave_unauthenticated(&self, counts: &mut Counts, source: IpAddr) {
        counts.unauthenticated = counts.unauthenticated.saturating_sub(1);
        if let Some(n) = counts.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                counts.per_source.remove(&source);
            }
        }
    }
}

/// One admitted connection's share of the counts, released on drop.
#[derive(Debug)]
pub struct ConnState {
    tracker: Arc<Tracker>,
    source: IpAddr,
    authenticated: AtomicBool,
    channels: AtomicUsize,
}

impl ConnState {
    /// Moves the connection from the unauthenticated caps to the
    /// authenticated ones and lifts its login grace time.
    pub fn authenticated(&self) {
        let mut counts = self.tracker.counts();
        if !self.authenticated.swap(true, Ordering::SeqCst) {
            self.tracker.leave_unauthenticated(&mut counts, self.source);
        }
    }

    /// Whether the connection has authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::SeqCst)
    }

    /// Takes a channel slot, or `None` at `ssh_max_channels_per_connection`.
    pub fn open_channel(self: &Arc<Self>) -> Option<ChannelSlot> {
        let max = self.tracker.limits.max_channels_per_connection;
        self.channels
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ChannelSlot(self.clone()))
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        let mut counts = self.tracker.counts();
        counts.total = counts.total.saturating_sub(1);
        if !self.authenticated.load(Ordering::SeqCst) {
            self.tracker.leave_unauthenticated(&mut counts, self.source);
        }
    }
}

/// An open channel's slot, released when the channel's task ends.
#[derive(Debug)]
pub struct ChannelSlot(Arc<ConnState>);

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        self.0.channels.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connection's socket, which fails every read and write once the login
/// grace time is over and the peer has not authenticated. russh owns the
/// socket from the version exchange on, so this is how the connection is
/// closed whatever stage it is stuck in; it also holds the connection's
/// share of the caps until the socket is dropped.
pub struct GraceStream<S> {
    inner: S,
    state: Arc<ConnState>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> GraceStream<S> {
    /// Wraps `inner`, closing it after `grace` unless `state` authenticates.
    pub fn new(inner: S, state: Arc<ConnState>, grace: Duration) -> GraceStream<S> {
        GraceStream {
            inner,
            state,
            deadline: Some(Box::pin(tokio::time::sleep(grace))),
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline.as_mut() else {
            return false;
        };
        if self.state.is_authenticated() {
            self.deadline = None;
            return false;
        }
        deadline.as_mut().poll(cx).is_ready()
    }
}

fn grace_over() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "not authenticated within ssh_login_grace_secs",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for GraceStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(grace_over()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GraceStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(grace_over()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Lets [`LOG_BURST`] lines through per [`LOG_WINDOW`], so a flood of
/// refused connections cannot flood the log.
#[derive(Debug, Default)]
pub struct LogLimiter {
    state: Mutex<LimiterState>,
}

#[derive(Debug, Default)]
struct LimiterState {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// `Some(n)` when a line may be logged now, `n` being how many were
    /// suppressed since the last one; `None` when this one is suppressed.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if state
            .window_start
            .is_none_or(|start| now.duration_since(start) >= LOG_WINDOW)
        {
            state.window_start = Some(now);
            state.logged = 0;
        }
        if state.logged >= LOG_BURST {
            state.suppressed += 1;
            return None;
        }
        state.logged += 1;
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            login_grace: Duration::from_secs(30),
            max_connections: 4,
            max_unauthenticated: 3,
            max_unauthenticated_per_ip: 2,
            max_channels_per_connection: 2,
        }
    }

    #[test]
    fn caps_count_unauthenticated_connections_per_source_and_in_total() {
        let tracker = Tracker::new(limits());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = tracker.admit(a).unwrap();
        let _a2 = tracker.admit(a).unwrap();
        assert_eq!(tracker.admit(a).unwrap_err(), Refusal::TooManyFromAddress);
        let b1 = tracker.admit(b).unwrap();
        assert_eq!(
            tracker.admit(b).unwrap_err(),
            Refusal::TooManyUnauthenticated
        );
        // Authenticating frees the unauthenticated slots, not the total one.
        a1.authenticated();
        b1.authenticated();
        let _b2 = tracker.admit(b).unwrap();
        assert_eq!(tracker.snapshot(), (4, 2));
        assert_eq!(tracker.admit(b).unwrap_err(), Refusal::TooManyConnections);
        drop(a1);
        drop(b1);
        drop(_a2);
        drop(_b2);
        assert_eq!(tracker.snapshot(), (0, 0));
        assert!(tracker.counts().per_source.is_empty());
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let tracker = Tracker::new(limits());
        let _x = tracker.admit("2001:db8::1".parse().unwrap()).unwrap();
        let _y = tracker.admit("2001:db8::2".parse().unwrap()).unwrap();
        assert_eq!(
            tracker.admit("2001:db8::3".parse().unwrap()).unwrap_err(),
            Refusal::TooManyFromAddress
        );
        tracker.admit("2001:db8:0:1::1".parse().unwrap()).unwrap();
    }

    #[test]
    fn channel_slots_are_capped_and_released() {
        let tracker = Tracker::new(limits());
        let conn = tracker.admit("10.0.0.1".parse().unwrap()).unwrap();
        let one = conn.open_channel().unwrap();
        let _two = conn.open_channel().unwrap();
        assert!(conn.open_channel().is_none());
        drop(one);
        assert!(conn.open_channel().is_some());
    }

    #[test]
    fn log_limiter_lets_a_burst_through_and_counts_the_rest() {
        let limiter = LogLimiter::default();
        for _ in 0..LOG_BURST {
            assert_eq!(limiter.allow(), Some(0));
        }
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
    }
}
