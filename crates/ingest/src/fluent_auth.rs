//! The forward protocol's optional handshake (Forward Protocol Specification v1, "Handshake
//! Messages"): a shared key, and optionally a username and password, checked before any event
//! is accepted on a connection.
//!
//! ```text
//! server → client  ["HELO", {"nonce": bin(16), "auth": bin(16) salt or "", "keepalive": true}]
//! client → server  ["PING", client_hostname, shared_key_salt,
//!                   hex(sha512(shared_key_salt + client_hostname + nonce + shared_key)),
//!                   username, hex(sha512(auth_salt + username + password))]
//! server → client  ["PONG", auth_result, reason, server_hostname,
//!                   hex(sha512(shared_key_salt + server_hostname + nonce + shared_key))]
//! ```
//!
//! After a PONG with `auth_result: true` the connection carries ordinary forward messages
//! ([`crate::fluent`]). On a wrong key or user the server answers `["PONG", false, reason,
//! "", ""]` and closes the connection, as Fluentd's `in_forward` does. The nonce and the auth
//! salt are fresh random bytes for every connection, so a recorded PING cannot be replayed;
//! the client's digest proves it knows the key without sending it, and the PONG digest lets
//! the client check the server knows it too. Digests are compared in constant time.
//!
//! This module is pure (bytes and values in, bytes out); the listener in
//! `listen::forward` runs it on a socket. It is tested against the digests computed
//! independently with Python's `hashlib` and over a loopback socket with a client written
//! from the specification: no client that implements the handshake is installable here
//! (Fluentd's `out_forward` and Fluent Bit's `forward` output do, with `shared_key` /
//! `Shared_Key`; the Python `fluent-logger` and the Go `fluent-logger-golang` packaged by
//! Debian do not). Unlike `in_forward`, a client whose hostname equals ours is not refused,
//! and per-client keys (`<client>` sections) are not supported: one key for all clients.

use std::fmt;
use std::io::Cursor;
use std::time::Duration;

use rmpv::Value as Pack;
use sha2::{Digest, Sha512};

/// Largest PING accepted, in bytes (a PING holds a few short strings).
pub const MAX_PING_BYTES: usize = 16 * 1024;

/// Deepest nesting accepted in a PING (rmpv counts every value read while decoding).
const MAX_PING_DEPTH: usize = 16;

/// One user allowed to send when user authentication is on.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardUser {
    /// The name the client sends in its PING.
    pub username: String,
    /// The password (only its salted digest travels on the wire).
    pub password: String,
}

impl fmt::Debug for ForwardUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The server side of the handshake: the shared key, the users (when user authentication is
/// on) and the hostname sent in PONG.
#[derive(Clone)]
pub struct ForwardAuth {
    shared_key: String,
    users: Vec<ForwardUser>,
    hostname: String,
    /// How long a client may take to send its PING after HELO (30 s).
    pub handshake_timeout: Duration,
}

impl fmt::Debug for ForwardAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardAuth")
            .field("shared_key", &"<redacted>")
            .field("users", &self.users)
            .field("hostname", &self.hostname)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

/// The per-connection random values sent in HELO and needed to check the PING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The nonce (16 random bytes).
    pub nonce: [u8; 16],
    /// The salt for password digests, when user authentication is on.
    pub auth_salt: Option<[u8; 16]>,
}

/// The server's answer to a PING.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pong {
    /// Whether the client may send events.
    pub accepted: bool,
    /// Why it may not, for our log (empty when accepted). The PONG itself carries a short
    /// reason (`shared_key mismatch`, `username/password mismatch` or `invalid PING`): some
    /// Fluent Bit versions copy it into a 32-byte buffer.
    pub reason: String,
    /// The PONG message to send, MessagePack-encoded.
    pub bytes: Vec<u8>,
}

/// The outcome of looking for a complete MessagePack value at the start of a buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum PingFrame {
    /// One value was read; `consumed` bytes belong to it.
    Complete {
        /// Bytes to drop from the buffer.
        consumed: usize,
        /// The value (checked by [`ForwardAuth::answer`]).
        ping: Pack,
    },
    /// More bytes are needed.
    Incomplete,
    /// Not MessagePack, or longer than [`MAX_PING_BYTES`].
    Invalid(String),
}

impl ForwardAuth {
    /// A handshake requiring `shared_key`, answering PINGs as `hostname`.
    pub fn new(shared_key: impl Into<String>, hostname: impl Into<String>) -> Self {
        Self {
            shared_key: shared_key.into(),
            users: Vec::new(),
            hostname: hostname.into(),
            handshake_timeout: Duration::from_secs(30),
        }
    }

    /// Also requires a username and password from this list (user authentication is on when
    /// the list is not empty).
    #[must_use]
    pub fn with_users(mut self, users: Vec<ForwardUser>) -> Self {
        self.users = users;
        self
    }

    /// Whether clients must send a username and password.
    pub fn requires_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// Fresh random values for one connection.
    pub fn challenge(&self) -> Challenge {
        Challenge {
            nonce: rand::random(),
            auth_salt: self.requires_users().then(rand::random),
        }
    }

    /// The HELO message for `challenge`, MessagePack-encoded.
    pub fn helo(&self, challenge: &Challenge) -> Vec<u8> {
        let auth = match &challenge.auth_salt {
            Some(salt) => Pack::Binary(salt.to_vec()),
            None => Pack::from(""),
        };
        encode(&Pack::Array(vec![
            Pack::from("HELO"),
            Pack::Map(vec![
                (Pack::from("nonce"), Pack::Binary(challenge.nonce.to_vec())),
                (Pack::from("auth"), auth),
                (Pack::from("keepalive"), Pack::from(true)),
            ]),
        ]))
    }

