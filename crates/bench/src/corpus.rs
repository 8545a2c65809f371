//! The events every benchmark sends: the generated cluster activity ([`crowsnest_gen`]) as
//! compact JSON lines, and the NDJSON request bodies they travel in.
//!
//! A corpus is generated before any clock starts (Kubernetes audit events, container logs,
//! process executions, the attack scenario woven in) and kept as serialized JSON lines with
//! their source and event time, so each benchmark and each protocol encoder only wraps the
//! same bytes. The Kubernetes audit EventList protocol can only carry audit events, so
//! [`Corpus::audit_only`] draws the same number of audit events from the same generator.
//! `crowsnest bench` streams (a million events do not need to sit in memory): it takes the
//! lines from [`lines`] and cuts them into bodies with a [`Batcher`] while the server runs.

use anyhow::Context;
use chrono::{DateTime, Utc};
use crowsnest_client::Client;
use crowsnest_gen::{GenConfig, Generated, Generator};
use crowsnest_model::Event;

/// Where a line came from, which is also the NDJSON endpoint's `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An `audit.k8s.io/v1` event.
    Audit,
    /// A container log line (ECS JSON).
    Logs,
    /// A process execution (ECS JSON).
    Process,
    /// A line of the foreign corpus ([`crate::foreign`]): no `source`, the server detects
    /// each line's shape, as it does for `crowsnest ingest FILE`.
    Foreign,
}

impl Source {
    /// The `source` parameter of `/api/v1/ingest/ndjson`.
    pub fn ndjson_source(self) -> &'static str {
        match self {
            Self::Audit => "kubernetes.audit",
            Self::Logs => "container_logs",
            Self::Process => "auditd",
            Self::Foreign => "",
        }
    }

    /// The `source` to decode a line with: none for [`Source::Foreign`] (detected).
    pub fn source_param(self) -> Option<&'static str> {
        Some(self.ndjson_source()).filter(|s| !s.is_empty())
    }

    /// The NDJSON endpoint with this source, the path a body of these lines is posted to.
    pub fn ndjson_path(self) -> String {
        match self.source_param() {
            Some(source) => format!("/api/v1/ingest/ndjson?source={source}"),
            None => "/api/v1/ingest/ndjson".to_owned(),
        }
    }
}

/// One event of the corpus.
#[derive(Debug, Clone)]
pub struct Line {
    /// Its source.
    pub source: Source,
    /// Compact JSON text of the event, no newline.
    pub json: Vec<u8>,
    /// Its event time.
    pub time: DateTime<Utc>,
}

impl Line {
    /// The line of a generated record.
    ///
    /// # Errors
    ///
    /// When the record cannot be serialized (it always can).
    pub fn of(record: &Generated) -> anyhow::Result<Self> {
        let (source, time_key) = match record {
            Generated::K8sAudit(_) => (Source::Audit, "requestReceivedTimestamp"),
            Generated::Ndjson {
                source: "auditd", ..
            } => (Source::Process, "@timestamp"),
            Generated::Ndjson { .. } => (Source::Logs, "@timestamp"),
        };
        let value = record.value();
        let time = value[time_key]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
        Ok(Self {
            source,
            json: serde_json::to_vec(value).context("serializing a generated event")?,
            time,
        })
    }
}

/// The generated stream of `seed` at the rate that spreads `events` events over the `span`
/// before now, as lines (endless: take what you need). Each benchmark keeps its own seed and
/// span, so its corpus stays the same from run to run but for the dates.
pub fn lines(
    seed: u64,
    events: u64,
    span: chrono::Duration,
) -> impl Iterator<Item = anyhow::Result<Line>> {
    let secs = span.num_seconds().max(1) as f64;
    Generator::new(GenConfig {
        seed,
        start: Utc::now() - span,
        events_per_second: (events as f64 / secs).max(1.0),
        attacks: true,
    })
    .map(|record| Line::of(&record))
}

/// `n` as a count of items to take.
pub(crate) fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The generated events, in order.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// The lines.
    pub lines: Vec<Line>,
    /// The lines normalized, once asked for.
    events: std::sync::OnceLock<Vec<Event>>,
}

