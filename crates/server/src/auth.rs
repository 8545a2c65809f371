//! Bearer tokens with scopes.
//!
//! Tokens are random 32-byte values shown once (hex, prefixed `cn_`); only their SHA-256 is kept,
//! in `<data-dir>/tokens.json`. The admin token is created on first start and written to
//! `<data-dir>/admin.token` with mode 0600 so the local operator (and `crowsnest search`) can
//! read it. Each request names one scope it needs; `admin` implies every scope.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// File name of the admin token inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
const TOKENS_FILE: &str = "tokens.json";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send events.
    Ingest,
    /// Search, read alerts, health and metrics.
    Read,
    /// Everything, including token management.
    Admin,
}

impl Scope {
    /// Parses `ingest`, `read` or `admin`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ingest" => Some(Self::Ingest),
            "read" => Some(Self::Read),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// One stored token (its hash, never the token).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Human name of the token.
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// When it was made (RFC 3339).
    pub created: String,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No usable credentials: 401.
    Missing,
    /// Credentials that match no token: 401.
    Unknown,
    /// A valid token without the needed scope: 403.
    Forbidden {
        /// The token's name.
        token: String,
        /// The scope the request needs.
        needed: Scope,
    },
}

/// The token registry.
pub struct Tokens {
    path: PathBuf,
    records: RwLock<Vec<TokenRecord>>,
}

