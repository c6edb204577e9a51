//! The SSH gateway: `ssh NAME@host -p 2222` lands in shed NAME.
//!
//! The russh handler stays thin: it authenticates, opens channels, and
//! turns each channel request into an owned event for that channel's task
//! ([`channel`]), which decides the answer and pumps bytes to and from a
//! process started over the [`InteractiveExec`] seam.

mod channel;
pub mod keys;
pub mod limits;
pub mod presence;
pub mod supervisor;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::api::validate_shed_name;
use crate::server::exec::InteractiveExec;
use channel::{Event, Request};
use keys::{fingerprint, KeyPolicy};
use limits::{ChannelSlot, ConnState, GraceStream, Limits, LogLimiter, Tracker};
use supervisor::{Backoff, GatewayHealth};

/// Pause after an accept error that is not about one connection (out of
/// file descriptors or memory, ...), so the loop does not spin while it lasts.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a channel request waits for its channel's task to decide;
/// then it is refused.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a connection needs, shared by all of them and by restarts of
/// the accept loop.
pub struct Gateway {
    backend: Arc<dyn InteractiveExec>,
    policy: Arc<KeyPolicy>,
    config: Arc<russh::server::Config>,
    tracker: Arc<Tracker>,
    /// Open authenticated connections per shed, for auto-stop.
    presence: Arc<presence::Presence>,
    /// Refused connections and channels.
    refusals: Arc<LogLimiter>,
    /// Refused logins: every unauthenticated connection can try several.
    auth_refusals: Arc<LogLimiter>,
    accept_errors: LogLimiter,
}

impl Gateway {
    /// A gateway with this host key, key policy and limits.
    pub fn new(
        backend: Arc<dyn InteractiveExec>,
        host_key: PrivateKey,
        policy: KeyPolicy,
        limits: Limits,
    ) -> Gateway {
        let config = russh::server::Config {
            keys: vec![host_key],
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            // Rejections take constant time; OpenSSH's first "none" probe need not wait.
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            // An attached but quiet session is normal: keepalives, not an
            // inactivity timeout, find dead peers.
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 4,
            nodelay: true,
            preferred: russh::Preferred {
                // The client's order decides, and OpenSSH lists chacha20 and
                // then the CTR modes before AES-GCM, so only AES-GCM is
                // offered: it runs on the CPU's AES instructions (ring) and
                // cost the gateway about a third of the CPU per byte of
                // chacha20-poly1305 or CTR+HMAC (bench row 5). OpenSSH has
                // had it since 6.2, PuTTY since 0.76.
                cipher: std::borrow::Cow::Borrowed(&[
                    russh::cipher::AES_256_GCM,
                    russh::cipher::AES_128_GCM,
                ]),
                ..Default::default()
            },
            ..Default::default()
        };
        Gateway {
            backend,
            policy: Arc::new(policy),
            config: Arc::new(config),
            tracker: Tracker::new(limits),
            presence: presence::Presence::new(),
            refusals: Arc::new(LogLimiter::default()),
            auth_refusals: Arc::new(LogLimiter::default()),
            accept_errors: LogLimiter::default(),
        }
    }

    /// Which sheds have a connection open (auto-stop leaves those running).
    pub fn presence(&self) -> Arc<presence::Presence> {
        self.presence.clone()
    }

