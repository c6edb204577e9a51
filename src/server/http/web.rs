//! The web dashboard's pages: the page itself and its assets (no auth: they
//! hold no data), the login form that turns the token into a cookie, and
//! the list of servers the page shows. The terminal is in `terminal`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::{self, Access};
use super::extract::{ApiForm, ApiPath};
use super::openapi::AuthErrors;
use super::AppState;
use crate::api::ui::{UiServer, UiServers};
use crate::api::ErrorBody;
use crate::server::error::ApiError;
use crate::web;

/// What the login page says after a wrong token.
const WRONG_TOKEN: &str = "That token is not this server's.";

/// The headers of every page response: no sniffing, no framing (against
/// clickjacking), and a policy that lets the page load and connect only to
/// this server. `host` is the request's Host, already checked by the guard,
/// for the WebSocket sources (older browsers do not count `ws:` as 'self').
fn page_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let sockets = host.map_or(String::new(), |h| format!(" ws://{h} wss://{h}"));
    // Inline styles are allowed because terminal emulators set them from
    // script; inline scripts are not.
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self'; connect-src 'self'{sockets}; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    let mut out = vec![
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Not `no-referrer`: under it Chromium sends `Origin: null` with the
        // login form's POST, which the Origin guard rightly refuses.
        // `same-origin` still tells other sites nothing.
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        out.push((header::CONTENT_SECURITY_POLICY, csp));
    }
    out
}

/// A page response: `body` as `content_type`, with [`page_headers`]
/// (`shed ui` serves its page with the same).
pub fn page(
    status: StatusCode,
    request: &HeaderMap,
    content_type: &'static str,
    body: impl Into<axum::body::Body>,
) -> Response {
    let mut response = (status, body.into()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in page_headers(request) {
        headers.insert(name, value);
    }
    response
}

/// The login form, with `error` when a login failed.
fn login_form(status: StatusCode, request: &HeaderMap, error: Option<&str>) -> Response {
    page(
        status,
        request,
        "text/html; charset=utf-8",
        web::login_page(error),
    )
}

#[utoipa::path(
    get,
    path = "/",
    responses(
        (status = 200, description = "The dashboard, or the login form when a token is needed and the request has none", content_type = "text/html", body = String),
    )
)]
pub(super) async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if auth::access(&state, &headers).is_none() {
        // 200, not 401: the browser shows the form rather than an error.
        return login_form(StatusCode::OK, &headers, None);
    }
    match web::asset("index.html") {
        Some(index) => page(StatusCode::OK, &headers, index.content_type, index.body),
        None => ApiError::NotFound.into_response(),
    }
}

#[utoipa::path(
    get,
    path = "/assets/{path}",
    params(("path" = String, Path, description = "The file, e.g. `app.js` or `vendor/xterm/xterm.js`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"), (String = "application/javascript"), (String = "text/css"),
            (String = "text/html"), (String = "text/plain"), (String = "text/markdown"),
            (String = "image/svg+xml"), (String = "image/png")
        )),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No such file", body = ErrorBody),
    )
)]
pub(super) async fn asset(headers: HeaderMap, ApiPath(path): ApiPath<String>) -> Response {
    match web::asset(&path) {
        Some(asset) => page(StatusCode::OK, &headers, asset.content_type, asset.body),
        None => ApiError::NotFound.into_response(),
    }
}

/// The login form's body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    /// The server's `api_token` (or `api_token_read_only`).
    pub token: String,
}

#[utoipa::path(
    post,
    path = "/login",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged in: the cookie is set (HttpOnly, SameSite=Strict, Secure under TLS); on to the page", headers(
            ("Location" = String, description = "`./`, the page"),
            ("Set-Cookie" = String, description = "`shed_token`")
        )),
        (status = 400, description = "The form has no token", body = ErrorBody),
        (status = 401, description = "Wrong token: the login form again, with the error", content_type = "text/html", body = String),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not a form", body = ErrorBody),
    )
)]
pub(super) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiForm(form): ApiForm<LoginForm>,
) -> Response {
    if auth::login(&state, &form.token).is_none() {
        tracing::info!("web login refused: wrong token");
        return login_form(StatusCode::UNAUTHORIZED, &headers, Some(WRONG_TOKEN));
    }
    // With no token configured there is nothing to remember.
    let cookie = state
        .api_token
        .is_some()
        .then(|| auth::login_cookie(&form.token, state.tls));
    see_page(cookie)
}

#[utoipa::path(
    post,
    path = "/logout",
    responses(
        (status = 303, description = "Logged out: the cookie is cleared; on to the page", headers(
            ("Location" = String, description = "`./`, the page"),
            ("Set-Cookie" = String, description = "`shed_token`, expired")
        )),
    )
)]
pub(super) async fn logout(State(state): State<AppState>) -> Response {
    see_page(Some(auth::logout_cookie(state.tls)))
}

/// 303 to the page, setting `cookie` if given. The Location is relative, so
/// it holds wherever the page is served from.
fn see_page(cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("./"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, value);
    }
    response
}

#[utoipa::path(
    get,
    path = "/ui/servers",
    responses(
        (status = 200, description = "The servers the page shows: this one, its API at `api/...`", body = UiServers),
        AuthErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn ui_servers(State(state): State<AppState>, access: Access) -> Json<UiServers> {
    Json(UiServers {
        servers: vec![UiServer {
            name: state.info.name.clone(),
            base: String::new(),
        }],
        read_only: access == Access::ReadOnly,
        events: None,
    })
}
