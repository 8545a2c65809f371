//! The cold tier: partitions older than [`ColdConfig::after_days`] rewritten for size.
//!
//! A cold partition holds the same events and the same indexes as its hot copy (every query
//! answers identically: `tests/cold.rs` runs the same queries on both), in one segment whose
//! docstore is recompressed at [`ColdConfig::zstd_level`] in blocks of
//! [`ColdConfig::block_kib`]: merging the segments alone also merges their term dictionaries
//! and columns. The cost is at read time: a hit decompresses one larger block.
//!
//! # Doing it safely
//!
//! ```text
//! <store>/cold-work/NAME.plain   step 1: the segments merged, docstore uncompressed
//! <store>/cold-work/NAME.tmp     step 2: merged again, docstore at the cold level
//! <store>/cold-work/NAME.ready   the copy, synced and verified (events counted)
//! <store>/cold-work/NAME.hot     the hot copy, moved out for the swap (then deleted)
//! ```
//!
//! Two merges because tantivy copies docstore blocks of the same codec as they are when it
//! merges (it would keep the hot zstd level and block size); through an uncompressed step every
//! block is written again. The copy is verified (one segment, the same number of events, the
//! same schema) and synced, then renamed `.ready`. Then, under the store's write lock and only
//! if the partition did not change meanwhile (no open writer, the same segments), the rewrite
//! is recorded in the integrity chain (the copy's digest, with the seal it replaces), the hot
//! directory is renamed to `.hot`, the copy renamed into `partitions/`, and the partition
//! reopened; running searches keep the old files open (Unix keeps them readable) until they end.
//!
//! A crash at any point leaves a partition that [`recover`] (run by `Store::open`) makes whole:
//! `.plain` and `.tmp` are deleted; a `.ready` copy whose partition is still in place is
//! deleted (the swap had not started: the hot copy is intact); a `.ready` copy whose partition
//! is missing is moved in (the hot copy was moved out, the verified copy is complete); a `.hot`
//! copy is deleted when its partition is in place, moved back otherwise. The chain record comes
//! before the first rename, so `crowsnest verify` finds either the recorded digest or the one
//! before it (it accepts both, and notes an interrupted swap).
//!
//! A cold partition carries `cold.json` (what was done). Late events for its hours are added as
//! for any partition (a hot segment beside the cold one); the next pass rewrites it again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{Index, IndexSettings};

use crate::partition::{dir_bytes, Partition};
use crate::{Store, StoreError};

/// Directory below the store where copies are built and swapped.
pub const COLD_WORK_DIR: &str = "cold-work";
/// The marker file of a cold partition.
pub const COLD_MARKER: &str = "cold.json";

/// Settings of the cold tier (`[store.cold]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColdConfig {
    /// Rewrite partitions whose end is older than this many days (None, the default: off).
    /// The server checks every `retention_interval_secs`; `crowsnest store compact-cold` does
    /// it now on a stopped server's data directory.
    pub after_days: Option<u32>,
    /// zstd level of the cold docstore (1 to 19; default 19).
    pub zstd_level: i32,
    /// Docstore block size of cold partitions in KiB (64 to 16384; default 4096). A hit
    /// decompresses one block.
    pub block_kib: usize,
}

impl Default for ColdConfig {
    fn default() -> Self {
        Self {
            after_days: None,
            zstd_level: 19,
            block_kib: 4096,
        }
    }
}

impl ColdConfig {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if !crate::partition::DOCSTORE_ZSTD_LEVELS.contains(&self.zstd_level) {
            return Err(StoreError::Config(format!(
                "cold.zstd_level is {}; zstd levels {} to {} are accepted",
                self.zstd_level,
                crate::partition::DOCSTORE_ZSTD_LEVELS.start(),
                crate::partition::DOCSTORE_ZSTD_LEVELS.end()
            )));
        }
        if !(64..=16384).contains(&self.block_kib) {
            return Err(StoreError::Config(format!(
                "cold.block_kib is {}; 64 to 16384 are accepted",
                self.block_kib
            )));
        }
        Ok(())
    }

    fn settings(&self, compressor: Compressor) -> IndexSettings {
        IndexSettings {
            docstore_compression: compressor,
            docstore_blocksize: self.block_kib * 1024,
            ..IndexSettings::default()
        }
    }
}