    /// Accepts connections on `listener` for ever: an accept error is
    /// logged and the loop goes on. Each connection runs in its own task.
    pub async fn serve(self: Arc<Self>, listener: Arc<TcpListener>) -> std::io::Result<()> {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) => {
                    if let Some(suppressed) = self.accept_errors.allow() {
                        tracing::warn!(error = %e, suppressed, "ssh gateway: accept failed; going on");
                    }
                    if !one_connection_failed(&e) {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            }
        }
    }

    fn admit(&self, stream: TcpStream, peer: SocketAddr) {
        let state = match self.tracker.admit(peer.ip()) {
            Ok(state) => state,
            Err(refusal) => {
                if let Some(suppressed) = self.refusals.allow() {
                    let (open, unauthenticated) = self.tracker.snapshot();
                    tracing::warn!(%peer, reason = %refusal, open, unauthenticated, suppressed, "ssh connection refused");
                }
                // Dropping the socket closes it.
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = Connection {
            backend: self.backend.clone(),
            policy: self.policy.clone(),
            peer: Some(peer),
            shed: None,
            presence: self.presence.clone(),
            here: None,
            channels: HashMap::new(),
            state: state.clone(),
            refusals: self.refusals.clone(),
            auth_refusals: self.auth_refusals.clone(),
        };
        let stream = GraceStream::new(stream, state, self.tracker.limits().login_grace);
        let config = self.config.clone();
        tokio::spawn(async move {
            let result = match russh::server::run_stream(config, stream, handler).await {
                Ok(session) => session.await,
                Err(e) => Err(e),
            };
            if let Err(error) = result {
                tracing::debug!(%peer, error = ?error.to_string(), "ssh session ended with an error");
            }
        });
    }
}

/// Whether an accept error concerns only the connection being accepted (the
/// next accept may well work), unlike EMFILE, ENFILE, ENOBUFS or ENOMEM,
/// which last a while.
fn one_connection_failed(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED | libc::ECONNRESET | libc::EINTR | libc::EPROTO | libc::EPERM)
    )
}

/// Backlog of the gateway's listening socket, as `TcpListener::bind` in tokio.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds the gateway's listening socket at `addr`; the error names the address.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    // Synchronous, unlike `TcpListener::bind`, so the supervisor can retry
    // it as the step that prepares a start.
    let listen = || {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("binding the SSH gateway to {addr}: {e}"))
    })
}

/// Runs `gateway` under a supervisor that restarts it when it fails or
/// panics, and reports its state in `health`. It serves on `listener`, or,
/// when the bind at start failed (the port is taken), binds `addr` itself,
/// retrying with backoff: the API serves meanwhile and `/api/health` says
/// the gateway is down.
pub fn spawn_supervised(
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    listener: Option<TcpListener>,
    health: GatewayHealth,
) -> tokio::task::JoinHandle<()> {
    let mut listener = listener.map(Arc::new);
    tokio::spawn(supervisor::supervise(
        health,
        Backoff::default(),
        move || {
            let bound = match &listener {
                Some(bound) => bound.clone(),
                None => listener.insert(Arc::new(bind(addr)?)).clone(),
            };
            Ok(gateway.clone().serve(bound))
        },
    ))
}

/// One SSH connection.
struct Connection {
    backend: Arc<dyn InteractiveExec>,
    policy: Arc<KeyPolicy>,
    peer: Option<SocketAddr>,
    /// The shed (SSH user name) once authenticated.
    shed: Option<String>,
    presence: Arc<presence::Presence>,
    /// Counts this connection against its shed from login until it ends.
    here: Option<presence::PresenceGuard>,
    /// The event queue of each open session channel's task.
    channels: HashMap<ChannelId, mpsc::Sender<Event>>,
    /// Its share of the connection caps, and its channel count.
    state: Arc<ConnState>,
    refusals: Arc<LogLimiter>,
    auth_refusals: Arc<LogLimiter>,
}

impl Connection {
    /// A slot for a new channel, or `None` (logged) at the channel cap.
    fn channel_slot(&self) -> Option<ChannelSlot> {
        let slot = self.state.open_channel();
        if slot.is_none() {
            if let Some(suppressed) = self.refusals.allow() {
                tracing::warn!(shed = ?self.shed, peer = ?self.peer, suppressed, "ssh channel refused: ssh_max_channels_per_connection reached");
            }
        }
        slot
    }

    /// Whether `user` names a shed at all; a name that could not be one is
    /// refused before any key is checked.
    fn valid_user(&self, user: &str) -> bool {
        let valid = validate_shed_name(user).is_ok();
        if !valid {
            if let Some(suppressed) = self.auth_refusals.allow() {
                tracing::warn!(shed = ?user, peer = ?self.peer, suppressed, "ssh login refused: not a valid shed name");
            }
        }
        valid
    }

