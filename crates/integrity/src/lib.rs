//! Tamper evidence: a hash chain over sealed WAL segments and store partitions.
//!
//! The chain is an append-only file, `<data_dir>/integrity/chain.jsonl`, one JSON record a
//! line. Every record carries the hash of the record before it (`prev`) and its own `hash`, the
//! SHA-256 of its body (`seq`, `time`, `prev` and the entry, serialized in that fixed order), so
//! a record cannot be altered, removed or inserted without breaking every later link.
//!
//! What is recorded, and when (each file is hashed once, when it stops changing):
//! * `wal_seal`: a WAL segment was closed (rolled). The WAL hashes its bytes as it writes them,
//!   so sealing costs no second read.
//! * `wal_delete`: a sealed segment was removed by truncation (its records are durable in the
//!   store), with its last hash, so the gap is explained.
//! * `partition_seal`: a store partition's writer was closed (its files no longer change). The
//!   digest covers every file of the partition directory, by relative path, in byte order of
//!   the path (lock files excluded): path, NUL, length (u64 LE), and the file's own SHA-256
//!   (`scheme: 2`; the chain remembers each file's length, time and hash, so a reseal reads only
//!   the files that are new or changed). Seals without `scheme` (chains written before it)
//!   digest the contents themselves: path, NUL, length, contents.
//! * `partition_open`: a sealed partition takes events again (late events): its last seal no
//!   longer describes it until the next `partition_seal`, which names the seal it replaces.
//! * `partition_delete`: retention dropped a partition, with its last hash.
//! * `partition_rewrite`: the cold tier rewrote a sealed partition for size (same events, same
//!   indexes, files re-compressed and merged): the new digest, with the digest and the seal
//!   record it replaces. Recorded before the rewritten copy is swapped in, so a crash between
//!   the two leaves either digest on disk, and `verify` accepts the one it finds (noting an
//!   unfinished swap).
//! * `checkpoint`: every [`CHECKPOINT_EVERY`] records and when the chain is opened or closed;
//!   signed with the operator's Ed25519 key when one is configured.
//!
//! # Why Ed25519 (and not an HMAC)
//! An HMAC needs the same secret to check as to sign, so whoever audits the data could also
//! forge it. An Ed25519 signature is checked with the public key alone: an auditor pins the
//! public key (`crowsnest verify --public-key`) and needs no secret. `ring` already provides
//! it (it is linked for TLS), so no new dependency was needed.
//!
//! The limit: a signing key on the server is readable by whoever owns the server. It makes
//! silent rewriting of history before the last checkpoint detectable by anyone holding the
//! public key; it cannot stop an attacker with root from appending forged records from now on.
//! Copying the chain's checkpoints off the host (log shipping) closes that gap.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod verify;
pub use verify::{verify, Finding, Severity, VerifyOptions, VerifyReport};

/// The chain's directory below the data directory.
pub const CHAIN_DIR: &str = "integrity";
/// The chain's file in [`CHAIN_DIR`].
pub const CHAIN_FILE: &str = "chain.jsonl";
/// A checkpoint is written after this many records.
pub const CHECKPOINT_EVERY: u64 = 64;
/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Domain separation of checkpoint signatures.
const SIGNING_CONTEXT: &str = "crowsnest-chain-checkpoint";

