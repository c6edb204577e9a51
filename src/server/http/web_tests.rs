//! The web page's routes over the fakes, one request at a time, and the
//! browser terminal over [`FakeExec`] on a real socket with a real
//! WebSocket client.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Ws;
use tower::ServiceExt;

use super::terminal::Terminals;
use super::*;
use crate::server::backend::{NewSession, NewShed};
use crate::server::exec::fake::{FakeExec, Script};
use crate::server::exec::TtySize;
use crate::server::fake::FakeBackend;

const TOKEN: &str = "full-token-0123";
const VIEWER: &str = "viewer-token-0123";
/// How long a test waits for anything before failing.
const DEADLINE: Duration = Duration::from_secs(10);

/// A fake server with shed `demo` running session `main`.
struct Fixture {
    backend: Arc<FakeBackend>,
    exec: Arc<FakeExec>,
    terminals: Terminals,
    tokens: bool,
    tls: bool,
}

impl Fixture {
    async fn new() -> Fixture {
        let backend = Arc::new(FakeBackend::default());
        backend
            .create(NewShed {
                name: "demo".into(),
                image: "img".into(),
                repo: None,
                idle_stop_after: None,
            })
            .await
            .unwrap();
        backend
            .create_session(
                "demo",
                NewSession {
                    name: "main".into(),
                    command: None,
                    cwd: "/workspace".into(),
                    env: Vec::new(),
                    restore: None,
                },
            )
            .await
            .unwrap();
        Fixture {
            backend,
            exec: FakeExec::with_shed("demo"),
            terminals: Terminals::default(),
            tokens: false,
            tls: false,
        }
    }

    fn with_tokens(self) -> Fixture {
        Fixture {
            tokens: true,
            ..self
        }
    }

    fn state(&self) -> AppState {
        AppState {
            sessions: crate::server::sessions::Sessions::new(
                self.backend.clone(),
                4,
                crate::server::sessions::PER_SHED_TIMEOUT,
            ),
            backend: self.backend.clone(),
            info: ServerInfo {
                name: "box".into(),
                version: "0".into(),
                http_port: 1,
                ssh_port: 2,
            },
            default_image: "img".into(),
            api_token: self.tokens.then(|| Arc::from(TOKEN)),
            api_token_read_only: self.tokens.then(|| Arc::from(VIEWER)),
            tls: self.tls,
            exec: self.exec.clone(),
            terminals: self.terminals.clone(),
            ssh_host_key: None,
            gateway: crate::server::ssh::supervisor::GatewayHealth::up(),
            events: Arc::new(crate::server::events::EventBus::new(16)),
            install_hooks: false,
        }
    }

    /// The router as shed-server serves it: behind the Host/Origin guard.
    fn app(&self) -> Router {
        let policy = HostPolicy::new([127, 0, 0, 1].into(), self.tls, Vec::new());
        with_host_guard(router(self.state()), policy)
    }

    /// Serves the app on a real loopback socket.
    async fn serve(&self) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = axum::serve(listener, self.app());
        let task = tokio::spawn(async move { serving.await });
        Served { addr, task }
    }
}

/// A served app; stopped when dropped.
struct Served {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const TERMINAL: &str = "/api/sheds/demo/sessions/main/terminal";

impl Served {
    /// Opens the terminal WebSocket at `path` with `headers`; a refusal
    /// comes back as its status and JSON body.
    async fn open(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Socket, (u16, serde_json::Value)> {
        let mut request = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .unwrap();
        for (k, v) in headers {
            request.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        match tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(request))
            .await
            .expect("the upgrade answered")
        {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.into_body().unwrap_or_default();
                let json = serde_json::from_slice(&body).unwrap_or_else(|_| {
                    panic!("non-JSON refusal: {}", String::from_utf8_lossy(&body))
                });
                Err((status, json))
            }
            Err(e) => panic!("websocket failed: {e}"),
        }
    }
}

/// Output bytes until `want` shows up in them, or the socket closes; the
/// close frame, if any.
async fn read_until(socket: &mut Socket, want: &[u8]) -> (Vec<u8>, Option<CloseFrame>) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if !want.is_empty() && seen.windows(want.len()).any(|w| w == want) {
            return (seen, None);
        }
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; saw {:?}", String::from_utf8_lossy(&seen)));
        match next {
            Some(Ok(Ws::Binary(bytes))) => seen.extend_from_slice(&bytes),
            Some(Ok(Ws::Close(frame))) => return (seen, frame),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (seen, None),
        }
    }
}

