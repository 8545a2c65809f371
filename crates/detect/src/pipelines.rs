//! Processing pipelines and logsource routing: how Sigma rules meet our events.
//!
//! Two halves, both decided once per rule or once per dataset, never per field:
//!
//! * **Field mapping** (rule side). `pipelines/crowsnest.yml` is a pySigma-style processing
//!   pipeline, parsed by rsigma and applied to every rule at load time: SigmaHQ's Kubernetes
//!   audit paths (`verb`, `objectRef.resource`, `user.username`, ...) become `k8s.audit.<path>`,
//!   the non-paths `hostPath`, `capabilities` and a bare `apiGroup` become the real request
//!   paths (one-to-many where a pod spec can sit under a template), Linux `process_creation` /
//!   `file_event` / `network_connection` taxonomy names become ECS `process.*`, `file.path`,
//!   `destination.*`, and `service: auditd` rules read raw keys under `auditd.<key>`. Docker and
//!   container-log rules use our field names unchanged. `category: webserver` names
//!   (`cs-uri-query`, `cs-uri-stem`, `c-useragent`, `cs-method`, `sc-status`, `c-ip`, ...) become
//!   ECS `url.*`, `user_agent.original`, `http.*`, `source.ip`.
//! * **Logsource routing** (event side). [`event_logsource`] derives a Sigma logsource from
//!   `event.dataset` (plus `event.category` for process/file events). The engine skips every
//!   rule whose logsource conflicts with it (a dimension set on both sides that differs), so a
//!   Windows rule never sees a Kubernetes event. Kubernetes audit events get
//!   `category: application`, as SigmaHQ files its audit rules; Docker and container-log events
//!   have no category, except access-log lines (`event.category: web`, from
//!   `crowsnest_normalize::access_log`), which get `category: webserver` wherever they come
//!   from. The table is in `rules/README.md`.

use std::sync::OnceLock;

use rsigma_eval::Pipeline;
use rsigma_parser::LogSource;

/// The built-in pipeline, as YAML.
pub const CROWSNEST_PIPELINE_YAML: &str = include_str!("../pipelines/crowsnest.yml");

/// The built-in processing pipelines, parsed once.
///
/// The YAML is part of the crate and covered by tests, so a parse failure is a build defect;
/// it is still reported as an empty list plus an error log instead of a panic.
pub fn builtin_pipelines() -> &'static [Pipeline] {
    static PIPELINES: OnceLock<Vec<Pipeline>> = OnceLock::new();
    PIPELINES.get_or_init(
        || match rsigma_eval::parse_pipeline(CROWSNEST_PIPELINE_YAML) {
            Ok(p) => vec![p],
            Err(error) => {
                tracing::error!(%error, "built-in crowsnest pipeline does not parse");
                Vec::new()
            }
        },
    )
}

fn source(product: &str, service: Option<&str>, category: Option<&str>) -> LogSource {
    LogSource {
        product: Some(product.to_string()),
        service: service.map(str::to_string),
        category: category.map(str::to_string),
        ..LogSource::default()
    }
}

/// The Sigma logsource of an event, from its `event.dataset`, `event.module` and
/// `event.category` (see the module docs). `None` when the event has no dataset: such an
/// event is evaluated against every rule (rsigma's fail-open behaviour).
pub fn event_logsource(
    dataset: Option<&str>,
    module: Option<&str>,
    category: Option<&str>,
) -> Option<LogSource> {
    let dataset = dataset?;
    let (prefix, rest) = dataset.split_once('.').unwrap_or((dataset, ""));
    let sigma_category = match category {
        Some("process") => Some("process_creation"),
        Some("file") => Some("file_event"),
        Some("network") => Some("network_connection"),
        Some("web") => Some("webserver"),
        _ => None,
    };
    let web = sigma_category.filter(|c| *c == "webserver");
    let ls = match prefix {
        // SigmaHQ files most Kubernetes audit rules under `category: application`.
        "kubernetes" if rest == "audit" => source("kubernetes", Some("audit"), Some("application")),
        "docker" => source(
            "docker",
            Some(if rest.is_empty() { "events" } else { rest }),
            None,
        ),
        // An access line in a container's log is also a webserver event.
        "container" if rest == "logs" => source("container", Some("logs"), web),
        "auditd" => source("linux", Some("auditd"), sigma_category),
        "syslog" => source("linux", Some("syslog"), None),
        _ => match sigma_category {
            // nginx.access, envoy.access, an ndjson JSON access record: product from the module.
            Some("webserver") => {
                let product = module.unwrap_or(prefix);
                source(product, (!rest.is_empty()).then_some(rest), web)
            }
            Some(cat) => source("linux", None, Some(cat)),
            None => {
                let product = module.unwrap_or(prefix);
                source(product, (!rest.is_empty()).then_some(rest), None)
            }
        },
    };
    Some(ls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_parses() {
        assert_eq!(builtin_pipelines().len(), 1);
        assert!(builtin_pipelines()[0].transformations.len() >= 6);
    }

    #[test]
    fn routing_table() {
        let k = event_logsource(Some("kubernetes.audit"), Some("kubernetes"), None).expect("ls");
        assert_eq!(k.product.as_deref(), Some("kubernetes"));
        assert_eq!(k.service.as_deref(), Some("audit"));
        let a =
            event_logsource(Some("auditd.process"), Some("auditd"), Some("process")).expect("ls");
        assert_eq!(a.product.as_deref(), Some("linux"));
        assert_eq!(a.service.as_deref(), Some("auditd"));
        assert_eq!(a.category.as_deref(), Some("process_creation"));
        let p = event_logsource(Some("agent.process"), Some("agent"), Some("process")).expect("ls");
        assert_eq!(
            (p.product.as_deref(), p.service.as_deref()),
            (Some("linux"), None)
        );
        let d = event_logsource(Some("docker.events"), Some("docker"), None).expect("ls");
        assert_eq!(d.service.as_deref(), Some("events"));
        let c = event_logsource(Some("container.logs"), None, None).expect("ls");
        assert_eq!(c.product.as_deref(), Some("container"));
        assert!(event_logsource(None, None, None).is_none());
        let w =
            event_logsource(Some("container.logs"), Some("kubernetes"), Some("web")).expect("ls");
        assert_eq!(
            (
                w.product.as_deref(),
                w.service.as_deref(),
                w.category.as_deref()
            ),
            (Some("container"), Some("logs"), Some("webserver"))
        );
        let n = event_logsource(Some("nginx.access"), Some("nginx"), Some("web")).expect("ls");
        assert_eq!(
            (
                n.product.as_deref(),
                n.service.as_deref(),
                n.category.as_deref()
            ),
            (Some("nginx"), Some("access"), Some("webserver"))
        );
    }
}
