//! `crowsnest rules validate PATH...`, `crowsnest rules test [PATH...]` and
//! `crowsnest rules enable|disable ID` (a running server's `POST /api/v1/rules/{id}/enable|disable`).
//!
//! `validate` loads Sigma files the way the server does and reports per file: loaded (with the
//! count), unsupported (the construct and line) or invalid (the reason and line); it exits 1 when
//! any file is invalid. `test` runs each rule file's `X.test.ndjson` events (convention in
//! `rules/README.md`) and exits 1 when any expectation fails; without PATH it tests the
//! built-in pack embedded in the binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crowsnest_detect::load::{builtin_files, is_rule_file};
use crowsnest_detect::testrun::{run_file_tests, run_tests, RuleTestReport};
use crowsnest_detect::{FileStatus, Problem, RuleSet};

use crate::client::ServerArgs;

/// Flags of `crowsnest rules`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: RulesCommand,
}

/// `rules` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RulesCommand {
    /// Report per file: loaded / unsupported (construct, line) / invalid (reason, line).
    Validate {
        /// Rule files or directories (recursive).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print one JSON object per file instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run each rule file's `X.test.ndjson` events; without PATH, the built-in pack's.
    Test {
        /// Rule files or directories (recursive).
        paths: Vec<PathBuf>,
    },
    /// Enable a loaded rule of a running server again (`admin` token).
    Enable {
        /// The rule's id (as `GET /api/v1/rules` lists it).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Disable a loaded rule of a running server: it stops matching within a second, stays
    /// listed, and stays disabled across restarts (`admin` token).
    Disable {
        /// The rule's id (as `GET /api/v1/rules` lists it).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Runs `rules validate` or `rules test`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        RulesCommand::Validate { paths, json } => validate(&paths, json),
        RulesCommand::Test { paths } => test(&paths),
        RulesCommand::Enable { id, server } => switch(&server, &id, true),
        RulesCommand::Disable { id, server } => switch(&server, &id, false),
    }
}

fn switch(server: &ServerArgs, id: &str, enabled: bool) -> anyhow::Result<ExitCode> {
    let answer = server.client()?.set_rule_enabled(id, enabled)?;
    let state = if enabled { "enabled" } else { "disabled" };
    if answer["changed"] == false {
        println!("rule {id} was already {state}");
    } else {
        println!("rule {id} {state}");
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(paths: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let (rules, report) = RuleSet::load(paths, false);
    for file in &report.files {
        if json {
            println!(
                "{}",
                serde_json::json!({"path": file.path, "status": file.status(), "loaded": file.loaded, "problems": file.problems})
            );
            continue;
        }
        match file.status() {
            FileStatus::Loaded { rules } => {
                println!("loaded       {} ({rules} rules)", file.path.display())
            }
            _ => {
                for p in &file.problems {
                    match p {
                        Problem::Unsupported { construct, line } => {
                            println!(
                                "unsupported  {}:{} {construct}",
                                file.path.display(),
                                line.unwrap_or(0)
                            )
                        }
                        Problem::Invalid { reason, line } => {
                            println!(
                                "invalid      {}:{} {reason}",
                                file.path.display(),
                                line.unwrap_or(0)
                            )
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{} of {} files loaded cleanly; {} rules, correlations and filters",
        report.loaded_files(),
        report.files.len(),
        rules.len()
    );
    Ok(if report.any_invalid() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn rule_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                rule_files(&entry.path(), out);
            }
        }
    } else if is_rule_file(path) {
        out.push(path.to_path_buf());
    }
}

fn print_report(report: &RuleTestReport) -> bool {
    let failed: Vec<_> = report.cases.iter().filter(|c| !c.passed).collect();
    let ok = report.passed();
    println!(
        "{} {} ({} cases, {} failed)",
        if ok { "PASS" } else { "FAIL" },
        report.rule_file.display(),
        report.cases.len(),
        failed.len()
    );
    for c in failed {
        println!(
            "     line {}: expected {}{}, fired {:?}",
            c.line,
            c.expect,
            c.rule
                .as_deref()
                .map(|r| format!(" of {r}"))
                .unwrap_or_default(),
            c.fired
        );
    }
    for file in &report.load.files {
        if !file.problems.is_empty() {
            println!("     load: {:?}", file.status());
        }
    }
    ok
}

fn test(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (mut passed, mut failed, mut untested) = (0usize, 0usize, 0usize);
    let mut tally = |r: Option<RuleTestReport>| match r {
        Some(r) if print_report(&r) => passed += 1,
        Some(_) => failed += 1,
        None => untested += 1,
    };
    if paths.is_empty() {
        let files = builtin_files();
        for (name, text) in files.iter().filter(|(n, _)| is_rule_file(Path::new(n))) {
            let test_name = Path::new(name).with_extension("test.ndjson");
            let tests = files.iter().find(|(n, _)| Path::new(n) == test_name);
            let report = match tests {
                Some((_, body)) => Some(run_tests(Path::new(name), text, &test_name, body)?),
                None => None,
            };
            if report.is_none() {
                println!("NONE {name} (no {})", test_name.display());
            }
            tally(report);
        }
    } else {
        let mut files = Vec::new();
        for p in paths {
            rule_files(p, &mut files);
        }
        files.sort();
        for file in files {
            let report = run_file_tests(&file)?;
            if report.is_none() {
                println!("NONE {} (no test events)", file.display());
            }
            tally(report);
        }
    }
    eprintln!("{passed} passed, {failed} failed, {untested} without tests");
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod switch_tests {
    use std::collections::BTreeSet;

    use super::*;
    use crowsnest_server::auth::Scope;

    fn server_args(base: &str, token: &str) -> ServerArgs {
        ServerArgs {
            server: base.to_string(),
            token: Some(token.to_string()),
            token_file: None,
            data_dir: PathBuf::from("unused"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn enable_and_disable_switch_a_rule_of_a_running_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crowsnest_server::ServerConfig {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let running = crowsnest_server::start(config).await.expect("server");
        let base = format!("http://{}", running.addr);
        let admin = running.new_admin_token.clone().expect("admin token");
        let reader = running
            .state
            .tokens
            .create("reader", BTreeSet::from([Scope::Read]))
            .expect("reader");
        // A rule of the built-in pack: `docker exec` into a container.
        let id = "0bdf76bd-52a2-47ac-a2a7-121595143ae2";
        let cli = |token: String, command: fn(String, ServerArgs) -> RulesCommand| {
            let args = Args {
                command: command(id.to_string(), server_args(&base, &token)),
            };
            tokio::task::spawn_blocking(move || run(args))
        };
        let disable = |id, server| RulesCommand::Disable { id, server };
        let enable = |id, server| RulesCommand::Enable { id, server };
        let refused = cli(reader.clone(), disable).await.expect("join");
        let message = format!("{:#}", refused.expect_err("a read token may not"));
        assert!(message.contains("403"), "{message}");
        assert!(!running.state.detection.disabled_rules().contains(id));

        cli(admin.clone(), disable)
            .await
            .expect("join")
            .expect("disabled");
        assert!(running.state.detection.disabled_rules().contains(id));
        cli(admin.clone(), enable)
            .await
            .expect("join")
            .expect("enabled");
        assert!(!running.state.detection.disabled_rules().contains(id));

        let unknown = Args {
            command: RulesCommand::Enable {
                id: "no-such-rule".into(),
                server: server_args(&base, &admin),
            },
        };
        let message = format!(
            "{:#}",
            tokio::task::spawn_blocking(move || run(unknown))
                .await
                .expect("join")
                .expect_err("unknown rule")
        );
        assert!(
            message.contains("404") && message.contains("no-such-rule"),
            "{message}"
        );
        running.shutdown().await.expect("shutdown");
    }
}