/// What `cold.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    /// Events in the cold copy.
    docs: u64,
    /// Bytes of the hot copy it replaced.
    hot_bytes: u64,
    /// zstd level and block size used.
    zstd_level: i32,
    block_kib: usize,
    /// When.
    at: DateTime<Utc>,
}

/// One partition the cold tier rewrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColdPartition {
    /// Directory name.
    pub name: String,
    /// Events (the same before and after).
    pub docs: u64,
    /// Bytes before.
    pub hot_bytes: u64,
    /// Bytes after.
    pub cold_bytes: u64,
    /// Milliseconds the rewrite took.
    pub took_ms: u64,
}

/// What [`Store::compact_cold`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ColdReport {
    /// Partitions rewritten, oldest first.
    pub rewritten: Vec<ColdPartition>,
    /// Partitions old enough that were already cold.
    pub already_cold: usize,
    /// Partitions left hot this time, with why (written to meanwhile, a failure).
    pub skipped: Vec<(String, String)>,
}

/// Where a simulated crash stops a rewrite (tests): after the copy is ready, or after the hot
/// copy was moved out.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crash {
    AfterReady,
    AfterHotMoved,
}

#[cfg(test)]
thread_local! {
    pub(crate) static CRASH: std::cell::Cell<Option<Crash>> = const { std::cell::Cell::new(None) };
}

fn crash_here(_at: &str) -> Result<(), StoreError> {
    #[cfg(test)]
    {
        let point = CRASH.with(std::cell::Cell::get);
        let hit = matches!(
            (point, _at),
            (Some(Crash::AfterReady), "ready") | (Some(Crash::AfterHotMoved), "hot-moved")
        );
        if hit {
            return Err(StoreError::Config(format!("simulated crash at {_at}")));
        }
    }
    Ok(())
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::io(context, e)
}

fn remove_dir(dir: &Path) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(
            format!("cannot delete `{}`", dir.display()),
            e,
        )),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(io(format!(
        "cannot rename `{}` to `{}`",
        from.display(),
        to.display()
    )))
}

fn mmap(dir: &Path) -> Result<MmapDirectory, StoreError> {
    MmapDirectory::open(dir)
        .map_err(|e| StoreError::Index(format!("cannot open `{}`: {e}", dir.display())))
}

/// Syncs every file below `dir`, then `dir` itself.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(io(format!("cannot list `{}`", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io(format!("cannot list `{}`", dir.display())))?;
        let path = entry.path();
        if path.is_file() {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(format!("cannot sync `{}`", path.display())))?;
        }
    }
    sync_parent(dir)
}

/// Syncs a directory's entries (renames in it).
fn sync_parent(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("cannot sync `{}`", dir.display())))
}

