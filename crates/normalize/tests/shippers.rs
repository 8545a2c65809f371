//! Golden tests of the shipper-vocabulary parsers on records other tools wrote
//! (`tests/samples/`, sources in its README): Fluent Bit's and Fluentd's `kubernetes`
//! filters, Vector's `kubernetes_logs`, Filebeat / Elastic Agent, Docker's log drivers.
//! Every record lands in the same container and pod fields, keeps its log text once (in
//! `message`), and is detected as it is named. Full outputs are under
//! `tests/golden/<parser>/` (`UPDATE_GOLDEN=1` rewrites them).

mod common;

use common::{assert_golden, golden_path, snapshot};
use crowsnest_model::Event;
use crowsnest_normalize::registry::{self, parse_lines, Source};
use crowsnest_normalize::{decode_ndjson, Decoded, Limits};
use serde_json::Value;

fn sample(relative: &str) -> Vec<u8> {
    let path = golden_path("../samples").join(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

fn named(parser: &str, body: &[u8]) -> Decoded {
    let parser = registry::by_name(parser).expect("a registered parser");
    parse_lines(body, Source::Named(parser), &Limits::default())
}

/// Decodes a sample detected and named; both must agree and keep every record.
fn decode(relative: &str, parser: &str) -> (Vec<String>, Decoded) {
    let body = sample(relative);
    let lines: Vec<String> = String::from_utf8(body.clone())
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect();
    let detected = decode_ndjson(&body, Some("app"), &Limits::default());
    assert!(
        detected.errors.is_empty(),
        "{relative}: {:?}",
        detected.errors
    );
    assert_eq!(detected.events.len(), lines.len(), "{relative}");
    let by_name = named(parser, &body);
    assert_eq!(by_name, detected, "{relative}: named and detected differ");
    for (event, line) in detected.events.iter().zip(&lines) {
        assert_eq!(event.get_str("event.original"), Some(line.as_str()));
    }
    (lines, detected)
}

/// The log text is kept once: `message`, not also under the vocabulary's own key.
fn line_once(event: &Event) {
    for key in ["log", "MESSAGE", "short_message"] {
        assert!(
            !event.get(key).is_some_and(Value::is_string),
            "`{key}` kept besides `message`: {event:?}"
        );
    }
}

fn str_of<'a>(event: &'a Event, path: &str) -> Option<&'a str> {
    event.get_str(path)
}

