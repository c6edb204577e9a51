//! The HTTP side shared by webhooks and ntfy: one client per target with its
//! timeout, and which answers are worth a retry.

use std::time::Duration;

use super::Failure;

/// An HTTP client for one target: `timeout` per attempt, no redirects (a
/// notification goes where the config says, nowhere else).
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("shed-server/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `request`; network errors, timeouts, 5xx and 429 are worth a
/// retry, other non-2xx answers are not (the receiver said no).
pub async fn send(request: reqwest::RequestBuilder) -> Result<(), Failure> {
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(Failure {
                    retry: status.is_server_error()
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS,
                    message: format!("answered {status}"),
                })
            }
        }
        Err(e) => Err(Failure {
            retry: true,
            message: if e.is_timeout() {
                "timed out".into()
            } else {
                format!("{e}")
            },
        }),
    }
}

/// `s` with everything but printable ASCII replaced by `?`, so it can be a
/// header value whatever an agent put in it.
pub fn header_text(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}
