//! `shed ui`: the web dashboard on the laptop, for every configured server
//! at once. It serves the same embedded page as shed-server, lists the
//! servers at `/ui/servers`, and relays `/s/{server}/api/...` to that
//! server's API (its events stream and terminal WebSocket included) with
//! the token and pinned certificate the CLI holds, so the browser never
//! sees a secret.
//!
//! The port is on loopback, where any web page the user visits can reach it,
//! so the server's own Host/Origin guard stands in front of every route
//! (against DNS rebinding and cross-site requests), and only `/api/` paths
//! are relayed. The page follows every server through one merged event
//! stream, `/ui/events` (`ui_events`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite;

use crate::api::ui::{UiServer, UiServers};
use crate::client::api_client::{ApiClient, ClientError, RawConnection};
use crate::client::config::is_valid_server_name;
use crate::server::error::ApiError;
use crate::server::http::{page, with_host_guard, HostPolicy};

/// The port `shed ui` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8765;
/// Connections the page may hold at once (the listener's cap).
pub const MAX_CONNECTIONS: usize = 64;
/// Terminal WebSockets relayed at once.
pub const MAX_TERMINALS: usize = crate::server::http::terminal::MAX_TERMINALS;
/// Largest request body relayed; the API takes at most 64 KiB.
pub const MAX_REQUEST_BYTES: usize = crate::server::http::MAX_BODY_BYTES;
/// Largest WebSocket message from the browser (the terminal's input).
pub const MAX_WS_INPUT: usize = crate::server::http::terminal::MAX_FRAME_BYTES;
/// Largest WebSocket message from a server (a burst of terminal output).
pub const MAX_WS_OUTPUT: usize = 1024 * 1024;
/// Longest relayed request, a create cloning a large repository included;
/// the events stream has none.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How often the browser side of a terminal is pinged.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// A browser that sends nothing, not even a pong, for this long is gone.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(75);

/// Request headers passed on to a server; the browser's cookies and
/// Authorization never are, only the CLI's token.
const FORWARDED_REQUEST_HEADERS: [header::HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::HeaderName::from_static("last-event-id"),
];

/// Response headers passed back; everything else (Set-Cookie first) stays.
const FORWARDED_RESPONSE_HEADERS: [header::HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    header::RETRY_AFTER,
];

struct UiState {
    servers: BTreeMap<String, ApiClient>,
    terminals: Arc<Semaphore>,
}

/// The router of `shed ui` over `servers`, behind a Host/Origin guard that
/// accepts only loopback names.
pub fn router(servers: Vec<ApiClient>) -> Router {
    let state = Arc::new(UiState {
        servers: servers
            .into_iter()
            .map(|c| (c.server().to_string(), c))
            .collect(),
        terminals: Arc::new(Semaphore::new(MAX_TERMINALS)),
    });
    let router = Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
        .route("/ui/servers", get(list_servers))
        .route("/ui/events", get(merged_events))
        .route("/s/{*rest}", axum::routing::any(relay))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state);
    // An unspecified-free loopback bind and no extra names: only
    // 127.0.0.1, ::1 and localhost are this server.
    let policy = HostPolicy::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        false,
        Vec::new(),
    );
    with_host_guard(router, policy)
}

async fn index(headers: HeaderMap) -> Response {
    match crate::web::asset("index.html") {
        Some(a) => page(StatusCode::OK, &headers, a.content_type, a.body),
        None => ApiError::NotFound.into_response(),
    }
}

async fn asset(
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    match crate::web::asset(&path) {
        Some(a) => page(StatusCode::OK, &headers, a.content_type, a.body),
        None => ApiError::NotFound.into_response(),
    }
}

/// `GET /ui/events`: every server's events in one stream (see
/// [`crate::client::ui_events`]).
async fn merged_events(State(state): State<Arc<UiState>>) -> Response {
    crate::client::ui_events::merged(state.servers.values().cloned().collect()).into_response()
}

async fn list_servers(State(state): State<Arc<UiState>>) -> Json<UiServers> {
    Json(UiServers {
        servers: state
            .servers
            .keys()
            .map(|name| UiServer {
                name: name.clone(),
                base: format!("/s/{name}"),
            })
            .collect(),
        read_only: false,
        events: Some("ui/events".into()),
    })
}

