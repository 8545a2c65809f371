//! `[notify]`: channels (where notifications go) and routes (which incident changes go where),
//! validated at startup with errors that name the channel or route, the field and the reason.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crowsnest_model::Severity;
use serde::{Deserialize, Serialize};

use crate::ChangeKind;

/// Notification settings (`[notify]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Where notifications go (`[[notify.channels]]`).
    pub channels: Vec<ChannelConfig>,
    /// Which incident changes go to which channels (`[[notify.routes]]`).
    pub routes: Vec<RouteConfig>,
    /// A notification not delivered within this many seconds of the change is given up, with
    /// an error in the log and `crowsnest_notify_given_up_total` (default 21,600: 6 hours).
    pub max_age_secs: u64,
    /// At most one `updated` notification of the same incident per channel per this many
    /// seconds; updates in between coalesce into the next one (default 300).
    pub update_interval_secs: u64,
    /// First retry delay in milliseconds; it doubles per attempt, with full jitter
    /// (default 1,000). A `Retry-After` answer is honoured instead (capped at 10 minutes).
    pub retry_initial_ms: u64,
    /// Longest retry delay in seconds (default 300).
    pub retry_max_secs: u64,
    /// Delivered dedup keys are remembered this many days, so a WAL replay after a crash does
    /// not notify again (default 7; the detector replays only from its last checkpoint, seconds
    /// back).
    pub ledger_keep_days: u64,
    /// Most delivered dedup keys remembered; the oldest are forgotten first (default 100,000).
    pub ledger_max_keys: usize,
    /// Most notifications waiting for one channel; past it the oldest is given up (logged and
    /// counted; default 10,000), so a channel that is down for long cannot grow the outbox
    /// without bound.
    pub max_pending: usize,
    /// The server's address as people reach it (`https://crowsnest.example`), for links in
    /// notifications. Optional.
    pub public_url: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            routes: Vec::new(),
            max_age_secs: 6 * 3600,
            update_interval_secs: 300,
            retry_initial_ms: 1_000,
            retry_max_secs: 300,
            ledger_keep_days: 7,
            ledger_max_keys: 100_000,
            max_pending: 10_000,
            public_url: None,
        }
    }
}

/// The kind of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Slack incoming webhook: Block Kit blocks with a fallback `text`.
    Slack,
    /// Microsoft Teams Workflows webhook: a message with an Adaptive Card attachment.
    Teams,
    /// PagerDuty Events API v2: trigger, acknowledge, resolve by `dedup_key`.
    Pagerduty,
    /// Alertmanager `POST /api/v2/alerts`.
    Alertmanager,
    /// Opsgenie Alert API: create by `alias`, acknowledge, close.
    Opsgenie,
    /// Any HTTP receiver: a CloudEvents 1.0 JSON event, signed per Standard Webhooks.
    Webhook,
    /// Email over SMTP with STARTTLS.
    Email,
}

impl ChannelKind {
    /// The name used in config and status.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Pagerduty => "pagerduty",
            ChannelKind::Alertmanager => "alertmanager",
            ChannelKind::Opsgenie => "opsgenie",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
        }
    }

    /// Kinds that keep an alert open on their side: once an incident was sent there, its
    /// acknowledgement and resolution follow automatically, whatever the routes say.
    pub fn is_stateful(self) -> bool {
        matches!(
            self,
            ChannelKind::Pagerduty | ChannelKind::Opsgenie | ChannelKind::Alertmanager
        )
    }
}

