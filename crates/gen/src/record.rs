//! The generator's output: one record in the shape its real source sends it.

/// One generated record, in the shape its real source sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum Generated {
    /// An `audit.k8s.io/v1` `Event` (stage `ResponseComplete`), for the Kubernetes audit
    /// endpoint.
    K8sAudit(serde_json::Value),
    /// One ECS-shaped JSON object for the NDJSON endpoint.
    Ndjson {
        /// The stream it belongs to, also its `event.dataset`: `container_logs` or `auditd`.
        source: &'static str,
        /// The object.
        line: serde_json::Value,
    },
}

impl Generated {
    /// The ingest request that carries this record: the NDJSON endpoint with its source.
    pub fn ingest_path(&self) -> &'static str {
        match self {
            Self::K8sAudit(_) => "/api/v1/ingest/ndjson?source=kubernetes.audit",
            Self::Ndjson {
                source: "auditd", ..
            } => "/api/v1/ingest/ndjson?source=auditd",
            Self::Ndjson { .. } => "/api/v1/ingest/ndjson?source=container_logs",
        }
    }

    /// The JSON object, whichever kind of record it is.
    pub fn value(&self) -> &serde_json::Value {
        match self {
            Self::K8sAudit(value) | Self::Ndjson { line: value, .. } => value,
        }
    }
}
