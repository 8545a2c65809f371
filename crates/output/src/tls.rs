//! TLS client settings turned into a rustls `ClientConfig`, shared by the HTTP sinks (through
//! ureq) and syslog over TLS.
//!
//! - no settings: the built-in web PKI roots (Mozilla's, via `webpki-roots`) verify the
//!   certificate against the URL's host;
//! - `ca_file`: only the CA certificates in that PEM file are trusted;
//! - `server_name`: the certificate is verified against this name instead of the host (useful
//!   when connecting by IP to a server whose certificate names a DNS name);
//! - `insecure_skip_verify`: any certificate is accepted (signatures are still checked, so the
//!   handshake is real, but anyone on the path could pose as the server). A warning is logged.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};

use crate::{ConfigError, TlsConfig};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client config for `tls` (`output` names the output in errors).
///
/// # Errors
///
/// [`ConfigError::File`] when `ca_file` cannot be read or holds no certificate,
/// [`ConfigError::Invalid`] when `server_name` is not a DNS name or IP address.
pub fn client_config(output: &str, tls: &TlsConfig) -> Result<Arc<ClientConfig>, ConfigError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::invalid(output, "tls", "a usable TLS provider", e.to_string()))?;
    if tls.insecure_skip_verify {
        tracing::warn!(
            output,
            "tls.insecure_skip_verify is set: the server certificate is NOT verified, anyone on the path can read and alter this output's traffic"
        );
        let verifier = Arc::new(AcceptAny(provider));
        return Ok(Arc::new(
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth(),
        ));
    }
    let roots = Arc::new(roots(output, tls)?);
    let config = match &tls.server_name {
        None => builder.with_root_certificates(roots).with_no_client_auth(),
        Some(name) => {
            let name = server_name(output, name)?;
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| {
                    ConfigError::invalid(
                        output,
                        "tls.ca_file",
                        "usable CA certificates",
                        e.to_string(),
                    )
                })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(FixedName { inner, name }))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// Parses a name for SNI and certificate checks.
pub(crate) fn server_name(output: &str, name: &str) -> Result<ServerName<'static>, ConfigError> {
    ServerName::try_from(name.to_string()).map_err(|_| {
        ConfigError::invalid(output, "tls.server_name", "a DNS name or IP address", name)
    })
}

fn roots(output: &str, tls: &TlsConfig) -> Result<RootCertStore, ConfigError> {
    let Some(path) = &tls.ca_file else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let file_error = |reason: String| ConfigError::File {
        output: output.to_string(),
        field: "tls.ca_file",
        expected: "PEM CA certificates",
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| file_error(e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(file_error("no usable certificate found".to_string()));
    }
    Ok(store)
}

/// Verifies against a configured name instead of the one we connected to.
#[derive(Debug)]
struct FixedName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate (`insecure_skip_verify`), still checking handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
