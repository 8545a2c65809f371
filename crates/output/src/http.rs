//! The HTTP client shared by the Elasticsearch, Splunk, OTLP and webhook sinks: one kept-alive
//! ureq agent per output, gzip for large bodies, and the status → [`SinkError`] mapping.
//!
//! | answer | result |
//! |---|---|
//! | 2xx | `Ok(Response)` (the sink reads the body for per-item results) |
//! | 408, 429, 5xx | [`SinkError::Retryable`], with `Retry-After` (seconds or HTTP date) |
//! | 400, 413, 422 | [`SinkError::Rejected`] (the content: the server isolates the refused events) |
//! | other 3xx/4xx | [`SinkError::Permanent`] (redirects are not followed: a POST body would be lost) |
//! | DNS, connect, timeout, reset | [`SinkError::Retryable`] |
//! | malformed URL, unknown scheme | [`SinkError::Permanent`] |

use std::io::{Read, Write};
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::{tls, ConfigError, OutputConfig, SinkError, TlsConfig};

/// Bodies larger than this are gzipped when the sink allows it.
pub const GZIP_THRESHOLD: usize = 1024;

/// How much of an error body is quoted in a [`SinkError`].
const QUOTE_BYTES: usize = 512;

/// A 2xx answer.
#[derive(Debug)]
pub(crate) struct Response {
    /// The body, at most [`MAX_RESPONSE_BYTES`].
    pub body: Vec<u8>,
}

/// The most of a response body that is read.
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// A POST to send.
pub(crate) struct Post<'a> {
    pub url: &'a str,
    pub content_type: &'a str,
    pub headers: &'a [(String, String)],
    pub body: Vec<u8>,
    pub gzip: bool,
}

/// One output's HTTP agent (connections are kept alive between batches).
pub(crate) struct HttpClient {
    agent: ureq::Agent,
}

impl HttpClient {
    /// An agent with the output's timeout and TLS settings.
    pub fn new(config: &OutputConfig, tls_config: &TlsConfig) -> Result<Self, ConfigError> {
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout(timeout)
            .redirects(0)
            .user_agent(concat!("crowsnest/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls::client_config(&config.name, tls_config)?)
            .build();
        Ok(Self { agent })
    }

    /// Sends the POST and classifies the answer.
    pub fn post(&self, post: Post<'_>) -> Result<Response, SinkError> {
        let mut request = self
            .agent
            .post(post.url)
            .set("Content-Type", post.content_type);
        for (name, value) in post.headers {
            request = request.set(name, value);
        }
        let body = if post.gzip && post.body.len() > GZIP_THRESHOLD {
            request = request.set("Content-Encoding", "gzip");
            gzip(&post.body)?
        } else {
            post.body
        };
        match request.send_bytes(&body) {
            Ok(response) => {
                let mut body = Vec::new();
                response
                    .into_reader()
                    .take(MAX_RESPONSE_BYTES)
                    .read_to_end(&mut body)
                    .map_err(|e| SinkError::retryable(format!("reading the response: {e}")))?;
                Ok(Response { body })
            }
            Err(ureq::Error::Status(status, response)) => {
                let retry_after = response.header("Retry-After").and_then(parse_retry_after);
                let body = response.into_string().unwrap_or_default();
                Err(classify_status(status, &body, retry_after))
            }
            Err(ureq::Error::Transport(transport)) => Err(classify_transport(&transport)),
        }
    }
}

/// Gzips a body.
pub(crate) fn gzip(body: &[u8]) -> Result<Vec<u8>, SinkError> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map_err(|e| SinkError::Permanent(format!("gzip failed: {e}")))
}

/// The error for a non-2xx status.
pub(crate) fn classify_status(status: u16, body: &str, retry_after: Option<Duration>) -> SinkError {
    let message = format!("HTTP {status}: {}", quote(body));
    if status == 408 || status == 429 || (500..600).contains(&status) {
        SinkError::Retryable {
            message,
            retry_after,
        }
    } else if matches!(status, 400 | 413 | 422) {
        SinkError::Rejected(message)
    } else {
        SinkError::Permanent(message)
    }
}

fn classify_transport(transport: &ureq::Transport) -> SinkError {
    use ureq::ErrorKind;
    match transport.kind() {
        ErrorKind::InvalidUrl | ErrorKind::UnknownScheme | ErrorKind::InsecureRequestHttpsOnly => {
            SinkError::Permanent(transport.to_string())
        }
        _ => SinkError::retryable(transport.to_string()),
    }
}

/// The first bytes of a body, on one line.
pub(crate) fn quote(body: &str) -> String {
    let mut end = body.len().min(QUOTE_BYTES);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let mut text: String = body[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if end < body.len() {
        text.push('…');
    }
    text
}

/// `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Checks that `url` is an absolute `http`/`https` URL with a host.
pub(crate) fn check_url(output: &str, field: &'static str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err(ConfigError::invalid(
            output,
            field,
            "an http:// or https:// URL with a host",
            url,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_split_into_retryable_and_permanent() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(classify_status(status, "", None).is_retryable(), "{status}");
        }
        for status in [301, 400, 401, 403, 404, 413] {
            assert!(
                !classify_status(status, "", None).is_retryable(),
                "{status}"
            );
        }
        let error = classify_status(503, "busy", Some(Duration::from_secs(7)));
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        assert!(error.to_string().contains("busy"));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let wait = parse_retry_after(&soon).expect("date");
        assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn urls_need_a_scheme_and_host() {
        assert!(check_url("o", "url", "http://127.0.0.1:9200").is_ok());
        assert!(check_url("o", "url", "https://es.example/path").is_ok());
        for bad in [
            "127.0.0.1:9200",
            "ftp://x",
            "http://",
            "http:///x",
            "https://a b",
        ] {
            assert!(check_url("o", "url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quotes_are_short_single_lines() {
        let long = "é\n".repeat(600);
        let quoted = quote(&long);
        assert!(quoted.len() <= QUOTE_BYTES + '…'.len_utf8());
        assert!(!quoted.contains('\n'));
        assert!(quoted.ends_with('…'));
    }
}
