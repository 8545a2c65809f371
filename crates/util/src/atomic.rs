//! Replacing a file atomically: readers (and a restart after a crash at any instant) see the
//! old contents or the new, never a mix or an empty file.
//!
//! The bytes go to a new temporary file in the target's directory
//! (`tempfile::NamedTempFile::new_in`, named `.<file name>.<random>.tmp`, created readable by
//! its owner only), are fsynced, and the temporary file is renamed over the target
//! (`persist`); then the directory is fsynced so the rename itself survives a power loss. A
//! failure at any step removes the temporary file and leaves the target as it was. After a
//! crash between creating and renaming, a hidden `.*.tmp` file may be left beside the target;
//! it is never read.

use std::io::Write;
use std::path::Path;

/// Options of an atomic write; [`AtomicWrite::default`] fsyncs the directory and leaves the
/// file readable by its owner only (0600 on Unix).
#[derive(Debug, Clone, Copy)]
pub struct AtomicWrite {
    mode: Option<u32>,
    sync_dir: bool,
}

impl Default for AtomicWrite {
    fn default() -> Self {
        Self {
            mode: None,
            sync_dir: true,
        }
    }
}

impl AtomicWrite {
    /// Unix permission bits of the new file (default 0600); ignored elsewhere.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Whether to fsync the directory after the rename (default true). Without it the new
    /// contents are durable but a power loss may bring back the old file.
    pub fn sync_dir(mut self, sync_dir: bool) -> Self {
        self.sync_dir = sync_dir;
        self
    }

    /// Replaces `path` with `bytes`.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{}` does not name a file", path.display()),
            )
        })?;
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        let mut file = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .tempfile_in(dir)?;
        #[cfg(unix)]
        if let Some(mode) = self.mode {
            use std::os::unix::fs::PermissionsExt;
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        file.persist(path).map_err(|e| e.error)?;
        if self.sync_dir {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Replaces `path` with `bytes` atomically and durably ([`AtomicWrite::default`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    AtomicWrite::default().write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_contents_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        write_atomic(&path, b"{\"a\":1}").expect("first write");
        write_atomic(&path, b"{\"a\":2}").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"{\"a\":2}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["state.json"], "only the target is left");
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_unless_a_mode_is_given() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("secret");
        write_atomic(&private, b"token\n").expect("write");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&private), 0o600);
        let shared = dir.path().join("shared");
        AtomicWrite::default()
            .mode(0o644)
            .write(&shared, b"x")
            .expect("write");
        assert_eq!(mode(&shared), 0o644);
    }

    #[test]
    fn a_failed_write_leaves_the_target_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cursor");
        write_atomic(&path, b"old").expect("write");
        // The rename cannot replace a non-empty directory: the write fails as a whole.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).expect("mkdir");
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        let leftovers = std::fs::read_dir(dir.path())
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0, "the temporary file is removed on failure");
        let missing_dir = dir.path().join("no-such-dir").join("file");
        let error = write_atomic(&missing_dir, b"x").expect_err("no directory");
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    }
}
