//! One time partition: a tantivy index in `<dir>/partitions/<YYYYMMDDTHH>/` holding the events
//! whose `@timestamp` falls in `[start, end)`.
//!
//! The tantivy commit payload of a partition is a small JSON object
//! `{"wal_position": N, "start": "...", "end": "...", "format": F}`: the highest WAL position
//! that was added (to any partition) when this partition last committed, the partition's bounds,
//! so a store reopened with another `partition_hours` still knows the width of its old
//! partitions, and the on-disk [`FORMAT`] it was written in.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{Index, IndexReader, IndexSettings, ReloadPolicy};

use crate::schema::{build_schema, SchemaFields};
use crate::StoreError;

/// Format of a partition directory name (its start, UTC).
const NAME_FORMAT: &str = "%Y%m%dT%H";

/// Docstore block size: larger blocks compress better, a hit decompresses one block.
///
/// Measured on 100k generated events (`examples/ingest.rs`, 97 MB raw): 64 KiB at zstd 9 gave
/// a 49.3 MB store for 93 µs of CPU per event; 256 KiB at zstd 3 gave 45.0 MB for 75 µs
/// (zstd finds the structured and the raw copy of an event, and neighbouring events of the same
/// source, within one block however fast the level; a higher level mostly paid for searching
/// small blocks harder). Later, with sstable term dictionaries, the docstore alone: 14.45 MB at
/// 256 KiB, 11.67 MB at 1 MiB, 11.18 MB at 2 MiB, all at zstd 3 and the same CPU; at 1 MiB,
/// zstd 1 gave 11.91 MB, zstd 5 10.14 MB and zstd 6 9.49 MB, the last two for 6 to 8 µs more
/// CPU per event. A hit costs the decompression of one block, about 1 ms at 1 MiB.
const DOCSTORE_BLOCK_BYTES: usize = 1024 * 1024;
/// Default zstd level of the docstore ([`crate::StoreConfig::docstore_zstd_level`]; see
/// [`DOCSTORE_BLOCK_BYTES`]).
pub(crate) const DOCSTORE_ZSTD_LEVEL: i32 = 3;
/// zstd levels the docstore accepts: zstd's regular levels (20 to 22 are its "ultra" levels,
/// meant for windows far larger than a 1 MiB block; level 19 already compresses this corpus at
/// about 3 MB/s).
pub(crate) const DOCSTORE_ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=19;
/// Decompressed docstore blocks a segment reader keeps (tantivy's default is 100, which with
/// 1 MiB blocks could hold 100 MB per segment): 4 MiB per segment.
const DOCSTORE_CACHE_BLOCKS: usize = 4;

/// On-disk format of the partitions this build writes and reads.
///
/// - 1 (no `format` in the payload): tantivy's FST term dictionary.
/// - 2: tantivy's sstable term dictionary (its `quickwit` feature), blocks zstd-compressed. On
///   the 100k-event benchmark corpus it took the store from 77 to 62 µs of CPU per event and
///   from 0.414 to 0.355 of the raw size (`examples/ingest.rs`). The term dictionary kind is
///   chosen when tantivy is compiled, so a build reads one format only: partitions of another
///   format are set aside by [`crate::Store::open`], not opened.
pub(crate) const FORMAT: u32 = 2;

/// The format of a payload written before formats were recorded.
fn first_format() -> u32 {
    1
}

/// What a partition records in its commit payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Payload {
    /// Highest WAL position added to the store when the partition committed.
    pub wal_position: u64,
    /// Partition start (inclusive).
    pub start: DateTime<Utc>,
    /// Partition end (exclusive).
    pub end: DateTime<Utc>,
    /// [`FORMAT`] of the partition's files.
    #[serde(default = "first_format")]
    pub format: u32,
    /// Earliest and latest `@timestamp` of the events held, when some lie outside
    /// `[start, end)` (events routed by ingest time: see [`crate::StoreConfig::window_past_hours`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extent: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// An open partition.
pub(crate) struct Partition {
    /// Directory name, `YYYYMMDDTHH` of the start.
    pub name: String,
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
    /// Index directory.
    pub dir: PathBuf,
    /// The index.
    pub index: Index,
    /// Reader, reloaded after each commit.
    pub reader: IndexReader,
    /// WAL position of the last commit of this partition (events at or below it are skipped).
    pub committed: Mutex<Option<u64>>,
    /// Earliest and latest `@timestamp` held outside `[start, end)`, if any (searches include
    /// the partition when their range overlaps this too).
    pub extent: Mutex<Option<(DateTime<Utc>, DateTime<Utc>)>>,
    /// The dynamic paths given fast columns (`schema/route.rs`), from the segments on disk at
    /// open and the events added since.
    pub columns: Mutex<crate::schema::route::ColumnPaths>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("name", &self.name)
            .field("start", &self.start)
            .field("end", &self.end)
            .finish()
    }
}

