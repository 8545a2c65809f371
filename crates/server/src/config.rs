//! Server configuration. Field doc comments are the reference for the TOML config file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the server can be told. Unknown keys in a config file are an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP API (`127.0.0.1:8470`).
    pub listen: String,
    /// Where the WAL, the store and the tokens live (`./crowsnest-data`).
    pub data_dir: PathBuf,
    /// Largest request body accepted, after decompression, in bytes (32 MiB). Larger: 413.
    pub max_body_bytes: usize,
    /// Largest search `limit`.
    pub max_search_limit: usize,
    /// Bounds of each search's cost (`POST /api/v1/search`, `crowsnest search`, the alerts API).
    pub search: SearchLimits,
    /// Throttling of failed authentication, per source address.
    pub auth: AuthLimits,
    /// Seconds between retention passes.
    pub retention_interval_secs: u64,
    /// Per-line/field bounds of the decoders, and the memory budget of decoding.
    pub decode: DecodeLimits,
    /// HTTP connection limits and timeouts.
    pub http: HttpConfig,
    /// Ingest pipeline tuning.
    pub pipeline: crate::pipeline::PipelineConfig,
    /// Store layout and retention.
    pub store: crowsnest_store::StoreConfig,
    /// Ecosystem listeners (`[[inputs]]`: syslog, forward); none by default.
    #[serde(deserialize_with = "crate::listeners::deserialize_inputs")]
    pub inputs: Vec<crowsnest_ingest::listen::InputConfig>,
    /// Limits of the ecosystem inputs, and the per-request event cap of every input.
    pub input_limits: crate::listeners::InputLimits,
    /// Live detection: rules, alert folding, suppressions.
    pub detect: crate::detection::DetectionConfig,
    /// Forwarding outputs (`[[outputs]]`): where events and alerts are sent on.
    pub outputs: Vec<crowsnest_output::OutputConfig>,
    /// Notifications of incident changes (`[notify]`, `[[notify.channels]]`,
    /// `[[notify.routes]]`); none by default.
    pub notify: crowsnest_notify::NotifyConfig,
    /// Containment (`[respond]`): playbooks, guards, approvals. See
    /// `crowsnest_respond::contain::RespondConfig`.
    pub respond: crowsnest_respond::contain::RespondConfig,
    /// User-defined mappings (`[[mappings]]`): VRL programs run on the events of the datasets
    /// they name, on every input, before the WAL. See `crowsnest_mapping`.
    pub mappings: Vec<crowsnest_mapping::MappingConfig>,
    /// The web console served at `/` (`crowsnest-console`): its sessions and cookies.
    pub console: ConsoleConfig,
    /// Compliance evaluation (`[compliance]`): retention and silence thresholds, the incident
    /// handling time, namespaces holding personal data, risk acceptances
    /// (`[[compliance.risk_acceptances]]`). See `crowsnest_compliance::ComplianceConfig`.
    pub compliance: crowsnest_compliance::ComplianceConfig,
    /// Tamper evidence (`[integrity]`): the hash chain over sealed WAL segments and partitions
    /// that `crowsnest verify` checks.
    pub integrity: IntegrityConfig,
    /// The self-audit stream (`[audit]`): searches, exports, token changes, logins, reloads and
    /// response actions as events of dataset `crowsnest.audit`.
    pub audit: AuditConfig,
}

/// Tamper evidence (`[integrity]`). Closed WAL segments and store partitions whose writer
/// closed are hashed once (SHA-256) into `<data_dir>/integrity/chain.jsonl`, each record
/// linked to the one before; retention and WAL truncation are recorded there too.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrityConfig {
    /// Keep the chain (true).
    pub enabled: bool,
    /// A PKCS#8 Ed25519 key (`crowsnest verify --generate-key PATH` makes one) that signs the
    /// chain's checkpoints; none by default (checkpoints unsigned). Auditors check with the
    /// public key alone: `crowsnest verify --public-key HEX`.
    pub signing_key: Option<PathBuf>,
    /// Seconds between the server's own verifications of the chain and the sealed files
    /// (3600; 0 = never). One also runs at start. Each result is an event of dataset
    /// `crowsnest.verify` in the self-audit stream (the evidence of PCI DSS 10.3.2/10.3.4).
    pub verify_interval_secs: u64,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            signing_key: None,
            verify_interval_secs: 3600,
        }
    }
}

