use crowsnest_normalize::registry::{self, parse_lines, Source};
use crowsnest_normalize::Limits;
#[test]
fn scratch() {
    let input = std::fs::read_to_string("/tmp/weblines.jsonl").unwrap();
    let mut out = String::new();
    for l in input.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let src = v["source"].as_str().unwrap();
        let line = v["line"].as_str().unwrap();
        let d = match registry::by_name(src) {
            Some(p) => parse_lines(line.as_bytes(), Source::Named(p), &Limits::default()),
            None => parse_lines(line.as_bytes(), Source::from_name(None), &Limits::default()),
        };
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let mut o = v.clone();
        o["event"] = serde_json::to_value(&d.events[0]).unwrap();
        out.push_str(&serde_json::to_string(&o).unwrap());
        out.push('\n');
    }
    std::fs::write("/tmp/webevents.jsonl", out).unwrap();
}
