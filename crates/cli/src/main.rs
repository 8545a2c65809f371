//! `crowsnest`: the one binary. Each subcommand lives in `commands/<name>.rs` with its
//! arguments (their doc comments are the `--help`), its `run` and its tests; `bench` is the
//! `crowsnest-bench` crate's arguments and `run`.

mod client;
mod commands;
mod runtime;

use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: decoding and normalizing allocate many small maps and
/// strings per event, and glibc's malloc/free took about a fifth of the CPU there (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// crowsnest — a SIEM for containerized environments.
#[derive(Debug, Parser)]
#[command(name = "crowsnest", version, about, long_about = None)]
struct Cli {
    /// Log filter (`info`, `debug`, `crowsnest_server=debug`, ...).
    #[arg(long, global = true, env = "CROWSNEST_LOG", default_value = "info")]
    log: String,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "CROWSNEST_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: HTTP API, durable ingest, embedded store, search.
    Server(commands::server::Args),
    /// Search a running server (Lucene/KQL-style filter, then pipes).
    Search(commands::search::Args),
    /// Incidents of a running server: list, show, ack, investigate, resolve, assign, comment.
    Incidents(commands::incidents::Args),
    /// Baselines of a running server: list, show, reset, accept, lock, unlock.
    Baselines(commands::baselines::Args),
    /// Containment: plan, simulate over stored alerts, verify the action log, approve.
    Respond(commands::respond::Args),
    /// Reports from a running server: `report compliance` (status per control, HTML/PDF).
    Report(commands::report::Args),
    /// Send NDJSON or Kubernetes audit files to a running server.
    Ingest(commands::ingest::Args),
    /// Start a server and feed it a generated cluster's activity, attacks included.
    Demo(commands::demo::Args),
    /// Run the node agent: container logs, Docker events, kernel audit, host logs → server.
    Agent(commands::agent::Args),
    /// Validate Sigma rule files or run their test events.
    Rules(commands::rules::Args),
    /// Run detection offline over files (NDJSON, audit EventLists, Docker json-file logs).
    Hunt(commands::hunt::Args),
    /// The store of a stopped server's data directory: `stats`, `compact-cold` (the cold tier now).
    Store(commands::store::Args),
    /// API tokens of a running server: list, create, revoke.
    Tokens(commands::tokens::Args),
    /// Check the integrity chain: recompute sealed WAL segments' and partitions' hashes.
    Verify(commands::verify::Args),
    /// Measure ingest throughput, index size, WAL fsync cost and search latency.
    Bench(crowsnest_bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_format);
    let result = match cli.command {
        Command::Server(args) => commands::server::run(args),
        Command::Store(args) => commands::store::run(args),
        Command::Search(args) => commands::search::run(args),
        Command::Incidents(args) => commands::incidents::run(args),
        Command::Baselines(args) => commands::baselines::run(args),
        Command::Respond(args) => commands::respond::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Ingest(args) => commands::ingest::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Bench(args) => crowsnest_bench::run(args),
        Command::Rules(args) => commands::rules::run(args),
        Command::Hunt(args) => commands::hunt::run(args),
        Command::Agent(args) => commands::agent::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Tokens(args) => commands::tokens::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_tracing(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
