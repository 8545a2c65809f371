//! Wire encoders of the load generator: the corpus in each protocol's framing, built before
//! the clock starts so the measured senders only write bytes.
//!
//! Each encoder produces [`Encoded`]: how the items travel ([`Transport`]) and the items, each
//! a request body, a stream segment or a datagram with the number of events it carries. The
//! shapes follow what the real shippers send:
//!
//! | protocol | item |
//! |---|---|
//! | `ndjson` | an NDJSON body per source, `batch` lines |
//! | `k8s-audit` | an `audit.k8s.io/v1` `EventList` of `batch` events (what kube-apiserver's webhook batches) |
//! | `es-bulk` | a `_bulk` body of `batch` `create` actions (Beats, the Python bulk helper) |
//! | `hec-event` | `batch` concatenated HEC event objects (`time`, `host`, `sourcetype`, `event`) |
//! | `hec-raw` | `batch` raw lines |
//! | `otlp-proto`, `otlp-json` | an `ExportLogsServiceRequest` of `batch` records (the body a JSON string) |
//! | `syslog-tcp` | RFC 5424 messages, octet-counted (RFC 6587), about 64 KB per write |
//! | `syslog-udp` | one RFC 5424 message per datagram |
//! | `forward` | a PackedForward message of `batch` entries with a `chunk` id to acknowledge |
//! | `falco` | one Falco alert per request, as Falco's `http_output` sends them |

use anyhow::Context;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{json, Value};

use super::corpus::{Corpus, Line};
use super::Protocol;

/// How a protocol authenticates an HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: Splunk <token>` (HEC).
    Splunk,
}

/// How the items of a protocol travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// One HTTP POST per item.
    Http {
        /// Path and query.
        path: String,
        /// `Content-Type`.
        content_type: &'static str,
        /// Credentials scheme.
        auth: Auth,
    },
    /// Items written back to back on TCP connections to the syslog listener.
    SyslogTcp,
    /// One datagram per item to the syslog UDP listener.
    SyslogUdp,
    /// Forward protocol messages, each waiting for its `ack` before the next.
    Forward,
}

/// One unit the sender writes.
#[derive(Debug, Clone)]
pub struct Item {
    /// The bytes on the wire (body, segment, datagram or message).
    pub bytes: Vec<u8>,
    /// Events it carries.
    pub events: u64,
    /// For HTTP, the path when it differs from the transport's (NDJSON's per-source path).
    pub path: Option<String>,
    /// For forward, the chunk id the server must acknowledge.
    pub chunk: Option<String>,
}

/// A protocol's load, ready to send.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// How it travels.
    pub transport: Transport,
    /// What travels.
    pub items: Vec<Item>,
}

impl Encoded {
    /// Events in all items.
    pub fn events(&self) -> u64 {
        self.items.iter().map(|i| i.events).sum()
    }

    /// Bytes in all items (payload only: no HTTP headers, no TCP/IP overhead).
    pub fn wire_bytes(&self) -> u64 {
        self.items.iter().map(|i| i.bytes.len() as u64).sum()
    }
}

fn item(bytes: Vec<u8>, events: u64) -> Item {
    Item {
        bytes,
        events,
        path: None,
        chunk: None,
    }
}

fn http(path: &str, content_type: &'static str, auth: Auth) -> Transport {
    Transport::Http {
        path: path.to_string(),
        content_type,
        auth,
    }
}