/// Makes the store whole after a rewrite that stopped half-way (see the module doc). Runs
/// before the partitions are opened.
pub(crate) fn recover(root: &Path, partitions_dir: &Path) -> Result<(), StoreError> {
    let work = root.join(COLD_WORK_DIR);
    let Ok(entries) = std::fs::read_dir(&work) else {
        return Ok(());
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    // `.ready` before `.hot`: a moved-in copy decides what the hot copy's fate is.
    names.sort_by_key(|n| !n.ends_with(".ready"));
    for name in names {
        let path = work.join(&name);
        let Some((partition, kind)) = name.rsplit_once('.') else {
            remove_dir(&path)?;
            continue;
        };
        let target = partitions_dir.join(partition);
        match kind {
            "ready" if !target.exists() => {
                tracing::warn!(partition, "cold rewrite interrupted after the hot copy was moved out: moving the verified cold copy in");
                rename(&path, &target)?;
            }
            "hot" if !target.exists() => {
                tracing::warn!(
                    partition,
                    "cold rewrite interrupted: moving the hot copy back"
                );
                rename(&path, &target)?;
            }
            _ => {
                tracing::info!(partition, leftover = %name, "deleting what an interrupted cold rewrite left");
                remove_dir(&path)?;
            }
        }
    }
    sync_parent(partitions_dir)
}

impl Partition {
    /// True when the partition is one cold segment holding what `cold.json` says.
    pub(crate) fn is_cold(&self) -> bool {
        let Ok(bytes) = std::fs::read(self.dir.join(COLD_MARKER)) else {
            return false;
        };
        let Ok(marker) = serde_json::from_slice::<Marker>(&bytes) else {
            return false;
        };
        let searcher = self.reader.searcher();
        searcher.segment_readers().len() == 1 && searcher.num_docs() == marker.docs
    }
}

fn segment_ids(index: &Index) -> Result<Vec<String>, StoreError> {
    let mut ids: Vec<String> = index
        .searchable_segment_metas()?
        .iter()
        .map(|m| m.id().uuid_string())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Builds the cold copy of `partition` in `work/NAME.ready`; returns the path and the number
/// of events, with the segments it was built from.
fn build_copy(
    partition: &Partition,
    config: &ColdConfig,
    work: &Path,
) -> Result<(PathBuf, u64, Vec<String>), StoreError> {
    let metas = partition.index.load_metas()?;
    let segments = partition.index.searchable_segments()?;
    let ids = segment_ids(&partition.index)?;
    let docs: u64 = metas.segments.iter().map(|s| u64::from(s.num_docs())).sum();
    let plain = work.join(format!("{}.plain", partition.name));
    let tmp = work.join(format!("{}.tmp", partition.name));
    let ready = work.join(format!("{}.ready", partition.name));
    remove_dir(&ready)?;
    for dir in [&plain, &tmp] {
        remove_dir(dir)?;
        std::fs::create_dir_all(dir).map_err(io(format!("cannot create `{}`", dir.display())))?;
    }
    let filters = segments.iter().map(|_| None).collect();
    let plain_index = tantivy::indexer::merge_filtered_segments(
        &segments,
        config.settings(Compressor::None),
        filters,
        mmap(&plain)?,
    )?;
    let plain_segments = plain_index.searchable_segments()?;
    let filters = plain_segments.iter().map(|_| None).collect();
    let cold = tantivy::indexer::merge_filtered_segments(
        &plain_segments,
        config.settings(Compressor::Zstd(ZstdCompressor {
            compression_level: Some(config.zstd_level),
        })),
        filters,
        mmap(&tmp)?,
    )?;
    drop(plain_index);
    remove_dir(&plain)?;
    // The merge writes its own payload: the partition's (WAL position, bounds, format) is
    // written back, so the copy opens as the same partition.
    let meta_path = tmp.join("meta.json");
    let mut meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&meta_path).map_err(io(format!("cannot read `{}`", meta_path.display())))?,
    )
    .map_err(|e| StoreError::Corrupt {
        partition: partition.name.clone(),
        reason: format!("merged meta.json is not JSON: {e}"),
    })?;
    meta["payload"] = metas
        .payload
        .clone()
        .map_or(serde_json::Value::Null, Into::into);
    std::fs::write(&meta_path, meta.to_string())
        .map_err(io(format!("cannot write `{}`", meta_path.display())))?;
    // Verify: one segment, every event, the same schema.
    let check = Index::open_in_dir(&tmp)?;
    let found: u64 = check
        .searchable_segment_metas()?
        .iter()
        .map(|s| u64::from(s.num_docs()))
        .sum();
    let segments_after = check.searchable_segment_metas()?.len();
    if found != docs || (docs > 0 && segments_after != 1) || check.schema() != cold.schema() {
        return Err(StoreError::Corrupt {
            partition: partition.name.clone(),
            reason: format!(
                "the cold copy holds {found} events in {segments_after} segments; {docs} events in one segment were expected (the hot copy is kept)"
            ),
        });
    }
    drop(check);
    drop(cold);
    let marker = Marker {
        docs,
        hot_bytes: dir_bytes(&partition.dir),
        zstd_level: config.zstd_level,
        block_kib: config.block_kib,
        at: Utc::now(),
    };
    std::fs::write(
        tmp.join(COLD_MARKER),
        serde_json::to_vec(&marker).unwrap_or_default(),
    )
    .map_err(io(format!("cannot write `{}`", tmp.display())))?;
    sync_dir(&tmp)?;
    rename(&tmp, &ready)?;
    sync_parent(work)?;
    Ok((ready, docs, ids))
}

