//! Access logs: real nginx, Apache, Traefik, Envoy and Istio lines (`tests/golden/access_log/`,
//! see its README for sources) through the standalone parsers and inside container log lines,
//! checked against what the upstream projects document, plus property tests of the message
//! step: it never panics and leaves lines that are not access logs alone.

mod common;

use common::{assert_golden, read_golden, snapshot};
use crowsnest_model::{ecs, Event};
use crowsnest_normalize::access_log::{enrich, parse_message};
use crowsnest_normalize::registry::{self, parse_lines, Source};
use crowsnest_normalize::{decode_ndjson, Decoded, Limits};
use proptest::prelude::*;
use serde_json::{json, Value};

fn named(parser: &str, body: &[u8]) -> Decoded {
    let parser = registry::by_name(parser).expect("a registered parser");
    parse_lines(body, Source::Named(parser), &Limits::default())
}

fn lines(name: &str) -> Vec<String> {
    String::from_utf8(read_golden(&format!("access_log/{name}.input")))
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The web fields of an event (what must not depend on how the line arrived).
fn web(event: &Event) -> Value {
    let pick = |path: &str| event.get(path).cloned().unwrap_or(Value::Null);
    json!({
        "source": pick("source"), "url": pick("url"), "http": pick("http"),
        "user_agent": pick("user_agent"), "category": pick("event.category"),
    })
}

#[test]
fn golden_outputs_of_the_standalone_parsers() {
    for (parser, dataset) in [
        ("nginx", "nginx.access"),
        ("apache", "apache.access"),
        ("traefik", "traefik.access"),
        ("envoy", "envoy.access"),
    ] {
        let body = read_golden(&format!("access_log/{parser}.input"));
        let decoded = named(parser, &body);
        assert!(decoded.errors.is_empty(), "{parser}: {:?}", decoded.errors);
        assert_eq!(decoded.events.len(), lines(parser).len());
        for (event, line) in decoded.events.iter().zip(lines(parser)) {
            assert_eq!(event.get_str(ecs::EVENT_DATASET), Some(dataset), "{line}");
            assert_eq!(event.get_str(ecs::EVENT_ORIGINAL), Some(line.as_str()));
            assert_eq!(event.get("event.category"), Some(&json!(["web"])), "{line}");
        }
        assert_golden(
            &format!("access_log/{parser}.expected.json"),
            &snapshot(&decoded, false),
        );
    }
}

#[test]
fn documented_fields_of_the_samples() {
    let nginx = named("nginx", &read_golden("access_log/nginx.input")).events;
    // beats' expected output: the address nginx saw, the request, the status, the agent.
    assert_eq!(nginx[0].get_str("source.ip"), Some("127.0.0.1"));
    assert_eq!(
        nginx[0].get_str("@timestamp"),
        Some("2016-12-07T10:05:07.000000Z")
    );
    assert_eq!(nginx[0].get_str("url.original"), Some("/ocelot"));
    assert_eq!(nginx[0].get("http.response.status_code"), Some(&json!(200)));
    assert_eq!(nginx[0].get("http.response.body.bytes"), Some(&json!(571)));
    assert_eq!(nginx[4].get_str("source.ip"), Some("10.2.1.185"));
    assert_eq!(nginx[4].get_str("url.path"), Some("/assets/xxxx"));
    assert_eq!(nginx[4].get_str("url.query"), Some("q=100"));
    assert_eq!(
        nginx[4].get_str("user_agent.original"),
        Some("Amazon CloudFront")
    );
    assert_eq!(nginx[5].get_str("source.ip"), Some("10.2.2.121"));
    assert_eq!(nginx[6].get("http.request.method"), None); // "" request: a 400
    assert_eq!(nginx[6].get("http.response.status_code"), Some(&json!(400)));

    let apache = named("apache", &read_golden("access_log/apache.input")).events;
    assert_eq!(apache[0].get_str("source.ip"), Some("::1"));
    assert_eq!(
        apache[0].get_str("@timestamp"),
        Some("2016-12-26T14:16:29.000000Z")
    );
    assert_eq!(apache[0].get("user_agent"), None); // common format: no agent
    assert_eq!(apache[2].get("http.response.body.bytes"), None); // "-" 408 -
    assert_eq!(
        apache[4].get_str("source.domain"),
        Some("monitoring-server")
    );
    assert_eq!(apache[6].get_str("source.ip"), Some("123.123.123.123"));

    let traefik = named("traefik", &read_golden("access_log/traefik.input")).events;
    assert_eq!(
        traefik[0].get_str("http.request.referrer"),
        Some("http://example.com/login")
    );
    assert_eq!(
        traefik[0].get("http.response.status_code"),
        Some(&json!(304))
    );
    // The recorded line with an unterminated router quote still maps.
    assert_eq!(
        traefik[1].get_str("url.original"),
        Some("/ui/favicons/favicon.ico")
    );
    assert_eq!(traefik[1].get_str("source.ip"), Some("85.181.35.98"));

    let envoy = named("envoy", &read_golden("access_log/envoy.input")).events;
    // Envoy's documented example: POST, 204, 0 bytes sent, X-Forwarded-For 10.0.35.28.
    assert_eq!(envoy[0].get_str("http.request.method"), Some("POST"));
    assert_eq!(envoy[0].get_str("http.version"), Some("2"));
    assert_eq!(envoy[0].get("http.response.status_code"), Some(&json!(204)));
    assert_eq!(envoy[0].get("http.response.body.bytes"), Some(&json!(0)));
    assert_eq!(envoy[0].get_str("source.ip"), Some("10.0.35.28"));
    assert_eq!(envoy[0].get_str("user_agent.original"), Some("nsq2http"));
    assert_eq!(envoy[0].get_str("url.domain"), Some("locations"));
    assert_eq!(
        envoy[0].get_str("@timestamp"),
        Some("2016-04-15T20:17:00.310000Z")
    );
    // Istio's table: BYTES_SENT 135, DOWNSTREAM_REMOTE_ADDRESS 10.44.1.23 (both proxies).
    for event in &envoy[1..] {
        assert_eq!(event.get("http.response.status_code"), Some(&json!(418)));
        assert_eq!(event.get("http.response.body.bytes"), Some(&json!(135)));
        assert_eq!(event.get_str("source.ip"), Some("10.44.1.23"));
        assert_eq!(
            event.get_str("user_agent.original"),
            Some("curl/7.73.0-DEV")
        );
        assert_eq!(event.get_str("url.domain"), Some("httpbin"));
        assert_eq!(
            event.get_str("http.request.id"),
            Some("84961386-6d84-929d-98bd-c5aee93b5c88")
        );
    }
}

#[test]
fn container_lines_get_the_same_web_fields() {
    for parser in ["nginx", "apache", "traefik", "envoy"] {
        for line in lines(parser) {
            let standalone = named(parser, line.as_bytes()).events.remove(0);
            let cri = format!("2024-05-01T10:00:00.000000001Z stdout F {line}");
            let docker = json!({"log": format!("{line}\n"), "stream": "stdout", "time": "2024-05-01T10:00:00Z"});
            let shipped = json!({"log": line, "stream": "stdout"});
            let from_cri = named("cri", cri.as_bytes()).events.remove(0);
            let from_docker =
                decode_ndjson(docker.to_string().as_bytes(), None, &Limits::default())
                    .events
                    .remove(0);
            let from_shipper = decode_ndjson(
                shipped.to_string().as_bytes(),
                Some("web-shipper"),
                &Limits::default(),
            )
            .events
            .remove(0);
            for (how, event) in [
                ("cri", &from_cri),
                ("docker", &from_docker),
                ("shipper", &from_shipper),
            ] {
                assert_eq!(web(event), web(&standalone), "{how}: {line}");
            }
            // The container's time and dataset stay.
            assert_eq!(from_cri.get_str(ecs::EVENT_DATASET), Some("container.logs"));
            assert_eq!(
                from_cri.get_str("@timestamp"),
                Some("2024-05-01T10:00:00.000000Z")
            );
            assert_eq!(
                from_shipper.get_str(ecs::EVENT_DATASET),
                Some("web-shipper")
            );
        }
    }
}

#[test]
fn json_access_records_map_on_both_paths() {
    let nginx = r#"{"time_local":"01/May/2024:10:00:00 +0000","remote_addr":"203.0.113.7","remote_user":"","request":"GET /api/items?id=3 HTTP/1.1","status":"200","body_bytes_sent":"512","http_referer":"","http_user_agent":"curl/8.5.0","request_time":"0.003"}"#;
    let istio = r#"{"start_time":"2022-10-23T22:15:39.663Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":200,"bytes_sent":37,"user_agent":"curl/7.35.0","x_forwarded_for":null,"authority":"nginx","downstream_remote_address":"10.0.0.10:34567","request_id":"e2873f51-0a42-4da4-a8e8-f711b46dea5c"}"#;
    let traefik = r#"{"ClientHost":"198.51.100.20","RequestMethod":"POST","RequestPath":"/login?next=/","RequestProtocol":"HTTP/2.0","DownstreamStatus":401,"DownstreamContentSize":19,"RequestHost":"shop.example.com","request_User-Agent":"Mozilla/5.0","StartUTC":"2024-05-01T10:00:00.5Z"}"#;
    let caddy = r#"{"level":"info","ts":1714557600.5,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"203.0.113.9","proto":"HTTP/2.0","method":"GET","host":"example.com","uri":"/admin","headers":{"User-Agent":["curl/8.5.0"]}},"status":403,"size":0}"#;
    for (record, ip, method, url, status) in [
        (nginx, "203.0.113.7", "GET", "/api/items?id=3", 200),
        (istio, "10.0.0.10", "GET", "/", 200),
        (traefik, "198.51.100.20", "POST", "/login?next=/", 401),
        (caddy, "203.0.113.9", "GET", "/admin", 403),
    ] {
        // As an NDJSON record (generic), and as the message of a container line.
        let generic = decode_ndjson(record.as_bytes(), None, &Limits::default())
            .events
            .remove(0);
        let docker = json!({"log": format!("{record}\n"), "stream": "stdout", "time": "2024-05-01T10:00:00Z"});
        let contained = decode_ndjson(docker.to_string().as_bytes(), None, &Limits::default())
            .events
            .remove(0);
        for event in [&generic, &contained] {
            assert_eq!(event.get_str("source.ip"), Some(ip), "{record}");
            assert_eq!(event.get_str("http.request.method"), Some(method));
            assert_eq!(event.get_str("url.original"), Some(url));
            assert_eq!(event.get("http.response.status_code"), Some(&json!(status)));
        }
        assert_eq!(
            contained.get_str(ecs::EVENT_DATASET),
            Some("container.logs")
        );
    }
}

#[test]
fn ecs_records_and_other_lines_are_left_alone() {
    let ecs_record = r#"{"message":"1.2.3.4 - - [07/Dec/2016:11:05:07 +0100] \"GET /x HTTP/1.1\" 200 1 \"-\" \"ua\"","url":{"original":"/mine"},"http":{"request":{"method":"PUT"}}}"#;
    let event = decode_ndjson(ecs_record.as_bytes(), None, &Limits::default())
        .events
        .remove(0);
    assert_eq!(event.get_str("url.original"), Some("/mine"));
    assert_eq!(event.get_str("http.request.method"), Some("PUT"));
    assert_eq!(event.get("event.category"), None);
    for line in [
        "2024-05-01 10:00:00 INFO Started Application in 3.2 seconds",
        "[2024-05-01 10:00:00] app.INFO: GET /x served",
        r#"{"level":"info","path":"/var/lib/data","status":1}"#,
        r#"{"msg":"cache miss","method":"lookup"}"#,
        "10.0.0.1 - - [yesterday] \"GET / HTTP/1.1\" 200 1",
    ] {
        assert!(parse_message(line).is_none(), "{line}");
        let cri = format!("2024-05-01T10:00:00Z stderr F {line}");
        let event = named("cri", cri.as_bytes()).events.remove(0);
        assert!(
            event.get("url").is_none() && event.get("http").is_none(),
            "{line}"
        );
        assert!(event.get("event.category").is_none(), "{line}");
    }
    // A line in a named stream that is not an access line is kept, as `<name>.log`.
    let error = "2024/05/01 10:00:00 [error] 29#29: *1 open() \"/usr/share/nginx/html/x\" failed (2: No such file or directory)";
    let decoded = named("nginx", error.as_bytes());
    assert!(decoded.errors.is_empty());
    assert_eq!(
        decoded.events[0].get_str(ecs::EVENT_DATASET),
        Some("nginx.log")
    );
    assert_eq!(decoded.events[0].get_str(ecs::MESSAGE), Some(error));
}

#[test]
fn text_detection_picks_the_access_parsers() {
    let pick = |line: &str| registry::detect_text(line).map(|p| p.name());
    assert_eq!(pick(&lines("nginx")[1]), Some("nginx"));
    assert_eq!(pick(&lines("traefik")[0]), Some("traefik"));
    assert_eq!(pick(&lines("envoy")[1]), Some("envoy"));
    assert_eq!(
        pick("2016-10-06T00:17:09.669794202Z stdout F x"),
        Some("cri")
    );
}

fn real_lines() -> Vec<String> {
    ["nginx", "apache", "traefik", "envoy"]
        .iter()
        .flat_map(|p| lines(p))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any text: the step never panics, and a message with none of the shapes' markers
    /// (`] "`, a leading `[` or `{`) leaves the event exactly as it was.
    #[test]
    fn the_step_never_panics_and_leaves_other_text_alone(text in "\\PC{0,300}") {
        let mut event = Event::new();
        event.set(ecs::MESSAGE, json!(text));
        let before = event.clone();
        let changed = enrich(&mut event);
        if !text.contains("] \"") && !text.starts_with(['[', '{']) {
            prop_assert!(!changed);
            prop_assert_eq!(event, before);
        }
    }

    /// Real lines cut, spliced and garbled: never a panic, and whatever maps has a status.
    #[test]
    fn mutated_real_lines_never_panic(
        index in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        insert in "[\\[\\]\" {}\\\\a-z0-9:/%$.-]{0,12}",
    ) {
        let lines = real_lines();
        let line = index.get(&lines);
        let mut at = cut.index(line.len() + 1);
        while !line.is_char_boundary(at) {
            at -= 1;
        }
        let mutated = format!("{}{}{}", &line[..at], insert, &line[at..]);
        for text in [mutated.as_str(), &line[..at]] {
            if let Some(access) = parse_message(text) {
                prop_assert!(access.status.is_some());
            }
            for parser in ["nginx", "envoy", "traefik", "apache"] {
                let decoded = named(parser, text.as_bytes());
                prop_assert!(decoded.events.len() + decoded.errors.len() <= 1);
            }
        }
    }

    /// Generated combined lines: the request target, referrer and agent come back as written.
    #[test]
    fn combined_lines_round_trip(
        path in "/[a-zA-Z0-9/._~%-]{0,40}",
        query in proptest::option::of("[a-zA-Z0-9=&%${}:.-]{1,40}"),
        agent in "[a-zA-Z0-9 ;:/().,${}-]{1,60}",
        status in 100i64..600,
    ) {
        let target = match &query { Some(q) => format!("{path}?{q}"), None => path.clone() };
        let line = format!(r#"192.0.2.1 - - [01/May/2024:10:00:00 +0000] "GET {target} HTTP/1.1" {status} 5 "-" "{agent}""#);
        let access = parse_message(&line).expect("a combined line");
        prop_assert_eq!(access.url.as_deref(), Some(target.as_str()));
        prop_assert_eq!(access.status, Some(status));
        let expected = (agent != "-").then_some(agent.as_str());
        prop_assert_eq!(access.user_agent.as_deref(), expected);
    }
}
