//! TLS for stream listeners (rustls with the `ring` provider).

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::IngestError;

/// Builds a TLS acceptor from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1
/// or SEC1).
///
/// # Errors
///
/// [`IngestError::Tls`] when a file cannot be read, holds no certificate or key, or the key
/// does not fit the certificate.
pub fn tls_acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, IngestError> {
    let error = |what: &'static str, path: &Path, reason: String| IngestError::Tls {
        what,
        path: path.display().to_string(),
        reason,
    };
    let cert_file = std::fs::File::open(cert_path)
        .map_err(|e| error("certificate chain", cert_path, e.to_string()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(cert_file))
        .collect::<Result<_, _>>()
        .map_err(|e| error("certificate chain", cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(error(
            "certificate chain",
            cert_path,
            "no CERTIFICATE block found".into(),
        ));
    }
    let key_file =
        std::fs::File::open(key_path).map_err(|e| error("private key", key_path, e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(key_file))
        .map_err(|e| error("private key", key_path, e.to_string()))?
        .ok_or_else(|| error("private key", key_path, "no PRIVATE KEY block found".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| error("certificate chain", cert_path, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| error("private key", key_path, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
