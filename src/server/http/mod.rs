//! The HTTP API: the router, its shared state and the Host/Origin guard.
//! Handlers live per resource (`sheds`, `sessions`, `meta`, the web page in
//! `web` and its terminal in `terminal`), the token check in `auth`,
//! extractors in `extract`, the OpenAPI document in `openapi`.

pub mod auth;
mod events;
pub mod extract;
mod hooks;
mod meta;
pub mod openapi;
mod sessions;
mod sheds;
mod snapshots;
pub mod terminal;
mod web;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::api::ServerInfo;
use crate::server::backend::ShedBackend;
use crate::server::error::{log_failures, ApiError};

pub use events::EventParams;
pub use extract::{ApiJson, ApiPath, ApiQuery, SessionName, ShedName};
pub use openapi::ApiDoc;
pub use sessions::OutputParams;
pub use sheds::DeleteParams;
pub use snapshots::RestoreParams;
pub use web::page;

/// Largest request body accepted; create bodies are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The container engine.
    pub backend: Arc<dyn ShedBackend>,
    /// Answer of `GET /api/info`.
    pub info: ServerInfo,
    /// Image for creates that name none.
    pub default_image: String,
    /// Bearer token, when auth is on.
    pub api_token: Option<Arc<str>>,
    /// The token that may only read (GET and HEAD, terminals without input).
    pub api_token_read_only: Option<Arc<str>>,
    /// Whether the API is served over TLS, so the login cookie is `Secure`.
    pub tls: bool,
    /// Terminal processes in sheds, for the browser terminal.
    pub exec: Arc<dyn crate::server::exec::InteractiveExec>,
    /// The browser terminals open, bounded.
    pub terminals: terminal::Terminals,
    /// The SSH gateway's public host key, OpenSSH format.
    pub ssh_host_key: Option<String>,
    /// Session operations, with concurrent reads coalesced.
    pub sessions: Arc<crate::server::sessions::Sessions>,
    /// Whether the SSH gateway is serving, for `/api/health`.
    pub gateway: crate::server::ssh::supervisor::GatewayHealth,
    /// What `GET /api/events` streams: shed and session changes.
    pub events: Arc<crate::server::events::EventBus>,
    /// Whether a create installs the agent state hooks.
    pub install_hooks: bool,
}

/// Turns a method filter into the route's method router.
type Register = Box<dyn FnOnce(MethodFilter) -> MethodRouter<AppState>>;

/// One route of the API: what the router registers, and what the OpenAPI
/// coverage test compares with the document.
struct ApiRoute {
    method: Method,
    path: &'static str,
    /// Served without the bearer token.
    public: bool,
    handler: Register,
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> ApiRoute
where
    H: Handler<T, AppState>,
    T: 'static,
{
    ApiRoute {
        method,
        path,
        public: false,
        handler: Box::new(move |filter| on(filter, handler)),
    }
}

impl ApiRoute {
    fn public(self) -> ApiRoute {
        ApiRoute {
            public: true,
            ..self
        }
    }

