//! Input limits over real sockets (timeouts, connection caps) and through the router (body,
//! event-count and decode-budget limits).

use std::io::Write;
use std::time::{Duration, Instant};

use axum::http::{header, Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api::tests::{harness_with, Harness};

/// Reads until the server closes the connection (or `within` passes): what it sent, and
/// whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
        }
    }
}

async fn connect_from(source: &str, to: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("addr"))
        .expect("bind the source address");
    socket.connect(to).await.expect("connect")
}

async fn short_timeouts() -> Harness {
    harness_with(|config| {
        config.http.header_read_timeout_secs = 1;
        config.http.body_read_timeout_secs = 1;
        config.http.max_connections_per_ip = 4;
    })
    .await
}

#[tokio::test]
async fn idle_and_slow_header_connections_are_cut_off() {
    let h = short_timeouts().await;
    let addr = h.running.addr;
    // Idle: not a byte sent.
    let started = Instant::now();
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Headers at one byte every 200 ms: cut off at the header timeout, long before they end.
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    let head =
        b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut = false;
    for byte in head {
        if slow.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(_)) => {
                // hyper may answer 408 before closing.
                cut = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(cut, "a slow-header client was served");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}");
    // A kept-alive connection is closed once idle past the same timeout.
    let mut keep = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /api/v1/health HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
        h.token
    );
    keep.write_all(request.as_bytes()).await.expect("write");
    let (answer, closed) = read_until_closed(&mut keep, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn a_trickling_body_is_answered_408_and_closed() {
    let h = short_timeouts().await;
    let mut stream = TcpStream::connect(h.running.addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/ingest/ndjson HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/x-ndjson\r\ncontent-length: 1000\r\n\r\n",
        h.token
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let trickle = async {
        for _ in 0..50 {
            if stream.write_all(b"{").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1500), trickle).await;
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout_secs"), "{answer}");
    assert!(closed, "the connection stayed open after 408");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn connections_past_the_per_address_cap_get_503_while_others_are_served() {
    let h = short_timeouts().await;
    let addr = h.running.addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.2", addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = connect_from("127.0.0.2", addr).await;
    let _ = refused
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let (answer, closed) = read_until_closed(&mut refused, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("max_connections_per_ip = 4"), "{answer}");
    assert!(closed);
    // Another address is answered at once.
    let started = Instant::now();
    let mut other = connect_from("127.0.0.3", addr).await;
    let request = format!(
        "GET /api/v1/health HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
        h.token
    );
    other.write_all(request.as_bytes()).await.expect("write");
    let (answer, _) = read_until_closed(&mut other, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(held);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).expect("write");
    encoder.finish().expect("finish")
}

fn gzip_request(h: &Harness, uri: &str, body: Vec<u8>) -> Request<axum::body::Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(axum::body::Body::from(body))
        .expect("request")
}

#[tokio::test]
async fn bodies_and_event_counts_over_the_limits_are_refused_before_decoding() {
    let h = harness_with(|config| {
        config.max_body_bytes = 4 * 1024 * 1024;
        config.input_limits.max_events_per_request = 1000;
    })
    .await;
    let received = || {
        h.running
            .state
            .metrics
            .received
            .get_or_create(&h.running.state.metrics.source("ndjson"))
            .get()
    };
    // 8 KiB of gzip inflating to 2.8 M `{}` lines: past the inflated-size cap.
    let bomb = gzip(&b"{}\n".repeat(2_800_000));
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let (status, _, body) = h
        .call(gzip_request(&h, "/api/v1/ingest/ndjson", bomb))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("decompressed") && message.contains("max_body_bytes"),
        "{message}"
    );
    // Within the size cap, but 100 000 events: refused by count, nothing stored.
    let many = gzip(&b"{}\n".repeat(100_000));
    let (status, _, body) = h
        .call(gzip_request(&h, "/api/v1/ingest/ndjson", many))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("100000 events") && message.contains("max_events_per_request"),
        "{message}"
    );
    assert_eq!(received(), 0);
    // The same cap on HEC (its own answer shape) and on an audit EventList.
    let hec = "{\"event\":\"x\"}".repeat(1001);
    let request = Request::post("/services/collector/event")
        .header(header::AUTHORIZATION, format!("Splunk {}", h.token))
        .body(axum::body::Body::from(hec))
        .expect("request");
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], 27, "{body}");
    let items = vec!["{}"; 1001].join(",");
    let list = format!(
        "{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[{items}]}}"
    );
    let request = h.post("/api/v1/ingest/k8s-audit", "application/json", list);
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // At the cap: accepted.
    let ok = gzip(&b"{\"message\":\"ok\"}\n".repeat(1000));
    let (status, _, body) = h.call(gzip_request(&h, "/api/v1/ingest/ndjson", ok)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 1000);
    // Everything given back to the decode budget.
    let budget = &h.running.state.decode_budget;
    assert_eq!(budget.available(), budget.total());
}

