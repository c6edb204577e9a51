//! The one place where failures become HTTP responses.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use thiserror::Error;

use crate::api::{ErrorBody, ErrorCode};
use crate::server::backend::BackendError;

/// Every way a request can fail.
#[derive(Debug, Error)]
pub enum ApiError {
    /// A shed name broke the name rule.
    #[error("{0}")]
    InvalidName(String),
    /// The request is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// A session name broke the session name rule.
    #[error("{0}")]
    InvalidSessionName(String),
    /// The body is over the size limit.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// The body is not declared as JSON.
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// Missing or wrong bearer token.
    #[error("missing or invalid API token; send Authorization: Bearer TOKEN")]
    Unauthorized,
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
    /// Wrong method for the route.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// A handler panicked; the panic is logged.
    #[error("handler panicked")]
    Panic,
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The Host or Origin header is not this server's.
    #[error("{0}")]
    Forbidden(String),
    /// The request body did not arrive in time.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// The body is not declared as a form.
    #[error("expected a form body with Content-Type: application/x-www-form-urlencoded")]
    NotForm,
    /// A WebSocket endpoint was called as plain HTTP.
    #[error("this endpoint is a WebSocket: {0}")]
    UpgradeRequired(String),
    /// Every browser terminal slot is taken.
    #[error("this server has {0} browser terminals open, the most it allows; close one first")]
    TooManyTerminals(usize),
    /// `shed ui`: the server a request was for gave no answer.
    #[error("{0}")]
    Upstream(String),
    /// `shed ui`: no configured server has that name.
    #[error("no configured server named {0:?}")]
    UnknownServer(String),
}

/// What the client is told instead of an internal error's detail.
const INTERNAL_MESSAGE: &str = "internal server error; see the server log";
/// What the client is told instead of why Docker could not be reached.
const DOCKER_UNAVAILABLE_MESSAGE: &str = "the Docker engine is unavailable; try again later";

impl ApiError {
    /// The status and code of this error.
    fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        use BackendError as B;
        use ErrorCode as C;
        use StatusCode as S;
        match self {
            ApiError::InvalidName(_) => (S::BAD_REQUEST, C::InvalidName),
            ApiError::InvalidRequest(_) => (S::BAD_REQUEST, C::InvalidRequest),
            ApiError::InvalidSessionName(_) => (S::BAD_REQUEST, C::InvalidSessionName),
            ApiError::PayloadTooLarge => (S::PAYLOAD_TOO_LARGE, C::PayloadTooLarge),
            ApiError::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, C::UnsupportedMediaType),
            ApiError::Unauthorized => (S::UNAUTHORIZED, C::Unauthorized),
            ApiError::NotFound => (S::NOT_FOUND, C::NotFound),
            ApiError::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, C::MethodNotAllowed),
            ApiError::Panic => (S::INTERNAL_SERVER_ERROR, C::Internal),
            ApiError::Forbidden(_) => (S::FORBIDDEN, C::Forbidden),
            ApiError::RequestTimeout => (S::REQUEST_TIMEOUT, C::RequestTimeout),
            ApiError::NotForm => (S::UNSUPPORTED_MEDIA_TYPE, C::UnsupportedMediaType),
            ApiError::UpgradeRequired(_) => (S::UPGRADE_REQUIRED, C::UpgradeRequired),
            ApiError::TooManyTerminals(_) => (S::SERVICE_UNAVAILABLE, C::TooManyTerminals),
            ApiError::Upstream(_) => (S::BAD_GATEWAY, C::ServerUnreachable),
            ApiError::UnknownServer(_) => (S::NOT_FOUND, C::NotFound),
            ApiError::Backend(e) => match e {
                B::ShedNotFound(_) => (S::NOT_FOUND, C::ShedNotFound),
                B::ShedExists(_) | B::ShedBeingCreated(_) => (S::CONFLICT, C::ShedExists),
                B::AlreadyRunning(_) => (S::CONFLICT, C::ShedAlreadyRunning),
                B::AlreadyStopped(_) => (S::CONFLICT, C::ShedAlreadyStopped),
                B::ImageNotFound(_) => (S::BAD_REQUEST, C::ImageNotFound),
                B::CloneFailed { .. } => (S::BAD_REQUEST, C::CloneFailed),
                B::DockerUnavailable(_) => (S::SERVICE_UNAVAILABLE, C::DockerUnavailable),
                B::SessionNotFound { .. } => (S::NOT_FOUND, C::SessionNotFound),
                B::SessionExists { .. } => (S::CONFLICT, C::SessionExists),
                B::ShedNotRunning(_) => (S::CONFLICT, C::ShedNotRunning),
                B::MaxSessions { .. } => (S::CONFLICT, C::MaxSessions),
                B::TmuxNotAvailable(_) => (S::SERVICE_UNAVAILABLE, C::TmuxNotAvailable),
                B::Timeout(_) => (S::GATEWAY_TIMEOUT, C::Timeout),
                B::BadRequest(_) => (S::BAD_REQUEST, C::InvalidRequest),
                B::Internal(_) => (S::INTERNAL_SERVER_ERROR, C::Internal),
                B::ToolMissing { .. } => (S::SERVICE_UNAVAILABLE, C::ToolNotAvailable),
                B::VolumeConflict(_) => (S::CONFLICT, C::VolumeConflict),
                B::DeleteIncomplete(_) => (S::CONFLICT, C::DeleteIncomplete),
                B::SessionExited { .. } => (S::CONFLICT, C::SessionExited),
            },
        }
    }

    /// The status, code and client-safe message of this error: its own
    /// text, except where the detail is for the server log only.
    pub(crate) fn parts(&self) -> (StatusCode, ErrorCode, String) {
        let (status, code) = self.status_and_code();
        let message = match self {
            ApiError::Panic | ApiError::Backend(BackendError::Internal(_)) => {
                INTERNAL_MESSAGE.to_string()
            }
            ApiError::Backend(BackendError::DockerUnavailable(_)) => {
                DOCKER_UNAVAILABLE_MESSAGE.to_string()
            }
            other => other.to_string(),
        };
        (status, code, message)
    }
}

