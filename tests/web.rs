//! The web page in a real browser (issue 14): headless Chromium over
//! WebDriver against a real shed-server, real Docker and real tmux. Each test
//! starts its own chromedriver and browser; screenshots land in
//! `target/web-screenshots/`.

mod common;

use std::time::Duration;

use common::browser::{Browser, CTRL, DESKTOP, ENTER, PHONE, RELEASE};
use common::http::*;
use common::*;
use serde_json::{json, Value};

const SHED: &str = "web";

async fn create_session(server: &TestServer, name: &str, command: Option<&str>) {
    let mut body = json!({ "name": name });
    if let Some(c) = command {
        body["command"] = json!(c);
    }
    let url = server.url(&format!("/api/sheds/{SHED}/sessions"));
    let r = post(&url, &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.json);
}

async fn session(server: &TestServer, name: &str) -> Reply {
    get(&server.url(&format!("/api/sheds/{SHED}/sessions/{name}"))).await
}

async fn output_of(server: &TestServer, name: &str) -> String {
    let url = server.url(&format!(
        "/api/sheds/{SHED}/sessions/{name}/output?lines=50"
    ));
    get(&url).await.json["output"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the session's API view satisfies `want`.
async fn session_until(server: &TestServer, name: &str, what: &str, want: impl Fn(&Value) -> bool) {
    let (ok, last) = eventually(Duration::from_secs(30), || async {
        let r = session(server, name).await;
        (want(&r.json), r.json)
    })
    .await;
    assert!(ok, "{name}: {what}; last: {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_sheds_sessions_and_waiting_agents_live() {
    require_docker();
    let server = TestServer::start();
    make_shed(&server, SHED).await;
    create_session(&server, "plain", None).await;
    let browser = Browser::start(DESKTOP).await;
    browser.goto(&server.url("/")).await;
    browser
        .wait_css(&format!("[data-shed=\"{SHED}\"][data-status=\"running\"]"))
        .await;
    browser.wait_css("[data-session=\"web/plain\"]").await;
    let title = browser
        .js(
            "return document.querySelector('.server h2').textContent;",
            vec![],
        )
        .await;
    assert_eq!(title, json!(server.name), "/ui/servers names the server");

    // Made through the API after the page loaded: only the event stream can
    // bring it.
    create_session(
        &server,
        "agent",
        Some("/opt/fake-agents/claude report:waiting"),
    )
    .await;
    create_session(&server, "done", Some("/opt/fake-agents/codex exit:3")).await;
    browser.wait_css("[data-session=\"web/agent\"]").await;
    let waiting = browser
        .wait_css("#inbox li[data-session=\"web/agent\"][data-state=\"waiting\"]")
        .await;
    let text = waiting.text().await.unwrap();
    assert!(text.contains("claude"), "the inbox names the agent: {text}");
    assert!(text.contains("reported"), "and why it waits: {text}");
    browser
        .wait_css("#inbox li[data-session=\"web/done\"][data-state=\"exited\"]")
        .await;
    let order = browser
        .js("return Array.from(document.querySelectorAll('#inbox li')).map(li => li.dataset.state);", vec![])
        .await;
    assert_eq!(
        order,
        json!(["waiting", "exited"]),
        "waiting agents come first"
    );
    let badge = browser
        .js(
            "return document.querySelector('[data-session=\"web/agent\"] .badge').dataset.state;",
            vec![],
        )
        .await;
    assert_eq!(badge, json!("waiting"));

    // A program name is hostile input: it must show as text, never as markup.
    create_session(
        &server,
        "evil",
        Some("cp /bin/sleep '/tmp/<b>bold' && exec '/tmp/<b>bold' 600"),
    )
    .await;
    session_until(&server, "evil", "runs its oddly named program", |s| {
        s["current_command"]
            .as_str()
            .is_some_and(|c| c.contains("<b>bold"))
    })
    .await;
    browser
        .wait_js(
            "the program name shown as text",
            "const r = document.querySelector('[data-session=\"web/evil\"] .detail');\
             return r && r.textContent.includes('<b>bold');",
            vec![],
        )
        .await;
    let markup = browser
        .js("return document.querySelectorAll('b').length;", vec![])
        .await;
    assert_eq!(
        markup,
        json!(0),
        "no markup from the server reached the page"
    );

    // Send text from the page; it arrives in tmux and shows in the preview.
    let row = "[data-session=\"web/plain\"]";
    browser
        .fill(
            &format!("{row} form.send input[name=text]"),
            "echo sent-$((6*7))",
        )
        .await;
    browser.click(&format!("{row} form.send button")).await;
    let (ok, out) = eventually(Duration::from_secs(20), || async {
        let out = output_of(&server, "plain").await;
        (out.contains("sent-42"), out)
    })
    .await;
    assert!(ok, "the text reached the session: {out}");
    browser.click(&format!("{row} .toggle-preview")).await;
    browser
        .wait_js(
            "the preview",
            "const p = document.querySelector(arguments[0]); return p && !p.hidden && p.textContent.includes('sent-42');",
            vec![json!(format!("{row} .preview"))],
        )
        .await;

    // New session and kill (after a confirm) from the page.
    let form = format!("[data-shed=\"{SHED}\"] form.new-session");
    browser
        .fill(&format!("{form} input[name=session]"), "fromui")
        .await;
    browser
        .fill(&format!("{form} input[name=command]"), "exec sleep 600")
        .await;
    browser.click(&format!("{form} button")).await;
    session_until(&server, "fromui", "made by the page", |s| {
        s["current_command"] == "sleep"
    })
    .await;
    browser
        .click_and_confirm(
            "[data-session=\"web/fromui\"] .kill",
            true,
            "kill asks first",
        )
        .await;
    session_until(&server, "fromui", "killed by the page", |s| {
        s["error"]["code"] == "SESSION_NOT_FOUND"
    })
    .await;
    browser
        .wait_gone(
            "the killed session's row to go",
            "[data-session=\"web/fromui\"]",
        )
        .await;

    browser.js("window.scrollTo(0, 0);", vec![]).await;
    browser.screenshot("desktop").await;

    // Away and back, again and again. A page in the browser's back/forward
    // cache must not keep its event stream's connection: the browser opens
    // at most six to one host, and with them all held the seventh load
    // waited about a minute (longer than the page load timeout).
    for _ in 0..8 {
        browser.goto("about:blank").await;
        browser.goto(&server.url("/")).await;
        browser.wait_css("[data-session=\"web/plain\"]").await;
    }
    // Back to a page restored from that cache (the marker proves it was not
    // loaded again): its stream opens again and brings what changed while
    // it was away.
    browser.js("window.__shedMarker = 1;", vec![]).await;
    browser.goto("about:blank").await;
    create_session(&server, "meanwhile", None).await;
    browser.back().await;
    browser.wait_css("[data-session=\"web/meanwhile\"]").await;
    assert_eq!(
        browser.js("return window.__shedMarker;", vec![]).await,
        json!(1),
        "the page came back from the back/forward cache"
    );
    browser.wait_servers_live(1).await;

    // A phone: one column, nothing wider than the screen, the inbox on top.
    let phone = Browser::start(PHONE).await;
    phone.goto(&server.url("/")).await;
    phone
        .wait_css("#inbox li[data-session=\"web/agent\"][data-state=\"waiting\"]")
        .await;
    phone.wait_css("[data-session=\"web/plain\"]").await;
    assert_fits_the_phone(&phone).await;
    let inbox_first = phone
        .js("const i = document.getElementById('inbox-section').getBoundingClientRect(); const s = document.getElementById('servers').getBoundingClientRect(); return i.bottom <= s.top && i.width === s.width;", vec![])
        .await;
    assert_eq!(
        inbox_first,
        json!(true),
        "the inbox sits above the sheds, one column"
    );
    phone.screenshot("phone").await;
    phone.close().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheds_are_created_stopped_and_deleted_from_the_page() {
    require_docker();
    let server = TestServer::start();
    let browser = Browser::start(DESKTOP).await;
    browser.goto(&server.url("/")).await;
    browser
        .fill(".server .create-shed input[name=name]", "made")
        .await;
    browser.click(".server .create-shed button").await;
    let shed = "[data-shed=\"made\"]";
    browser
        .wait_css(&format!("{shed}[data-status=\"running\"]"))
        .await;
    assert!(is_running(&server.container("made")));

    browser
        .click_and_confirm(&format!("{shed} .stop"), true, "stop asks first")
        .await;
    browser
        .wait_css(&format!("{shed}[data-status=\"stopped\"]"))
        .await;
    assert!(!is_running(&server.container("made")));

    // Declining the confirm leaves the shed alone.
    browser
        .click_and_confirm(&format!("{shed} .delete"), false, "delete asks first")
        .await;
    let r = get(&server.url("/api/sheds/made")).await;
    assert_eq!(r.status, 200, "a declined delete deletes nothing");

    browser
        .click_and_confirm(&format!("{shed} .delete"), true, "delete asks again")
        .await;
    browser
        .wait_gone("the deleted shed's card to go", shed)
        .await;
    let r = get(&server.url("/api/sheds/made")).await;
    assert_eq!(r.status, 404, "{}", r.json);
    browser.close().await;
}

async fn terminal_cols(browser: &Browser) -> u64 {
    browser
        .js("return window.shedTerminalInfo().cols;", vec![])
        .await
        .as_u64()
        .unwrap()
}

/// The widths of the tmux clients attached to the session.
fn client_widths(server: &TestServer, session: &str) -> Vec<u64> {
    docker(&[
        "exec",
        &server.container(SHED),
        "tmux",
        "list-clients",
        "-t",
        &format!("={session}"),
        "-F",
        "#{client_width}",
    ])
    .lines()
    .filter_map(|l| l.trim().parse().ok())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_types_reads_resizes_and_reconnects() {
    require_docker();
    let server = TestServer::start();
    make_shed(&server, SHED).await;
    create_session(&server, "term", None).await;
    let browser = Browser::start(DESKTOP).await;
    browser.goto(&server.url("/")).await;
    browser.open_terminal("web/term").await;

    browser
        .type_in_terminal(&format!("echo $((6*7))-typed{ENTER}"))
        .await;
    browser.wait_terminal_shows("42-typed").await;

    // Nothing on the page animates while the terminal is open, the cursor
    // included: a frame pending when a key comes makes Chromium hold the
    // echo's WebSocket message until that frame is drawn (app.js,
    // `cursorBlink`; BENCHMARKS.md row 22).
    let animations = browser
        .js(
            "return document.getAnimations().map((a) => a.animationName || String(a));",
            vec![],
        )
        .await;
    assert_eq!(animations, json!([]), "animations run beside the terminal");

    // UTF-8, typed and echoed back through the decoder.
    browser
        .type_in_terminal(&format!("echo 'héllo ✓ 日本'{ENTER}"))
        .await;
    browser.wait_terminal_shows("héllo ✓ 日本").await;

    // Paste, as a user does it: text copied with Ctrl+C, pasted with
    // Ctrl+Shift+V. xterm.js sends it as a bracketed paste, which bash takes
    // as typed text, line break and all, until Enter runs both lines. The
    // second line's text is what tmux's parser would change (`#{}`, a
    // trailing `;`) and UTF-8.
    browser
        .copy_text("echo pasted-$((2+3))\nprintf '%s-out\\n' 'two ✓ #{x} ;'")
        .await;
    browser.paste_in_terminal().await;
    browser.type_in_terminal(ENTER).await;
    browser.wait_terminal_shows("pasted-5").await;
    browser.wait_terminal_shows("two ✓ #{x} ;-out").await;

    // Ctrl-C reaches the program as 0x03.
    browser.type_in_terminal(&format!("sleep 600{ENTER}")).await;
    session_until(&server, "term", "sleep in the foreground", |s| {
        s["current_command"] == "sleep"
    })
    .await;
    browser.type_in_terminal(&format!("{CTRL}c{RELEASE}")).await;
    session_until(&server, "term", "the shell back after Ctrl-C", |s| {
        s["current_command"] == "bash"
    })
    .await;

    // The terminal follows the window, and so does the tmux client.
    let wide = terminal_cols(&browser).await;
    let (ok, widths) = eventually(Duration::from_secs(20), || async {
        let w = client_widths(&server, "term");
        (w.contains(&wide), w)
    })
    .await;
    assert!(
        ok,
        "the tmux client is {widths:?} wide, the page's terminal {wide}"
    );
    browser.resize(900, 700).await;
    browser
        .wait_js(
            "the terminal to narrow",
            "return window.shedTerminalInfo().cols < arguments[0];",
            vec![json!(wide)],
        )
        .await;
    let narrow = terminal_cols(&browser).await;
    let (ok, widths) = eventually(Duration::from_secs(20), || async {
        let w = client_widths(&server, "term");
        (w.contains(&narrow), w)
    })
    .await;
    assert!(
        ok,
        "after the resize the tmux client is {widths:?} wide, the page's terminal {narrow}"
    );

    // A network blip: the socket drops, the page reconnects to the same session.
    browser
        .js("window.__oldSocket = window.shedTerminalInfo().socket; window.__oldSocket.close(4000, 'blip');", vec![])
        .await;
    browser
        .wait_js(
            "a new connection",
            "const i = window.shedTerminalInfo(); return i.connected && i.socket !== window.__oldSocket;",
            vec![],
        )
        .await;
    browser
        .type_in_terminal(&format!("echo again-$((1+1)){ENTER}"))
        .await;
    browser.wait_terminal_shows("again-2").await;
    assert!(
        browser.terminal_text().await.contains("again-2"),
        "the reconnected terminal is the same session"
    );
    browser.screenshot("desktop-terminal").await;
    browser.close().await;

    // On a phone the terminal takes the screen's width.
    let phone = Browser::start(PHONE).await;
    phone.goto(&server.url("/")).await;
    phone.open_terminal("web/term").await;
    phone.wait_terminal_shows("again-2").await;
    let width = phone
        .js(
            "return document.getElementById('terminal').getBoundingClientRect().width;",
            vec![],
        )
        .await;
    assert_eq!(
        width.as_f64(),
        Some(PHONE.width as f64),
        "the terminal is as wide as the phone"
    );
    let cols = terminal_cols(&phone).await;
    assert!(
        (20..60).contains(&cols),
        "a phone-wide terminal has {cols} columns"
    );
    phone.screenshot("phone-terminal").await;
    phone.close().await;
}

async fn log_in(browser: &Browser, token: &str) {
    browser
        .fill("form#login input[name=token]", &format!("{token}{ENTER}"))
        .await;
}

/// The status the page's own `fetch` of the API gets: its cookie, or none.
async fn api_status(browser: &Browser) -> Value {
    browser
        .js("return fetch('api/sheds').then(r => r.status);", vec![])
        .await
}

/// Asserts the page fills the phone's width and nothing overflows it.
async fn assert_fits_the_phone(phone: &Browser) {
    let fits = phone
        .js(
            "return [window.innerWidth, document.documentElement.scrollWidth];",
            vec![],
        )
        .await;
    assert_eq!(fits[0], json!(PHONE.width), "{fits}");
    assert!(
        fits[1].as_u64() <= fits[0].as_u64(),
        "nothing overflows the phone's width: {fits}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cookie_the_page_asks_for_the_token() {
    require_docker();
    let token = "web-token-0123456789";
    let viewer = "web-viewer-9876543210";
    let server = TestServer::start_with(ServerOpts {
        extra: format!("api_token = {token:?}\napi_token_read_only = {viewer:?}\n"),
        ..Default::default()
    });
    let auth = format!("Bearer {token}");
    let r = send(
        "POST",
        &server.url("/api/sheds"),
        Some(&format!(r#"{{"name":"{SHED}"}}"#)),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let r = send(
        "POST",
        &server.url(&format!("/api/sheds/{SHED}/sessions")),
        Some(r#"{"name":"watched"}"#),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);

    let browser = Browser::start(DESKTOP).await;
    browser.goto(&server.url("/")).await;
    browser.wait_css("form#login input[name=token]").await;
    assert_eq!(api_status(&browser).await, json!(401), "no cookie, no API");

    log_in(&browser, "wrong").await;
    browser.wait_css("#login-error").await;
    browser.screenshot("login").await;

    log_in(&browser, token).await;
    browser
        .wait_js(
            "the page after login",
            "const h = document.querySelector('.server h2'); return h && h.textContent === arguments[0];",
            vec![json!(server.name)],
        )
        .await;
    browser.wait_css("[data-session=\"web/watched\"]").await;
    let cookie_hidden = browser.js("return document.cookie;", vec![]).await;
    assert_eq!(cookie_hidden, json!(""), "the token cookie is HttpOnly");
    assert_eq!(
        api_status(&browser).await,
        json!(200),
        "the cookie opens the API"
    );

    // Log out: the login form again, and the API closed.
    browser.click("#logout button").await;
    browser.wait_css("form#login input[name=token]").await;
    assert_eq!(api_status(&browser).await, json!(401), "logged out");

    // The read-only token sees the sessions but no control that changes anything.
    log_in(&browser, viewer).await;
    browser
        .wait_css("body.read-only [data-session=\"web/watched\"]")
        .await;
    let visible = browser
        .js(
            "return Array.from(document.querySelectorAll('.mutate')).filter(e => e.offsetParent !== null).length;",
            vec![],
        )
        .await;
    assert_eq!(
        visible,
        json!(0),
        "a viewer gets no controls that change anything"
    );
    browser.open_terminal("web/watched").await;
    browser
        .type_in_terminal(&format!("echo typed-by-viewer{ENTER}"))
        .await;
    // Typed text would echo within this; the session's own output proves the
    // terminal is live.
    let r = send(
        "POST",
        &server.url(&format!("/api/sheds/{SHED}/sessions/watched/input")),
        Some(r#"{"text":"echo from-$((40+2))","enter":true}"#),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.json);
    browser.wait_terminal_shows("from-42").await;
    let text = browser.terminal_text().await;
    assert!(
        !text.contains("typed-by-viewer"),
        "a viewer typed into the session:\n{text}"
    );
    browser.screenshot("read-only").await;
    browser.close().await;
}

/// A page on another origin: a bare HTTP server on another port.
async fn foreign_origin() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let body = "<!doctype html><title>elsewhere</title><p>another site</p>";
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        }
    });
    (port, task)
}

/// Opens a WebSocket from the browser's current page; "open" or "closed:CODE".
async fn try_websocket(browser: &Browser, url: &str) -> String {
    let v = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             const ws = new WebSocket(arguments[0]);\
             ws.onopen = () => { ws.close(1000); done('open'); };\
             ws.onclose = (e) => done('closed:' + e.code);",
            vec![json!(url)],
        )
        .await
        .unwrap();
    v.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_origin_websocket_is_refused() {
    require_docker();
    let server = TestServer::start();
    make_shed(&server, SHED).await;
    create_session(&server, "ws", None).await;
    let ws_url = format!(
        "ws://127.0.0.1:{}/api/sheds/{SHED}/sessions/ws/terminal?cols=80&rows=24",
        server.port
    );
    let browser = Browser::start(DESKTOP).await;

    // The same socket from the server's own page opens: the refusal below is
    // about the origin, not the URL.
    browser.goto(&server.url("/")).await;
    assert_eq!(try_websocket(&browser, &ws_url).await, "open");

    let (port, task) = foreign_origin().await;
    browser.goto(&format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(browser.client.title().await.unwrap(), "elsewhere");
    let got = try_websocket(&browser, &ws_url).await;
    assert_eq!(
        got, "closed:1006",
        "a page from another origin opened the terminal"
    );
    task.abort();
    browser.close().await;
}

/// The fake Claude's busy line counts seconds; the largest count on screen.
fn busy_seconds(output: &str) -> Option<u64> {
    regex::Regex::new(r"Thinking… \((\d+)s")
        .unwrap()
        .captures_iter(output)
        .filter_map(|c| c[1].parse().ok())
        .max()
}

/// The issue's "done when", end to end: on a phone, behind a token, a user
/// sees which agent waits, opens its terminal from the inbox, answers it,
/// closes the page, and the agent goes on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_a_user_answers_a_waiting_agent_and_it_goes_on_working() {
    require_docker();
    let token = "phone-token-0123456789";
    let server = TestServer::start_with(ServerOpts {
        extra: format!("api_token = {token:?}\n"),
        ..Default::default()
    });
    let auth = format!("Bearer {token}");
    let api = |method: &'static str, path: String, body: Option<String>| {
        let url = server.url(&path);
        let auth = auth.clone();
        async move { send(method, &url, body.as_deref(), &[("authorization", &auth)]).await }
    };
    let r = api(
        "POST",
        "/api/sheds".into(),
        Some(format!(r#"{{"name":"{SHED}"}}"#)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    // The agent engine reads screens on the shed's control channel: wait for
    // it, so the agent's screens are read from the first one on.
    let sessions = format!("/api/sheds/{SHED}/sessions");
    let r = api(
        "POST",
        sessions.clone(),
        Some(r#"{"name":"probe","command":"exec sleep 3600"}"#.into()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    let (ok, last) = eventually(Duration::from_secs(60), || async {
        let r = api("GET", format!("{sessions}/probe"), None).await;
        (r.json["source"] == "channel", r.json)
    })
    .await;
    assert!(ok, "no control channel: {last:#}");

    // A Claude that asks permission (a menu an Enter answers), then works on:
    // its busy line counts seconds for as long as it runs.
    let body = json!({
        "name": "agent",
        "command": "/opt/fake-agents/claude menu print:answered busy",
    });
    let r = api("POST", sessions.clone(), Some(body.to_string())).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let agent_path = format!("{sessions}/agent");
    let agent_until = |what: &'static str, want: fn(&Value) -> bool| {
        let path = agent_path.clone();
        let api = &api;
        async move {
            let (ok, last) = eventually(Duration::from_secs(60), || async {
                let r = api("GET", path.clone(), None).await;
                (want(&r.json), r.json)
            })
            .await;
            assert!(ok, "agent: {what}; last: {last:#}");
            last
        }
    };
    agent_until("waiting at its menu", |s| s["agent"]["state"] == "waiting").await;

    // The phone logs in and sees the agent waiting, on top.
    let phone = Browser::start(PHONE).await;
    phone.goto(&server.url("/")).await;
    log_in(&phone, token).await;
    let entry = "#inbox li[data-session=\"web/agent\"]";
    let waiting = phone
        .wait_css(&format!("{entry}[data-state=\"waiting\"]"))
        .await;
    let text = waiting.text().await.unwrap();
    assert!(text.contains("claude"), "the inbox names the agent: {text}");
    assert_fits_the_phone(&phone).await;

    // Its terminal, opened from the inbox entry, shows the question.
    phone.open_terminal_from(entry, "web/agent").await;
    phone.wait_terminal_shows("Do you want to proceed?").await;
    let (ok, last) = eventually(Duration::from_secs(20), || async {
        let r = api("GET", agent_path.clone(), None).await;
        (r.json["attached"] == 1, r.json)
    })
    .await;
    assert!(ok, "the phone's terminal is not attached: {last:#}");

    // Enter picks "1. Yes"; the agent goes back to work.
    phone.type_in_terminal(ENTER).await;
    phone.wait_terminal_shows("answered").await;
    phone.wait_terminal_shows("Thinking…").await;
    phone
        .wait_gone("the answered agent to leave the inbox", entry)
        .await;
    phone.screenshot("phone-answered").await;

    // Close the terminal, then the page.
    phone.click("#terminal-close").await;
    phone
        .wait_js(
            "the terminal panel to close",
            "return document.getElementById('terminal-panel').hidden && !window.shedTerminalInfo();",
            vec![],
        )
        .await;
    phone.goto("about:blank").await;
    phone.close().await;

    // Nobody is attached any more, and the agent works on: not waiting, and
    // its busy line still counting after the page went away.
    agent_until("detached", |s| s["attached"] == 0).await;
    let output_path = format!("{agent_path}/output?lines=50");
    let screen = api("GET", output_path.clone(), None).await.json["output"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let at_close = busy_seconds(&screen)
        .unwrap_or_else(|| panic!("no busy line when the page closed:\n{screen}"));
    let working = agent_until("working after the page closed", |s| {
        s["agent"]["state"] == "working"
    })
    .await;
    assert_eq!(working["attached"], 0, "{working:#}");
    let (moved, output) = eventually(Duration::from_secs(20), || async {
        let r = api("GET", output_path.clone(), None).await;
        let out = r.json["output"].as_str().unwrap_or_default().to_string();
        (busy_seconds(&out).is_some_and(|s| s > at_close), out)
    })
    .await;
    assert!(
        moved,
        "the agent's output stopped at {at_close}s after the page closed:\n{output}"
    );
    let r = api("GET", agent_path.clone(), None).await;
    assert_eq!(r.json["agent"]["state"], "working", "{:#}", r.json);
    assert_eq!(r.json["attached"], 0, "{:#}", r.json);
}
