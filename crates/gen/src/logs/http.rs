//! Request logs: nginx combined access lines, a Go service's zap-style JSON, Grafana's
//! logfmt request log. Status codes follow [`STATUSES`]: mostly 200, a tail of 4xx and 5xx.

use std::fmt::Write as _;

use rand::Rng;

use super::line::Line;
use crate::cluster::{pick, Pod};
use crate::rng::Rand;
use crate::text::{self, Stamp};

const BROWSERS: &[(u32, &str)] = &[
    (30, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
    (20, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"),
    (12, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"),
    (8, "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
    (10, "kube-probe/1.29"),
    (4, "curl/8.5.0"),
    (3, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    (3, "python-requests/2.31.0"),
];

const WEB_PATHS: &[(u32, &str)] = &[
    (20, "/api/v1/products?page="),
    (15, "/static/js/main.3f9a1c7e.js"),
    (10, "/static/css/app.91b2d0.css"),
    (15, "/images/p/"),
    (8, "/cart"),
    (6, "/"),
    (5, "/api/v1/search?q=shoes&page="),
    (3, "/account/orders"),
    (2, "/wp-login.php"),
];

const PAYMENT_PATHS: &[(u32, &str)] = &[
    (40, "/v1/payments/"),
    (25, "/v1/payments"),
    (10, "/v1/refunds"),
    (10, "/v1/payments/authorize"),
    (5, "/v1/webhooks/acquirer"),
];

/// Status codes of a healthy web tier: 200s dominate, then 304/404, a thin 5xx tail.
const STATUSES: &[(u32, u16)] = &[
    (840, 200),
    (40, 304),
    (10, 301),
    (20, 201),
    (50, 404),
    (8, 401),
    (7, 403),
    (5, 499),
    (8, 500),
    (7, 502),
    (5, 503),
];

fn level_for_status(status: u16) -> &'static str {
    match status {
        500.. => "error",
        400.. => "warn",
        _ => "info",
    }
}

pub(super) fn nginx(rng: &mut Rand, pod: &Pod, stamp: &Stamp) -> Line {
    let payments = pod.workload.namespace == "payments";
    let user_agent = *pick(rng, BROWSERS);
    let probe = user_agent.starts_with("kube-probe");
    let (method, path) = if probe {
        ("GET", "/healthz")
    } else if payments {
        (
            if rng.gen_bool(0.6) { "POST" } else { "GET" },
            *pick(rng, PAYMENT_PATHS),
        )
    } else {
        (
            if rng.gen_bool(0.93) { "GET" } else { "POST" },
            *pick(rng, WEB_PATHS),
        )
    };
    let status = if probe { 200 } else { *pick(rng, STATUSES) };
    let mut message = String::with_capacity(320);
    let client = if probe {
        pod.node().ip.to_string()
    } else {
        format!("10.42.{}.{}", rng.gen_range(0..3), rng.gen_range(2..250))
    };
    message.push_str(&client);
    message.push_str(" - - [");
    stamp.write_nginx(&mut message);
    let _ = write!(message, "] \"{method} {path}");
    if path.ends_with('=') {
        let _ = write!(message, "{}", rng.gen_range(1..40));
    } else if path.ends_with('/') && path.len() > 1 {
        let _ = write!(message, "{}", rng.gen_range(1000..99_999));
        if path.starts_with("/images") {
            message.push_str(".webp");
        }
    }
    let bytes = match status {
        304 => 0,
        200 | 201 => rng.gen_range(180..48_000),
        _ => rng.gen_range(150..600),
    };
    let referer = if probe || payments {
        "-"
    } else {
        "https://shop.example/"
    };
    let forwarded = if probe {
        "-".to_string()
    } else {
        format!("198.51.100.{}", rng.gen_range(1..250))
    };
    let request_time = if status >= 500 {
        rng.gen_range(1.0..30.0)
    } else {
        rng.gen_range(0.001..0.250)
    };
    let _ = write!(
        message,
        " HTTP/1.1\" {status} {bytes} \"{referer}\" \"{user_agent}\" \"{forwarded}\" rt={request_time:.3}"
    );
    Line {
        message,
        level: level_for_status(status),
        stream: "stdout",
    }
}

pub(super) fn json_app(rng: &mut Rand, stamp: &Stamp) -> Line {
    let mut message = String::with_capacity(300);
    let roll = rng.gen_range(0..100);
    let (level, caller, msg) = match roll {
        0..=79 => ("info", "http/server.go:212", "request completed"),
        80..=89 => ("debug", "cache/redis.go:88", "cache miss"),
        90..=96 => ("warn", "store/orders.go:141", "slow query"),
        _ => ("error", "http/server.go:230", "upstream request failed"),
    };
    let _ = write!(
        message,
        "{{\"level\":\"{level}\",\"ts\":\"{}\",\"caller\":\"{caller}\",\"msg\":\"{msg}\"",
        stamp.rfc3339()
    );
    let order = rng.gen_range(10_000..99_999);
    match level {
        "info" => {
            let status = *pick(rng, STATUSES);
            let method = if rng.gen_bool(0.8) { "GET" } else { "POST" };
            let _ = write!(
                message,
                ",\"method\":\"{method}\",\"path\":\"/v1/orders/{order}\",\"status\":{status},\"duration_ms\":{:.1},\"bytes\":{}",
                rng.gen_range(0.4..80.0),
                rng.gen_range(90..9_000)
            );
        }
        "debug" => {
            let _ = write!(message, ",\"key\":\"order:{order}\",\"ttl_s\":300");
        }
        "warn" => {
            let _ = write!(
                message,
                ",\"query\":\"SELECT id, status, total FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 50\",\"duration_ms\":{}",
                rng.gen_range(500..4_000)
            );
        }
        _ => {
            let _ = write!(
                message,
                ",\"upstream\":\"http://checkout.prod.svc.cluster.local:8080/v1/quote\",\"error\":\"context deadline exceeded (Client.Timeout exceeded while awaiting headers)\""
            );
        }
    }
    message.push_str(",\"request_id\":\"");
    text::push_hex(rng, &mut message, 16);
    message.push_str("\",\"trace_id\":\"");
    text::push_hex(rng, &mut message, 32);
    message.push_str("\"}");
    let stream = if level == "error" { "stderr" } else { "stdout" };
    Line {
        message,
        level,
        stream,
    }
}

pub(super) fn grafana(rng: &mut Rand, stamp: &Stamp) -> Line {
    let mut message = String::with_capacity(360);
    let status = *pick(rng, STATUSES);
    let _ = write!(
        message,
        "logger=context userId=3 orgId=1 uname=alice t={} level=info msg=\"Request Completed\" method=GET path=/api/dashboards/uid/k8s-cluster status={status} remote_addr=10.8.0.23 time_ms={} duration={:.3}ms size={} referer=https://grafana.corp.example/d/k8s-cluster handler=/api/dashboards/uid/:uid status_source=server",
        stamp.rfc3339(),
        rng.gen_range(2..400),
        rng.gen_range(2.0..400.0),
        rng.gen_range(200..60_000)
    );
    Line {
        message,
        level: level_for_status(status),
        stream: "stdout",
    }
}
