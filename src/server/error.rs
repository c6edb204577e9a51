//! The one place where failures become HTTP responses.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, StatusCode};
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
}

impl ApiError {
    /// The status, code and client-safe message of this error.
    pub(crate) fn parts(&self) -> (StatusCode, ErrorCode, String) {
        use BackendError as B;
        let internal = "internal server error; see the server log".to_string();
        match self {
            ApiError::InvalidName(m) => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidName, m.clone())
            }
            ApiError::InvalidRequest(m) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                m.clone(),
            ),
            ApiError::InvalidSessionName(m) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidSessionName,
                m.clone(),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                self.to_string(),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                self.to_string(),
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                self.to_string(),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound, self.to_string()),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                self.to_string(),
            ),
            ApiError::Panic => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                internal,
            ),
            ApiError::Backend(e) => match e {
                B::ShedNotFound(_) => (
                    StatusCode::NOT_FOUND,
                    ErrorCode::ShedNotFound,
                    e.to_string(),
                ),
                B::ShedExists(_) => (StatusCode::CONFLICT, ErrorCode::ShedExists, e.to_string()),
                B::AlreadyRunning(_) => (
                    StatusCode::CONFLICT,
                    ErrorCode::ShedAlreadyRunning,
                    e.to_string(),
                ),
                B::AlreadyStopped(_) => (
                    StatusCode::CONFLICT,
                    ErrorCode::ShedAlreadyStopped,
                    e.to_string(),
                ),
                B::ImageNotFound(_) => (
                    StatusCode::BAD_REQUEST,
                    ErrorCode::ImageNotFound,
                    e.to_string(),
                ),
                B::CloneFailed { .. } => (
                    StatusCode::BAD_REQUEST,
                    ErrorCode::CloneFailed,
                    e.to_string(),
                ),
                B::DockerUnavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::DockerUnavailable,
                    "the Docker engine is unavailable; try again later".into(),
                ),
                B::SessionNotFound { .. } => (
                    StatusCode::NOT_FOUND,
                    ErrorCode::SessionNotFound,
                    e.to_string(),
                ),
                B::SessionExists { .. } => (
                    StatusCode::CONFLICT,
                    ErrorCode::SessionExists,
                    e.to_string(),
                ),
                B::ShedNotRunning(_) => (
                    StatusCode::CONFLICT,
                    ErrorCode::ShedNotRunning,
                    e.to_string(),
                ),
                B::MaxSessions { .. } => {
                    (StatusCode::CONFLICT, ErrorCode::MaxSessions, e.to_string())
                }
                B::TmuxNotAvailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::TmuxNotAvailable,
                    e.to_string(),
                ),
                B::Timeout(_) => (
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorCode::Timeout,
                    e.to_string(),
                ),
                B::BadRequest(_) => (
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidRequest,
                    e.to_string(),
                ),
                B::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    internal,
                ),
            },
        }
    }
}

impl ApiError {
    /// [`ApiError::parts`], logging server-side failures as a response would.
    pub(crate) fn parts_logged(&self) -> (StatusCode, ErrorCode, String) {
        let parts = self.parts();
        if parts.0.is_server_error() {
            tracing::error!(code = %parts.1, error = %self, "request failed");
        }
        parts
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts_logged();
        if !status.is_server_error() {
            tracing::debug!(code = %code, error = %self, "request refused");
        }
        let mut response = (status, Json(ErrorBody::new(code, message))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("static header"),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            _ => ApiError::InvalidRequest(format!("invalid JSON body: {}", rejection.body_text())),
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
}
