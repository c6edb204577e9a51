//! Request extractors whose rejections use the API error body, and the
//! validating path extractors that keep name checks out of the handlers.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;

use crate::api::{validate_session_name, validate_shed_name, NameError};
use crate::server::backend::BackendError;
use crate::server::error::ApiError;

/// `axum::Json` whose rejections use the API error body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::Form` whose rejections use the API error body.
#[derive(FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub struct ApiForm<T>(pub T);

/// `axum::extract::Path` whose rejections use the API error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` whose rejections use the API error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Longest part of a refused name quoted back to the client.
const MAX_SHOWN: usize = 64;

/// `name` when it passes `rule`; otherwise the error `refusal` makes of a
/// message naming `what` kind of name it is.
fn checked(
    name: String,
    what: &str,
    rule: fn(&str) -> Result<(), NameError>,
    refusal: fn(String) -> ApiError,
) -> Result<String, ApiError> {
    match rule(&name) {
        Ok(()) => Ok(name),
        Err(e) => {
            let shown: String = name.chars().take(MAX_SHOWN).collect();
            Err(refusal(format!("invalid {what} name {shown:?}: {e}")))
        }
    }
}

/// A shed name that passed the name rule: the `{name}` path segment, or a
/// name from a body through [`ShedName::parse`]. The field is private to
/// the HTTP layer, so no unchecked name can pass for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShedName(pub(super) String);

impl ShedName {
    /// Checks `name` against the shed name rule.
    pub fn parse(name: String) -> Result<ShedName, ApiError> {
        checked(name, "shed", validate_shed_name, ApiError::InvalidName).map(ShedName)
    }

    /// The checked name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A session name that passed the session name rule: the `{session}` path
/// segment, or a name from a body through [`SessionName::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionName(pub(super) String);

impl SessionName {
    /// Checks `name` against the session name rule.
    pub fn parse(name: String) -> Result<SessionName, ApiError> {
        let refusal = ApiError::InvalidSessionName;
        checked(name, "session", validate_session_name, refusal).map(SessionName)
    }

    /// The checked name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The percent-decoded path segment `key` of the matched route.
async fn path_segment<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    key: &str,
) -> Result<String, ApiError> {
    let ApiPath(mut segments) =
        ApiPath::<HashMap<String, String>>::from_request_parts(parts, state).await?;
    // A route without the segment is a wiring mistake, not a client error.
    segments.remove(key).ok_or_else(|| {
        ApiError::Backend(BackendError::Internal(format!(
            "route has no {{{key}}} segment"
        )))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for ShedName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        ShedName::parse(path_segment(parts, state, "name").await?)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        SessionName::parse(path_segment(parts, state, "session").await?)
    }
}

/// A `{key}` path parameter in the OpenAPI document, a string matching `pattern`.
fn path_parameter(key: &str, description: &str, pattern: &str) -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};
    ParameterBuilder::new()
        .name(key)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern)),
        ))
        .build()
}

impl utoipa::IntoParams for ShedName {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![path_parameter(
            "name",
            "Shed name",
            "^[a-z0-9][a-z0-9-]{0,62}$",
        )]
    }
}

impl utoipa::IntoParams for SessionName {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![path_parameter(
            "session",
            "Session name",
            "^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$",
        )]
    }
}
