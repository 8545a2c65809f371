//! The report: HTML (with print CSS), the evidence JSON, an optional PDF printed by headless
//! Chromium, and a manifest with the SHA-256 of each file.
//!
//! Regenerating a report of the same evaluation gives identical bytes: no wall-clock time is
//! written (the generation time is given by the caller; by default the period end), every list
//! is in a fixed order, and the PDF's creation dates and document id, which Chromium takes from
//! the clock, are rewritten in place (same length, so the PDF's offsets stay valid) from the
//! generation time and the HTML's digest.
//!
//! Why Chromium and not a PDF library: `typst` in process costs a 13-minute cold build and about
//! 40 MB of binary; `krilla` builds quickly but has no layout engine, so tables would be laid
//! out by hand. The HTML is the report; Chromium prints it with selectable text where it is
//! installed, and the PDF is skipped with a message elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Evaluation, Status};

/// File names inside the output directory.
pub const HTML_FILE: &str = "report.html";
/// The evaluation as JSON.
pub const EVIDENCE_FILE: &str = "evidence.json";
/// The printed report.
pub const PDF_FILE: &str = "report.pdf";
/// The digests.
pub const MANIFEST_FILE: &str = "manifest.json";

const CSS: &str = r#"
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #111; margin: 2em; }
h1 { font-size: 16pt; margin-bottom: 0.2em; }
h2 { font-size: 13pt; margin-top: 1.5em; border-bottom: 1px solid #999; }
h3 { font-size: 11pt; margin: 1em 0 0.3em; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 3px 5px; text-align: left; vertical-align: top; }
th { background: #eee; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; word-break: break-all; }
.status { font-weight: bold; white-space: nowrap; }
.evidence { color: #16632d; } .violation { color: #a11; } .gap { color: #8a5a00; } .attest { color: #444; }
.meta td:first-child { width: 12em; font-weight: bold; }
.control { page-break-inside: avoid; break-inside: avoid; }
.accepted { background: #fff6d6; padding: 2px 4px; }
@media print {
  body { margin: 0; font-size: 9pt; }
  @page { size: A4; margin: 15mm 12mm; }
  h2 { page-break-after: avoid; break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// One file of a report and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// File name in the output directory.
    pub file: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// `manifest.json`: what the report covers and the digest of each file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Framework id.
    pub framework: String,
    /// Framework version.
    pub version: String,
    /// Period start.
    pub from: DateTime<Utc>,
    /// Period end.
    pub to: DateTime<Utc>,
    /// Scope label.
    pub scope: String,
    /// Generation time written in the report.
    pub generated_at: DateTime<Utc>,
    /// The files, in a fixed order (HTML, evidence JSON, PDF when made).
    pub files: Vec<ManifestEntry>,
    /// Why there is no PDF, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdf_skipped: Option<String>,
}

/// Whether to print a PDF.
#[derive(Debug, Clone)]
pub enum Pdf {
    /// No PDF.
    Skip,
    /// With the first of `chromium`, `chromium-browser`, `google-chrome` found on `PATH`.
    Auto,
    /// With this browser binary.
    With(PathBuf),
}

/// What [`write`] made.
#[derive(Debug, Clone)]
pub struct Written {
    /// The manifest (also written as `manifest.json`).
    pub manifest: Manifest,
    /// Where the PDF is, when it was made.
    pub pdf: Option<PathBuf>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn status(s: Status) -> Markup {
    html! { span class={"status " (s.class())} { (s.label()) } }
}

/// The evaluation as indented JSON (the evidence file).
pub fn evidence_json(evaluation: &Evaluation) -> String {
    let mut text = serde_json::to_string_pretty(evaluation).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

/// The report as one HTML page (print CSS inline; no scripts, no external resources).
pub fn html(evaluation: &Evaluation, generated_at: DateTime<Utc>) -> String {
    let e = evaluation;
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (e.framework.name) " " (e.framework.version) " compliance report" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { (e.framework.name) " " (e.framework.version) ": compliance status per control" }
                table class="meta" {
                    tr { td { "Framework" } td { (e.framework.name) " " (e.framework.version) " (" code { (e.framework.id) } ")" } }
                    tr { td { "Period" } td { (time(e.from)) " to " (time(e.to)) " (end exclusive)" } }
                    tr { td { "Scope" } td { (e.scope.label()) } }
                    tr { td { "Generated at" } td { (time(generated_at)) } }
                    tr { td { "Generated by" } td { "crowsnest " (env!("CARGO_PKG_VERSION")) } }
                }
                p {
                    "Control summaries are crowsnest's own one-line paraphrases, not the framework's text. "
                    "Each status comes from the queries shown, run over the stored events of the period: "
                    "every query can be run again with " code { "crowsnest search" } "."
                }
                h2 { "Summary" }
                table {
                    tr { th { "Status" } th { "Controls" } }
                    @for (label, count) in &e.summary {
                        tr { td { (label) } td { (count) } }
                    }
                }
                h2 { "Sources in the period" }
                @if e.sources.is_empty() {
                    p { "No events in the period and scope." }
                } @else {
                    table {
                        tr { th { "Source (event.dataset)" } th { "Events" } th { "Newest" } }
                        @for s in &e.sources {
                            tr { td { code { (s.dataset) } } td { (s.events) } td { (s.newest.map(time).unwrap_or_default()) } }
                        }
                    }
                }
                h2 { "Controls" }
                table {
                    tr { th { "Control" } th { "Summary" } th { "Status" } th { "NIST SP 800-53 r5" } }
                    @for c in &e.controls {
                        tr {
                            td { a href={"#c-" (c.id)} { (c.id) } }
                            td { (c.summary) }
                            td { (status(c.status)) @if c.accepted.is_some() { " (risk accepted)" } }
                            td { (c.nist.join(", ")) }
                        }
                    }
                }
                h2 { "Evidence per control" }
                @for c in &e.controls {
                    div class="control" id={"c-" (c.id)} {
                        h3 { (c.id) ": " (status(c.status)) }
                        p { (c.summary) }
                        @if let Some(a) = &c.accepted {
                            p class="accepted" {
                                "Risk accepted until " (time(a.expires))
                                @if a.expired { " (expired before the period end)" }
                                ": " (a.reason)
                            }
                        }
                        @if c.checks.is_empty() {
                            p { "Not evaluable by a SIEM: the organisation attests this control with its own records." }
                        }
                        @for check in &c.checks {
                            p { code { (check.check) } " " (status(check.status)) ": " (check.finding) }
                            @if !check.queries.is_empty() {
                                table {
                                    tr { th { "Query" } th { "Range" } th { "Count" } th { "Sample event ids" } }
                                    @for q in &check.queries {
                                        tr {
                                            td { code { (q.query) } }
                                            td { (q.from.map(time).unwrap_or_else(|| "beginning".into())) " to " (q.to.map(time).unwrap_or_default()) }
                                            td { (q.count) }
                                            td { code { (q.sample_ids.join(" ")) } }
                                        }
                                    }
                                }
                            }
                            @if !check.figures.is_empty() {
                                table {
                                    @for (k, v) in &check.figures {
                                        tr { td { (k) } td { code { (v.to_string()) } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    markup.into_string()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<ManifestEntry, Error> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|source| Error::Io {
        context: format!("cannot write `{}`", path.display()),
        source,
    })?;
    Ok(ManifestEntry {
        file: name.to_string(),
        sha256: sha256(bytes),
        bytes: bytes.len() as u64,
    })
}

/// The browser to print with, if any.
pub fn find_browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Rewrites the clock-dependent bytes Chromium (Skia) writes into a PDF, keeping lengths:
/// the 14 digits after `/CreationDate (D:` and `/ModDate (D:`, and the hex of the trailer's
/// `/ID [<...> <...>]`.
fn normalize_pdf(pdf: &mut [u8], generated_at: DateTime<Utc>, seed: &str) {
    let digits = generated_at.format("%Y%m%d%H%M%S").to_string();
    for key in [b"/CreationDate (D:".as_slice(), b"/ModDate (D:".as_slice()] {
        let mut from = 0;
        while let Some(at) = find(&pdf[from..], key) {
            let start = from + at + key.len();
            let end = (start + digits.len()).min(pdf.len());
            if pdf[start..end].iter().all(u8::is_ascii_digit) {
                pdf[start..end].copy_from_slice(&digits.as_bytes()[..end - start]);
            }
            // Timezone suffix: `+hh'mm'` or `Z`; make it UTC of the same length.
            let mut i = end;
            while i < pdf.len() && pdf[i] != b')' {
                pdf[i] = match pdf[i] {
                    b'+' | b'-' => b'+',
                    b'0'..=b'9' => b'0',
                    other => other,
                };
                i += 1;
            }
            from = end;
        }
    }
    let key = b"/ID [<";
    let mut from = 0;
    let hex_seed: Vec<u8> = seed.bytes().collect();
    while let Some(at) = find(&pdf[from..], key) {
        let mut i = from + at + key.len();
        let mut n = 0;
        while i < pdf.len() && pdf[i] != b']' {
            if pdf[i].is_ascii_hexdigit() && !hex_seed.is_empty() {
                pdf[i] = hex_seed[n % hex_seed.len()].to_ascii_uppercase();
                n += 1;
            }
            i += 1;
        }
        from = i;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Prints `html_path` to `pdf_path` with headless Chromium.
fn print_pdf(browser: &Path, html_path: &Path, pdf_path: &Path) -> Result<(), String> {
    let html_path = std::fs::canonicalize(html_path).map_err(|e| e.to_string())?;
    let profile = tempfile_dir(pdf_path)?;
    let output = Command::new(browser)
        .arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--no-pdf-header-footer")
        .arg("--disable-extensions")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", pdf_path.display()))
        .arg(format!("file://{}", html_path.display()))
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", browser.display()));
    let _ = std::fs::remove_dir_all(&profile);
    let output = output?;
    if !output.status.success() || !pdf_path.is_file() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        return Err(format!(
            "`{}` exited with {} and no PDF: {tail}",
            browser.display(),
            output.status
        ));
    }
    Ok(())
}

fn tempfile_dir(near: &Path) -> Result<PathBuf, String> {
    let dir = near
        .parent()
        .unwrap_or(Path::new("."))
        .join(".chromium-profile");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    Ok(dir)
}

/// Writes `report.html`, `evidence.json`, `report.pdf` (when a browser prints it) and
/// `manifest.json` into `dir` (created if missing).
pub fn write(
    dir: &Path,
    evaluation: &Evaluation,
    generated_at: DateTime<Utc>,
    pdf: Pdf,
) -> Result<Written, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        context: format!("cannot create `{}`", dir.display()),
        source,
    })?;
    let page = html(evaluation, generated_at);
    let mut files = vec![
        write_file(dir, HTML_FILE, page.as_bytes())?,
        write_file(dir, EVIDENCE_FILE, evidence_json(evaluation).as_bytes())?,
    ];
    let browser = match pdf {
        Pdf::Skip => Err("not requested (--no-pdf)".to_string()),
        Pdf::Auto => find_browser().ok_or_else(|| {
            "no chromium, chromium-browser or google-chrome on PATH: install one to print the PDF (the HTML prints the same from any browser)".to_string()
        }),
        Pdf::With(path) => Ok(path),
    };
    let pdf_path = dir.join(PDF_FILE);
    let printed = browser.and_then(|browser| {
        print_pdf(&browser, &dir.join(HTML_FILE), &pdf_path)?;
        let mut bytes = std::fs::read(&pdf_path).map_err(|e| e.to_string())?;
        normalize_pdf(&mut bytes, generated_at, &files[0].sha256);
        write_file(dir, PDF_FILE, &bytes).map_err(|e| e.to_string())
    });
    let (pdf_file, pdf_skipped) = match printed {
        Ok(entry) => {
            files.push(entry);
            (Some(pdf_path), None)
        }
        Err(reason) => {
            let _ = std::fs::remove_file(&pdf_path);
            (None, Some(reason))
        }
    };
    let manifest = Manifest {
        framework: evaluation.framework.id.clone(),
        version: evaluation.framework.version.clone(),
        from: evaluation.from,
        to: evaluation.to,
        scope: evaluation.scope.label(),
        generated_at,
        files,
        pdf_skipped,
    };
    let mut text = serde_json::to_string_pretty(&manifest).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    write_file(dir, MANIFEST_FILE, text.as_bytes())?;
    Ok(Written {
        manifest,
        pdf: pdf_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_dates_and_id_are_rewritten_in_place() {
        let mut pdf = b"<< /CreationDate (D:20261207101500+00'00') /ModDate (D:20261207101501Z) >>\ntrailer << /ID [<0A1B2C> <3D4E5F>] >>".to_vec();
        let len = pdf.len();
        let at = DateTime::parse_from_rfc3339("2026-01-31T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        normalize_pdf(&mut pdf, at, "abc");
        assert_eq!(pdf.len(), len);
        let text = String::from_utf8(pdf).expect("utf8");
        assert!(
            text.contains("/CreationDate (D:20260131000000+00'00')"),
            "{text}"
        );
        assert!(text.contains("/ModDate (D:20260131000000Z)"), "{text}");
        assert!(text.contains("/ID [<ABCABC> <ABCABC>]"), "{text}");
    }
}
