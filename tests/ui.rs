//! `shed ui` end to end: a real `shed ui` process relaying to two real
//! shed-servers (one over plain HTTP, one over TLS with a pinned
//! certificate, both with a token), real Docker and tmux behind them.

mod common;

use common::http::{send, Reply};
use common::*;
use serde_json::json;

const TOKEN_ONE: &str = "ui-token-one-0123456789";
const TOKEN_TWO: &str = "ui-token-two-0123456789";

/// Server `one` (plain HTTP) and server `two` (TLS), both with tokens, in
/// one CLI config, and `shed ui` over them.
struct Setup {
    one: TestServer,
    two: TestServer,
    cli: Cli,
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
        Setup { one, two, cli, ui }
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
        ], "read_only": false})
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
    assert!(s.cli.config_path().exists());
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
