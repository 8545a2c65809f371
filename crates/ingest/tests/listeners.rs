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
