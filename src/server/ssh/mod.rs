//! The SSH gateway: `ssh NAME@host -p 2222` lands in shed NAME.
//!
//! The russh handler stays thin: it authenticates, answers channel requests,
//! and hands each session channel to its own task ([`channel`]), which reads
//! the channel's typed events and pumps bytes to and from a Docker exec.

mod channel;
pub mod keys;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::net::TcpListener;

use crate::server::docker::DockerBackend;
use keys::{fingerprint, KeyPolicy};

/// Everything a connection needs, shared by all of them.
pub struct Gateway {
    backend: Arc<DockerBackend>,
    policy: KeyPolicy,
    config: Arc<russh::server::Config>,
}

impl Gateway {
    /// A gateway with this host key and key policy.
    pub fn new(backend: Arc<DockerBackend>, host_key: PrivateKey, policy: KeyPolicy) -> Gateway {
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
            policy,
            config: Arc::new(config),
        }
    }

    /// Serves SSH on `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        use russh::server::Server as _;
        let mut acceptor = Acceptor {
            backend: self.backend,
            policy: Arc::new(self.policy),
        };
        acceptor.run_on_socket(self.config, &listener).await
    }
}

struct Acceptor {
    backend: Arc<DockerBackend>,
    policy: Arc<KeyPolicy>,
}

impl russh::server::Server for Acceptor {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            backend: self.backend.clone(),
            policy: self.policy.clone(),
            peer,
            shed: None,
        }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        tracing::debug!(%error, "ssh session ended with an error");
    }
}

/// One SSH connection.
struct Connection {
    backend: Arc<DockerBackend>,
    policy: Arc<KeyPolicy>,
    peer: Option<SocketAddr>,
    /// The shed (SSH user name) once authenticated.
    shed: Option<String>,
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
        tracing::warn!(shed = %user, peer = ?self.peer, "ssh password login refused");
        Ok(reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.policy.allows(offer.public_key) {
            return Ok(Auth::Accept);
        }
        let fp = fingerprint(offer.public_key);
        tracing::warn!(shed = %user, key = %fp, peer = ?self.peer, "ssh key refused: not in authorized_keys");
        Ok(reject())
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = fingerprint(key.public_key);
        if self.policy.allows(key.public_key) {
            tracing::info!(shed = %user, key = %fp, peer = ?self.peer, "ssh login");
            self.shed = Some(user.to_string());
            Ok(Auth::Accept)
        } else {
            tracing::warn!(shed = %user, key = %fp, peer = ?self.peer, "ssh key refused: not in authorized_keys");
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
        reply.accept().await;
        let context = channel::ChannelContext {
            backend: self.backend.clone(),
            shed,
            session: session.handle(),
        };
        tokio::spawn(channel::run(channel, context));
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
                tracing::info!(shed = %shed, port, "ssh port forward");
                reply.accept().await;
                tokio::spawn(channel::forward(channel, self.backend.clone(), shed, port));
            }
            _ => {
                tracing::warn!(shed = %shed, host, port, "ssh port forward refused: not the shed's loopback");
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
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The client's locale may not exist in the shed, and tmux refuses to
        // start on a broken one, so client environment is not passed on.
        session.channel_failure(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::debug!(subsystem = name, "ssh subsystem refused");
        session.channel_failure(channel)
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
        session.channel_failure(channel)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        _signal: russh::Sig,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
}