/// One destination (`[[notify.channels]]`). Secret settings (`url`, `secret`, `routing_key`,
/// `api_key`, `smtp_password`) may be written as `${ENV_VAR}`, or given as a file with the
/// `_file` form of the setting (`url_file`, `secret_file`, ...), whose content is trimmed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Unique name; routes name channels by it.
    pub name: String,
    /// `slack`, `teams`, `pagerduty`, `alertmanager`, `opsgenie`, `webhook` or `email`.
    pub kind: Option<ChannelKind>,
    /// The webhook or API address. Required for slack, teams, alertmanager (its base URL, e.g.
    /// `http://alertmanager:9093`) and webhook; defaults to the vendor's API for pagerduty and
    /// opsgenie (`https://api.eu.opsgenie.com` for the EU instance).
    pub url: Option<String>,
    /// `url` from a file.
    pub url_file: Option<PathBuf>,
    /// Webhook: the Standard Webhooks signing secret, `whsec_` + base64. Optional (unsigned
    /// without it).
    pub secret: Option<String>,
    /// `secret` from a file.
    pub secret_file: Option<PathBuf>,
    /// PagerDuty: the integration's routing key (32 characters).
    pub routing_key: Option<String>,
    /// `routing_key` from a file.
    pub routing_key_file: Option<PathBuf>,
    /// Opsgenie: the API integration key (sent as `Authorization: GenieKey ...`).
    pub api_key: Option<String>,
    /// `api_key` from a file.
    pub api_key_file: Option<PathBuf>,
    /// Webhook: the CloudEvents `source` (default `crowsnest`).
    pub source: Option<String>,
    /// Email: the SMTP server's host name (verified against its certificate).
    pub smtp_host: Option<String>,
    /// Email: the SMTP port (default 587, submission with STARTTLS). STARTTLS is required:
    /// a server that does not offer it is an error, mail is never sent in clear.
    pub smtp_port: Option<u16>,
    /// Email: the SMTP user, when the server wants authentication.
    pub smtp_username: Option<String>,
    /// Email: the SMTP password.
    pub smtp_password: Option<String>,
    /// `smtp_password` from a file.
    pub smtp_password_file: Option<PathBuf>,
    /// Email: the sender (`crowsnest <alerts@example.com>`).
    pub from: Option<String>,
    /// Email: the recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// TLS settings (`ca_file`, `server_name`, `insecure_skip_verify`) as for outputs; for
    /// email only `ca_file` and `insecure_skip_verify` apply.
    #[serde(default)]
    pub tls: crowsnest_output::TlsConfig,
    /// Seconds a delivery may take before it counts as failed and is retried (default 10).
    pub timeout_secs: Option<u64>,
    /// Most notifications per minute to this channel (default 30); more wait their turn.
    pub rate_per_minute: Option<u32>,
}

/// Which incident changes go to which channels (`[[notify.routes]]`). Every condition given
/// must hold; a change goes to each channel of every route it matches, once.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The channels (by name).
    pub channels: Vec<String>,
    /// Lowest incident level (`informational` .. `critical`).
    pub min_level: Option<Severity>,
    /// Lowest risk score.
    pub min_risk: Option<f64>,
    /// The incident has at least one of these tags: `attack.<tactic>` or `attack.<technique
    /// id>` (lower case), exact or `prefix*`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Namespaces (exact or `prefix*`); incidents without a namespace do not match.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Clusters (`orchestrator.cluster.name`, exact or `prefix*`).
    #[serde(default)]
    pub clusters: Vec<String>,
    /// The changes: `opened`, `updated`, `paged`, `acknowledged`, `investigating`,
    /// `resolved`, `approval_needed` (default: all but `updated`).
    pub changes: Option<Vec<ChangeKind>>,
}

