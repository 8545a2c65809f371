//! crowsnest's benchmarks, behind `crowsnest bench` (the CLI parses [`Args`] and calls
//! [`run`]), and the corpus they share with the criterion benches in `benches/`.
//!
//! * [`ingest`] (`crowsnest bench`): HTTP body to searchable on an in-process server, index
//!   size against raw NDJSON, WAL fsync cost, search and aggregation latency, peak memory.
//! * [`detect`] (`crowsnest bench detect`): decode + normalize + detect per core with the
//!   built-in pack and SigmaHQ, against `rsigma` and against ingest without detection;
//!   ingest-to-alert latency.
//! * [`protocols`] (`crowsnest bench protocols`): ingest per input protocol into a child
//!   server, the loads encoded by `crowsnest-output`'s encoders where a sink speaks the
//!   protocol.
//! * [`peers`] (`crowsnest bench peers`): the same NDJSON corpus into crowsnest (hot and
//!   cold), DuckDB and chDB (`scripts/peers.py`), side by side.
//! * `benches/pipeline.rs` (`cargo bench -p crowsnest-bench`): criterion micro-benchmarks of
//!   decode + normalize, detection with the built-in pack, and indexing.
//!
//! Every corpus is the generated cluster activity of `crowsnest-gen`, as [`corpus`] lines.
//! Each prints a Markdown report, the source of BENCHMARKS.md.

pub mod anomaly;
pub mod corpus;
pub mod detect;
pub mod foreign;
pub mod ingest;
pub mod local;
pub mod peers;
pub mod procfs;
pub mod protocols;

use std::process::ExitCode;

/// Flags of `crowsnest bench`: those of the ingest benchmark, or a narrower one.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The ingest and search benchmark's flags.
    #[command(flatten)]
    pub ingest: ingest::Args,
    /// A narrower benchmark instead of the ingest/search one.
    #[command(subcommand)]
    pub what: Option<What>,
}

/// The narrower benchmarks.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum What {
    /// Detection cost: decode+normalize+detect per core with the built-in pack and SigmaHQ,
    /// against `rsigma` and against ingest without detection; ingest-to-alert latency.
    Detect(detect::Args),
    /// Ingest per input protocol (NDJSON, audit EventList, `_bulk`, HEC, OTLP, syslog,
    /// forward, Falco) into a child server: events/s, MB/s, server CPU and memory.
    Protocols(protocols::Args),
    /// Baseline rules: cost per event with and without them, memory per million keys, the
    /// time a restart takes to restore them.
    Anomaly(anomaly::Args),
    /// The same NDJSON corpus into crowsnest (hot, then cold), DuckDB and chDB: load time,
    /// size against raw, count by namespace, a free-text needle, side by side.
    Peers(peers::Args),
    /// Writes a corpus to an NDJSON file and exits (`--shape foreign`: the corpus shaped like
    /// other shippers' data, see `foreign.rs`; `--shape generated`: our own generator's).
    Corpus(CorpusArgs),
}

/// Flags of `crowsnest bench corpus`.
#[derive(Debug, Clone, clap::Args)]
pub struct CorpusArgs {
    /// Which corpus.
    #[arg(long, value_enum, default_value_t = ingest::Shape::Foreign)]
    pub shape: ingest::Shape,
    /// Events to write.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The NDJSON file to write.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// The shared test data the foreign corpus draws its audit events from [default:
    /// `$CROWSNEST_TESTDATA`, else `shared/testdata` beside the checkout].
    #[arg(long)]
    pub testdata: Option<std::path::PathBuf>,
}

/// Runs the benchmark `args` names and prints its report.
///
/// # Errors
///
/// When a server, a corpus or a measurement fails.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        Some(What::Detect(detect)) => detect::run(detect),
        Some(What::Protocols(protocols)) => protocols::run(protocols),
        Some(What::Anomaly(anomaly)) => anomaly::run(anomaly),
        Some(What::Peers(peers)) => peers::run(peers),
        Some(What::Corpus(corpus)) => ingest::write_shape(&corpus),
        None => ingest::run(args.ingest),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// `crowsnest bench` as the CLI mounts it.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bench: super::Args,
    }

    #[test]
    fn the_flags_are_consistent_and_parse_as_documented() {
        Cli::command().debug_assert();
        let ingest = Cli::parse_from(["bench", "--events", "20000", "--clients", "3"]).bench;
        assert_eq!(ingest.ingest.events, 20_000);
        assert_eq!(ingest.ingest.clients, 3);
        assert!(ingest.what.is_none());
        let detect = Cli::parse_from(["bench", "detect", "--events", "5000"]).bench;
        assert!(matches!(detect.what, Some(super::What::Detect(d)) if d.events == 5_000));
        let protocols =
            Cli::parse_from(["bench", "protocols", "--protocols", "es-bulk,forward"]).bench;
        assert!(matches!(
            protocols.what,
            Some(super::What::Protocols(p)) if p.protocols.len() == 2
        ));
        let peers =
            Cli::parse_from(["bench", "peers", "--corpus", "c.ndjson", "--engines", ""]).bench;
        assert!(matches!(
            peers.what,
            Some(super::What::Peers(p)) if p.engines.is_empty() && p.needle == "xmrig" && p.corpus.is_some()
        ));
    }
}
