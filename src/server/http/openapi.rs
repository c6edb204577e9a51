//! The OpenAPI document: its operations (from the handlers' annotations),
//! the answers many operations share, and the copy served at
//! `/api/openapi.json`.

use axum::extract::State;
use axum::Json;

// Globs bring in utoipa's `__path_*` companions; named by a bare ident, an
// operation gets no module tag, as before the split.
use super::AppState;
use super::{
    events::*, hooks::*, meta::*, sessions::*, sheds::*, snapshots::*, terminal::*, web::*,
};
use crate::api::ErrorBody;

/// The OpenAPI description of this API, generated from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "shed-server API", description = "Persistent Docker workspaces and the tmux sessions inside them."),
    paths(
        health, info, ssh_host_key, list_sheds, create_shed, get_shed, delete_shed, start_shed,
        stop_shed, install_hooks, list_sessions, create_session, get_session, kill_session,
        session_output, session_agent, send_input, all_sessions, get_snapshot, restore_snapshot,
        events, openapi_json, terminal, index, asset, login, logout, ui_servers
    ),
    // What an event stream's `data:` carries, for clients that parse it.
    components(schemas(crate::api::events::Event, crate::api::events::EventKind)),
    modifiers(&BearerAuth, &ForbiddenResponses)
)]
pub struct ApiDoc;

/// The answer any operation behind the token can give.
#[derive(utoipa::IntoResponses)]
pub enum AuthErrors {
    /// The bearer token is missing or wrong.
    #[response(status = 401, description = "Missing or wrong token")]
    Unauthorized(ErrorBody),
}

/// The answers every operation behind the token that reaches the backend
/// can give besides its own.
#[derive(utoipa::IntoResponses)]
pub enum CommonErrors {
    /// The bearer token is missing or wrong.
    #[response(status = 401, description = "Missing or wrong token")]
    Unauthorized(ErrorBody),
    /// Something failed that only the server log explains.
    #[response(
        status = 500,
        description = "Internal error; details in the server log"
    )]
    Internal(ErrorBody),
    /// The Docker engine cannot be reached.
    #[response(status = 503, description = "Docker unavailable")]
    Unavailable(ErrorBody),
}

/// The refusals of an operation that reads a JSON body.
#[derive(utoipa::IntoResponses)]
pub enum BodyErrors {
    /// The body is over [`super::MAX_BODY_BYTES`].
    #[response(status = 413, description = "Body too large")]
    TooLarge(ErrorBody),
    /// The body is not declared as JSON.
    #[response(status = 415, description = "Not JSON")]
    NotJson(ErrorBody),
}

/// The refusals of an operation on one shed named in the path.
#[derive(utoipa::IntoResponses)]
pub enum ShedErrors {
    /// The shed name breaks the name rule.
    #[response(status = 400, description = "Invalid name")]
    InvalidName(ErrorBody),
    /// No shed has this name.
    #[response(status = 404, description = "No such shed")]
    NotFound(ErrorBody),
}

/// The answers of an operation that runs inside a shed.
#[derive(utoipa::IntoResponses)]
pub enum InShedErrors {
    /// The shed is stopped.
    #[response(
        status = 409,
        description = "Shed not running (SHED_NOT_RUNNING); for input, the session's command has exited (SESSION_EXITED)"
    )]
    NotRunning(ErrorBody),
    /// The shed did not answer in time.
    #[response(status = 504, description = "The shed did not answer")]
    Timeout(ErrorBody),
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// An answer whose body is the API error body.
fn error_response(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
                .build(),
        )
        .build()
}

/// Adds the listener's refusals to the OpenAPI document: the guard's 403 to
/// every operation, the body timeout's 408 to those that take a body.
struct ForbiddenResponses;