/// Why the notification settings cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("notify: {place}: {field}: {reason}")]
pub struct ConfigError {
    /// `channel "name"`, `route 2` or `[notify]`.
    pub place: String,
    /// The setting.
    pub field: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

fn err(place: &str, field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        place: place.to_string(),
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// A channel's settings with secrets resolved and defaults applied.
#[derive(Clone)]
pub struct Channel {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: ChannelKind,
    /// The address (HTTP kinds).
    pub url: String,
    /// Webhook signing key (decoded), if any.
    pub secret: Option<Vec<u8>>,
    /// PagerDuty routing key or Opsgenie API key.
    pub key: String,
    /// CloudEvents source.
    pub source: String,
    /// Email settings.
    pub email: Option<EmailSettings>,
    /// TLS settings.
    pub tls: crowsnest_output::TlsConfig,
    /// Delivery timeout.
    pub timeout: std::time::Duration,
    /// Most sends per minute.
    pub rate_per_minute: u32,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets (and webhook URLs, which are secrets for Slack and Teams) stay out of logs.
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Email settings of a channel.
#[derive(Clone)]
pub struct EmailSettings {
    /// SMTP host.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// User and password.
    pub credentials: Option<(String, String)>,
    /// Sender.
    pub from: lettre::message::Mailbox,
    /// Recipients.
    pub to: Vec<lettre::message::Mailbox>,
}

/// Resolves `${ENV}` (the whole value, or parts of it) in a setting.
fn expand(place: &str, field: &str, value: &str) -> Result<String, ConfigError> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| err(place, field, "`${` without a closing `}`"))?;
        let name = &after[..end];
        let var = std::env::var(name).map_err(|_| {
            err(
                place,
                field,
                format!("the environment variable `{name}` is not set"),
            )
        })?;
        out.push_str(&var);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A secret setting: the value (with `${ENV}`) or the trimmed content of its `_file`.
fn secret(
    place: &str,
    field: &str,
    value: Option<&String>,
    file: Option<&PathBuf>,
) -> Result<Option<String>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(err(
            place,
            field,
            format!("give either `{field}` or `{field}_file`, not both"),
        )),
        (Some(value), None) => expand(place, field, value).map(Some),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| {
                err(
                    place,
                    &format!("{field}_file"),
                    format!("cannot read `{}`: {e}", path.display()),
                )
            }),
        (None, None) => Ok(None),
    }
    .and_then(|v| match v {
        Some(v) if v.is_empty() => Err(err(place, field, "is empty")),
        v => Ok(v),
    })
}

fn check_url(place: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or("")) {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        // The URL is not quoted: for Slack and Teams it is the secret.
        _ => Err(err(
            place,
            "url",
            "expected an http:// or https:// URL with a host",
        )),
    }
}

/// Decodes a Standard Webhooks secret: `whsec_` + base64 of the key.
pub fn decode_webhook_secret(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .filter(|key| !key.is_empty())
}

impl NotifyConfig {
    /// Whether any channel is configured.
    pub fn is_enabled(&self) -> bool {
        !self.channels.is_empty()
    }

    /// Checks everything and resolves the channels' secrets.
    ///
    /// # Errors
    ///
    /// The first problem found, naming the channel or route, the field and why.
    pub fn validate(&self) -> Result<Vec<Channel>, ConfigError> {
        let mut names = BTreeSet::new();
        let mut channels = Vec::new();
        for (index, channel) in self.channels.iter().enumerate() {
            let place = if channel.name.is_empty() {
                format!("channel {}", index + 1)
            } else {
                format!("channel {:?}", channel.name)
            };
            if channel.name.is_empty()
                || !channel
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(err(
                    &place,
                    "name",
                    "expected a name of letters, digits, `-`, `_` or `.`",
                ));
            }
            if !names.insert(channel.name.clone()) {
                return Err(err(&place, "name", "two channels have this name"));
            }
            channels.push(channel.resolve(&place)?);
        }
        for (index, route) in self.routes.iter().enumerate() {
            let place = format!("route {}", index + 1);
            if route.channels.is_empty() {
                return Err(err(&place, "channels", "name at least one channel"));
            }
            for name in &route.channels {
                if !names.contains(name) {
                    return Err(err(
                        &place,
                        "channels",
                        format!("no channel is named {name:?}"),
                    ));
                }
            }
            if route.min_risk.is_some_and(|r| !r.is_finite() || r < 0.0) {
                return Err(err(&place, "min_risk", "expected a number ≥ 0"));
            }
            if route.changes.as_ref().is_some_and(Vec::is_empty) {
                return Err(err(
                    &place,
                    "changes",
                    "name at least one change, or leave it out for the default",
                ));
            }
        }
        if !channels.is_empty() && self.routes.is_empty() {
            return Err(err(
                "[notify]",
                "routes",
                "channels are configured but no [[notify.routes]] sends anything to them",
            ));
        }
        if self.max_age_secs == 0 {
            return Err(err("[notify]", "max_age_secs", "expected at least 1"));
        }
        if let Some(url) = &self.public_url {
            check_url("[notify]", url).map_err(|e| ConfigError {
                field: "public_url".into(),
                ..e
            })?;
        }
        Ok(channels)
    }
}

