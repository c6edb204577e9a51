//! Typed HTTP client for one shed-server.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::api::agent::AgentExplanation;
use crate::api::{
    validate_session_name, validate_shed_name, AllSessions, CreateSessionRequest,
    CreateShedRequest, ErrorBody, ErrorCode, SendInputRequest, ServerInfo, SessionInfo,
    SessionList, SessionOutput, Shed, ShedList, SshHostKey,
};
use crate::client::config::{Scheme, ServerEntry};
use crate::client::output::{clean, warn};
use crate::client::tls::{pinned_config, Presented};

/// How long to wait for a TCP connection before calling a server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for quick calls (list, get, start, stop).
const QUICK_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for a create, which may clone a large repository.
const CREATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Upper bound for an on-demand restore, which recreates every session.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Largest response body read from a server; a lying one cannot exhaust memory.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A failed call to a server.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No TCP connection, or no answer in time.
    #[error("server {server:?} ({addr}) is unreachable: {detail}")]
    Unreachable {
        /// Configured server name.
        server: String,
        /// Base URL tried.
        addr: String,
        /// What went wrong.
        detail: String,
    },
    /// The server answered with an error body.
    #[error("{server}: {message}")]
    Api {
        /// Configured server name.
        server: String,
        /// HTTP status.
        status: u16,
        /// The API error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// The server answered something that is not the shed API.
    #[error("server {server:?} ({addr}) gave an unexpected answer: {detail}")]
    Protocol {
        /// Configured server name.
        server: String,
        /// Base URL tried.
        addr: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The server's TLS certificate is not the pinned one.
    #[error("server {server:?} ({addr}) presented TLS certificate {presented}, but {pinned} is pinned: refusing to talk to it, as someone may be intercepting the connection. If the server's certificate really changed, re-pin it: shed server remove {server} && shed server add {addr} --tls-fingerprint {presented}")]
    CertificateChanged {
        /// Configured server name.
        server: String,
        /// Base URL tried.
        addr: String,
        /// The pinned fingerprint.
        pinned: String,
        /// The fingerprint the server presented.
        presented: String,
    },
    /// The entry would send the token in clear text over the network.
    #[error("server {server:?} ({addr}) uses plain HTTP to a host that is not loopback: refusing to send its token in clear text. Re-add it with https://, or set allow_plain_http = true in its config entry if the network is trusted")]
    PlainHttpToken {
        /// Configured server name.
        server: String,
        /// Base URL.
        addr: String,
    },
    /// An https entry without a pinned certificate (a hand-edited config).
    #[error("server {server:?} ({addr}) has no pinned TLS certificate; re-add it with `shed server add`")]
    NotPinned {
        /// Configured server name.
        server: String,
        /// Base URL.
        addr: String,
    },
}

impl ClientError {
    /// The API error code, when the server gave one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A connection to a server's API port, as [`ApiClient::connect_raw`] opens it.
pub struct RawConnection {
    /// The byte stream: plain TCP, or TLS over it.
    pub stream: tokio_util::either::Either<
        tokio::net::TcpStream,
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    >,
    /// Whether it is under TLS (`wss:` rather than `ws:`).
    pub secure: bool,
    /// `host:port` as the server knows itself, for the request URL and Host.
    pub authority: String,
}

/// A client bound to one configured server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    name: String,
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// Why no request may be sent at all, when that is so.
    refuse: Option<Refusal>,
    pin: Option<String>,
    presented: Presented,
}

/// Why an entry's configuration forbids every request.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    PlainHttpToken,
    NotPinned,
}

/// A reqwest client that never follows redirects (a lying server could
/// bounce the token elsewhere) and, for https, trusts only `pin`.
fn http_client(scheme: Scheme, pin: Option<&str>) -> (reqwest::Client, Presented) {
    let builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("shed/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    let (builder, presented) = match (scheme, pinned_config(pin)) {
        (Scheme::Http, _) => (builder, Presented::default()),
        (Scheme::Https, Ok((tls, presented))) => (
            builder.use_preconfigured_tls(tls).https_only(true),
            presented,
        ),
        // Cannot happen with ring's defaults; reqwest's own verification
        // then rejects a self-signed certificate, so this fails closed.
        (Scheme::Https, Err(_)) => (builder.https_only(true), Presented::default()),
    };
    (builder.build().unwrap_or_default(), presented)
}

