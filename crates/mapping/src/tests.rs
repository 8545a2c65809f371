use serde_json::json;

use super::*;

fn event(value: Json) -> Event {
    match value {
        Json::Object(map) => Event::from_map(map),
        other => panic!("not an object: {other}"),
    }
}

fn one(program: &str) -> Mappings {
    match Mappings::from_program("test", program) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

/// A shape no parser knows: an in-house app's JSON with a key=value message.
fn acme() -> Event {
    event(json!({
        "ts": "2026-12-07T08:00:00Z",
        "lvl": "warn",
        "msg": "user=alice action=login src=10.1.2.3 result=fail",
        "kube": {"ns": "payments", "pod": "api-7d9f-abc"},
        "event": {"dataset": "acme.auth", "original": "{\"ts\":...}"}
    }))
}

const ACME: &str = r#"
.orchestrator.namespace = del(.kube.ns)
.kubernetes.pod.name = del(.kube.pod)
del(.kube)
kv = parse_key_value!(.msg)
.user.name = kv.user
.source.ip = kv.src
.event.action = kv.action
.event.outcome = if kv.result == "fail" { "failure" } else { "success" }
.message = del(.msg)
.log.level = del(.lvl)
.@timestamp = parse_timestamp!(del(.ts), "%+")
"#;

#[test]
fn renames_parses_and_sets_constants() {
    let mut e = acme();
    let failures = one(ACME).apply(&mut e);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(e.get_str("orchestrator.namespace"), Some("payments"));
    assert_eq!(e.get_str("kubernetes.pod.name"), Some("api-7d9f-abc"));
    assert_eq!(e.get_str("user.name"), Some("alice"));
    assert_eq!(e.get_str("source.ip"), Some("10.1.2.3"));
    assert_eq!(e.get_str("event.action"), Some("login"));
    assert_eq!(e.get_str("event.outcome"), Some("failure"));
    assert_eq!(e.get_str("log.level"), Some("warn"));
    assert_eq!(e.get_str("event.dataset"), Some("acme.auth"));
    assert_eq!(e.get_str("event.original"), Some("{\"ts\":...}"));
    assert_eq!(e.get_str("@timestamp"), Some("2026-12-07T08:00:00Z"));
    assert!(e.get("kube").is_none() && e.get("msg").is_none() && e.get("ts").is_none());
    assert!(e.get(ERROR_FIELD).is_none());
    assert!(e.timestamp().is_some());
}

#[test]
fn a_failing_program_keeps_the_event_and_names_the_line_and_column() {
    let program = ".a = 1\n.parsed = parse_json!(.message)\n";
    let mut e = event(json!({"message": "not json", "event": {"original": "not json"}}));
    let before = e.clone();
    let failures = one(program).apply(&mut e);
    assert_eq!(failures.len(), 1);
    let failure = &failures[0];
    assert_eq!(failure.at.map(|a| a.0), Some(2), "{failure}");
    assert!(failure.message.contains("parse_json"), "{failure}");
    assert!(
        !failure.message.contains(" at ("),
        "no byte offsets: {failure}"
    );
    // Nothing of the failed run is kept, not even what it did before failing.
    let mut expected = before;
    expected.set(ERROR_FIELD, Json::String(failure.to_string()));
    assert_eq!(e, expected);
    let text = e.get_str(ERROR_FIELD).unwrap_or_default();
    assert!(text.starts_with("test, line 2, column "), "{text}");
}

#[test]
fn a_program_that_does_not_compile_says_where() {
    let err = Mappings::from_program("bad", ".a = 1\n.b = parse_json(.message)\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    // VRL makes the author handle a call that can fail.
    assert!(err.contains("mapping `bad`"), "{err}");
    assert!(err.contains("2 │") || err.contains("2 |"), "{err}");
    assert!(err.contains("fallible"), "{err}");
    let err = Mappings::from_program("unknown", ".a = no_such_function(.b)")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("no_such_function"), "{err}");
}

#[test]
fn the_original_is_kept_whatever_the_program_does() {
    let mut e = event(json!({"message": "x", "event": {"original": "raw line"}}));
    let failures = one("del(.event.original)\n.note = \"mapped\"").apply(&mut e);
    assert!(failures.is_empty());
    assert_eq!(e.get_str("event.original"), Some("raw line"));
    assert_eq!(e.get_str("note"), Some("mapped"));
    let mut e = event(json!({"event": {"original": "raw line"}}));
    one(".event.original = \"forged\"").apply(&mut e);
    assert_eq!(e.get_str("event.original"), Some("raw line"));
}

#[test]
fn abort_and_non_object_results_leave_the_event_alone() {
    let mut e = event(json!({"a": 1}));
    let failures = one(".b = 2\nabort").apply(&mut e);
    assert_eq!(failures.len(), 1);
    assert_eq!(e.get("b"), None);
    assert_eq!(e.get("a"), Some(&json!(1)));
    let mut e = event(json!({"a": 1}));
    let failures = one(". = \"text\"").apply(&mut e);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].message.contains("not an object"));
    assert_eq!(e.get("a"), Some(&json!(1)));
}