/// Rewrites one partition; `Ok(None)` when it changed meanwhile (left hot).
fn rewrite(
    store: &Store,
    partition: &Arc<Partition>,
    work: &Path,
) -> Result<Option<ColdPartition>, StoreError> {
    let began = std::time::Instant::now();
    let hot_bytes = dir_bytes(&partition.dir);
    let (ready, docs, ids) = match build_copy(partition, &store.config.cold, work) {
        Ok(built) => built,
        Err(error) => {
            for kind in ["plain", "tmp", "ready"] {
                let _ = remove_dir(&work.join(format!("{}.{kind}", partition.name)));
            }
            return Err(error);
        }
    };
    crash_here("ready")?;
    let state = store.lock_write();
    let unchanged = store
        .read_partitions()
        .get(&partition.start)
        .is_some_and(|p| Arc::ptr_eq(p, partition))
        && !state
            .writers
            .iter()
            .any(|w| Arc::ptr_eq(&w.partition, partition))
        && segment_ids(&partition.index)? == ids;
    if !unchanged {
        drop(state);
        remove_dir(&ready)?;
        return Ok(None);
    }
    let config = &store.config.cold;
    let reason = format!(
        "cold tier: {docs} events, {hot_bytes} bytes rewritten to {} bytes (one segment, zstd {}, {} KiB blocks)",
        dir_bytes(&ready),
        config.zstd_level,
        config.block_kib
    );
    if let Some(chain) = store.chain() {
        if !chain.rewrite_partition(&partition.dir, &ready, &reason) {
            drop(state);
            remove_dir(&ready)?;
            return Err(StoreError::Config(format!(
                "partition `{}` left hot: its rewrite could not be recorded in the integrity chain",
                partition.name
            )));
        }
    }
    let hot = work.join(format!("{}.hot", partition.name));
    rename(&partition.dir, &hot)?;
    crash_here("hot-moved")?;
    if let Err(error) = rename(&ready, &partition.dir) {
        rename(&hot, &partition.dir)?;
        return Err(error);
    }
    sync_parent(&store.partitions_dir)?;
    let reopened = match Partition::open(
        &partition.dir,
        store.config.partition_hours,
        store.config.docstore_zstd_level,
    ) {
        Ok(reopened) => reopened,
        Err(error) => {
            // Put the hot copy back; the cold one is dropped.
            let failed = work.join(format!("{}.failed", partition.name));
            rename(&partition.dir, &failed)?;
            rename(&hot, &partition.dir)?;
            let _ = remove_dir(&failed);
            return Err(error);
        }
    };
    store
        .write_partitions()
        .insert(partition.start, Arc::new(reopened));
    drop(state);
    if let Err(error) = remove_dir(&hot) {
        tracing::warn!(%error, "the hot copy of a cold partition could not be deleted; the next start deletes it");
    }
    let cold_bytes = dir_bytes(&partition.dir);
    tracing::info!(partition = %partition.name, docs, hot_bytes, cold_bytes, "partition rewritten cold");
    Ok(Some(ColdPartition {
        name: partition.name.clone(),
        docs,
        hot_bytes,
        cold_bytes,
        took_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
    }))
}

/// Rewrites every partition whose end is at or before `cutoff` that is not cold yet.
pub(crate) fn compact(store: &Store, cutoff: DateTime<Utc>) -> Result<ColdReport, StoreError> {
    let work = store.root.join(COLD_WORK_DIR);
    std::fs::create_dir_all(&work).map_err(io(format!("cannot create `{}`", work.display())))?;
    let candidates: Vec<Arc<Partition>> = store
        .read_partitions()
        .values()
        .filter(|p| p.end <= cutoff && p.extent().is_none_or(|(_, last)| last < cutoff))
        .cloned()
        .collect();
    let mut report = ColdReport::default();
    for partition in candidates {
        if partition.is_cold() {
            report.already_cold += 1;
            continue;
        }
        if partition.num_docs() == 0 {
            continue;
        }
        match rewrite(store, &partition, &work) {
            Ok(Some(done)) => report.rewritten.push(done),
            Ok(None) => report.skipped.push((
                partition.name.clone(),
                "written to while it was rewritten; left hot until the next pass".into(),
            )),
            Err(error) => {
                tracing::warn!(partition = %partition.name, %error, "cold rewrite failed; the hot copy is kept");
                #[cfg(test)]
                if CRASH.with(std::cell::Cell::get).is_some() {
                    return Err(error);
                }
                report
                    .skipped
                    .push((partition.name.clone(), error.to_string()));
            }
        }
    }
    Ok(report)
}

