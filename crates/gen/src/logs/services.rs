//! Service and platform logs: Spring Boot (with stack traces), PostgreSQL, CoreDNS, klog
//! (kube-proxy, metrics-server), Prometheus-style logfmt, Redis.

use std::fmt::Write as _;

use rand::Rng;

use super::line::Line;
use crate::cluster::{pick, Pod, NODES};
use crate::rng::Rand;
use crate::text::{self, Stamp};

/// (weight, (logger, message template)); `{n}`, `{m}`, `{k}` are filled with numbers.
const JAVA_INFO: &[(u32, (&str, &str))] = &[
    (
        30,
        (
            "web.OrderController",
            "Order {n} placed for customer {m} ({k} items)",
        ),
    ),
    (
        20,
        (
            "service.PricingService",
            "Quote computed for cart {n} in {k} ms",
        ),
    ),
    (
        15,
        (
            "client.AcquirerClient",
            "Authorization {n} approved by acquirer (rrn={m})",
        ),
    ),
    (
        10,
        (
            "service.InventoryService",
            "Reserved {k} units of SKU-{n} for order {m}",
        ),
    ),
    (
        5,
        (
            "config.HikariPool",
            "HikariPool-1 - Pool stats (total={k}, active=2, idle=8, waiting=0)",
        ),
    ),
];

pub(super) fn java(rng: &mut Rand, pod: &Pod, stamp: &Stamp) -> Line {
    let package = if pod.workload.namespace == "payments" {
        "c.c.payments"
    } else {
        "c.c.checkout"
    };
    let thread = rng.gen_range(1..200);
    let mut message = String::with_capacity(400);
    stamp.write_millis(&mut message);
    let roll = rng.gen_range(0..100);
    if roll < 96 {
        // Spring Boot pads the level to five characters (`%5p`).
        let padded_level = if roll < 88 { " INFO" } else { " WARN" };
        let (class, template) = *pick(rng, JAVA_INFO);
        let _ = write!(
            message,
            " {padded_level} 1 --- [nio-{}-exec-{thread}] {package}.{class:<36} : ",
            pod.workload.port
        );
        let text = template
            .replace("{n}", &rng.gen_range(10_000..999_999).to_string())
            .replace("{m}", &rng.gen_range(1_000..99_999).to_string())
            .replace("{k}", &rng.gen_range(1..40).to_string());
        message.push_str(&text);
        let level = if roll < 88 { "info" } else { "warn" };
        return Line {
            message,
            level,
            stream: "stdout",
        };
    }
    let _ = write!(
        message,
        " ERROR 1 --- [nio-{}-exec-{thread}] o.a.c.c.C.[.[.[/].[dispatcherServlet]    : Servlet.service() for servlet [dispatcherServlet] threw exception\n\njava.net.SocketTimeoutException: Read timed out\n\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)\n\tat java.base/java.net.Socket$SocketInputStream.read(Socket.java:1099)\n\tat {package}.client.AcquirerClient.authorize(AcquirerClient.java:{})\n\tat {package}.service.PaymentService.capture(PaymentService.java:{})\n\t... 87 common frames omitted",
        pod.workload.port,
        rng.gen_range(60..120),
        rng.gen_range(100..200)
    );
    Line {
        message,
        level: "error",
        stream: "stderr",
    }
}

pub(super) fn postgres(rng: &mut Rand, stamp: &Stamp) -> Line {
    let mut message = String::with_capacity(300);
    stamp.write_millis(&mut message);
    let pid = rng.gen_range(100..30_000);
    let _ = write!(message, " UTC [{pid}] ");
    let roll = rng.gen_range(0..100);
    let level = match roll {
        0..=69 => {
            let _ = write!(
                message,
                "LOG:  duration: {:.3} ms  statement: SELECT balance, currency FROM ledger_accounts WHERE account_id = $1 FOR UPDATE",
                rng.gen_range(0.2..40.0)
            );
            "info"
        }
        70..=84 => {
            let _ = write!(
                message,
                "LOG:  connection authorized: user=ledger database=ledger application_name=payments-api SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)"
            );
            "info"
        }
        85..=92 => {
            let _ = write!(
                message,
                "LOG:  checkpoint complete: wrote {} buffers ({:.1}%); 0 WAL file(s) added, 0 removed, 1 recycled; write={:.3} s, sync=0.004 s, total={:.3} s",
                rng.gen_range(20..4_000),
                rng.gen_range(0.1..20.0),
                rng.gen_range(0.5..27.0),
                rng.gen_range(0.5..28.0)
            );
            "info"
        }
        93..=98 => {
            let _ = write!(
                message,
                "ERROR:  duplicate key value violates unique constraint \"ledger_entries_idempotency_key\"\n\tDETAIL:  Key (idempotency_key)=({}) already exists.",
                text::uuid(rng)
            );
            "error"
        }
        _ => {
            message.push_str(
                "FATAL:  password authentication failed for user \"postgres\"\n\tDETAIL:  Connection matched pg_hba.conf line 99: \"host all all all scram-sha-256\"",
            );
            "fatal"
        }
    };
    Line {
        message,
        level,
        stream: "stderr",
    }
}

