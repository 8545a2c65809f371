//! Syslog delivery to receivers on 127.0.0.1: UDP datagrams, octet-counted TCP with
//! reconnection, and TLS with a self-signed certificate trusted through `ca_file`.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crowsnest_output::syslog::TRUNCATION_MARKER;
use crowsnest_output::{build, Delivery};
use support::{closed_port, event, events, output, TestCert};

/// Reads octet-counted frames from a stream until it ends, handing each to `frame`.
fn read_frames(stream: impl Read, mut frame: impl FnMut(String)) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = Vec::new();
        match reader.read_until(b' ', &mut length) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Ok(n) = String::from_utf8_lossy(&length).trim().parse::<usize>() else {
            return;
        };
        let mut message = vec![0u8; n];
        if reader.read_exact(&mut message).is_err() {
            return;
        }
        frame(String::from_utf8(message).expect("utf-8 message"));
    }
}

#[test]
fn udp_sends_one_datagram_per_event_and_truncates_long_ones() {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let config = output(&format!(
        "name = \"udp\"\ntype = \"syslog\"\naddress = \"{}\"\ntransport = \"udp\"\nmax_datagram_bytes = 600\n",
        receiver.local_addr().expect("addr")
    ));
    let mut sink = build(&config).expect("build");
    let mut batch = events(2);
    batch.push(event(serde_json::json!({"message": "x".repeat(2000)})));
    assert_eq!(sink.send(&batch).expect("sent"), Delivery::all(3));
    let mut buffer = [0u8; 65536];
    let mut datagrams = Vec::new();
    for _ in 0..3 {
        let n = receiver.recv(&mut buffer).expect("datagram");
        datagrams.push(String::from_utf8(buffer[..n].to_vec()).expect("utf-8"));
    }
    assert!(datagrams[0].starts_with("<134>1 2024-05-01T10:00:00.000000Z node-1 crowsnest - container.logs [crowsnest@32473 kind=\"event\" dataset=\"container.logs\" id=\"e0\"] {"), "{}", datagrams[0]);
    assert!(datagrams[1].contains("id=\"e1\""));
    assert_eq!(datagrams[2].len(), 600);
    assert!(datagrams[2].ends_with(TRUNCATION_MARKER));
}

#[test]
fn tcp_frames_by_octet_count_and_reconnects_after_the_receiver_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        // Each connection is read to its end; the first is closed by us after one batch.
        for (n, stream) in listener.incoming().enumerate() {
            let stream = stream.expect("accept");
            let tx = tx.clone();
            if n == 0 {
                stream
                    .set_read_timeout(Some(Duration::from_millis(500)))
                    .expect("timeout");
            }
            thread::spawn(move || {
                read_frames(stream, |frame| {
                    let _ = tx.send((n, frame));
                });
            });
        }
    });
    let config = output(&format!(
        "name = \"tcp\"\ntype = \"syslog\"\naddress = \"{address}\"\nformat = \"cef\"\nhostname = \"cn-test\"\n"
    ));
    let mut sink = build(&config).expect("build");
    let mut multi_line = events(1);
    multi_line[0].set("message", "two\nlines".into());
    sink.send(&multi_line).expect("first batch");
    let (connection, first) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("first frame");
    assert_eq!(connection, 0);
    assert!(
        first.contains(" container.logs - CEF:0|crowsnest|crowsnest|"),
        "{first}"
    );
    assert!(first.contains("msg=two\\nlines"), "{first}");
    assert!(first.contains("dvchost=cn-test"), "{first}");
    // The first connection times out on the receiver's side and is closed.
    thread::sleep(Duration::from_millis(1200));
    sink.send(&events(2))
        .expect("second batch, on a new connection");
    let rest: Vec<(usize, String)> = (0..2)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("frame"))
        .collect();
    assert!(
        rest.iter().all(|(connection, _)| *connection == 1),
        "{rest:?}"
    );
    assert!(rest[1].1.contains("externalId=e1"));
}

#[test]
fn tcp_connection_refused_is_retryable() {
    let config = output(&format!(
        "name = \"tcp\"\ntype = \"syslog\"\naddress = \"127.0.0.1:{}\"\ntimeout_secs = 2\n",
        closed_port()
    ));
    let mut sink = build(&config).expect("build");
    assert!(sink.send(&events(1)).expect_err("refused").is_retryable());
}

