//! `crowsnest hunt [--rules DIR]... FILE...`: runs detection offline over files — what a
//! responder runs over an archive after a breach. Reads NDJSON of any of our input shapes,
//! Kubernetes audit `EventList`s and Docker json-file logs (auto-detected or `--format`),
//! feeds every event through the same [`Detector`] the server runs (correlations included,
//! at the events' own timestamps) and prints one alert per line as NDJSON: the rule, level,
//! tags, ATT&CK techniques and the matched event(s) in full. Without `--rules` it uses the
//! built-in pack.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use crowsnest_detect::{Detection, Detector, RuleSet};
use crowsnest_model::Event;
use crowsnest_normalize::{decode_k8s_audit, decode_ndjson, Limits};
use serde_json::{json, Value};

/// Flags of `crowsnest hunt`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Files to hunt through, in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Sigma rule directory or file (repeatable); without it, the built-in pack.
    #[arg(long = "rules")]
    pub rules: Vec<PathBuf>,
    /// Also load the built-in pack next to `--rules`.
    #[arg(long)]
    pub builtin: bool,
    /// How to read the files.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: HuntFormat,
}

/// File formats `hunt` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HuntFormat {
    /// Docker json-file by name (`*-json.log`) or shape (`{"log","stream","time"}`), then an
    /// audit `EventList`/`Event` document, else NDJSON.
    Auto,
    /// One JSON object per line, any input shape.
    Ndjson,
    /// A Kubernetes audit `EventList` or `Event` document.
    K8sAudit,
    /// Docker json-file log lines (container id from `/var/lib/docker/containers/<id>/`).
    DockerJson,
}

/// Runs the hunt; exit code 0 whether or not anything fired (the output says).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let builtin = args.rules.is_empty() || args.builtin;
    let (rules, report) = RuleSet::load(&args.rules, builtin);
    for file in &report.files {
        if !file.problems.is_empty() {
            eprintln!("rules: {}: {:?}", file.path.display(), file.status());
        }
    }
    eprintln!("hunt: {} rules loaded", rules.len());
    let mut detector = Detector::new(rules);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut events, mut alerts) = (0usize, 0usize);
    for path in &args.files {
        let body =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let decoded = decode_file(path, &body, args.format);
        for error in &decoded.errors {
            eprintln!("{}: {error}", path.display());
        }
        for (n, mut event) in decoded.events.into_iter().enumerate() {
            if event.id().is_none() {
                let name = path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                event.set("event.id", json!(format!("{name}#{}", n + 1)));
            }
            events += 1;
            for detection in detector.process(&event) {
                alerts += 1;
                serde_json::to_writer(&mut out, &alert_line(&detection, path))?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    eprintln!("hunt: {events} events, {alerts} alerts");
    Ok(ExitCode::SUCCESS)
}

/// One output line: the alert with its matched events in full.
pub fn alert_line(d: &Detection, file: &Path) -> Value {
    let events: Vec<Value> = d
        .events
        .iter()
        .map(|e| Value::Object(e.as_map().clone()))
        .collect();
    json!({
        "rule": {"id": d.rule_id, "title": d.title, "level": d.level},
        "tags": d.tags,
        "techniques": d.techniques,
        "timestamp": d.timestamp.map(crowsnest_model::format_timestamp),
        "correlation": d.correlation,
        "event_ids": d.event_ids,
        "events": events,
        "file": file.display().to_string(),
    })
}

/// The decoded events of one file.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Events in file order.
    pub events: Vec<Event>,
    /// Lines or items that did not decode.
    pub errors: Vec<String>,
}

fn looks_like_docker_json(path: &Path, body: &[u8]) -> bool {
    if path.to_string_lossy().ends_with("-json.log") {
        return true;
    }
    let first = body
        .split(|&b| b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace));
    match first.and_then(|l| serde_json::from_slice::<Value>(l).ok()) {
        Some(Value::Object(m)) => m.contains_key("log") && m.contains_key("stream") && m.len() <= 4,
        _ => false,
    }
}

/// Decodes `body` per `format`.
pub fn decode_file(path: &Path, body: &[u8], format: HuntFormat) -> Decoded {
    let limits = Limits::default();
    let format = match format {
        HuntFormat::Auto if looks_like_docker_json(path, body) => HuntFormat::DockerJson,
        other => other,
    };
    let from = |d: crowsnest_normalize::Decoded| Decoded {
        events: d.events,
        errors: d.errors.iter().map(ToString::to_string).collect(),
    };
    match format {
        HuntFormat::DockerJson => decode_docker_json(path, body),
        HuntFormat::K8sAudit => match decode_k8s_audit(body, &limits) {
            Ok(d) => from(d),
            Err(e) => Decoded {
                events: Vec::new(),
                errors: vec![e.to_string()],
            },
        },
        HuntFormat::Ndjson => from(decode_ndjson(body, None, &limits)),
        HuntFormat::Auto => match decode_k8s_audit(body, &limits) {
            Ok(d) if !d.events.is_empty() => from(d),
            _ => from(decode_ndjson(body, None, &limits)),
        },
    }
}

/// The container id in a Docker json-file path (`.../containers/<id>/<id>-json.log`).
pub fn container_id_from_path(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let id = name.strip_suffix("-json.log")?;
    (id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// Decodes Docker json-file lines into `container.logs` events.
pub fn decode_docker_json(path: &Path, body: &[u8]) -> Decoded {
    let container = container_id_from_path(path);
    let mut out = Decoded::default();
    for (n, line) in String::from_utf8_lossy(body).lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(format!(
                    "line {}: expected a json-file log object: {e}",
                    n + 1
                ));
                continue;
            }
        };
        let Some(log) = value.get("log").and_then(Value::as_str) else {
            out.errors
                .push(format!("line {}: expected a string `log` field", n + 1));
            continue;
        };
        let mut e = Event::new();
        if let Some(ts) = value.get("time").and_then(crowsnest_model::parse_timestamp) {
            e.set("@timestamp", json!(crowsnest_model::format_timestamp(ts)));
        }
        e.set("event.kind", json!("event"));
        e.set("event.module", json!("docker"));
        e.set("event.dataset", json!("container.logs"));
        e.set("message", json!(log.trim_end_matches(['\n', '\r'])));
        if let Some(stream) = value.get("stream").and_then(Value::as_str) {
            e.set("log.iostream", json!(stream));
        }
        if let Some(id) = &container {
            e.set("container.id", json!(id));
            e.set("container.runtime", json!("docker"));
        }
        e.set("event.original", json!(line));
        out.events.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_json_lines_and_container_id() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let path = PathBuf::from(format!("/var/lib/docker/containers/{id}/{id}-json.log"));
        let body = b"{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00.5Z\"}\nnot json\n";
        let d = decode_file(&path, body, HuntFormat::Auto);
        assert_eq!(d.events.len(), 1);
        assert_eq!(d.errors.len(), 1);
        let e = &d.events[0];
        assert_eq!(e.get_str("message"), Some("hello"));
        assert_eq!(e.get_str("container.id"), Some(id));
        assert_eq!(e.get_str("log.iostream"), Some("stdout"));
        assert_eq!(e.get_str("event.dataset"), Some("container.logs"));
        assert!(container_id_from_path(Path::new("/tmp/x-json.log")).is_none());
    }
}