/// Errors of the integrity chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// A filesystem operation failed.
    #[error("integrity {op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The signing key file is not a PKCS#8 Ed25519 key.
    #[error("signing key `{path}` is not a PKCS#8 Ed25519 key ({reason}); create one with `crowsnest verify --generate-key PATH`")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A chain record cannot be read.
    #[error("chain `{path}` line {line}: {reason}")]
    BadRecord {
        /// The chain file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Why.
        reason: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IntegrityError + 'a {
    move |source| IntegrityError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What a record says happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A WAL segment was closed.
    WalSeal {
        /// Path relative to the data directory.
        path: String,
        /// SHA-256 of the file, hex.
        sha256: String,
        /// File length.
        bytes: u64,
        /// First WAL position of the segment.
        first: u64,
        /// One past its last position.
        next: u64,
    },
    /// A WAL segment was deleted by truncation.
    WalDelete {
        /// Path relative to the data directory.
        path: String,
        /// Its sealed hash (absent when it was never sealed).
        sha256: Option<String>,
        /// Why it was deleted.
        reason: String,
    },
    /// A partition's files stopped changing.
    PartitionSeal {
        /// Path relative to the data directory.
        path: String,
        /// Digest of its files, hex.
        sha256: String,
        /// Total bytes.
        bytes: u64,
        /// Number of files.
        files: u64,
        /// Hash of the record of the seal this one replaces (late events), if any.
        replaces: Option<String>,
        /// How `sha256` was computed: absent for [`dir_digest`] (every file's contents in one
        /// hash; the chains written before scheme 2), `2` for [`dir_digest_files`] (each file's
        /// own SHA-256 in one hash, so a reseal rehashes only the files that changed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheme: Option<u8>,
    },
    /// A sealed partition takes events again.
    PartitionOpen {
        /// Path relative to the data directory.
        path: String,
        /// Hash of the record of its last seal.
        sealed: String,
    },
    /// Retention deleted a partition.
    PartitionDelete {
        /// Path relative to the data directory.
        path: String,
        /// Its last sealed digest (absent when it was never sealed).
        sha256: Option<String>,
        /// Why it was deleted.
        reason: String,
    },
    /// The cold tier rewrote a partition for size (the same events and indexes).
    PartitionRewrite {
        /// Path relative to the data directory.
        path: String,
        /// Digest of the rewritten files, hex.
        sha256: String,
        /// Total bytes after the rewrite.
        bytes: u64,
        /// Number of files after the rewrite.
        files: u64,
        /// Digest before the rewrite (absent when the partition was never sealed).
        previous: Option<String>,
        /// Hash of the record of the seal this one replaces, if any.
        replaces: Option<String>,
        /// Why (what the rewrite did).
        reason: String,
        /// How `sha256` was computed: `2` for [`dir_digest_files`]; absent for [`dir_digest`]
        /// (rewrites recorded before scheme 2). `previous` is in its seal's own scheme.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheme: Option<u8>,
    },
    /// A checkpoint over every record before it.
    Checkpoint {
        /// Records before this one.
        records: u64,
        /// Ed25519 public key, hex, when signed.
        public_key: Option<String>,
        /// Ed25519 signature, hex, of [`checkpoint_message`].
        signature: Option<String>,
    },
}

/// One line of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// 0-based sequence number.
    pub seq: u64,
    /// When it was written (RFC 3339, UTC).
    pub time: String,
    /// Hash of the previous record ([`GENESIS`] for the first).
    pub prev: String,
    /// What happened.
    #[serde(flatten)]
    pub entry: Entry,
    /// SHA-256 of the body (everything above), hex.
    pub hash: String,
}

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a str,
    prev: &'a str,
    #[serde(flatten)]
    entry: &'a Entry,
}

impl Record {
    /// The hash the record's body has (compare with [`Record::hash`]).
    pub fn compute_hash(&self) -> String {
        let body = Body {
            seq: self.seq,
            time: &self.time,
            prev: &self.prev,
            entry: &self.entry,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }
}

/// The message a checkpoint at `seq` over a chain whose last record hashes to `prev` signs.
pub fn checkpoint_message(seq: u64, prev: &str) -> Vec<u8> {
    format!("{SIGNING_CONTEXT}\n{seq}\n{prev}").into_bytes()
}

/// SHA-256 of a file, hex, with its length.
pub fn file_digest(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// The digest of a partition directory: every file below it except lock files, by relative
/// path in byte order; for each, the path, a NUL, its length (u64 LE) and its contents.
/// Returns the hex digest, the total bytes and the number of files.
pub fn dir_digest(dir: &Path) -> io::Result<(String, u64, u64)> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    for rel in &files {
        let path = dir.join(rel);
        let mut file = File::open(&path)?;
        let len = file.metadata()?.len();
        hasher.update(rel.as_bytes());
        hasher.update([0u8]);
        hasher.update(len.to_le_bytes());
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("`{}` shrank while it was hashed", path.display()),
                ));
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        total += len;
    }
    Ok((hex::encode(hasher.finalize()), total, files.len() as u64))
}