/// The fingerprint of the TLS certificate the server at `base_url` presents.
/// The handshake is abandoned right after the certificate, so no request,
/// and no token, is sent to a server the user has not yet accepted.
pub async fn presented_certificate(name: &str, base_url: &str) -> Result<String, ClientError> {
    let (http, presented) = http_client(Scheme::Https, None);
    let error = match http
        .get(format!("{base_url}/api/health"))
        .timeout(QUICK_TIMEOUT)
        .send()
        .await
    {
        Ok(_) => None,
        Err(e) => Some(describe(&e)),
    };
    presented.get().ok_or_else(|| ClientError::Unreachable {
        server: name.to_string(),
        addr: base_url.to_string(),
        detail: error.unwrap_or_else(|| "no TLS certificate".into()),
    })
}

/// An event stream silent for this long (servers send a keep-alive comment
/// every 15 s) is taken for dead and reopened.
pub const EVENTS_IDLE_LIMIT: Duration = Duration::from_secs(45);

/// The pause before reopening a dropped event stream: doubling from its
/// first value up to its longest, and back to the first once a stream opens.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    longest: Duration,
    next: Duration,
}

impl Backoff {
    /// Pauses from `first` doubling up to `longest`.
    pub fn new(first: Duration, longest: Duration) -> Backoff {
        Backoff {
            first,
            longest,
            next: first,
        }
    }

    /// A stream opened: the next pause is the first again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Pauses, and doubles the next pause.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.longest);
    }
}

/// An open `GET /api/events` stream of one server.
pub struct EventStream {
    response: reqwest::Response,
    parser: crate::client::sse::SseParser,
    ready: std::collections::VecDeque<crate::client::sse::SseMessage>,
    server: String,
    addr: String,
}

impl EventStream {
    /// The next event; `Ok(None)` when the server ended the stream. A
    /// server that sends nothing at all, not even a keep-alive comment, for
    /// `idle` is taken for gone.
    pub async fn next(
        &mut self,
        idle: Duration,
    ) -> Result<Option<crate::client::sse::SseMessage>, ClientError> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Ok(Some(message));
            }
            let chunk = tokio::time::timeout(idle, self.response.chunk())
                .await
                .map_err(|_| ClientError::Unreachable {
                    server: self.server.clone(),
                    addr: self.addr.clone(),
                    detail: format!("nothing received for {}s", idle.as_secs()),
                })?;
            let chunk = chunk.map_err(|e| ClientError::Unreachable {
                server: self.server.clone(),
                addr: self.addr.clone(),
                detail: clean(&describe(&e)),
            })?;
            let Some(chunk) = chunk else {
                return Ok(None);
            };
            let messages = self
                .parser
                .push(&chunk)
                .map_err(|e| ClientError::Protocol {
                    server: self.server.clone(),
                    addr: self.addr.clone(),
                    detail: e.to_string(),
                })?;
            self.ready.extend(messages);
        }
    }
}

impl ApiClient {
    /// A client for `entry`, known locally as `name`.
    pub fn new(name: &str, entry: &ServerEntry) -> ApiClient {
        let pin = entry.tls_fingerprint.clone();
        let (http, presented) = http_client(entry.scheme, pin.as_deref());
        let refuse = match entry.scheme {
            Scheme::Https if pin.is_none() => Some(Refusal::NotPinned),
            Scheme::Http
                if entry.token.is_some() && !entry.is_loopback() && !entry.allow_plain_http =>
            {
                Some(Refusal::PlainHttpToken)
            }
            _ => None,
        };
        ApiClient {
            name: name.to_string(),
            base: entry.base_url(),
            token: entry.token.clone(),
            http,
            refuse,
            pin,
            presented,
        }
    }

