//! `crowsnest verify`: checks the integrity chain of a data directory (see
//! `crowsnest_integrity`) and recomputes the hash of every sealed WAL segment and partition.
//!
//! Prints failures first (the first altered file with the hash expected and found), then the
//! explained gaps (retention, WAL truncation), then notes; exits 1 when anything failed.
//! With `--server URL`, the running server verifies its own data directory
//! (`POST /api/v1/verify`, admin token) and records the run, with who asked, in its self-audit
//! stream (`event.dataset:crowsnest.verify`), where the compliance report finds it.
//! `--generate-key PATH` writes a new Ed25519 signing key for `[integrity] signing_key` and
//! prints its public key.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use crowsnest_integrity::{generate_key, verify, Finding, Severity, VerifyOptions, VerifyReport};

/// The report in the server's answer to `POST /api/v1/verify`.
fn remote_report(answer: &serde_json::Value) -> VerifyReport {
    let number = |name: &str| answer[name].as_u64().unwrap_or(0);
    VerifyReport {
        records: number("records"),
        signed_checkpoints: number("signed_checkpoints"),
        files_ok: number("files_ok"),
        bytes_hashed: number("bytes_hashed"),
        findings: answer["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| Finding {
                severity: match f["severity"].as_str() {
                    Some("fail") => Severity::Fail,
                    Some("gap") => Severity::Gap,
                    _ => Severity::Note,
                },
                path: f["path"].as_str().unwrap_or_default().to_string(),
                message: f["message"].as_str().unwrap_or_default().to_string(),
            })
            .collect(),
    }
}

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
    /// Ask this running server to verify its own data directory (recorded in its self-audit
    /// stream) instead of reading `--data-dir` here.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// API token (admin) for `--server` (default: read from --token-file).
    #[arg(long, env = "CROWSNEST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token for `--server` (default: <data-dir>/admin.token).
    #[arg(long, env = "CROWSNEST_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
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
    let report = match &args.server {
        Some(server) => {
            let client = crate::client::ServerArgs {
                server: server.clone(),
                token: args.token.clone(),
                token_file: args.token_file.clone(),
                data_dir: args.data_dir.clone(),
            }
            .client()?;
            let mut body = serde_json::Map::new();
            if let Some(from) = args.from {
                body.insert("from".into(), from.to_rfc3339().into());
            }
            if let Some(to) = args.to {
                body.insert("to".into(), to.to_rfc3339().into());
            }
            if args.public_key.is_some() {
                eprintln!("note: the server pins its own signing key's public key; --public-key applies to a local verification only");
            }
            let answer = client.post_json("/api/v1/verify", &serde_json::Value::Object(body))?;
            remote_report(&answer)
        }
        None => verify(&args.data_dir, &options)?,
    };
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