impl Corpus {
    /// `events` events of the generator's usual mix (seed 23, over the last six hours).
    ///
    /// # Errors
    ///
    /// When an event cannot be serialized.
    pub fn mixed(events: u64) -> anyhow::Result<Self> {
        Self::generate(23, events)
    }

    /// `events` events of the usual mix from `seed`, over the last six hours.
    ///
    /// # Errors
    ///
    /// When an event cannot be serialized.
    pub fn generate(seed: u64, events: u64) -> anyhow::Result<Self> {
        let lines = lines(seed, events, chrono::Duration::hours(6))
            .take(count(events))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            lines,
            events: Default::default(),
        })
    }

    /// `events` Kubernetes audit events of the same generator as [`Corpus::mixed`].
    ///
    /// # Errors
    ///
    /// When an event cannot be serialized.
    pub fn audit_only(events: u64) -> anyhow::Result<Self> {
        let lines = lines(23, events, chrono::Duration::hours(6))
            .filter(|line| !matches!(line, Ok(line) if line.source != Source::Audit))
            .take(count(events))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            lines,
            events: Default::default(),
        })
    }

    /// Bytes of the JSON text of every event, one newline each (the NDJSON size).
    pub fn json_bytes(&self) -> u64 {
        self.lines.iter().map(|l| l.json.len() as u64 + 1).sum()
    }

    /// The NDJSON bodies of the corpus (see [`Batcher`]).
    pub fn bodies(&self, max_bytes: usize, max_events: u64) -> Vec<Body> {
        let mut batcher = Batcher::new(max_bytes, max_events);
        let mut bodies: Vec<Body> = self
            .lines
            .iter()
            .filter_map(|line| batcher.push(line))
            .collect();
        bodies.extend(batcher.finish());
        bodies
    }

    /// The events as the server stores them: every line through decode + normalize, in
    /// order (decoded on the first call, kept for the next).
    ///
    /// # Errors
    ///
    /// When a line does not decode to exactly one event (a generator or normalizer bug).
    pub fn events(&self) -> anyhow::Result<&[Event]> {
        if let Some(events) = self.events.get() {
            return Ok(events);
        }
        let limits = crowsnest_normalize::Limits::default();
        let mut events = Vec::with_capacity(self.lines.len());
        for (n, line) in self.lines.iter().enumerate() {
            let source = line.source.ndjson_source();
            let decoded =
                crowsnest_normalize::decode_ndjson(&line.json, line.source.source_param(), &limits);
            if let Some(error) = decoded.errors.first() {
                anyhow::bail!("generated line {n} ({source}) does not decode: {error}");
            }
            let mut decoded = decoded.events.into_iter();
            match (decoded.next(), decoded.next()) {
                (Some(event), None) => events.push(event),
                _ => anyhow::bail!("generated line {n} ({source}) is not one event"),
            }
        }
        Ok(self.events.get_or_init(|| events))
    }

    /// Writes the corpus as NDJSON (the input of the Python clients and of `rsigma`).
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write_ndjson(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use std::io::Write;
        let file = std::fs::File::create(path)
            .with_context(|| format!("creating `{}`", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        for line in &self.lines {
            out.write_all(&line.json)?;
            out.write_all(b"\n")?;
        }
        out.flush()
            .with_context(|| format!("writing `{}`", path.display()))
    }
}

/// One NDJSON request body: lines of one source.
#[derive(Debug, Clone)]
pub struct Body {
    /// The source of every line.
    pub source: Source,
    /// The lines, each ending in a newline.
    pub bytes: Vec<u8>,
    /// Lines in the body.
    pub events: u64,
}

impl Body {
    /// Posts the body to the NDJSON endpoint with its source, retrying while the server
    /// pushes back, and checks that every line was accepted; returns the lines.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached, refuses the body or accepts fewer lines.
    pub fn post(&self, client: &Client) -> anyhow::Result<u64> {
        let answer = client.post_bytes(
            &self.source.ndjson_path(),
            "application/x-ndjson",
            false,
            &self.bytes,
            1000,
        )?;
        let accepted = answer["accepted"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            accepted == self.events,
            "server accepted {accepted} of {} events: {answer}",
            self.events
        );
        Ok(accepted)
    }
}

/// Cuts lines into NDJSON bodies the way a shipper does: one open body per source (the
/// stream interleaves sources, and cutting at every change of source made most bodies a few
/// events long), closed when it reaches `max_bytes` or `max_events`; the lines of a source
/// keep their order.
#[derive(Debug)]
pub struct Batcher {
    open: Vec<Body>,
    max_bytes: usize,
    max_events: u64,
}

impl Batcher {
    /// A batcher closing bodies at `max_bytes` bytes or `max_events` lines, whichever first.
    pub fn new(max_bytes: usize, max_events: u64) -> Self {
        Self {
            open: Vec::new(),
            max_bytes: max_bytes.max(1),
            max_events: max_events.max(1),
        }
    }

    /// Adds a line; returns the body it completed, if it did.
    pub fn push(&mut self, line: &Line) -> Option<Body> {
        let index = match self.open.iter().position(|b| b.source == line.source) {
            Some(index) => index,
            None => {
                self.open.push(Body {
                    source: line.source,
                    bytes: Vec::with_capacity(self.max_bytes.min(4 << 20) + 4096),
                    events: 0,
                });
                self.open.len() - 1
            }
        };
        let body = &mut self.open[index];
        body.bytes.extend_from_slice(&line.json);
        body.bytes.push(b'\n');
        body.events += 1;
        (body.bytes.len() >= self.max_bytes || body.events >= self.max_events)
            .then(|| self.open.swap_remove(index))
    }

    /// The bodies still open, the last of each source.
    pub fn finish(self) -> Vec<Body> {
        self.open.into_iter().filter(|b| b.events > 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mixed_corpus_has_every_source_and_valid_json() {
        let corpus = Corpus::mixed(500).expect("corpus");
        assert_eq!(corpus.lines.len(), 500);
        for source in [Source::Audit, Source::Logs, Source::Process] {
            assert!(
                corpus.lines.iter().any(|l| l.source == source),
                "{source:?}"
            );
        }
        for line in &corpus.lines {
            let value: serde_json::Value = serde_json::from_slice(&line.json).expect("json");
            assert!(value.is_object());
        }
        assert!(corpus.json_bytes() > 500 * 100);
    }

    #[test]
    fn the_audit_corpus_holds_only_audit_events() {
        let corpus = Corpus::audit_only(300).expect("corpus");
        assert_eq!(corpus.lines.len(), 300);
        assert!(corpus.lines.iter().all(|l| l.source == Source::Audit));
    }

    #[test]
    fn bodies_hold_one_source_each_and_every_line_once() {
        let corpus = Corpus::mixed(1_000).expect("corpus");
        let bodies = corpus.bodies(usize::MAX, 100);
        assert_eq!(bodies.iter().map(|b| b.events).sum::<u64>(), 1_000);
        assert!(bodies.iter().all(|b| b.events <= 100));
        let bytes: u64 = bodies.iter().map(|b| b.bytes.len() as u64).sum();
        assert_eq!(bytes, corpus.json_bytes());
        for body in &bodies {
            let lines = body.bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty());
            assert_eq!(lines.count() as u64, body.events);
        }
        // A body closes at the line that reaches the byte limit: without it, it is below.
        for body in corpus.bodies(2_000, u64::MAX) {
            let last = body.bytes[..body.bytes.len() - 1]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            assert!(last < 2_000, "{last}");
        }
    }

    #[test]
    fn every_line_normalizes_to_one_event() {
        let corpus = Corpus::mixed(600).expect("corpus");
        let events = corpus.events().expect("events");
        assert_eq!(events.len(), 600);
        assert!(events
            .iter()
            .any(|e| e.get_str("event.dataset") == Some("kubernetes.audit")));
    }
}