#[tokio::test]
async fn the_decode_budget_answers_503_when_busy_and_413_when_never_enough() {
    let h = harness_with(|config| {
        config.decode.memory_budget_bytes = 8 * 1024 * 1024;
    })
    .await;
    let lines = b"{\"message\":\"a\"}\n".repeat(100);
    // Someone else holds the whole budget: 503 with Retry-After.
    let budget = h.running.state.decode_budget.clone();
    let held = budget.try_reserve(budget.total()).expect("reserve");
    let request = h.post(
        "/api/v1/ingest/ndjson",
        "application/x-ndjson",
        lines.clone(),
    );
    let (status, headers, body) = h.call(request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.get(header::RETRY_AFTER).is_some());
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("decode.memory_budget_bytes"), "{message}");
    drop(held);
    let request = h.post("/api/v1/ingest/ndjson", "application/x-ndjson", lines);
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // 20 000 small events need more than the whole 8 MiB budget: 413, whatever the load.
    let many = b"{}\n".repeat(20_000);
    let request = h.post("/api/v1/ingest/ndjson", "application/x-ndjson", many);
    let (status, _, body) = h.call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("decode budget of 8388608 bytes"),
        "{message}"
    );
    assert_eq!(budget.available(), budget.total());
}

#[test]
fn connection_caps_are_fitted_under_the_open_files_limit() {
    let mut config = crate::ServerConfig::default();
    config
        .inputs
        .push(crowsnest_ingest::listen::InputConfig::syslog(
            "127.0.0.1:0",
            crowsnest_ingest::listen::SyslogTransport::Tcp,
        ));
    config
        .inputs
        .push(crowsnest_ingest::listen::InputConfig::forward(
            "127.0.0.1:0",
        ));
    // 512 HTTP + 2 x 512 stream connections do not fit 1024 descriptors less 256 reserved.
    crate::fit_connection_caps(&mut config, Some(1024));
    let total = config.http.max_connections + 2 * config.input_limits.max_connections;
    assert!(total <= 768, "{total}");
    assert_eq!(config.http.max_connections, 256);
    assert!(config.input_limits.max_connections_per_ip <= config.input_limits.max_connections);
    // A generous limit changes nothing.
    let mut roomy = crate::ServerConfig::default();
    crate::fit_connection_caps(&mut roomy, Some(1 << 20));
    assert_eq!(roomy.http.max_connections, 512);
    crate::fit_connection_caps(&mut roomy, None);
    assert_eq!(roomy.http.max_connections, 512);
}

#[test]
fn the_readme_configuration_block_parses_with_every_limit() {
    let readme = include_str!("../../../../../README.md");
    let start = readme
        .find("```toml\nlisten = ")
        .expect("README has the configuration block");
    let block = &readme[start + "```toml\n".len()..];
    let block = &block[..block.find("```").expect("end of the block")];
    let config: crate::ServerConfig = toml::from_str(block).expect("the README block parses");
    let defaults = crate::ServerConfig::default();
    assert_eq!(
        config.decode.memory_budget_bytes,
        defaults.decode.memory_budget_bytes
    );
    assert_eq!(config.http.max_connections, defaults.http.max_connections);
    assert_eq!(
        config.http.max_connections_per_ip,
        defaults.http.max_connections_per_ip
    );
    assert_eq!(
        config.http.header_read_timeout_secs,
        defaults.http.header_read_timeout_secs
    );
    assert_eq!(
        config.http.body_read_timeout_secs,
        defaults.http.body_read_timeout_secs
    );
    assert_eq!(
        config.http.write_timeout_secs,
        defaults.http.write_timeout_secs
    );
    assert_eq!(
        config.input_limits.max_syslog_frame_bytes,
        defaults.input_limits.max_syslog_frame_bytes
    );
    assert_eq!(
        config.input_limits.max_connections_per_ip,
        defaults.input_limits.max_connections_per_ip
    );
    assert_eq!(
        config.input_limits.idle_timeout_secs,
        defaults.input_limits.idle_timeout_secs
    );
}

#[tokio::test]
async fn a_client_that_reads_no_response_is_disconnected_after_the_write_timeout() {
    let h = harness_with(|config| config.http.write_timeout_secs = 1).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut stream = socket.connect(h.running.addr).await.expect("connect");
    // Many pipelined requests for a large document, and not a byte read: the server's writes
    // stall once the socket buffers are full.
    let request = "GET /api/v1/openapi.json HTTP/1.1\r\nhost: x\r\n\r\n".repeat(2000);
    let _ =
        tokio::time::timeout(Duration::from_secs(2), stream.write_all(request.as_bytes())).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (answers, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let served = answers.matches("HTTP/1.1 200").count();
    assert!(closed, "a client reading nothing kept its connection");
    assert!(served < 2000, "every response was written: {served}");
}
