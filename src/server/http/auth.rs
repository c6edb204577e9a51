//! Who a request is: the bearer token or the browser's `shed_token`
//! cookie, full or read-only, and the middleware that refuses the rest.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::server::error::ApiError;

/// The cookie the login form sets, holding the token itself.
pub const COOKIE: &str = "shed_token";

/// Most credentials (bearer headers and cookies) looked at per request, so
/// a request stuffed with cookies costs no more than a few comparisons.
const MAX_CREDENTIALS: usize = 8;

/// What a request's credentials allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everything: no token is configured, or the request carries `api_token`.
    Full,
    /// GET and HEAD only, and terminals that take no input: the request
    /// carries `api_token_read_only`.
    ReadOnly,
}

/// Whether `presented` is `expected`, in time independent of where they differ.
fn same_token(presented: &[u8], expected: &str) -> bool {
    bool::from(presented.ct_eq(expected.as_bytes()))
}

/// The tokens a request presents: bearer headers, then `shed_token` cookies.
fn presented(headers: &HeaderMap) -> impl Iterator<Item = Vec<u8>> + '_ {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer "))
        .map(|t| t.as_bytes().to_vec());
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .filter_map(|(_, value)| cookie_decode(value));
    bearer.chain(cookies).take(MAX_CREDENTIALS)
}

/// What the request may do; `None` when a token is required and no
/// credential it presents is one.
pub fn access(state: &AppState, headers: &HeaderMap) -> Option<Access> {
    let Some(full) = &state.api_token else {
        return Some(Access::Full);
    };
    let mut granted = None;
    for token in presented(headers) {
        if same_token(&token, full) {
            return Some(Access::Full);
        }
        if let Some(read_only) = &state.api_token_read_only {
            if same_token(&token, read_only) {
                granted = Some(Access::ReadOnly);
            }
        }
    }
    granted
}

/// The access a login with `token` grants, if any (with no token
/// configured there is nothing to log in to: `Full`).
pub fn login(state: &AppState, token: &str) -> Option<Access> {
    let Some(full) = &state.api_token else {
        return Some(Access::Full);
    };
    if same_token(token.as_bytes(), full) {
        return Some(Access::Full);
    }
    let read_only = state.api_token_read_only.as_deref()?;
    same_token(token.as_bytes(), read_only).then_some(Access::ReadOnly)
}

/// Middleware: refuses requests without a valid token, when one is set, and
/// anything but GET and HEAD from the read-only token; tells the handler
/// which access the request has.
pub(super) async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let access = access(&state, request.headers()).ok_or(ApiError::Unauthorized)?;
    if access == Access::ReadOnly && !matches!(*request.method(), Method::GET | Method::HEAD) {
        return Err(ApiError::Forbidden(
            "read-only token: only GET and HEAD requests are allowed".into(),
        ));
    }
    request.extensions_mut().insert(access);
    Ok(next.run(request).await)
}

impl FromRequestParts<AppState> for Access {
    type Rejection = std::convert::Infallible;

    /// The access [`require_token`] found; on a route it does not guard,
    /// what the request's credentials allow, read-only when none is valid
    /// (such a route serves nothing secret).
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Access, std::convert::Infallible> {
        if let Some(access) = parts.extensions.get::<Access>() {
            return Ok(*access);
        }
        Ok(access(state, &parts.headers).unwrap_or(Access::ReadOnly))
    }
}

/// Whether `b` may stand in a cookie value as is (RFC 6265 cookie-octet),
/// `%` aside, which escapes the others.
fn cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E) && b != b'%'
}

/// `token` as a cookie value: itself for the usual token characters,
/// percent-escaped where a cookie cannot carry a byte.
pub fn cookie_encode(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    for b in token.bytes() {
        if cookie_octet(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token a cookie value carries; `None` when an escape is malformed.
fn cookie_decode(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The `Set-Cookie` value that logs a browser in with `token`; `Secure`
/// under TLS, so the cookie never travels in clear text.
pub fn login_cookie(token: &str, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}",
        cookie_encode(token)
    )
}

/// The `Set-Cookie` value that logs a browser out.
pub fn logout_cookie(tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_round_trip_any_token() {
        for token in ["0123abcdef", "a;b c\"d%e,f\\g", "héllo✓"] {
            let encoded = cookie_encode(token);
            assert!(
                encoded.bytes().all(|b| cookie_octet(b) || b == b'%'),
                "{encoded}"
            );
            assert_eq!(cookie_decode(&encoded).unwrap(), token.as_bytes());
        }
        assert_eq!(cookie_encode("plain-token_123"), "plain-token_123");
        assert!(cookie_decode("bad%4").is_none());
        assert!(cookie_decode("bad%zz").is_none());
    }

    #[test]
    fn cookies_carry_the_flags_tls_needs() {
        assert_eq!(
            login_cookie("t0ken", false),
            "shed_token=t0ken; HttpOnly; SameSite=Strict; Path=/"
        );
        assert!(login_cookie("t0ken", true).ends_with("; Secure"));
        assert!(logout_cookie(false).contains("Max-Age=0"));
        assert!(logout_cookie(true).ends_with("; Secure"));
    }

    #[test]
    fn tokens_come_from_bearer_headers_and_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer one".parse().unwrap());
        headers.append(
            header::COOKIE,
            "other=x; shed_token=two%3B; x=y".parse().unwrap(),
        );
        let found: Vec<Vec<u8>> = presented(&headers).collect();
        assert_eq!(found, vec![b"one".to_vec(), b"two;".to_vec()]);
    }
}
