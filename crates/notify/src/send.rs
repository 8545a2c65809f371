//! Sending a built payload: HTTP through a ureq agent (rustls), email through lettre's SMTP
//! client with STARTTLS required. Answers are classified for the outbox.

use std::io::Read;
use std::time::Duration;

use crate::config::Channel;
use crate::payload::{HttpRequest, Payload};

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Worth trying again (timeouts, connection errors, 408, 429, 5xx, SMTP 4xx), after the
    /// receiver's `Retry-After` when it gave one.
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The receiver refused this payload (400, 413, 422): sending it again cannot help.
    Refused(String),
    /// Refused for a reason the operator fixes (401, 403, 404, SMTP 5xx): retried slowly.
    Config(String),
}

impl Failure {
    pub(crate) fn message(&self) -> &str {
        match self {
            Failure::Retry { message, .. }
            | Failure::Refused(message)
            | Failure::Config(message) => message,
        }
    }
}

/// A channel's connection: a kept-alive HTTP agent, or SMTP settings.
pub(crate) struct Sender {
    agent: ureq::Agent,
    channel: Channel,
}

impl Sender {
    pub(crate) fn new(channel: &Channel) -> Result<Self, String> {
        let tls = crowsnest_output::tls_client_config(&channel.name, &channel.tls)
            .map_err(|e| e.to_string())?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(channel.timeout)
            .timeout(channel.timeout)
            .redirects(0)
            .user_agent(concat!("crowsnest/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        Ok(Self {
            agent,
            channel: channel.clone(),
        })
    }

    pub(crate) fn send(&self, payload: Payload) -> Result<(), Failure> {
        match payload {
            Payload::Skip => Ok(()),
            Payload::Http(request) => self.post(request),
            Payload::Email(message) => self.mail(&message),
        }
    }

    fn post(&self, request: HttpRequest) -> Result<(), Failure> {
        let mut call = self
            .agent
            .post(&request.url)
            .set("Content-Type", request.content_type);
        for (name, value) in &request.headers {
            call = call.set(name, value);
        }
        match call.send_bytes(&request.body) {
            Ok(response) => {
                // Read (a bounded part of) the answer so the connection can be kept.
                let mut sink = Vec::new();
                let _ = response
                    .into_reader()
                    .take(64 * 1024)
                    .read_to_end(&mut sink);
                Ok(())
            }
            Err(ureq::Error::Status(status, response)) => {
                let retry_after = response.header("Retry-After").and_then(parse_retry_after);
                let body = response.into_string().unwrap_or_default();
                let message = format!("HTTP {status}: {}", quote(&body));
                Err(if status == 408 || status == 429 || status >= 500 {
                    Failure::Retry {
                        message,
                        retry_after,
                    }
                } else if matches!(status, 400 | 413 | 422) {
                    Failure::Refused(message)
                } else {
                    Failure::Config(message)
                })
            }
            Err(ureq::Error::Transport(transport)) => {
                use ureq::ErrorKind;
                let message = transport.to_string();
                Err(match transport.kind() {
                    ErrorKind::InvalidUrl | ErrorKind::UnknownScheme => Failure::Config(message),
                    _ => Failure::Retry {
                        message,
                        retry_after: None,
                    },
                })
            }
        }
    }

    fn mail(&self, message: &lettre::Message) -> Result<(), Failure> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        use lettre::{SmtpTransport, Transport};
        let Some(email) = &self.channel.email else {
            return Err(Failure::Config("no email settings".into()));
        };
        let mut tls = TlsParameters::builder(email.host.clone());
        if let Some(path) = &self.channel.tls.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Failure::Config(format!("reading tls.ca_file `{}`: {e}", path.display()))
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| Failure::Config(format!("tls.ca_file `{}`: {e}", path.display())))?;
            tls = tls.add_root_certificate(cert);
        }
        if self.channel.tls.insecure_skip_verify {
            tls = tls.dangerous_accept_invalid_certs(true);
        }
        let tls = tls
            .build_rustls()
            .map_err(|e| Failure::Config(format!("TLS settings: {e}")))?;
        let mut transport = SmtpTransport::builder_dangerous(email.host.clone())
            .port(email.port)
            .tls(Tls::Required(tls))
            .timeout(Some(self.channel.timeout));
        if let Some((user, password)) = &email.credentials {
            transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
        }
        match transport.build().send(message) {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(Failure::Config(format!("SMTP: {error}"))),
            Err(error) => Err(Failure::Retry {
                message: format!("SMTP: {error}"),
                retry_after: None,
            }),
        }
    }
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

/// The first bytes of an answer, on one line.
fn quote(body: &str) -> String {
    let text: String = body
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    text
}