    /// Checks a client's PING against `challenge` and builds the PONG.
    pub fn answer(&self, challenge: &Challenge, ping: &Pack) -> Pong {
        match self.check(challenge, ping) {
            Ok(salt) => {
                let digest = shared_key_digest(
                    &salt,
                    self.hostname.as_bytes(),
                    &challenge.nonce,
                    self.shared_key.as_bytes(),
                );
                Pong {
                    accepted: true,
                    reason: String::new(),
                    bytes: encode(&Pack::Array(vec![
                        Pack::from("PONG"),
                        Pack::from(true),
                        Pack::from(""),
                        Pack::from(self.hostname.as_str()),
                        Pack::from(digest),
                    ])),
                }
            }
            Err(reason) => Pong {
                bytes: encode(&Pack::Array(vec![
                    Pack::from("PONG"),
                    Pack::from(false),
                    Pack::from(wire_reason(&reason)),
                    Pack::from(""),
                    Pack::from(""),
                ])),
                accepted: false,
                reason,
            },
        }
    }

    /// Returns the client's shared-key salt when the PING is valid.
    fn check(&self, challenge: &Challenge, ping: &Pack) -> Result<Vec<u8>, String> {
        let Pack::Array(parts) = ping else {
            return Err("expected a PING array".to_string());
        };
        if parts.first().and_then(bytes_of) != Some(b"PING".as_slice()) {
            return Err("expected a PING message after HELO".to_string());
        }
        let field = |index: usize, name: &str| {
            parts
                .get(index)
                .and_then(bytes_of)
                .ok_or_else(|| format!("expected PING to carry {name} as a string"))
        };
        let hostname = field(1, "the client hostname")?;
        let salt = field(2, "the shared key salt")?;
        let digest = field(3, "the shared key digest")?;
        let expected =
            shared_key_digest(salt, hostname, &challenge.nonce, self.shared_key.as_bytes());
        if !digest_matches(&expected, digest) {
            return Err(SHARED_KEY_MISMATCH.to_string());
        }
        if let Some(auth_salt) = &challenge.auth_salt {
            let username = field(4, "a username")?;
            let password_digest_sent = field(5, "a password digest")?;
            // Check every user so the time taken does not reveal which names exist.
            let mut matched = false;
            for user in &self.users {
                let expected = password_digest(
                    auth_salt,
                    user.username.as_bytes(),
                    user.password.as_bytes(),
                );
                let name_ok = constant_time_eq(user.username.as_bytes(), username);
                matched |= name_ok & digest_matches(&expected, password_digest_sent);
            }
            if !matched {
                return Err(USER_MISMATCH.to_string());
            }
        }
        Ok(salt.to_vec())
    }
}

/// The reason sent in a refusing PONG: the mismatch reasons as Fluentd words them, anything
/// else as `invalid PING` (at most 31 bytes, see [`Pong::reason`]).
fn wire_reason(reason: &str) -> &str {
    match reason {
        SHARED_KEY_MISMATCH | USER_MISMATCH => reason,
        _ => "invalid PING",
    }
}

const SHARED_KEY_MISMATCH: &str = "shared_key mismatch";
const USER_MISMATCH: &str = "username/password mismatch";

/// Reads the first MessagePack value of `buffer` (the PING), refusing more than
/// [`MAX_PING_BYTES`].
pub fn next_ping(buffer: &[u8]) -> PingFrame {
    if buffer.is_empty() {
        return PingFrame::Incomplete;
    }
    let mut cursor = Cursor::new(buffer);
    match rmpv::decode::read_value_with_max_depth(&mut cursor, MAX_PING_DEPTH) {
        Ok(ping) => PingFrame::Complete {
            consumed: usize::try_from(cursor.position()).unwrap_or(buffer.len()),
            ping,
        },
        Err(error) if is_eof(&error) => {
            if buffer.len() > MAX_PING_BYTES {
                PingFrame::Invalid(format!("expected a PING of at most {MAX_PING_BYTES} bytes"))
            } else {
                PingFrame::Incomplete
            }
        }
        Err(error) => PingFrame::Invalid(format!("expected a MessagePack PING: {error}")),
    }
}

/// `hex(sha512(salt + hostname + nonce + shared_key))`, the digest of PING and PONG.
pub fn shared_key_digest(salt: &[u8], hostname: &[u8], nonce: &[u8], shared_key: &[u8]) -> String {
    let mut hasher = Sha512::new();
    for part in [salt, hostname, nonce, shared_key] {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// `hex(sha512(auth_salt + username + password))`, the password digest of PING.
pub fn password_digest(auth_salt: &[u8], username: &[u8], password: &[u8]) -> String {
    let mut hasher = Sha512::new();
    for part in [auth_salt, username, password] {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// Whether `a` and `b` are equal, taking the same time for every pair of equal-length
/// inputs (the length itself is not secret: every digest is 128 hex digits).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Compares our lowercase hex digest with the client's, ignoring the client's hex case.
fn digest_matches(expected: &str, sent: &[u8]) -> bool {
    constant_time_eq(expected.as_bytes(), &sent.to_ascii_lowercase())
}

fn bytes_of(value: &Pack) -> Option<&[u8]> {
    match value {
        Pack::String(text) => Some(text.as_bytes()),
        Pack::Binary(bytes) => Some(bytes),
        _ => None,
    }
}

fn is_eof(error: &rmpv::decode::Error) -> bool {
    match error {
        rmpv::decode::Error::InvalidMarkerRead(io) | rmpv::decode::Error::InvalidDataRead(io) => {
            io.kind() == std::io::ErrorKind::UnexpectedEof
        }
        _ => false,
    }
}

fn encode(value: &Pack) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut bytes, value);
    bytes
}

#[cfg(test)]
mod tests {
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
}
