//! Rate and distinct-count baselines cross-checked against an independent reference: numpy's
//! median and median absolute deviation over the same raw events, bucketed by Python; and the
//! `method: ewma` threshold against numpy's weighted average and variance with the closed-form
//! weights of an exponentially weighted mean (`α(1 − α)^age`, the oldest value
//! `(1 − α)^(n − 1)`), where the Rust code runs the recursive form, and against River's
//! streaming `EWMean`/`EWVar` (PyPI `river`), which must agree with numpy to 1e-9.
//!
//! Six weeks of a principal reading secrets with an office-hours pattern and noise, with spikes
//! injected in weeks 5 and 6 (many reads, and reads of many distinct secrets). The Rust baseline
//! runs in the stream; the reference (in `.venv-test`, which `scripts/setup-ecosystem.sh`
//! makes, with numpy) buckets the raw events by hour, takes each hour's last four same hours of
//! the week (empty hours count 0), and flags `value > median + k·max(1.4826·MAD, 1)` and
//! `value >= min_count`. Both must flag exactly the same hours with the same figures. Without
//! the venv the test is skipped locally and FAILS under `CI=true`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crowsnest_detect::baseline::{BaselineSpec, Baselines, Verdict};
use crowsnest_model::Event;
use serde_json::{json, Value};

const REFERENCE: &str = r#"
import json, math, sys
import numpy as np
from river import stats
data = json.load(open(sys.argv[1]))
events, rules = data["events"], data["rules"]
out = []
for rule in rules:
    bucket, k, min_count = 3600, rule["threshold"], rule["min_count"]
    hist, min_hist = rule.get("history", 4), rule.get("min_history", 3)
    step = 7 * 24 if rule.get("seasonality", "hour_of_week") == "hour_of_week" else 1
    ewma, alpha = rule.get("method") == "ewma", rule.get("alpha", 0.3)
    per = {}
    for ts, user, secret in events:
        b = ts // bucket
        per.setdefault(user, {}).setdefault(b, []).append(secret)
    for user, buckets in per.items():
        first, last = min(buckets), max(buckets)
        def value(b):
            xs = buckets.get(b, [])
            return len(set(xs)) if rule["distinct"] else len(xs)
        for b in range(first, last + 1):
            past = [value(b - step * j) for j in range(hist, 0, -1) if b - step * j >= first]
            if len(past) < min_hist:
                continue
            h = np.array(past, dtype=float)
            med = float(np.median(h))
            mad = float(np.median(np.abs(h - med)))
            found = {"median": med, "mad": mad}
            if ewma:
                n = len(h)
                w = alpha * (1 - alpha) ** np.arange(n - 1, -1, -1, dtype=float)
                w[0] = (1 - alpha) ** (n - 1)
                mean = float(np.average(h, weights=w))
                std = float(np.sqrt(np.average((h - mean) ** 2, weights=w)))
                # River's streaming EWMean/EWVar over the same history, oldest first: a
                # second, independent implementation that must agree with numpy's closed form.
                rm, rv = stats.EWMean(fading_factor=alpha), stats.EWVar(fading_factor=alpha)
                for x in past:
                    rm.update(x)
                    rv.update(x)
                if abs(rm.get() - mean) > 1e-9 or abs(math.sqrt(max(rv.get(), 0.0)) - std) > 1e-9:
                    sys.exit(f"river and numpy disagree: {rm.get()} {rv.get()} vs {mean} {std}")
                thr = mean + k * max(std, 1.0)
                found.update({"mean": mean, "std": std})
            else:
                thr = med + k * max(1.4826 * mad, 1.0)
            v = value(b)
            if v > thr and v >= min_count:
                found.update({"rule": rule["id"], "user": user, "bucket": b * bucket,
                              "threshold": thr})
                out.append(found)
print(json.dumps(out))
"#;

fn python() -> Option<std::path::PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/python");
    let ok = path.exists()
        && Command::new(&path)
            .args(["-c", "import numpy, river"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but no .venv-test with numpy and river: run scripts/setup-ecosystem.sh"
        );
        eprintln!("skipped: no .venv-test with numpy (scripts/setup-ecosystem.sh)");
    }
    ok.then_some(path)
}