/// The server name and the `/api/...` path (with its query) a
/// `/s/{server}/api/...` request is for; an error for anything else.
fn split_target(uri: &axum::http::Uri) -> Result<(&str, String), ApiError> {
    let path = uri.path();
    let rest = path.strip_prefix("/s/").ok_or(ApiError::NotFound)?;
    let (server, api_path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !is_valid_server_name(server) {
        return Err(ApiError::InvalidRequest(format!(
            "invalid server name {:?}: use letters, digits, '-', '_' and '.'",
            server.chars().take(80).collect::<String>()
        )));
    }
    if !api_path.starts_with("/api/") {
        return Err(ApiError::NotFound);
    }
    // A URL parser resolves dot segments (also percent-encoded, and `\` as
    // `/`), which would reach routes outside /api/ on the server.
    let escapes = api_path.contains('\\')
        || api_path.split('/').any(|segment| {
            let lower = segment.to_ascii_lowercase().replace("%2e", ".");
            !lower.is_empty() && lower.bytes().all(|b| b == b'.')
        });
    if escapes {
        return Err(ApiError::InvalidRequest(
            "dot segments are not allowed in a relayed path".into(),
        ));
    }
    let target = match uri.query() {
        Some(query) => format!("{api_path}?{query}"),
        None => api_path.to_string(),
    };
    Ok((server, target))
}

fn client_error(error: ClientError) -> ApiError {
    ApiError::Upstream(crate::client::output::one_line(&error.to_string()))
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn relay(State(state): State<Arc<UiState>>, request: Request) -> Response {
    match relay_request(&state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn relay_request(state: &UiState, request: Request) -> Result<Response, ApiError> {
    let (server, target) = split_target(request.uri())?;
    let client = state
        .servers
        .get(server)
        .ok_or_else(|| ApiError::UnknownServer(server.to_string()))?;
    let method = request.method().clone();
    if is_websocket(request.headers()) && method == Method::GET {
        return relay_websocket(state, client.clone(), target, request).await;
    }
    if ![
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ]
    .contains(&method)
    {
        return Err(ApiError::MethodNotAllowed);
    }
    let mut headers = reqwest::header::HeaderMap::new();
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = request.headers().get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let body = axum::body::to_bytes(request.into_body(), MAX_REQUEST_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    // The events stream is meant to stay open; the server's keep-alive
    // comments show it is alive, and the browser reconnects if it is not.
    let streaming = target == "/api/events" || target.starts_with("/api/events?");
    let timeout = (!streaming).then_some(REQUEST_TIMEOUT);
    let upstream = client
        .relay(method, &target, headers, body.to_vec(), timeout)
        .await
        .map_err(client_error)?;
    let mut response = Response::builder().status(upstream.status().as_u16());
    for name in FORWARDED_RESPONSE_HEADERS {
        if let Some(value) = upstream.headers().get(&name) {
            response = response.header(name, value.clone());
        }
    }
    // Chunk by chunk as the server sends them, so events arrive as they happen.
    let body = futures_util::stream::unfold(Some(upstream), |upstream| async move {
        let mut upstream = upstream?;
        match upstream.chunk().await {
            Ok(Some(chunk)) => Some((Ok::<Bytes, reqwest::Error>(chunk), Some(upstream))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    });
    response
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::Upstream(e.to_string()))
}

/// What a server answered instead of upgrading a terminal WebSocket.
enum Refused {
    Answer(Response),
    Failed(ApiError),
}

type Upstream = tokio_tungstenite::WebSocketStream<
    tokio_util::either::Either<
        tokio::net::TcpStream,
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    >,
>;

/// Opens the server's side first, so its refusal (404, 409, 503 JSON)
/// reaches the browser as an ordinary answer instead of an upgrade.
async fn connect_upstream(client: &ApiClient, target: &str) -> Result<Upstream, Refused> {
    let RawConnection {
        stream,
        secure,
        authority,
    } = client
        .connect_raw()
        .await
        .map_err(|e| Refused::Failed(client_error(e)))?;
    let scheme = if secure { "wss" } else { "ws" };
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "{scheme}://{authority}{target}"
    ))
    .map_err(|e| Refused::Failed(ApiError::InvalidRequest(e.to_string())))?;
    if let Some(token) = client.token() {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Refused::Failed(ApiError::Upstream("the token is not a header".into())))?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_OUTPUT))
        .max_frame_size(Some(MAX_WS_OUTPUT));
    let handshake = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
    match tokio::time::timeout(Duration::from_secs(30), handshake).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(answer))) => {
            let (parts, body) = (*answer).into_parts();
            let mut response = Response::builder().status(parts.status);
            if let Some(value) = parts.headers.get(header::CONTENT_TYPE) {
                response = response.header(header::CONTENT_TYPE, value.clone());
            }
            Err(match response.body(Body::from(body.unwrap_or_default())) {
                Ok(response) => Refused::Answer(response),
                Err(e) => Refused::Failed(ApiError::Upstream(e.to_string())),
            })
        }
        Ok(Err(e)) => Err(Refused::Failed(ApiError::Upstream(format!(
            "server {:?}: the terminal WebSocket failed: {e}",
            client.server()
        )))),
        Err(_) => Err(Refused::Failed(ApiError::Upstream(format!(
            "server {:?}: the terminal WebSocket did not open in time",
            client.server()
        )))),
    }
}

