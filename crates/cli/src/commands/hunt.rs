//! `crowsnest hunt [--rules DIR]... FILE...`: runs detection offline over files — what a
//! responder runs over an archive after a breach. Reads NDJSON of any of our input shapes,
//! Kubernetes audit `EventList`s, and every format of `crowsnest-normalize`'s parser registry
//! (Docker json-file and CRI container logs, Falco alerts, syslog; auto-detected or
//! `--format <parser>`), through the same parsers the server and the agent use; feeds every event through the same [`Detector`] the server runs (correlations included,
//! at the events' own timestamps) and prints one alert per line as NDJSON: the rule, level,
//! tags, ATT&CK techniques and the matched event(s) in full. Without `--rules` it uses the
//! built-in pack.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use crowsnest_detect::{Detection, Detector, RuleSet};
use crowsnest_model::Event;
use crowsnest_normalize::registry::{self, parse_lines, Source};
use crowsnest_normalize::{decode_k8s_audit, Limits, Parser};
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
    /// How to read the files: `auto` (by name and first line), `ndjson` (one JSON object a
    /// line, each line's shape detected), `k8s-audit` (an audit `EventList`/`Event`
    /// document), or the name of a parser (`docker`, `cri`, `falco`, `syslog`,
    /// `kubernetes.audit`, `eks`, `aks`, `gke`, `generic`; `docker-json` is `docker`).
    #[arg(long, default_value = "auto", value_parser = parse_format)]
    pub format: HuntFormat,
    /// User-defined mappings to run on every event before detection, as the server does: a
    /// VRL program (`*.vrl`, every event) or a TOML file with `[[mappings]]` entries (a server
    /// configuration file works).
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
}