/// The `fields` paths with fast columns in the committed segments of `index`.
fn column_paths(
    index: &Index,
    reader: &IndexReader,
) -> Result<crate::schema::route::ColumnPaths, StoreError> {
    use tantivy::Directory;
    let mut paths = std::collections::HashSet::new();
    let prefix = format!("{}\u{1}", crate::schema::FIELDS);
    for segment in reader.searcher().segment_readers() {
        let name = format!("{}.fast", segment.segment_id().uuid_string());
        let file = index
            .directory()
            .open_read(std::path::Path::new(&name))
            .map_err(|e| StoreError::Index(format!("cannot open `{name}`: {e}")))?;
        let columnar = tantivy::columnar::ColumnarReader::open(file)
            .map_err(|e| StoreError::Index(format!("cannot read `{name}`: {e}")))?;
        let columns = columnar
            .list_columns()
            .map_err(|e| StoreError::Index(format!("cannot list `{name}`: {e}")))?;
        for (column, _) in columns {
            if let Some(path) = column.strip_prefix(&prefix) {
                paths.insert(path.replace('\u{1}', "."));
            }
        }
    }
    Ok(crate::schema::route::ColumnPaths::from_existing(paths))
}

/// The directory name of a partition starting at `start`.
pub(crate) fn partition_name(start: DateTime<Utc>) -> String {
    start.format(NAME_FORMAT).to_string()
}

/// Parses a partition directory name back to its start.
pub(crate) fn parse_partition_name(name: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(&format!("{name}:00"), "%Y%m%dT%H:%M").ok()?;
    Some(naive.and_utc())
}

/// Start of the aligned partition of width `hours` containing `ts`.
pub(crate) fn aligned_start(ts: DateTime<Utc>, hours: u32) -> DateTime<Utc> {
    let width = i64::from(hours.max(1)) * 3600;
    let secs = ts.timestamp().div_euclid(width) * width;
    DateTime::from_timestamp(secs, 0).unwrap_or(ts)
}

/// Width of `hours` as a time delta.
pub(crate) fn hours_delta(hours: u32) -> TimeDelta {
    TimeDelta::hours(i64::from(hours.max(1)))
}

fn docstore_compressor(zstd_level: i32) -> Compressor {
    Compressor::Zstd(ZstdCompressor {
        compression_level: Some(zstd_level),
    })
}

fn index_settings(zstd_level: i32) -> IndexSettings {
    IndexSettings {
        docstore_compression: docstore_compressor(zstd_level),
        docstore_blocksize: DOCSTORE_BLOCK_BYTES,
        ..IndexSettings::default()
    }
}

/// Creates an empty index with the current schema and settings in `dir`.
fn new_index(dir: &Path, zstd_level: i32) -> Result<Index, StoreError> {
    let (schema, _) = build_schema();
    Ok(Index::builder()
        .schema(schema)
        .settings(index_settings(zstd_level))
        .create_in_dir(dir)?)
}

impl Partition {
    /// Creates a new, empty partition directory whose docstore compresses at `zstd_level`.
    pub(crate) fn create(
        root: &Path,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        zstd_level: i32,
    ) -> Result<Self, StoreError> {
        let name = partition_name(start);
        let dir = root.join(&name);
        if dir.exists() {
            // Left by a creation that failed half-way (a full disk): every partition on disk
            // was opened with the store, so this one holds nothing.
            std::fs::remove_dir_all(&dir).map_err(|e| {
                StoreError::io(format!("cannot clear partition `{}`", dir.display()), e)
            })?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| {
            StoreError::io(format!("cannot create partition `{}`", dir.display()), e)
        })?;
        let index = new_index(&dir, zstd_level)?;
        Self::from_index(name, start, end, dir, index, None)
    }