    fn register(self, router: Router<AppState>) -> Router<AppState> {
        let filter = MethodFilter::try_from(self.method).expect("a method axum can route");
        router.route(self.path, (self.handler)(filter))
    }
}

/// Every route of the API.
fn routes() -> Vec<ApiRoute> {
    const SHED: &str = "/api/sheds/{name}";
    const SESSIONS: &str = "/api/sheds/{name}/sessions";
    const SESSION: &str = "/api/sheds/{name}/sessions/{session}";
    vec![
        route(Method::GET, "/api/health", meta::health).public(),
        route(Method::GET, "/api/info", meta::info),
        route(Method::GET, "/api/ssh-host-key", meta::ssh_host_key),
        route(Method::GET, "/api/openapi.json", openapi::openapi_json),
        route(Method::GET, "/api/sheds", sheds::list_sheds),
        route(Method::POST, "/api/sheds", sheds::create_shed),
        route(Method::GET, SHED, sheds::get_shed),
        route(Method::DELETE, SHED, sheds::delete_shed),
        route(Method::POST, "/api/sheds/{name}/start", sheds::start_shed),
        route(Method::POST, "/api/sheds/{name}/stop", sheds::stop_shed),
        route(
            Method::POST,
            "/api/sheds/{name}/hooks",
            hooks::install_hooks,
        ),
        route(Method::GET, SESSIONS, sessions::list_sessions),
        route(Method::POST, SESSIONS, sessions::create_session),
        route(Method::GET, SESSION, sessions::get_session),
        route(Method::DELETE, SESSION, sessions::kill_session),
        route(
            Method::GET,
            "/api/sheds/{name}/sessions/{session}/output",
            sessions::session_output,
        ),
        route(
            Method::GET,
            "/api/sheds/{name}/sessions/{session}/agent",
            sessions::session_agent,
        ),
        route(
            Method::POST,
            "/api/sheds/{name}/sessions/{session}/input",
            sessions::send_input,
        ),
        route(Method::GET, "/api/sessions", sessions::all_sessions),
        route(
            Method::GET,
            "/api/sheds/{name}/snapshot",
            snapshots::get_snapshot,
        ),
        route(
            Method::POST,
            "/api/sheds/{name}/snapshot/restore",
            snapshots::restore_snapshot,
        ),
        route(Method::GET, "/api/events", events::events),
        route(
            Method::GET,
            "/api/sheds/{name}/sessions/{session}/terminal",
            terminal::terminal,
        ),
        route(Method::GET, "/", web::index).public(),
        route(Method::GET, "/assets/{*path}", web::asset).public(),
        route(Method::POST, "/login", web::login).public(),
        route(Method::POST, "/logout", web::logout).public(),
        route(Method::GET, "/ui/servers", web::ui_servers),
    ]
}

/// Builds the API router over `state`.
pub fn router(state: AppState) -> Router {
    let (public, protected): (Vec<ApiRoute>, Vec<ApiRoute>) =
        routes().into_iter().partition(|r| r.public);
    let register = |router, r: ApiRoute| r.register(router);
    let protected = protected
        .into_iter()
        .fold(Router::new(), register)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    public
        .into_iter()
        .fold(Router::new(), register)
        .merge(protected)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| ApiError::Panic.into_response()))
        .layer(middleware::from_fn(log_failures))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// Which `Host` and `Origin` headers the API answers, against DNS rebinding
/// and cross-site requests from web pages (see [`with_host_guard`]).
#[derive(Debug, Clone)]
pub struct HostPolicy {
    scheme: &'static str,
    bind: std::net::IpAddr,
    names: std::collections::HashSet<String>,
}

/// Longest header value quoted back in a refusal.
const MAX_QUOTED: usize = 100;

