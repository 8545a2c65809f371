//! Unit tests of the handshake: digests against Python-computed values, PONGs, users,
//! malformed PINGs.

use super::*;

// Expected digests computed once, independently of this code, with Python:
//   hashlib.sha512(b"salt" + b"client.example" + bytes(range(16)) + b"s3cret").hexdigest()
const PING_DIGEST: &str = "c8deeaa233acaac8486ea6e9e9f0d06b28c6a540e39145588b8b3212e6e0d969d3bd9e316b7ae684a7c6b59bfc3245d162a7b81ebdc9840fbe47d2ae3fca79fd";
//   hashlib.sha512(b"authsalt" + b"alice" + b"pa55").hexdigest()
const PASSWORD_DIGEST: &str = "1e8ee739226d7f8f4dc70b59104e1e12a1061776d138e2948de654e0561f5370011ad8de140ffa5b7b3c7b4e48184bff81992ff730be4588ee45e03a3015eb81";

fn nonce() -> [u8; 16] {
    std::array::from_fn(|i| u8::try_from(i).expect("small"))
}

#[test]
fn digests_match_the_specification_computed_by_python() {
    assert_eq!(
        shared_key_digest(b"salt", b"client.example", &nonce(), b"s3cret"),
        PING_DIGEST
    );
    assert_eq!(
        password_digest(b"authsalt", b"alice", b"pa55"),
        PASSWORD_DIGEST
    );
}

fn ping(digest: &str, username: &str, password: &str) -> Pack {
    Pack::Array(vec![
        Pack::from("PING"),
        Pack::from("client.example"),
        Pack::from("salt"),
        Pack::from(digest),
        Pack::from(username),
        Pack::from(password),
    ])
}

fn decode(bytes: &[u8]) -> Vec<Pack> {
    match rmpv::decode::read_value(&mut Cursor::new(bytes)).expect("msgpack") {
        Pack::Array(parts) => parts,
        other => panic!("expected an array, got {other:?}"),
    }
}

#[test]
fn a_right_key_is_accepted_and_the_pong_proves_the_server_knows_it() {
    let auth = ForwardAuth::new("s3cret", "crowsnest.example");
    let challenge = Challenge {
        nonce: nonce(),
        auth_salt: None,
    };
    let pong = auth.answer(&challenge, &ping(PING_DIGEST, "", ""));
    assert!(pong.accepted, "{}", pong.reason);
    let parts = decode(&pong.bytes);
    assert_eq!(parts[0], Pack::from("PONG"));
    assert_eq!(parts[1], Pack::from(true));
    assert_eq!(parts[3], Pack::from("crowsnest.example"));
    let server_digest = shared_key_digest(b"salt", b"crowsnest.example", &nonce(), b"s3cret");
    assert_eq!(parts[4], Pack::from(server_digest.as_str()));
    assert_ne!(server_digest, PING_DIGEST);
}

#[test]
fn upper_case_hex_from_a_client_is_accepted() {
    let auth = ForwardAuth::new("s3cret", "srv");
    let challenge = Challenge {
        nonce: nonce(),
        auth_salt: None,
    };
    let upper = PING_DIGEST.to_ascii_uppercase();
    assert!(auth.answer(&challenge, &ping(&upper, "", "")).accepted);
}

#[test]
fn a_wrong_key_or_nonce_is_refused_with_a_reason() {
    let auth = ForwardAuth::new("other", "srv");
    let challenge = Challenge {
        nonce: nonce(),
        auth_salt: None,
    };
    let pong = auth.answer(&challenge, &ping(PING_DIGEST, "", ""));
    assert!(!pong.accepted);
    assert_eq!(pong.reason, "shared_key mismatch");
    let parts = decode(&pong.bytes);
    assert_eq!(parts[1], Pack::from(false));
    assert_eq!(parts[2], Pack::from("shared_key mismatch"));
    // The right key with another connection's nonce (a replayed PING) is refused too.
    let right = ForwardAuth::new("s3cret", "srv");
    let replay = Challenge {
        nonce: [7; 16],
        auth_salt: None,
    };
    assert!(!right.answer(&replay, &ping(PING_DIGEST, "", "")).accepted);
}

#[test]
fn users_are_checked_when_configured() {
    let auth = ForwardAuth::new("s3cret", "srv").with_users(vec![
        ForwardUser {
            username: "bob".into(),
            password: "x".into(),
        },
        ForwardUser {
            username: "alice".into(),
            password: "pa55".into(),
        },
    ]);
    let mut auth_salt = [0u8; 16];
    auth_salt[..8].copy_from_slice(b"authsalt");
    let challenge = Challenge {
        nonce: nonce(),
        auth_salt: Some(auth_salt),
    };
    let good = password_digest(&auth_salt, b"alice", b"pa55");
    assert!(
        auth.answer(&challenge, &ping(PING_DIGEST, "alice", &good))
            .accepted
    );
    let wrong_user = auth.answer(&challenge, &ping(PING_DIGEST, "bob", &good));
    assert_eq!(wrong_user.reason, "username/password mismatch");
    let missing = auth.answer(
        &challenge,
        &Pack::Array(ping(PING_DIGEST, "", "").as_array().expect("array")[..4].to_vec()),
    );
    assert!(!missing.accepted);
    assert!(missing.reason.contains("username"), "{}", missing.reason);
}

