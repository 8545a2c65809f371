//! Differential test: random small events and random filters, the store against a naive
//! in-memory evaluator of the documented semantics.

mod common;

use common::*;
use crowsnest_model::Event;
use crowsnest_query::{Filter, RangeBound, Scalar};
use crowsnest_store::StoreConfig;
use proptest::prelude::*;
use serde_json::{json, Value};

const WORDS: [&str; 4] = ["alpha", "beta", "Gamma", "delta"];
const KEYWORDS: [&str; 5] = ["x", "y", "Z", "x y", "xy"];

fn arb_event() -> impl Strategy<Value = Value> {
    (
        0u32..(2 * 86_400),
        proptest::option::of(0usize..KEYWORDS.len()),
        proptest::option::of(prop_oneof![
            (0i64..6).prop_map(|n| json!(n)),
            (0i64..6).prop_map(|n| json!(n as f64 + 0.5))
        ]),
        proptest::option::of(any::<bool>()),
        proptest::collection::vec(0usize..KEYWORDS.len(), 0..3),
        proptest::collection::vec(0usize..WORDS.len(), 0..4),
        proptest::option::of((0usize..4, 0usize..WORDS.len())),
    )
        .prop_map(|(secs, a, n, b, tags, words, original)| {
            let ts = t("2024-03-01T00:00:00Z") + chrono::TimeDelta::seconds(i64::from(secs));
            let mut event = json!({"@timestamp": crowsnest_model::format_timestamp(ts)});
            if let Some(a) = a {
                event["a"] = json!(KEYWORDS[a]);
            }
            if let Some(n) = n {
                event["n"] = n;
            }
            if let Some(b) = b {
                event["b"] = json!(b);
            }
            if !tags.is_empty() {
                event["tags"] = json!(tags.iter().map(|i| KEYWORDS[*i]).collect::<Vec<_>>());
            }
            if !words.is_empty() {
                event["message"] = json!(words
                    .iter()
                    .map(|i| WORDS[*i])
                    .collect::<Vec<_>>()
                    .join(" "));
            }
            if let Some((kind, word)) = original {
                // A raw input holding the message whole (JSON value with Docker's trailing
                // newline, or plain text), glued to a word, or not holding it at all.
                let message = event["message"].as_str().unwrap_or("").to_owned();
                let word = WORDS[word];
                let raw = match kind {
                    0 => json!({"log": format!("{message}\n"), "stream": word}).to_string(),
                    1 => format!("{word} {message}"),
                    2 => format!("x{message}"),
                    _ => json!({"other": word}).to_string(),
                };
                event["event"] = json!({"original": raw});
            }
            event
        })
}

fn arb_leaf() -> impl Strategy<Value = Filter> {
    let keyword_field = prop_oneof![Just("a"), Just("tags")];
    prop_oneof![
        (keyword_field.clone(), 0usize..KEYWORDS.len()).prop_map(|(f, v)| Filter::Term {
            field: Some(f.into()),
            value: KEYWORDS[v].into()
        }),
        (0i64..6).prop_map(|n| Filter::Term {
            field: Some("n".into()),
            value: n.to_string()
        }),
        Just(Filter::Term {
            field: Some("n".into()),
            value: "2.5".into()
        }),
        any::<bool>().prop_map(|b| Filter::Term {
            field: Some("b".into()),
            value: b.to_string()
        }),
        (0usize..WORDS.len()).prop_map(|w| Filter::Term {
            field: None,
            value: WORDS[w].to_uppercase()
        }),
        (0usize..WORDS.len(), 0usize..WORDS.len()).prop_map(|(a, b)| Filter::Phrase {
            field: Some("message".into()),
            text: format!("{} {}", WORDS[a], WORDS[b])
        }),
        (
            keyword_field,
            prop_oneof![Just("x*"), Just("?"), Just("*y"), Just("Z"), Just("x?y")]
        )
            .prop_map(|(f, p)| Filter::Wildcard {
                field: Some(f.into()),
                pattern: p.into()
            }),
        prop_oneof![Just("al*"), Just("*ta"), Just("g?mma")].prop_map(|p| Filter::Wildcard {
            field: None,
            pattern: p.into()
        }),
        (0usize..WORDS.len(), 0usize..WORDS.len()).prop_map(|(a, b)| Filter::Phrase {
            field: None,
            text: format!("{} {}", WORDS[a], WORDS[b])
        }),
        (0usize..WORDS.len()).prop_map(|w| Filter::Term {
            field: Some("event.original".into()),
            value: WORDS[w].into()
        }),
        (0usize..WORDS.len(), 0usize..WORDS.len()).prop_map(|(a, b)| Filter::Phrase {
            field: Some("event.original".into()),
            text: format!("{} {}", WORDS[a], WORDS[b])
        }),
        prop_oneof![Just("al*"), Just("*ta"), Just("x*")].prop_map(|p| Filter::Wildcard {
            field: Some("event.original".into()),
            pattern: p.into()
        }),
        (0i64..6, 0i64..6, any::<bool>(), any::<bool>()).prop_map(|(lo, hi, li, ui)| {
            let bound = |v: i64, inclusive: bool| {
                if inclusive {
                    RangeBound::Inclusive(Scalar::Number(v as f64))
                } else {
                    RangeBound::Exclusive(Scalar::Number(v as f64))
                }
            };
            Filter::Range {
                field: "n".into(),
                lower: bound(lo, li),
                upper: bound(hi, ui),
            }
        }),
        prop_oneof![
            Just("a"),
            Just("n"),
            Just("b"),
            Just("tags"),
            Just("message"),
            Just("event.original")
        ]
        .prop_map(|f| Filter::Exists { field: f.into() }),
    ]
}

