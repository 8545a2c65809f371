//! Signed, expiring, single-use approval links.
//!
//! A token is `v1.<action id>.<expiry, Unix seconds>.<nonce, 32 hex>.<signature>`, the
//! signature being the HMAC-SHA256 (base64url, no padding) of `v1`, the action id, the expiry
//! and the nonce (NUL-separated) under the server's secret: 32 random bytes in
//! `<data dir>/respond/approval.key`, created readable by its owner only (0600), never sent
//! anywhere. A token is refused when it is malformed, its signature does not verify
//! (forged or altered), it has expired, or its nonce was used before (replayed); used nonces
//! are kept in `approval-nonces` beside the key until their token expires, so a restart does
//! not make a used link work again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why an approval was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApprovalError {
    /// Not a token of this shape.
    #[error("malformed approval token: {0}")]
    Malformed(String),
    /// The signature does not verify: forged, altered, or signed by another server.
    #[error("forged approval token: its signature does not verify with this server's key")]
    Forged,
    /// Past its expiry.
    #[error("expired approval token: valid until {0}")]
    Expired(DateTime<Utc>),
    /// Its nonce was used before.
    #[error("replayed approval token: it was already used (nonce {0})")]
    Replayed(String),
    /// The key or the nonce list cannot be read or written.
    #[error("approval state `{path}`: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A verified approval: the action it approves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// The action id.
    pub action_id: String,
    /// The token's nonce (now used).
    pub nonce: String,
    /// Its expiry.
    pub expires: DateTime<Utc>,
}

/// The approval key and the used nonces.
#[derive(Debug)]
pub struct Approvals {
    key: Vec<u8>,
    /// Used nonces and their tokens' expiry.
    used: BTreeMap<String, i64>,
    nonces_path: Option<PathBuf>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl Approvals {
    /// Opens (or creates) the key and the nonce list in `dir`. A key file readable by
    /// others than its owner is refused.
    ///
    /// # Errors
    ///
    /// [`ApprovalError::Io`].
    pub fn open(dir: &Path) -> Result<Self, ApprovalError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let key_path = dir.join("approval.key");
        let key = match std::fs::read_to_string(&key_path) {
            Ok(text) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(&key_path)
                        .map_err(|e| io_error(&key_path, e))?
                        .permissions()
                        .mode();
                    if mode & 0o077 != 0 {
                        return Err(io_error(
                            &key_path,
                            format!(
                                "mode {:o} lets others read the approval key; `chmod 600` it",
                                mode & 0o777
                            ),
                        ));
                    }
                }
                hex::decode(text.trim())
                    .ok()
                    .filter(|k| k.len() >= 32)
                    .ok_or_else(|| io_error(&key_path, "not a key of 64 hex digits"))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                crowsnest_util::AtomicWrite::default()
                    .mode(0o600)
                    .write(&key_path, format!("{}\n", hex::encode(&key)).as_bytes())
                    .map_err(|e| io_error(&key_path, e))?;
                key
            }
            Err(e) => return Err(io_error(&key_path, e)),
        };
        let nonces_path = dir.join("approval-nonces");
        let mut used = BTreeMap::new();
        match std::fs::read_to_string(&nonces_path) {
            Ok(text) => {
                for line in text.lines() {
                    if let Some((nonce, expiry)) = line.split_once(' ') {
                        if let Ok(expiry) = expiry.trim().parse::<i64>() {
                            used.insert(nonce.to_string(), expiry);
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&nonces_path, e)),
        }
        let mut approvals = Self {
            key,
            used,
            nonces_path: Some(nonces_path),
        };
        approvals.compact(Utc::now())?;
        Ok(approvals)
    }

    /// Approvals with a given key, nothing persisted (tests, `simulate`).
    pub fn in_memory(key: &[u8]) -> Self {
        Self {
            key: key.to_vec(),
            used: BTreeMap::new(),
            nonces_path: None,
        }
    }

    fn mac(&self, action_id: &str, expiry: i64, nonce: &str) -> HmacSha256 {
        // HMAC takes keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        for part in ["v1", action_id, &expiry.to_string(), nonce] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac
    }

    /// A token approving `action_id` until `expires`.
    pub fn sign(&self, action_id: &str, expires: DateTime<Utc>) -> String {
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let nonce = hex::encode(nonce);
        let expiry = expires.timestamp();
        let signature = self.mac(action_id, expiry, &nonce).finalize().into_bytes();
        format!(
            "v1.{action_id}.{expiry}.{nonce}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// Checks a token and, when it is good, uses its nonce (durably) so it cannot be used
    /// again.
    ///
    /// # Errors
    ///
    /// [`ApprovalError`]: malformed, forged, expired, replayed, or the nonce cannot be saved.
    pub fn verify(&mut self, token: &str, now: DateTime<Utc>) -> Result<Approved, ApprovalError> {
        let parts: Vec<&str> = token.trim().split('.').collect();
        let [version, action_id, expiry, nonce, signature] = parts[..] else {
            return Err(ApprovalError::Malformed(format!(
                "expected 5 dot-separated parts, found {}",
                parts.len()
            )));
        };
        if version != "v1" {
            return Err(ApprovalError::Malformed(format!(
                "unknown version `{version}`"
            )));
        }
        let expiry: i64 = expiry
            .parse()
            .map_err(|_| ApprovalError::Malformed("the expiry is not a number".into()))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| ApprovalError::Malformed("the signature is not base64url".into()))?;
        self.mac(action_id, expiry, nonce)
            .verify_slice(&signature)
            .map_err(|_| ApprovalError::Forged)?;
        let expires = DateTime::from_timestamp(expiry, 0)
            .ok_or_else(|| ApprovalError::Malformed("the expiry is out of range".into()))?;
        if now > expires {
            return Err(ApprovalError::Expired(expires));
        }
        if self.used.contains_key(nonce) {
            return Err(ApprovalError::Replayed(nonce.to_string()));
        }
        if let Some(path) = &self.nonces_path {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| io_error(path, e))?;
            file.write_all(format!("{nonce} {expiry}\n").as_bytes())
                .and_then(|()| file.sync_data())
                .map_err(|e| io_error(path, e))?;
        }
        self.used.insert(nonce.to_string(), expiry);
        Ok(Approved {
            action_id: action_id.to_string(),
            nonce: nonce.to_string(),
            expires,
        })
    }

    /// Forgets nonces whose tokens expired (they are refused as expired anyway) and rewrites
    /// the list, so it stays bounded.
    fn compact(&mut self, now: DateTime<Utc>) -> Result<(), ApprovalError> {
        let before = self.used.len();
        self.used.retain(|_, expiry| *expiry >= now.timestamp());
        if before == self.used.len() {
            return Ok(());
        }
        if let Some(path) = &self.nonces_path {
            let text: String = self
                .used
                .iter()
                .map(|(nonce, expiry)| format!("{nonce} {expiry}\n"))
                .collect();
            crowsnest_util::AtomicWrite::default()
                .write(path, text.as_bytes())
                .map_err(|e| io_error(path, e))?;
        }
        Ok(())
    }
}