/// Encodes `corpus` for `protocol`, `batch` events per request or message where the protocol
/// batches.
pub fn encode(protocol: Protocol, corpus: &Corpus, batch: usize) -> anyhow::Result<Encoded> {
    let batch = batch.max(1);
    let lines = &corpus.lines;
    let joined = |prefix: &[u8], each: &dyn Fn(&mut Vec<u8>, &Line), suffix: &[u8]| {
        lines
            .chunks(batch)
            .map(|chunk| {
                let mut body = prefix.to_vec();
                for (i, line) in chunk.iter().enumerate() {
                    if i > 0 && !prefix.is_empty() {
                        body.push(b',');
                    }
                    each(&mut body, line);
                }
                body.extend_from_slice(suffix);
                item(body, chunk.len() as u64)
            })
            .collect::<Vec<_>>()
    };
    let encoded = match protocol {
        Protocol::Ndjson => Encoded {
            transport: http(
                "/api/v1/ingest/ndjson",
                "application/x-ndjson",
                Auth::Bearer,
            ),
            items: ndjson(corpus, batch),
        },
        Protocol::K8sAudit => Encoded {
            transport: http("/api/v1/ingest/k8s-audit", "application/json", Auth::Bearer),
            items: joined(
                br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#,
                &|body, line| body.extend_from_slice(&line.json),
                b"]}",
            ),
        },
        Protocol::EsBulk => Encoded {
            transport: http("/es/_bulk", "application/x-ndjson", Auth::Bearer),
            items: joined(
                b"",
                &|body, line| {
                    body.extend_from_slice(b"{\"create\":{\"_index\":\"logs-bench\"}}\n");
                    body.extend_from_slice(&line.json);
                    body.push(b'\n');
                },
                b"",
            ),
        },
        Protocol::HecEvent => Encoded {
            transport: http(
                "/services/collector/event",
                "application/json",
                Auth::Splunk,
            ),
            items: joined(
                b"",
                &|body, line| {
                    let micros = line.time.timestamp_micros();
                    body.extend_from_slice(
                        format!(
                            "{{\"time\":{}.{:06},\"host\":\"bench-node\",\"sourcetype\":\"_json\",\"event\":",
                            micros.div_euclid(1_000_000),
                            micros.rem_euclid(1_000_000)
                        )
                        .as_bytes(),
                    );
                    body.extend_from_slice(&line.json);
                    body.extend_from_slice(b"}\n");
                },
                b"",
            ),
        },
        Protocol::HecRaw => Encoded {
            transport: http(
                "/services/collector/raw?sourcetype=_json&host=bench-node",
                "text/plain",
                Auth::Splunk,
            ),
            items: joined(
                b"",
                &|body, line| {
                    body.extend_from_slice(&line.json);
                    body.push(b'\n');
                },
                b"",
            ),
        },
        Protocol::OtlpProto | Protocol::OtlpJson => {
            let json = protocol == Protocol::OtlpJson;
            let mut items = Vec::new();
            for chunk in lines.chunks(batch) {
                let request = otlp_request(chunk)?;
                let bytes = match json {
                    true => serde_json::to_vec(&request).context("encoding OTLP JSON")?,
                    false => request.encode_to_vec(),
                };
                items.push(item(bytes, chunk.len() as u64));
            }
            let content_type = match json {
                true => "application/json",
                false => "application/x-protobuf",
            };
            Encoded {
                transport: http("/v1/logs", content_type, Auth::Bearer),
                items,
            }
        }
        Protocol::SyslogTcp => Encoded {
            transport: Transport::SyslogTcp,
            items: syslog_tcp(corpus),
        },
        Protocol::SyslogUdp => Encoded {
            transport: Transport::SyslogUdp,
            items: lines.iter().map(|l| item(syslog_message(l), 1)).collect(),
        },
        Protocol::Forward => Encoded {
            transport: Transport::Forward,
            items: forward(corpus, batch)?,
        },
        Protocol::Falco => Encoded {
            transport: http("/api/v1/ingest/falco", "application/json", Auth::Bearer),
            items: lines
                .iter()
                .map(|l| falco_alert(l).map(|bytes| item(bytes, 1)))
                .collect::<anyhow::Result<_>>()?,
        },
    };
    Ok(encoded)
}

/// NDJSON bodies of `batch` lines, one source per body (lines keep their order per source).
fn ndjson(corpus: &Corpus, batch: usize) -> Vec<Item> {
    let mut items = Vec::new();
    let mut pending: Vec<(super::corpus::Source, Vec<u8>, u64)> = Vec::new();
    let flush = |source: super::corpus::Source, bytes: Vec<u8>, events: u64| Item {
        path: Some(format!(
            "/api/v1/ingest/ndjson?source={}",
            source.ndjson_source()
        )),
        ..item(bytes, events)
    };
    for line in &corpus.lines {
        let index = match pending.iter().position(|p| p.0 == line.source) {
            Some(index) => index,
            None => {
                pending.push((line.source, Vec::new(), 0));
                pending.len() - 1
            }
        };
        let body = &mut pending[index];
        body.1.extend_from_slice(&line.json);
        body.1.push(b'\n');
        body.2 += 1;
        if body.2 as usize >= batch {
            let (source, bytes, events) = pending.swap_remove(index);
            items.push(flush(source, bytes, events));
        }
    }
    for (source, bytes, events) in pending {
        if events > 0 {
            items.push(flush(source, bytes, events));
        }
    }
    items
}