fn arb_filter() -> impl Strategy<Value = Filter> {
    arb_leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
            proptest::collection::vec(inner.clone(), 1..3).prop_map(Filter::And),
            proptest::collection::vec(inner, 1..3).prop_map(Filter::Or),
        ]
    })
}

// ---- the naive evaluator ----

fn leaves(value: Option<&Value>) -> Vec<&Value> {
    match value {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items.iter().filter(|v| !v.is_null()).collect(),
        Some(v) => vec![v],
    }
}

fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

fn text_matches(event: &Event, query: &str) -> bool {
    let wanted = tokens(query);
    let Some(message) = event.get_str("message") else {
        return false;
    };
    let have = tokens(message);
    !wanted.is_empty() && have.windows(wanted.len()).any(|w| w == wanted.as_slice())
}

/// The words of the raw input: of a JSON text's values (not its keys), else of the text.
fn raw_words(event: &Event) -> Vec<String> {
    fn value_words(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => map.values().for_each(|v| value_words(v, out)),
            Value::Array(items) => items.iter().for_each(|v| value_words(v, out)),
            Value::String(s) => out.extend(tokens(s)),
            other => out.extend(tokens(&other.to_string())),
        }
    }
    let Some(raw) = event.get_str("event.original") else {
        return Vec::new();
    };
    match serde_json::from_str::<Value>(raw) {
        Ok(value @ (Value::Object(_) | Value::Array(_))) => {
            let mut out = Vec::new();
            value_words(&value, &mut out);
            out
        }
        _ => tokens(raw),
    }
}

/// Every word of `query` is a word of the raw input.
fn raw_matches(event: &Event, query: &str) -> bool {
    let wanted = tokens(query);
    let have = raw_words(event);
    !wanted.is_empty() && wanted.iter().all(|w| have.contains(w))
}

fn in_range(n: f64, lower: &RangeBound, upper: &RangeBound) -> bool {
    let ok_lower = match lower {
        RangeBound::Unbounded => true,
        RangeBound::Inclusive(Scalar::Number(l)) => n >= *l,
        RangeBound::Exclusive(Scalar::Number(l)) => n > *l,
        _ => false,
    };
    let ok_upper = match upper {
        RangeBound::Unbounded => true,
        RangeBound::Inclusive(Scalar::Number(u)) => n <= *u,
        RangeBound::Exclusive(Scalar::Number(u)) => n < *u,
        _ => false,
    };
    ok_lower && ok_upper
}

