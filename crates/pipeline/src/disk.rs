//! Free space of the data directory, and the watermark below which ingest stops.
//!
//! The WAL writer asks [`Disk::refuse`] before each group commit, and a monitor thread
//! ([`Disk::watch`]) refreshes the reading twice a second, so ingest resumes by itself when
//! space returns (retention, an operator, a resized volume) even while nothing is written.
//! Ingest stops at the watermark, not at the last byte, so the store still has room to commit
//! what the WAL holds, after which the WAL is truncated and space comes back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The default watermark: this share of the filesystem ...
const AUTO_SHARE: f64 = 0.05;
/// ... but never more than this.
const AUTO_MAX_BYTES: u64 = 1 << 30;
/// Ingest resumes once free space is this much above the watermark (in parts of it), so it
/// does not flap around one value.
const RESUME_MARGIN: f64 = 0.10;
/// How often the monitor thread reads free space.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Free-space state of the data directory.
#[derive(Debug)]
pub struct Disk {
    paths: Vec<PathBuf>,
    /// Configured watermark (`None`: automatic, [`AUTO_SHARE`] of the filesystem).
    configured: Option<u64>,
    free: AtomicU64,
    total: AtomicU64,
    full: AtomicBool,
    /// Set when a write failed for lack of space; cleared once space is back above the
    /// watermark and the store has caught up with the WAL, so the store gets the space it
    /// needs to commit before new events compete for it.
    write_failed: AtomicBool,
    /// Everything acknowledged is in the store (set by the indexer).
    caught_up: AtomicBool,
    since: Mutex<Option<DateTime<Utc>>>,
    /// Test hook: the next reading says the disk is full.
    #[cfg(test)]
    full_next_reading: AtomicBool,
}

/// What [`Disk::status`] reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiskStatus {
    /// Bytes available to the server on the fullest filesystem of the data directory.
    pub free_bytes: u64,
    /// Size of that filesystem.
    pub total_bytes: u64,
    /// Free bytes below which ingest stops.
    pub watermark_bytes: u64,
    /// True while ingest is refused for lack of space.
    pub full: bool,
    /// Since when, if full.
    pub since: Option<DateTime<Utc>>,
}

impl Disk {
    /// Watches the filesystems holding `paths` (the WAL and the store directories).
    pub fn new(paths: Vec<PathBuf>, min_free_bytes: Option<u64>) -> Self {
        let disk = Self {
            paths,
            configured: min_free_bytes,
            free: AtomicU64::new(u64::MAX),
            total: AtomicU64::new(0),
            full: AtomicBool::new(false),
            write_failed: AtomicBool::new(false),
            caught_up: AtomicBool::new(true),
            since: Mutex::new(None),
            #[cfg(test)]
            full_next_reading: AtomicBool::new(false),
        };
        disk.refresh();
        disk
    }

    /// The watermark in bytes for the current filesystem size.
    pub fn watermark(&self) -> u64 {
        self.configured.unwrap_or_else(|| {
            let total = self.total.load(Ordering::Relaxed);
            ((total as f64 * AUTO_SHARE) as u64).min(AUTO_MAX_BYTES)
        })
    }