/// The self-audit stream (`[audit]`): each audited action becomes an event submitted through
/// the pipeline (so it is in the WAL, the store and the chain) by a background task; a full
/// queue drops the event and counts it in `crowsnest_audit_dropped_total`, never slowing the
/// action audited.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record audit events (true).
    pub enabled: bool,
    /// Audit events waiting to be submitted (4096); past it they are dropped and counted.
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue: 4096,
        }
    }
}

/// The web console's sessions (`[console]`). A session is made by logging in with a token
/// (checked like an API token, under the same throttle); it lives in the server's memory
/// (a restart logs everyone out) and ends at logout, after `session_idle_secs` without a
/// request, after `session_max_secs` in all, or once its token no longer exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at `/` (true).
    pub enabled: bool,
    /// A session ends after this many seconds without a request (8 h).
    pub session_idle_secs: u64,
    /// A session ends this many seconds after login, used or not (24 h).
    pub session_max_secs: u64,
    /// Most sessions at once (10 000); past it the least recently used ends.
    pub max_sessions: usize,
    /// The `Secure` attribute of the session cookie: `auto` (set when the request came
    /// through a TLS proxy that says `X-Forwarded-Proto: https`), `always` or `never`.
    pub secure_cookie: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_idle_secs: 8 * 3600,
            session_max_secs: 24 * 3600,
            max_sessions: 10_000,
            secure_cookie: "auto".to_string(),
        }
    }
}

/// Bounds of each search: a query is refused before it runs when it is too long or has too many
/// terms, stopped when it runs too long or its client goes away, and a token runs only so many
/// at once. Every refusal names the setting and its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchLimits {
    /// Longest query text, in bytes (65536). Longer: 400.
    pub max_query_bytes: usize,
    /// Most terms in a query (1024): each clause counts one, a value or phrase of several words
    /// one per word (`crowsnest_query::Filter::term_count`). More: 400.
    pub max_terms: usize,
    /// Longest a search may run, in milliseconds (30000). Past it the search stops and the
    /// answer is 504; nothing partial is returned.
    pub timeout_ms: u64,
    /// Searches one token may run at once (4; at least 1). More: 429 with `Retry-After`.
    pub max_concurrent_per_token: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        Self {
            max_query_bytes: 64 * 1024,
            max_terms: 1024,
            timeout_ms: 30_000,
            max_concurrent_per_token: 4,
        }
    }
}

/// Throttling of failed authentication: an address (an IPv6 /64) that sent `max_failures`
/// unknown tokens within `failure_window_secs` gets 429 with `Retry-After` on every request
/// until its window ends, without its token being checked. Other addresses are not affected.
/// Every failure is counted in `crowsnest_auth_failures_total`, and logged at most once per
/// address and window (with the number of failures).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthLimits {
    /// Unknown tokens one address may send per window before it is refused (20).
    pub max_failures: u32,
    /// Length of the window, in seconds (60).
    pub failure_window_secs: u64,
    /// Addresses remembered at once (10000); past it the oldest are forgotten first, so many
    /// addresses cannot grow memory.
    pub max_tracked_addresses: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            max_failures: 20,
            failure_window_secs: 60,
            max_tracked_addresses: 10_000,
        }
    }
}