const DNS_NAMES: &[(u32, &str)] = &[
    (30, "api.prod.svc.cluster.local."),
    (20, "redis-0.redis.prod.svc.cluster.local."),
    (15, "ledger-db-0.ledger-db.payments.svc.cluster.local."),
    (15, "checkout.prod.svc.cluster.local."),
    (10, "acquirer.payments-provider.example."),
    (10, "api.prod.svc.cluster.local.prod.svc.cluster.local."),
];

pub(super) fn coredns(rng: &mut Rand) -> Line {
    let name = *pick(rng, DNS_NAMES);
    let nxdomain = name.matches(".svc.cluster.local").count() > 1;
    let qtype = if rng.gen_bool(0.7) { "A" } else { "AAAA" };
    let (rcode, flags, size) = if nxdomain {
        ("NXDOMAIN", "qr,aa,rd", 165)
    } else if qtype == "AAAA" {
        ("NOERROR", "qr,aa,rd", 160)
    } else {
        ("NOERROR", "qr,aa,rd", 106)
    };
    let mut message = String::with_capacity(160);
    let _ = write!(
        message,
        "[INFO] 10.42.{}.{}:{} - {} \"{qtype} IN {name} udp {} false 512\" {rcode} {flags} {size} {:.6}s",
        rng.gen_range(0..3),
        rng.gen_range(2..250),
        rng.gen_range(32_768..60_999),
        rng.gen_range(1..65_535),
        name.len() + 17,
        rng.gen_range(0.00005..0.004)
    );
    Line {
        message,
        level: "info",
        stream: "stdout",
    }
}

pub(super) fn klog(rng: &mut Rand, pod: &Pod, stamp: &Stamp) -> Line {
    let mut message = String::with_capacity(260);
    let error = rng.gen_bool(0.05);
    message.push(if error { 'E' } else { 'I' });
    stamp.write_klog(&mut message);
    if pod.workload.name == "kube-proxy" {
        if error {
            message.push_str("       1 proxier.go:1541] \"Failed to execute iptables-restore\" err=\"exit status 4: iptables-restore: line 42 failed\"");
        } else {
            let _ = write!(
                message,
                "       1 proxier.go:805] \"SyncProxyRules complete\" elapsed=\"{:.3}ms\" ipFamily=\"IPv4\"",
                rng.gen_range(4.0..60.0)
            );
        }
    } else if error {
        let node = &NODES[rng.gen_range(0..3)];
        let _ = write!(
            message,
            "       1 scraper.go:149] \"Failed to scrape node\" err=\"Get \\\"https://{}:10250/metrics/resource\\\": context deadline exceeded\" node=\"{}\"",
            node.ip, node.name
        );
    } else {
        let _ = write!(
            message,
            "       1 server.go:136] \"Scrape finished\" duration=\"{:.3}ms\" nodeCount=3 podCount=28",
            rng.gen_range(20.0..300.0)
        );
    }
    let level = if error { "error" } else { "info" };
    Line {
        message,
        level,
        stream: "stderr",
    }
}

pub(super) fn logfmt(rng: &mut Rand, pod: &Pod, stamp: &Stamp) -> Line {
    let mut message = String::with_capacity(240);
    let _ = write!(message, "ts={} ", stamp.rfc3339());
    let error = rng.gen_bool(0.04);
    if pod.workload.name == "node-exporter" {
        if error {
            message.push_str("caller=collector.go:169 level=error msg=\"collector failed\" name=hwmon duration_seconds=0.000412 err=\"open /host/sys/class/hwmon/hwmon0/temp1_input: no such file or directory\"");
        } else {
            message.push_str("caller=node_exporter.go:117 level=info collector=netclass msg=\"Parsed flag --collector.netclass.ignored-devices\" flag=^(veth.*|cali.*)$");
        }
    } else if error {
        let _ = write!(
            message,
            "caller=scrape.go:1313 level=warn component=\"scrape manager\" scrape_pool=kubernetes-pods target=http://10.42.{}.{}:8080/metrics msg=\"Scrape failed\" err=\"context deadline exceeded\"",
            rng.gen_range(0..3),
            rng.gen_range(2..250)
        );
    } else {
        let _ = write!(
            message,
            "caller=head.go:1293 level=info component=tsdb msg=\"Head GC completed\" caller=truncateMemory duration={:.3}ms",
            rng.gen_range(1.0..90.0)
        );
    }
    let level = match (error, pod.workload.name) {
        (false, _) => "info",
        (true, "node-exporter") => "error",
        (true, _) => "warn",
    };
    Line {
        message,
        level,
        stream: "stderr",
    }
}

pub(super) fn redis(rng: &mut Rand, stamp: &Stamp) -> Line {
    let mut message = String::with_capacity(120);
    message.push_str("1:M ");
    stamp.write_redis(&mut message);
    let lines = [
        "* 100 changes in 300 seconds. Saving...",
        "* Background saving started by pid ",
        "* DB saved on disk",
        "* Fork CoW for RDB: current 2 MB, peak 2 MB, average 1 MB",
        "* Background saving terminated with success",
    ];
    let index = rng.gen_range(0..lines.len());
    message.push(' ');
    message.push_str(lines[index]);
    if index == 1 {
        let _ = write!(message, "{}", rng.gen_range(20..9_000));
    }
    Line {
        message,
        level: "info",
        stream: "stdout",
    }
}
