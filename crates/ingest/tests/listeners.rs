//! The listeners over real sockets, with an in-memory [`Submit`]: syslog over UDP, TCP and
//! TLS (a self-signed certificate made by rcgen), forward with acks, and bad streams.

use std::sync::Arc;
use std::time::Duration;

use crowsnest_ingest::listen;
use crowsnest_ingest::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

use support::{connect_tls, self_signed, Collect};

#[tokio::test]
async fn syslog_over_tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (acceptor, cert) = self_signed(dir.path());
    let sink = Arc::new(Collect::default());
    let listener = listen::syslog_tcp(
        "127.0.0.1:0",
        Some(acceptor),
        sink.clone(),
        Limits::default(),
    )
    .await
    .expect("bind");
    let mut tls = connect_tls(listener.local_addr, cert).await;
    let message = "<34>1 2024-05-01T10:00:00Z h su - - - over tls";
    tls.write_all(format!("{} {message}", message.len()).as_bytes())
        .await
        .expect("write");
    tls.shutdown().await.expect("close");
    assert_eq!(sink.wait_for(1).await, vec!["over tls".to_string()]);
    // A plain-text client gets no events in.
    let mut plain = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let _ = plain.write_all(b"<13>1 - - - - - - plain\n").await;
    drop(plain);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sink.0.lock().expect("lock").events.len(), 1);
}

#[tokio::test]
async fn tls_files_that_are_not_pem_are_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nothing.pem");
    std::fs::write(&path, "not a certificate").expect("write");
    let Err(error) = listen::tls_acceptor(&path, &path) else {
        panic!("a file without a certificate must be refused");
    };
    assert!(error.to_string().contains("nothing.pem"), "{error}");
}

#[tokio::test]
async fn tcp_stream_keeps_good_frames_before_a_bad_count_and_udp_batches() {
    let sink = Arc::new(Collect::default());
    let limits = Limits {
        max_frame_bytes: 1000,
        ..Limits::default()
    };
    let tcp = listen::syslog_tcp("127.0.0.1:0", None, sink.clone(), limits)
        .await
        .expect("bind");
    let udp = listen::syslog_udp("127.0.0.1:0", sink.clone(), limits)
        .await
        .expect("bind");
    let mut stream = tokio::net::TcpStream::connect(tcp.local_addr)
        .await
        .expect("connect");
    stream
        .write_all(b"<13>Feb 13 20:07:26 h app: first\n99999999 <13>never")
        .await
        .expect("write");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    for i in 0..3 {
        socket
            .send_to(
                format!("<13>1 - h app - - - datagram {i}").as_bytes(),
                udp.local_addr,
            )
            .await
            .expect("send");
    }
    let mut messages = sink.wait_for(4).await;
    messages.sort();
    assert_eq!(
        messages,
        vec!["datagram 0", "datagram 1", "datagram 2", "first"]
    );
    // The listener closed the connection after the oversized octet count.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}

#[tokio::test]
async fn forward_acks_only_what_was_stored() {
    let sink = Arc::new(Collect::default());
    let listener = listen::forward_tcp("127.0.0.1:0", sink.clone(), Limits::default())
        .await
        .expect("bind");
    let mut stream = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let entries = rmpv::Value::Array(vec![
        rmpv::Value::Array(vec![
            rmpv::Value::from(1_714_557_600u32),
            rmpv::Value::Map(vec![(rmpv::Value::from("message"), rmpv::Value::from("a"))]),
        ]),
        rmpv::Value::Array(vec![
            rmpv::Value::from(1_714_557_601u32),
            rmpv::Value::Map(vec![(rmpv::Value::from("message"), rmpv::Value::from("b"))]),
        ]),
    ]);
    let message = rmpv::Value::Array(vec![
        rmpv::Value::from("tag"),
        entries,
        rmpv::Value::Map(vec![(
            rmpv::Value::from("chunk"),
            rmpv::Value::from("Y2h1bms="),
        )]),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &message).expect("encode");
    // Split the message across writes: the listener must wait for the rest.
    let (head, tail) = bytes.split_at(bytes.len() / 2);
    stream.write_all(head).await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(tail).await.expect("write");
    let mut ack = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut ack))
        .await
        .expect("ack")
        .expect("read");
    assert_eq!(
        &ack[..n],
        crowsnest_ingest::fluent::ack("Y2h1bms=").as_slice()
    );
    assert_eq!(
        sink.wait_for(2).await,
        vec!["a".to_string(), "b".to_string()]
    );
}

