//! The browser terminal on real Docker and real tmux: a real shed-server,
//! a shed with a session, and a WebSocket client where the browser would be.

mod common;

use std::time::Duration;

use common::http::{get, post};
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Socket = WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long any one expectation may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Opens the terminal of `shed`/`session` as the page would: same-origin.
async fn open(server: &TestServer, shed: &str, session: &str, query: &str) -> Socket {
    let url = format!(
        "ws://127.0.0.1:{}/api/sheds/{shed}/sessions/{session}/terminal?{query}",
        server.port
    );
    let mut request = url.into_client_request().unwrap();
    let origin = format!("http://127.0.0.1:{}", server.port);
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|e| panic!("opening the terminal failed: {e}"));
    assert_eq!(response.status().as_u16(), 101);
    socket
}

/// Reads output until its text (lossily decoded) satisfies `done`.
async fn read_until<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocketStream<S>,
    seen: &mut Vec<u8>,
    what: &str,
    done: impl Fn(&str) -> bool,
) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done(&String::from_utf8_lossy(seen)) {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => seen.extend_from_slice(&bytes),
            Ok(Some(Ok(Message::Close(frame)))) => panic!("closed ({frame:?}) before {what}"),
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("socket ended ({other:?}) before {what}"),
            Err(_) => panic!(
                "timed out waiting for {what}; saw {:?}",
                String::from_utf8_lossy(seen)
            ),
        }
    }
}

async fn type_in<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocketStream<S>, text: &str) {
    socket
        .send(Message::Binary(text.as_bytes().to_vec().into()))
        .await
        .unwrap();
}

/// `tmux` run in the shed, its output trimmed.
fn tmux(server: &TestServer, shed: &str, args: &[&str]) -> String {
    let container = server.container(shed);
    let mut all = vec!["exec", container.as_str(), "tmux"];
    all.extend_from_slice(args);
    docker(&all).trim().to_string()
}

/// The sizes of the tmux clients attached to `session`, `WxH` a line.
fn client_sizes(server: &TestServer, shed: &str, session: &str) -> String {
    tmux(
        server,
        shed,
        &[
            "list-clients",
            "-t",
            &format!("={session}"),
            "-F",
            "#{client_width}x#{client_height}",
        ],
    )
}

/// Waits until `probe` returns `want`; the last value otherwise.
fn wait_for(what: &str, want: &str, probe: impl Fn() -> String) {
    let mut last = String::new();
    let ok = wait_until(DEADLINE, || {
        last = probe();
        last == want
    });
    assert!(ok, "{what}: wanted {want:?}, last saw {last:?}");
}

