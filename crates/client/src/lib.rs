//! The HTTP client of the crowsnest API, shared by the `crowsnest` commands that talk to a
//! server (`search`, `ingest`, `demo`) and by the benchmarks: the base URL, a bearer token,
//! retries while the server pushes back, and the server's error message on failure.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// A connected client.
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8470`) with a bearer token.
    pub fn new(base: &str, token: &str) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(300))
            .build();
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            agent,
        }
    }

    /// POSTs a JSON body; returns the JSON answer or an error carrying the server's message.
    pub fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self
            .agent
            .post(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token));
        answer(request.send_json(body.clone()), &self.base)
    }

    /// GETs a JSON answer; an error carries the server's message (and status).
    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let request = self
            .agent
            .get(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token));
        answer(request.call(), &self.base)
    }

    /// Enables or disables the loaded rule `id` (`POST /api/v1/rules/{id}/enable|disable`,
    /// `admin` scope): the server's answer (`id`, `enabled`, `changed`).
    ///
    /// # Errors
    ///
    /// The server's refusal (unknown rule 404, a token without `admin` 403, detection off
    /// 400) or an unreachable server.
    pub fn set_rule_enabled(&self, id: &str, enabled: bool) -> anyhow::Result<Value> {
        let id_path = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
        let verb = if enabled { "enable" } else { "disable" };
        self.post_json(
            &format!("/api/v1/rules/{id_path}/{verb}"),
            &Value::Object(serde_json::Map::new()),
        )
    }

    /// GETs a text answer (e.g. `/metrics`).
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .agent
            .get(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("GET {path} from {}", self.base))?;
        response
            .into_string()
            .context("reading the server's answer")
    }

    /// POSTs raw bytes, retrying while the server pushes back (429/503, honouring
    /// `Retry-After`) or cannot be reached, up to `attempts` times.
    pub fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        gzip: bool,
        body: &[u8],
        attempts: u32,
    ) -> anyhow::Result<Value> {
        self.post_bytes_with(path, content_type, gzip, body, attempts, &[])
    }

    /// [`post_bytes`](Self::post_bytes) with extra request headers, sent with every attempt
    /// (e.g. `X-Crowsnest-Batch`, which makes a retry after a lost answer a recognised
    /// duplicate instead of a second copy).
    pub fn post_bytes_with(
        &self,
        path: &str,
        content_type: &str,
        gzip: bool,
        body: &[u8],
        attempts: u32,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .agent
                .post(&format!("{}{path}", self.base))
                .set("Authorization", &format!("Bearer {}", self.token))
                .set("Content-Type", content_type);
            if gzip {
                request = request.set("Content-Encoding", "gzip");
            }
            for (name, value) in headers {
                request = request.set(name, value);
            }
            let wait = match request.send_bytes(body) {
                Err(ureq::Error::Status(code @ (429 | 503), response)) if attempt < attempts => {
                    let secs = response
                        .header("Retry-After")
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1);
                    tracing::debug!(code, secs, "server is busy; retrying");
                    Duration::from_secs(secs.clamp(1, 30))
                }
                Err(ureq::Error::Transport(error)) if attempt < attempts => {
                    tracing::warn!(%error, attempt, "server unreachable; retrying");
                    Duration::from_millis(500 * u64::from(attempt.min(10)))
                }
                other => return answer(other, &self.base),
            };
            std::thread::sleep(wait);
        }
    }
}

fn answer(result: Result<ureq::Response, ureq::Error>, base: &str) -> anyhow::Result<Value> {
    match result {
        Ok(response) => {
            let text = response
                .into_string()
                .context("reading the server's answer")?;
            Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        Err(ureq::Error::Status(code, response)) => {
            let text = response.into_string().unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let message = value["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or(text);
            Err(ServerError {
                status: code,
                message,
                body: value,
            }
            .into())
        }
        Err(ureq::Error::Transport(error)) => Err(anyhow::anyhow!(
            "cannot reach the server at {base}: {error} (is `crowsnest server` running?)"
        )),
    }
}

/// An error status from the server, with its message and body.
#[derive(Debug)]
pub struct ServerError {
    /// HTTP status.
    pub status: u16,
    /// The server's message.
    pub message: String,
    /// The whole JSON body, for details.
    pub body: Value,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server answered {}: {}", self.status, self.message)
    }
}

impl std::error::Error for ServerError {}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use super::*;

    /// A server of one request on loopback: answers `status` with `body` and hands back the
    /// request line and the `Authorization` header.
    fn one_answer(
        status: &str,
        body: &'static str,
    ) -> (String, std::thread::JoinHandle<(String, String)>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let status = status.to_string();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            reader.read_line(&mut line).expect("request line");
            let mut auth = String::new();
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).expect("header");
                if header.trim().is_empty() {
                    break;
                }
                let lower = header.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = header.trim().to_string();
                }
            }
            let mut rest = vec![0u8; length];
            std::io::Read::read_exact(&mut reader, &mut rest).expect("body");
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .expect("answer");
            (line.trim().to_string(), auth)
        });
        (base, handle)
    }

    #[test]
    fn rules_are_switched_by_their_encoded_id_and_refusals_carry_the_message() {
        let (base, server) =
            one_answer("200 OK", r#"{"id":"a b/c","enabled":false,"changed":true}"#);
        let answer = Client::new(&base, "t0k")
            .set_rule_enabled("a b/c", false)
            .expect("switched");
        assert_eq!(answer["changed"], true);
        let (line, auth) = server.join().expect("server");
        assert_eq!(line, "POST /api/v1/rules/a%20b%2Fc/disable HTTP/1.1");
        assert_eq!(auth, "Authorization: Bearer t0k");

        let (base, server) = one_answer(
            "404 Not Found",
            r#"{"error":{"status":404,"message":"no rule `x`"}}"#,
        );
        let error = Client::new(&base, "t0k")
            .set_rule_enabled("x", true)
            .expect_err("refused");
        let (line, _) = server.join().expect("server");
        assert_eq!(line, "POST /api/v1/rules/x/enable HTTP/1.1");
        let server_error = error.downcast_ref::<ServerError>().expect("a server error");
        assert_eq!(server_error.status, 404);
        assert_eq!(server_error.message, "no rule `x`");
    }
}