    /// Reads free space again and updates the state. Returns true while ingest must stop.
    pub fn refresh(&self) -> bool {
        let mut free = u64::MAX;
        let mut total = 0;
        for path in &self.paths {
            match read(path) {
                Ok((f, t)) if f < free => {
                    free = f;
                    total = t;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(path = %path.display(), %error, "cannot read free space")
                }
            }
        }
        if free == u64::MAX {
            // Unreadable: trust the writes (a failed write still marks the disk full).
            return self.full.load(Ordering::SeqCst);
        }
        self.free.store(free, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        let watermark = self.watermark();
        let was_full = self.full.load(Ordering::SeqCst);
        let resume_at = watermark.saturating_add((watermark as f64 * RESUME_MARGIN) as u64);
        let failed = self.write_failed.load(Ordering::SeqCst);
        let full = if failed {
            free < resume_at.max(1) || !self.caught_up.load(Ordering::SeqCst)
        } else if was_full {
            free < resume_at.max(1)
        } else {
            free < watermark
        };
        if !full {
            self.write_failed.store(false, Ordering::SeqCst);
        }
        self.set_full(full, free, watermark);
        full
    }

    /// A write failed for lack of space: ingest stops until free space is back above the
    /// watermark.
    pub fn write_failed(&self) {
        self.write_failed.store(true, Ordering::SeqCst);
        let free = self.free.load(Ordering::Relaxed);
        self.set_full(true, free, self.watermark());
    }

    fn set_full(&self, full: bool, free: u64, watermark: u64) {
        let was = self.full.swap(full, Ordering::SeqCst);
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if full && !was {
            *since = Some(Utc::now());
            tracing::error!(
                free_bytes = free,
                watermark_bytes = watermark,
                "data disk is (nearly) full: ingest is refused (507/503 with Retry-After) until space returns"
            );
        } else if !full && was {
            *since = None;
            tracing::warn!(
                free_bytes = free,
                "space is back on the data disk; ingest resumes"
            );
        }
    }

    /// The indexer's word on whether everything acknowledged is in the store.
    pub fn set_caught_up(&self, caught_up: bool) {
        self.caught_up.store(caught_up, Ordering::SeqCst);
    }

    /// [`Disk::refresh`], as the WAL writer reads it before each append.
    pub(crate) fn refresh_before_append(&self) -> bool {
        #[cfg(test)]
        if self.full_next_reading.swap(false, Ordering::SeqCst) {
            self.set_full(true, 0, self.watermark());
            return true;
        }
        self.refresh()
    }

    /// Makes the WAL writer's next reading say the disk is full (the moment between a submitter's check
    /// and the WAL writer's, which tests cannot otherwise hit).
    #[cfg(test)]
    pub(crate) fn fill_at_next_reading(&self) {
        self.full_next_reading.store(true, Ordering::SeqCst);
    }

    /// True while ingest is refused.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// The current reading.
    pub fn status(&self) -> DiskStatus {
        DiskStatus {
            free_bytes: self.free.load(Ordering::Relaxed),
            total_bytes: self.total.load(Ordering::Relaxed),
            watermark_bytes: self.watermark(),
            full: self.is_full(),
            since: *self.since.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Refreshes every [`WATCH_INTERVAL`] until `stop` is set.
    pub(crate) fn watch(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            self.refresh();
            std::thread::sleep(WATCH_INTERVAL);
        }
    }
}

/// Free and total bytes of the filesystem holding `path`.
fn read(path: &Path) -> std::io::Result<(u64, u64)> {
    let stats = fs4::statvfs(path)?;
    Ok((stats.available_space(), stats.total_space()))
}

/// True when an I/O error means the disk (or the quota) is full.
pub(crate) fn is_out_of_space(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) {
                return true;
            }
        }
        current = e.source();
    }
    // tantivy wraps some I/O errors in its own types; their text still says it.
    let text = error.to_string();
    text.contains("No space left on device") || text.contains("Disk quota exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_watermark_is_a_share_of_the_disk_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = Disk::new(vec![dir.path().to_path_buf()], None);
        let status = disk.status();
        assert!(status.total_bytes > 0);
        assert_eq!(
            status.watermark_bytes,
            ((status.total_bytes as f64 * AUTO_SHARE) as u64).min(AUTO_MAX_BYTES)
        );
        assert!(!status.full, "{status:?}");
    }

    #[test]
    fn a_watermark_above_free_space_refuses_and_a_failed_write_sticks_until_space() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = Disk::new(vec![dir.path().to_path_buf()], Some(u64::MAX / 2));
        assert!(disk.is_full());
        assert!(disk.status().since.is_some());
        let disk = Disk::new(vec![dir.path().to_path_buf()], Some(0));
        assert!(!disk.is_full());
        disk.write_failed();
        assert!(disk.is_full());
        // Space is above the watermark (0), but the store has not caught up yet.
        disk.set_caught_up(false);
        assert!(disk.refresh());
        // Caught up: the next reading clears it.
        disk.set_caught_up(true);
        assert!(!disk.refresh());
        assert!(!disk.is_full());
    }

    #[test]
    fn out_of_space_errors_are_recognized_through_wrappers() {
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let wrapped = anyhow::Error::new(io).context("committing");
        assert!(is_out_of_space(wrapped.as_ref()));
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!is_out_of_space(&other));
    }
}
