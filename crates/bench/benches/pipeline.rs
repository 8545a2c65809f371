//! Criterion micro-benchmarks of the per-event stages of ingest, on the generated cluster
//! activity (`crowsnest-gen`, through `crowsnest_bench::corpus`):
//!
//! * `decode_normalize/<source>`: NDJSON bodies of one source (Kubernetes audit events,
//!   container logs, process executions) through `crowsnest_normalize::decode_ndjson`;
//! * `detect/builtin`: the normalized events through a `crowsnest_detect::Detector` with the
//!   built-in rule pack;
//! * `index/add_commit`: the normalized events added to a fresh `crowsnest_store::Store` in a
//!   temporary directory and committed (opening the store is not timed).
//!
//! Throughput is in events. Run in release with `cargo bench -p crowsnest-bench` (add
//! `-- --quick` for a fast look); `scripts/test.sh` compiles them (`cargo check --benches`).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use crowsnest_bench::corpus::{Corpus, Source};
use crowsnest_detect::{Detector, RuleSet};
use crowsnest_model::Event;
use crowsnest_store::{Store, StoreConfig};

/// Events per corpus: enough for every kind of record, small enough for a quick run.
const EVENTS: u64 = 4_000;

fn corpus() -> Corpus {
    Corpus::generate(11, EVENTS).expect("the generated corpus serializes")
}

fn events(corpus: &Corpus) -> Vec<Event> {
    corpus
        .events()
        .expect("the generated corpus normalizes")
        .to_vec()
}

fn decode_normalize(c: &mut Criterion) {
    let corpus = corpus();
    let limits = crowsnest_normalize::Limits::default();
    let mut group = c.benchmark_group("decode_normalize");
    for source in [Source::Audit, Source::Logs, Source::Process] {
        let bodies: Vec<_> = corpus
            .bodies(4 << 20, u64::MAX)
            .into_iter()
            .filter(|b| b.source == source)
            .collect();
        let n: u64 = bodies.iter().map(|b| b.events).sum();
        group.throughput(Throughput::Elements(n));
        group.bench_function(source.ndjson_source(), |b| {
            b.iter(|| {
                bodies
                    .iter()
                    .map(|body| {
                        let decoded = crowsnest_normalize::decode_ndjson(
                            &body.bytes,
                            Some(source.ndjson_source()),
                            &limits,
                        );
                        decoded.events.len()
                    })
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

fn detect(c: &mut Criterion) {
    let events = events(&corpus());
    let (rules, _) = RuleSet::load(&[], true);
    let mut detector = Detector::new(rules);
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("builtin", |b| {
        b.iter(|| {
            events
                .iter()
                .map(|event| detector.process(event).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

/// The user-defined mapping step (`[[mappings]]`, VRL) on a shape no parser knows: two
/// nested renames, a `key=value` message parsed, four fields set (BENCHMARKS.md § Mappings).
fn mapping(c: &mut Criterion) {
    const PROGRAM: &str = r#"
.orchestrator.namespace = del(.kube.ns)
.kubernetes.pod.name = del(.kube.pod)
del(.kube)
kv = parse_key_value!(.msg)
.user.name = kv.user
.source.ip = kv.src
.event.action = kv.action
.event.outcome = if kv.result == "fail" { "failure" } else { "success" }
.message = del(.msg)
.event.dataset = "acme.app"
"#;
    let mappings = match crowsnest_mapping::Mappings::from_program("bench", PROGRAM) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let record = serde_json::json!({"ts": "2026-12-07T08:00:00Z", "lvl": "warn",
        "msg": "user=alice action=login src=10.1.2.3 result=fail",
        "kube": {"ns": "payments", "pod": "api-7d9f-abc"}});
    let event = match record {
        serde_json::Value::Object(map) => Event::from_map(map),
        _ => Event::new(),
    };
    let mut group = c.benchmark_group("mapping");
    group.throughput(Throughput::Elements(1));
    group.bench_function("vrl_kv_renames", |b| {
        b.iter_batched(
            || event.clone(),
            |mut event| {
                let failures = mappings.apply(&mut event);
                (event, failures)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn index(c: &mut Criterion) {
    let batch: Vec<(u64, Event)> = (1..).zip(events(&corpus())).collect();
    let mut group = c.benchmark_group("index");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("add_commit", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let store = Store::open(dir.path(), StoreConfig::default()).expect("the store");
                (dir, store)
            },
            |(dir, store)| {
                store.add(&batch).expect("adds");
                store.commit().expect("commits");
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, decode_normalize, detect, mapping, index);
criterion_main!(benches);