    /// The configured server name.
    pub fn server(&self) -> &str {
        &self.name
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Refuses at once when this entry's configuration forbids any request.
    fn check_usable(&self) -> Result<(), ClientError> {
        let (server, addr) = (self.name.clone(), self.base.clone());
        match self.refuse {
            Some(Refusal::PlainHttpToken) => Err(ClientError::PlainHttpToken { server, addr }),
            Some(Refusal::NotPinned) => Err(ClientError::NotPinned { server, addr }),
            None => Ok(()),
        }
    }

    /// The error for a request that got no answer: a changed certificate
    /// when the server presented another one than the pinned one.
    fn no_answer(&self, detail: String) -> ClientError {
        match (&self.pin, self.presented.get()) {
            (Some(pinned), Some(presented)) if *pinned != presented => {
                ClientError::CertificateChanged {
                    server: self.name.clone(),
                    addr: self.base.clone(),
                    pinned: pinned.clone(),
                    presented,
                }
            }
            _ => ClientError::Unreachable {
                server: self.name.clone(),
                addr: self.base.clone(),
                detail: clean(&detail),
            },
        }
    }

    /// Sends a request for `path_and_query` (which starts with `/api/`) with
    /// this server's token and pinned certificate, and no overall timeout
    /// unless `timeout` is given: `shed ui` relays the answer, status and
    /// streamed body as they are.
    pub async fn relay(
        &self,
        method: Method,
        path_and_query: &str,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self
            .request(method, path_and_query)?
            .headers(headers)
            .body(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        request
            .send()
            .await
            .map_err(|e| self.no_answer(describe(&e)))
    }

    /// A byte stream to this server's API port: TCP, under TLS trusting only
    /// the pinned certificate for https, for protocols reqwest does not
    /// speak (the terminal WebSocket), with what goes in the request URL.
    pub async fn connect_raw(&self) -> Result<RawConnection, ClientError> {
        self.check_usable()?;
        let url = reqwest::Url::parse(&self.base).map_err(|e| self.lie(e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| self.lie("no host in the base URL".into()))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((bare.as_str(), port)),
        )
        .await
        .map_err(|_| self.no_answer("connect timed out".into()))?
        .map_err(|e| self.no_answer(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let authority = format!("{host}:{port}");
        if url.scheme() != "https" {
            return Ok(RawConnection {
                stream: tokio_util::either::Either::Left(tcp),
                secure: false,
                authority,
            });
        }
        let (tls, presented) =
            pinned_config(self.pin.as_deref()).map_err(|e| self.no_answer(e.to_string()))?;
        let server_name =
            rustls::pki_types::ServerName::try_from(bare).map_err(|e| self.lie(e.to_string()))?;
        let handshake =
            tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls)).connect(server_name, tcp);
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(match (&self.pin, presented.get()) {
                    (Some(pinned), Some(seen)) if *pinned != seen => {
                        ClientError::CertificateChanged {
                            server: self.name.clone(),
                            addr: self.base.clone(),
                            pinned: pinned.clone(),
                            presented: seen,
                        }
                    }
                    _ => self.no_answer(e.to_string()),
                })
            }
            Err(_) => return Err(self.no_answer("TLS handshake timed out".into())),
        };
        Ok(RawConnection {
            stream: tokio_util::either::Either::Right(stream),
            secure: true,
            authority,
        })
    }

    /// The token this client sends, for a protocol [`Self::connect_raw`] carries.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Option<T>, ClientError> {
        let mut request = self.request(method, path)?.timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| self.no_answer(describe(&e));
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(self.lie(format!(
                    "HTTP {status} with a body over {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(self.error_answer(status, &bytes));
        }
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| self.lie(format!("HTTP {status} with an unreadable body: {e}")))
    }

