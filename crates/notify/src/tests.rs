//! Payload shapes (against the vendors' documented fields), the Standard Webhooks signature,
//! routes, configuration errors and the outbox against receivers on 127.0.0.1.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crowsnest_model::{Alert, Severity};
use crowsnest_respond::{IncidentConfig, Incidents};
use serde_json::Value;

use super::*;
use crate::config::{ChannelConfig, NotifyConfig, RouteConfig};
use crate::payload;

fn t(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_765_000_000, 0).expect("time") + chrono::Duration::minutes(minutes)
}

fn alert(id: &str, level: Severity, at: i64) -> Alert {
    Alert {
        id: id.into(),
        rule_id: format!("rule-{id}"),
        title: format!("Shell in container {id}"),
        level,
        tags: vec!["attack.execution".into(), "attack.t1609".into()],
        techniques: vec!["T1609".into()],
        entity: [
            ("kubernetes.namespace", "payments"),
            ("kubernetes.pod.name", "web-7d4b9c6f5-x2kq9"),
            ("orchestrator.cluster.name", "prod-eu"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>(),
        event_ids: vec![format!("e-{id}")],
        count: 1,
        first_seen: t(at),
        last_seen: t(at),
        fold_key: id.into(),
        correlation: None,
    }
}

/// An incident with `n` alerts, and the notices its changes made.
fn incident(n: usize, level: Severity) -> (Incidents, Vec<Notice>) {
    let mut incidents = Incidents::new(IncidentConfig::default());
    let mut all = Vec::new();
    for i in 0..n {
        let changes = incidents.offer(&alert(&format!("a{i}"), level, i as i64));
        all.extend(notices(&changes, &incidents));
    }
    (incidents, all)
}

fn opened() -> Notice {
    incident(1, Severity::High).1.remove(0)
}

fn resolved(by: &str) -> Notice {
    let (mut incidents, notices) = incident(1, Severity::High);
    let id = notices[0].incident.id.clone();
    let incident = incidents
        .set_status(&id, crowsnest_respond::Status::Resolved, None, None)
        .expect("resolve")
        .clone();
    Notice::of_status(&incident, t(30), by).expect("notice")
}

fn channel(name: &str, kind: &str, url: &str) -> ChannelConfig {
    let mut config: ChannelConfig = toml::from_str(&format!(
        "name = {name:?}\nkind = {kind:?}\nurl = {url:?}\n"
    ))
    .expect("channel");
    if kind == "pagerduty" {
        config.routing_key = Some("R0123456789ABCDEF0123456789ABCDE".into());
    }
    if kind == "opsgenie" {
        config.api_key = Some("og-key".into());
    }
    config
}

fn resolve(config: &ChannelConfig) -> config::Channel {
    NotifyConfig {
        channels: vec![config.clone()],
        routes: vec![RouteConfig {
            channels: vec![config.name.clone()],
            ..RouteConfig::default()
        }],
        ..NotifyConfig::default()
    }
    .validate()
    .expect("valid")
    .remove(0)
}

fn body(payload: payload::Payload) -> (payload::HttpRequest, Value) {
    match payload {
        payload::Payload::Http(request) => {
            let json = serde_json::from_slice(&request.body).expect("json body");
            (request, json)
        }
        other => panic!("expected HTTP, got {other:?}"),
    }
}

#[test]
fn changes_have_stable_keys_and_updates_count_alerts() {
    let (_, notices) = incident(3, Severity::Medium);
    let kinds: Vec<_> = notices.iter().map(|n| n.change).collect();
    assert_eq!(
        kinds,
        [ChangeKind::Opened, ChangeKind::Updated, ChangeKind::Updated]
    );
    let id = &notices[0].incident.id;
    assert_eq!(notices[0].key, format!("{id}:opened"));
    assert_eq!(notices[1].key, format!("{id}:updated:2"));
    assert_eq!(notices[2].key, format!("{id}:updated:3"));
    // The same alerts again (a replay) make the same keys.
    let (_, again) = incident(3, Severity::Medium);
    assert_eq!(
        again.iter().map(|n| &n.key).collect::<Vec<_>>(),
        notices.iter().map(|n| &n.key).collect::<Vec<_>>()
    );
    // A high alert opens and pages at once.
    let (_, high) = incident(1, Severity::High);
    assert_eq!(high[1].change, ChangeKind::Paged);
    assert_eq!(high[1].incident.cluster.as_deref(), Some("prod-eu"));
    assert!(high[1].incident.tags.contains("attack.execution"));
    assert!(high[1].incident.tags.contains("attack.t1609"));
}

#[test]
fn routes_match_level_risk_tags_namespace_cluster_and_change() {
    let notice = opened(); // high, payments, prod-eu, risk 30+
    let route = |toml_text: &str| -> RouteConfig {
        toml::from_str(&format!("channels = [\"c\"]\n{toml_text}")).expect("route")
    };
    assert!(route("").matches(&notice));
    assert!(route("min_level = \"high\"").matches(&notice));
    assert!(!route("min_level = \"critical\"").matches(&notice));
    assert!(route("min_risk = 30").matches(&notice));
    assert!(!route("min_risk = 31").matches(&notice));
    assert!(route("tags = [\"attack.exec*\"]").matches(&notice));
    assert!(route("tags = [\"attack.T1609\"]").matches(&notice));
    assert!(!route("tags = [\"attack.persistence\"]").matches(&notice));
    assert!(route("namespaces = [\"pay*\"]").matches(&notice));
    assert!(!route("namespaces = [\"kube-system\"]").matches(&notice));
    assert!(route("clusters = [\"prod-*\"]").matches(&notice));
    assert!(!route("clusters = [\"staging\"]").matches(&notice));
    assert!(!route("changes = [\"resolved\"]").matches(&notice));
    let (_, notices) = incident(2, Severity::Low);
    assert!(
        !route("").matches(&notices[1]),
        "updated is not in the default changes"
    );
    assert!(route("changes = [\"updated\"]").matches(&notices[1]));
}

#[test]
fn config_errors_name_the_channel_the_field_and_why() {
    let check = |text: &str, expect: &str| {
        let config: NotifyConfig = toml::from_str(text).expect("toml");
        let error = config.validate().expect_err(text).to_string();
        assert!(error.contains(expect), "{error} should contain {expect}");
    };
    check(
        "[[channels]]\nname = \"s\"\nkind = \"slack\"\n[[routes]]\nchannels = [\"s\"]",
        "channel \"s\": url: required for slack",
    );
    check(
        "[[channels]]\nname = \"p\"\nkind = \"pagerduty\"\n[[routes]]\nchannels = [\"p\"]",
        "channel \"p\": routing_key: required for pagerduty",
    );
    check(
        "[[channels]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nsecret = \"whsec_!!\"\n[[routes]]\nchannels = [\"w\"]",
        "channel \"w\": secret: expected `whsec_`",
    );
    check(
        "[[channels]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"${CROWSNEST_TEST_UNSET_VARIABLE}\"\n[[routes]]\nchannels = [\"w\"]",
        "url: the environment variable `CROWSNEST_TEST_UNSET_VARIABLE` is not set",
    );
    check(
        "[[channels]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"ftp://x\"\n[[routes]]\nchannels = [\"w\"]",
        "channel \"w\": url: expected an http:// or https:// URL",
    );
    check(
        "[[channels]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"http://x/\"\n[[routes]]\nchannels = [\"nope\"]",
        "route 1: channels: no channel is named \"nope\"",
    );
    check(
        "[[channels]]\nname = \"m\"\nkind = \"email\"\nsmtp_host = \"mail\"\nfrom = \"a@example.com\"\n[[routes]]\nchannels = [\"m\"]",
        "channel \"m\": to: name at least one recipient",
    );
    check(
        "[[channels]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"http://x/\"",
        "no [[notify.routes]]",
    );
    check(
        "[[channels]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"http://x/\"\n[[channels]]\nname = \"w\"\nkind = \"slack\"\nurl = \"http://y/\"\n[[routes]]\nchannels = [\"w\"]",
        "two channels have this name",
    );
    // Secrets from a file.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("key");
    std::fs::write(&file, "  R0123456789ABCDEF0123456789ABCDE\n").expect("write");
    let mut pd = channel("p", "pagerduty", "http://127.0.0.1:1/");
    pd.routing_key = None;
    pd.routing_key_file = Some(file);
    assert_eq!(resolve(&pd).key, "R0123456789ABCDEF0123456789ABCDE");
}

#[test]
fn slack_payload_is_block_kit_with_a_fallback_text() {
    let channel = resolve(&channel(
        "s",
        "slack",
        "https://hooks.example/services/T/B/X",
    ));
    let (request, json) = body(
        payload::build(&channel, &opened(), "k", t(1), Some("https://cn.example"))
            .expect("payload"),
    );
    assert_eq!(request.url, "https://hooks.example/services/T/B/X");
    assert_eq!(request.content_type, "application/json");
    assert!(json["text"]
        .as_str()
        .expect("text")
        .starts_with("New incident: "));
    let blocks = json["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .expect("header")
            .chars()
            .count()
            <= 150
    );
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    let fields = blocks[1]["fields"].as_array().expect("fields");
    assert!(!fields.is_empty() && fields.len() <= 10);
    assert!(fields.iter().all(|f| f["type"] == "mrkdwn"));
    let context = blocks.last().expect("context");
    assert_eq!(context["type"], "context");
    assert!(context["elements"][0]["text"]
        .as_str()
        .expect("context text")
        .contains("<https://cn.example/incidents/"));
}

#[test]
fn teams_payload_is_a_message_with_an_adaptive_card() {
    let channel = resolve(&channel("t", "teams", "https://prod.workflows.example/x"));
    let (_, json) = body(payload::build(&channel, &opened(), "k", t(1), None).expect("payload"));
    assert_eq!(json["type"], "message");
    let attachment = &json["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(attachment["contentUrl"].is_null());
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(card["version"], "1.4");
    let body = card["body"].as_array().expect("body");
    assert_eq!(body[0]["type"], "TextBlock");
    let facts = body
        .iter()
        .find(|b| b["type"] == "FactSet")
        .expect("a FactSet");
    assert!(facts["facts"]
        .as_array()
        .expect("facts")
        .iter()
        .all(|f| f["title"].is_string() && f["value"].is_string()));
}

#[test]
fn pagerduty_triggers_acknowledges_and_resolves_by_dedup_key() {
    let channel = resolve(&channel(
        "p",
        "pagerduty",
        "https://events.example/v2/enqueue",
    ));
    let notice = opened();
    let (request, trigger) = body(
        payload::build(&channel, &notice, "k", t(1), Some("https://cn.example")).expect("payload"),
    );
    assert_eq!(request.url, "https://events.example/v2/enqueue");
    assert_eq!(trigger["routing_key"], "R0123456789ABCDEF0123456789ABCDE");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], notice.incident.id.as_str());
    let payload = &trigger["payload"];
    assert_eq!(payload["summary"], notice.incident.title.as_str());
    assert_eq!(payload["source"], "payments/web");
    assert_eq!(payload["severity"], "error", "high maps to error");
    assert!(payload["timestamp"]
        .as_str()
        .expect("timestamp")
        .ends_with('Z'));
    assert_eq!(payload["group"], "payments");
    assert!(payload["custom_details"]["risk"].is_number());
    assert_eq!(
        trigger["links"][0]["href"]
            .as_str()
            .map(|h| h.starts_with("https://cn.example/")),
        Some(true)
    );
    let (_, resolve) =
        body(payload::build(&channel, &resolved("ana"), "k2", t(2), None).expect("payload"));
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], notice.incident.id.as_str());
    assert!(resolve.get("payload").is_none(), "resolve needs no payload");
    for severity in [Severity::Critical, Severity::Medium, Severity::Low] {
        let (_, n) = incident(1, severity);
        let (_, json) = body(payload::build(&channel, &n[0], "k", t(1), None).expect("payload"));
        let expected = match severity {
            Severity::Critical => "critical",
            Severity::Medium => "warning",
            _ => "info",
        };
        assert_eq!(json["payload"]["severity"], expected);
    }
}

