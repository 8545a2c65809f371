//! The one registry of parsers: every input format crowsnest reads, in one list.
//!
//! A [`Parser`] is one file in this crate (`docker.rs`, `cri.rs`, `falco.rs`,
//! `falco_fields.rs`, `tetragon.rs`, `tracee.rs`, `kubearmor.rs`, `syslog.rs`, `k8s_audit.rs`,
//! `managed.rs`, the shipper vocabularies `kubernetes_meta.rs`, `filebeat.rs` and
//! `docker_drivers.rs`, `generic.rs`); [`PARSERS`] lists them. Everything that turns
//! a record into [`Event`](crowsnest_model::Event)s goes through here: the NDJSON endpoint
//! ([`crate::decode_ndjson`]), the ecosystem inputs of `crowsnest-ingest` (Falco, syslog, and
//! the JSON records inside Elasticsearch bulk, Splunk HEC and Fluent forward requests), the
//! node agent's file collectors, and `crowsnest hunt`.
//!
//! How a record finds its parser:
//!
//! 1. **By name.** A request's `source=` (or the caller) names a parser by [`Parser::name`]
//!    or one of its [`Parser::aliases`]: every record goes to that parser, and a record that
//!    does not fit it is a [`LineError`].
//! 2. **By detection**, otherwise: a JSON record goes to the first parser, in the order of
//!    [`PARSERS`], whose [`Parser::detect`] says yes. The order is part of the contract:
//!    specific shapes first (audit events, managed-cloud envelopes, Falco alerts, runtime
//!    sensor events, Docker json-file lines), `generic` last, which takes any object. Text
//!    parsers ([`Input::Text`]) are never picked for a JSON line; [`detect_text`] picks one
//!    for a file of text lines (`crowsnest hunt`).
//!
//! A parser pushes zero or more events and per-item [`LineError`]s into a [`Decoded`]; one
//! record can hold many events (an audit `EventList`, a CloudWatch batch) or none (an empty
//! list). Every event passes through [`crate::finish`], the one place that applies the
//! field-size limit and decides what `event.original` is.
//!
//! # Adding a parser
//!
//! One file plus one line in [`PARSERS`]; see `docs/ARCHITECTURE.md` ("Adding a parser").

use serde_json::{Map, Value};

use crate::error::{describe, LineError};
use crate::limits::{check_line, parse_json};
use crate::{
    access_log, cri, docker, docker_drivers, falco, falco_fields, filebeat, generic, k8s_audit,
    kubearmor, kubernetes_meta, managed, syslog, tetragon, tracee, Decoded, Limits,
};

/// Every parser, in detection order. Adding a format is one file and one line here.
pub static PARSERS: &[&dyn Parser] = &[
    &k8s_audit::KubernetesAudit,
    &managed::GKE,
    &managed::AKS,
    &managed::EKS,
    &falco::Falco,
    &falco_fields::FalcoFields,
    &tetragon::Tetragon,
    &tracee::Tracee,
    &kubearmor::KubeArmor,
    &docker::DockerJsonFile,
    &kubernetes_meta::KubernetesMetadata,
    &filebeat::Filebeat,
    &docker_drivers::DockerFluentd,
    &docker_drivers::Gelf,
    &docker_drivers::Journald,
    &cri::Cri,
    &access_log::TRAEFIK,
    &access_log::ENVOY,
    &access_log::NGINX,
    &access_log::APACHE,
    &syslog::Syslog,
    &generic::Generic,
];

/// What a parser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// One JSON object per record; the registry parses it (with the [`Limits`] guards).
    Json,
    /// One line of text per record.
    Text,
}

/// How the parser was chosen for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The sender named it (`source=`): the record must fit, else it is an error.
    Named,
    /// Its [`Parser::detect`] recognised the record.
    Detected,
}

/// One record handed to a parser.
#[derive(Debug)]
pub enum Record<'a> {
    /// A JSON object and its exact text.
    Json {
        /// The record's exact text (what `event.original` keeps).
        text: &'a str,
        /// The parsed object.
        object: Map<String, Value>,
    },
    /// A line of text.
    Text(&'a str),
}

impl Record<'_> {
    /// The record's exact text.
    pub fn text(&self) -> &str {
        match self {
            Record::Json { text, .. } | Record::Text(text) => text,
        }
    }
}

/// What a parser knows about the record besides the record itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The record's 1-based line (or item) number, for errors.
    pub line: usize,
    /// Size limits; [`crate::finish`] applies the field limit.
    pub limits: &'a Limits,
    /// `event.dataset` for records the parser keeps as generic events (the request's
    /// `source=` when it names no parser, else `ndjson`).
    pub dataset: &'a str,
    /// Whether the parser was named or detected.
    pub claim: Claim,
}

/// One input format: how it is recognised and how a record of it becomes events.
pub trait Parser: Sync {
    /// The name it claims: the `source=` value that selects it (`docker`, `falco`, ...).
    fn name(&self) -> &'static str;

    /// Other names that select it.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// What it reads: JSON objects (default) or text lines.
    fn input(&self) -> Input {
        Input::Json
    }

    /// Whether a JSON object is a record of this format (for auto-detection). Cheap: it
    /// looks at a few keys, it does not map. Text parsers answer `false`.
    fn detect(&self, object: &Map<String, Value>) -> bool {
        let _ = object;
        false
    }

    /// Whether a line of text is a record of this format (for files of text lines).
    fn detect_text(&self, line: &str) -> bool {
        let _ = line;
        false
    }

    /// Maps one record: pushes its events (each through [`crate::finish`]) and one
    /// [`LineError`] per bad record or item (numbered `cx.line`) into `out`.
    fn parse(&self, record: Record<'_>, cx: &Context<'_>, out: &mut Decoded);
}

