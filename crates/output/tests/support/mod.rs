//! Test receivers on 127.0.0.1: a tiny HTTP/1.1 server answering from a script, and helpers
//! to build outputs and events.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

use crowsnest_model::Event;
use crowsnest_output::OutputConfig;

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body as sent (still gzipped if it was).
    pub raw: Vec<u8>,
    /// The body, gunzipped when `Content-Encoding: gzip`.
    pub body: Vec<u8>,
    /// Which accepted connection carried it (0-based).
    pub connection: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// An HTTP server answering from a script (the last answer repeats).
pub struct HttpServer {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpServer {
    pub fn start(script: Vec<Answer>) -> Self {
        Self::start_with(script, None)
    }

    /// An HTTPS server with `tls`'s certificate.
    pub fn start_tls(script: Vec<Answer>, tls: &TestCert) -> Self {
        Self::start_with(script, Some(tls.server_config.clone()))
    }

    fn start_with(script: Vec<Answer>, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen_by_server = seen.clone();
        thread::spawn(move || {
            for (connection, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let seen = seen_by_server.clone();
                let script = script.clone();
                match &tls {
                    None => {
                        thread::spawn(move || serve(stream, connection, &seen, &script));
                    }
                    Some(config) => {
                        let Ok(session) = rustls::ServerConnection::new(config.clone()) else {
                            return;
                        };
                        let stream = rustls::StreamOwned::new(session, stream);
                        thread::spawn(move || serve(stream, connection, &seen, &script));
                    }
                }
            }
        });
        Self { url, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn serve(
    stream: impl Read + Write,
    connection: usize,
    seen: &Mutex<Vec<Seen>>,
    script: &Mutex<VecDeque<Answer>>,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut raw = vec![0u8; length];
        if reader.read_exact(&mut raw).is_err() {
            return;
        }
        let gzipped = headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-encoding") && v == "gzip");
        let body = if gzipped {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw.as_slice())
                .read_to_end(&mut out)
                .expect("valid gzip");
            out
        } else {
            raw.clone()
        };
        seen.lock().expect("lock").push(Seen {
            method,
            path,
            headers,
            raw,
            body,
            connection,
        });
        let answer = {
            let mut script = script.lock().expect("lock");
            if script.len() > 1 {
                script.pop_front()
            } else {
                script.front().cloned()
            }
        }
        .unwrap_or_else(|| Answer::new(200, ""));
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            answer.status,
            answer.body.len()
        );
        for (name, value) in &answer.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let writer = reader.get_mut();
        if writer.write_all(head.as_bytes()).is_err()
            || writer.write_all(&answer.body).is_err()
            || writer.flush().is_err()
        {
            return;
        }
    }
}

/// An output config from TOML.
pub fn output(toml: &str) -> OutputConfig {
    toml::from_str(toml).expect("output config")
}

/// An event from JSON.
pub fn event(value: serde_json::Value) -> Event {
    serde_json::from_value(value).expect("event object")
}

/// `n` events with ids `e0`…
pub fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            event(serde_json::json!({
                "@timestamp": "2024-05-01T10:00:00Z",
                "event": {"id": format!("e{i}"), "kind": "event", "dataset": "container.logs"},
                "message": format!("line {i}"),
                "host": {"name": "node-1"}
            }))
        })
        .collect()
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A self-signed certificate for `localhost` (rcgen): its PEM in a file for `ca_file`, and a
/// rustls server config presenting it.
pub struct TestCert {
    pub ca_file: tempfile::NamedTempFile,
    pub server_config: Arc<rustls::ServerConfig>,
}

impl TestCert {
    pub fn localhost() -> Self {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
        let ca_file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(ca_file.path(), certified.cert.pem()).expect("write ca");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let cert: CertificateDer<'static> = certified.cert.der().clone();
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
        Self {
            ca_file,
            server_config: Arc::new(server_config),
        }
    }

    /// The `ca_file` path as TOML-safe text.
    pub fn ca_path(&self) -> String {
        self.ca_file.path().display().to_string()
    }
}
