//! Shared pieces of the listener tests: a sink that collects what a listener submits, and a
//! self-signed TLS certificate with a client that trusts it.

#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crowsnest_ingest::listen::{self, Submit, SubmitFuture, TlsAcceptor};
use crowsnest_ingest::Decoded;
use tokio_rustls::rustls;

/// Collects what the listener submits.
#[derive(Default)]
pub struct Collect(pub Mutex<Decoded>);

impl Submit for Collect {
    fn submit(&self, decoded: Decoded, _input: &'static str) -> SubmitFuture<'_> {
        Box::pin(async move {
            let count = decoded.events.len();
            let mut all = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            all.events.extend(decoded.events);
            all.errors.extend(decoded.errors);
            Ok(count)
        })
    }
}

impl Collect {
    /// The `message` of every event collected so far.
    pub fn messages(&self) -> Vec<String> {
        let all = self.0.lock().expect("lock");
        all.events
            .iter()
            .filter_map(|e| e.get_str("message").map(str::to_string))
            .collect()
    }

    /// Waits (up to 5 s) until `events` events arrived; their messages.
    pub async fn wait_for(&self, events: usize) -> Vec<String> {
        for _ in 0..200 {
            if self.0.lock().expect("lock").events.len() >= events {
                return self.messages();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("fewer than {events} events arrived");
    }
}

/// A self-signed certificate for `localhost`, written to `dir`: the listener's acceptor and the
/// certificate a client must trust.
pub fn self_signed(dir: &Path) -> (TlsAcceptor, rustls::pki_types::CertificateDer<'static>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");
    let acceptor = listen::tls_acceptor(&cert_path, &key_path).expect("acceptor");
    (acceptor, certified.cert.der().clone())
}

/// A TLS connection to `addr` that trusts only `cert` and checks the name `localhost`.
pub async fn connect_tls(
    addr: std::net::SocketAddr,
    cert: rustls::pki_types::CertificateDer<'static>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.expect("TLS handshake")
}