#[test]
fn datasets_select_events_and_mappings_chain_in_order() {
    let toml = r#"
[[mappings]]
name = "acme"
datasets = ["acme.*"]
program = '.stage = "one"'

[[mappings]]
name = "second"
datasets = ["*.auth"]
program = '.stage = string!(.stage || "none") + "+two"'
"#;
    #[derive(serde::Deserialize)]
    struct Config {
        mappings: Vec<MappingConfig>,
    }
    let config: Config = toml::from_str(toml).unwrap_or_else(|e| panic!("{e}"));
    let mappings = Mappings::compile(&config.mappings, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mappings.names().collect::<Vec<_>>(), ["acme", "second"]);
    let mut auth = event(json!({"event": {"dataset": "acme.auth"}}));
    assert!(mappings.apply(&mut auth).is_empty());
    assert_eq!(auth.get_str("stage"), Some("one+two"));
    let mut web = event(json!({"event": {"dataset": "acme.web"}}));
    mappings.apply(&mut web);
    assert_eq!(web.get_str("stage"), Some("one"));
    let mut other = event(json!({"event": {"dataset": "nginx.access"}}));
    mappings.apply(&mut other);
    assert_eq!(other.get("stage"), None);
}

#[test]
fn configuration_errors_name_the_mapping_and_the_field() {
    let cases = [
        (MappingConfig::default(), "`name` is empty"),
        (
            MappingConfig {
                name: "x".into(),
                ..Default::default()
            },
            "give the VRL `program` or its `file`",
        ),
        (
            MappingConfig {
                name: "x".into(),
                program: Some(".a = 1".into()),
                file: Some("x.vrl".into()),
                ..Default::default()
            },
            "not both",
        ),
        (
            MappingConfig {
                name: "x".into(),
                datasets: vec![" ".into()],
                program: Some(".a = 1".into()),
                ..Default::default()
            },
            "`datasets` has an empty entry",
        ),
    ];
    for (config, expected) in cases {
        let err = Mappings::compile(&[config], None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(expected), "{err}");
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = MappingConfig {
        name: "file".into(),
        file: Some("absent.vrl".into()),
        ..Default::default()
    };
    let err = Mappings::compile(&[missing], Some(dir.path()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("absent.vrl"), "{err}");
    std::fs::write(dir.path().join("ok.vrl"), ".from_file = true\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let from_file = MappingConfig {
        name: "file".into(),
        file: Some("ok.vrl".into()),
        ..Default::default()
    };
    let mappings =
        Mappings::compile(&[from_file], Some(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let mut e = event(json!({}));
    mappings.apply(&mut e);
    assert_eq!(e.get("from_file"), Some(&json!(true)));
}

#[test]
fn an_nginx_line_no_parser_was_told_about() {
    // A combined-format line shipped as a bare string field by an in-house shipper.
    let line = r#"10.0.0.7 - bob [07/Dec/2026:08:00:00 +0000] "GET /admin/../../etc/passwd HTTP/1.1" 404 153 "-" "curl/8.5.0""#;
    let mut e = event(json!({"payload": line, "event": {"dataset": "inhouse"}}));
    let program = r#"
parsed, err = parse_nginx_log(.payload, "combined")
if err == null {
  .source.ip = parsed.client
  .user.name = parsed.user
  request = parse_regex(parsed.request, r'^(?P<method>\S+) (?P<path>\S+)') ?? {}
  .http.request.method = request.method
  .url.original = request.path
  .http.response.status_code = parsed.status
  .user_agent.original = parsed.agent
  del(.payload)
}
"#;
    let failures = one(program).apply(&mut e);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(e.get_str("source.ip"), Some("10.0.0.7"));
    assert_eq!(e.get_str("user.name"), Some("bob"));
    assert_eq!(e.get_str("http.request.method"), Some("GET"));
    assert_eq!(e.get_str("url.original"), Some("/admin/../../etc/passwd"));
    assert_eq!(e.get("http.response.status_code"), Some(&json!(404)));
    assert_eq!(e.get_str("user_agent.original"), Some("curl/8.5.0"));
}

#[test]
fn line_columns_count_characters() {
    assert_eq!(line_column("abc", 0), (1, 1));
    assert_eq!(line_column("a\nbé c", 6), (2, 4));
    assert_eq!(line_column("a\n", 99), (2, 1));
}

#[test]
fn offsets_are_stripped_from_messages() {
    assert_eq!(
        strip_offsets(r#"function call error for "string" at (77:90): expected string, got null"#),
        r#"function call error for "string": expected string, got null"#
    );
    assert_eq!(strip_offsets("look at (this): x"), "look at (this): x");
}