/// Waits (up to `within`) for the peer to close `stream`: true when it did.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A client socket bound to `source` (any 127.0.0.0/8 address works on Linux loopback).
async fn connect_from(source: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("addr"))
        .expect("bind the source address");
    socket.connect(to).await.expect("connect")
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let sink = Arc::new(Collect::default());
    let limits = Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let syslog = listen::syslog_tcp("127.0.0.1:0", None, sink.clone(), limits)
        .await
        .expect("bind");
    let forward = listen::forward_tcp("127.0.0.1:0", sink.clone(), limits)
        .await
        .expect("bind");
    for addr in [syslog.local_addr, forward.local_addr] {
        let started = std::time::Instant::now();
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        assert!(
            closed_within(&mut stream, Duration::from_secs(5)).await,
            "an idle connection to {addr} stayed open"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250),
            "closed too early: {took:?}"
        );
    }
    // A connection that keeps talking is not idle: a message every 100 ms for 600 ms.
    let mut stream = tokio::net::TcpStream::connect(syslog.local_addr)
        .await
        .expect("connect");
    for i in 0..6 {
        stream
            .write_all(format!("<13>1 - h app - - - tick {i}\n").as_bytes())
            .await
            .expect("a busy connection stays open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sink.wait_for(6).await.len(), 6);
}

#[tokio::test]
async fn connections_past_the_per_address_cap_are_refused_and_others_still_served() {
    let sink = Arc::new(Collect::default());
    let limits = Limits {
        max_connections_per_ip: 3,
        ..Limits::default()
    };
    let listener = listen::syslog_tcp("127.0.0.1:0", None, sink.clone(), limits)
        .await
        .expect("bind");
    // An attacker at 127.0.0.2 holds its 3 connections idle.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.2", listener.local_addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Its next ones are closed at once.
    for _ in 0..5 {
        let mut refused = connect_from("127.0.0.2", listener.local_addr).await;
        assert!(
            closed_within(&mut refused, Duration::from_secs(2)).await,
            "a connection past the per-address cap was kept"
        );
    }
    // A real sender elsewhere still gets in, and fast.
    let started = std::time::Instant::now();
    let mut sender = connect_from("127.0.0.3", listener.local_addr).await;
    sender
        .write_all(b"<13>1 - h app - - - still served\n")
        .await
        .expect("write");
    assert_eq!(sink.wait_for(1).await, vec!["still served".to_string()]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The held connections are still open (they are not idle-timed out yet).
    let mut byte = [0u8; 1];
    let still_open =
        tokio::time::timeout(Duration::from_millis(100), held[0].read(&mut byte)).await;
    assert!(still_open.is_err(), "{still_open:?}");
}

#[tokio::test]
async fn a_stream_without_newlines_is_cut_off_at_the_frame_limit_in_bounded_memory() {
    let sink = Arc::new(Collect::default());
    let limits = Limits {
        max_frame_bytes: 1024 * 1024,
        ..Limits::default()
    };
    let listener = listen::syslog_tcp("127.0.0.1:0", None, sink.clone(), limits)
        .await
        .expect("bind");
    let payload: Arc<Vec<u8>> = Arc::new(vec![b'x'; 15 * 1024 * 1024]);
    let before = vm_rss_kib();
    let started = std::time::Instant::now();
    let mut senders = Vec::new();
    for _ in 0..8 {
        let payload = payload.clone();
        let addr = listener.local_addr;
        senders.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream
                .write_all(b"<13>1 - h app - - - ")
                .await
                .expect("write");
            // The listener stops reading and closes: the write fails before 15 MiB went out.
            let written = stream.write_all(&payload).await;
            let closed = closed_within(&mut stream, Duration::from_secs(10)).await;
            (written.is_err(), closed)
        }));
    }
    for sender in senders {
        let (write_failed, closed) = sender.await.expect("sender");
        assert!(write_failed || closed, "the stream was not cut off");
    }
    let took = started.elapsed();
    let grown_mib = vm_rss_kib().saturating_sub(before) / 1024;
    // Each connection holds at most one frame (1 MiB) and a 64 KiB read buffer.
    assert!(grown_mib < 64, "RSS grew by {grown_mib} MiB");
    let errors: Vec<String> = sink
        .0
        .lock()
        .expect("lock")
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 8, "{errors:?}");
    assert!(errors[0].contains("max_frame_bytes"), "{errors:?}");
    eprintln!("8 x 15 MiB without a newline: cut off in {took:?}, RSS +{grown_mib} MiB");
}

