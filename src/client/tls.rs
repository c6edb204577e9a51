//! Pinning a shed-server's self-signed TLS certificate by its fingerprint.
//!
//! There is no certificate authority: the CLI trusts exactly the end-entity
//! certificate whose `SHA256:` fingerprint the user pinned at `shed server
//! add`, the same way it pins the SSH gateway's host key. The handshake
//! signatures are still verified, so only the holder of that certificate's
//! private key can complete it.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::api::fingerprint::sha256_fingerprint;

/// The fingerprint of the last certificate a server presented, if any.
#[derive(Debug, Clone, Default)]
pub struct Presented(Arc<Mutex<Option<String>>>);

impl Presented {
    /// The fingerprint seen, if a handshake got that far.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|seen| seen.clone())
    }

    fn set(&self, fingerprint: String) {
        if let Ok(mut seen) = self.0.lock() {
            *seen = Some(fingerprint);
        }
    }
}

/// Accepts only the certificate with the pinned fingerprint. Without a pin
/// it accepts nothing: it only records what was presented, so the user can
/// be shown the fingerprint before any request (or token) is sent.
#[derive(Debug)]
struct PinnedCertificate {
    pin: Option<String>,
    presented: Presented,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint = sha256_fingerprint(end_entity.as_ref());
        self.presented.set(fingerprint.clone());
        match &self.pin {
            Some(pin) if *pin == fingerprint => Ok(ServerCertVerified::assertion()),
            Some(pin) => Err(rustls::Error::General(format!(
                "certificate {fingerprint} is not the pinned {pin}"
            ))),
            None => Err(rustls::Error::General(format!(
                "certificate {fingerprint} is not pinned yet"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls client config trusting only the certificate `pin` (none: only
/// recording), and where the presented fingerprint will be recorded.
pub fn pinned_config(
    pin: Option<&str>,
) -> Result<(rustls::ClientConfig, Presented), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let presented = Presented::default();
    let verifier = PinnedCertificate {
        pin: pin.map(str::to_string),
        presented: presented.clone(),
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((config, presented))
}