#[test]
fn helo_carries_a_fresh_nonce_and_the_salt_only_with_users() {
    let auth = ForwardAuth::new("k", "srv");
    let (a, b) = (auth.challenge(), auth.challenge());
    assert_ne!(a.nonce, b.nonce);
    assert_eq!(a.auth_salt, None);
    let parts = decode(&auth.helo(&a));
    assert_eq!(parts[0], Pack::from("HELO"));
    let options = parts[1].as_map().expect("map");
    let get = |key: &str| {
        options
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("nonce"), Some(Pack::Binary(a.nonce.to_vec())));
    assert_eq!(get("auth"), Some(Pack::from("")));
    assert_eq!(get("keepalive"), Some(Pack::from(true)));
    let with_users = auth.with_users(vec![ForwardUser {
        username: "u".into(),
        password: "p".into(),
    }]);
    let challenge = with_users.challenge();
    let salt = challenge.auth_salt.expect("salt");
    let parts = decode(&with_users.helo(&challenge));
    let options = parts[1].as_map().expect("map");
    assert!(options
        .iter()
        .any(|(k, v)| k.as_str() == Some("auth") && *v == Pack::Binary(salt.to_vec())));
}

#[test]
fn a_salt_of_raw_bytes_in_a_str_is_used_as_bytes() {
    // Fluent Bit packs its 16 random salt bytes as a MessagePack str, not valid UTF-8.
    let salt = [
        0xffu8, 0xfe, 0x00, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    let digest = shared_key_digest(&salt, b"localhost", &nonce(), b"s3cret");
    let mut bytes = vec![0x96, 0xa4];
    bytes.extend_from_slice(b"PING");
    bytes.push(0xa9);
    bytes.extend_from_slice(b"localhost");
    bytes.push(0xb0);
    bytes.extend_from_slice(&salt);
    bytes.extend_from_slice(&[0xd9, 0x80]);
    bytes.extend_from_slice(digest.as_bytes());
    bytes.extend_from_slice(&[0xa0, 0xa0]);
    let PingFrame::Complete { ping, .. } = next_ping(&bytes) else {
        panic!("a whole PING");
    };
    let auth = ForwardAuth::new("s3cret", "srv");
    let challenge = Challenge {
        nonce: nonce(),
        auth_salt: None,
    };
    let pong = auth.answer(&challenge, &ping);
    assert!(pong.accepted, "{}", pong.reason);
    let parts = decode(&pong.bytes);
    let expected = shared_key_digest(&salt, b"srv", &nonce(), b"s3cret");
    assert_eq!(parts[4], Pack::from(expected.as_str()));
}

#[test]
fn refusals_carry_short_reasons_on_the_wire() {
    let auth = ForwardAuth::new("k", "srv");
    let challenge = auth.challenge();
    let pong = auth.answer(&challenge, &Pack::Array(vec![Pack::from("PING")]));
    assert!(pong.reason.contains("client hostname"), "{}", pong.reason);
    let parts = decode(&pong.bytes);
    assert_eq!(parts[2], Pack::from("invalid PING"));
    for reason in [SHARED_KEY_MISMATCH, USER_MISMATCH, "invalid PING"] {
        assert!(reason.len() < 32);
    }
}

#[test]
fn garbage_and_partial_pings_do_not_panic() {
    let auth = ForwardAuth::new("k", "srv");
    let challenge = auth.challenge();
    for value in [
        Pack::Nil,
        Pack::Array(vec![]),
        Pack::Array(vec![Pack::from("PING")]),
        Pack::Array(vec![
            Pack::from("PING"),
            Pack::from(1),
            Pack::from(2),
            Pack::from(3),
        ]),
        Pack::Array(vec![Pack::from("HELO"), Pack::Map(vec![])]),
    ] {
        assert!(!auth.answer(&challenge, &value).accepted, "{value:?}");
    }
    let bytes = encode(&ping(PING_DIGEST, "", ""));
    for cut in 1..bytes.len() {
        assert_eq!(
            next_ping(&bytes[..cut]),
            PingFrame::Incomplete,
            "cut at {cut}"
        );
    }
    assert!(
        matches!(next_ping(&bytes), PingFrame::Complete { consumed, .. } if consumed == bytes.len())
    );
    // 0xc1 is MessagePack's one unused marker: not a value at all.
    assert!(
        !matches!(next_ping(&[0xc1, 0, 0]), PingFrame::Incomplete),
        "{:?}",
        next_ping(&[0xc1])
    );
    let huge = vec![0xdb, 0xff, 0xff, 0xff, 0x00];
    let mut long = huge.clone();
    long.resize(MAX_PING_BYTES + 10, b'a');
    assert!(matches!(next_ping(&long), PingFrame::Invalid(_)));
    assert_eq!(next_ping(&huge), PingFrame::Incomplete);
}

#[test]
fn constant_time_eq_compares_whole_inputs() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(constant_time_eq(b"", b""));
}
