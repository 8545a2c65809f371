//! Property tests: arbitrary bytes and mutated real lines never panic the decoders, every
//! non-blank line is accounted for, and error line numbers stay in range.
//!
//! The checked properties live in `crowsnest_normalize::invariants`, shared with the
//! `cargo fuzz` targets in `fuzz/`, so the stable test suite runs the fuzzers' checks too.

mod common;

use common::{non_blank_lines, read_golden, read_testdata};
use crowsnest_normalize::invariants::{check_k8s_audit, check_ndjson, fuzz_limits};
use crowsnest_normalize::{decode_k8s_audit, decode_ndjson, Limits};
use proptest::prelude::*;

/// Real single-record lines: Falco traces, the hkerma sample and our managed samples
/// (batches left out so that one line is one event or one error).
fn corpus() -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for name in [
        "exec_pod.json",
        "create_clusterrolebinding.json",
        "create_nginx_pod_privileged.json",
        "create_secret.json",
    ] {
        let body = read_testdata(&format!("k8s-audit/falco-traces/{name}"));
        lines.push(body.trim_ascii_end().to_vec());
    }
    let hkerma = read_testdata("k8s-audit/benign-hkerma/audit-sample.jsonl");
    lines.extend(hkerma.split(|&b| b == b'\n').take(3).map(<[u8]>::to_vec));
    for name in [
        "eks/cloudwatch_record.input",
        "aks/diagnostic_record.input",
        "gke/audit_entries.input",
    ] {
        let body = read_golden(name);
        lines.extend(
            body.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    lines.push(
        br#"{"@timestamp":"2024-03-01T12:00:00Z","msg":"hello","event":{"dataset":"x"}}"#.to_vec(),
    );
    lines
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![
                    Just(b'{'),
                    Just(b'}'),
                    Just(b'['),
                    Just(b'"'),
                    Just(b'\\'),
                    Just(b'\n'),
                    Just(b','),
                    Just(0xff),
                    any::<u8>()
                ],
                1..8,
            )
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1usize..256).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(line: &mut Vec<u8>, mutation: &Mutation) {
    let len = line.len().max(1);
    match mutation {
        Mutation::Flip { at, byte } => {
            if !line.is_empty() {
                let i = at % line.len();
                line[i] = *byte;
            }
        }
        Mutation::Insert { at, bytes } => {
            let i = at % len.min(line.len() + 1);
            line.splice(i..i, bytes.iter().copied());
        }
        Mutation::Delete { at, len: n } => {
            if !line.is_empty() {
                let i = at % line.len();
                let end = (i + n).min(line.len());
                line.drain(i..end);
            }
        }
        Mutation::Truncate { at } => line.truncate(at % len),
        Mutation::Duplicate { at, len: n } => {
            if !line.is_empty() {
                let i = at % line.len();
                let end = (i + n).min(line.len());
                let copy = line[i..end].to_vec();
                line.splice(end..end, copy);
            }
        }
    }
}

/// A body of mutated corpus lines joined by `\n`, `\r\n` or blank lines.
fn mutated_body() -> impl Strategy<Value = Vec<u8>> {
    let corpus = corpus();
    let count = corpus.len();
    prop::collection::vec(
        (0..count, prop::collection::vec(mutation(), 0..4), 0usize..3),
        1..6,
    )
    .prop_map(move |picks| {
        let mut body = Vec::new();
        for (index, mutations, separator) in picks {
            let mut line = corpus[index].clone();
            for m in &mutations {
                apply(&mut line, m);
            }
            body.extend_from_slice(&line);
            body.extend_from_slice(match separator {
                0 => b"\n".as_slice(),
                1 => b"\r\n",
                _ => b"\n\n",
            });
        }
        body
    })
}

fn may_batch(body: &[u8]) -> bool {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    has(b"logEvents") || has(b"records")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_break_the_decoders(body in prop::collection::vec(any::<u8>(), 0..1024)) {
        for limits in [fuzz_limits(), Limits::default()] {
            prop_assert_eq!(check_ndjson(&body, &limits), Ok(()));
            prop_assert_eq!(check_k8s_audit(&body, &limits), Ok(()));
        }
    }

    #[test]
    fn mutated_real_lines_are_each_accounted_for(body in mutated_body()) {
        for limits in [fuzz_limits(), Limits::default()] {
            prop_assert_eq!(check_ndjson(&body, &limits), Ok(()));
            let decoded = decode_ndjson(&body, None, &limits);
            if !may_batch(&body) {
                prop_assert_eq!(decoded.events.len() + decoded.errors.len(), non_blank_lines(&body));
            }
            let line_count = body.split(|&b| b == b'\n').count();
            prop_assert!(decoded.errors.iter().all(|e| e.line >= 1 && e.line <= line_count));
        }
    }

    #[test]
    fn mutated_event_lists_keep_item_numbers_in_range(body in mutated_body()) {
        let items: Vec<&[u8]> = body
            .split(|&b| b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|l| !l.is_empty())
            .collect();
        let mut list = br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":["#.to_vec();
        list.extend_from_slice(&items.join(b",".as_slice()));
        list.extend_from_slice(b"]}");
        prop_assert_eq!(check_k8s_audit(&list, &Limits::default()), Ok(()));
        if let Ok(decoded) = decode_k8s_audit(&list, &Limits::default()) {
            // A valid list: each of its items is one event or one error, numbered in range.
            let parsed: serde_json::Value = serde_json::from_slice(&list).expect("decoded, so JSON");
            let item_count = parsed["items"].as_array().map_or(0, Vec::len);
            prop_assert_eq!(decoded.events.len() + decoded.errors.len(), item_count);
            prop_assert!(decoded.errors.iter().all(|e| e.line >= 1 && e.line <= item_count));
        }
    }
}

/// The fuzz seed corpus (ours, in `fuzz/seeds/`) holds the invariants and exercises every
/// decoder: replayed here so stable CI covers what `cargo fuzz` starts from.
#[test]
fn fuzz_seeds_hold_the_invariants() {
    let seeds = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds"));
    let mut datasets = std::collections::BTreeSet::new();
    let mut providers = std::collections::BTreeSet::new();
    let mut replayed = 0;
    for target in ["decode_ndjson", "decode_k8s_audit"] {
        let dir = seeds.join(target);
        for entry in std::fs::read_dir(&dir).expect("seed dir") {
            let path = entry.expect("entry").path();
            let body = std::fs::read(&path).expect("seed");
            let name = path.display().to_string();
            for limits in [fuzz_limits(), Limits::default()] {
                if target == "decode_ndjson" {
                    assert_eq!(check_ndjson(&body, &limits), Ok(()), "{name}");
                } else {
                    assert_eq!(check_k8s_audit(&body, &limits), Ok(()), "{name}");
                }
            }
            if target == "decode_ndjson" {
                for event in decode_ndjson(&body, None, &Limits::default()).events {
                    datasets.extend(event.get_str("event.dataset").map(str::to_string));
                    providers.extend(event.get_str("cloud.provider").map(str::to_string));
                }
            }
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "seed corpus present ({replayed} files)");
    assert_eq!(
        datasets,
        ["kubernetes.audit", "ndjson"].map(String::from).into()
    );
    assert_eq!(providers, ["aws", "azure", "gcp"].map(String::from).into());
}