    /// A request to `path` carrying the token, unless the entry's
    /// configuration forbids every request (see [`Refusal`]).
    fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder, ClientError> {
        self.check_usable()?;
        let request = self.http.request(method, format!("{}{path}", self.base));
        Ok(match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    }

    /// The error a non-2xx answer with `body` stands for: the server's own
    /// error body, or a protocol error when it sent none.
    fn error_answer(&self, status: StatusCode, body: &[u8]) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(body) => ClientError::Api {
                server: self.name.clone(),
                status: status.as_u16(),
                code: body.error.code,
                message: clean(&body.error.message),
            },
            Err(_) => self.lie(format!("HTTP {status} without an error body")),
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.expect(
            self.call(Method::GET, path, None::<&()>, QUICK_TIMEOUT)
                .await?,
        )
    }

    fn expect<T>(&self, value: Option<T>) -> Result<T, ClientError> {
        value.ok_or_else(|| self.lie("empty response".into()))
    }

    /// The error for an answer that breaks the API's rules.
    fn lie(&self, detail: String) -> ClientError {
        ClientError::Protocol {
            server: self.name.clone(),
            addr: self.base.clone(),
            detail: clean(&detail),
        }
    }

    /// `shed` itself, or an error if the server answered about another shed.
    fn the_shed(&self, name: &str, shed: Shed) -> Result<Shed, ClientError> {
        if shed.name == name {
            Ok(shed)
        } else {
            Err(self.lie(format!(
                "asked about shed {name:?}, answered about {:?}",
                shed.name
            )))
        }
    }

    /// `session`, or an error if the server answered about another one.
    fn the_session(
        &self,
        shed: &str,
        name: &str,
        session: SessionInfo,
    ) -> Result<SessionInfo, ClientError> {
        if session.name == name && session.shed == shed {
            Ok(session)
        } else {
            Err(self.lie(format!(
                "asked about session {name:?} in shed {shed:?}, answered about {:?} in {:?}",
                session.name, session.shed
            )))
        }
    }

    /// Keeps the sessions whose names follow the rules, warning about the others.
    fn valid_sessions(&self, sessions: Vec<SessionInfo>) -> Vec<SessionInfo> {
        sessions
            .into_iter()
            .filter(|s| {
                let ok = validate_shed_name(&s.shed).is_ok() && validate_session_name(&s.name).is_ok();
                if !ok {
                    warn(&format!(
                        "server {:?} listed a session with an invalid shed or session name ({:?} in {:?}); ignored",
                        self.name, s.name, s.shed
                    ));
                }
                ok
            })
            .collect()
    }

