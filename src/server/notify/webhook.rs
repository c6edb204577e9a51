//! Webhook targets: the payload as a JSON POST, signed with HMAC-SHA256.
//!
//! What is signed is the timestamp header's value, a `.`, and the exact body
//! bytes; the signature goes in [`SIGNATURE_HEADER`] as `sha256=<hex>`. A
//! receiver recomputes it with the shared secret, compares in constant time,
//! and refuses timestamps too far from its clock, which stops replays.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::payload::Payload;
use super::Failure;

/// The signature header: `sha256=` and the hex HMAC-SHA256.
pub const SIGNATURE_HEADER: &str = "X-Shed-Signature-256";
/// The Unix time, in seconds, of the attempt; part of what is signed.
pub const TIMESTAMP_HEADER: &str = "X-Shed-Timestamp";
/// The payload's `id`, the same on every retry, for receivers to dedupe.
pub const DELIVERY_HEADER: &str = "X-Shed-Delivery";

/// `sha256=<hex>` of HMAC-SHA256(secret, timestamp + "." + body).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let bytes = mac(secret, timestamp, body).finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `header` is the signature of `timestamp` and `body`, compared in
/// constant time.
pub fn verify(secret: &[u8], timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(bytes) = decode_hex(hex) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&bytes).is_ok()
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A webhook target.
pub struct Webhook {
    /// Where to POST.
    pub url: String,
    /// The HMAC key.
    pub secret: Vec<u8>,
    /// The client, with the target's timeout.
    pub client: reqwest::Client,
}

impl Webhook {
    /// One delivery attempt.
    pub async fn deliver(&self, payload: &Payload) -> Result<(), Failure> {
        let body = payload.to_json();
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = sign(&self.secret, &timestamp, &body);
        let request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, super::http::header_text(&payload.id))
            .body(body);
        super::http::send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        let secret = b"Jefe-secret";
        let body = br#"{"a":1}"#;
        let sig = sign(secret, "1700000000", body);
        // Computed independently: printf '%s' '1700000000.{"a":1}' |
        // openssl dgst -sha256 -hmac Jefe-secret
        assert_eq!(
            sig,
            "sha256=be3c17af9b4cec3e8f8584a49445dfd576a4b301e5849ea4fd5c98a3434cfd4e"
        );
        assert!(verify(secret, "1700000000", body, &sig));
        assert!(!verify(secret, "1700000001", body, &sig));
        assert!(!verify(secret, "1700000000", br#"{"a":2}"#, &sig));
        assert!(!verify(b"other-secret", "1700000000", body, &sig));
        assert!(!verify(secret, "1700000000", body, "sha256=zz"));
        assert!(!verify(secret, "1700000000", body, &sig[7..]));
    }
}
