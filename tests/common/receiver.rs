//! A notification receiver on 127.0.0.1:0: records every request (headers
//! and body) and answers with the statuses a test scripts, 200 after them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    /// A header as text, empty when missing.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inner {
    got: Vec<Received>,
    /// Statuses to answer, in order, per session named in the body (`*`: any).
    script: VecDeque<(String, u16)>,
}

/// A running receiver; stops with the test's runtime.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Receiver {
    /// Starts one.
    pub async fn start() -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .fallback(record)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { inner, addr }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request whose body names `session` (or any, for `*`) is
    /// answered with `status`.
    pub fn answer_next(&self, session: &str, status: u16) {
        self.inner
            .lock()
            .unwrap()
            .script
            .push_back((session.to_string(), status));
    }

    /// Every request so far.
    pub fn got(&self) -> Vec<Received> {
        self.inner.lock().unwrap().got.clone()
    }
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let session = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["session"].as_str().map(str::to_string))
        .unwrap_or_default();
    let mut inner = inner.lock().unwrap();
    let pos = inner
        .script
        .iter()
        .position(|(s, _)| s == "*" || *s == session);
    let status = pos
        .and_then(|i| inner.script.remove(i))
        .map(|(_, s)| s)
        .unwrap_or(200);
    inner.got.push(Received {
        headers,
        body: body.to_vec(),
        status,
    });
    StatusCode::from_u16(status).unwrap()
}

/// Whether `received` carries a valid signature for `secret`, checked here
/// with the hmac crate directly (not the server's code): HMAC-SHA256 over
/// the timestamp header, `.`, and the body, hex after `sha256=`.
pub fn signature_ok(received: &Received, secret: &[u8]) -> bool {
    let timestamp = received.header("X-Shed-Timestamp");
    let Some(hex) = received
        .header("X-Shed-Signature-256")
        .strip_prefix("sha256=")
        .map(str::to_string)
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    !timestamp.is_empty() && hex == expected
}