#[tokio::test]
async fn a_browser_terminal_types_resizes_interrupts_and_detaches() {
    let server = TestServer::start();
    make_shed(&server, "web").await;
    let r = post(&server.url("/api/sheds/web/sessions"), r#"{"name":"main"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);

    let mut socket = open(&server, "web", "main", "cols=100&rows=30").await;
    // tmux itself sees a client of the asked size on this session.
    let clients = || client_sizes(&server, "web", "main");
    wait_for("the client's size", "100x30", clients);
    let session = server.url("/api/sheds/web/sessions/main");
    let (attached, info) = eventually(DEADLINE, || async {
        let r = get(&session).await;
        (r.json["attached"] == 1, r.json)
    })
    .await;
    assert!(attached, "the session does not read as attached: {info}");

    // Typing reaches the shell; its output reaches the browser.
    let mut seen = Vec::new();
    type_in(&mut socket, "echo hi-$RANDOM-marker\r").await;
    let marker = regex::Regex::new("hi-[0-9]+-marker").unwrap();
    read_until(&mut socket, &mut seen, "the echo", |t| marker.is_match(t)).await;

    // A resize reaches tmux's client.
    socket
        .send(Message::Text(
            r#"{"type":"resize","cols":120,"rows":40}"#.into(),
        ))
        .await
        .unwrap();
    wait_for("the resized client", "120x40", clients);

    // Ctrl-C interrupts the foreground program.
    type_in(&mut socket, "sleep 100\r").await;
    let command = || {
        tmux(
            &server,
            "web",
            &[
                "display-message",
                "-p",
                "-t",
                "=main:",
                "#{pane_current_command}",
            ],
        )
    };
    wait_for("sleep in the foreground", "sleep", command);
    type_in(&mut socket, "\u{3}").await;
    type_in(&mut socket, "echo after-$((6*7))-int\r").await;
    read_until(&mut socket, &mut seen, "the echo after Ctrl-C", |t| {
        t.contains("after-42-int")
    })
    .await;

    // UTF-8 goes through byte for byte, both ways.
    type_in(&mut socket, "printf '%s-%s\\n' 'héllo ✓' done\r").await;
    read_until(&mut socket, &mut seen, "the UTF-8 text", |t| {
        t.contains("héllo ✓-done")
    })
    .await;

    // Closing the page detaches: the session goes on, unattached.
    socket.close(None).await.unwrap();
    drop(socket);
    wait_for("no client left", "", clients);
    assert_eq!(tmux_sessions(&server.container("web")), ["main"]);
    let (detached, info) = eventually(DEADLINE, || async {
        let r = get(&session).await;
        (r.status == 200 && r.json["attached"] == 0, r.json)
    })
    .await;
    assert!(detached, "the session did not survive detached: {info}");
    // And the shell in it still answers.
    let input = server.url("/api/sheds/web/sessions/main/input");
    let r = post(
        &input,
        r#"{"text":"echo still-$((2+3))-here","enter":true}"#,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.json);
    let output = server.url("/api/sheds/web/sessions/main/output?lines=50");
    let (found, text) = eventually(DEADLINE, || async {
        let text = get(&output).await.json["output"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (text.contains("still-5-here"), text)
    })
    .await;
    assert!(found, "{text}");
}

#[tokio::test]
async fn the_terminal_of_what_is_not_there_is_a_json_error() {
    let server = TestServer::start();
    make_shed(&server, "web").await;
    let url = server.url("/api/sheds/web/sessions/nope/terminal");
    let r = get(&url).await;
    assert_eq!(
        (r.status, r.code()),
        (404, "SESSION_NOT_FOUND"),
        "{}",
        r.json
    );
    let r = post(&server.url("/api/sheds/web/sessions"), r#"{"name":"main"}"#).await;
    assert_eq!(r.status, 201, "{}", r.json);
    // Without the upgrade headers: a clean 426, not a server error.
    let r = get(&server.url("/api/sheds/web/sessions/main/terminal")).await;
    assert_eq!(
        (r.status, r.code()),
        (426, "UPGRADE_REQUIRED"),
        "{}",
        r.json
    );
}

/// Opens `url` (wss) over a TLS connection that trusts only the certificate
/// pinned by `fingerprint`, with these extra request headers.
async fn open_wss(
    server: &TestServer,
    fingerprint: &str,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<
    WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let (config, _) = shed::client::tls::pinned_config(Some(fingerprint)).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a TLS handshake with the pinned certificate");
    let mut request = format!("wss://127.0.0.1:{}{path}", server.port)
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(*k, v.parse().unwrap());
    }
    tokio_tungstenite::client_async(request, tls)
        .await
        .map(|(socket, response)| {
            assert_eq!(response.status().as_u16(), 101);
            socket
        })
}

#[tokio::test]
async fn the_terminal_runs_over_tls_with_the_login_cookie() {
    const TOKEN: &str = "wss-token-0123456789";
    let server = TestServer::start_with(ServerOpts {
        extra: format!("tls = \"on\"\napi_token = {TOKEN:?}\n"),
        ..ServerOpts::default()
    });
    // Trust exactly the server's certificate, as the CLI does: by the
    // fingerprint `shed-server host-key --tls` tells out of band.
    let fingerprint = server_fingerprint(&server, true);
    let (config, presented) = shed::client::tls::pinned_config(Some(&fingerprint)).unwrap();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}", server.port);
    for (path, body) in [
        ("/api/sheds", r#"{"name":"web"}"#),
        ("/api/sheds/web/sessions", r#"{"name":"main"}"#),
    ] {
        let r = client
            .post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{path}: {}", r.text().await.unwrap());
    }
    assert_eq!(presented.get().as_deref(), Some(fingerprint.as_str()));

    // The login form's answer over real TLS: a cookie only HTTPS carries.
    let r = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .expect("the login sets a cookie")
        .to_str()
        .unwrap()
        .to_string();
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    for want in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(
            attributes.contains(&want),
            "the login cookie lacks {want}: {set_cookie}"
        );
    }
    let cookie = attributes[0];
    assert_eq!(cookie, format!("shed_token={TOKEN}"));

    let path = "/api/sheds/web/sessions/main/terminal?cols=90&rows=20";
    let origin = base.clone();
    // Without the cookie the upgrade is refused, so the cookie is what opens it.
    match open_wss(&server, &fingerprint, path, &[("origin", &origin)]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401)
        }
        other => panic!("a terminal without the cookie: {:?}", other.map(|_| ())),
    }
    let mut socket = open_wss(
        &server,
        &fingerprint,
        path,
        &[("origin", &origin), ("cookie", cookie)],
    )
    .await
    .unwrap_or_else(|e| panic!("opening the terminal over wss failed: {e}"));
    let clients = || client_sizes(&server, "web", "main");
    wait_for("the wss client's size", "90x20", clients);
    let mut seen = Vec::new();
    type_in(&mut socket, "echo wss-$((6*7))-ok\r").await;
    read_until(&mut socket, &mut seen, "the echo over wss", |t| {
        t.contains("wss-42-ok")
    })
    .await;
    socket.close(None).await.unwrap();
    drop(socket);
    wait_for("no client left", "", clients);
}