#[tokio::test]
async fn a_long_line_is_scanned_once() {
    // 12 MiB in one line, arriving in 64 KiB reads: rescanning the whole buffer on each read
    // (the old framer) scans about 1.2 GB; a linear scan 12 MiB.
    let sink = Arc::new(Collect::default());
    let limits = Limits {
        max_frame_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    };
    let listener = listen::syslog_tcp("127.0.0.1:0", None, sink.clone(), limits)
        .await
        .expect("bind");
    let mut line = b"<13>1 - h app - - - ".to_vec();
    line.extend(std::iter::repeat_n(b'y', 12 * 1024 * 1024));
    line.push(b'\n');
    line.extend_from_slice(b"<13>1 - h app - - - after\n");
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    stream.write_all(&line).await.expect("write");
    // The long line is framed (and refused by the decoder's 1 MiB line limit), the next one
    // is stored.
    let messages = sink.wait_for(1).await;
    assert_eq!(messages, vec!["after".to_string()]);
    let errors = sink.0.lock().expect("lock").errors.clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    eprintln!("a 12 MiB line framed in {:?}", started.elapsed());
}

#[tokio::test]
async fn forward_messages_are_measured_before_decoding_and_held_to_the_limit() {
    let sink = Arc::new(Collect::default());
    let limits = Limits {
        max_frame_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    };
    let listener = listen::forward_tcp("127.0.0.1:0", sink.clone(), limits)
        .await
        .expect("bind");
    // A 12 MiB PackedForward message arriving in 64 KiB reads is decoded once, when whole.
    let entry = |i: u32| {
        rmpv::Value::Array(vec![
            rmpv::Value::from(1_714_557_600u32 + i),
            rmpv::Value::Map(vec![(
                rmpv::Value::from("message"),
                rmpv::Value::from(format!("{i:06} {}", "z".repeat(1000))),
            )]),
        ])
    };
    let mut entries = Vec::new();
    for i in 0..12_000 {
        rmpv::encode::write_value(&mut entries, &entry(i)).expect("encode");
    }
    let message = rmpv::Value::Array(vec![
        rmpv::Value::from("tag"),
        rmpv::Value::Binary(entries),
        rmpv::Value::Map(vec![(rmpv::Value::from("chunk"), rmpv::Value::from("big"))]),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &message).expect("encode");
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    stream.write_all(&bytes).await.expect("write");
    let mut ack = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut ack))
        .await
        .expect("ack in time")
        .expect("read");
    assert_eq!(&ack[..n], crowsnest_ingest::fluent::ack("big").as_slice());
    assert_eq!(sink.wait_for(12_000).await.len(), 12_000);
    eprintln!(
        "a {} MiB forward message acked in {:?}",
        bytes.len() >> 20,
        started.elapsed()
    );
    // A message whose header declares 100 MiB is refused from the header: nothing more is read.
    let mut liar = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    liar.write_all(&[0x92, 0xa3, b't', b'a', b'g', 0xc6, 0x06, 0x40, 0x00, 0x00])
        .await
        .expect("write");
    assert!(closed_within(&mut liar, Duration::from_secs(2)).await);
}