#[test]
fn fluent_bit_kubernetes_filter_records() {
    let (_, decoded) = decode("fluent-bit/records.ndjson", "fluent-bit");
    for event in &decoded.events {
        line_once(event);
        assert_eq!(str_of(event, "event.dataset"), Some("container.logs"));
        assert_eq!(str_of(event, "event.module"), Some("kubernetes"));
        assert!(str_of(event, "kubernetes.namespace").is_some());
        assert!(str_of(event, "kubernetes.pod.name").is_some());
        assert!(str_of(event, "kubernetes.container.name").is_some());
        assert!(event.get("kubernetes.pod_name").is_none());
        assert!(event.get("kubernetes.namespace_name").is_none());
    }
    let base = &decoded.events[0];
    assert_eq!(str_of(base, "message"), Some("Fluent Bit is logging"));
    assert_eq!(str_of(base, "log.iostream"), Some("stdout"));
    assert_eq!(str_of(base, "kubernetes.namespace"), Some("core"));
    assert_eq!(
        str_of(base, "container.id"),
        Some("c9898099f6d235126d564ed38a020007ea7a6fac6e25e718de683c9dd0076c16")
    );
    assert_eq!(
        str_of(base, "container.image.name"),
        Some("fluent/fluent-bit")
    );
    assert_eq!(str_of(base, "container.image.tag"), Some("latest"));
    assert_eq!(str_of(base, "container.name"), Some("fluent-bit"));
    assert_eq!(
        str_of(base, "kubernetes.node.name"),
        Some("ip-10-49-18-80.eu-west-1.compute.internal")
    );
    assert_eq!(
        str_of(base, "kubernetes.labels.app_kubernetes_io/name"),
        Some("fluent-bit")
    );
    assert_eq!(
        str_of(base, "kubernetes.namespace_labels.fake-namespace-label1"),
        Some("label1")
    );
    assert!(base.get("kubernetes_namespace").is_none());
    // Merge_Log put the JSON line's keys beside it; the line itself is the message.
    let merged = &decoded.events[2];
    assert_eq!(str_of(merged, "message"), Some(r#"{"text":"Simple text"}"#));
    assert_eq!(str_of(merged, "text"), Some("Simple text"));
    // A journald record (systemd input) with the kubernetes filter's metadata.
    let journal = &decoded.events[4];
    assert_eq!(
        str_of(journal, "message"),
        Some("08:58:45.839 [qtp151442075-47] DEBUG [HttpParser.java:281] - filled 157/157")
    );
    assert_eq!(
        str_of(journal, "kubernetes.pod.name"),
        Some("kairosdb-914055854-b63vq")
    );
    assert_eq!(
        str_of(journal, "container.id"),
        Some("02d45318f220ad01109d13df31fbbb0668b87fdd06ef6607abfdecf5eba4b311"),
        "the kubernetes filter's docker_id wins over the journal's"
    );
    assert_eq!(str_of(journal, "host.name"), Some("cube"));
    assert_eq!(
        str_of(journal, "@timestamp"),
        Some("2018-11-04T19:12:27.464738Z")
    );
    assert_golden(
        "kubernetes_metadata/fluent_bit.expected.json",
        &snapshot(&decoded, false),
    );
}

#[test]
fn fluentd_kubernetes_metadata_filter_records() {
    let (_, decoded) = decode("fluentd/records.ndjson", "fluentd");
    for event in &decoded.events {
        line_once(event);
        assert_eq!(
            str_of(event, "kubernetes.pod.name"),
            Some("fabric8-console-controller-98rqc")
        );
        assert_eq!(
            str_of(event, "kubernetes.container.name"),
            Some("fabric8-console-container")
        );
        assert!(str_of(event, "container.id").is_some());
        assert!(event.get("docker").is_none());
    }
    let readme = &decoded.events[0];
    assert_eq!(str_of(readme, "message"), Some("2015/05/05 19:54:41 "));
    assert_eq!(str_of(readme, "log.iostream"), Some("stderr"));
    assert_eq!(str_of(readme, "host.name"), Some("jimmi-redhat.localnet"));
    let full = &decoded.events[1];
    assert_eq!(str_of(full, "kubernetes.namespace"), Some("default"));
    assert_eq!(
        str_of(full, "kubernetes.namespace_uid"),
        Some("898268c8-4a36-11e5-9d81-42010af0194c")
    );
    assert_eq!(str_of(full, "kubernetes.pod.ip"), Some("172.17.0.8"));
    assert_eq!(
        str_of(full, "orchestrator.cluster.url"),
        Some("https://localhost:8443")
    );
    assert_eq!(str_of(full, "container.runtime"), None);
    assert_eq!(
        str_of(full, "@timestamp"),
        Some("2015-05-08T09:22:01.000000Z")
    );
    let dotted = &decoded.events[2];
    assert_eq!(
        str_of(dotted, "kubernetes.labels.kubernetes_io/test"),
        Some("somevalue")
    );
    assert_golden(
        "kubernetes_metadata/fluentd.expected.json",
        &snapshot(&decoded, false),
    );
}

#[test]
fn vector_kubernetes_logs_records() {
    let (_, decoded) = decode("vector/records.ndjson", "vector");
    let sample = &decoded.events[0];
    line_once(sample);
    assert_eq!(str_of(sample, "kubernetes.namespace"), Some("kube-system"));
    assert_eq!(
        str_of(sample, "kubernetes.pod.name"),
        Some("storage-provisioner")
    );
    assert_eq!(
        str_of(sample, "kubernetes.pod.uid"),
        Some("93bde4d0-9731-4785-a80e-cd27ba8ad7c2")
    );
    assert_eq!(str_of(sample, "kubernetes.node.name"), Some("minikube"));
    assert_eq!(str_of(sample, "host.name"), Some("minikube"));
    assert_eq!(
        str_of(sample, "kubernetes.labels.addonmanager_kubernetes_io/mode"),
        Some("Reconcile")
    );
    assert_eq!(
        str_of(sample, "container.image.name"),
        Some("gcr.io/k8s-minikube/storage-provisioner")
    );
    assert_eq!(str_of(sample, "log.iostream"), Some("stderr"));
    assert!(str_of(sample, "log.file.path").is_some_and(|p| p.ends_with("/1.log")));
    assert_eq!(
        str_of(sample, "@timestamp"),
        Some("2020-10-15T11:01:46.499555Z")
    );
    let owned = &decoded.events[1];
    assert_eq!(
        str_of(owned, "container.id"),
        Some("f24c81dcd531c5d353751c77fe0556a4f602f7714c72b9a58f9b26c0628f1fa6")
    );
    assert_eq!(str_of(owned, "container.runtime"), Some("docker"));
    assert_eq!(
        str_of(owned, "kubernetes.replicaset.name"),
        Some("coredns-565d847f94")
    );
    assert_golden(
        "kubernetes_metadata/vector.expected.json",
        &snapshot(&decoded, false),
    );
}

#[test]
fn filebeat_and_elastic_agent_records() {
    let (_, decoded) = decode("filebeat/records.ndjson", "filebeat");
    for event in &decoded.events {
        assert_eq!(str_of(event, "event.dataset"), Some("container.logs"));
        assert_eq!(str_of(event, "event.module"), Some("kubernetes"));
        assert!(event.get("stream").is_none());
    }
    let beat = &decoded.events[0];
    assert_eq!(str_of(beat, "kubernetes.namespace"), Some("payments"));
    assert_eq!(str_of(beat, "container.name"), Some("api"));
    assert_eq!(
        str_of(beat, "container.image.name"),
        Some("registry.example.com/payments/api")
    );
    assert_eq!(str_of(beat, "container.image.tag"), Some("1.4.2"));
    assert_eq!(str_of(beat, "log.iostream"), Some("stdout"));
    let agent = &decoded.events[1];
    assert_eq!(str_of(agent, "log.iostream"), Some("stderr"));
    assert_eq!(str_of(agent, "host.name"), Some("node-2"));
    assert_eq!(
        str_of(agent, "data_stream.dataset"),
        Some("kubernetes.container_logs")
    );
    assert_golden("filebeat/records.expected.json", &snapshot(&decoded, false));
}

#[test]
fn docker_log_driver_records() {
    let body = sample("docker-drivers/records.ndjson");
    let detected = decode_ndjson(&body, Some("app"), &Limits::default());
    assert!(detected.errors.is_empty(), "{:?}", detected.errors);
    let lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    for (line, parser) in lines
        .iter()
        .zip(["docker-fluentd", "docker-fluentd", "gelf", "journald"])
    {
        let by_name = named(parser, line);
        let alone = decode_ndjson(line, Some("app"), &Limits::default());
        assert_eq!(by_name, alone, "{parser}: named and detected differ");
    }
    for event in &detected.events {
        line_once(event);
        assert_eq!(str_of(event, "event.dataset"), Some("container.logs"));
        assert_eq!(str_of(event, "event.module"), Some("docker"));
        assert_eq!(str_of(event, "container.runtime"), Some("docker"));
        assert!(str_of(event, "container.id").is_some_and(|id| id.len() == 64));
        assert!(str_of(event, "message").is_some());
    }
    let fluentd = &detected.events[0];
    assert_eq!(str_of(fluentd, "container.name"), Some("payments-api"));
    assert_eq!(str_of(fluentd, "log.iostream"), Some("stdout"));
    let gelf = &detected.events[2];
    assert_eq!(str_of(gelf, "host.name"), Some("docker-host-1"));
    assert_eq!(str_of(gelf, "container.image.name"), Some("nginx"));
    assert_eq!(str_of(gelf, "log.level"), Some("informational"));
    assert_eq!(
        str_of(gelf, "@timestamp"),
        Some("2024-05-01T10:00:00.123000Z")
    );
    let journal = &detected.events[3];
    assert_eq!(str_of(journal, "log.iostream"), Some("stderr"));
    assert_eq!(str_of(journal, "container.name"), Some("web"));
    assert_eq!(
        str_of(journal, "@timestamp"),
        Some("2024-05-01T10:00:02.000123Z")
    );
    assert_golden(
        "docker_drivers/records.expected.json",
        &snapshot(&detected, false),
    );
}

#[test]
fn every_vocabulary_answers_the_same_searches() {
    // One question, five shippers: which container wrote this, in which namespace?
    // (The Fluentd record is the plugin's test expectation, which carries no log line.)
    let samples = [
        ("fluent-bit/records.ndjson", 0, true),
        ("fluentd/records.ndjson", 1, false),
        ("vector/records.ndjson", 0, true),
        ("filebeat/records.ndjson", 0, true),
    ];
    for (relative, index, has_line) in samples {
        let decoded = decode_ndjson(&sample(relative), None, &Limits::default());
        let event = &decoded.events[index];
        for path in [
            "kubernetes.namespace",
            "kubernetes.pod.name",
            "kubernetes.container.name",
            "container.name",
            "container.image.name",
            "kubernetes.node.name",
            "host.name",
            "event.original",
        ] {
            assert!(str_of(event, path).is_some(), "{relative}: no {path}");
        }
        assert_eq!(str_of(event, "message").is_some(), has_line, "{relative}");
        assert_eq!(
            str_of(event, "event.dataset"),
            Some("container.logs"),
            "{relative}"
        );
    }
}