    /// `GET /api/events`, resuming after `last_event_id`: the open stream.
    pub async fn events(&self, last_event_id: Option<u64>) -> Result<EventStream, ClientError> {
        // No overall timeout: the stream is meant to stay open; the server's
        // keep-alive comments and the caller's read deadline catch a dead one.
        let mut request = self.request(Method::GET, "/api/events")?;
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let (server, addr) = (self.name.clone(), self.base.clone());
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            server: server.clone(),
            addr: addr.clone(),
            detail: clean(&describe(&e)),
        })?;
        let status = response.status();
        if !status.is_success() {
            let mut response = response;
            let mut body = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            return Err(self.error_answer(status, &body));
        }
        Ok(EventStream {
            response,
            parser: Default::default(),
            ready: Default::default(),
            server,
            addr,
        })
    }

    /// `GET /api/info`.
    pub async fn info(&self) -> Result<ServerInfo, ClientError> {
        self.get_json("/api/info").await
    }

    /// `GET /api/ssh-host-key`.
    pub async fn ssh_host_key(&self) -> Result<SshHostKey, ClientError> {
        self.get_json("/api/ssh-host-key").await
    }

    /// `GET /api/sheds`. Sheds with invalid names are dropped with a warning:
    /// the names end up in `~/.ssh/config` and on command lines.
    pub async fn list(&self) -> Result<Vec<Shed>, ClientError> {
        Ok(self.list_with_kept().await?.sheds)
    }

    /// `GET /api/sheds` with the kept volumes too; entries with invalid
    /// names are dropped with a warning, as in [`Self::list`].
    pub async fn list_with_kept(&self) -> Result<ShedList, ClientError> {
        let list = self.get_json::<ShedList>("/api/sheds").await?;
        let kept_volumes = list
            .kept_volumes
            .into_iter()
            .filter(|kept| self.valid_listed(&kept.name, "a kept volume for an invalid shed name"))
            .collect();
        let sheds = list
            .sheds
            .into_iter()
            .filter(|shed| self.valid_listed(&shed.name, "an invalid shed name"))
            .collect();
        Ok(ShedList {
            sheds,
            kept_volumes,
        })
    }

    /// Whether `name`, a shed name this server listed, is valid; if not, a
    /// warning calls it `what` and the entry is to be dropped.
    fn valid_listed(&self, name: &str, what: &str) -> bool {
        match validate_shed_name(name) {
            Ok(()) => true,
            Err(e) => {
                warn(&format!(
                    "server {:?} listed {what} {name:?} ({e}); ignored",
                    self.name
                ));
                false
            }
        }
    }

    /// `GET /api/sheds/{name}`.
    pub async fn get(&self, name: &str) -> Result<Shed, ClientError> {
        let shed = self.get_json(&format!("/api/sheds/{name}")).await?;
        self.the_shed(name, shed)
    }

    /// `POST /api/sheds`.
    pub async fn create(&self, request: &CreateShedRequest) -> Result<Shed, ClientError> {
        let shed = self
            .call(Method::POST, "/api/sheds", Some(request), CREATE_TIMEOUT)
            .await?;
        let shed = self.expect(shed)?;
        self.the_shed(&request.name, shed)
    }

    /// `DELETE /api/sheds/{name}`.
    pub async fn delete(&self, name: &str, keep_volume: bool) -> Result<(), ClientError> {
        let path = format!("/api/sheds/{name}?keep_volume={keep_volume}");
        self.call::<serde_json::Value, ()>(Method::DELETE, &path, None, QUICK_TIMEOUT)
            .await
            .map(|_| ())
    }

    /// `POST /api/sheds/{name}/start`.
    pub async fn start(&self, name: &str) -> Result<Shed, ClientError> {
        self.shed_action(name, "start").await
    }

    /// `POST /api/sheds/{name}/stop`.
    pub async fn stop(&self, name: &str) -> Result<Shed, ClientError> {
        self.shed_action(name, "stop").await
    }

    /// `POST /api/sheds/{name}/hooks`.
    pub async fn install_hooks(
        &self,
        name: &str,
        request: &crate::api::hooks::InstallHooksRequest,
    ) -> Result<crate::api::hooks::HooksReport, ClientError> {
        let path = format!("/api/sheds/{name}/hooks");
        let report: crate::api::hooks::HooksReport = self
            .call(Method::POST, &path, Some(request), QUICK_TIMEOUT)
            .await
            .and_then(|r| self.expect(r))?;
        if report.shed != name {
            return Err(self.lie(format!(
                "asked about shed {name:?}, answered about {:?}",
                report.shed
            )));
        }
        Ok(report)
    }

    /// `POST /api/sheds/{name}/{action}`, which answers with the shed.
    async fn shed_action(&self, name: &str, action: &str) -> Result<Shed, ClientError> {
        let path = format!("/api/sheds/{name}/{action}");
        let shed = self
            .call(Method::POST, &path, None::<&()>, QUICK_TIMEOUT)
            .await?;
        let shed = self.expect(shed)?;
        self.the_shed(name, shed)
    }
}

impl ApiClient {
    /// `GET /api/sheds/{shed}/sessions`.
    pub async fn list_sessions(&self, shed: &str) -> Result<Vec<SessionInfo>, ClientError> {
        let sessions = self
            .get_json::<SessionList>(&format!("/api/sheds/{shed}/sessions"))
            .await?
            .sessions;
        Ok(self
            .valid_sessions(sessions)
            .into_iter()
            .filter(|s| s.shed == shed)
            .collect())
    }