/// Loads `--mapping`: a TOML file's `[[mappings]]`, or a VRL program for every event.
fn load_mappings(path: &Path) -> anyhow::Result<crowsnest_mapping::Mappings> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "toml") {
        let file: toml::Table =
            toml::from_str(&text).with_context(|| format!("invalid TOML in {}", path.display()))?;
        let configs: Vec<crowsnest_mapping::MappingConfig> = match file.get("mappings") {
            Some(entries) => entries
                .clone()
                .try_into()
                .with_context(|| format!("{}: invalid [[mappings]]", path.display()))?,
            None => anyhow::bail!("{}: no [[mappings]] entry", path.display()),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(crowsnest_mapping::Mappings::compile(&configs, Some(base))?)
    } else {
        let name = path.file_stem().map_or_else(
            || "mapping".to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        Ok(crowsnest_mapping::Mappings::from_program(&name, &text)?)
    }
}

/// File formats `hunt` reads.
#[derive(Debug, Clone, Copy)]
pub enum HuntFormat {
    /// Docker json-file by name (`*-json.log`), an audit `EventList`/`Event` document, a file
    /// of text lines a parser recognises (CRI, syslog), else NDJSON.
    Auto,
    /// One JSON object per line, each line's shape detected by the parser registry.
    Ndjson,
    /// A Kubernetes audit `EventList` or `Event` document.
    K8sAudit,
    /// Every line through this parser of the registry.
    Parser(&'static dyn Parser),
}

/// `--format`'s value: `auto`, `ndjson`, `k8s-audit`, or a parser's name or alias.
fn parse_format(name: &str) -> Result<HuntFormat, String> {
    match name {
        "auto" => Ok(HuntFormat::Auto),
        "ndjson" => Ok(HuntFormat::Ndjson),
        "k8s-audit" => Ok(HuntFormat::K8sAudit),
        other => registry::by_name(other)
            .map(HuntFormat::Parser)
            .ok_or_else(|| {
                let names: Vec<&str> = registry::names().collect();
                format!(
                    "expected auto, ndjson, k8s-audit or a parser ({}), found `{other}`",
                    names.join(", ")
                )
            }),
    }
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
    let mappings = args.mapping.as_deref().map(load_mappings).transpose()?;
    let mut mapping_failures = 0usize;
    let mut detector = Detector::new(rules);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut events, mut alerts) = (0usize, 0usize);
    for path in &args.files {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut n = 0usize;
        read_file(path, args.format, |decoded| {
            for error in &decoded.errors {
                eprintln!("{}: {error}", path.display());
            }
            for mut event in decoded.events {
                n += 1;
                if event.id().is_none() {
                    event.set("event.id", json!(format!("{name}#{n}")));
                }
                events += 1;
                if let Some(mappings) = &mappings {
                    for failure in mappings.apply(&mut event) {
                        mapping_failures += 1;
                        eprintln!("{}: event {n}: mapping {failure}", path.display());
                    }
                }
                for detection in detector.process(&event) {
                    alerts += 1;
                    serde_json::to_writer(&mut out, &alert_line(&detection, path))?;
                    out.write_all(b"\n")?;
                }
            }
            Ok(())
        })
        .with_context(|| format!("reading {}", path.display()))?;
    }
    out.flush()?;
    eprintln!("hunt: {events} events, {alerts} alerts");
    if mapping_failures > 0 {
        eprintln!(
            "hunt: a mapping failed {mapping_failures} times (those events were kept as read)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes of whole lines decoded at a time: memory stays bounded whatever the file's size.
const CHUNK_BYTES: usize = 8 << 20;

/// Opens a file, undoing gzip when it starts with the gzip magic bytes.
fn open(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    let mut file = std::io::BufReader::new(
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let gzip = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(std::io::BufReader::new(
            flate2::bufread::MultiGzDecoder::new(file),
        ))
    } else {
        Box::new(file)
    })
}

/// Appends whole lines to `chunk` until it holds `CHUNK_BYTES` or the input ends; returns the
/// number of lines read (0 at the end).
fn read_lines(reader: &mut dyn BufRead, chunk: &mut Vec<u8>, most: usize) -> anyhow::Result<usize> {
    let mut lines = 0;
    while chunk.len() < most {
        let read = reader.read_until(b'\n', chunk)?;
        if read == 0 {
            break;
        }
        lines += 1;
    }
    Ok(lines)
}

/// Reads a file chunk by chunk (a Kubernetes audit document whole), decodes it per `format` and
/// hands each chunk's events to `each`. Line numbers in errors count from the file's start.
pub fn read_file(
    path: &Path,
    format: HuntFormat,
    each: impl FnMut(Decoded) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    read_chunked(path, format, CHUNK_BYTES, each)
}

fn read_chunked(
    path: &Path,
    format: HuntFormat,
    chunk_bytes: usize,
    mut each: impl FnMut(Decoded) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut reader = open(path)?;
    let mut chunk = Vec::new();
    let mut lines = read_lines(reader.as_mut(), &mut chunk, chunk_bytes)?;
    let guessed = matches!(format, HuntFormat::Auto);
    let format = match format {
        HuntFormat::Auto => detect_format(path, &chunk),
        other => other,
    };
    if matches!(format, HuntFormat::K8sAudit) {
        reader.read_to_end(&mut chunk)?;
        let decoded = decode_file(path, &chunk, format, 0);
        // A guess from a first line that is not JSON: when the whole file is no audit
        // document either, it is NDJSON with a bad first line, and the other lines count.
        if guessed && decoded.events.is_empty() {
            return each(decode_file(path, &chunk, HuntFormat::Ndjson, 0));
        }
        return each(decoded);
    }
    let mut first_line = 0;
    while lines > 0 {
        each(decode_file(path, &chunk, format, first_line))?;
        first_line += lines;
        chunk.clear();
        lines = read_lines(reader.as_mut(), &mut chunk, chunk_bytes)?;
    }
    Ok(())
}

/// Picks the format from the file name and its first lines: Docker json-file by name, a
/// Kubernetes audit document (an `EventList`, or JSON spread over several lines), a text
/// format the registry recognises in the first line (CRI, syslog), else NDJSON (whose lines
/// the registry detects one by one: audit events, Falco alerts, json-file lines, ...).
fn detect_format(path: &Path, head: &[u8]) -> HuntFormat {
    if path.to_string_lossy().ends_with("-json.log") {
        if let Some(docker) = registry::by_name("docker") {
            return HuntFormat::Parser(docker);
        }
    }
    let first = head
        .split(|&b| b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace));
    match first.map(serde_json::from_slice::<Value>) {
        Some(Ok(Value::Object(m)))
            if m.get("kind").and_then(Value::as_str) == Some("EventList") =>
        {
            HuntFormat::K8sAudit
        }
        Some(Err(_)) if head.trim_ascii_start().starts_with(b"{") => HuntFormat::K8sAudit,
        Some(Err(_)) => first
            .and_then(|l| std::str::from_utf8(l).ok())
            .and_then(|l| registry::detect_text(l.trim_end_matches('\r')))
            .map_or(HuntFormat::Ndjson, HuntFormat::Parser),
        _ => HuntFormat::Ndjson,
    }
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

/// Decodes `body` per `format`; `first_line` is the number of lines of the file before it.
pub fn decode_file(path: &Path, body: &[u8], format: HuntFormat, first_line: usize) -> Decoded {
    let limits = Limits::default();
    let format = match format {
        HuntFormat::Auto => detect_format(path, body),
        other => other,
    };
    let from = |d: crowsnest_normalize::Decoded| Decoded {
        events: d.events,
        errors: d
            .errors
            .into_iter()
            .map(|mut e| {
                e.line += first_line;
                e.to_string()
            })
            .collect(),
    };
    let mut decoded = match format {
        HuntFormat::K8sAudit => match decode_k8s_audit(body, &limits) {
            Ok(d) => from(d),
            Err(e) => Decoded {
                events: Vec::new(),
                errors: vec![e.to_string()],
            },
        },
        HuntFormat::Parser(parser) => from(parse_lines(body, Source::Named(parser), &limits)),
        HuntFormat::Ndjson | HuntFormat::Auto => {
            from(parse_lines(body, Source::from_name(None), &limits))
        }
    };
    if let Some(id) = container_id_from_path(path) {
        for event in &mut decoded.events {
            let container_log = event.get_str("event.dataset") == Some("container.logs");
            if container_log && event.get("container.id").is_none() {
                event.set("container.id", json!(id));
                event.set("container.runtime", json!("docker"));
            }
        }
    }
    decoded
}

/// The container id in a Docker json-file path (`.../containers/<id>/<id>-json.log`).
pub fn container_id_from_path(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let id = name.strip_suffix("-json.log")?;
    (id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_json_lines_and_container_id() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let path = PathBuf::from(format!("/var/lib/docker/containers/{id}/{id}-json.log"));
        let body = b"{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00.5Z\"}\nnot json\n";
        let d = decode_file(&path, body, HuntFormat::Auto, 0);
        assert_eq!(d.events.len(), 1);
        assert_eq!(d.errors.len(), 1);
        let e = &d.events[0];
        assert_eq!(e.get_str("message"), Some("hello"));
        assert_eq!(e.get_str("container.id"), Some(id));
        assert_eq!(e.get_str("log.iostream"), Some("stdout"));
        assert_eq!(e.get_str("event.dataset"), Some("container.logs"));
        assert!(container_id_from_path(Path::new("/tmp/x-json.log")).is_none());
    }

    #[test]
    fn text_formats_are_detected_and_parsers_are_named_by_the_registry() {
        let path = PathBuf::from("/var/log/pods/ns_web_uid/web/0.log");
        let body = b"2024-05-01T10:00:00.123456789Z stdout F started\n2024-05-01T10:00:01Z stderr P half\n";
        let d = decode_file(&path, body, HuntFormat::Auto, 0);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.events.len(), 2);
        assert_eq!(d.events[0].get_str("message"), Some("started"));
        assert_eq!(d.events[1].get_str("log.iostream"), Some("stderr"));
        let syslog = b"<34>1 2024-05-01T10:00:00Z web-1 sshd 4242 - - Failed password for root\n";
        let d = decode_file(Path::new("auth.log"), syslog, HuntFormat::Auto, 0);
        assert_eq!(d.events[0].get_str("process.name"), Some("sshd"));
        let falco = br#"{"output":"Shell","priority":"Warning","rule":"Terminal shell","time":"2024-05-01T10:00:00Z"}"#;
        let d = decode_file(Path::new("events.json"), falco, HuntFormat::Auto, 0);
        assert_eq!(d.events[0].get_str("event.kind"), Some("alert"));
        let docker = parse_format("docker-json").expect("an alias");
        assert!(matches!(docker, HuntFormat::Parser(p) if p.name() == "docker"));
        assert!(parse_format("nope").is_err_and(|e| e.contains("cri")));
    }

    fn collect(path: &Path, chunk_bytes: usize) -> (Vec<Event>, Vec<String>) {
        let (mut events, mut errors) = (Vec::new(), Vec::new());
        read_chunked(path, HuntFormat::Auto, chunk_bytes, |d| {
            events.extend(d.events);
            errors.extend(d.errors);
            Ok(())
        })
        .expect("read");
        (events, errors)
    }

    #[test]
    fn files_are_read_in_chunks_gzip_or_not_with_file_line_numbers() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = String::new();
        for i in 1..=50 {
            if i == 37 {
                text.push_str("{broken\n");
            } else {
                text.push_str(&format!("{{\"message\":\"line {i}\"}}\n"));
            }
        }
        let plain = dir.path().join("app.ndjson");
        std::fs::write(&plain, &text).expect("write");
        let gz = dir.path().join("app.ndjson.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).expect("gzip");
        std::fs::write(&gz, encoder.finish().expect("gzip")).expect("write");
        for path in [&plain, &gz] {
            // 64-byte chunks: several lines per chunk, many chunks.
            let (events, errors) = collect(path, 64);
            assert_eq!(events.len(), 49, "{}", path.display());
            assert_eq!(events[48].get_str("message"), Some("line 50"));
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].starts_with("line 37:"), "{errors:?}");
        }
        // NDJSON whose first line is broken is still NDJSON.
        let first_bad = dir.path().join("first-bad.ndjson");
        std::fs::write(&first_bad, "{oops\n{\"message\":\"ok\"}\n").expect("write");
        let (events, errors) = collect(&first_bad, 64);
        assert_eq!(events.len(), 1);
        assert!(errors[0].starts_with("line 1:"), "{errors:?}");
        // A pretty-printed audit EventList is one document.
        let list = dir.path().join("audit.json");
        let doc = serde_json::to_string_pretty(&json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [
            {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a1", "stage": "ResponseComplete", "verb": "get",
             "user": {"username": "bob"}, "requestReceivedTimestamp": "2024-05-01T10:00:00Z"}]}))
        .expect("json");
        std::fs::write(&list, doc).expect("write");
        let (events, errors) = collect(&list, 64);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].get_str("event.dataset"), Some("kubernetes.audit"));
    }
}