/// The cutoff for `after_days` at `now`.
pub(crate) fn cutoff(now: DateTime<Utc>, after_days: u32) -> DateTime<Utc> {
    now.checked_sub_signed(TimeDelta::days(i64::from(after_days)))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SearchRequest, StoreConfig};

    fn store_in(dir: &Path) -> Store {
        Store::open(dir, StoreConfig::default()).expect("open")
    }

    fn fill(store: &Store) {
        for round in 0..3u64 {
            let batch: Vec<(u64, crowsnest_model::Event)> = (0..50u64)
                .map(|i| {
                    let event = serde_json::from_value(serde_json::json!({
                        "@timestamp": format!("2024-03-01T{:02}:{:02}:00Z", round, i),
                        "message": format!("event {i} of round {round} needle{}", i % 5),
                        "user": {"name": format!("u{}", i % 3)},
                    }))
                    .expect("event");
                    (round * 100 + i + 1, event)
                })
                .collect();
            store.add(&batch).expect("add");
            store.commit().expect("commit");
        }
        store.close_writers().expect("close");
    }

    fn answers(store: &Store) -> Vec<serde_json::Value> {
        [
            "*",
            "needle3",
            "user.name:u1",
            "* | stats count() by user.name",
        ]
        .iter()
        .map(|text| {
            let mut response = store
                .search(&SearchRequest {
                    query: crowsnest_query::parse(text).expect("query"),
                    start: None,
                    end: None,
                    limit: 200,
                    offset: 0,
                })
                .expect("search");
            response.took_ms = 0;
            serde_json::to_value(response).expect("json")
        })
        .collect()
    }

    fn far_future() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    /// A rewrite killed at either step leaves a store that opens whole with every event: the
    /// hot copy when the swap had not started, the verified cold copy when the hot one was
    /// already moved out; nothing is left in the work directory.
    #[test]
    fn a_crash_mid_rewrite_leaves_a_whole_partition() {
        for (crash, cold_after) in [(Crash::AfterReady, false), (Crash::AfterHotMoved, true)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = store_in(dir.path());
            fill(&store);
            let expected = answers(&store);
            assert_eq!(expected[0]["total"], 150);
            CRASH.with(|c| c.set(Some(crash)));
            let result = store.compact_cold(far_future());
            CRASH.with(|c| c.set(None));
            assert!(result.is_err(), "{crash:?}: {result:?}");
            // A crash: the process is gone, nothing is cleaned up.
            drop(store);
            let work = dir.path().join(COLD_WORK_DIR);
            assert!(work.read_dir().expect("work").any(|_| true), "{crash:?}");
            let store = store_in(dir.path());
            assert!(!work.read_dir().expect("work").any(|_| true), "{crash:?}");
            assert_eq!(answers(&store), expected, "{crash:?}");
            let stats = store.stats();
            assert_eq!(stats.partitions.len(), 1);
            assert_eq!(stats.partitions[0].cold, cold_after, "{crash:?}");
            // The next pass completes it.
            let report = store.compact_cold(far_future()).expect("compact");
            assert_eq!(
                report.rewritten.len(),
                usize::from(!cold_after),
                "{crash:?}"
            );
            assert!(store.stats().partitions[0].cold);
            assert_eq!(answers(&store), expected, "{crash:?}");
        }
    }

    /// Leftovers of a build that never got ready are deleted; a bad setting is refused.
    #[test]
    fn partial_copies_are_deleted_and_bad_settings_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(dir.path());
        fill(&store);
        drop(store);
        let tmp = dir.path().join(COLD_WORK_DIR).join("20240301T00.tmp");
        std::fs::create_dir_all(&tmp).expect("tmp");
        std::fs::write(tmp.join("half.store"), b"partial").expect("file");
        let store = store_in(dir.path());
        assert!(!tmp.exists());
        assert_eq!(answers(&store)[0]["total"], 150);
        drop(store);
        for cold in [
            ColdConfig {
                zstd_level: 22,
                ..ColdConfig::default()
            },
            ColdConfig {
                block_kib: 1,
                ..ColdConfig::default()
            },
        ] {
            let error = Store::open(
                dir.path(),
                StoreConfig {
                    cold,
                    ..StoreConfig::default()
                },
            )
            .expect_err("refused");
            assert!(error.to_string().contains("cold."), "{error}");
        }
    }
}