impl std::fmt::Debug for dyn Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Parser({})", self.name())
    }
}

/// The parser a name selects (its name or an alias).
pub fn by_name(name: &str) -> Option<&'static dyn Parser> {
    PARSERS
        .iter()
        .copied()
        .find(|p| p.name() == name || p.aliases().contains(&name))
}

/// Every name and alias that selects a parser.
pub fn names() -> impl Iterator<Item = &'static str> {
    PARSERS
        .iter()
        .flat_map(|p| std::iter::once(p.name()).chain(p.aliases().iter().copied()))
}

/// The first JSON parser, in [`PARSERS`] order, that recognises the object (`generic`, last,
/// takes any object).
pub fn detect(object: &Map<String, Value>) -> &'static dyn Parser {
    PARSERS
        .iter()
        .copied()
        .find(|p| p.input() == Input::Json && p.detect(object))
        .unwrap_or(&generic::Generic)
}

/// The first text parser that recognises a line of text, if any.
pub fn detect_text(line: &str) -> Option<&'static dyn Parser> {
    PARSERS
        .iter()
        .copied()
        .find(|p| p.input() == Input::Text && p.detect_text(line))
}

/// Where the records of a body go.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Every record to this parser.
    Named(&'static dyn Parser),
    /// Each JSON record to the parser that recognises it; generic events get `dataset`.
    Detect {
        /// `event.dataset` of generic events.
        dataset: &'a str,
    },
}

impl<'a> Source<'a> {
    /// The source a request's `source=` value means: a parser's name or alias selects it;
    /// any other non-empty name keeps detection and names the dataset of generic events;
    /// none detects with dataset `ndjson`.
    pub fn from_name(name: Option<&'a str>) -> Self {
        match name {
            Some(name) => match by_name(name) {
                Some(parser) => Source::Named(parser),
                None if !name.is_empty() => Source::Detect { dataset: name },
                None => Source::Detect {
                    dataset: generic::DATASET,
                },
            },
            None => Source::Detect {
                dataset: generic::DATASET,
            },
        }
    }
}

/// Parses one record (one line or item, `line` its number) and pushes what it yields into
/// `out`. A JSON record passes the [`Limits`] guards (length, UTF-8, depth, syntax, "is an
/// object") first; a text record the length and UTF-8 checks.
pub fn parse_record(
    raw: &[u8],
    line: usize,
    source: Source<'_>,
    limits: &Limits,
    out: &mut Decoded,
) {
    let text = match check_line(raw, limits) {
        Ok(text) => text,
        Err(reason) => return out.errors.push(LineError::new(line, reason)),
    };
    let (named, dataset) = match source {
        Source::Named(parser) => (Some(parser), generic::DATASET),
        Source::Detect { dataset } => (None, dataset),
    };
    if let Some(parser) = named.filter(|p| p.input() == Input::Text) {
        let cx = Context {
            line,
            limits,
            dataset,
            claim: Claim::Named,
        };
        return parser.parse(Record::Text(text), &cx, out);
    }
    let object = match parse_json(text, limits) {
        Ok(Value::Object(object)) => object,
        Ok(other) => {
            let reason = format!("expected a JSON object, found {}", describe(&other));
            return out.errors.push(LineError::new(line, reason));
        }
        Err(reason) => return out.errors.push(LineError::new(line, reason)),
    };
    let (parser, claim) = match named {
        Some(parser) => (parser, Claim::Named),
        None => (detect(&object), Claim::Detected),
    };
    let cx = Context {
        line,
        limits,
        dataset,
        claim,
    };
    parser.parse(Record::Json { text, object }, &cx, out);
}

/// Parses a body of records, one a line: `\n` or `\r\n` ends a line, a UTF-8 byte order mark
/// before the first is ignored, blank lines are skipped, and every other line yields events or
/// a [`LineError`] numbered from 1.
pub fn parse_lines(body: &[u8], source: Source<'_>, limits: &Limits) -> Decoded {
    crate::ndjson::decode(body, source, limits)
}

/// One NDJSON line through detection, as the ingest endpoints read it (the parsers' unit tests).
#[cfg(test)]
pub(crate) fn decode_detected(line: &str) -> Decoded {
    let mut out = Decoded::default();
    let source = Source::Detect { dataset: "ndjson" };
    parse_record(line.as_bytes(), 1, source, &Limits::default(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_select_their_parser() {
        let all: Vec<&str> = names().collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(all.len(), unique.len(), "{all:?}");
        for name in all {
            let parser = by_name(name).expect("registered");
            assert!(parser.name() == name || parser.aliases().contains(&name));
        }
        assert!(by_name("payments-api").is_none());
    }

    #[test]
    fn generic_is_last_and_takes_anything() {
        let last = PARSERS.last().expect("parsers");
        assert_eq!(last.name(), "generic");
        assert_eq!(detect(&Map::new()).name(), "generic");
    }

    #[test]
    fn sources_pick_named_parsers_or_detection() {
        assert!(matches!(Source::from_name(Some("eks")), Source::Named(p) if p.name() == "eks"));
        assert!(
            matches!(Source::from_name(Some("k8s-audit")), Source::Named(p) if p.name() == "kubernetes.audit")
        );
        assert!(matches!(
            Source::from_name(Some("myapp")),
            Source::Detect { dataset: "myapp" }
        ));
        assert!(matches!(
            Source::from_name(None),
            Source::Detect { dataset: "ndjson" }
        ));
        assert!(matches!(
            Source::from_name(Some("")),
            Source::Detect { dataset: "ndjson" }
        ));
    }
}
