//! TLS for the HTTP API: a self-signed certificate made at first start in
//! `data_dir` and reused, so that clients can pin its fingerprint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::api::fingerprint::sha256_fingerprint;
use crate::server::config::ServerConfig;

/// The certificate file in `data_dir` (PEM; public).
pub const CERT_FILE: &str = "tls-cert.pem";
/// The private key file in `data_dir` (PEM, PKCS#8; mode 0600).
pub const KEY_FILE: &str = "tls-key.pem";

/// Why the TLS certificate could not be loaded, made or used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not a PEM certificate or key.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Generating the certificate failed.
    #[error("generating the TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("setting up TLS: {0}")]
    Setup(#[from] rustls::Error),
}

/// The server's certificate and private key.
pub struct ServerCertificate {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl ServerCertificate {
    /// The certificate, DER encoded.
    pub fn der(&self) -> &[u8] {
        self.cert.as_ref()
    }

    /// The certificate's fingerprint, `SHA256:<base64>`, as clients pin it.
    pub fn fingerprint(&self) -> String {
        sha256_fingerprint(self.der())
    }

    /// A TLS acceptor serving this certificate, HTTP/1.1 only.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        // An explicit provider: the process-wide default is ambiguous when
        // several rustls back ends are linked in.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The names a new certificate covers: the server's name and hostname,
/// localhost and the loopback addresses, the bind address and `allowed_hosts`.
pub fn certificate_names(config: &ServerConfig) -> Vec<String> {
    let mut names = vec![
        config.name.clone(),
        gethostname::gethostname().to_string_lossy().into_owned(),
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    if !config.bind.is_unspecified() {
        names.push(config.bind.to_string());
    }
    names.extend(config.allowed_hosts.iter().cloned());
    let mut kept: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let usable = name.parse::<std::net::IpAddr>().is_ok()
            || (!name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
        let name = name.to_ascii_lowercase();
        if usable && !kept.contains(&name) {
            kept.push(name);
        }
    }
    kept
}

/// Loads the certificate from `data_dir`, or makes and saves a self-signed
/// one for `names` when there is none yet.
pub fn load_or_create_certificate(
    data_dir: &Path,
    names: &[String],
) -> Result<ServerCertificate, TlsError> {
    let cert_path = data_dir.join(CERT_FILE);
    let key_path = data_dir.join(KEY_FILE);
    let read = |path: &Path| match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.into(),
            source,
        }),
    };
    let format = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Format {
        path: path.into(),
        message: e.to_string(),
    };
    // The key is written first, so a certificate without its key never exists.
    if let (Some(cert), Some(key)) = (read(&cert_path)?, read(&key_path)?) {
        return Ok(ServerCertificate {
            cert: CertificateDer::from_pem_slice(&cert).map_err(|e| format(&cert_path, e))?,
            key: PrivateKeyDer::from_pem_slice(&key).map_err(|e| format(&key_path, e))?,
        });
    }
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("shed-server {}", names.first().map_or("", String::as_str)),
    );
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    crate::files::write_private(&key_path, key.serialize_pem().as_bytes())
        .map_err(io(&key_path))?;
    crate::files::write_private(&cert_path, cert.pem().as_bytes()).map_err(io(&cert_path))?;
    tracing::info!(path = %cert_path.display(), names = ?names, "generated a new TLS certificate");
    Ok(ServerCertificate {
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    })
}

/// The fingerprint of the server's TLS certificate under `config`, making
/// the certificate first if there is none yet (for `shed-server host-key`).
pub fn certificate_fingerprint(config: &ServerConfig) -> Result<String, TlsError> {
    load_or_create_certificate(&config.data_dir, &certificate_names(config))
        .map(|c| c.fingerprint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["box".to_string(), "127.0.0.1".to_string()];
        let first = load_or_create_certificate(dir.path(), &names).unwrap();
        first.acceptor().unwrap();
        let again = load_or_create_certificate(dir.path(), &names).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert!(crate::api::fingerprint::is_fingerprint(
            &again.fingerprint()
        ));
        again.acceptor().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn names_skip_what_cannot_be_a_san() {
        let config = ServerConfig {
            name: "Box".into(),
            allowed_hosts: vec!["shed.example".into(), "[::1]".into()],
            ..ServerConfig::default()
        };
        let names = certificate_names(&config);
        assert_eq!(names[0], "box");
        assert!(names.contains(&"shed.example".to_string()));
        assert_eq!(names.iter().filter(|n| *n == "::1").count(), 1);
    }
}