#[test]
fn alertmanager_posts_a_list_of_alerts_and_ends_them_on_resolve() {
    let channel = resolve(&channel("a", "alertmanager", "http://127.0.0.1:9093"));
    let (request, open) =
        body(payload::build(&channel, &opened(), "k", t(1), None).expect("payload"));
    assert_eq!(request.url, "http://127.0.0.1:9093/api/v2/alerts");
    let alerts = open.as_array().expect("a list");
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert["labels"]["alertname"], "CrowsnestIncident");
    assert_eq!(alert["labels"]["severity"], "high");
    assert_eq!(alert["labels"]["namespace"], "payments");
    assert_eq!(alert["labels"]["cluster"], "prod-eu");
    assert!(alert["labels"]
        .as_object()
        .expect("labels")
        .values()
        .all(Value::is_string));
    assert!(alert["annotations"]["summary"].is_string());
    assert!(DateTime::parse_from_rfc3339(alert["startsAt"].as_str().expect("startsAt")).is_ok());
    assert!(alert.get("endsAt").is_none());
    let now = t(40);
    let (_, done) =
        body(payload::build(&channel, &resolved("ana"), "k", now, None).expect("payload"));
    let ends =
        DateTime::parse_from_rfc3339(done[0]["endsAt"].as_str().expect("endsAt")).expect("date");
    assert_eq!(ends, now);
    assert_eq!(done[0]["labels"], alert["labels"], "the same alert ends");
}

