//! Fingerprints as users see and type them: `SHA256:` and the unpadded
//! base64 of a SHA-256 digest, the form OpenSSH prints for host keys. shed
//! shows TLS certificates the same way, so pinning one feels like pinning
//! the other.

use base64::Engine;
use sha2::{Digest, Sha256};

/// The prefix every fingerprint carries.
pub const PREFIX: &str = "SHA256:";

/// The fingerprint of `bytes` (a certificate's DER, say).
pub fn sha256_fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// Whether `text` has the form of a fingerprint: the prefix and 43 base64
/// characters (32 bytes, unpadded).
pub fn is_fingerprint(text: &str) -> bool {
    text.strip_prefix(PREFIX).is_some_and(|b64| {
        b64.len() == 43
            && base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(b64)
                .is_ok_and(|d| d.len() == 32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_openssh_form() {
        // echo -n abc | sha256sum, base64 without padding.
        let fp = sha256_fingerprint(b"abc");
        assert_eq!(fp, "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0");
        assert!(is_fingerprint(&fp));
        assert!(!is_fingerprint("SHA256:short"));
        assert!(!is_fingerprint(
            "MD5:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0"
        ));
    }
}