/// Files smaller than this are always rehashed at a seal (`meta.json` and its kind are
/// rewritten in place; their length and time might not change): cheap, and never stale.
const REHASH_BELOW: u64 = 64 * 1024;

/// What [`dir_digest_files`] remembers of a file to skip rehashing it: length, modification
/// time and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMark {
    len: u64,
    modified: Option<std::time::SystemTime>,
    sha256: [u8; 32],
}

/// The digest of a partition directory, scheme 2: every file below it except lock files, by
/// relative path in byte order; for each, the path, a NUL, its length (u64 LE) and the
/// SHA-256 of its contents (32 bytes). `known` holds the files of the last seal: a file of at
/// least 64 KiB whose length and modification time are unchanged is not read again (the
/// store's segment files never change once written); `known` is replaced by this seal's files.
/// Returns the hex digest, the total bytes, the number of files and the bytes read.
pub fn dir_digest_files(
    dir: &Path,
    known: &mut HashMap<String, FileMark>,
) -> io::Result<(String, u64, u64, u64)> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut read = 0u64;
    let mut marks = HashMap::with_capacity(files.len());
    for rel in files {
        let path = dir.join(&rel);
        let meta = fs::metadata(&path)?;
        let (len, modified) = (meta.len(), meta.modified().ok());
        let mark = match known.get(&rel) {
            Some(mark)
                if len >= REHASH_BELOW
                    && mark.len == len
                    && modified.is_some()
                    && mark.modified == modified =>
            {
                mark.clone()
            }
            _ => {
                let (hex_digest, hashed) = file_digest(&path)?;
                if hashed != len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("`{}` changed length while it was hashed", path.display()),
                    ));
                }
                read += hashed;
                let mut sha256 = [0u8; 32];
                hex::decode_to_slice(&hex_digest, &mut sha256)
                    .map_err(|e| io::Error::other(format!("hex digest: {e}")))?;
                FileMark {
                    len,
                    modified,
                    sha256,
                }
            }
        };
        hasher.update(rel.as_bytes());
        hasher.update([0u8]);
        hasher.update(len.to_le_bytes());
        hasher.update(mark.sha256);
        total += len;
        marks.insert(rel, mark);
    }
    let count = marks.len() as u64;
    *known = marks;
    Ok((hex::encode(hasher.finalize()), total, count, read))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if kind.is_file() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".lock") {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push(rel);
        }
    }
    Ok(())
}

/// Writes a new Ed25519 signing key (PKCS#8, mode 0600) to `path`; returns its public key, hex.
pub fn generate_key(path: &Path) -> Result<String, IntegrityError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| IntegrityError::BadKey {
        path: path.to_path_buf(),
        reason: "the system random generator failed".into(),
    })?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err("create key", path))?;
    file.write_all(pkcs8.as_ref())
        .and_then(|()| file.sync_all())
        .map_err(io_err("write key", path))?;
    let pair = load_key(path)?;
    Ok(hex::encode(pair.public_key().as_ref()))
}

