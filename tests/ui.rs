//! `shed ui` end to end: a real `shed ui` process relaying to two real
//! shed-servers (one over plain HTTP, one over TLS with a pinned
//! certificate, both with a token), real Docker and tmux behind them.

mod common;

use common::http::{send, Reply};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

/// How long a terminal may take to open or to echo.
const WS_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

const TOKEN_ONE: &str = "ui-token-one-0123456789";
const TOKEN_TWO: &str = "ui-token-two-0123456789";

/// Server `one` (plain HTTP) and server `two` (TLS), both with tokens, in
/// one CLI config, and `shed ui` over them.
struct Setup {
    one: TestServer,
    two: TestServer,
    /// Holds the config (and HOME) `shed ui` runs with.
    _cli: Cli,
    ui: UiProcess,
}

impl Setup {
    fn start() -> Setup {
        let one = TestServer::start_with(ServerOpts {
            extra: format!("api_token = {TOKEN_ONE:?}\n"),
            ..Default::default()
        });
        let two = TestServer::start_with(ServerOpts {
            extra: format!("tls = \"on\"\napi_token = {TOKEN_TWO:?}\n"),
            ..Default::default()
        });
        let cli = Cli::new();
        cli.add_server_with(&one, "one", &["--token", TOKEN_ONE]);
        let url = format!("https://127.0.0.1:{}", two.port);
        cli.ok(&[
            "server",
            "add",
            &url,
            "--name",
            "two",
            "--token",
            TOKEN_TWO,
            "--tls-fingerprint",
            &server_fingerprint(&two, true),
            "--fingerprint",
            &host_key_fingerprint(&two),
        ]);
        let ui = UiProcess::start(&cli, &[]);
        Setup {
            one,
            two,
            _cli: cli,
            ui,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        send(method, &self.ui.url(path), body, &[]).await
    }
}

#[tokio::test]
async fn shed_ui_relays_each_servers_api_events_and_nothing_secret() {
    let s = Setup::start();

    let r = s.call("GET", "/ui/servers", None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        r.json,
        json!({"servers": [
            {"name": "one", "base": "/s/one"},
            {"name": "two", "base": "/s/two"},
        ], "read_only": false, "events": "ui/events"})
    );

    // Each base reaches its own server, with the CLI's token (the browser
    // sends none).
    let info = s.call("GET", "/s/one/api/info", None).await;
    assert_eq!((info.status, &info.json["name"]), (200, &json!(s.one.name)));
    let info = s.call("GET", "/s/two/api/info", None).await;
    assert_eq!((info.status, &info.json["name"]), (200, &json!(s.two.name)));

    // A POST reaches the right server only.
    let r = s
        .call("POST", "/s/one/api/sheds", Some(r#"{"name":"viaui"}"#))
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let direct = send(
        "GET",
        &s.one.url("/api/sheds/viaui"),
        None,
        &[("authorization", &format!("Bearer {TOKEN_ONE}"))],
    )
    .await;
    assert_eq!(direct.status, 200, "{}", direct.json);
    let r = s.call("GET", "/s/two/api/sheds/viaui", None).await;
    assert_eq!((r.status, r.code()), (404, "SHED_NOT_FOUND"), "{}", r.json);

    // The browser's own credentials never travel: a wrong bearer token and
    // a cookie from the page change nothing, and nothing sets a cookie.
    let response = reqwest::Client::new()
        .get(s.ui.url("/s/two/api/sheds"))
        .header("authorization", "Bearer not-the-token")
        .header("cookie", "shed_token=not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none());
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(TOKEN_TWO) && !text.contains(TOKEN_ONE),
        "{text}"
    );

    // The events stream flows through as it happens, over TLS behind.
    make_shed_via(&s, "two", "live").await;
    let mut events = Events::open(&s.ui.url("/s/two/api/events"), &[]).await;
    // And merged with server one's in the page's single stream.
    let mut merged = Merged::open(&s.ui.url("/ui/events")).await;
    for server in ["one", "two"] {
        merged
            .until(&format!("{server}'s stream open"), |m| {
                m.event == "server.open" && m.json["server"] == server
            })
            .await;
    }
    let r = s
        .call(
            "POST",
            "/s/two/api/sheds/live/sessions",
            Some(r#"{"name":"fresh"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
    events
        .until("session.created fresh through shed ui", |g| {
            g.kind == "session.created" && g.json["session"] == "fresh"
        })
        .await;
    merged
        .until("session.created fresh in the merged stream", |m| {
            m.event == "session.created"
                && m.json["server"] == "two"
                && m.json["shed"] == "live"
                && m.json["session"] == "fresh"
        })
        .await;

    // The terminal WebSocket, relayed to the TLS server's: typed input
    // reaches the session and its echo comes back.
    let terminal = "/s/two/api/sheds/live/sessions/fresh/terminal?cols=100&rows=30";
    let mut ws = open_ws(&s.ui.url(terminal), None)
        .await
        .expect("terminal opens");
    ws.send(Ws::Binary(
        "echo ui-$((6*7))-ok\r".as_bytes().to_vec().into(),
    ))
    .await
    .unwrap();
    let screen = read_until(&mut ws, "ui-42-ok").await;
    assert!(screen.contains("ui-42-ok"), "{screen}");
    let _ = ws.close(None).await;

    // The server's refusals pass through before any upgrade.
    let missing = "/s/two/api/sheds/live/sessions/nope/terminal";
    let (status, body) = open_ws(&s.ui.url(missing), None).await.unwrap_err();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("SESSION_NOT_FOUND"), "{body}");
    // Another web site cannot open a terminal.
    let (status, body) = open_ws(&s.ui.url(terminal), Some("http://evil.example"))
        .await
        .unwrap_err();
    assert_eq!(status, 403, "{body}");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket at `url` (http: becomes ws:), with `origin` if given;
/// the status and body of a refusal otherwise.
async fn open_ws(url: &str, origin: Option<&str>) -> Result<Socket, (u16, String)> {
    let mut request = url
        .replacen("http:", "ws:", 1)
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio::time::timeout(WS_WAIT, tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => Err((
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Ok(Err(e)) => panic!("WebSocket {url}: {e}"),
        Err(_) => panic!("WebSocket {url}: no answer within {WS_WAIT:?}"),
    }
}

/// Terminal output until it contains `want` or [`WS_WAIT`] passes.
async fn read_until(ws: &mut Socket, want: &str) -> String {
    let deadline = tokio::time::Instant::now() + WS_WAIT;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(want) {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Ws::Binary(bytes)))) => seen.extend_from_slice(&bytes),
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!(
                "terminal ended ({other:?}); saw {:?}",
                String::from_utf8_lossy(&seen)
            ),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// `shed ui`'s merged `/ui/events` stream, read raw: its `server.open`
/// and `server.down` events carry no id, unlike a server's own.
struct Merged {
    response: reqwest::Response,
    parser: shed::client::sse::SseParser,
    ready: std::collections::VecDeque<shed::client::sse::SseMessage>,
}

/// One event of the merged stream.
struct MergedEvent {
    event: String,
    json: serde_json::Value,
}

impl Merged {
    async fn open(url: &str) -> Merged {
        let response = reqwest::get(url).await.expect("merged events request");
        assert_eq!(response.status(), 200, "{url}");
        Merged {
            response,
            parser: Default::default(),
            ready: Default::default(),
        }
    }

    /// Reads until an event passes `want`, for [`EVENT_WAIT`] at most.
    async fn until(&mut self, what: &str, want: impl Fn(&MergedEvent) -> bool) {
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        loop {
            while let Some(m) = self.ready.pop_front() {
                let json = serde_json::from_str(&m.data).expect("event JSON");
                if want(&MergedEvent {
                    event: m.event,
                    json,
                }) {
                    return;
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {EVENT_WAIT:?}"))
                .expect("merged stream")
                .expect("merged stream ended");
            self.ready.extend(self.parser.push(&chunk).unwrap());
        }
    }
}

/// Creates shed `name` on `server` through `shed ui`.
async fn make_shed_via(s: &Setup, server: &str, name: &str) {
    let body = json!({ "name": name }).to_string();
    let r = s
        .call("POST", &format!("/s/{server}/api/sheds"), Some(&body))
        .await;
    assert_eq!(r.status, 201, "{}", r.json);
}

#[tokio::test]
async fn shed_ui_refuses_other_sites_foreign_hosts_and_unknown_servers() {
    let s = Setup::start();
    let origin = s.ui.base.clone();

    // The page's own origin is fine.
    let r = send(
        "GET",
        &s.ui.url("/ui/servers"),
        None,
        &[("origin", &origin)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);

    // Another web site is not, neither to read nor to act.
    for (method, path, body) in [
        ("GET", "/ui/servers", None),
        ("GET", "/s/one/api/sheds", None),
        ("POST", "/s/one/api/sheds", Some(r#"{"name":"evil"}"#)),
    ] {
        let r = send(
            method,
            &s.ui.url(path),
            body,
            &[("origin", "http://evil.example")],
        )
        .await;
        assert_eq!((r.status, r.code()), (403, "FORBIDDEN"), "{method} {path}");
    }
    // DNS rebinding: a foreign name pointing at 127.0.0.1.
    let r = send(
        "GET",
        &s.ui.url("/s/one/api/sheds"),
        None,
        &[("host", &format!("evil.example:{}", s.ui.port))],
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"), "{}", r.json);
    let r = s.call("GET", "/s/one/api/sheds/evil", None).await;
    assert_eq!(r.status, 404, "the refused POST created nothing");

    // Unknown and invalid names, and paths outside the API, are refused
    // with a JSON error, never relayed.
    let r = s.call("GET", "/s/nope/api/info", None).await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{}", r.json);
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nope"));
    for path in ["/s/b%20x/api/info", "/s/.../api/info"] {
        let r = s.call("GET", path, None).await;
        assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"), "{path}");
    }
    for path in ["/s/one/ui/servers", "/s/one", "/nothing"] {
        let r = s.call("GET", path, None).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{path}");
    }
    let r = s.call("OPTIONS", "/s/one/api/sheds", None).await;
    assert_eq!((r.status, r.code()), (405, "METHOD_NOT_ALLOWED"));

    // The page itself, with its guard headers.
    let page = reqwest::get(s.ui.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.text().await.unwrap().contains("shed"));
}

/// The issue's "`shed ui`: two servers appear on one page": headless
/// Chromium on shed ui's page sees both servers' sheds, both waiting agents
/// in one inbox, and answers one of them in a terminal over TLS behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_appear_on_one_page() {
    use common::browser::{Browser, DESKTOP, ENTER};
    let s = Setup::start();
    for (server, shed) in [("one", "alpha"), ("two", "beta")] {
        make_shed_via(&s, server, shed).await;
        let body = json!({"name": "asks", "command": "/opt/fake-agents/claude report:waiting"});
        let r = s
            .call(
                "POST",
                &format!("/s/{server}/api/sheds/{shed}/sessions"),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.json);
    }
    // A busy machine can take a while to open a shed's control channel,
    // which reports the agent's state; the page is on trial, not that.
    for (server, shed) in [("one", "alpha"), ("two", "beta")] {
        let path = format!("/s/{server}/api/sheds/{shed}/sessions/asks");
        let (ok, last) = eventually(std::time::Duration::from_secs(120), || async {
            let r = s.call("GET", &path, None).await;
            (r.json["agent"]["state"] == "waiting", r.json)
        })
        .await;
        assert!(ok, "{server}/{shed}/asks never waited: {last}");
    }
    let browser = Browser::start(DESKTOP).await;
    browser.goto(&s.ui.url("/")).await;
    for shed in ["alpha", "beta"] {
        browser
            .wait_css(&format!("[data-shed=\"{shed}\"][data-status=\"running\"]"))
            .await;
    }
    let headings = browser
        .js(
            "return Array.from(document.querySelectorAll('.server h2')).map(h => h.textContent);",
            vec![],
        )
        .await;
    assert_eq!(headings, json!(["one", "two"]), "one section per server");
    for (server, shed) in [("one", "alpha"), ("two", "beta")] {
        browser
            .wait_css(&format!(
                "#inbox li[data-server=\"{server}\"][data-session=\"{shed}/asks\"][data-state=\"waiting\"]"
            ))
            .await;
    }
    browser.screenshot("shed-ui-two-servers").await;

    // Answer server two's agent from the page: the terminal goes through
    // shed ui to the TLS server's WebSocket, and the fake agent echoes it.
    browser
        .open_terminal_from("#inbox li[data-server=\"two\"]", "beta/asks")
        .await;
    browser
        .type_in_terminal(&format!("answer-via-ui{ENTER}"))
        .await;
    browser.wait_terminal_shows("answer-via-ui").await;
    browser.close().await;
}

/// A browser opens at most six HTTP/1.1 connections to one host: with one
/// event stream per server, a `shed ui` page of seven servers stalled. The
/// page now follows them all through one merged stream, so every server is
/// live and a session made on the last one shows up as it happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_servers_stay_live_on_one_page() {
    use common::browser::{Browser, DESKTOP};
    const SERVERS: usize = 7;
    let servers: Vec<TestServer> = (0..SERVERS).map(|_| TestServer::start()).collect();
    let cli = Cli::new();
    let names: Vec<String> = (1..=SERVERS).map(|i| format!("s{i}")).collect();
    for (server, name) in servers.iter().zip(&names) {
        cli.add_server(server, name);
    }
    let ui = UiProcess::start(&cli, &[]);
    let last = names.last().unwrap();

    let browser = Browser::start(DESKTOP).await;
    browser.goto(&ui.url("/")).await;
    browser.wait_servers_live(SERVERS).await;

    // Made behind the page's back, on the last server: the page hears of it.
    for (path, body) in [
        ("api/sheds", r#"{"name":"far"}"#),
        ("api/sheds/far/sessions", r#"{"name":"seen"}"#),
    ] {
        let r = send(
            "POST",
            &ui.url(&format!("/s/{last}/{path}")),
            Some(body),
            &[],
        )
        .await;
        assert_eq!(r.status, 201, "{path}: {}", r.json);
    }
    browser
        .wait_css(&format!(
            ".server[data-server=\"{last}\"] li.session[data-session=\"far/seen\"]"
        ))
        .await;
    browser.close().await;
}
