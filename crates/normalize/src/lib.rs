//! Decoders of crowsnest: request bodies in → common [`Event`]s out.
//!
//! Two entry points serve the ingest API:
//!
//! * [`decode_k8s_audit`] takes what kube-apiserver's audit webhook posts: an
//!   `audit.k8s.io/v1` (or `v1beta1`) `EventList`, or a single `Event`. A body that is not
//!   one of those fails whole with a [`DecodeError`]; one bad item inside a good list becomes
//!   a [`LineError`] naming the item and field, and the other items still decode.
//! * [`decode_ndjson`] takes one JSON object per line and never fails whole: every bad line
//!   becomes a [`LineError`] with its line number. Each line goes to a parser of the
//!   [`registry`], the one `source` names (see [`known_sources`]) or the first that recognises
//!   its shape: a Kubernetes audit event, an EKS/AKS/GKE audit record (which all land in the
//!   *same* audit mapping, so rules work unchanged), a Falco alert, a Docker json-file line,
//!   or any other object, kept as it is (users send ECS-shaped JSON).
//!
//! Every format is one file with one [`Parser`], listed in [`registry::PARSERS`]; the ingest
//! endpoints, the node agent and `crowsnest hunt` all parse through it.
//!
//! Every event carries `event.original` (the exact text of its line or item),
//! `event.dataset` and `event.module`. The server adds `event.id` and `event.ingested`, and
//! fills in `@timestamp` for events that had no parseable time. [`Limits`] bound line length,
//! nesting and field size, so a decoder never panics and never allocates much beyond the body.
//!
//! | module | parser names | decodes |
//! |---|---|---|
//! | [`registry`] | | the `Parser` trait and the one list of parsers; naming and detection |
//! | `k8s_audit` | `kubernetes.audit`, `k8s-audit` | native audit events: the one audit mapping every flavour lands in |
//! | `managed` | `eks`, `aks`, `gke` | EKS (CloudWatch Logs), AKS (Azure diagnostics), GKE (Cloud Audit Logs) envelopes |
//! | [`falco`] | `falco` | Falco alerts (`json_output`, falcosidekick) |
//! | [`falco_fields`] | `falco.events`, `falco-fields` | records in Falco's field vocabulary (`proc.*`, `evt.*`, ...), flat or nested |
//! | [`tetragon`] | `tetragon` | Tetragon's JSON export (`process_exec`, `process_exit`, `process_kprobe`, ...) |
//! | [`tracee`] | `tracee` | Tracee's JSON events (`sched_process_exec`, `security_file_open`, ...) |
//! | [`kubearmor`] | `kubearmor` | KubeArmor telemetry and alerts (`Operation` Process/File/Network) |
//! | `sensor` | | what the runtime-sensor parsers share: one ECS shape for process, file and network events |
//! | [`docker`] | `docker`, `docker-json`, `json-file` | Docker json-file log lines |
//! | [`cri`] | `cri` | CRI log lines (containerd, CRI-O) |
//! | [`syslog`] | `syslog` | RFC 5424 / RFC 3164 messages |
//! | `generic` | `generic` | any other JSON object: timestamp and message aliases, ECS pass-through |
//! | [`access_log`] | `nginx`, `apache`, `envoy`, `traefik` | web access logs (CLF/combined, Envoy/Istio, JSON); also the step every container line and generic object passes through |
//! | [`container`] | | what the container formats share: pieces, reassembly, stack-trace joining |
//! | `webhook` | | the audit webhook body (`EventList` or `Event`) |
//! | `ndjson` | | line splitting and per-line routing through the registry |
//! | `limits` | | the guards every line passes through |
//!
//! ```
//! use crowsnest_normalize::{decode_k8s_audit, decode_ndjson, Limits};
//!
//! let body = br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[
//!   {"auditID":"1","verb":"create","user":{"username":"alice"},
//!    "objectRef":{"resource":"pods","subresource":"exec","namespace":"default","name":"web"},
//!    "responseStatus":{"code":101},"requestReceivedTimestamp":"2024-05-01T10:00:00Z"},
//!   42]}"#;
//! let decoded = decode_k8s_audit(body, &Limits::default()).expect("an EventList");
//! let event = &decoded.events[0];
//! assert_eq!(event.get_str("event.action"), Some("create"));
//! assert_eq!(event.get_str("orchestrator.resource.subresource"), Some("exec"));
//! assert_eq!(event.get_str("message"), Some("alice create pods/exec default/web -> 101"));
//! assert_eq!(decoded.errors[0].line, 2); // the second item is not an object
//!
//! let lines = b"{\"ts\": 1714557600, \"msg\": \"hello\"}\nnot json\n";
//! let decoded = decode_ndjson(lines, Some("myapp"), &Limits::default());
//! assert_eq!(decoded.events[0].get_str("@timestamp"), Some("2024-05-01T10:00:00.000000Z"));
//! assert_eq!(decoded.events[0].get_str("message"), Some("hello"));
//! assert_eq!(decoded.events[0].get_str("event.dataset"), Some("myapp"));
//! assert_eq!(decoded.errors[0].line, 2);
//! ```