fn eval(filter: &Filter, event: &Event) -> bool {
    match filter {
        Filter::All => true,
        Filter::And(parts) => parts.iter().all(|f| eval(f, event)),
        Filter::Or(parts) => parts.iter().any(|f| eval(f, event)),
        Filter::Not(inner) => !eval(inner, event),
        Filter::Term { field: None, value }
        | Filter::Phrase {
            field: None,
            text: value,
        } => text_matches(event, value) || raw_matches(event, value),
        Filter::Term {
            field: Some(f),
            value,
        }
        | Filter::Phrase {
            field: Some(f),
            text: value,
        } if f == "event.original" => raw_matches(event, value),
        Filter::Term {
            field: Some(f),
            value,
        } if f == "message" => text_matches(event, value),
        Filter::Term {
            field: Some(f),
            value,
        } => leaves(event.get(f)).iter().any(|v| match v {
            Value::String(s) => s == value,
            Value::Number(n) => value.parse::<f64>().ok() == n.as_f64(),
            Value::Bool(b) => value.parse::<bool>().ok() == Some(*b),
            _ => false,
        }),
        Filter::Phrase { text, .. } => text_matches(event, text),
        Filter::Wildcard {
            field: None,
            pattern,
        } => {
            let pattern = pattern.to_lowercase();
            event
                .get_str("message")
                .is_some_and(|m| tokens(m).iter().any(|t| glob(&pattern, t)))
                || raw_words(event).iter().any(|t| glob(&pattern, t))
        }
        Filter::Wildcard {
            field: Some(f),
            pattern,
        } if f == "event.original" => raw_words(event)
            .iter()
            .any(|t| glob(&pattern.to_lowercase(), t)),
        Filter::Wildcard {
            field: Some(f),
            pattern,
        } => leaves(event.get(f))
            .iter()
            .any(|v| v.as_str().is_some_and(|s| glob(pattern, s))),
        Filter::Range {
            field,
            lower,
            upper,
        } => leaves(event.get(field))
            .iter()
            .any(|v| v.as_f64().is_some_and(|n| in_range(n, lower, upper))),
        Filter::Exists { field } => !leaves(event.get(field)).is_empty(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn store_agrees_with_naive_evaluator(
        events in proptest::collection::vec(arb_event(), 1..40),
        filters in proptest::collection::vec(arb_filter(), 1..12),
    ) {
        let (_dir, store) = store_with(StoreConfig::default());
        let with_ids: Vec<Value> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut e = e.clone();
                e["id"] = json!(i);
                e
            })
            .collect();
        fill(&store, &with_ids);
        let parsed: Vec<Event> = with_ids.iter().map(|e| ev(e.clone())).collect();
        for filter in filters {
            let expected: Vec<i64> = parsed
                .iter()
                .filter(|e| eval(&filter, e))
                .map(|e| e.get("id").and_then(Value::as_i64).unwrap_or(-1))
                .collect();
            let got = ids(&store, fq(filter.clone()));
            prop_assert_eq!(got, expected, "filter {:?}", filter);
        }
    }
}

// ---- events shaped the way other shippers write (issue 23) ----
//
// Fluent Bit / Tetragon-like events: identifiers (UUIDs, hex ids, ids by key), long free text,
// labels under many dynamic paths, the raw input as JSON. A store that caps its column paths
// at three, keeps a declared path's columns and stores `_source` as a delta against the raw
// input must answer every filter as the naive evaluator does, and give every event back whole.

const UIDS: [&str; 3] = [
    "e9f2963f-15ad-11e8-9a06-0800279e0d30",
    "0a92a6da-2019-95a3-c493-b831f95ea7ff",
    "803f10fcd099a5c89f3258d989c5590958963d77cb10bdbb1c9b2ea7cc501700",
];
// No key with a dot: the index expands dots (`a.b` is below `a`), which `eval` does not model.
const LABELS: [&str; 5] = ["app", "tier", "k8s-app", "team", "version"];
const NAMESPACES: [&str; 3] = ["payments", "kube-system", "default"];

fn long_text(words: &[usize], filler: usize) -> String {
    let mut text: Vec<&str> = words.iter().map(|i| WORDS[*i]).collect();
    // Past the free-text thresholds of `schema/route.rs`, or a short keyword.
    text.extend(std::iter::repeat_n("lorem", filler));
    text.join(" ")
}

fn arb_foreign_event() -> impl Strategy<Value = Value> {
    (
        0u32..86_400,
        0usize..NAMESPACES.len(),
        proptest::option::of(0usize..UIDS.len()),
        proptest::collection::vec((0usize..LABELS.len(), 0usize..KEYWORDS.len()), 0..4),
        proptest::option::of((
            proptest::collection::vec(0usize..WORDS.len(), 1..4),
            prop_oneof![Just(0usize), Just(8), Just(50)],
        )),
        proptest::option::of(0i64..6),
        any::<bool>(),
    )
        .prop_map(|(secs, ns, uid, labels, log, n, raw_json)| {
            let ts = t("2024-03-01T00:00:00Z") + chrono::TimeDelta::seconds(i64::from(secs));
            let mut kubernetes = json!({"namespace_name": NAMESPACES[ns]});
            if let Some(uid) = uid {
                kubernetes["pod_id"] = json!(UIDS[uid]);
                kubernetes["docker"] = json!(UIDS[(uid + 1) % UIDS.len()]);
            }
            let mut label_map = serde_json::Map::new();
            for (key, value) in labels {
                label_map.insert(LABELS[key].to_owned(), json!(KEYWORDS[value]));
            }
            if !label_map.is_empty() {
                kubernetes["labels"] = Value::Object(label_map);
            }
            let mut raw = json!({"kubernetes": kubernetes});
            if let Some((words, filler)) = &log {
                raw["log"] = json!(long_text(words, *filler));
            }
            if let Some(n) = n {
                raw["n"] = json!(n);
            }
            let mut event = raw.clone();
            event["@timestamp"] = json!(crowsnest_model::format_timestamp(ts));
            event["event"] = json!({
                "original": if raw_json { raw.to_string() } else { "plain raw line".to_owned() }
            });
            event
        })
}