impl utoipa::Modify for ForbiddenResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        let forbidden = error_response("Host or Origin is not this server's (cross-site request)");
        let timeout = error_response("The request body did not arrive in time");
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .insert("403".into(), RefOr::T(forbidden.clone()));
                if op.request_body.is_some() {
                    op.responses
                        .responses
                        .insert("408".into(), RefOr::T(timeout.clone()));
                }
            }
        }
    }
}

/// The document as this server serves it: without `api_token` it needs no
/// credentials, so the security requirements and 401 answers come out, and
/// clients and checkers see the API as it is.
pub fn served_document(token_required: bool) -> serde_json::Value {
    use utoipa::OpenApi;
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if token_required {
        return doc;
    }
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for operation in paths.values_mut().filter_map(|i| i.as_object_mut()) {
            for op in operation.values_mut().filter_map(|o| o.as_object_mut()) {
                op.remove("security");
                if let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) {
                    responses.remove("401");
                }
            }
        }
    }
    if let Some(components) = doc.get_mut("components").and_then(|c| c.as_object_mut()) {
        components.remove("securitySchemes");
    }
    doc
}

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    responses(
        (status = 200, description = "This document", content_type = "application/json", body = Object),
        AuthErrors
    ),
    security(("bearer" = []))
)]
pub(super) async fn openapi_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(served_document(state.api_token.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn wire_enums_are_documented_with_their_wire_words() {
        let doc = served_document(true);
        let schemas = &doc["components"]["schemas"];
        for (schema, values) in [
            (
                "AgentKind",
                crate::api::agent::AgentKind::ALL
                    .map(|v| v.as_str())
                    .to_vec(),
            ),
            (
                "AgentState",
                crate::api::agent::AgentState::ALL
                    .map(|v| v.as_str())
                    .to_vec(),
            ),
            (
                "AgentSource",
                crate::api::agent::AgentSource::ALL
                    .map(|v| v.as_str())
                    .to_vec(),
            ),
            (
                "HookAgent",
                crate::api::hooks::HookAgent::ALL
                    .map(|v| v.as_str())
                    .to_vec(),
            ),
        ] {
            let documented: Vec<&str> = schemas[schema]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{schema} has no enum: {}", schemas[schema]))
                .iter()
                .filter_map(|v| v.as_str())
                .collect();
            assert_eq!(documented, values, "{schema}");
        }
    }

    #[test]
    fn every_route_the_router_registers_is_documented() {
        let doc = served_document(true);
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        // axum's catch-all `{*path}` is OpenAPI's plain `{path}`.
        let registered: BTreeSet<(String, String)> = super::super::routes()
            .iter()
            .map(|r| (r.method.to_string(), r.path.replace("{*", "{")))
            .collect();
        let missing: Vec<_> = registered.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from ApiDoc: {missing:?}"
        );
        let stale: Vec<_> = documented.difference(&registered).collect();
        assert!(stale.is_empty(), "documented but not routed: {stale:?}");
    }

    #[test]
    fn without_a_token_the_document_asks_for_none() {
        let doc = served_document(false);
        let text = doc.to_string();
        assert!(!text.contains("\"401\""));
        assert!(!text.contains("securitySchemes"));
        let with = served_document(true);
        assert_eq!(
            with["paths"]["/api/sheds"]["get"]["responses"]["401"]["description"],
            "Missing or wrong token"
        );
        assert_eq!(
            with["paths"]["/api/sheds"]["get"]["responses"]["503"]["description"],
            "Docker unavailable"
        );
    }

    #[test]
    fn kept_volumes_are_documented_and_optional_for_older_servers() {
        let doc = served_document(false);
        let list = &doc["components"]["schemas"]["ShedList"];
        assert!(list["properties"]["kept_volumes"].is_object(), "{list}");
        let required = list["required"].as_array().cloned().unwrap_or_default();
        assert!(!required.contains(&"kept_volumes".into()), "{list}");
        let kept = &doc["components"]["schemas"]["KeptVolume"];
        assert!(kept["properties"]["volume"].is_object(), "{kept}");
    }
}
