//! The varied events of the matcher's differential test: a deterministic generator
//! (splitmix64) of nested and dotted keys, arrays of scalars and of objects, ints, floats, huge
//! unsigned numbers, bools, numeric strings, empty and over-long keywords, text with
//! punctuation, unicode and long tokens, and several timestamp formats over three days.
#![allow(dead_code)]

use serde_json::{json, Value};

/// A small deterministic generator (splitmix64), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

pub const LONG_TOKEN: &str = "abcdefghijabcdefghijabcdefghijabcdefghijXYZ";

pub fn long_name(last: char) -> String {
    format!("{}{last}", "L".repeat(600))
}

fn names() -> Vec<String> {
    let mut names: Vec<String> = [
        "alice",
        "Alice",
        "bob",
        "system:serviceaccount:kube-system:default",
        "system:kube-scheduler",
        "Zoë",
        "",
        "x y",
        "5",
        "5.0",
        "true",
        "a*b",
        "東京",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.push(long_name('a'));
    names.push(long_name('b'));
    names
}

const WORDS: [&str; 18] = [
    "Login",
    "failed",
    "for",
    "alice",
    "Zoë",
    "naïve",
    "ÉCOLE",
    "10.0.0.1",
    "pod/web-1",
    "kube-system",
    "GET",
    "/api/v1/pods",
    LONG_TOKEN,
    "ok!",
    "don't",
    "東京",
    "straße",
    "42",
];

fn sentence(rng: &mut Rng, max: usize) -> String {
    let separators = [" ", ", ", " - ", ": ", "  "];
    let n = rng.below(max + 1);
    let mut text = String::new();
    for i in 0..n {
        if i > 0 {
            let separator: &&str = rng.pick(&separators);
            text.push_str(separator);
        }
        let word: &&str = rng.pick(&WORDS);
        text.push_str(word);
    }
    text
}

fn timestamp(rng: &mut Rng) -> Value {
    let day = rng.below(3) + 1;
    let (h, m, s) = (rng.below(24), rng.below(60), rng.below(60));
    let micros = if rng.chance(50) {
        0
    } else {
        rng.below(1_000_000)
    };
    match rng.below(4) {
        0 => json!(format!("2024-03-0{day}T{h:02}:{m:02}:{s:02}.{micros:06}Z")),
        1 => json!(format!("2024-03-0{day} {h:02}:{m:02}:{s:02}")),
        2 => json!(format!("2024-03-0{day}T{h:02}:{m:02}:{s:02}+02:00")),
        _ => {
            let base = chrono::DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z")
                .expect("base")
                .timestamp();
            let secs = base + (day as i64 - 1) * 86_400 + (h * 3600 + m * 60 + s) as i64;
            json!(secs)
        }
    }
}

/// One varied event; `seq` identifies it in hits.
fn event(rng: &mut Rng, seq: usize) -> Value {
    let names = names();
    let mut e = json!({"@timestamp": timestamp(rng), "seq": seq});
    if rng.chance(80) {
        let name = rng.pick(&names).clone();
        if rng.chance(50) {
            e["user"] = json!({"name": name});
        } else {
            e["user.name"] = json!(name);
        }
    }
    if rng.chance(70) {
        e["n"] = match rng.below(5) {
            0 => json!(rng.below(10) as i64 - 3),
            1 => json!(rng.below(10) as f64 + 0.5),
            2 => json!(-(rng.below(5) as f64) - 0.25),
            3 => json!([rng.below(6), rng.below(6) as f64 + 0.5]),
            _ => json!(rng.below(10) as f64),
        };
    }
    if rng.chance(60) {
        e["count"] = json!(rng.below(8));
    }
    if rng.chance(10) {
        e["big"] = if rng.chance(50) {
            json!(u64::MAX)
        } else {
            json!(9_223_372_036_854_775_808u64)
        };
    }
    if rng.chance(50) {
        e["flag"] = json!(rng.chance(50));
    }
    if rng.chance(50) {
        e["code"] = match rng.below(3) {
            0 => json!(200),
            1 => json!("200"),
            _ => json!("404"),
        };
    }
    if rng.chance(50) {
        let tags: Vec<&str> = (0..rng.below(4))
            .map(|_| *rng.pick(&["x", "y", "Z", "x y", "xy", ""]))
            .collect();
        e["tags"] = json!(tags);
    }
    if rng.chance(40) {
        let procs: Vec<Value> = (0..rng.below(3) + 1)
            .map(|_| json!({"pid": rng.below(5), "name": rng.pick(&["sh", "bash", "curl"])}))
            .collect();
        e["procs"] = json!(procs);
    }
    if rng.chance(40) {
        let app = *rng.pick(&["web", "db", "Web"]);
        if rng.chance(50) {
            e["k8s"] = json!({"labels": {"app.kubernetes.io/name": app}});
        } else {
            e["k8s.labels"] = json!({"app.kubernetes.io/name": app, "tier": null});
        }
    }
    match rng.below(10) {
        0 => {}
        1 => e["message"] = Value::Null,
        2 => e["message"] = json!({"nested": "Inner TEXT", "n": 7}),
        3 => e["message"] = json!(12345),
        _ => e["message"] = json!(sentence(rng, 6)),
    }
    match rng.below(4) {
        0 => e["event"] = json!({"original": sentence(rng, 8), "dataset": "a.b"}),
        1 => e["event.original"] = json!(sentence(rng, 8)),
        2 => e["event"] = json!({"original": {"nested": "raw"}}),
        _ => e["event"] = json!({"dataset": *rng.pick(&["a.b", "k8s.audit"])}),
    }
    if rng.chance(10) {
        e["message.x"] = json!("dotted");
    }
    // Paths of `_unique` (ids, exact times), in each shape: nested, dotted, numbers, objects.
    match rng.below(6) {
        0 => e["event"]["id"] = json!(format!("ev-{seq}")),
        1 => e["event.id"] = json!(seq),
        2 => {
            e["event"]["ingested"] =
                json!(format!("2024-03-0{}T00:00:{:02}Z", 1 + seq % 3, seq % 60))
        }
        3 => {
            let version = if seq.is_multiple_of(2) {
                json!(seq)
            } else {
                json!(seq.to_string())
            };
            e["k8s.audit"] = json!({"auditID": format!("a-{}", seq % 7), "objectRef": {"resourceVersion": version}});
        }
        4 => e["event"]["id"] = json!({"inner": "x"}),
        _ => {}
    }
    e
}

pub fn events(seed: u64) -> Vec<Value> {
    let mut rng = Rng(seed);
    let mut events: Vec<Value> = (0..200).map(|i| event(&mut rng, i)).collect();
    // Many leaves: only the first `MAX_LEAVES` are indexed.
    let mut wide = json!({"@timestamp": "2024-03-02T05:00:00Z", "seq": 200});
    let many: Vec<usize> = (0..crowsnest_store::MAX_LEAVES + 20).collect();
    wide["many"] = json!(many);
    wide["after"] = json!("late");
    events.push(wide);
    // Edge cases: exact instants and microseconds, a long token between two words, -0.0,
    // the same path spelled nested and dotted in one event, arrays of arrays.
    let fixed = [
        json!({"@timestamp": "2024-03-01T00:00:00Z", "n": -0.0}),
        json!({"@timestamp": "2024-03-02T00:00:00.4Z", "message": format!("Login for {LONG_TOKEN} alice")}),
        json!({"@timestamp": "2024-03-02T00:00:00.5Z", "a.b": "1", "a": {"b": "2", "c": [[1, 2], [3]]}}),
        json!({"@timestamp": "2024-03-02T00:00:00.500001Z", "k8s.lab": "no", "message": "for alice"}),
    ];
    for (i, mut e) in fixed.into_iter().enumerate() {
        e["seq"] = json!(201 + i);
        events.push(e);
    }
    events
}
