//! A scripted shed API server on 127.0.0.1 (optionally behind TLS) that
//! answers whatever a test tells it to, records every request, and serves
//! `GET /api/events` as a Server-Sent Events stream the test feeds: a server
//! that may lie, for the CLI's tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head the fake server reads.
const MAX_HEAD: usize = 64 * 1024;

type Routes = Arc<Mutex<HashMap<String, (u16, String)>>>;

/// The events published so far, and how many times the streams were cut.
#[derive(Default)]
struct EventLog {
    events: Vec<(u64, String)>,
    /// Bumped by [`FakeApi::drop_streams`]: streams opened before end.
    cuts: u64,
}

#[derive(Clone)]
struct Shared {
    routes: Routes,
    requests: Arc<Mutex<Vec<String>>>,
    log: Arc<Mutex<EventLog>>,
    /// Bumped on every change to `log`, to wake the open streams.
    bell: Arc<tokio::sync::watch::Sender<u64>>,
}

/// A scripted shed-server on 127.0.0.1.
pub struct FakeApi {
    /// Its HTTP(S) port.
    pub port: u16,
    shared: Shared,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeApi {
    /// A server with no routes (every request gets a 404 error body),
    /// plain HTTP, or HTTPS with `tls`.
    pub fn bare(tls: Option<Arc<rustls::ServerConfig>>) -> FakeApi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Shared {
            routes: Arc::default(),
            requests: Arc::default(),
            log: Arc::default(),
            bell: Arc::new(tokio::sync::watch::channel(0).0),
        };
        let s = shared.clone();
        runtime.spawn(async move {
            let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
            while let Ok((stream, _)) = listener.accept().await {
                let (s, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                serve(tls, s).await;
                            }
                        }
                        None => serve(stream, s).await,
                    }
                });
            }
        });
        FakeApi {
            port,
            shared,
            runtime: Some(runtime),
        }
    }

    /// Answers `method_path` (e.g. `GET /api/sheds`, no query) with `body`.
    pub fn route(&self, method_path: &str, status: u16, body: Value) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(method_path.to_string(), (status, body.to_string()));
    }

    /// Every request received so far: head and body.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Publishes an event on `/api/events` (unless a test routed that path
    /// itself); returns its id.
    pub fn push_event(&self, kind: &str, shed: &str, session: Option<&str>, data: Value) -> u64 {
        let id = {
            let mut log = self.shared.log.lock().unwrap();
            let id = log.events.len() as u64 + 1;
            let mut event = json!({
                "id": id, "kind": kind, "shed": shed,
                "at": "2026-01-01T00:00:00Z", "data": data,
            });
            if let Some(session) = session {
                event["session"] = json!(session);
            }
            let frame = format!("id: {id}\nevent: {kind}\ndata: {event}\n\n");
            log.events.push((id, frame));
            id
        };
        self.shared.bell.send_modify(|n| *n += 1);
        id
    }

    /// Ends every open event stream, as a dropped connection would.
    pub fn drop_streams(&self) {
        self.shared.log.lock().unwrap().cuts += 1;
        self.shared.bell.send_modify(|n| *n += 1);
    }

    /// The requests for `/api/events` received so far.
    pub fn event_requests(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.starts_with("GET /api/events"))
            .collect()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One request per connection, answered and closed.
async fn serve(mut stream: impl AsyncRead + AsyncWrite + Unpin, shared: Shared) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                if !buf.is_empty() {
                    shared
                        .requests
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf).into_owned());
                }
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(MAX_HEAD);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    shared
        .requests
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&buf).into_owned());
    let mut first = head.lines().next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default();
    let path = first.next().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    let key = format!("{method} {path}");
    let routed = shared.routes.lock().unwrap().get(&key).cloned();
    if routed.is_none() && key == "GET /api/events" {
        let after: u64 = header("last-event-id")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        events(stream, &shared, after).await;
        return;
    }
    let (status, body) = routed.unwrap_or((
        404,
        json!({"error": {"code": "NOT_FOUND", "message": "no such route"}}).to_string(),
    ));
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// An event stream: every event after `after`, then each new one, until
/// [`FakeApi::drop_streams`] or the client leaves.
async fn events(mut stream: impl AsyncWrite + Unpin, shared: &Shared, mut after: u64) {
    let mut bell = shared.bell.subscribe();
    let cuts = shared.log.lock().unwrap().cuts;
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n: hello\n\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    loop {
        let (frames, cut) = {
            let log = shared.log.lock().unwrap();
            let frames: Vec<(u64, String)> = log
                .events
                .iter()
                .filter(|(id, _)| *id > after)
                .cloned()
                .collect();
            (frames, log.cuts != cuts)
        };
        // What was published before a cut is sent first, so a test that
        // pushes then cuts knows the client saw the event.
        for (id, frame) in frames {
            if stream.write_all(frame.as_bytes()).await.is_err() {
                return;
            }
            after = id;
        }
        let _ = stream.flush().await;
        if cut {
            let _ = stream.shutdown().await;
            return;
        }
        if bell.changed().await.is_err() {
            return;
        }
    }
}