fn arb_foreign_leaf() -> impl Strategy<Value = Filter> {
    let path = prop_oneof![
        Just("kubernetes.pod_id"),
        Just("kubernetes.docker"),
        Just("kubernetes.namespace_name"),
        Just("kubernetes.labels.app"),
        Just("kubernetes.labels.tier"),
        Just("kubernetes.labels.k8s-app"),
        Just("kubernetes.labels.team"),
        Just("kubernetes.labels.version"),
        Just("log"),
    ];
    let value = prop_oneof![
        (0usize..UIDS.len()).prop_map(|i| UIDS[i].to_owned()),
        (0usize..NAMESPACES.len()).prop_map(|i| NAMESPACES[i].to_owned()),
        (0usize..KEYWORDS.len()).prop_map(|i| KEYWORDS[i].to_owned()),
        (
            proptest::collection::vec(0usize..WORDS.len(), 1..4),
            prop_oneof![Just(0usize), Just(8), Just(50)]
        )
            .prop_map(|(words, filler)| long_text(&words, filler)),
    ];
    prop_oneof![
        (path.clone(), value).prop_map(|(f, v)| Filter::Term {
            field: Some(f.into()),
            value: v
        }),
        (
            path.clone(),
            prop_oneof![
                Just("*"),
                Just("e9*"),
                Just("pay*"),
                Just("x*"),
                Just("*lorem"),
                Just("?")
            ]
        )
            .prop_map(|(f, p)| Filter::Wildcard {
                field: Some(f.into()),
                pattern: p.into()
            }),
        path.clone()
            .prop_map(|f| Filter::Exists { field: f.into() }),
        Just(Filter::Exists {
            field: "kubernetes".into()
        }),
        Just(Filter::Exists {
            field: "kubernetes.labels".into()
        }),
        (0i64..6, 0i64..6).prop_map(|(lo, hi)| Filter::Range {
            field: "n".into(),
            lower: RangeBound::Inclusive(Scalar::Number(lo as f64)),
            upper: RangeBound::Inclusive(Scalar::Number(hi as f64)),
        }),
        (0usize..WORDS.len()).prop_map(|w| Filter::Term {
            field: None,
            value: WORDS[w].into()
        }),
    ]
}

fn arb_foreign_filter() -> impl Strategy<Value = Filter> {
    arb_foreign_leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
            proptest::collection::vec(inner.clone(), 1..3).prop_map(Filter::And),
            proptest::collection::vec(inner, 1..3).prop_map(Filter::Or),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn foreign_shaped_events_agree_with_naive_evaluator(
        events in proptest::collection::vec(arb_foreign_event(), 1..40),
        filters in proptest::collection::vec(arb_foreign_filter(), 1..12),
    ) {
        let config = StoreConfig {
            max_columns: 3,
            aggregate_fields: vec!["kubernetes.labels.team".into()],
            docstore_delta: true,
            ..StoreConfig::default()
        };
        let (_dir, store) = store_with(config);
        let with_ids: Vec<Value> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut e = e.clone();
                e["id"] = json!(i);
                e
            })
            .collect();
        fill(&store, &with_ids);
        let parsed: Vec<Event> = with_ids.iter().map(|e| ev(e.clone())).collect();
        // Every event comes back whole (stored as a delta or not).
        let everything = run(&store, fq(Filter::All), 1_000, 0);
        for hit in &everything.hits {
            let id = hit["id"].as_u64().expect("id") as usize;
            prop_assert_eq!(hit, &with_ids[id]);
        }
        for filter in filters {
            let expected: Vec<i64> = parsed
                .iter()
                .filter(|e| eval(&filter, e))
                .map(|e| e.get("id").and_then(Value::as_i64).unwrap_or(-1))
                .collect();
            let got = ids(&store, fq(filter.clone()));
            prop_assert_eq!(got, expected, "filter {:?}", filter);
        }
    }
}