#[test]
fn opsgenie_creates_by_alias_and_closes_by_alias() {
    let channel = resolve(&channel("o", "opsgenie", "https://api.eu.opsgenie.example"));
    let notice = opened();
    let (request, create) =
        body(payload::build(&channel, &notice, "k", t(1), None).expect("payload"));
    assert_eq!(request.url, "https://api.eu.opsgenie.example/v2/alerts");
    assert!(request
        .headers
        .contains(&("Authorization".into(), "GenieKey og-key".into())));
    assert_eq!(create["alias"], notice.incident.id.as_str());
    assert!(create["message"].as_str().expect("message").chars().count() <= 130);
    assert_eq!(create["priority"], "P2");
    assert!(
        create["details"]
            .as_object()
            .expect("details")
            .values()
            .all(Value::is_string),
        "details are string to string"
    );
    let (request, close) =
        body(payload::build(&channel, &resolved("ana"), "k", t(2), None).expect("payload"));
    assert_eq!(
        request.url,
        format!(
            "https://api.eu.opsgenie.example/v2/alerts/{}/close?identifierType=alias",
            notice.incident.id
        )
    );
    assert_eq!(close["user"], "ana");
}

#[test]
fn the_standard_webhooks_signature_matches_the_specification_vector() {
    // The example of the Standard Webhooks specification.
    let key = config::decode_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
    let signature = payload::webhook_signature(
        &key,
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1_614_265_330,
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

#[test]
fn webhook_is_a_signed_cloudevent() {
    let mut config = channel("w", "webhook", "http://127.0.0.1:1/hook");
    config.secret = Some("whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=".into());
    let channel = resolve(&config);
    let notice = opened();
    let now = t(5);
    let (request, event) =
        body(payload::build(&channel, &notice, &notice.key, now, None).expect("payload"));
    assert_eq!(request.content_type, "application/cloudevents+json");
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["id"], notice.key.as_str());
    assert_eq!(event["source"], "crowsnest");
    assert_eq!(event["type"], "io.crowsnest.incident.opened");
    assert_eq!(event["subject"], notice.incident.id.as_str());
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["data"]["incident"]["id"], notice.incident.id.as_str());
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .expect(name)
    };
    assert_eq!(header("webhook-id"), notice.key);
    assert_eq!(header("webhook-timestamp"), now.timestamp().to_string());
    assert_eq!(
        header("webhook-signature"),
        verify_independently(
            b"secret-key-for-tests",
            &notice.key,
            now.timestamp(),
            &request.body
        )
    );
}

