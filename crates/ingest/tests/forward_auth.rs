//! The forward listener's shared-key handshake over loopback sockets, driven by a client
//! written from the Forward Protocol Specification v1 (no installable client implements the
//! handshake; see `crowsnest_ingest::fluent_auth`): a full handshake then events and acks, a
//! wrong key or user refused with a PONG and a closed connection, truncated and garbage PINGs,
//! the listener without a key behaving as before, and the handshake over TLS.

use std::sync::Arc;
use std::time::Duration;

use crowsnest_ingest::fluent_auth::{password_digest, shared_key_digest, ForwardAuth, ForwardUser};
use crowsnest_ingest::listen::{self, ForwardOptions, Listener};
use crowsnest_ingest::Limits;
use rmpv::Value as Pack;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod support;

use support::{connect_tls, self_signed, Collect};

async fn start(auth: Option<ForwardAuth>) -> (Listener, Arc<Collect>) {
    let sink = Arc::new(Collect::default());
    let options = ForwardOptions {
        tls: None,
        auth: auth.map(Arc::new),
        budget: None,
    };
    let listener =
        listen::forward_listener("127.0.0.1:0", options, sink.clone(), Limits::default())
            .await
            .expect("bind");
    (listener, sink)
}

fn encode(value: &Pack) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, value).expect("encode");
    bytes
}

/// Reads one MessagePack value from the stream.
async fn read_value<S: AsyncRead + Unpin>(stream: &mut S) -> Pack {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(value) = rmpv::decode::read_value(&mut std::io::Cursor::new(&buffer)) {
            return value;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("the server answers within 5 s")
            .expect("read");
        assert!(n > 0, "the server closed before a whole value ({buffer:?})");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Asserts the server closed the connection (EOF or reset) within 5 s, having sent nothing
/// more or only a refusing PONG.
async fn assert_closed<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection");
    assert!(read.is_ok() || rest.is_empty(), "{read:?}");
    if !rest.is_empty() {
        let pong = rmpv::decode::read_value(&mut std::io::Cursor::new(&rest)).expect("msgpack");
        let parts = pong.as_array().expect("PONG");
        assert_eq!(parts[0].as_str(), Some("PONG"));
        assert_eq!(parts[1], Pack::from(false), "{parts:?}");
    }
}

/// The HELO's nonce and auth salt.
fn helo_parts(helo: &Pack) -> (Vec<u8>, Vec<u8>) {
    let parts = helo.as_array().expect("HELO array");
    assert_eq!(parts[0].as_str(), Some("HELO"));
    let options = parts[1].as_map().expect("HELO options");
    let get = |key: &str| -> Vec<u8> {
        match options.iter().find(|(k, _)| k.as_str() == Some(key)) {
            Some((_, Pack::Binary(bytes))) => bytes.clone(),
            Some((_, Pack::String(text))) => text.as_bytes().to_vec(),
            other => panic!("HELO option {key}: {other:?}"),
        }
    };
    (get("nonce"), get("auth"))
}

fn ping(nonce: &[u8], key: &str, user: Option<(&str, &str, &[u8])>) -> Vec<u8> {
    let (username, password) = match user {
        Some((name, password, auth_salt)) => (
            name.to_string(),
            password_digest(auth_salt, name.as_bytes(), password.as_bytes()),
        ),
        None => (String::new(), String::new()),
    };
    encode(&Pack::Array(vec![
        Pack::from("PING"),
        Pack::from("client.test"),
        Pack::from("clientsalt"),
        Pack::from(shared_key_digest(
            b"clientsalt",
            b"client.test",
            nonce,
            key.as_bytes(),
        )),
        Pack::from(username),
        Pack::from(password),
    ]))
}

fn message(text: &str, chunk: &str) -> Vec<u8> {
    encode(&Pack::Array(vec![
        Pack::from("app.log"),
        Pack::from(1_714_557_600u32),
        Pack::Map(vec![(Pack::from("message"), Pack::from(text))]),
        Pack::Map(vec![(Pack::from("chunk"), Pack::from(chunk))]),
    ]))
}

/// Runs the client side: HELO → PING → PONG, returns the PONG's parts.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: &str,
    user: Option<(&str, &str)>,
) -> Vec<Pack> {
    let (nonce, auth_salt) = helo_parts(&read_value(stream).await);
    assert_eq!(nonce.len(), 16);
    let user = user.map(|(name, password)| (name, password, auth_salt.as_slice()));
    stream
        .write_all(&ping(&nonce, key, user))
        .await
        .expect("PING");
    let pong = read_value(stream).await;
    let parts = pong.as_array().expect("PONG array").clone();
    assert_eq!(parts[0].as_str(), Some("PONG"));
    if parts[1] == Pack::from(true) {
        // The server proves it knows the key too.
        let server = parts[3].as_str().expect("server hostname");
        let expected = shared_key_digest(b"clientsalt", server.as_bytes(), &nonce, key.as_bytes());
        assert_eq!(parts[4].as_str(), Some(expected.as_str()));
    }
    parts
}

async fn expect_ack<S: AsyncRead + Unpin>(stream: &mut S, chunk: &str) {
    let ack = read_value(stream).await;
    let map = ack.as_map().expect("ack map");
    assert_eq!(map[0], (Pack::from("ack"), Pack::from(chunk)));
}

#[tokio::test]
async fn a_client_with_the_key_completes_the_handshake_then_sends() {
    let (listener, sink) = start(Some(ForwardAuth::new("s3cret", "crowsnest.test"))).await;
    let mut stream = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let pong = handshake(&mut stream, "s3cret", None).await;
    assert_eq!(pong[1], Pack::from(true), "{pong:?}");
    assert_eq!(pong[3].as_str(), Some("crowsnest.test"));
    stream
        .write_all(&message("after handshake", "c1"))
        .await
        .expect("write");
    expect_ack(&mut stream, "c1").await;
    assert_eq!(sink.messages(), vec!["after handshake".to_string()]);
}