impl ChannelConfig {
    fn resolve(&self, place: &str) -> Result<Channel, ConfigError> {
        let kind = self.kind.ok_or_else(|| {
            err(
                place,
                "kind",
                "expected slack, teams, pagerduty, alertmanager, opsgenie, webhook or email",
            )
        })?;
        let url = secret(place, "url", self.url.as_ref(), self.url_file.as_ref())?;
        let url = match (kind, url) {
            (_, Some(url)) => url,
            (ChannelKind::Pagerduty, None) => "https://events.pagerduty.com/v2/enqueue".into(),
            (ChannelKind::Opsgenie, None) => "https://api.opsgenie.com".into(),
            (ChannelKind::Email, None) => String::new(),
            (_, None) => return Err(err(place, "url", format!("required for {}", kind.as_str()))),
        };
        if kind != ChannelKind::Email {
            check_url(place, &url)?;
        }
        let mut key = String::new();
        let mut webhook_secret = None;
        let mut email = None;
        match kind {
            ChannelKind::Pagerduty => {
                key = secret(
                    place,
                    "routing_key",
                    self.routing_key.as_ref(),
                    self.routing_key_file.as_ref(),
                )?
                .ok_or_else(|| err(place, "routing_key", "required for pagerduty"))?;
            }
            ChannelKind::Opsgenie => {
                key = secret(
                    place,
                    "api_key",
                    self.api_key.as_ref(),
                    self.api_key_file.as_ref(),
                )?
                .ok_or_else(|| err(place, "api_key", "required for opsgenie"))?;
            }
            ChannelKind::Webhook => {
                if let Some(value) = secret(
                    place,
                    "secret",
                    self.secret.as_ref(),
                    self.secret_file.as_ref(),
                )? {
                    webhook_secret = Some(decode_webhook_secret(&value).ok_or_else(|| {
                        err(
                            place,
                            "secret",
                            "expected `whsec_` followed by the base64 of the key",
                        )
                    })?);
                }
            }
            ChannelKind::Email => email = Some(self.email(place)?),
            ChannelKind::Slack | ChannelKind::Teams | ChannelKind::Alertmanager => {}
        }
        let timeout = self.timeout_secs.unwrap_or(10);
        if !(1..=3600).contains(&timeout) {
            return Err(err(place, "timeout_secs", "expected 1 to 3600"));
        }
        let rate = self.rate_per_minute.unwrap_or(30);
        if rate == 0 {
            return Err(err(place, "rate_per_minute", "expected at least 1"));
        }
        if let Some(path) = &self.tls.ca_file {
            if let Err(e) = std::fs::metadata(path) {
                return Err(err(
                    place,
                    "tls.ca_file",
                    format!("cannot read `{}`: {e}", path.display()),
                ));
            }
        }
        Ok(Channel {
            name: self.name.clone(),
            kind,
            url,
            secret: webhook_secret,
            key,
            source: self.source.clone().unwrap_or_else(|| "crowsnest".into()),
            email,
            tls: self.tls.clone(),
            timeout: std::time::Duration::from_secs(timeout),
            rate_per_minute: rate,
        })
    }

    fn email(&self, place: &str) -> Result<EmailSettings, ConfigError> {
        let host = self
            .smtp_host
            .clone()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err(place, "smtp_host", "required for email"))?;
        let from = self
            .from
            .as_deref()
            .ok_or_else(|| err(place, "from", "required for email"))?
            .parse()
            .map_err(|e| err(place, "from", format!("not an email address: {e}")))?;
        if self.to.is_empty() {
            return Err(err(place, "to", "name at least one recipient"));
        }
        let to = self
            .to
            .iter()
            .map(|to| {
                to.parse()
                    .map_err(|e| err(place, "to", format!("{to:?} is not an email address: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let password = secret(
            place,
            "smtp_password",
            self.smtp_password.as_ref(),
            self.smtp_password_file.as_ref(),
        )?;
        let credentials = match (&self.smtp_username, password) {
            (Some(user), Some(password)) => Some((user.clone(), password)),
            (None, None) => None,
            _ => {
                return Err(err(
                    place,
                    "smtp_username",
                    "give both smtp_username and smtp_password, or neither",
                ))
            }
        };
        Ok(EmailSettings {
            host,
            port: self.smtp_port.unwrap_or(587),
            credentials,
            from,
            to,
        })
    }
}

/// Matches `value` against `pattern` (exact, or `prefix*`).
pub(crate) fn glob(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}