/// Bounds applied while decoding input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeLimits {
    /// Longest NDJSON line, in bytes.
    pub max_line_bytes: usize,
    /// Deepest JSON nesting.
    pub max_depth: usize,
    /// Longest string value kept in the indexed event (longer ones are truncated).
    pub max_field_bytes: usize,
    /// Memory, in bytes, for the requests being read, inflated and decoded at once, shared by
    /// every HTTP input and the stream listeners' frame buffers (1 GiB). A request reserves
    /// its body, then its inflated body, then the estimated cost of the events it holds
    /// (counted before they are built) before it is decoded: when the budget is in use it is
    /// answered 503 with `Retry-After`; when it needs more than the whole budget, 413.
    pub memory_budget_bytes: usize,
}

/// Connection limits and timeouts of the HTTP listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Most open HTTP connections (512). Past it a new connection is answered 503 with
    /// `Retry-After` and closed, before its request is read. Kept below the open files limit
    /// (the server lowers it, with a warning, when the limits of all listeners would not
    /// leave room for the WAL and the store).
    pub max_connections: usize,
    /// Most open HTTP connections from one source IP address (128); past it, 503 as above.
    pub max_connections_per_ip: usize,
    /// Seconds a client has to send a request's headers, counted from when the server starts
    /// waiting for them: on a new connection, and after each response on a kept-alive one, so
    /// this is also how long an idle keep-alive connection stays open (30).
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a whole ingest request body (60); a slower body is
    /// answered 408 and its connection closed.
    pub body_read_timeout_secs: u64,
    /// Seconds a response may wait for the client to read any of it (60); past it the
    /// connection is closed, so unread responses cannot pile up in memory.
    pub write_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_ip: 128,
            header_read_timeout_secs: 30,
            body_read_timeout_secs: 60,
            write_timeout_secs: 60,
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        let limits = crowsnest_normalize::Limits::default();
        Self {
            max_line_bytes: limits.max_line_bytes,
            max_depth: limits.max_depth,
            max_field_bytes: limits.max_field_bytes,
            memory_budget_bytes: 1 << 30,
        }
    }
}

impl DecodeLimits {
    /// The decoders' form of these limits.
    pub fn to_limits(&self) -> crowsnest_normalize::Limits {
        crowsnest_normalize::Limits {
            max_line_bytes: self.max_line_bytes,
            max_depth: self.max_depth,
            max_field_bytes: self.max_field_bytes,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8470".to_string(),
            data_dir: PathBuf::from("crowsnest-data"),
            max_body_bytes: 32 * 1024 * 1024,
            max_search_limit: 10_000,
            search: SearchLimits::default(),
            auth: AuthLimits::default(),
            retention_interval_secs: 60,
            decode: DecodeLimits::default(),
            http: HttpConfig::default(),
            pipeline: crate::pipeline::PipelineConfig::default(),
            store: crowsnest_store::StoreConfig::default(),
            inputs: Vec::new(),
            input_limits: crate::listeners::InputLimits::default(),
            detect: crate::detection::DetectionConfig::default(),
            outputs: Vec::new(),
            notify: crowsnest_notify::NotifyConfig::default(),
            respond: crowsnest_respond::contain::RespondConfig::default(),
            mappings: Vec::new(),
            console: ConsoleConfig::default(),
            integrity: IntegrityConfig::default(),
            audit: AuditConfig::default(),
            compliance: crowsnest_compliance::ComplianceConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_through_toml() {
        let config = ServerConfig::default();
        let text = toml::to_string(&config).expect("serialize");
        let back: ServerConfig = toml::from_str(&text).expect("parse");
        assert_eq!(toml::to_string(&back).expect("serialize"), text);
        let json = serde_json::to_string(&config).expect("json");
        let from_json: ServerConfig = serde_json::from_str(&json).expect("parse json");
        assert_eq!(toml::to_string(&from_json).expect("serialize"), text);
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let config: ServerConfig =
            toml::from_str("listen = \"127.0.0.1:9000\"\n[store]\npartition_hours = 1\n")
                .expect("parse");
        assert_eq!(config.listen, "127.0.0.1:9000");
        assert_eq!(config.store.partition_hours, 1);
        assert_eq!(
            config.max_body_bytes,
            ServerConfig::default().max_body_bytes
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = toml::from_str::<ServerConfig>("listn = \"x\"").expect_err("unknown");
        assert!(error.to_string().contains("listn"), "{error}");
    }

    #[test]
    fn the_readme_respond_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\n[respond]")
            .expect("README has a [respond] example");
        let block = &readme[start + "```toml\n".len()..];
        let block = &block[..block.find("```").expect("end of the example")];
        let config: ServerConfig = toml::from_str(block).expect("the README example parses");
        config
            .respond
            .validate()
            .expect("the README playbooks are valid");
        assert!(!config.respond.playbooks.is_empty());
    }

    #[test]
    fn the_readme_outputs_section_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\n[[outputs]]")
            .expect("README has an [[outputs]] example");
        let block = &readme[start + "```toml\n".len()..];
        let block = &block[..block.find("```").expect("end of the example")];
        let config: ServerConfig = toml::from_str(block).expect("the README example parses");
        let kinds: Vec<_> = config.outputs.iter().map(|o| o.sink.kind()).collect();
        assert_eq!(
            kinds,
            ["elasticsearch", "splunk_hec", "syslog", "otlp", "webhook"]
        );
        assert_eq!(
            config.outputs[0].query.as_deref(),
            Some("rule.level:(high OR critical)")
        );
    }

    #[test]
    fn the_readme_inputs_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\n[[inputs]]")
            .expect("README has an [[inputs]] example");
        let block = &readme[start + "```toml\n".len()..];
        let block = &block[..block.find("```").expect("end of the example")];
        let config: ServerConfig = toml::from_str(block).expect("the README example parses");
        let described: Vec<_> = config
            .inputs
            .iter()
            .map(|input| input.source().describe())
            .collect();
        assert_eq!(
            described,
            ["syslog/tls 0.0.0.0:6515", "forward 0.0.0.0:24224"]
        );
    }