impl HostPolicy {
    /// Accepts loopback names and addresses, `bind` (any IP address when it
    /// is a wildcard: an IP literal cannot be rebound to another host), and
    /// `names`; `tls` gives the scheme a same-origin `Origin` must carry.
    pub fn new(
        bind: std::net::IpAddr,
        tls: bool,
        names: impl IntoIterator<Item = String>,
    ) -> HostPolicy {
        HostPolicy {
            scheme: if tls { "https" } else { "http" },
            bind,
            names: names
                .into_iter()
                .map(|n| normalize_host(&n))
                .map(|n| host_ip(&n).map_or(n, |ip| ip.to_string()))
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        match host_ip(host) {
            Some(ip) if ip.is_loopback() || ip == self.bind || self.bind.is_unspecified() => true,
            Some(ip) => self.names.contains(&ip.to_string()),
            None => host == "localhost" || self.names.contains(host),
        }
    }

    /// Refuses a request whose Host is not one of ours, or whose Origin is
    /// present and not exactly this API's own.
    pub fn check(&self, headers: &HeaderMap, uri: &axum::http::Uri) -> Result<(), ApiError> {
        let host_header = match headers.get_all(header::HOST).iter().collect::<Vec<_>>()[..] {
            [] => None,
            [one] => Some(one.to_str().map_err(|_| forbidden_host("<not text>"))?),
            _ => return Err(ApiError::Forbidden("more than one Host header".into())),
        };
        let authority = match (host_header, uri.authority()) {
            (Some(h), _) => h.to_string(),
            (None, Some(a)) => a.as_str().to_string(),
            (None, None) => return Err(ApiError::Forbidden("the Host header is missing".into())),
        };
        let (host, port) = split_authority(&authority).ok_or_else(|| forbidden_host(&authority))?;
        if let Some(a) = uri.authority() {
            if split_authority(a.as_str()) != Some((host.clone(), port)) {
                return Err(ApiError::Forbidden(
                    "the request target and the Host header disagree".into(),
                ));
            }
        }
        if !self.host_allowed(&host) {
            return Err(forbidden_host(&authority));
        }
        let origins: Vec<_> = headers.get_all(header::ORIGIN).iter().collect();
        let origin = match origins[..] {
            [] => return Ok(()),
            [one] => one.to_str().unwrap_or("<not text>"),
            _ => return Err(ApiError::Forbidden("more than one Origin header".into())),
        };
        let ours = port.unwrap_or(default_port(self.scheme));
        let same = origin
            .parse::<axum::http::Uri>()
            .ok()
            .filter(|u| u.path_and_query().is_none_or(|p| p.as_str() == "/"))
            .and_then(|u| {
                let scheme = u.scheme_str()?.to_ascii_lowercase();
                let (o_host, o_port) = split_authority(u.authority()?.as_str())?;
                Some(
                    scheme == self.scheme
                        && o_host == host
                        && o_port.unwrap_or(default_port(&scheme)) == ours,
                )
            })
            .unwrap_or(false);
        if same {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "cross-origin request refused: Origin {:?} is not this server",
                quoted(origin)
            )))
        }
    }
}

/// Runs `work` on a task of its own, so it goes to its end even if the
/// client goes away halfway; a panic in it is answered as one.
async fn to_completion<T, E>(
    work: impl std::future::Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Send + 'static,
    ApiError: From<E>,
{
    Ok(tokio::spawn(work).await.map_err(|_| ApiError::Panic)??)
}

fn quoted(text: &str) -> String {
    text.chars().take(MAX_QUOTED).collect()
}

fn forbidden_host(host: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "Host {:?} is not a name of this server; add it to allowed_hosts in the server config",
        quoted(host)
    ))
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// Lower case, without a trailing dot: `Localhost.` and `localhost` are one host.
fn normalize_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The address an IP-literal host names (`[::1]`, `127.0.0.1`), in canonical form.
fn host_ip(host: &str) -> Option<std::net::IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// `host[:port]` split into the normalized host and the port; `None` when
/// it does not parse, carries user info, or has an empty host.
fn split_authority(text: &str) -> Option<(String, Option<u16>)> {
    if text.contains('@') {
        return None;
    }
    let authority: axum::http::uri::Authority = text.parse().ok()?;
    if authority.port().is_some() && authority.port_u16().is_none() {
        return None;
    }
    let host = normalize_host(authority.host());
    (!host.is_empty()).then_some((host, authority.port_u16()))
}

async fn host_guard(
    State(policy): State<Arc<HostPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match policy.check(request.headers(), request.uri()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Wraps every route of `router`, the fallbacks included, in the Host/Origin
/// check of `policy`.
pub fn with_host_guard(router: Router, policy: HostPolicy) -> Router {
    router
        .layer(middleware::from_fn_with_state(Arc::new(policy), host_guard))
        // The guard's refusals come from outside the router's own log layer.
        .layer(middleware::from_fn(log_failures))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod web_tests;
