//! Handler tests over the in-memory fake backend.

use super::*;
use crate::server::fake::FakeBackend;
use crate::server::sessions as service;
use crate::server::ssh::supervisor::GatewayHealth;
use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn app(token: Option<&str>) -> Router {
    app_with(token, Arc::new(FakeBackend::default()))
}

fn app_with(token: Option<&str>, backend: Arc<FakeBackend>) -> Router {
    app_with_gateway(token, backend, GatewayHealth::up())
}

fn app_with_gateway(
    token: Option<&str>,
    backend: Arc<FakeBackend>,
    gateway: GatewayHealth,
) -> Router {
    router(AppState {
        sessions: service::Sessions::new(backend.clone(), 2, service::PER_SHED_TIMEOUT),
        backend,
        info: ServerInfo {
            name: "fake".into(),
            version: "0".into(),
            http_port: 1,
            ssh_port: 2,
        },
        default_image: "img".into(),
        api_token: token.map(Arc::from),
        api_token_read_only: None,
        tls: false,
        exec: Arc::new(crate::server::exec::fake::FakeExec::default()),
        terminals: super::terminal::Terminals::default(),
        ssh_host_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTests".into()),
        gateway,
        events: Arc::new(crate::server::events::EventBus::new(16)),
        install_hooks: true,
    })
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, json)
}

fn code(json: &serde_json::Value) -> &str {
    json["error"]["code"].as_str().unwrap_or("<none>")
}

/// Method, URI, body and headers of a request.
type Call<'a> = (&'a str, &'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);

/// Sends `request` and asserts its status and error code; returns the body.
async fn expect(
    app: &Router,
    request: Call<'_>,
    status: StatusCode,
    expected: &str,
) -> serde_json::Value {
    let (method, uri, body, headers) = request;
    let (s, json) = call(app, method, uri, body, headers).await;
    assert_eq!(
        (s, code(&json)),
        (status, expected),
        "{method} {uri} {headers:?}"
    );
    json
}

#[tokio::test]
async fn lifecycle_over_the_fake_backend() {
    let app = app(None);
    let (s, body) = call(&app, "POST", "/api/sheds", Some(r#"{"name":"demo"}"#), &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "demo");
    assert_eq!(body["image"], "img");
    assert_eq!(body["status"], "running");
    let (s, body) = call(&app, "POST", "/api/sheds", Some(r#"{"name":"demo"}"#), &[]).await;
    assert_eq!((s, code(&body)), (StatusCode::CONFLICT, "SHED_EXISTS"));
    let (s, body) = call(&app, "POST", "/api/sheds/demo/start", None, &[]).await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::CONFLICT, "SHED_ALREADY_RUNNING")
    );
    let (s, body) = call(&app, "POST", "/api/sheds/demo/stop", None, &[]).await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("stopped"))
    );
    let (s, body) = call(&app, "POST", "/api/sheds/demo/stop", None, &[]).await;
    assert_eq!(
        (s, code(&body)),
        (StatusCode::CONFLICT, "SHED_ALREADY_STOPPED")
    );
    let (s, body) = call(&app, "GET", "/api/sheds", None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["sheds"][0]["name"], "demo");
    let (s, _) = call(&app, "DELETE", "/api/sheds/demo", None, &[]).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = call(&app, "GET", "/api/sheds/demo", None, &[]).await;
    assert_eq!((s, code(&body)), (StatusCode::NOT_FOUND, "SHED_NOT_FOUND"));
}