#[tokio::test]
async fn a_wrong_key_gets_pong_false_and_a_closed_connection_and_nothing_is_stored() {
    let (listener, sink) = start(Some(ForwardAuth::new("s3cret", "srv"))).await;
    let mut stream = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let (nonce, _) = helo_parts(&read_value(&mut stream).await);
    // The PING and an event in one write: the event must not be read.
    let mut bytes = ping(&nonce, "guess", None);
    bytes.extend(message("sneaked in", "c1"));
    stream.write_all(&bytes).await.expect("write");
    let pong = read_value(&mut stream).await;
    let parts = pong.as_array().expect("PONG");
    assert_eq!(parts[1], Pack::from(false));
    assert_eq!(parts[2].as_str(), Some("shared_key mismatch"));
    assert_closed(&mut stream).await;
    // Events sent without any handshake are refused as well.
    let mut rude = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let _ = read_value(&mut rude).await;
    let _ = rude.write_all(&message("no ping", "c2")).await;
    assert_closed(&mut rude).await;
    assert!(sink.messages().is_empty(), "{:?}", sink.messages());
}

#[tokio::test]
async fn users_must_match_when_configured() {
    let users = vec![ForwardUser {
        username: "alice".into(),
        password: "pa55".into(),
    }];
    let (listener, sink) = start(Some(ForwardAuth::new("k", "srv").with_users(users))).await;
    let mut good = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let pong = handshake(&mut good, "k", Some(("alice", "pa55"))).await;
    assert_eq!(pong[1], Pack::from(true), "{pong:?}");
    good.write_all(&message("from alice", "a"))
        .await
        .expect("write");
    expect_ack(&mut good, "a").await;
    let mut bad = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let pong = handshake(&mut bad, "k", Some(("alice", "wrong"))).await;
    assert_eq!(pong[1], Pack::from(false));
    assert_eq!(pong[2].as_str(), Some("username/password mismatch"));
    assert_closed(&mut bad).await;
    assert_eq!(sink.messages(), vec!["from alice".to_string()]);
}

#[tokio::test]
async fn truncated_and_garbage_pings_close_the_connection_and_the_listener_carries_on() {
    let (listener, sink) = start(Some(ForwardAuth::new("k", "srv"))).await;
    // Half a PING, then the client goes away.
    let mut truncated = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let (nonce, _) = helo_parts(&read_value(&mut truncated).await);
    let bytes = ping(&nonce, "k", None);
    truncated
        .write_all(&bytes[..bytes.len() / 2])
        .await
        .expect("write");
    drop(truncated);
    // Not MessagePack at all (0xc1 is the unused marker), and MessagePack that is no PING.
    for garbage in [vec![0xc1, 0xc1, 0xc1], b"GET / HTTP/1.1\r\n\r\n".to_vec()] {
        let mut stream = tokio::net::TcpStream::connect(listener.local_addr)
            .await
            .expect("connect");
        let _ = read_value(&mut stream).await;
        let _ = stream.write_all(&garbage).await;
        assert_closed(&mut stream).await;
    }
    // A PING longer than any real one is refused without waiting for its end.
    let mut long = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let _ = read_value(&mut long).await;
    let mut huge = vec![0xdb, 0x00, 0x10, 0x00, 0x00];
    huge.resize(64 * 1024, b'a');
    let _ = long.write_all(&huge).await;
    assert_closed(&mut long).await;
    // The listener still serves a good client.
    let mut stream = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let pong = handshake(&mut stream, "k", None).await;
    assert_eq!(pong[1], Pack::from(true));
    stream
        .write_all(&message("still up", "s"))
        .await
        .expect("write");
    expect_ack(&mut stream, "s").await;
    assert_eq!(sink.messages(), vec!["still up".to_string()]);
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let mut auth = ForwardAuth::new("k", "srv");
    auth.handshake_timeout = Duration::from_millis(200);
    let (listener, _sink) = start(Some(auth)).await;
    let mut stream = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let _ = read_value(&mut stream).await;
    assert_closed(&mut stream).await;
}

#[tokio::test]
async fn without_a_key_the_server_speaks_first_never_and_takes_events_directly() {
    let (listener, sink) = start(None).await;
    let mut stream = tokio::net::TcpStream::connect(listener.local_addr)
        .await
        .expect("connect");
    let mut first = [0u8; 1];
    let silent = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut first)).await;
    assert!(
        silent.is_err(),
        "the server sent something first: {silent:?}"
    );
    stream
        .write_all(&message("plain", "p"))
        .await
        .expect("write");
    expect_ack(&mut stream, "p").await;
    assert_eq!(sink.messages(), vec!["plain".to_string()]);
}

#[tokio::test]
async fn the_handshake_runs_inside_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (acceptor, cert) = self_signed(dir.path());
    let sink = Arc::new(Collect::default());
    let options = ForwardOptions {
        tls: Some(acceptor),
        auth: Some(Arc::new(ForwardAuth::new("k", "srv"))),
        budget: None,
    };
    let listener =
        listen::forward_listener("127.0.0.1:0", options, sink.clone(), Limits::default())
            .await
            .expect("bind");
    assert_eq!(listener.protocol, "forward/tls");
    let mut tls = connect_tls(listener.local_addr, cert).await;
    let pong = handshake(&mut tls, "k", None).await;
    assert_eq!(pong[1], Pack::from(true));
    tls.write_all(&message("over tls", "t"))
        .await
        .expect("write");
    expect_ack(&mut tls, "t").await;
    assert_eq!(sink.messages(), vec!["over tls".to_string()]);
}