/// Sends a ping and waits for its pong: the server has read every frame
/// sent before.
async fn sync(socket: &mut Socket, seen: &mut Vec<u8>) {
    socket
        .send(Ws::Ping(b"sync".to_vec().into()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap()
        {
            Some(Ok(Ws::Pong(p))) if &p[..] == b"sync" => return,
            Some(Ok(Ws::Binary(bytes))) => seen.extend_from_slice(&bytes),
            Some(Ok(_)) => {}
            other => panic!("socket ended while syncing: {other:?}"),
        }
    }
}

fn resize(cols: u16, rows: u16) -> Ws {
    Ws::Text(format!(r#"{{"type":"resize","cols":{cols},"rows":{rows}}}"#).into())
}

/// Waits until `done` holds, up to [`DEADLINE`].
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_terminal_attaches_to_the_session_and_pumps_both_ways() {
    let fixture = Fixture::new().await;
    let served = fixture.serve().await;
    let mut socket = served
        .open(&format!("{TERMINAL}?cols=100&rows=30"), &[])
        .await
        .unwrap();
    let record = fixture.exec.record(0).await;
    assert_eq!(record.shed, "demo");
    assert_eq!(
        record.request.cmd,
        ["tmux", "-u", "attach-session", "-t", "=main"]
    );
    assert_eq!(record.request.env, ["TERM=xterm-256color"]);
    assert_eq!(
        record.request.tty,
        Some(TtySize {
            cols: 100,
            rows: 30
        })
    );

    // Input reaches the process byte for byte, and its output the browser.
    let typed = "héllo ✓\u{3}".as_bytes();
    socket
        .send(Ws::Binary(typed.to_vec().into()))
        .await
        .unwrap();
    let (seen, closed) = read_until(&mut socket, typed).await;
    assert!(closed.is_none(), "{closed:?}");
    assert_eq!(seen, typed);

    socket.send(resize(120, 40)).await.unwrap();
    // Junk and out-of-bounds resizes are ignored; the socket stays open.
    for junk in [
        "not json",
        r#"{"type":"paste","text":"x"}"#,
        r#"{"type":"resize","cols":0,"rows":10}"#,
        r#"{"type":"resize","cols":10,"rows":5000}"#,
    ] {
        socket.send(Ws::Text(junk.into())).await.unwrap();
    }
    socket.send(resize(90, 20)).await.unwrap();
    let resizes = fixture.exec.resizes(0, 2).await;
    assert_eq!(
        resizes,
        [
            TtySize {
                cols: 120,
                rows: 40
            },
            TtySize { cols: 90, rows: 20 }
        ]
    );
    assert_eq!(fixture.terminals.open(), 1);

    // Closing the socket hangs up on the tmux client (which detaches).
    socket.close(None).await.unwrap();
    assert_eq!(fixture.exec.signals(0, 1).await, ["HUP"]);
    eventually("the slot to free", || fixture.terminals.open() == 0).await;
}

#[tokio::test]
async fn the_size_defaults_to_80x24_and_is_bounded() {
    let fixture = Fixture::new().await;
    let served = fixture.serve().await;
    let _socket = served.open(TERMINAL, &[]).await.unwrap();
    let record = fixture.exec.record(0).await;
    assert_eq!(record.request.tty, Some(TtySize { cols: 80, rows: 24 }));
    for query in [
        "cols=0",
        "rows=1001",
        "cols=-1",
        "cols=abc",
        "cols=99999999999",
        "bogus=1",
    ] {
        let (status, body) = served
            .open(&format!("{TERMINAL}?{query}"), &[])
            .await
            .err()
            .unwrap_or_else(|| panic!("{query} was accepted"));
        assert_eq!(
            (status, &body["error"]["code"]),
            (400, &"INVALID_REQUEST".into()),
            "{query}"
        );
    }
    assert_eq!(fixture.exec.started(), 1);
}

#[tokio::test]
async fn when_the_process_ends_the_socket_closes_with_1000() {
    let fixture = Fixture::new().await;
    fixture.exec.script(Script::Exit {
        stdout: b"[exited]\r\n".to_vec(),
        stderr: Vec::new(),
        code: 0,
    });
    let served = fixture.serve().await;
    let mut socket = served.open(TERMINAL, &[]).await.unwrap();
    let (seen, closed) = read_until(&mut socket, b"").await;
    assert_eq!(seen, b"[exited]\r\n");
    let closed = closed.expect("a close frame");
    assert_eq!(
        (u16::from(closed.code), closed.reason.as_str()),
        (1000, "ended")
    );
    assert!(fixture.exec.record(0).await.signals.is_empty());
}

#[tokio::test]
async fn what_cannot_attach_is_refused_before_the_upgrade() {
    let fixture = Fixture::new().await;
    fixture
        .backend
        .create(NewShed {
            name: "idle".into(),
            image: "img".into(),
            repo: None,
            idle_stop_after: None,
        })
        .await
        .unwrap();
    fixture.backend.stop("idle").await.unwrap();
    let served = fixture.serve().await;
    for (path, status, code) in [
        (
            "/api/sheds/nope/sessions/main/terminal",
            404,
            "SHED_NOT_FOUND",
        ),
        (
            "/api/sheds/demo/sessions/nope/terminal",
            404,
            "SESSION_NOT_FOUND",
        ),
        (
            "/api/sheds/idle/sessions/main/terminal",
            409,
            "SHED_NOT_RUNNING",
        ),
        (
            "/api/sheds/Bad.Name/sessions/main/terminal",
            400,
            "INVALID_NAME",
        ),
        (
            "/api/sheds/demo/sessions/a.b/terminal",
            400,
            "INVALID_SESSION_NAME",
        ),
    ] {
        let (s, body) = served.open(path, &[]).await.expect_err(path);
        assert_eq!(
            (s, body["error"]["code"].as_str().unwrap()),
            (status, code),
            "{path}"
        );
    }
    // A plain GET (no upgrade) is a clean JSON 426, not a server error.
    let response = reqwest::get(format!("http://{}{TERMINAL}", served.addr))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 426);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UPGRADE_REQUIRED");
    assert_eq!(fixture.exec.started(), 0);
}

#[tokio::test]
async fn a_cross_origin_upgrade_is_refused() {
    let fixture = Fixture::new().await;
    let served = fixture.serve().await;
    let (status, body) = served
        .open(TERMINAL, &[("origin", "http://evil.example")])
        .await
        .expect_err("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("FORBIDDEN"))
    );
    let own = format!("http://{}", served.addr);
    served.open(TERMINAL, &[("origin", &own)]).await.unwrap();
    assert_eq!(fixture.exec.started(), 1);
}

#[tokio::test]
async fn with_a_token_the_terminal_needs_the_cookie_or_the_bearer() {
    let fixture = Fixture::new().await.with_tokens();
    let served = fixture.serve().await;
    for headers in [
        &[][..],
        &[("cookie", "shed_token=wrong-token-000")][..],
        &[("cookie", "other=full-token-0123")][..],
    ] {
        let (status, body) = served.open(TERMINAL, headers).await.expect_err("refused");
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("UNAUTHORIZED"))
        );
    }
    assert_eq!(fixture.exec.started(), 0);
    let cookie = format!("theme=dark; shed_token={TOKEN}");
    served.open(TERMINAL, &[("cookie", &cookie)]).await.unwrap();
    let bearer = format!("Bearer {TOKEN}");
    served
        .open(TERMINAL, &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(fixture.exec.started(), 2);
}

#[tokio::test]
async fn the_read_only_token_views_but_never_types() {
    let fixture = Fixture::new().await.with_tokens();
    let served = fixture.serve().await;
    let cookie = format!("shed_token={VIEWER}");
    let mut socket = served.open(TERMINAL, &[("cookie", &cookie)]).await.unwrap();
    let record = fixture.exec.record(0).await;
    assert_eq!(
        record.request.cmd,
        ["tmux", "-u", "attach-session", "-r", "-t", "=main"]
    );
    socket
        .send(Ws::Binary(b"rm -rf /\r".to_vec().into()))
        .await
        .unwrap();
    socket.send(resize(50, 10)).await.unwrap();
    let mut seen = Vec::new();
    sync(&mut socket, &mut seen).await;
    // End the (echoing) process: whatever it echoed is out before the close.
    let id = "exec-0";
    crate::server::exec::InteractiveExec::signal(&*fixture.exec, "demo", id, "TERM")
        .await
        .unwrap();
    let (rest, closed) = read_until(&mut socket, b"").await;
    seen.extend(rest);
    assert_eq!(closed.map(|c| u16::from(c.code)), Some(1000));
    assert!(seen.is_empty(), "input got through: {seen:?}");
    assert!(fixture.exec.record(0).await.resizes.is_empty());

    // Reads work, writes do not.
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", served.addr);
    let listed = client
        .get(url("/api/sheds"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 200);
    let created = client
        .post(url("/api/sheds"))
        .header("authorization", format!("Bearer {VIEWER}"))
        .json(&serde_json::json!({"name": "new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 403);
    let body: serde_json::Value = created.json().await.unwrap();
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("read-only token"));
    let servers: serde_json::Value = client
        .get(url("/ui/servers"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(servers["read_only"], true);
}

#[tokio::test]
async fn terminals_are_bounded() {
    let mut fixture = Fixture::new().await;
    fixture.terminals = Terminals::new(2);
    let served = fixture.serve().await;
    let first = served.open(TERMINAL, &[]).await.unwrap();
    let _second = served.open(TERMINAL, &[]).await.unwrap();
    let (status, body) = served.open(TERMINAL, &[]).await.expect_err("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("TOO_MANY_TERMINALS"))
    );
    assert_eq!(fixture.exec.started(), 2);
    drop(first);
    eventually("a slot to free", || fixture.terminals.open() == 1).await;
    served.open(TERMINAL, &[]).await.unwrap();
}

#[tokio::test]
async fn a_browser_that_stops_answering_pings_is_dropped() {
    let mut fixture = Fixture::new().await;
    fixture.terminals = Terminals::default().with_ping(Duration::from_millis(100));
    let served = fixture.serve().await;
    // Never read: the client answers no ping.
    let _socket = served.open(TERMINAL, &[]).await.unwrap();
    assert_eq!(fixture.exec.signals(0, 1).await, ["HUP"]);
    eventually("the slot to free", || fixture.terminals.open() == 0).await;
}

/// Sends `request` to the app; status, headers and body text.
async fn send(
    app: &Router,
    request: axum::http::Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn get(uri: &str, headers: &[(&str, &str)]) -> axum::http::Request<Body> {
    let mut request = axum::http::Request::get(uri).header("host", "127.0.0.1:8080");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.body(Body::empty()).unwrap()
}

fn form(uri: &str, content_type: Option<&str>, body: &str) -> axum::http::Request<Body> {
    let mut request = axum::http::Request::post(uri).header("host", "127.0.0.1:8080");
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    request.body(Body::from(body.to_string())).unwrap()
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

fn assert_page_headers(headers: &axum::http::HeaderMap) {
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self';",
        "frame-ancestors 'none'",
        "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
}

#[tokio::test]
async fn the_page_is_served_with_its_security_headers() {
    let fixture = Fixture::new().await;
    let app = fixture.app();
    let (status, headers, body) = send(&app, get("/", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_page_headers(&headers);
    let index = crate::web::asset("index.html").unwrap();
    assert_eq!(body.as_bytes(), index.body);
    assert!(!body.contains("name=\"token\""));

    let (status, headers, body) = send(&app, get("/assets/index.html", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_bytes(), index.body);
    assert_page_headers(&headers);
    assert_eq!(headers["cache-control"], "no-cache");
    for missing in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/x",
    ] {
        let (status, _, body) = send(&app, get(missing, &[])).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert!(body.contains("\"NOT_FOUND\""), "{body}");
    }
    // No token configured: /ui/servers is open, and full.
    let (status, _, body) = send(&app, get("/ui/servers", &[])).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"servers": [{"name": "box", "base": ""}], "read_only": false})
    );
}

#[tokio::test]
async fn with_a_token_the_page_asks_for_it_and_the_cookie_lets_in() {
    let fixture = Fixture::new().await.with_tokens();
    let app = fixture.app();
    for headers in [&[][..], &[("cookie", "shed_token=nope-nope-nope")][..]] {
        let (status, headers, body) = send(&app, get("/", headers)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("name=\"token\"") && body.contains("action=\"login\""),
            "{body}"
        );
        assert_page_headers(&headers);
    }
    let cookie = format!("shed_token={TOKEN}");
    let (status, _, body) = send(&app, get("/", &[("cookie", &cookie)])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body.as_bytes(),
        crate::web::asset("index.html").unwrap().body
    );
    // Assets hold no data: no token needed.
    let (status, _, _) = send(&app, get("/assets/index.html", &[])).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, body) = send(&app, get("/ui/servers", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, body) = send(&app, get("/ui/servers", &[("cookie", &cookie)])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"read_only\":false"), "{body}");
    let (status, _, _) = send(&app, get("/api/sheds", &[("cookie", &cookie)])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn login_sets_the_cookie_and_logout_clears_it() {
    let fixture = Fixture::new().await.with_tokens();
    let app = fixture.app();
    let (status, headers, _) = send(&app, form("/login", FORM, &format!("token={TOKEN}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "./");
    assert_eq!(
        headers["set-cookie"],
        format!("shed_token={TOKEN}; HttpOnly; SameSite=Strict; Path=/").as_str()
    );
    let (status, headers, _) =
        send(&app, form("/login", FORM, &format!("token={VIEWER}&go=1"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with(&format!("shed_token={VIEWER};")));

    let (status, headers, body) = send(&app, form("/login", FORM, "token=guess-guess-guess")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("set-cookie").is_none());
    assert!(
        body.contains("name=\"token\"") && body.contains("not this server"),
        "{body}"
    );
    assert_page_headers(&headers);

    let (status, headers, _) = send(&app, form("/logout", None, "")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "./");
    let cleared = headers["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("shed_token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // Under TLS the cookie is Secure.
    let mut tls = Fixture::new().await.with_tokens();
    tls.tls = true;
    let (_, headers, _) = send(&tls.app(), form("/login", FORM, &format!("token={TOKEN}"))).await;
    assert!(headers["set-cookie"]
        .to_str()
        .unwrap()
        .ends_with("; Secure"));
}

#[tokio::test]
async fn junk_login_forms_are_client_errors() {
    let fixture = Fixture::new().await.with_tokens();
    let app = fixture.app();
    for (content_type, body, status) in [
        (None, "token=x", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            Some("application/json"),
            r#"{"token":"x"}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (FORM, "", StatusCode::BAD_REQUEST),
        (FORM, "tokn=x", StatusCode::BAD_REQUEST),
        (FORM, "%%%&&&==", StatusCode::BAD_REQUEST),
        (FORM, "token=a&token=b", StatusCode::BAD_REQUEST),
    ] {
        let (s, _, text) = send(&app, form("/login", content_type, body)).await;
        assert_eq!(s, status, "{content_type:?} {body:?}: {text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect(&text);
        assert!(json["error"]["code"].is_string(), "{json}");
    }
    // Without a token configured a login has nothing to remember.
    let open = Fixture::new().await.app();
    let (status, headers, _) = send(&open, form("/login", FORM, "token=anything")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn an_attach_that_cannot_start_closes_with_1011() {
    let mut fixture = Fixture::new().await;
    // The backend lists the session, but the exec side knows no such shed.
    fixture.exec = FakeExec::with_shed("elsewhere");
    let served = fixture.serve().await;
    let mut socket = served.open(TERMINAL, &[]).await.unwrap();
    let (seen, closed) = read_until(&mut socket, b"").await;
    assert!(seen.is_empty());
    let closed = closed.expect("a close frame");
    assert_eq!(u16::from(closed.code), 1011, "{closed:?}");
    eventually("the slot to free", || fixture.terminals.open() == 0).await;
}

#[tokio::test]
async fn a_frame_over_64_kib_drops_the_browser() {
    let fixture = Fixture::new().await;
    let served = fixture.serve().await;
    let mut socket = served.open(TERMINAL, &[]).await.unwrap();
    let big = vec![b'x'; terminal::MAX_FRAME_BYTES + 1];
    // The server may cut the connection while this is still being written.
    let _ = socket.send(Ws::Binary(big.into())).await;
    assert_eq!(fixture.exec.signals(0, 1).await, ["HUP"]);
    let (seen, _) = read_until(&mut socket, b"").await;
    assert!(seen.is_empty(), "the oversized frame got through");
}