#![deny(missing_docs)]

pub mod access_log;
pub mod container;
pub mod cri;
pub mod docker;
mod error;
pub mod falco;
pub mod falco_fields;
mod fields;
mod generic;
pub mod invariants;
mod k8s_audit;
pub mod kubearmor;
mod limits;
mod managed;
mod ndjson;
pub mod registry;
mod sensor;
pub mod syslog;
pub mod tetragon;
pub mod tracee;
mod webhook;

use crowsnest_model::{ecs, Event};
use serde_json::Value;

pub use error::{DecodeError, LineError};
pub use generic::{MESSAGE_KEYS, TIME_KEYS};
pub use limits::{too_deep, truncate_strings, Limits};
pub use registry::{Parser, Source, PARSERS};

/// The outcome of decoding a body: the events that decoded and the lines/items that did not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Decoded events, in input order.
    pub events: Vec<Event>,
    /// One error per line or item that could not be decoded, in input order.
    pub errors: Vec<LineError>,
}

/// Decodes a Kubernetes audit webhook body: an `audit.k8s.io/v1` or `v1beta1` `EventList`
/// (as kube-apiserver's webhook backend posts it) or a single audit `Event`.
///
/// # Errors
///
/// A [`DecodeError`] when the body as a whole is unusable: empty, not UTF-8, nested deeper
/// than [`Limits::max_depth`], not JSON, or not an audit `Event`/`EventList`. Bad *items*
/// (not objects, fields of the wrong type, longer than [`Limits::max_line_bytes`]) are
/// reported in [`Decoded::errors`] with their 1-based item number instead.
pub fn decode_k8s_audit(body: &[u8], limits: &Limits) -> Result<Decoded, DecodeError> {
    webhook::decode_body(body, limits)
}

/// Decodes an NDJSON body, one JSON object per line.
///
/// `source` names a parser of the [`registry`] (its name or an alias, see [`known_sources`]):
/// every line goes to it. Any other name keeps per-line detection and becomes the
/// `event.dataset` of generic events (default `ndjson`). Audit events, from whatever cluster,
/// always get `event.dataset: kubernetes.audit`. Blank lines are skipped; every other line
/// yields events or a [`LineError`].
pub fn decode_ndjson(body: &[u8], source: Option<&str>, limits: &Limits) -> Decoded {
    ndjson::decode(body, Source::from_name(source), limits)
}

/// The `source` names that select a parser in [`decode_ndjson`], one per parser of the
/// [`registry`] plus aliases, among them:
///
/// * `kubernetes.audit` (also `k8s-audit`): every line is a Kubernetes audit `Event` or
///   `EventList`;
/// * `eks`: CloudWatch Logs records / subscription batches of EKS audit logs, or bare audit
///   events from EKS (`cloud.provider: aws`);
/// * `aks`: Azure `kube-audit` diagnostic records / `records` batches, or bare audit events
///   from AKS (`cloud.provider: azure`);
/// * `gke`: GKE Cloud Audit Log entries (`cloud.provider: gcp`);
/// * `falco`: Falco alerts; `docker` (also `docker-json`, `json-file`): Docker json-file lines;
/// * `cri`, `syslog`: text lines (CRI container logs, syslog messages);
/// * `generic`: every line is kept as it is (no detection).
///
/// A line that does not fit the named parser is a [`LineError`].
pub fn known_sources() -> Vec<&'static str> {
    registry::names().collect()
}

/// The last step of every parser: applies the field-size limit and records the original
/// text. This is the one place that decides what `event.original` is: the text the event was
/// read from, unless the event arrived with its own `event.original` string (a shipper that
/// already normalized it keeps the raw container or audit line there; an item split from a
/// batch keeps its own item's text): that is the text the source produced, and the line we
/// received is only its envelope.
pub fn finish(mut event: Event, original: &str, limits: &Limits) -> Event {
    limits::truncate_strings(&mut event.0, limits.max_field_bytes);
    if event.get_str(ecs::EVENT_ORIGINAL).is_none() {
        event.set(ecs::EVENT_ORIGINAL, Value::String(original.to_string()));
    }
    event
}
