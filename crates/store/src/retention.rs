//! Retention (dropping whole partitions) and [`StoreStats`].
//!
//! Retention never rewrites an index: it removes a partition from the map (new searches stop
//! seeing it; running ones keep their open files, which Unix keeps readable until closed),
//! drops its writer if one is open (its uncommitted events were too old to keep anyway), then
//! deletes the directory.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::partition::Partition;
use crate::{Store, StoreError};

/// One partition as seen by [`crate::Store::stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStats {
    /// Directory name (`YYYYMMDDTHH` of the start, UTC).
    pub name: String,
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
    /// Committed events.
    pub docs: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Rewritten by the cold tier (`cold.rs`).
    pub cold: bool,
}

/// The partitions of the store, oldest first, with totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Every partition, oldest first.
    pub partitions: Vec<PartitionStats>,
    /// Sum of `docs`.
    pub total_docs: u64,
    /// Sum of `bytes`.
    pub total_bytes: u64,
    /// Directories in `<store>/`[`crate::SET_ASIDE_DIR`]: partitions of another on-disk format
    /// that this build does not read (kept, not searched, not counted above).
    pub set_aside: Vec<String>,
}

/// What [`crate::Store::apply_retention`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Names of the dropped partitions, oldest first.
    pub dropped: Vec<String>,
    /// Events they held.
    pub dropped_docs: u64,
    /// Bytes they used.
    pub dropped_bytes: u64,
}

fn partition_stats(partition: &Partition) -> PartitionStats {
    PartitionStats {
        name: partition.name.clone(),
        start: partition.start,
        end: partition.end,
        docs: partition.num_docs(),
        bytes: partition.disk_bytes(),
        cold: partition.is_cold(),
    }
}

pub(crate) fn stats(store: &Store) -> StoreStats {
    let partitions: Vec<Arc<Partition>> = store.read_partitions().values().cloned().collect();
    let partitions: Vec<PartitionStats> = partitions.iter().map(|p| partition_stats(p)).collect();
    let mut set_aside: Vec<String> = std::fs::read_dir(store.root.join(crate::SET_ASIDE_DIR))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    set_aside.sort();
    StoreStats {
        total_docs: partitions.iter().map(|p| p.docs).sum(),
        total_bytes: partitions.iter().map(|p| p.bytes).sum(),
        partitions,
        set_aside,
    }
}

pub(crate) fn apply(store: &Store, now: DateTime<Utc>) -> Result<RetentionReport, StoreError> {
    let mut state = store.lock_write();
    let current = stats(store);
    let mut doomed: Vec<&PartitionStats> = Vec::new();
    if let Some(hours) = store.config.retention_max_age_hours {
        let max_age = TimeDelta::try_hours(i64::try_from(hours).unwrap_or(i64::MAX))
            .unwrap_or(TimeDelta::MAX);
        let cutoff = now
            .checked_sub_signed(max_age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        doomed.extend(current.partitions.iter().filter(|p| p.end <= cutoff));
    }
    if let Some(max_bytes) = store.config.retention_max_bytes {
        let mut remaining: u64 = current.total_bytes - doomed.iter().map(|p| p.bytes).sum::<u64>();
        let newest = current.partitions.last().map(|p| p.name.clone());
        for partition in &current.partitions {
            if remaining <= max_bytes || Some(&partition.name) == newest.as_ref() {
                break;
            }
            if doomed.iter().any(|d| d.name == partition.name) {
                continue;
            }
            remaining -= partition.bytes;
            doomed.push(partition);
        }
    }
    doomed.sort_by_key(|p| p.start);
    let mut report = RetentionReport::default();
    for victim in doomed {
        let removed = store.write_partitions().remove(&victim.start);
        let Some(partition) = removed else {
            continue;
        };
        if let Some(i) = state
            .writers
            .iter()
            .position(|w| Arc::ptr_eq(&w.partition, &partition))
        {
            let open = state.writers.remove(i);
            if let Err(error) = open.writer.wait_merging_threads() {
                tracing::warn!(partition = %partition.name, %error, "writer of a dropped partition did not close cleanly");
            }
        }
        std::fs::remove_dir_all(&partition.dir).map_err(|e| {
            StoreError::io(
                format!("cannot delete partition `{}`", partition.dir.display()),
                e,
            )
        })?;
        if let Some(chain) = store.chain() {
            chain.delete_partition(
                &partition.dir,
                &format!(
                    "retention: {} events, {} bytes, ending {}",
                    victim.docs,
                    victim.bytes,
                    victim.end.to_rfc3339()
                ),
            );
        }
        tracing::info!(partition = %partition.name, docs = victim.docs, bytes = victim.bytes, "retention dropped partition");
        report.dropped.push(victim.name.clone());
        report.dropped_docs += victim.docs;
        report.dropped_bytes += victim.bytes;
    }
    Ok(report)
}
