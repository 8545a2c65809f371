//! `crowsnest search 'QUERY' --since 1h [--format table|json|ndjson]`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::client::ServerArgs;

/// Flags of `crowsnest search`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The query, e.g. `kubernetes.namespace:prod AND NOT user.name:system\:* | stats count() by user.name`.
    pub query: String,
    /// Only events newer than this: a duration like 30s, 15m, 6h, 7d or 1h30m.
    #[arg(long, value_parser = super::parse_duration, conflicts_with = "start")]
    pub since: Option<std::time::Duration>,
    /// Start time, RFC 3339.
    #[arg(long)]
    pub start: Option<DateTime<Utc>>,
    /// End time, RFC 3339.
    #[arg(long)]
    pub end: Option<DateTime<Utc>>,
    /// Most events (or rows) to print.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Events (or rows) to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The server's whole response.
    Json,
    /// One event (or row object) per line.
    Ndjson,
}

/// Runs the search and prints it.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    let start = match (args.start, args.since) {
        (Some(start), _) => Some(start),
        (None, Some(since)) => Some(
            crowsnest_model::duration::before(Utc::now(), since)
                .context("`--since` reaches before the earliest time there is")?,
        ),
        (None, None) => None,
    };
    let request = json!({
        "query": args.query,
        "start": start.map(|t| t.to_rfc3339()),
        "end": args.end.map(|t| t.to_rfc3339()),
        "limit": args.limit,
        "offset": args.offset,
    });
    let response = client.post_json("/api/v1/search", &request)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    render(&response, args.format, &mut out).context("writing the results")?;
    // What the answer leaves out (an aggregation over values without columns), on stderr so
    // that the table, NDJSON or JSON on stdout stays as it is.
    for warning in response["warnings"].as_array().into_iter().flatten() {
        if let Some(warning) = warning.as_str() {
            eprintln!("warning: {warning}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a search response in the chosen format.
pub fn render(response: &Value, format: Format, out: &mut impl Write) -> std::io::Result<()> {
    let total = response["total"].as_u64().unwrap_or(0);
    let columns: Option<Vec<String>> = response["columns"].as_array().map(|c| {
        c.iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    });
    let empty = Vec::new();
    match format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(response).unwrap_or_default()
        ),
        Format::Ndjson => {
            match &columns {
                Some(columns) => {
                    for row in response["rows"].as_array().unwrap_or(&empty) {
                        let object: serde_json::Map<String, Value> = columns
                            .iter()
                            .cloned()
                            .zip(row.as_array().unwrap_or(&empty).iter().cloned())
                            .collect();
                        writeln!(out, "{}", Value::Object(object))?;
                    }
                }
                None => {
                    for hit in response["hits"].as_array().unwrap_or(&empty) {
                        writeln!(out, "{hit}")?;
                    }
                }
            }
            Ok(())
        }
        Format::Table => {
            let (header, rows): (Vec<String>, Vec<Vec<String>>) = match &columns {
                Some(columns) => (
                    columns.clone(),
                    response["rows"]
                        .as_array()
                        .unwrap_or(&empty)
                        .iter()
                        .map(|row| row.as_array().unwrap_or(&empty).iter().map(cell).collect())
                        .collect(),
                ),
                None => {
                    let header = vec![
                        "@timestamp".to_string(),
                        "event.dataset".to_string(),
                        "message".to_string(),
                    ];
                    let rows = response["hits"]
                        .as_array()
                        .unwrap_or(&empty)
                        .iter()
                        .map(|hit| header.iter().map(|f| cell(lookup(hit, f))).collect())
                        .collect();
                    (header, rows)
                }
            };
            write_table(out, &header, &rows)?;
            writeln!(
                out,
                "({total} matching event{})",
                if total == 1 { "" } else { "s" }
            )
        }
    }
}

fn lookup<'a>(value: &'a Value, path: &str) -> &'a Value {
    if let Some(v) = value.get(path) {
        return v;
    }
    let mut current = value;
    for segment in path.split('.') {
        current = &current[segment];
    }
    current
}

fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > 120 {
        let mut short: String = flat.chars().take(119).collect();
        short.push('…');
        short
    } else {
        flat
    }
}

fn write_table(
    out: &mut impl Write,
    header: &[String],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(value.chars().count());
            }
        }
    }
    let line = |out: &mut dyn Write, cells: &[String]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, value) in cells.iter().enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                text.push_str(value);
            } else {
                text.push_str(&format!("{value:<width$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, header)?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(out, &rule)?;
    for row in rows {
        line(out, row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(response: &Value, format: Format) -> String {
        let mut out = Vec::new();
        render(response, format, &mut out).expect("render");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn tables_for_rows_and_hits() {
        let stats = json!({"total": 7, "hits": [], "columns": ["user.name", "count"], "rows": [["alice", 5], ["bob", 2]]});
        let text = rendered(&stats, Format::Table);
        assert_eq!(
            text,
            "user.name  count\n---------  -----\nalice      5\nbob        2\n(7 matching events)\n"
        );
        let hits = json!({"total": 1, "hits": [{"@timestamp": "2024-05-01T10:00:00Z", "event": {"dataset": "app"}, "message": "hello\nworld"}]});
        let text = rendered(&hits, Format::Table);
        assert!(
            text.contains("2024-05-01T10:00:00Z  app            hello world"),
            "{text}"
        );
        assert!(text.ends_with("(1 matching event)\n"));
    }

    #[test]
    fn ndjson_rows_become_objects() {
        let stats = json!({"total": 2, "columns": ["ns", "count"], "rows": [["prod", 2]]});
        assert_eq!(
            rendered(&stats, Format::Ndjson),
            "{\"ns\":\"prod\",\"count\":2}\n"
        );
    }
}
