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
mod tests;
