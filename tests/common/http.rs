//! Minimal HTTP helpers over reqwest's async client.

use serde_json::Value;

/// A response's status and JSON body (`Null` when empty).
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub json: Value,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }
}

/// Sends a request; `body` is sent as JSON text when given.
pub async fn send(method: &str, url: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Reply {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request failed");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "non-JSON body ({status}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Reply { status, json }
}

/// GET.
pub async fn get(url: &str) -> Reply {
    send("GET", url, None, &[]).await
}

/// POST with a JSON body.
pub async fn post(url: &str, body: &str) -> Reply {
    send("POST", url, Some(body), &[]).await
}

/// POST without a body.
pub async fn post_empty(url: &str) -> Reply {
    send("POST", url, None, &[]).await
}

/// DELETE.
pub async fn delete(url: &str) -> Reply {
    send("DELETE", url, None, &[]).await
}
