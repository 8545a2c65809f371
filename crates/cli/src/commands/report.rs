//! `crowsnest report compliance --framework pci-dss-4.0.1 --from T --to T [--scope C/N] --out DIR`:
//! asks a running server for the evaluation (`GET /api/v1/compliance/{framework}`) and writes
//! the report (`crowsnest-compliance`): `report.html`, `evidence.json`, `report.pdf` when
//! Chromium is installed, and `manifest.json` with their SHA-256.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use crowsnest_compliance::report::{self, Pdf};
use crowsnest_compliance::Evaluation;

use crate::client::ServerArgs;

/// Flags of `crowsnest report`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub kind: Kind,
}

/// Which report.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Kind {
    /// Compliance status per control, with the evidence behind each (HTML, JSON, PDF, manifest).
    Compliance(ComplianceArgs),
}

/// Flags of `crowsnest report compliance`.
#[derive(Debug, Clone, clap::Args)]
pub struct ComplianceArgs {
    /// pci-dss-4.0.1, soc2-2017, hipaa-security, gdpr, cis-kubernetes-1.10, cis-docker-1.6,
    /// nist-800-190 or nist-800-53r5.
    #[arg(long, default_value = "pci-dss-4.0.1")]
    pub framework: String,
    /// Start of the period (RFC 3339, inclusive).
    #[arg(long)]
    pub from: DateTime<Utc>,
    /// End of the period (RFC 3339, exclusive).
    #[arg(long)]
    pub to: DateTime<Utc>,
    /// CLUSTER or CLUSTER/NAMESPACE (`*` for any cluster).
    #[arg(long)]
    pub scope: Option<String>,
    /// Directory to write the report into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Generation time written in the report (default: the period end, so regenerating the
    /// same period gives identical bytes).
    #[arg(long)]
    pub generated_at: Option<DateTime<Utc>>,
    /// Do not print the PDF.
    #[arg(long)]
    pub no_pdf: bool,
    /// The Chromium binary that prints the PDF (default: chromium, chromium-browser or
    /// google-chrome on PATH).
    #[arg(long)]
    pub chromium: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.kind {
        Kind::Compliance(args) => compliance(args),
    }
}

fn compliance(args: ComplianceArgs) -> anyhow::Result<ExitCode> {
    if args.from >= args.to {
        anyhow::bail!(
            "--from ({}) must be before --to ({})",
            time(args.from),
            time(args.to)
        );
    }
    if let Some(scope) = &args.scope {
        crowsnest_compliance::Scope::parse(scope)?;
    }
    let client = args.server.client()?;
    let mut path = format!(
        "/api/v1/compliance/{}?from={}&to={}",
        args.framework,
        time(args.from),
        time(args.to)
    );
    if let Some(scope) = &args.scope {
        path.push_str(&format!("&scope={scope}"));
    }
    let answer = client.get_json(&path)?;
    let evaluation: Evaluation = serde_json::from_value(answer)
        .context("the server's evaluation is not in the shape this build reads")?;
    let pdf = match (args.no_pdf, args.chromium) {
        (true, _) => Pdf::Skip,
        (false, Some(path)) => Pdf::With(path),
        (false, None) => Pdf::Auto,
    };
    let generated_at = args.generated_at.unwrap_or(args.to);
    let written = report::write(&args.out, &evaluation, generated_at, pdf)
        .with_context(|| format!("writing the report into `{}`", args.out.display()))?;
    for (label, count) in &evaluation.summary {
        eprintln!("{count:>4}  {label}");
    }
    for file in &written.manifest.files {
        println!("{}  {}", file.sha256, args.out.join(&file.file).display());
    }
    println!(
        "manifest: {}",
        args.out.join(report::MANIFEST_FILE).display()
    );
    if let Some(reason) = &written.manifest.pdf_skipped {
        eprintln!("no PDF: {reason}");
    }
    Ok(ExitCode::SUCCESS)
}
