//! A generic webhook: the batch is POSTed as NDJSON (`application/x-ndjson`, one event per
//! line) or as one JSON array (`application/json`), with the configured headers.
//!
//! With a `secret`, the body is signed: `X-Crowsnest-Signature: sha256=<hex>` where `<hex>` is
//! HMAC-SHA256 (RFC 2104) of the exact body bytes keyed by the secret, as GitHub does for its
//! webhooks. A receiver checks it with, in Python,
//! `hmac.compare_digest(sig, "sha256=" + hmac.new(key, body, "sha256").hexdigest())`.
//!
//! Any 2xx is delivery; 408/429/5xx are retryable, other statuses permanent.

use crowsnest_model::Event;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::fields::to_json;
use crate::http::{check_url, HttpClient, Post};
use crate::{ConfigError, Delivery, OutputConfig, Sink, SinkError, WebhookConfig, WebhookFormat};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Crowsnest-Signature";

/// Encodes a batch; returns the body and its content type.
pub fn encode(batch: &[Event], format: WebhookFormat) -> (Vec<u8>, &'static str) {
    match format {
        WebhookFormat::Ndjson => {
            let mut body = Vec::with_capacity(batch.len() * 512);
            for event in batch {
                body.extend_from_slice(to_json(event).as_bytes());
                body.push(b'\n');
            }
            (body, "application/x-ndjson")
        }
        WebhookFormat::JsonArray => {
            let parts: Vec<String> = batch.iter().map(to_json).collect();
            (
                format!("[{}]", parts.join(",")).into_bytes(),
                "application/json",
            )
        }
    }
}

/// HMAC-SHA256 of `message` under `key` (RFC 2104), as lowercase hex.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The webhook sink.
pub struct WebhookSink {
    client: HttpClient,
    config: WebhookConfig,
    headers: Vec<(String, String)>,
}

impl WebhookSink {
    /// Builds the sink, checking the URL, header names and TLS settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a bad URL, header name or TLS file.
    pub fn new(config: &OutputConfig, hook: &WebhookConfig) -> Result<Self, ConfigError> {
        check_url(&config.name, "url", &hook.url)?;
        let headers = checked_headers(&config.name, &hook.headers)?;
        Ok(Self {
            client: HttpClient::new(config, &hook.tls)?,
            config: hook.clone(),
            headers,
        })
    }
}

/// Checks configured header names and values (RFC 9110 tokens, no line breaks).
pub(crate) fn checked_headers(
    output: &str,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    headers
        .iter()
        .map(|(name, value)| {
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !name_ok {
                return Err(ConfigError::invalid(
                    output,
                    "headers",
                    "header names made of token characters",
                    name.as_str(),
                ));
            }
            if value.contains(['\r', '\n']) {
                return Err(ConfigError::invalid(
                    output,
                    "headers",
                    "header values on one line",
                    value.as_str(),
                ));
            }
            Ok((name.clone(), value.clone()))
        })
        .collect()
}

impl Sink for WebhookSink {
    fn send(&mut self, batch: &[Event]) -> Result<Delivery, SinkError> {
        if batch.is_empty() {
            return Ok(Delivery::default());
        }
        let (body, content_type) = encode(batch, self.config.format);
        let mut headers = self.headers.clone();
        if let Some(secret) = &self.config.secret {
            let signature = hmac_sha256_hex(secret.as_bytes(), &body);
            headers.push((SIGNATURE_HEADER.to_string(), format!("sha256={signature}")));
        }
        self.client.post(Post {
            url: &self.config.url,
            content_type,
            headers: &headers,
            body,
            gzip: false,
        })?;
        Ok(Delivery::all(batch.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hmac_sha256_hex(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn bodies_are_ndjson_or_an_array() {
        let batch: Vec<Event> = (0..2)
            .map(|i| serde_json::from_value(json!({"n": i})).expect("event"))
            .collect();
        let (ndjson, kind) = encode(&batch, WebhookFormat::Ndjson);
        assert_eq!(
            (ndjson.as_slice(), kind),
            (&b"{\"n\":0}\n{\"n\":1}\n"[..], "application/x-ndjson")
        );
        let (array, kind) = encode(&batch, WebhookFormat::JsonArray);
        assert_eq!(
            (array.as_slice(), kind),
            (&b"[{\"n\":0},{\"n\":1}]"[..], "application/json")
        );
    }

    #[test]
    fn header_names_and_values_are_checked() {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("X-Ok".to_string(), "v".to_string());
        assert!(checked_headers("o", &headers).is_ok());
        headers.insert("Bad Name".to_string(), "v".to_string());
        assert!(checked_headers("o", &headers).is_err());
        headers.clear();
        headers.insert("X-Inject".to_string(), "a\r\nEvil: 1".to_string());
        assert!(checked_headers("o", &headers).is_err());
    }
}