/// HMAC-SHA256 written out from its definition (RFC 2104) over `sha2`, not through `hmac`.
fn verify_independently(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(format!("{id}.{timestamp}.").as_bytes());
    inner.update(body);
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(outer.finalize())
    )
}

#[test]
fn email_is_a_plain_text_message_to_every_recipient() {
    let config: ChannelConfig = toml::from_str(
        "name = \"m\"\nkind = \"email\"\nsmtp_host = \"mail.example\"\nfrom = \"crowsnest <cn@example.com>\"\nto = [\"a@example.com\", \"b@example.com\"]",
    )
    .expect("config");
    let channel = resolve(&config);
    let payload::Payload::Email(message) =
        payload::build(&channel, &opened(), "k", t(1), None).expect("payload")
    else {
        panic!("expected an email");
    };
    let text = String::from_utf8(message.formatted()).expect("utf-8");
    assert!(text.contains("To: a@example.com, b@example.com"), "{text}");
    assert!(
        text.contains("Subject: [crowsnest high] New incident: "),
        "{text}"
    );
    assert!(text.contains("Content-Type: text/plain"), "{text}");
}

// ---- the outbox against receivers on 127.0.0.1 ----

/// How a receiver answers request number `n` (from 0).
#[derive(Clone, Copy)]
enum Reply {
    Ok,
    Status(u16, Option<&'static str>),
    Hang,
}

#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    headers: BTreeMap<String, String>,
    body: Value,
}

struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let log = got.clone();
        let script = Arc::new(script);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let (log, script) = (log.clone(), script.clone());
                std::thread::spawn(move || serve(stream, n, &log, &*script));
            }
        });
        Self { url, got }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }
}

fn serve(stream: TcpStream, n: usize, log: &Mutex<Vec<Received>>, script: &dyn Fn(usize) -> Reply) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut headers = BTreeMap::new();
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let reply = script(n);
    log.lock().expect("lock").push(Received {
        at: Instant::now(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let mut stream = stream;
    let answer = match reply {
        Reply::Ok => {
            "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".to_string()
        }
        Reply::Status(code, retry_after) => format!(
            "HTTP/1.1 {code} Nope\r\ncontent-length: 4\r\nconnection: close\r\n{}\r\nbusy",
            retry_after
                .map(|r| format!("retry-after: {r}\r\n"))
                .unwrap_or_default()
        ),
        Reply::Hang => {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
    };
    let _ = stream.write_all(answer.as_bytes());
}

fn webhook(name: &str, url: &str) -> ChannelConfig {
    let mut config = channel(name, "webhook", url);
    config.timeout_secs = Some(2);
    config.rate_per_minute = Some(600);
    config
}

fn outbox_config(channels: Vec<ChannelConfig>, changes: &[&str]) -> NotifyConfig {
    let names = channels.iter().map(|c| c.name.clone()).collect();
    let changes = changes
        .iter()
        .map(|c| serde_json::from_value(Value::String((*c).into())).expect("change"))
        .collect();
    NotifyConfig {
        channels,
        routes: vec![RouteConfig {
            channels: names,
            changes: Some(changes),
            ..RouteConfig::default()
        }],
        retry_initial_ms: 20,
        retry_max_secs: 1,
        update_interval_secs: 1,
        ..NotifyConfig::default()
    }
}

fn open(config: NotifyConfig, dir: &Path) -> Arc<Outbox> {
    Outbox::open(config, dir).expect("open").expect("channels")
}

fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn updates_of_one_incident_coalesce_while_one_waits() {
    let receiver = Receiver::start(|_| Reply::Ok);
    let dir = tempfile::tempdir().expect("dir");
    let mut config = outbox_config(vec![webhook("w", &receiver.url)], &["opened", "updated"]);
    config.update_interval_secs = 2;
    let outbox = open(config, dir.path());
    let (_, notices) = incident(6, Severity::Medium);
    // opened, then updated ×5: the first update goes at once, the next four wait for the
    // interval and go as one, with the newest snapshot.
    for notice in &notices[..2] {
        outbox.offer(notice);
    }
    wait_until("two deliveries", Duration::from_secs(5), || {
        receiver.got().len() == 2
    });
    for notice in &notices[2..] {
        outbox.offer(notice);
    }
    wait_until("the coalesced update", Duration::from_secs(6), || {
        receiver.got().len() == 3
    });
    std::thread::sleep(Duration::from_millis(2_500));
    let got = receiver.got();
    assert_eq!(
        got.len(),
        3,
        "one notification per waiting change, not per alert"
    );
    assert_eq!(got[2].body["data"]["incident"]["alert_count"], 6);
    assert_eq!(
        got[2].headers["webhook-id"], notices[2].key,
        "keyed by the first folded change"
    );
    assert!(
        got[2].at - got[1].at >= Duration::from_millis(1_900),
        "the update interval holds"
    );
    assert_eq!(outbox.status()[0].delivered, 3);
    outbox.shutdown();
}

#[test]
fn delivered_and_waiting_keys_survive_a_reopen() {
    let receiver = Receiver::start(|_| Reply::Ok);
    let dir = tempfile::tempdir().expect("dir");
    let config = outbox_config(
        vec![webhook("w", &receiver.url)],
        &["opened", "paged", "resolved"],
    );
    let notices = incident(1, Severity::High).1;
    let outbox = open(config.clone(), dir.path());
    for notice in &notices {
        outbox.offer(notice);
        outbox.offer(notice); // the same change twice: held already
    }
    wait_until("two deliveries", Duration::from_secs(5), || {
        receiver.got().len() == 2
    });
    assert_eq!(outbox.deduplicated(), 2);
    outbox.shutdown();
    drop(outbox);
    // After a restart the detector replays the same changes: none is sent again.
    let outbox = open(config.clone(), dir.path());
    for notice in &notices {
        outbox.offer(notice);
    }
    assert_eq!(outbox.deduplicated(), 2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.got().len(), 2);
    outbox.shutdown();
    drop(outbox);

    // A notification waiting when the outbox stops (its receiver is down) is sent after the
    // reopen, once.
    let gone = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/hook", gone.local_addr().expect("addr"));
    drop(gone);
    let dir = tempfile::tempdir().expect("dir");
    let outbox = open(
        outbox_config(vec![webhook("w", &dead_url)], &["opened"]),
        dir.path(),
    );
    outbox.offer(&notices[0]);
    wait_until("a failed attempt", Duration::from_secs(5), || {
        outbox.status()[0].retries > 0
    });
    outbox.shutdown();
    drop(outbox);
    let receiver = Receiver::start(|_| Reply::Ok);
    let outbox = open(
        outbox_config(vec![webhook("w", &receiver.url)], &["opened"]),
        dir.path(),
    );
    outbox.offer(&notices[0]); // replayed: held already
    wait_until("the delivery", Duration::from_secs(5), || {
        receiver.got().len() == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.got().len(), 1);
    assert_eq!(outbox.pending(), 0);
    outbox.shutdown();
}

#[test]
fn retry_after_is_honoured() {
    let receiver = Receiver::start(|n| match n {
        0 => Reply::Status(429, Some("2")),
        _ => Reply::Ok,
    });
    let dir = tempfile::tempdir().expect("dir");
    let outbox = open(
        outbox_config(vec![webhook("w", &receiver.url)], &["opened"]),
        dir.path(),
    );
    let notice = opened();
    outbox.offer(&notice);
    wait_until("the retry", Duration::from_secs(6), || {
        receiver.got().len() == 2
    });
    let got = receiver.got();
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_millis(1_900),
        "waited only {waited:?} (retry_initial_ms is 20)"
    );
    assert_eq!(
        got[0].headers["webhook-id"], got[1].headers["webhook-id"],
        "same idempotency key"
    );
    let status = &outbox.status()[0];
    assert_eq!((status.delivered, status.retries), (1, 1));
    assert!(status
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("429")));
    outbox.shutdown();
}

#[test]
fn a_hanging_receiver_does_not_delay_another_channel() {
    let hanging = Receiver::start(|_| Reply::Hang);
    let fine = Receiver::start(|_| Reply::Ok);
    let dir = tempfile::tempdir().expect("dir");
    let mut slow = webhook("slow", &hanging.url);
    slow.timeout_secs = Some(20);
    let outbox = open(
        outbox_config(vec![slow, webhook("fine", &fine.url)], &["opened", "paged"]),
        dir.path(),
    );
    let start = Instant::now();
    for notice in incident(1, Severity::High).1 {
        outbox.offer(&notice);
    }
    wait_until("the fine channel", Duration::from_secs(3), || {
        fine.got().len() == 2
    });
    assert!(start.elapsed() < Duration::from_secs(2));
    let status = outbox.status();
    let slow = status.iter().find(|s| s.name == "slow").expect("slow");
    assert_eq!((slow.delivered, slow.pending), (0, 2));
    drop(outbox); // its worker stays in its attempt; the test does not wait for it
}

#[test]
fn stateful_channels_get_the_resolve_even_when_routes_do_not_name_it() {
    let pd_receiver = Receiver::start(|_| Reply::Ok);
    let hook_receiver = Receiver::start(|_| Reply::Ok);
    let dir = tempfile::tempdir().expect("dir");
    let mut pd = channel("pd", "pagerduty", &pd_receiver.url);
    pd.rate_per_minute = Some(600);
    let mut config = outbox_config(vec![pd, webhook("w", &hook_receiver.url)], &["paged"]);
    config.retry_initial_ms = 20;
    let outbox = open(config, dir.path());
    let (mut incidents, notices) = incident(1, Severity::High);
    for notice in &notices {
        outbox.offer(notice);
    }
    let id = notices[0].incident.id.clone();
    let incident = incidents
        .set_status(&id, crowsnest_respond::Status::Resolved, None, None)
        .expect("resolve")
        .clone();
    outbox.offer(&Notice::of_status(&incident, t(9), "ana").expect("notice"));
    wait_until("trigger and resolve", Duration::from_secs(5), || {
        pd_receiver.got().len() == 2
    });
    let got = pd_receiver.got();
    assert_eq!(got[0].body["event_action"], "trigger");
    assert_eq!(got[1].body["event_action"], "resolve");
    assert_eq!(got[1].body["dedup_key"], id.as_str());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        hook_receiver.got().len(),
        1,
        "the webhook route takes only `paged`"
    );
    outbox.shutdown();
}

#[test]
fn a_refused_notification_is_given_up_loudly_and_the_next_goes() {
    let receiver = Receiver::start(|n| {
        if n == 0 {
            Reply::Status(400, None)
        } else {
            Reply::Ok
        }
    });
    let dir = tempfile::tempdir().expect("dir");
    let outbox = open(
        outbox_config(vec![webhook("w", &receiver.url)], &["opened", "paged"]),
        dir.path(),
    );
    for notice in incident(1, Severity::High).1 {
        outbox.offer(&notice);
    }
    wait_until("both attempts", Duration::from_secs(5), || {
        receiver.got().len() == 2
    });
    wait_until("the status", Duration::from_secs(2), || {
        outbox.status()[0].delivered == 1
    });
    let status = &outbox.status()[0];
    assert_eq!(status.failed, 1);
    assert!(status
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("HTTP 400")));
    outbox.shutdown();
}