    /// Opens an existing partition directory; `default_hours` gives the width of a partition
    /// that never committed (it has no payload yet). Segments written from now on (new events,
    /// merges) compress their docstore at `zstd_level`; each segment records its own
    /// compression, so the ones already written stay readable as they are.
    pub(crate) fn open(
        dir: &Path,
        default_hours: u32,
        zstd_level: i32,
    ) -> Result<Self, StoreError> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let named_start = parse_partition_name(&name).ok_or_else(|| StoreError::Corrupt {
            partition: name.clone(),
            reason: "expected a directory named `YYYYMMDDTHH`".into(),
        })?;
        let index = match Index::open_in_dir(dir) {
            Ok(index) => index,
            // A partition created just before a crash may lack its meta file: recreate it.
            Err(tantivy::TantivyError::OpenDirectoryError(_))
            | Err(tantivy::TantivyError::OpenReadError(_)) => new_index(dir, zstd_level)?,
            Err(error) => return Err(error.into()),
        };
        let metas = index.load_metas()?;
        let payload: Option<Payload> = match metas.payload.as_deref() {
            None | Some("") => None,
            Some(text) => Some(serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
                partition: name.clone(),
                reason: format!("commit payload is not the expected JSON object: {e}"),
            })?),
        };
        // Checked before a reader opens the segments, which would fail on the term dictionary.
        if let Some(payload) = &payload {
            if payload.format != FORMAT {
                return Err(StoreError::Format {
                    partition: name,
                    found: payload.format,
                    expected: FORMAT,
                });
            }
        }
        let mut index = if payload.is_none() && index.schema() != build_schema().0 {
            // Never committed, so empty, but created by a build with another schema: start
            // it again with ours.
            drop(index);
            std::fs::remove_dir_all(dir).map_err(|e| {
                StoreError::io(format!("cannot recreate partition `{}`", dir.display()), e)
            })?;
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::io(format!("cannot recreate partition `{}`", dir.display()), e)
            })?;
            new_index(dir, zstd_level)?
        } else {
            index
        };
        index.settings_mut().docstore_compression = docstore_compressor(zstd_level);
        let (start, end, committed, extent) = match payload {
            Some(p) => (p.start, p.end, Some(p.wal_position), p.extent),
            None => (
                named_start,
                named_start + hours_delta(default_hours),
                None,
                None,
            ),
        };
        let partition = Self::from_index(name, start, end, dir.to_path_buf(), index, committed)?;
        *partition
            .extent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = extent;
        Ok(partition)
    }

    fn from_index(
        name: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        dir: PathBuf,
        index: Index,
        committed: Option<u64>,
    ) -> Result<Self, StoreError> {
        index
            .tokenizers()
            .register(crate::schema::RAW_WORDS, crate::schema::raw_analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(DOCSTORE_CACHE_BLOCKS)
            .try_into()?;
        let columns = column_paths(&index, &reader)?;
        Ok(Self {
            name,
            start,
            end,
            dir,
            index,
            reader,
            committed: Mutex::new(committed),
            extent: Mutex::new(None),
            columns: Mutex::new(columns),
        })
    }

    /// The payload to commit with.
    pub(crate) fn payload(&self, wal_position: u64) -> String {
        let payload = Payload {
            wal_position,
            start: self.start,
            end: self.end,
            format: FORMAT,
            extent: self.extent(),
        };
        serde_json::to_string(&payload).unwrap_or_default()
    }

    /// The WAL position this partition last committed.
    pub(crate) fn committed(&self) -> Option<u64> {
        *self
            .committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a commit.
    pub(crate) fn set_committed(&self, position: u64) {
        *self
            .committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(position);
    }

    /// Number of searchable events.
    pub(crate) fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Bytes on disk.
    pub(crate) fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }

    /// True when the partition may hold events in `[start, end)`.
    pub(crate) fn overlaps(
        &self,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> bool {
        let bounds = start.is_none_or(|s| self.end > s) && end.is_none_or(|e| self.start < e);
        bounds
            || self.extent().is_some_and(|(first, last)| {
                start.is_none_or(|s| last >= s) && end.is_none_or(|e| first < e)
            })
    }

    /// Earliest and latest `@timestamp` held outside `[start, end)`.
    pub(crate) fn extent(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        *self
            .extent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that an event at `ts` is held; widens the extent when `ts` is outside
    /// `[start, end)`.
    pub(crate) fn hold(&self, ts: DateTime<Utc>) {
        if ts >= self.start && ts < self.end {
            return;
        }
        let mut extent = self
            .extent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *extent = Some(match *extent {
            Some((first, last)) => (first.min(ts), last.max(ts)),
            None => (ts, ts),
        });
    }
}

/// The schema handles (identical for every partition).
pub(crate) fn schema_fields() -> SchemaFields {
    build_schema().1
}

/// Total size of the files below `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        match entry.metadata() {
            Ok(meta) if meta.is_dir() => total += dir_bytes(&entry.path()),
            Ok(meta) => total += meta.len(),
            Err(_) => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_align() {
        let ts = DateTime::parse_from_rfc3339("2024-03-01T13:45:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let daily = aligned_start(ts, 24);
        assert_eq!(partition_name(daily), "20240301T00");
        assert_eq!(partition_name(aligned_start(ts, 6)), "20240301T12");
        assert_eq!(
            parse_partition_name("20240301T12"),
            Some(aligned_start(ts, 6))
        );
        assert_eq!(parse_partition_name("garbage"), None);
    }
}