/// A small deterministic generator (the same series every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn rate_and_distinct_alerts_match_a_numpy_median_mad_and_ewma_reference() {
    let Some(python) = python() else {
        return;
    };
    // Monday 2024-04-01 00:00 UTC; six weeks of hours.
    let t0: i64 = 1_711_929_600;
    let mut rng = Lcg(22);
    let mut events: Vec<(i64, String, String)> = Vec::new();
    let spikes_reads = [(4 * 168 + 10) as i64, (5 * 168 + 3 * 24 + 2) as i64];
    let spikes_secrets = [(4 * 168 + 2 * 24 + 14) as i64, (5 * 168 + 20) as i64];
    for user in ["alice", "ci-bot"] {
        for hour in 0..6 * 168i64 {
            let hour_of_day = hour % 24;
            let office = (9..17).contains(&hour_of_day) && (hour / 24) % 7 < 5;
            let base = if user == "ci-bot" {
                4 + rng.next(3)
            } else if office {
                20 + rng.next(8)
            } else {
                rng.next(3)
            };
            let mut reads: Vec<String> = (0..base)
                .map(|_| format!("secret-{}", rng.next(6)))
                .collect();
            if user == "alice" && spikes_reads.contains(&hour) {
                reads.extend((0..150).map(|_| format!("secret-{}", rng.next(6))));
            }
            if user == "alice" && spikes_secrets.contains(&hour) {
                reads.extend((0..40).map(|i| format!("other-{i}")));
            }
            let n = reads.len() as i64;
            for (i, secret) in reads.into_iter().enumerate() {
                events.push((
                    t0 + hour * 3_600 + i as i64 * 3_600 / n.max(1),
                    user.to_string(),
                    secret,
                ));
            }
        }
    }
    events.sort();
    let rules = [
        (
            "reads",
            json!({"kind": "rate", "entity": "user.name", "threshold": 6, "min_count": 10}),
        ),
        (
            "secrets",
            json!({"kind": "rate", "entity": "user.name", "distinct": "orchestrator.resource.name",
                   "threshold": 6, "min_count": 5}),
        ),
        (
            "reads_ewma",
            json!({"kind": "rate", "entity": "user.name", "threshold": 6, "min_count": 10,
                   "method": "ewma", "alpha": 0.5}),
        ),
        (
            "reads_ewma_hourly",
            json!({"kind": "rate", "entity": "user.name", "threshold": 4, "min_count": 10,
                   "method": "ewma", "alpha": 0.2, "seasonality": "none", "history": 24,
                   "min_history": 12}),
        ),
    ];
    let specs: HashMap<String, BaselineSpec> = rules
        .iter()
        .map(|(id, v)| (id.to_string(), BaselineSpec::from_value(v).expect("spec")))
        .collect();
    let mut baselines = Baselines::new(specs);
    let mut ours: Vec<Value> = Vec::new();
    for (ts, user, secret) in &events {
        let event: Event = serde_json::from_value(
            json!({"user": {"name": user}, "orchestrator": {"resource": {"name": secret}}}),
        )
        .expect("event");
        for (rule, _) in &rules {
            if let Some(Verdict::New(a)) = baselines.observe(rule, &event, *ts) {
                let r = a.rate.as_ref().expect("rate figures");
                let mut found = json!({"rule": rule, "user": user,
                    "bucket": r.bucket_start.timestamp(), "median": r.median, "mad": r.mad,
                    "threshold": r.threshold});
                if let (Some(mean), Some(std)) = (r.mean, r.std) {
                    found["mean"] = json!(mean);
                    found["std"] = json!(std);
                }
                ours.push(found);
                assert!(
                    a.explanation.contains(&format!("user.name={user}")),
                    "{}",
                    a.explanation
                );
            }
        }
    }
    let input = tempfile::NamedTempFile::new().expect("tempfile");
    let rule_list: Vec<Value> = rules
        .iter()
        .map(|(id, v)| {
            let mut rule = json!({"id": id, "distinct": v.get("distinct").is_some(),
                "threshold": v["threshold"], "min_count": v["min_count"]});
            for key in ["method", "alpha", "seasonality", "history", "min_history"] {
                if let Some(value) = v.get(key) {
                    rule[key] = value.clone();
                }
            }
            rule
        })
        .collect();
    std::fs::write(
        input.path(),
        json!({"events": events, "rules": rule_list}).to_string(),
    )
    .expect("write");
    let output = Command::new(python)
        .args(["-c", REFERENCE])
        .arg(input.path())
        .output()
        .expect("python");
    assert!(
        output.status.success(),
        "reference: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut reference: Vec<Value> = serde_json::from_slice(&output.stdout).expect("json");
    let key = |v: &Value| {
        (
            v["rule"].to_string(),
            v["user"].to_string(),
            v["bucket"].as_i64(),
        )
    };
    ours.sort_by_key(key);
    reference.sort_by_key(key);
    let brief = |v: &[Value]| v.iter().map(key).collect::<Vec<_>>();
    assert_eq!(brief(&ours), brief(&reference), "the same hours flagged");
    for (a, b) in ours.iter().zip(&reference) {
        let ewma = a.get("mean").is_some() || b.get("mean").is_some();
        let fields: &[&str] = if ewma {
            &["median", "mad", "threshold", "mean", "std"]
        } else {
            &["median", "mad", "threshold"]
        };
        for field in fields {
            let (x, y) = (a[field].as_f64(), b[field].as_f64());
            assert!(
                matches!((x, y), (Some(x), Some(y)) if (x - y).abs() < 1e-9),
                "{field}: {a} vs {b}"
            );
        }
    }
    // The injected spikes are among them, for the right rule.
    for (rule, hours) in [
        ("reads", spikes_reads),
        ("secrets", spikes_secrets),
        ("reads_ewma", spikes_reads),
        ("reads_ewma_hourly", spikes_reads),
    ] {
        for hour in hours {
            let bucket = t0 + hour * 3_600;
            assert!(
                ours.iter()
                    .any(|a| a["rule"] == rule && a["user"] == "alice" && a["bucket"] == bucket),
                "{rule} spike at hour {hour} not flagged: {ours:?}"
            );
        }
    }
    let per_rule = |rule: &str| ours.iter().filter(|a| a["rule"] == rule).count();
    assert!(per_rule("reads_ewma") > 0 && per_rule("reads_ewma_hourly") > 0);
    eprintln!(
        "{} hours flagged by both ({} events, 2 principals, 6 weeks); per rule: reads {}, secrets {}, reads_ewma {}, reads_ewma_hourly {}",
        ours.len(),
        events.len(),
        per_rule("reads"),
        per_rule("secrets"),
        per_rule("reads_ewma"),
        per_rule("reads_ewma_hourly"),
    );
}