fn otlp_request(lines: &[Line]) -> anyhow::Result<ExportLogsServiceRequest> {
    let string = |s: &str| AnyValue {
        value: Some(any_value::Value::StringValue(s.to_string())),
    };
    let records = lines
        .iter()
        .map(|line| {
            let nanos = line.time.timestamp_nanos_opt().unwrap_or_default() as u64;
            let body = std::str::from_utf8(&line.json).context("corpus lines are UTF-8")?;
            Ok(LogRecord {
                time_unix_nano: nanos,
                observed_time_unix_nano: nanos,
                severity_number: 9,
                severity_text: "INFO".into(),
                body: Some(string(body)),
                ..Default::default()
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    KeyValue {
                        key: "service.name".into(),
                        value: Some(string("crowsnest-bench")),
                        ..Default::default()
                    },
                    KeyValue {
                        key: "host.name".into(),
                        value: Some(string("bench-node")),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

/// One RFC 5424 message: facility local0, severity info, the event's JSON as the message.
fn syslog_message(line: &Line) -> Vec<u8> {
    let mut message = format!(
        "<134>1 {} bench-node crowsnest-bench - - - ",
        line.time
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
    .into_bytes();
    message.extend_from_slice(&line.json);
    message
}

/// Octet-counted messages (`LEN SP MSG`), cut into segments of about 64 KB.
fn syslog_tcp(corpus: &Corpus) -> Vec<Item> {
    const SEGMENT: usize = 64 * 1024;
    let mut items = Vec::new();
    let mut current = item(Vec::with_capacity(SEGMENT + 4096), 0);
    for line in &corpus.lines {
        let message = syslog_message(line);
        current
            .bytes
            .extend_from_slice(format!("{} ", message.len()).as_bytes());
        current.bytes.extend_from_slice(&message);
        current.events += 1;
        if current.bytes.len() >= SEGMENT {
            items.push(std::mem::replace(
                &mut current,
                item(Vec::with_capacity(SEGMENT + 4096), 0),
            ));
        }
    }
    if current.events > 0 {
        items.push(current);
    }
    items
}

/// PackedForward messages: `[tag, bin(entries), {"chunk": id, "size": n}]`, each entry
/// `[EventTime, record]` as Fluent Bit writes them.
fn forward(corpus: &Corpus, batch: usize) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    for (n, chunk) in corpus.lines.chunks(batch).enumerate() {
        let mut entries = Vec::new();
        for line in chunk {
            let record: Value =
                serde_json::from_slice(&line.json).context("re-reading a corpus line")?;
            // fixarray of 2, then EventTime: fixext8 of type 0, seconds and nanoseconds.
            entries.extend_from_slice(&[0x92, 0xd7, 0x00]);
            let secs = line.time.timestamp().clamp(0, i64::from(u32::MAX)) as u32;
            entries.extend_from_slice(&secs.to_be_bytes());
            entries.extend_from_slice(&line.time.timestamp_subsec_nanos().to_be_bytes());
            rmp_serde::encode::write(&mut entries, &record).context("encoding a record")?;
        }
        let id = format!("bench-chunk-{n}");
        let message = rmpv::Value::Array(vec![
            rmpv::Value::from("bench.logs"),
            rmpv::Value::Binary(entries),
            rmpv::Value::Map(vec![
                (rmpv::Value::from("chunk"), rmpv::Value::from(id.as_str())),
                (rmpv::Value::from("size"), rmpv::Value::from(chunk.len())),
            ]),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &message).context("encoding a forward message")?;
        items.push(Item {
            chunk: Some(id),
            ..item(bytes, chunk.len() as u64)
        });
    }
    Ok(items)
}

/// A Falco alert about the event: its JSON as `output`, its time, namespace and container as
/// output fields.
fn falco_alert(line: &Line) -> anyhow::Result<Vec<u8>> {
    let event: Value = serde_json::from_slice(&line.json).context("re-reading a corpus line")?;
    let time = line
        .time
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let namespace = event["kubernetes"]["namespace"]
        .as_str()
        .or_else(|| event["objectRef"]["namespace"].as_str());
    let mut fields = json!({
        "evt.time": line.time.timestamp_nanos_opt().unwrap_or_default(),
        "k8s.ns.name": namespace,
        "container.id": event["container"]["id"],
        "proc.name": event["process"]["name"],
    });
    if let Some(map) = fields.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    let output = String::from_utf8_lossy(&line.json);
    serde_json::to_vec(&json!({
        "output": format!("{time}: Notice bench event {output}"),
        "priority": "Notice",
        "rule": "Bench event",
        "time": time,
        "source": "syscall",
        "hostname": "bench-node",
        "tags": ["bench"],
        "output_fields": fields,
    }))
    .context("encoding a Falco alert")
}

#[cfg(test)]
mod tests;