async fn relay_websocket(
    state: &UiState,
    client: ApiClient,
    target: String,
    request: Request,
) -> Result<Response, ApiError> {
    let permit = state
        .terminals
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyTerminals(MAX_TERMINALS))?;
    let (mut parts, _body) = request.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let upstream = match connect_upstream(&client, &target).await {
        Ok(socket) => socket,
        Err(Refused::Answer(response)) => return Ok(response),
        Err(Refused::Failed(e)) => return Err(e),
    };
    Ok(upgrade
        .max_message_size(MAX_WS_INPUT)
        .max_frame_size(MAX_WS_INPUT)
        .on_upgrade(move |browser| async move {
            let _permit = permit;
            pump(browser, upstream).await;
        }))
}

fn to_upstream(message: Message) -> Option<tungstenite::Message> {
    match message {
        Message::Binary(bytes) => Some(tungstenite::Message::Binary(bytes)),
        Message::Text(text) => Some(tungstenite::Message::text(text.as_str())),
        Message::Close(frame) => Some(tungstenite::Message::Close(frame.map(|f| {
            tungstenite::protocol::CloseFrame {
                code: f.code.into(),
                reason: f.reason.as_str().into(),
            }
        }))),
        // Each side answers its own pings.
        Message::Ping(_) | Message::Pong(_) => None,
    }
}

fn to_browser(message: tungstenite::Message) -> Option<Message> {
    match message {
        tungstenite::Message::Binary(bytes) => Some(Message::Binary(bytes)),
        tungstenite::Message::Text(text) => Some(Message::Text(text.as_str().into())),
        tungstenite::Message::Close(frame) => Some(Message::Close(frame.map(|f| CloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().into(),
        }))),
        _ => None,
    }
}

/// Copies frames both ways until either side closes; a frame waits for the
/// other side to take the previous one, so nothing queues up.
async fn pump(browser: WebSocket, upstream: Upstream) {
    let (mut browser_tx, mut browser_rx) = browser.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            from_browser = browser_rx.next() => {
                heard = tokio::time::Instant::now();
                match from_browser {
                    Some(Ok(message)) => {
                        let closing = matches!(message, Message::Close(_));
                        if let Some(message) = to_upstream(message) {
                            if upstream_tx.send(message).await.is_err() || closing {
                                break;
                            }
                        }
                    }
                    _ => {
                        let _ = upstream_tx.send(tungstenite::Message::Close(None)).await;
                        break;
                    }
                }
            }
            from_upstream = upstream_rx.next() => match from_upstream {
                Some(Ok(message)) => {
                    let closing = matches!(message, tungstenite::Message::Close(_));
                    if let Some(message) = to_browser(message) {
                        if browser_tx.send(message).await.is_err() || closing {
                            break;
                        }
                    }
                }
                other => {
                    tracing::debug!(?other, "the server's terminal WebSocket ended");
                    let _ = browser_tx
                        .send(Message::Close(Some(CloseFrame {
                            code: 1011,
                            reason: "the server's side ended".into(),
                        })))
                        .await;
                    break;
                }
            },
            _ = ping.tick() => {
                if heard.elapsed() > PEER_TIMEOUT {
                    tracing::debug!("the browser stopped answering; closing its terminal");
                    let _ = upstream_tx.send(tungstenite::Message::Close(None)).await;
                    break;
                }
                if browser_tx.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_api_paths_of_valid_servers_are_relayed() {
        let ok = |uri: &str| {
            let uri: axum::http::Uri = uri.parse().unwrap();
            split_target(&uri).map(|(s, t)| (s.to_string(), t))
        };
        assert_eq!(
            ok("/s/box/api/sheds?x=1").unwrap(),
            ("box".to_string(), "/api/sheds?x=1".to_string())
        );
        assert_eq!(ok("/s/a.b_c-1/api/events").unwrap().0, "a.b_c-1");
        for bad in [
            "/s/box",
            "/s/box/",
            "/s/box/apis",
            "/s/box/ui/servers",
            "/s/box/api/../ui/servers",
            "/s/box/api/%2e%2E/ui/servers",
            "/s/box/api/./x",
            "/s/box/api/sheds\\..\\x",
            "/s/../api/x",
            "/s/b%20x/api/x",
            "/s//api/x",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
    }
}
