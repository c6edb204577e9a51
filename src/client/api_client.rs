//! Typed HTTP client for one shed-server.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::api::{
    AllSessions, CreateSessionRequest, CreateShedRequest, ErrorBody, ErrorCode, SendInputRequest,
    ServerInfo, SessionInfo, SessionList, SessionOutput, Shed, ShedList, SshHostKey,
};
use crate::client::config::ServerEntry;

/// How long to wait for a TCP connection before calling a server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for quick calls (list, get, start, stop).
const QUICK_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for a create, which may clone a large repository.
const CREATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

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

/// A client bound to one configured server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    name: String,
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for `entry`, known locally as `name`.
    pub fn new(name: &str, entry: &ServerEntry) -> ApiClient {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("shed/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        ApiClient {
            name: name.to_string(),
            base: entry.base_url(),
            token: entry.token.clone(),
            http,
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

    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Option<T>, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            server: self.name.clone(),
            addr: self.base.clone(),
            detail: describe(&e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        let protocol = |detail: String| ClientError::Protocol {
            server: self.name.clone(),
            addr: self.base.clone(),
            detail,
        };
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => ClientError::Api {
                    server: self.name.clone(),
                    status: status.as_u16(),
                    code: body.error.code,
                    message: body.error.message,
                },
                Err(_) => protocol(format!("HTTP {status} without an error body")),
            });
        }
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| protocol(format!("HTTP {status} with an unreadable body: {e}")))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.expect(
            self.call(Method::GET, path, None::<&()>, QUICK_TIMEOUT)
                .await?,
        )
    }

    fn expect<T>(&self, value: Option<T>) -> Result<T, ClientError> {
        value.ok_or_else(|| ClientError::Protocol {
            server: self.name.clone(),
            addr: self.base.clone(),
            detail: "empty response".into(),
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

    /// `GET /api/sheds`.
    pub async fn list(&self) -> Result<Vec<Shed>, ClientError> {
        Ok(self.get_json::<ShedList>("/api/sheds").await?.sheds)
    }

    /// `GET /api/sheds/{name}`.
    pub async fn get(&self, name: &str) -> Result<Shed, ClientError> {
        self.get_json(&format!("/api/sheds/{name}")).await
    }

    /// `POST /api/sheds`.
    pub async fn create(&self, request: &CreateShedRequest) -> Result<Shed, ClientError> {
        let shed = self
            .call(Method::POST, "/api/sheds", Some(request), CREATE_TIMEOUT)
            .await?;
        self.expect(shed)
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
        let path = format!("/api/sheds/{name}/start");
        let shed = self
            .call(Method::POST, &path, None::<&()>, QUICK_TIMEOUT)
            .await?;
        self.expect(shed)
    }

    /// `POST /api/sheds/{name}/stop`.
    pub async fn stop(&self, name: &str) -> Result<Shed, ClientError> {
        let path = format!("/api/sheds/{name}/stop");
        let shed = self
            .call(Method::POST, &path, None::<&()>, QUICK_TIMEOUT)
            .await?;
        self.expect(shed)
    }
}

impl ApiClient {
    /// `GET /api/sheds/{shed}/sessions`.
    pub async fn list_sessions(&self, shed: &str) -> Result<Vec<SessionInfo>, ClientError> {
        Ok(self
            .get_json::<SessionList>(&format!("/api/sheds/{shed}/sessions"))
            .await?
            .sessions)
    }

    /// `GET /api/sheds/{shed}/sessions/{session}`.
    pub async fn get_session(&self, shed: &str, session: &str) -> Result<SessionInfo, ClientError> {
        self.get_json(&format!("/api/sheds/{shed}/sessions/{session}"))
            .await
    }

    /// `GET /api/sessions`.
    pub async fn all_sessions(&self) -> Result<AllSessions, ClientError> {
        self.get_json("/api/sessions").await
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
        self.expect(session)
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