    /// Hands `request` to the channel's task and answers as it decides;
    /// `channel_failure` when no task takes it (a forwarding channel, or
    /// one whose process has ended). The answer is sent before the next
    /// packet is read, so answers keep the order of the requests.
    async fn ask(
        &mut self,
        channel: ChannelId,
        request: Request,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let mut accepted = false;
        if let Some(events) = self.channels.get(&channel) {
            let (reply, answer) = oneshot::channel();
            if events.send(Event { request, reply }).await.is_ok() {
                // The task answers at once in every state but one: while it
                // waits to write stdin to a process that does not read it.
                // The connection must not wait for that for ever.
                accepted = matches!(
                    tokio::time::timeout(ANSWER_TIMEOUT, answer).await,
                    Ok(Ok(true))
                );
            } else {
                self.channels.remove(&channel);
            }
        }
        if accepted {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    fn log_refused_key(&self, user: &str, key: &russh::keys::PublicKey) {
        if let Some(suppressed) = self.auth_refusals.allow() {
            let fp = fingerprint(key);
            tracing::warn!(shed = ?user, key = %fp, peer = ?self.peer, suppressed, "ssh key refused by authorized_keys");
        }
    }
}

fn reject() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
        partial_success: false,
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(reject())
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        if let Some(suppressed) = self.auth_refusals.allow() {
            tracing::warn!(shed = ?user, peer = ?self.peer, suppressed, "ssh password login refused");
        }
        Ok(reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if !self.valid_user(user) {
            return Ok(reject());
        }
        let peer = self.peer.map(|p| p.ip());
        if self.policy.allows(offer.public_key, peer) {
            return Ok(Auth::Accept);
        }
        self.log_refused_key(user, offer.public_key);
        Ok(reject())
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if !self.valid_user(user) {
            return Ok(reject());
        }
        let fp = fingerprint(key.public_key);
        if self
            .policy
            .allows(key.public_key, self.peer.map(|p| p.ip()))
        {
            tracing::info!(shed = ?user, key = %fp, peer = ?self.peer, "ssh login");
            self.shed = Some(user.to_string());
            self.here = Some(self.presence.enter(user));
            self.state.authenticated();
            Ok(Auth::Accept)
        } else {
            tracing::warn!(shed = ?user, key = %fp, peer = ?self.peer, "ssh key refused by authorized_keys");
            Ok(reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(shed) = self.shed.clone() else {
            return Ok(());
        };
        let Some(slot) = self.channel_slot() else {
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        };
        reply.accept().await;
        let (events, queue) = mpsc::channel(channel::EVENT_QUEUE);
        self.channels.insert(channel.id(), events);
        let context = channel::ChannelContext {
            exec: self.backend.clone(),
            shed,
            session: session.handle(),
            events: queue,
        };
        tokio::spawn(async move {
            let _slot = slot;
            channel::run(channel, context).await
        });
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(shed) = self.shed.clone() else {
            return Ok(());
        };
        // Only the shed's own loopback: the gateway is not a proxy into the
        // server's networks.
        let local = matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]");
        let port = u16::try_from(port).ok().filter(|p| *p > 0);
        match (local, port) {
            (true, Some(port)) => {
                let Some(slot) = self.channel_slot() else {
                    reply
                        .reject(russh::ChannelOpenFailure::ResourceShortage)
                        .await;
                    return Ok(());
                };
                tracing::info!(shed = ?shed, port, "ssh port forward");
                reply.accept().await;
                let backend = self.backend.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    channel::forward(channel, backend, shed, port).await
                });
            }
            _ => {
                tracing::warn!(shed = ?shed, host = ?host, port, "ssh port forward refused: not the shed's loopback");
                reply
                    .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
            }
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = Request::Pty {
            term: term.to_string(),
            size: channel::size(cols, rows),
        };
        self.ask(channel, request, session).await
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.ask(channel, Request::Env, session).await
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.ask(channel, Request::Shell, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(command).into_owned();
        self.ask(channel, Request::Exec(command), session).await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.ask(channel, Request::Subsystem(name.to_string()), session)
            .await
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.ask(channel, Request::X11, session).await
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = Request::WindowChange(channel::size(cols, rows));
        self.ask(channel, request, session).await
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: russh::Sig,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.ask(channel, Request::Signal(signal), session).await
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}
