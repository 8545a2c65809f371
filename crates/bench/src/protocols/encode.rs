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
//! | `hec-event` | `batch` concatenated HEC event objects (`time`, `host`, `source`, `sourcetype`, `event`) |
//! | `hec-raw` | `batch` raw lines |
//! | `otlp-proto`, `otlp-json` | an `ExportLogsServiceRequest` of `batch` records (resource attributes, body, attributes) |
//! | `syslog-tcp` | RFC 5424 messages, octet-counted (RFC 6587), about 64 KB per write |
//! | `syslog-udp` | one RFC 5424 message per datagram |
//! | `forward` | a PackedForward message of `batch` entries with a `chunk` id to acknowledge |
//! | `falco` | one Falco alert per request, as Falco's `http_output` sends them |
//!
//! `es-bulk`, `hec-event`, `otlp-*` and `syslog-*` carry the events as the server stores them
//! (each line decoded and normalized first), encoded by `crowsnest-output`'s encoders: the
//! bytes crowsnest's own `elasticsearch`, `splunk_hec`, `otlp` and `syslog` outputs send, so a
//! crowsnest forwarding to another is the load. The others wrap the generated lines as their
//! sources send them.

use anyhow::Context;
use crowsnest_model::Event;
use crowsnest_output::elasticsearch::{encode_bulk, IndexPattern};
use crowsnest_output::{otlp, splunk, syslog, OtlpEncoding, SplunkHecConfig, SyslogFormat};
use serde::Serialize;
use serde_json::{json, Value};

use crate::corpus::{Corpus, Line};

/// The host name the encoders put where a protocol wants one and the event has none.
const HOST: &str = "bench-node";

/// An input protocol of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// `POST /api/v1/ingest/ndjson`.
    Ndjson,
    /// `POST /api/v1/ingest/k8s-audit` with `EventList` bodies.
    K8sAudit,
    /// Elasticsearch `_bulk`.
    EsBulk,
    /// Splunk HEC event endpoint, batched objects.
    HecEvent,
    /// Splunk HEC raw endpoint.
    HecRaw,
    /// OTLP/HTTP logs, protobuf.
    OtlpProto,
    /// OTLP/HTTP logs, JSON.
    OtlpJson,
    /// Syslog over TCP, octet-counted RFC 5424.
    SyslogTcp,
    /// Syslog over UDP.
    SyslogUdp,
    /// Fluent forward, PackedForward with `chunk` acks.
    Forward,
    /// Falco webhook, one alert per request.
    Falco,
}

impl Protocol {
    /// Every protocol, in table order.
    pub const ALL: [Protocol; 11] = [
        Self::Ndjson,
        Self::K8sAudit,
        Self::EsBulk,
        Self::HecEvent,
        Self::HecRaw,
        Self::OtlpProto,
        Self::OtlpJson,
        Self::SyslogTcp,
        Self::SyslogUdp,
        Self::Forward,
        Self::Falco,
    ];

    /// The flag value, e.g. `es-bulk`.
    pub fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

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
        Protocol::EsBulk => {
            let index = IndexPattern::parse("logs-bench").map_err(anyhow::Error::msg)?;
            Encoded {
                transport: http("/es/_bulk", "application/x-ndjson", Auth::Bearer),
                items: batches(corpus.events()?, batch, |events| {
                    Ok(encode_bulk(events, &index, &index))
                })?,
            }
        }
        Protocol::HecEvent => {
            let hec = SplunkHecConfig {
                url: String::new(),
                token: String::new(),
                index: None,
                sourcetype: Some("_json".into()),
                source: None,
                tls: Default::default(),
            };
            Encoded {
                transport: http(splunk::EVENT_PATH, "application/json", Auth::Splunk),
                items: batches(corpus.events()?, batch, |events| {
                    Ok(splunk::encode_batch(events, &hec))
                })?,
            }
        }
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
            let encoding = match protocol {
                Protocol::OtlpJson => OtlpEncoding::Json,
                _ => OtlpEncoding::Protobuf,
            };
            let mut content_type = "application/x-protobuf";
            let items = batches(corpus.events()?, batch, |events| {
                let (body, kind) = otlp::encode_body(events, encoding)?;
                content_type = kind;
                Ok(body)
            })?;
            Encoded {
                transport: http("/v1/logs", content_type, Auth::Bearer),
                items,
            }
        }
        Protocol::SyslogTcp => Encoded {
            transport: Transport::SyslogTcp,
            items: syslog_tcp(&syslog_messages(corpus)?),
        },
        Protocol::SyslogUdp => Encoded {
            transport: Transport::SyslogUdp,
            items: syslog_messages(corpus)?
                .into_iter()
                .map(|message| item(message.into_bytes(), 1))
                .collect(),
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
    corpus
        .bodies(usize::MAX, batch as u64)
        .into_iter()
        .map(|body| Item {
            path: Some(body.source.ndjson_path()),
            ..item(body.bytes, body.events)
        })
        .collect()
}

/// One item per `batch` events, its bytes from `encode`.
fn batches(
    events: &[Event],
    batch: usize,
    mut encode: impl FnMut(&[Event]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<Item>> {
    events
        .chunks(batch)
        .map(|chunk| Ok(item(encode(chunk)?, chunk.len() as u64)))
        .collect()
}

/// One RFC 5424 message per event, as crowsnest's syslog output writes them: facility
/// local0, app name `crowsnest-bench`, the event's JSON as the message.
fn syslog_messages(corpus: &Corpus) -> anyhow::Result<Vec<String>> {
    let header = syslog::Header {
        facility: 16,
        app_name: "crowsnest-bench".into(),
        hostname: HOST.into(),
        format: SyslogFormat::Rfc5424,
    };
    Ok(corpus.events()?.iter().map(|e| header.encode(e)).collect())
}

/// Octet-counted messages (`LEN SP MSG`), cut into segments of about 64 KB.
fn syslog_tcp(messages: &[String]) -> Vec<Item> {
    const SEGMENT: usize = 64 * 1024;
    let mut items = Vec::new();
    let mut current = item(Vec::with_capacity(SEGMENT + 4096), 0);
    for message in messages {
        current
            .bytes
            .extend_from_slice(&syslog::octet_counted(message));
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
        "hostname": HOST,
        "tags": ["bench"],
        "output_fields": fields,
    }))
    .context("encoding a Falco alert")
}

#[cfg(test)]
mod tests;