struct TlsReceiver {
    address: std::net::SocketAddr,
    frames: mpsc::Receiver<String>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    ca_file: tempfile::NamedTempFile,
}

/// A TLS syslog receiver; with `idle`, it closes a connection idle that long.
fn tls_receiver(idle: Option<Duration>) -> TlsReceiver {
    let TestCert {
        ca_file,
        server_config: config,
    } = TestCert::localhost();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr");
    let (tx, frames) = mpsc::channel();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = connections.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            if stream.set_read_timeout(idle).is_err() {
                return;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Ok(session) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            let tx = tx.clone();
            thread::spawn(move || {
                read_frames(rustls::StreamOwned::new(session, stream), |frame| {
                    let _ = tx.send(frame);
                });
            });
        }
    });
    TlsReceiver {
        address,
        frames,
        connections,
        ca_file,
    }
}

#[test]
fn tls_delivers_with_the_self_signed_ca_and_refuses_without_it() {
    let receiver = tls_receiver(None);
    let trusted = output(&format!(
        "name = \"tls\"\ntype = \"syslog\"\naddress = \"{}\"\ntransport = \"tls\"\n\
         tls = {{ ca_file = \"{}\", server_name = \"localhost\" }}\n",
        receiver.address,
        receiver.ca_file.path().display()
    ));
    let mut sink = build(&trusted).expect("build");
    assert_eq!(
        sink.send(&events(2)).expect("sent over TLS"),
        Delivery::all(2)
    );
    let frames: Vec<String> = (0..2)
        .map(|_| {
            receiver
                .frames
                .recv_timeout(Duration::from_secs(5))
                .expect("frame")
        })
        .collect();
    assert!(
        frames[0].contains("id=\"e0\"") && frames[1].contains("id=\"e1\""),
        "{frames:?}"
    );
    sink.send(&events(1))
        .expect("the kept connection carries a second batch");
    let again = receiver
        .frames
        .recv_timeout(Duration::from_secs(5))
        .expect("frame");
    assert!(again.contains("id=\"e0\""));
    assert_eq!(
        receiver
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "both batches used one connection (session tickets must not look like a close)"
    );

    let untrusted = output(&format!(
        "name = \"tls\"\ntype = \"syslog\"\naddress = \"{}\"\ntransport = \"tls\"\ntls = {{ server_name = \"localhost\" }}\n",
        receiver.address
    ));
    let error = build(&untrusted)
        .expect("build")
        .send(&events(1))
        .expect_err("an unknown CA fails the handshake");
    assert!(
        error.is_retryable() && error.to_string().contains("TLS"),
        "{error}"
    );

    let wrong_name = output(&format!(
        "name = \"tls\"\ntype = \"syslog\"\naddress = \"{}\"\ntransport = \"tls\"\n\
         tls = {{ ca_file = \"{}\", server_name = \"elsewhere\" }}\n",
        receiver.address,
        receiver.ca_file.path().display()
    ));
    assert!(
        build(&wrong_name).expect("build").send(&events(1)).is_err(),
        "the name is checked"
    );

    let insecure = output(&format!(
        "name = \"tls\"\ntype = \"syslog\"\naddress = \"{}\"\ntransport = \"tls\"\ntls = {{ insecure_skip_verify = true, server_name = \"localhost\" }}\n",
        receiver.address
    ));
    build(&insecure)
        .expect("build")
        .send(&events(1))
        .expect("insecure accepts any certificate");
}

#[test]
fn tls_reconnects_after_the_receiver_closes() {
    let receiver = tls_receiver(Some(Duration::from_millis(500)));
    let config = output(&format!(
        "name = \"tls\"\ntype = \"syslog\"\naddress = \"{}\"\ntransport = \"tls\"\n\
         tls = {{ ca_file = \"{}\", server_name = \"localhost\" }}\n",
        receiver.address,
        receiver.ca_file.path().display()
    ));
    let mut sink = build(&config).expect("build");
    sink.send(&events(1)).expect("first batch");
    receiver
        .frames
        .recv_timeout(Duration::from_secs(5))
        .expect("first frame");
    thread::sleep(Duration::from_millis(1200));
    sink.send(&events(2))
        .expect("second batch, on a new connection");
    for _ in 0..2 {
        receiver
            .frames
            .recv_timeout(Duration::from_secs(5))
            .expect("frames of the second batch arrive");
    }
    assert_eq!(
        receiver
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}