#[tokio::test]
async fn bad_input_gets_the_error_body() {
    let app = app(None);
    let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(MAX_BODY_BYTES + 10));
    let cases: Vec<(&str, &str, Option<&str>, StatusCode, &str)> = vec![
        (
            "POST",
            "/api/sheds",
            Some(r#"{"name":"Bad Name"}"#),
            StatusCode::BAD_REQUEST,
            "INVALID_NAME",
        ),
        (
            "POST",
            "/api/sheds",
            Some(r#"{"name":"../x"}"#),
            StatusCode::BAD_REQUEST,
            "INVALID_NAME",
        ),
        (
            "POST",
            "/api/sheds",
            Some(r#"{"name":"#),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            "/api/sheds",
            Some(r#"{"name":5}"#),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            "/api/sheds",
            Some(r#"{"name":"a","extra":1}"#),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            "/api/sheds",
            Some(r#"{"name":"a","repo":"not a repo"}"#),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            "/api/sheds",
            Some(r#"{"name":"a","image":" "}"#),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            "/api/sheds",
            Some(&big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "GET",
            "/api/sheds/UPPER",
            None,
            StatusCode::BAD_REQUEST,
            "INVALID_NAME",
        ),
        (
            "GET",
            "/api/sheds/a%3Bb",
            None,
            StatusCode::BAD_REQUEST,
            "INVALID_NAME",
        ),
        (
            "DELETE",
            "/api/sheds/a?keep_volume=maybe",
            None,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        ("GET", "/api/nope", None, StatusCode::NOT_FOUND, "NOT_FOUND"),
        (
            "PUT",
            "/api/sheds",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
    ];
    for (method, uri, body, status, expected) in cases {
        let json = expect(&app, (method, uri, body, &[]), status, expected).await;
        assert!(json["error"]["message"].is_string());
    }
    let (_, list) = call(&app, "GET", "/api/sheds", None, &[]).await;
    assert_eq!(
        list["sheds"],
        serde_json::json!([]),
        "bad input created something"
    );
}

#[tokio::test]
async fn host_key_is_served_in_known_hosts_form() {
    let app = app(None);
    let (s, body) = call(
        &app,
        "GET",
        "/api/ssh-host-key",
        None,
        &[("host", "box.example:8080")],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body["known_hosts"],
        "[box.example]:2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTests"
    );
    assert_eq!(body["ssh_port"], 2);
}

#[tokio::test]
async fn sessions_over_the_fake_backend() {
    let app = app(None);
    call(&app, "POST", "/api/sheds", Some(r#"{"name":"s"}"#), &[]).await;
    let (st, body) = call(
        &app,
        "POST",
        "/api/sheds/s/sessions",
        Some(r#"{"name":"debug-long"}"#),
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "debug-long");
    // Exact names only: "debug" is not "debug-long".
    for (method, uri, body) in [
        ("GET", "/api/sheds/s/sessions/debug", None),
        ("DELETE", "/api/sheds/s/sessions/debug", None),
        ("GET", "/api/sheds/s/sessions/debug/output", None),
        (
            "POST",
            "/api/sheds/s/sessions/debug/input",
            Some(r#"{"text":"x"}"#),
        ),
    ] {
        let request = (method, uri, body, &[][..]);
        expect(&app, request, StatusCode::NOT_FOUND, "SESSION_NOT_FOUND").await;
    }
    let (st, _) = call(
        &app,
        "POST",
        "/api/sheds/s/sessions/debug-long/input",
        Some(r#"{"text":"hello","enter":true}"#),
        &[],
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, out) = call(
        &app,
        "GET",
        "/api/sheds/s/sessions/debug-long/output?lines=5",
        None,
        &[],
    )
    .await;
    assert_eq!(out["output"], "hello");
    let (st, json) = call(
        &app,
        "POST",
        "/api/sheds/s/sessions",
        Some(r#"{"name":"debug-long"}"#),
        &[],
    )
    .await;
    assert_eq!((st, code(&json)), (StatusCode::CONFLICT, "SESSION_EXISTS"));
    call(
        &app,
        "POST",
        "/api/sheds/s/sessions",
        Some(r#"{"name":"two"}"#),
        &[],
    )
    .await;
    let (st, json) = call(
        &app,
        "POST",
        "/api/sheds/s/sessions",
        Some(r#"{"name":"three"}"#),
        &[],
    )
    .await;
    assert_eq!((st, code(&json)), (StatusCode::CONFLICT, "MAX_SESSIONS"));
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("kill one"));
    for (method, uri, body, status, expected) in [
        (
            "POST",
            "/api/sheds/s/sessions",
            Some(r#"{"name":"a.b"}"#),
            StatusCode::BAD_REQUEST,
            "INVALID_SESSION_NAME",
        ),
        (
            "GET",
            "/api/sheds/s/sessions/a:b",
            None,
            StatusCode::BAD_REQUEST,
            "INVALID_SESSION_NAME",
        ),
        (
            "GET",
            "/api/sheds/s/sessions/two/output?lines=0",
            None,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            "GET",
            "/api/sheds/s/sessions/two/output?lines=x",
            None,
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            "/api/sheds/s/sessions/two/input",
            Some(r#"{"text":""}"#),
            StatusCode::NO_CONTENT,
            "<none>",
        ),
        (
            "POST",
            "/api/sheds/s/sessions/two/input",
            Some(r#"{"text":"a\u0000b"}"#),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            "GET",
            "/api/sheds/nope/sessions",
            None,
            StatusCode::NOT_FOUND,
            "SHED_NOT_FOUND",
        ),
    ] {
        expect(&app, (method, uri, body, &[]), status, expected).await;
    }
    call(&app, "POST", "/api/sheds/s/stop", None, &[]).await;
    let (st, json) = call(&app, "GET", "/api/sheds/s/sessions", None, &[]).await;
    assert_eq!(
        (st, code(&json)),
        (StatusCode::CONFLICT, "SHED_NOT_RUNNING")
    );
}

#[tokio::test]
async fn the_agent_route_explains_or_gives_the_right_error() {
    let app = app(None);
    call(&app, "POST", "/api/sheds", Some(r#"{"name":"s"}"#), &[]).await;
    let create = Some(r#"{"name":"a"}"#);
    call(&app, "POST", "/api/sheds/s/sessions", create, &[]).await;
    let (st, body) = call(&app, "GET", "/api/sheds/s/sessions/a/agent", None, &[]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["shed"], "s");
    assert_eq!(body["session"], "a");
    assert!(body["agent"]["state"].is_string());
    assert!(body["panes"].is_array());
    assert!(body["rules_version"].is_string());
    for (uri, status, expected) in [
        (
            "/api/sheds/s/sessions/ab/agent",
            StatusCode::NOT_FOUND,
            "SESSION_NOT_FOUND",
        ),
        (
            "/api/sheds/s/sessions/a:b/agent",
            StatusCode::BAD_REQUEST,
            "INVALID_SESSION_NAME",
        ),
        (
            "/api/sheds/nope/sessions/a/agent",
            StatusCode::NOT_FOUND,
            "SHED_NOT_FOUND",
        ),
    ] {
        expect(&app, ("GET", uri, None, &[]), status, expected).await;
    }
    call(&app, "POST", "/api/sheds/s/stop", None, &[]).await;
    let request = ("GET", "/api/sheds/s/sessions/a/agent", None, &[][..]);
    expect(&app, request, StatusCode::CONFLICT, "SHED_NOT_RUNNING").await;
}

#[tokio::test]
async fn all_sessions_reports_a_hanging_shed_as_a_warning() {
    let backend = Arc::new(FakeBackend::default());
    let app = app_with(None, backend.clone());
    for shed in ["b", "a", "hung", "off"] {
        call(
            &app,
            "POST",
            "/api/sheds",
            Some(&format!(r#"{{"name":"{shed}"}}"#)),
            &[],
        )
        .await;
    }
    for (shed, session) in [("b", "z"), ("b", "y"), ("a", "x")] {
        call(
            &app,
            "POST",
            &format!("/api/sheds/{shed}/sessions"),
            Some(&format!(r#"{{"name":"{session}"}}"#)),
            &[],
        )
        .await;
    }
    call(&app, "POST", "/api/sheds/off/stop", None, &[]).await;
    backend.hang("hung");
    let service = service::Sessions::new(backend, 2, std::time::Duration::from_millis(200));
    let all = service.all().await.unwrap();
    let order: Vec<(String, String)> = all
        .sessions
        .iter()
        .map(|s| (s.shed.clone(), s.name.clone()))
        .collect();
    assert_eq!(
        order,
        [
            ("a".into(), "x".into()),
            ("b".into(), "y".into()),
            ("b".into(), "z".into())
        ]
    );
    assert_eq!(all.warnings.len(), 1, "{:?}", all.warnings);
    assert_eq!(all.warnings[0].shed, "hung");
    assert!(all.warnings[0].message.contains("did not answer"));
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = app(None);
    let req = Request::builder()
        .method("POST")
        .uri("/api/sheds")
        .header("content-type", "text/plain")
        .body(Body::from(r#"{"name":"a"}"#))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn token_is_required_except_for_health() {
    let app = app(Some("s3cret-token"));
    let (s, _) = call(&app, "GET", "/api/health", None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("s3cret-token"),
        Some("Bearer s3cret-token2"),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        for (method, uri) in [
            ("GET", "/api/info"),
            ("GET", "/api/sheds"),
            ("POST", "/api/sheds/x/start"),
            ("DELETE", "/api/sheds/x"),
        ] {
            let request = (method, uri, None, &headers[..]);
            expect(&app, request, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        }
    }
    let (s, json) = call(
        &app,
        "GET",
        "/api/info",
        None,
        &[("authorization", "Bearer s3cret-token")],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json["name"], "fake");
}

#[tokio::test]
async fn health_is_503_while_the_gateway_is_down() {
    let down = app_with_gateway(
        None,
        Arc::new(FakeBackend::default()),
        GatewayHealth::default(),
    );
    let (s, json) = call(&down, "GET", "/api/health", None, &[]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["gateway"], "down");
    let (s, json) = call(&app(None), "GET", "/api/health", None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (&json["status"], &json["gateway"]),
        (&"ok".into(), &"up".into())
    );
}

#[tokio::test]
async fn hooks_install_over_the_fake_backend() {
    let app = app(None);
    call(&app, "POST", "/api/sheds", Some(r#"{"name":"h"}"#), &[]).await;
    let (s, body) = call(&app, "POST", "/api/sheds/h/hooks", Some("{}"), &[]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["shed"], "h");
    assert_eq!(body["helper"]["path"], "/usr/local/bin/shed-hook");
    assert_eq!(body["helper"]["status"], "installed");
    let agents: Vec<&str> = body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["claude", "codex", "gemini"]);
    let (s, body) = call(
        &app,
        "POST",
        "/api/sheds/h/hooks",
        Some(r#"{"agents":["gemini","gemini"]}"#),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["agents"].as_array().unwrap().len(), 1);

    let bad = StatusCode::BAD_REQUEST;
    for body in [
        r#"{"agents":["opencode"]}"#,
        r#"{"agents":[]}"#,
        r#"{"x":1}"#,
    ] {
        expect(
            &app,
            ("POST", "/api/sheds/h/hooks", Some(body), &[]),
            bad,
            "INVALID_REQUEST",
        )
        .await;
    }
    expect(
        &app,
        ("POST", "/api/sheds/Bad/hooks", Some("{}"), &[]),
        bad,
        "INVALID_NAME",
    )
    .await;
    let missing = ("POST", "/api/sheds/nope/hooks", Some("{}"), &[][..]);
    expect(&app, missing, StatusCode::NOT_FOUND, "SHED_NOT_FOUND").await;
    call(&app, "POST", "/api/sheds/h/stop", None, &[]).await;
    let stopped = ("POST", "/api/sheds/h/hooks", Some("{}"), &[][..]);
    expect(&app, stopped, StatusCode::CONFLICT, "SHED_NOT_RUNNING").await;
}