/// Reads a PKCS#8 Ed25519 signing key.
pub fn load_key(path: &Path) -> Result<Ed25519KeyPair, IntegrityError> {
    let bytes = fs::read(path).map_err(io_err("read key", path))?;
    Ed25519KeyPair::from_pkcs8(&bytes).map_err(|e| IntegrityError::BadKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads every record of a chain file. A torn last line (a crash while appending) is returned
/// as `Err` in the second element with its line number, not as a failure of the whole read.
pub(crate) fn read_records(path: &Path) -> Result<(Vec<Record>, Option<usize>), IntegrityError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut records = Vec::new();
    let mut lines = BufReader::new(file).split(b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let line = line.map_err(io_err("read", path))?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) => records.push(record),
            Err(_) if lines.peek().is_none() => return Ok((records, Some(i + 1))),
            Err(e) => {
                return Err(IntegrityError::BadRecord {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok((records, None))
}

struct Inner {
    file: File,
    next_seq: u64,
    head: String,
    since_checkpoint: u64,
    /// Path → (record hash, digest) of its latest seal.
    seals: HashMap<String, (String, String)>,
    /// Partitions reopened since their last seal.
    reopened: HashSet<String>,
}

/// The open chain. `Send + Sync`; share it in an `Arc`. Recording never fails the caller's
/// work: an error is logged and counted, and `crowsnest verify` then reports the unsealed file.
pub struct Chain {
    data_dir: PathBuf,
    path: PathBuf,
    signer: Option<Ed25519KeyPair>,
    inner: Mutex<Inner>,
    failures: std::sync::atomic::AtomicU64,
    /// Per partition (relative path), its files at its last seal ([`dir_digest_files`]).
    marks: Mutex<HashMap<String, HashMap<String, FileMark>>>,
    /// Bytes read to seal partitions (a reseal reads only new files).
    partition_bytes_read: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("path", &self.path)
            .field("signed", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// Opens (or starts) the chain of `data_dir`, signing checkpoints with the PKCS#8 Ed25519
    /// key at `signing_key` when given. A torn last line is cut off (it was never complete).
    pub fn open(data_dir: &Path, signing_key: Option<&Path>) -> Result<Arc<Self>, IntegrityError> {
        let signer = signing_key.map(load_key).transpose()?;
        let dir = data_dir.join(CHAIN_DIR);
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let path = dir.join(CHAIN_FILE);
        let (records, torn) = read_records(&path)?;
        if let Some(line) = torn {
            // Keep everything up to the last whole line.
            let text = fs::read(&path).map_err(io_err("read", &path))?;
            let mut keep = 0;
            for (n, piece) in text.split_inclusive(|b| *b == b'\n').enumerate() {
                if n + 1 >= line {
                    break;
                }
                keep += piece.len();
            }
            tracing::warn!(path = %path.display(), line, "cut a torn last record off the integrity chain");
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err("open", &path))?;
            file.set_len(keep as u64)
                .and_then(|()| file.sync_all())
                .map_err(io_err("truncate", &path))?;
        }
        let mut seals = HashMap::new();
        let mut reopened = HashSet::new();
        let mut since_checkpoint = 0;
        for record in &records {
            since_checkpoint += 1;
            match &record.entry {
                Entry::WalSeal { path, sha256, .. }
                | Entry::PartitionSeal { path, sha256, .. }
                | Entry::PartitionRewrite { path, sha256, .. } => {
                    seals.insert(path.clone(), (record.hash.clone(), sha256.clone()));
                    reopened.remove(path);
                }
                Entry::PartitionOpen { path, .. } => {
                    reopened.insert(path.clone());
                }
                Entry::WalDelete { path, .. } | Entry::PartitionDelete { path, .. } => {
                    seals.remove(path);
                    reopened.remove(path);
                }
                Entry::Checkpoint { .. } => since_checkpoint = 0,
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let chain = Arc::new(Self {
            data_dir: data_dir.to_path_buf(),
            path,
            signer,
            inner: Mutex::new(Inner {
                file,
                next_seq: records.last().map_or(0, |r| r.seq + 1),
                head: records
                    .last()
                    .map_or_else(|| GENESIS.to_string(), |r| r.hash.clone()),
                since_checkpoint,
                seals,
                reopened,
            }),
            failures: std::sync::atomic::AtomicU64::new(0),
            marks: Mutex::new(HashMap::new()),
            partition_bytes_read: std::sync::atomic::AtomicU64::new(0),
        });
        if since_checkpoint > 0 {
            chain.checkpoint();
        }
        Ok(chain)
    }

    /// The chain file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public key (hex) of the key signing the checkpoints, when one is configured: what
    /// a verification run by the server pins.
    pub fn public_key(&self) -> Option<String> {
        self.signer
            .as_ref()
            .map(|key| hex::encode(key.public_key().as_ref()))
    }

    /// Bytes read to seal partitions since the chain was opened (a reseal reads only the files
    /// that are new or changed).
    pub fn partition_bytes_read(&self) -> u64 {
        self.partition_bytes_read
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records that could not be written (each logged).
    pub fn failures(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.data_dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn append(&self, inner: &mut Inner, entry: Entry) -> Option<String> {
        let mut record = Record {
            seq: inner.next_seq,
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            prev: inner.head.clone(),
            entry,
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        let mut line = match serde_json::to_vec(&record) {
            Ok(line) => line,
            Err(error) => {
                self.fail(&error.to_string());
                return None;
            }
        };
        line.push(b'\n');
        if let Err(error) = inner
            .file
            .write_all(&line)
            .and_then(|()| inner.file.sync_data())
        {
            self.fail(&error.to_string());
            return None;
        }
        inner.next_seq += 1;
        inner.head = record.hash.clone();
        match &record.entry {
            Entry::Checkpoint { .. } => inner.since_checkpoint = 0,
            _ => inner.since_checkpoint += 1,
        }
        Some(record.hash)
    }

    fn fail(&self, error: &str) {
        self.failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(path = %self.path.display(), %error, "writing the integrity chain failed; verify will report the file as unsealed");
    }

    fn append_and_maybe_checkpoint(&self, entry: Entry) {
        let mut inner = self.lock();
        self.append(&mut inner, entry);
        if inner.since_checkpoint >= CHECKPOINT_EVERY {
            self.checkpoint_locked(&mut inner);
        }
    }

    fn checkpoint_locked(&self, inner: &mut Inner) {
        let message = checkpoint_message(inner.next_seq, &inner.head);
        let (public_key, signature) = match &self.signer {
            Some(pair) => (
                Some(hex::encode(pair.public_key().as_ref())),
                Some(hex::encode(pair.sign(&message).as_ref())),
            ),
            None => (None, None),
        };
        let records = inner.next_seq;
        self.append(
            inner,
            Entry::Checkpoint {
                records,
                public_key,
                signature,
            },
        );
    }

    /// Writes a checkpoint now (when anything was recorded since the last one).
    pub fn checkpoint(&self) {
        let mut inner = self.lock();
        if inner.since_checkpoint > 0 {
            self.checkpoint_locked(&mut inner);
        }
    }

    /// Records a closed WAL segment whose bytes hash to `sha256`.
    pub fn seal_wal_segment(
        &self,
        path: &Path,
        sha256: [u8; 32],
        bytes: u64,
        first: u64,
        next: u64,
    ) {
        let rel = self.relative(path);
        let digest = hex::encode(sha256);
        let mut inner = self.lock();
        if let Some(hash) = self.append(
            &mut inner,
            Entry::WalSeal {
                path: rel.clone(),
                sha256: digest.clone(),
                bytes,
                first,
                next,
            },
        ) {
            inner.seals.insert(rel, (hash, digest));
        }
        if inner.since_checkpoint >= CHECKPOINT_EVERY {
            self.checkpoint_locked(&mut inner);
        }
    }

    /// Records the deletion of a WAL segment.
    pub fn delete_wal_segment(&self, path: &Path, reason: &str) {
        let rel = self.relative(path);
        let sha256 = self.lock().seals.remove(&rel).map(|(_, digest)| digest);
        self.append_and_maybe_checkpoint(Entry::WalDelete {
            path: rel,
            sha256,
            reason: reason.to_string(),
        });
    }

    /// Hashes a partition directory whose files stopped changing and records it. A partition
    /// sealed before is sealed again (late events), naming the seal it replaces.
    pub fn seal_partition(&self, dir: &Path) {
        let rel = self.relative(dir);
        let mut known = self
            .marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&rel)
            .unwrap_or_default();
        let (sha256, bytes, files, read) = match dir_digest_files(dir, &mut known) {
            Ok(digest) => digest,
            Err(error) => {
                self.fail(&format!("hashing `{}`: {error}", dir.display()));
                return;
            }
        };
        self.partition_bytes_read
            .fetch_add(read, std::sync::atomic::Ordering::Relaxed);
        self.marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(rel.clone(), known);
        let mut inner = self.lock();
        let previous = inner.seals.get(&rel).cloned();
        if previous.as_ref().is_some_and(|(_, d)| *d == sha256) && !inner.reopened.contains(&rel) {
            return;
        }
        if let Some(hash) = self.append(
            &mut inner,
            Entry::PartitionSeal {
                path: rel.clone(),
                sha256: sha256.clone(),
                bytes,
                files,
                replaces: previous.map(|(hash, _)| hash),
                scheme: Some(2),
            },
        ) {
            inner.seals.insert(rel.clone(), (hash, sha256));
            inner.reopened.remove(&rel);
        }
        if inner.since_checkpoint >= CHECKPOINT_EVERY {
            self.checkpoint_locked(&mut inner);
        }
    }

    /// Records that a sealed partition takes events again (no-op when it is not sealed or
    /// already reopened).
    pub fn open_partition(&self, dir: &Path) {
        let rel = self.relative(dir);
        let mut inner = self.lock();
        if inner.reopened.contains(&rel) {
            return;
        }
        let Some((sealed, _)) = inner.seals.get(&rel).cloned() else {
            return;
        };
        if self
            .append(
                &mut inner,
                Entry::PartitionOpen {
                    path: rel.clone(),
                    sealed,
                },
            )
            .is_some()
        {
            inner.reopened.insert(rel);
        }
    }

    /// Records that the partition at `dir` is about to be replaced by the rewritten copy in
    /// `copy` (the cold tier): hashes `copy` (its files, relative to it, are what `dir` will
    /// hold) and records it with the seal it replaces. Returns false when nothing could be
    /// recorded (the error is logged and counted; the caller should not swap then).
    pub fn rewrite_partition(&self, dir: &Path, copy: &Path, reason: &str) -> bool {
        let rel = self.relative(dir);
        let (sha256, bytes, files) = match dir_digest_files(copy, &mut HashMap::new()) {
            Ok((digest, bytes, files, _)) => (digest, bytes, files),
            Err(error) => {
                self.fail(&format!("hashing `{}`: {error}", copy.display()));
                return false;
            }
        };
        let mut inner = self.lock();
        let previous = inner.seals.get(&rel).cloned();
        let Some(hash) = self.append(
            &mut inner,
            Entry::PartitionRewrite {
                path: rel.clone(),
                sha256: sha256.clone(),
                bytes,
                files,
                previous: previous.as_ref().map(|(_, digest)| digest.clone()),
                replaces: previous.map(|(hash, _)| hash),
                reason: reason.to_string(),
                scheme: Some(2),
            },
        ) else {
            return false;
        };
        inner.seals.insert(rel.clone(), (hash, sha256));
        inner.reopened.remove(&rel);
        if inner.since_checkpoint >= CHECKPOINT_EVERY {
            self.checkpoint_locked(&mut inner);
        }
        true
    }

    /// Records that retention deleted a partition.
    pub fn delete_partition(&self, dir: &Path, reason: &str) {
        let rel = self.relative(dir);
        self.marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&rel);
        let sha256 = {
            let mut inner = self.lock();
            inner.reopened.remove(&rel);
            inner.seals.remove(&rel).map(|(_, digest)| digest)
        };
        self.append_and_maybe_checkpoint(Entry::PartitionDelete {
            path: rel,
            sha256,
            reason: reason.to_string(),
        });
    }
}

#[cfg(test)]
mod tests;
