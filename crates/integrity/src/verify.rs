//! `crowsnest verify`: checks the chain's links and signatures, then recomputes the hash of
//! every sealed file still on disk.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ring::signature::{UnparsedPublicKey, ED25519};
use serde::Serialize;

use crate::{
    checkpoint_message, dir_digest, dir_digest_files, file_digest, read_records, Entry, CHAIN_DIR,
    CHAIN_FILE, GENESIS,
};

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Only recompute the files sealed at or after this time (the chain's links are always
    /// checked in full: that is cheap).
    pub from: Option<DateTime<Utc>>,
    /// Only recompute the files sealed before this time.
    pub to: Option<DateTime<Utc>>,
    /// The Ed25519 public key (hex) checkpoints must be signed with. Without it, signatures are
    /// checked against the key each checkpoint names (which proves less: say so).
    pub public_key: Option<String>,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Information (an unsealed, still-open file; an unpinned key).
    Note,
    /// A deletion the chain records: an explained gap.
    Gap,
    /// Tampering or loss: verification fails.
    Fail,
}

/// One thing verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// Path relative to the data directory (or the chain file).
    pub path: String,
    /// What.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Note => "note",
            Severity::Gap => "gap",
            Severity::Fail => "FAIL",
        };
        write!(f, "{tag:4} {}: {}", self.path, self.message)
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Records in the chain.
    pub records: u64,
    /// Checkpoints whose signature checked.
    pub signed_checkpoints: u64,
    /// Sealed files whose hash was recomputed and matched.
    pub files_ok: u64,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Findings, in chain order, failures first.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Fail)
    }

    /// The first failure, if any.
    pub fn first_failure(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.severity == Severity::Fail)
    }
}

enum State {
    Sealed {
        digest: String,
        time: String,
        wal: bool,
        /// A partition's digest scheme (see `Entry::PartitionSeal`).
        scheme: Option<u8>,
    },
    Reopened {
        time: String,
    },
    Rewritten {
        digest: String,
        previous: Option<String>,
        time: String,
        reason: String,
        scheme: Option<u8>,
    },
    Deleted,
}

fn in_range(time: &str, options: &VerifyOptions) -> bool {
    let Ok(time) = DateTime::parse_from_rfc3339(time) else {
        return true;
    };
    let time = time.with_timezone(&Utc);
    options.from.is_none_or(|from| time >= from) && options.to.is_none_or(|to| time < to)
}

