//! `crowsnest verify`: checks the integrity chain of a data directory (see
//! `crowsnest_integrity`) and recomputes the hash of every sealed WAL segment and partition.
//!
//! Prints failures first (the first altered file with the hash expected and found), then the
//! explained gaps (retention, WAL truncation), then notes; exits 1 when anything failed.
//! `--generate-key PATH` writes a new Ed25519 signing key for `[integrity] signing_key` and
//! prints its public key.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use crowsnest_integrity::{generate_key, verify, Severity, VerifyOptions};

/// Flags of `crowsnest verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Data directory (WAL, store, integrity chain).
    #[arg(long, env = "CROWSNEST_DATA_DIR", default_value = "./crowsnest-data")]
    pub data_dir: PathBuf,
    /// Only rehash files sealed at or after this time (RFC 3339); the chain itself is always
    /// checked in full.
    #[arg(long)]
    pub from: Option<DateTime<Utc>>,
    /// Only rehash files sealed before this time (RFC 3339).
    #[arg(long)]
    pub to: Option<DateTime<Utc>>,
    /// The Ed25519 public key (hex) the checkpoints must be signed with.
    #[arg(long, env = "CROWSNEST_INTEGRITY_PUBLIC_KEY")]
    pub public_key: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write a new Ed25519 signing key (PKCS#8, mode 0600) to this path, print its public key,
    /// and exit (nothing is verified).
    #[arg(long, value_name = "PATH")]
    pub generate_key: Option<PathBuf>,
}

/// Runs `crowsnest verify`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.generate_key {
        let public = generate_key(path)?;
        println!("wrote signing key {}", path.display());
        println!("public key: {public}");
        println!("set [integrity] signing_key = \"{}\" and give auditors the public key (crowsnest verify --public-key {public})", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let options = VerifyOptions {
        from: args.from,
        to: args.to,
        public_key: args.public_key.clone(),
    };
    let report = verify(&args.data_dir, &options)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for finding in &report.findings {
            println!("{finding}");
        }
        let gaps = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Gap)
            .count();
        println!(
            "{}: {} chain records, {} signed checkpoints, {} sealed files match ({} bytes hashed), {} explained gaps",
            if report.passed() { "OK" } else { "FAILED" },
            report.records,
            report.signed_checkpoints,
            report.files_ok,
            report.bytes_hashed,
            gaps
        );
        if let Some(first) = report.first_failure() {
            println!("first failure: {}: {}", first.path, first.message);
        }
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