    #[test]
    fn the_readme_incidents_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\n[detect.incidents]")
            .expect("README has a [detect.incidents] example");
        let block = &readme[start + "```toml\n".len()..];
        let block = &block[..block.find("```").expect("end of the example")];
        let config: ServerConfig = toml::from_str(block).expect("the README example parses");
        assert_eq!(config.detect.incidents.criticality.len(), 2);
        assert_eq!(config.detect.incidents.page_risk, 60.0);
    }

    #[test]
    fn the_readme_notify_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\n[notify]")
            .expect("README has a [notify] example");
        let block = &readme[start + "```toml\n".len()..];
        let block = &block[..block.find("```").expect("end of the example")];
        let config: ServerConfig = toml::from_str(block).expect("the README example parses");
        let kinds: Vec<_> = config
            .notify
            .channels
            .iter()
            .filter_map(|c| c.kind.map(|k| k.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                "slack",
                "teams",
                "pagerduty",
                "alertmanager",
                "opsgenie",
                "webhook",
                "email"
            ]
        );
        assert_eq!(config.notify.routes.len(), 3);
        // Its channels' secrets come from the environment and files; the rest is valid.
        let error = config
            .notify
            .validate()
            .expect_err("SLACK_WEBHOOK_URL is not set");
        let error = error.to_string();
        assert!(
            error.contains("SLACK_WEBHOOK_URL") || error.contains("url_file"),
            "{error}"
        );
    }

    #[test]
    fn the_readme_detection_section_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("[detect]")
            .expect("README has a [detect] example");
        let block = &readme[start..];
        let block = &block[..block.find("```").expect("end of the example")];
        let config: ServerConfig = toml::from_str(block).expect("the README example parses");
        assert_eq!(config.detect.rule_dirs.len(), 2);
        let suppression = &config.detect.suppressions[0];
        assert_eq!(suppression.id, "ops-debugging");
        assert!(suppression.expires.is_some());
        assert_eq!(suppression.fields.len(), 2);
    }
}