/// Verifies the chain and the sealed files of `data_dir`.
pub fn verify(
    data_dir: &Path,
    options: &VerifyOptions,
) -> Result<VerifyReport, crate::IntegrityError> {
    let chain_path = data_dir.join(CHAIN_DIR).join(CHAIN_FILE);
    let chain_name = format!("{CHAIN_DIR}/{CHAIN_FILE}");
    let mut report = VerifyReport::default();
    let fail = |report: &mut VerifyReport, path: &str, message: String| {
        report.findings.push(Finding {
            severity: Severity::Fail,
            path: path.to_string(),
            message,
        });
    };
    if !chain_path.exists() {
        fail(
            &mut report,
            &chain_name,
            "no integrity chain in this data directory".into(),
        );
        return Ok(report);
    }
    let (records, torn) = read_records(&chain_path)?;
    if let Some(line) = torn {
        report.findings.push(Finding {
            severity: Severity::Note,
            path: chain_name.clone(),
            message: format!("line {line} is a torn record (a crash while appending); ignored"),
        });
    }
    report.records = records.len() as u64;
    let mut prev = GENESIS.to_string();
    let mut unpinned_noted = false;
    let mut states: BTreeMap<String, State> = BTreeMap::new();
    let mut chain_ok = true;
    for (i, record) in records.iter().enumerate() {
        let expected_seq = i as u64;
        if record.seq != expected_seq || record.prev != prev {
            fail(
                &mut report,
                &chain_name,
                format!(
                    "record {expected_seq} does not follow the one before it (seq {} found; prev {} expected, {} found): records were removed, inserted or reordered",
                    record.seq, prev, record.prev
                ),
            );
            chain_ok = false;
            break;
        }
        let computed = record.compute_hash();
        if computed != record.hash {
            fail(
                &mut report,
                &chain_name,
                format!(
                    "record {} was altered (hash {} expected, {} found)",
                    record.seq, computed, record.hash
                ),
            );
            chain_ok = false;
            break;
        }
        match &record.entry {
            Entry::Checkpoint {
                public_key,
                signature,
                ..
            } => {
                if let (Some(key), Some(signature)) = (public_key, signature) {
                    let pinned = options.public_key.as_deref();
                    if let Some(pinned) = pinned {
                        if !pinned.eq_ignore_ascii_case(key) {
                            fail(&mut report, &chain_name, format!("checkpoint {} is signed by key {key}, not the pinned key {pinned}", record.seq));
                            chain_ok = false;
                            break;
                        }
                    } else if !unpinned_noted {
                        unpinned_noted = true;
                        report.findings.push(Finding {
                            severity: Severity::Note,
                            path: chain_name.clone(),
                            message: format!(
                                "checkpoints are signed by key {key}; pass --public-key to pin it"
                            ),
                        });
                    }
                    let ok = match (hex::decode(key), hex::decode(signature)) {
                        (Ok(key), Ok(signature)) => UnparsedPublicKey::new(&ED25519, key)
                            .verify(&checkpoint_message(record.seq, &record.prev), &signature)
                            .is_ok(),
                        _ => false,
                    };
                    if !ok {
                        fail(
                            &mut report,
                            &chain_name,
                            format!("checkpoint {} has a bad signature", record.seq),
                        );
                        chain_ok = false;
                        break;
                    }
                    report.signed_checkpoints += 1;
                } else if options.public_key.is_some() {
                    fail(
                        &mut report,
                        &chain_name,
                        format!(
                            "checkpoint {} is not signed, but a public key was given",
                            record.seq
                        ),
                    );
                    chain_ok = false;
                    break;
                }
            }
            Entry::WalSeal { path, sha256, .. } => {
                states.insert(
                    path.clone(),
                    State::Sealed {
                        digest: sha256.clone(),
                        time: record.time.clone(),
                        wal: true,
                        scheme: None,
                    },
                );
            }
            Entry::PartitionSeal {
                path,
                sha256,
                scheme,
                ..
            } => {
                states.insert(
                    path.clone(),
                    State::Sealed {
                        digest: sha256.clone(),
                        time: record.time.clone(),
                        wal: false,
                        scheme: *scheme,
                    },
                );
            }
            Entry::PartitionRewrite {
                path,
                sha256,
                previous,
                reason,
                scheme,
                ..
            } => {
                states.insert(
                    path.clone(),
                    State::Rewritten {
                        digest: sha256.clone(),
                        previous: previous.clone(),
                        time: record.time.clone(),
                        reason: reason.clone(),
                        scheme: *scheme,
                    },
                );
            }
            Entry::PartitionOpen { path, .. } => {
                states.insert(
                    path.clone(),
                    State::Reopened {
                        time: record.time.clone(),
                    },
                );
            }
            Entry::WalDelete {
                path,
                sha256,
                reason,
            }
            | Entry::PartitionDelete {
                path,
                sha256,
                reason,
            } => {
                // Every deletion is a gap of its own (a path can be deleted, recreated and
                // deleted again), listed in chain order.
                if in_range(&record.time, options) {
                    let last = sha256.as_deref().unwrap_or("never sealed");
                    report.findings.push(Finding {
                        severity: Severity::Gap,
                        path: path.clone(),
                        message: format!(
                            "deleted at {} ({reason}); last sha256 {last}",
                            record.time
                        ),
                    });
                }
                states.insert(path.clone(), State::Deleted);
            }
        }
        prev = record.hash.clone();
    }
    if options.public_key.is_some() && report.signed_checkpoints == 0 && chain_ok {
        fail(
            &mut report,
            &chain_name,
            "a public key was given but no checkpoint is signed".into(),
        );
    }
    for (path, state) in &states {
        let full = data_dir.join(path);
        match state {
            State::Sealed {
                digest,
                time,
                wal,
                scheme,
            } => {
                if !in_range(time, options) {
                    continue;
                }
                let found = match (wal, scheme) {
                    (true, _) => file_digest(&full),
                    // Verification rehashes every file (nothing remembered).
                    (false, Some(2)) => {
                        dir_digest_files(&full, &mut Default::default()).map(|(d, b, _, _)| (d, b))
                    }
                    (false, Some(other)) => Err(std::io::Error::other(format!(
                        "sealed with digest scheme {other}, which this version does not know"
                    ))),
                    (false, None) => dir_digest(&full).map(|(d, b, _)| (d, b)),
                };
                match found {
                    Ok((found, bytes)) if found == *digest => {
                        report.files_ok += 1;
                        report.bytes_hashed += bytes;
                    }
                    Ok((found, _)) => fail(&mut report, path, format!("altered since it was sealed at {time}: sha256 {digest} expected, {found} found")),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => fail(&mut report, path, format!("sealed at {time} but missing, and no deletion is recorded")),
                    Err(error) => fail(&mut report, path, format!("cannot be read: {error}")),
                }
            }
            State::Rewritten {
                digest,
                previous,
                time,
                reason,
                scheme,
            } => {
                if !in_range(time, options) {
                    continue;
                }
                let scheme_2 =
                    || dir_digest_files(&full, &mut Default::default()).map(|(d, b, _, _)| (d, b));
                let scheme_1 = || dir_digest(&full).map(|(d, b, _)| (d, b));
                let found = if *scheme == Some(2) {
                    scheme_2()
                } else {
                    scheme_1()
                };
                // The seal before the rewrite may be of the other scheme: compare it in both.
                let found = match found {
                    Ok((d, b)) if d != *digest && previous.is_some() => {
                        let other = if *scheme == Some(2) {
                            scheme_1()
                        } else {
                            scheme_2()
                        };
                        match other {
                            Ok((o, ob)) if previous.as_deref() == Some(o.as_str()) => Ok((o, ob)),
                            _ => Ok((d, b)),
                        }
                    }
                    other => other,
                };
                match found {
                    Ok((found, bytes)) if found == *digest => {
                        report.files_ok += 1;
                        report.bytes_hashed += bytes;
                        report.findings.push(Finding {
                            severity: Severity::Note,
                            path: path.clone(),
                            message: format!("rewritten at {time} ({reason}); matches the rewrite's sha256 {digest}"),
                        });
                    }
                    // The rewrite is recorded before the copy is swapped in: a crash in between
                    // leaves the sealed files as they were, which the record names.
                    Ok((found, bytes)) if previous.as_deref() == Some(found.as_str()) => {
                        report.files_ok += 1;
                        report.bytes_hashed += bytes;
                        report.findings.push(Finding {
                            severity: Severity::Note,
                            path: path.clone(),
                            message: format!("a rewrite was recorded at {time} ({reason}) but not swapped in (interrupted); the files match their seal before it, sha256 {found}"),
                        });
                    }
                    Ok((found, _)) => fail(&mut report, path, format!("altered since it was rewritten at {time}: sha256 {digest} expected, {found} found")),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => fail(&mut report, path, format!("rewritten at {time} but missing, and no deletion is recorded")),
                    Err(error) => fail(&mut report, path, format!("cannot be read: {error}")),
                }
            }
            State::Reopened { time } => report.findings.push(Finding {
                severity: Severity::Note,
                path: path.clone(),
                message: format!("taking late events since {time}; checked at its next seal"),
            }),
            State::Deleted => {
                if full.exists() {
                    report.findings.push(Finding {
                        severity: Severity::Note,
                        path: path.clone(),
                        message: "created again after its recorded deletion (new events for its hours); not sealed since".into(),
                    });
                }
            }
        }
    }
    note_unsealed(data_dir, &states, &mut report);
    report
        .findings
        .sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(report)
}

/// Notes files on disk the chain does not know: closed WAL segments (every one but the newest)
/// and partitions never sealed (still open, or written before the chain existed).
fn note_unsealed(data_dir: &Path, states: &BTreeMap<String, State>, report: &mut VerifyReport) {
    let list = |dir: PathBuf, want_dirs: bool| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir() == want_dirs)
            .filter_map(|e| {
                e.path()
                    .strip_prefix(data_dir)
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
            })
            .collect();
        names.sort();
        names
    };
    let mut segments: Vec<String> = list(data_dir.join("wal"), false)
        .into_iter()
        .filter(|n| n.ends_with(".wal"))
        .collect();
    segments.pop(); // The newest segment is the active one: sealed when it rolls.
    for segment in segments {
        if !states.contains_key(&segment) {
            report.findings.push(Finding {
                severity: Severity::Note,
                path: segment,
                message: "closed segment not in the chain (written before the chain existed, or recording failed)".into(),
            });
        }
    }
    for partition in list(data_dir.join("store").join("partitions"), true) {
        if !states.contains_key(&partition) {
            report.findings.push(Finding {
                severity: Severity::Note,
                path: partition,
                message: "not sealed yet (its writer is open, or it predates the chain)".into(),
            });
        }
    }
}
