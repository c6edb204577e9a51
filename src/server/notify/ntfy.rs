//! ntfy-style targets: a plain-text POST to a topic URL, the title and
//! priority in headers, as ntfy (and services that copy its API) read them.

use super::payload::Payload;
use super::Failure;
use crate::api::agent::AgentState;

/// A topic URL to POST to.
pub struct Ntfy {
    /// The topic URL.
    pub url: String,
    /// The client, with the target's timeout.
    pub client: reqwest::Client,
}

/// ntfy's priority for a state: someone is needed (`high`), something ended
/// (`default`), or just news (`low`).
pub fn priority(state: AgentState) -> &'static str {
    match state {
        AgentState::Waiting => "high",
        AgentState::Exited => "default",
        _ => "low",
    }
}

/// The message body: the title's news and why shed thinks so.
pub fn message(payload: &Payload) -> String {
    format!(
        "{}\n{} on {} ({})",
        payload.title, payload.agent.reason, payload.server, payload.id
    )
}

impl Ntfy {
    /// One delivery attempt.
    pub async fn deliver(&self, payload: &Payload) -> Result<(), Failure> {
        let request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header("Title", super::http::header_text(&payload.title))
            .header("Priority", priority(payload.agent.state))
            .header(
                "Tags",
                super::http::header_text(&format!("shed,{}", payload.agent.state)),
            )
            .body(message(payload));
        super::http::send(request).await
    }
}