    /// `GET /api/sheds/{shed}/sessions/{session}`.
    pub async fn get_session(&self, shed: &str, session: &str) -> Result<SessionInfo, ClientError> {
        let info = self
            .get_json(&format!("/api/sheds/{shed}/sessions/{session}"))
            .await?;
        self.the_session(shed, session, info)
    }

    /// `GET /api/sessions`.
    pub async fn all_sessions(&self) -> Result<AllSessions, ClientError> {
        let all: AllSessions = self.get_json("/api/sessions").await?;
        let warnings = all
            .warnings
            .into_iter()
            .filter(|w| {
                let ok = validate_shed_name(&w.shed).is_ok();
                if !ok {
                    warn(&format!(
                        "server {:?} warned about an invalid shed name {:?}; ignored",
                        self.name, w.shed
                    ));
                }
                ok
            })
            .collect();
        Ok(AllSessions {
            sessions: self.valid_sessions(all.sessions),
            warnings,
        })
    }

    /// `POST /api/sheds/{shed}/sessions`.
    pub async fn create_session(
        &self,
        shed: &str,
        request: &CreateSessionRequest,
    ) -> Result<SessionInfo, ClientError> {
        let path = format!("/api/sheds/{shed}/sessions");
        let session = self
            .call(Method::POST, &path, Some(request), QUICK_TIMEOUT)
            .await?;
        let session = self.expect(session)?;
        self.the_session(shed, &request.name, session)
    }

    /// `POST /api/sheds/{shed}/snapshot/restore[?dry_run=true]`.
    pub async fn restore_snapshot(
        &self,
        shed: &str,
        dry_run: bool,
    ) -> Result<crate::api::snapshot::RestoreReport, ClientError> {
        let path = format!("/api/sheds/{shed}/snapshot/restore?dry_run={dry_run}");
        let report = self
            .call::<_, serde_json::Value>(Method::POST, &path, None, RESTORE_TIMEOUT)
            .await?;
        self.expect(report)
    }

    /// `DELETE /api/sheds/{shed}/sessions/{session}`.
    pub async fn kill_session(&self, shed: &str, session: &str) -> Result<(), ClientError> {
        let path = format!("/api/sheds/{shed}/sessions/{session}");
        self.call::<serde_json::Value, ()>(Method::DELETE, &path, None, QUICK_TIMEOUT)
            .await
            .map(|_| ())
    }

    /// `GET /api/sheds/{shed}/sessions/{session}/output?lines=N`.
    pub async fn session_output(
        &self,
        shed: &str,
        session: &str,
        lines: usize,
    ) -> Result<SessionOutput, ClientError> {
        self.get_json(&format!(
            "/api/sheds/{shed}/sessions/{session}/output?lines={lines}"
        ))
        .await
    }

    /// `GET /api/sheds/{shed}/sessions/{session}/agent`: why the session's
    /// agent is in its state.
    pub async fn session_agent(
        &self,
        shed: &str,
        session: &str,
    ) -> Result<AgentExplanation, ClientError> {
        let explanation: AgentExplanation = self
            .get_json(&format!("/api/sheds/{shed}/sessions/{session}/agent"))
            .await?;
        if explanation.shed != shed || explanation.session != session {
            return Err(self.lie(format!(
                "asked about session {session:?} in shed {shed:?}, answered about {:?} in {:?}",
                explanation.session, explanation.shed
            )));
        }
        Ok(explanation)
    }

    /// `POST /api/sheds/{shed}/sessions/{session}/input`.
    pub async fn send_input(
        &self,
        shed: &str,
        session: &str,
        request: &SendInputRequest,
    ) -> Result<(), ClientError> {
        let path = format!("/api/sheds/{shed}/sessions/{session}/input");
        self.call::<serde_json::Value, _>(Method::POST, &path, Some(request), QUICK_TIMEOUT)
            .await
            .map(|_| ())
    }
}

/// A short, one-line reason for a transport failure.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    // reqwest's top-level message is generic; the root cause says what happened.
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    let text = source.to_string();
    if e.is_connect() && !text.is_empty() {
        text
    } else {
        e.to_string()
    }
}