#[test]
fn a_channel_that_is_down_holds_at_most_max_pending() {
    let gone = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/hook", gone.local_addr().expect("addr"));
    drop(gone);
    let dir = tempfile::tempdir().expect("dir");
    let mut config = outbox_config(vec![webhook("w", &dead_url)], &["opened"]);
    config.max_pending = 2;
    let outbox = open(config, dir.path());
    for n in 0..5 {
        let mut notice = opened();
        notice.incident.id = format!("inc-{n}");
        notice.key = format!("inc-{n}:opened");
        outbox.offer(&notice);
    }
    let status = &outbox.status()[0];
    assert_eq!((status.pending, status.failed), (2, 3), "{status:?}");
    outbox.shutdown();
}

fn approval_needed() -> Notice {
    let (incidents, notices) = incident(1, Severity::High);
    let incident = incidents.get(&notices[0].incident.id).expect("incident");
    Notice::of_approval(
        incident,
        ApprovalRequest {
            action_id: "act-1".into(),
            action: "pause".into(),
            target: "container abc123 on node-1".into(),
            playbook: "contain-shells".into(),
            link: "https://cn.example/api/v1/respond/approve?token=v1.abc".into(),
            expires: t(60),
        },
    )
}

#[test]
fn an_action_awaiting_approval_is_announced_with_its_link_where_a_person_can_click_it() {
    let notice = approval_needed();
    assert_eq!(notice.change, ChangeKind::ApprovalNeeded);
    assert!(
        notice.key.ends_with(":approval_needed:act-1"),
        "{}",
        notice.key
    );
    let link = "https://cn.example/api/v1/respond/approve?token=v1.abc";
    let base = Some("https://cn.example");
    let build = |kind: &str| {
        let channel = resolve(&channel("c", kind, "https://receiver.example/x"));
        payload::build(&channel, &notice, "k", t(1), base).expect("payload")
    };
    let (_, slack) = body(build("slack"));
    assert!(slack["text"]
        .as_str()
        .expect("text")
        .starts_with("Containment awaits approval: "));
    assert!(
        slack["blocks"][1]["text"]["text"]
            .as_str()
            .expect("approval block")
            .contains(&format!("<{link}|Review and approve>")),
        "{slack}"
    );
    let (_, teams) = body(build("teams"));
    let actions = &teams["attachments"][0]["content"]["actions"];
    assert_eq!(actions[0]["title"], "Review and approve");
    assert_eq!(actions[0]["url"], link);
    assert_eq!(
        actions[1]["url"],
        format!("https://cn.example/incidents/{}", notice.incident.id)
    );
    let (_, pd) = body(build("pagerduty"));
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["dedup_key"], notice.incident.id.as_str());
    assert_eq!(pd["links"][0]["href"], link);
    assert_eq!(
        pd["payload"]["custom_details"]["approval"]["action"],
        "pause"
    );
    let (request, og) = body(build("opsgenie"));
    assert!(
        request.url.contains("/notes?identifierType=alias"),
        "{}",
        request.url
    );
    assert!(og["note"].as_str().expect("note").contains(link));
    let (_, hook) = body(build("webhook"));
    assert_eq!(hook["type"], "io.crowsnest.incident.approval_needed");
    assert_eq!(hook["data"]["approval"]["link"], link);
    assert!(matches!(build("alertmanager"), payload::Payload::Skip));
    let text = payload::description(&notice, base);
    assert!(
        text.contains(&format!(
            "Review and approve (single use, expires 2025-12-06T06:46:40.000Z): {link}"
        )),
        "{text}"
    );
}

#[test]
fn a_paging_system_gets_an_approval_only_on_an_incident_it_already_holds() {
    let pd_receiver = Receiver::start(|_| Reply::Ok);
    let hook_receiver = Receiver::start(|_| Reply::Ok);
    let dir = tempfile::tempdir().expect("dir");
    let mut pd = channel("pd", "pagerduty", &pd_receiver.url);
    pd.rate_per_minute = Some(600);
    let config = outbox_config(
        vec![pd, webhook("w", &hook_receiver.url)],
        &["approval_needed"],
    );
    let outbox = open(config, dir.path());
    // The route takes approvals only: the webhook gets it, PagerDuty holds no alert of the
    // incident and gets nothing.
    let notice = approval_needed();
    outbox.offer(&notice);
    outbox.offer(&notice);
    wait_until("the webhook's approval", Duration::from_secs(5), || {
        hook_receiver.got().len() == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(pd_receiver.got().is_empty());
    assert_eq!(hook_receiver.got().len(), 1, "one notice per action");
    outbox.shutdown();
}
