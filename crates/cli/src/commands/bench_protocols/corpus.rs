//! The events every protocol carries: one generated stream, kept as compact JSON text.
//!
//! The corpus is generated once, before any clock starts, from the demo generator (Kubernetes
//! audit events, container logs, process executions, the attack scenario woven in) and kept
//! as serialized JSON lines with their source and event time, so each encoder only wraps the
//! same bytes in its protocol's framing. The Kubernetes audit EventList protocol can only
//! carry audit events, so [`Corpus::audit_only`] draws the same number of audit events from
//! the same generator.

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::generate::{GenConfig, Generated, Generator};

/// Where a line came from, which is also the NDJSON endpoint's `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An `audit.k8s.io/v1` event.
    Audit,
    /// A container log line (ECS JSON).
    Logs,
    /// A process execution (ECS JSON).
    Process,
}

impl Source {
    /// The `source` parameter of `/api/v1/ingest/ndjson`.
    pub fn ndjson_source(self) -> &'static str {
        match self {
            Self::Audit => "kubernetes.audit",
            Self::Logs => "container_logs",
            Self::Process => "auditd",
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

/// The generated events, in order.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// The lines.
    pub lines: Vec<Line>,
}

fn generator(events: u64) -> Generator {
    Generator::new(GenConfig {
        seed: 23,
        start: Utc::now() - chrono::Duration::hours(6),
        events_per_second: (events as f64 / 21_600.0).max(1.0),
        attacks: true,
    })
}

fn line(record: &Generated) -> anyhow::Result<Line> {
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
    Ok(Line {
        source,
        json: serde_json::to_vec(value).context("serializing a generated event")?,
        time,
    })
}

impl Corpus {
    /// `events` events of the generator's usual mix.
    pub fn mixed(events: u64) -> anyhow::Result<Self> {
        let lines = generator(events)
            .take(events as usize)
            .map(|record| line(&record))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { lines })
    }

    /// `events` Kubernetes audit events of the same generator.
    pub fn audit_only(events: u64) -> anyhow::Result<Self> {
        let lines = generator(events)
            .filter(|record| matches!(record, Generated::K8sAudit(_)))
            .take(events as usize)
            .map(|record| line(&record))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { lines })
    }

    /// Bytes of the JSON text of every event, one newline each (the NDJSON size).
    pub fn json_bytes(&self) -> u64 {
        self.lines.iter().map(|l| l.json.len() as u64 + 1).sum()
    }

    /// Writes the corpus as NDJSON (the input of the Python clients).
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
}