/// What a failed response was about, carried as a response extension from
/// [`ApiError::into_response`] to [`log_failures`]; never sent to the client.
#[derive(Debug, Clone)]
pub struct FailureDetail {
    /// The code the client saw.
    pub code: ErrorCode,
    /// The full error, internals included.
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut response = (status, Json(ErrorBody::new(code, message))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("static header"),
            );
        }
        response.extensions_mut().insert(FailureDetail {
            code,
            detail: self.to_string(),
        });
        response
    }
}

/// Middleware that logs the [`FailureDetail`] of a failed response: server
/// errors at error level (their details are hidden from the client), refusals
/// at debug. It takes the detail out, so a response is logged once however
/// many times the layer wraps it. The detail is logged escaped (Debug): it
/// can hold a client's value or a shed's tmux stderr, and a raw newline in
/// it would forge log lines.
pub async fn log_failures(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(failure) = response.extensions_mut().remove::<FailureDetail>() {
        if response.status().is_server_error() {
            tracing::error!(code = %failure.code, error = ?failure.detail, "request failed");
        } else {
            tracing::debug!(code = %failure.code, error = ?failure.detail, "request refused");
        }
    }
    response
}

/// Whether the listener's body deadline is what failed a body extractor.
fn is_body_timeout(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(rejection);
    while let Some(e) = cause {
        if e.is::<crate::server::listener::BodyTimeout>() {
            return true;
        }
        cause = e.source();
    }
    false
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if is_body_timeout(&rejection) {
            return ApiError::RequestTimeout;
        }
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            _ => ApiError::InvalidRequest(format!("invalid JSON body: {}", rejection.body_text())),
        }
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        if is_body_timeout(&rejection) {
            return ApiError::RequestTimeout;
        }
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::NotForm,
            _ => ApiError::InvalidRequest(format!("invalid form body: {}", rejection.body_text())),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::InvalidRequest(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::InvalidRequest(format!("invalid query string: {}", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_detail() {
        let err = ApiError::Backend(BackendError::Internal("secret /var/lib path".into()));
        let (status, code, message) = err.parts();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(code, ErrorCode::Internal);
        assert!(!message.contains("secret"));
        let err = ApiError::Backend(BackendError::DockerUnavailable("/run/docker.sock".into()));
        let (status, _, message) = err.parts();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!message.contains("docker.sock"));
    }

    #[test]
    fn the_detail_rides_along_for_the_log_only() {
        let response = ApiError::Backend(BackendError::Internal("secret /var/lib path".into()))
            .into_response();
        let failure = response.extensions().get::<FailureDetail>().unwrap();
        assert_eq!(failure.code, ErrorCode::Internal);
        assert!(failure.detail.contains("secret"));
    }

    /// A `Write` into a shared buffer, for a subscriber whose output the
    /// test reads.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failure_detail_cannot_forge_log_lines() {
        use tower::ServiceExt;
        // What a compromised shed's tmux could print to stderr.
        let forged = "2030-01-01T00:00:00.000000Z  INFO shed::server: FORGED";
        let detail = format!("tmux failed: boom\n{forged}\r\u{1b}[2J");
        let kinds: [fn(String) -> BackendError; 2] =
            [BackendError::Internal, BackendError::BadRequest];
        for kind in kinds {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            let _guard = tracing::subscriber::set_default(subscriber);
            let detail = detail.clone();
            let app = axum::Router::new()
                .route(
                    "/",
                    axum::routing::get(move || {
                        let error = ApiError::Backend(kind(detail.clone()));
                        async move { error.into_response() }
                    }),
                )
                .layer(axum::middleware::from_fn(log_failures));
            let request = axum::http::Request::new(axum::body::Body::empty());
            app.oneshot(request).await.unwrap();
            let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
            assert!(
                log.contains("FORGED"),
                "the failure was not logged: {log:?}"
            );
            assert_eq!(log.lines().count(), 1, "{log}");
            assert!(!log.contains('\r') && !log.contains('\u{1b}'), "{log:?}");
            assert!(log.contains("boom\\n2030-01-01"), "{log}");
        }
    }
}