impl Tokens {
    /// Loads the registry, creating it and the admin token on first start. Returns the new
    /// admin token when one was created.
    pub fn open(data_dir: &Path) -> anyhow::Result<(Self, Option<String>)> {
        let path = data_dir.join(TOKENS_FILE);
        let records: Vec<TokenRecord> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading token registry `{}`", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading `{}`", path.display())),
        };
        let tokens = Self {
            path,
            records: RwLock::new(records),
        };
        let admin_path = data_dir.join(ADMIN_TOKEN_FILE);
        let has_admin = tokens.read().iter().any(|r| r.name == "admin");
        if has_admin && admin_path.is_file() {
            return Ok((tokens, None));
        }
        // First start (or the admin token file was deleted): make a new admin token.
        let token = tokens.create("admin", [Scope::Admin].into_iter().collect())?;
        write_secret(&admin_path, &token)?;
        Ok((tokens, Some(token)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<TokenRecord>> {
        self.records
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes a new token with these scopes, replacing any token of the same name, and returns it.
    pub fn create(&self, name: &str, scopes: BTreeSet<Scope>) -> anyhow::Result<String> {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = format!("cn_{}", hex::encode(raw));
        let record = TokenRecord {
            name: name.to_string(),
            sha256: digest(&token),
            scopes,
            created: chrono::Utc::now().to_rfc3339(),
        };
        let mut records = self
            .records
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        records.retain(|r| r.name != name);
        records.push(record);
        let text = serde_json::to_vec_pretty(&*records).context("serializing tokens")?;
        write_secret_bytes(&self.path, &text)?;
        Ok(token)
    }

    /// Removes the token named `name`; false when there is none. From now on it
    /// authenticates nothing (console sessions made with it end at their next request).
    pub fn revoke(&self, name: &str) -> anyhow::Result<bool> {
        let mut records = self
            .records
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = records.len();
        let mut kept = records.clone();
        kept.retain(|r| r.name != name);
        if kept.len() == before {
            return Ok(false);
        }
        let text = serde_json::to_vec_pretty(&kept).context("serializing tokens")?;
        // Written first: a registry that could not be saved keeps the token in memory too, so
        // what the server enforces is what survives a restart.
        write_secret_bytes(&self.path, &text)?;
        *records = kept;
        Ok(true)
    }

    /// Names and scopes of the tokens.
    pub fn list(&self) -> Vec<TokenRecord> {
        self.read().clone()
    }

    /// Checks an `Authorization` header value for a scope. Accepts the token the ways shippers
    /// send credentials (see [`credential`]): `Bearer <token>`, `ApiKey <token>`,
    /// `ApiKey base64(<id>:<token>)`, `Basic base64(<any user>:<token>)`, `Splunk <token>`.
    pub fn check(&self, authorization: Option<&str>, needed: Scope) -> Result<String, AuthFailure> {
        let value = authorization.ok_or(AuthFailure::Missing)?;
        let token = credential(value).ok_or(AuthFailure::Missing)?;
        let hash = digest(&token);
        let records = self.read();
        let record = records
            .iter()
            .find(|r| constant_time_eq(r.sha256.as_bytes(), hash.as_bytes()))
            .ok_or(AuthFailure::Unknown)?;
        if record.scopes.contains(&Scope::Admin) || record.scopes.contains(&needed) {
            Ok(record.name.clone())
        } else {
            Err(AuthFailure::Forbidden {
                token: record.name.clone(),
                needed,
            })
        }
    }
}

/// Who a refused request claimed to be, for the log: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// No usable credentials.
    Nothing,
    /// A token that matches none: the first 8 hex digits of its SHA-256, enough to tell
    /// repeated attempts apart, useless to recover it.
    Unknown {
        /// Prefix of the token's SHA-256.
        sha256_prefix: String,
    },
    /// A known token (that lacked the scope).
    Known {
        /// The token's name.
        name: String,
    },
}

impl Tokens {
    /// Who an `Authorization` value claims to be (for logging a refused request).
    pub fn claimed(&self, authorization: Option<&str>) -> Claimed {
        let Some(token) = authorization.and_then(credential) else {
            return Claimed::Nothing;
        };
        let hash = digest(&token);
        let records = self.read();
        match records
            .iter()
            .find(|r| constant_time_eq(r.sha256.as_bytes(), hash.as_bytes()))
        {
            Some(record) => Claimed::Known {
                name: record.name.clone(),
            },
            None => Claimed::Unknown {
                sha256_prefix: hash[..8].to_string(),
            },
        }
    }
}

/// Failed authentication per source address: counts unknown tokens in fixed windows, refuses
/// an address that reached the limit until its window ends, and says when a failure is worth
/// a log line (the first of an address's window, and the one that reaches the limit), so that
/// neither the log nor memory grows with an attack: at most
/// [`AuthLimits::max_tracked_addresses`](crate::config::AuthLimits) addresses are remembered,
/// expired windows first, then the oldest, are forgotten beyond.
///
/// IPv6 addresses count by /64 (what one host or customer usually gets), IPv4-mapped IPv6 as
/// IPv4.
pub struct FailureThrottle {
    max_failures: u32,
    window: Duration,
    max_tracked: usize,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

/// One address's current window.
#[derive(Debug, Clone)]
struct Window {
    started: Instant,
    /// Unknown tokens (they count toward the limit).
    unknown: u32,
    /// Every failure (missing credentials and missing scopes too), for the log.
    failures: u32,
    /// Failures of the previous window, reported in the first line of this one.
    previous: u32,
}

/// What [`FailureThrottle::record`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Failures of this address in its window, this one included.
    pub failures: u32,
    /// Failures of its previous window, when this is the first of a new one.
    pub previous_window: u32,
    /// True when this failure should be logged.
    pub log: bool,
    /// True when this failure reached the limit: the address is refused from now on.
    pub throttled: bool,
}

impl FailureThrottle {
    /// A throttle with these limits.
    pub fn new(limits: &crate::config::AuthLimits) -> Self {
        Self {
            max_failures: limits.max_failures.max(1),
            window: Duration::from_secs(limits.failure_window_secs.max(1)),
            max_tracked: limits.max_tracked_addresses.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key an address is counted under.
    pub fn key(addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(_) => addr,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
        }
    }

    /// `Some(seconds until its window ends)` when `addr` is refused at `now`.
    pub fn refused(&self, addr: IpAddr, now: Instant) -> Option<u64> {
        let windows = self.lock();
        let window = windows.get(&Self::key(addr))?;
        let ends = window.started + self.window;
        (window.unknown >= self.max_failures && now < ends)
            .then(|| ends.duration_since(now).as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Records a failure of `addr` at `now`; `counts` is true for an unknown token (which
    /// counts toward the limit), false for missing credentials or a missing scope.
    pub fn record(&self, addr: IpAddr, counts: bool, now: Instant) -> Recorded {
        let key = Self::key(addr);
        let mut windows = self.lock();
        if !windows.contains_key(&key) && windows.len() >= self.max_tracked {
            let period = self.window;
            windows.retain(|_, w| now.duration_since(w.started) < period);
            if windows.len() >= self.max_tracked {
                let oldest = windows
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    windows.remove(&oldest);
                }
            }
        }
        let window = windows.entry(key).or_insert(Window {
            started: now,
            unknown: 0,
            failures: 0,
            previous: 0,
        });
        if now.duration_since(window.started) >= self.window {
            *window = Window {
                started: now,
                unknown: 0,
                failures: 0,
                previous: window.failures,
            };
        }
        window.failures = window.failures.saturating_add(1);
        if counts {
            window.unknown = window.unknown.saturating_add(1);
        }
        let throttled = counts && window.unknown == self.max_failures;
        Recorded {
            failures: window.failures,
            previous_window: if window.failures == 1 {
                window.previous
            } else {
                0
            },
            log: window.failures == 1 || throttled,
            throttled,
        }
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// The limit, for messages.
    pub fn max_failures(&self) -> u32 {
        self.max_failures
    }

    /// The window, for messages.
    pub fn window(&self) -> Duration {
        self.window
    }
}

/// Extracts the token from an `Authorization` value, whatever scheme the shipper uses:
///
/// * `Bearer <token>`: our own clients, OTel exporters, Falco/falcosidekick custom headers;
/// * `ApiKey <token>` or `ApiKey base64(<id>:<token>)`: Elasticsearch API keys (Beats,
///   Logstash, the official clients encode `id:api_key`; the id is ignored);
/// * `Basic base64(<user>:<token>)`: Elasticsearch basic auth with the token as password
///   (Fluent Bit, Vector, older Beats); the user name is ignored;
/// * `Splunk <token>`: Splunk HEC clients.
///
/// Scheme names are case-insensitive. `None` when no token can be found.
pub fn credential(value: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if rest.is_empty() {
        return None;
    }
    let decode = |text: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    };
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "splunk" => Some(rest.to_string()),
        "apikey" => {
            match decode(rest).and_then(|d| d.split_once(':').map(|(_, t)| t.to_string())) {
                Some(token) if !token.is_empty() => Some(token),
                _ => Some(rest.to_string()),
            }
        }
        "basic" => decode(rest)
            .and_then(|d| d.split_once(':').map(|(_, t)| t.to_string()))
            .filter(|t| !t.is_empty()),
        _ => None,
    }
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn write_secret(path: &Path, token: &str) -> anyhow::Result<()> {
    write_secret_bytes(path, format!("{token}\n").as_bytes())
}

/// Writes a file readable by its owner only (0600), atomically and durably.
fn write_secret_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crowsnest_util::AtomicWrite::default()
        .mode(0o600)
        .write(path, bytes)
        .with_context(|| format!("writing `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn throttle(max_failures: u32, window_secs: u64, max_tracked: usize) -> FailureThrottle {
        FailureThrottle::new(&crate::config::AuthLimits {
            max_failures,
            failure_window_secs: window_secs,
            max_tracked_addresses: max_tracked,
        })
    }

    #[test]
    fn an_address_is_refused_after_the_limit_until_its_window_ends() {
        let t = throttle(3, 60, 100);
        let (a, b): (IpAddr, IpAddr) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let start = Instant::now();
        let first = t.record(a, true, start);
        assert!(first.log && !first.throttled);
        assert!(!t.record(a, true, start).log, "one line per window");
        assert_eq!(t.refused(a, start), None);
        let third = t.record(a, true, start);
        assert!(third.throttled && third.log, "{third:?}");
        assert_eq!(t.refused(a, start), Some(60));
        assert_eq!(t.refused(a, start + Duration::from_secs(59)), Some(1));
        assert_eq!(
            t.refused(b, start),
            None,
            "other addresses are not affected"
        );
        let later = start + Duration::from_secs(60);
        assert_eq!(t.refused(a, later), None, "the window ended");
        let next = t.record(a, true, later);
        assert_eq!(
            (next.failures, next.previous_window, next.log),
            (1, 3, true)
        );
    }

    #[test]
    fn missing_credentials_and_scopes_are_logged_but_do_not_count() {
        let t = throttle(2, 60, 100);
        let a: IpAddr = ip("192.0.2.1");
        let now = Instant::now();
        for _ in 0..10 {
            assert!(!t.record(a, false, now).throttled);
        }
        assert_eq!(t.refused(a, now), None);
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let t = throttle(2, 60, 100);
        let now = Instant::now();
        t.record(ip("2001:db8:1:2::1"), true, now);
        t.record(ip("2001:db8:1:2:ffff::9"), true, now);
        assert!(t.refused(ip("2001:db8:1:2::77"), now).is_some());
        assert!(t.refused(ip("2001:db8:1:3::1"), now).is_none());
        assert_eq!(
            FailureThrottle::key(ip("::ffff:192.0.2.9")),
            ip("192.0.2.9")
        );
    }

    #[test]
    fn many_addresses_do_not_grow_memory() {
        let t = throttle(5, 60, 1000);
        let now = Instant::now();
        for i in 0..50_000u32 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.record(addr, true, now + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(t.tracked(), 1000);
        // The newest are kept, the oldest forgotten.
        let newest = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 49_999));
        let later = now + Duration::from_millis(50_000);
        t.record(newest, true, later);
        assert_eq!(t.lock().get(&newest).map(|w| w.unknown), Some(2));
    }

    #[test]
    fn claimed_names_known_tokens_and_hashes_unknown_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tokens, _) = Tokens::open(dir.path()).expect("open");
        let ingest = tokens
            .create("shipper", [Scope::Ingest].into_iter().collect())
            .expect("create");
        assert_eq!(
            tokens.claimed(Some(&format!("Bearer {ingest}"))),
            Claimed::Known {
                name: "shipper".into()
            }
        );
        match tokens.claimed(Some("Bearer cn_guess")) {
            Claimed::Unknown { sha256_prefix } => {
                assert_eq!(sha256_prefix, digest("cn_guess")[..8]);
                assert!(!sha256_prefix.contains("guess"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(tokens.claimed(None), Claimed::Nothing);
    }

    #[test]
    fn admin_token_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tokens, created) = Tokens::open(dir.path()).expect("open");
        let token = created.expect("first start creates the admin token");
        let on_disk = std::fs::read_to_string(dir.path().join(ADMIN_TOKEN_FILE)).expect("read");
        assert_eq!(on_disk.trim(), token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ADMIN_TOKEN_FILE))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(tokens
            .check(Some(&format!("Bearer {token}")), Scope::Read)
            .is_ok());
        drop(tokens);
        let (tokens, again) = Tokens::open(dir.path()).expect("reopen");
        assert_eq!(again, None, "the admin token must not change on restart");
        assert!(tokens
            .check(Some(&format!("Bearer {token}")), Scope::Admin)
            .is_ok());
        let stored = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).expect("read");
        assert!(!stored.contains(&token), "only the hash is stored");
    }

    #[test]
    fn scopes_are_enforced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tokens, _) = Tokens::open(dir.path()).expect("open");
        let ingest = tokens
            .create("shipper", [Scope::Ingest].into_iter().collect())
            .expect("create");
        let header = format!("Bearer {ingest}");
        assert_eq!(
            tokens.check(Some(&header), Scope::Ingest),
            Ok("shipper".to_string())
        );
        assert_eq!(
            tokens.check(Some(&header), Scope::Read),
            Err(AuthFailure::Forbidden {
                token: "shipper".into(),
                needed: Scope::Read
            })
        );
        assert_eq!(tokens.check(None, Scope::Read), Err(AuthFailure::Missing));
        assert_eq!(
            tokens.check(Some("Basic abc"), Scope::Read),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            tokens.check(Some("Bearer cn_nope"), Scope::Read),
            Err(AuthFailure::Unknown)
        );
    }

    #[test]
    fn shipper_credential_schemes_carry_the_same_token() {
        use base64::Engine;
        let dir = tempfile::tempdir().expect("tempdir");
        let (tokens, _) = Tokens::open(dir.path()).expect("open");
        let token = tokens
            .create("shipper", [Scope::Ingest].into_iter().collect())
            .expect("create");
        let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
        let accepted = [
            format!("Bearer {token}"),
            format!("ApiKey {token}"),
            format!("ApiKey {}", b64(format!("my-id:{token}"))),
            format!("Basic {}", b64(format!("elastic:{token}"))),
            format!("basic {}", b64(format!(":{token}"))),
            format!("Splunk {token}"),
        ];
        for header in &accepted {
            assert_eq!(
                tokens.check(Some(header), Scope::Ingest),
                Ok("shipper".to_string()),
                "{header}"
            );
        }
        let wrong = [
            format!("Basic {}", b64(format!("elastic:{token}x"))),
            format!("Splunk {token}x"),
        ];
        for header in &wrong {
            assert_eq!(
                tokens.check(Some(header), Scope::Ingest),
                Err(AuthFailure::Unknown)
            );
        }
        assert_eq!(
            tokens.check(
                Some(&format!("Basic {}", b64("elastic".into()))),
                Scope::Ingest
            ),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            tokens.check(Some("Digest x"), Scope::Ingest),
            Err(AuthFailure::Missing)
        );
    }
}
