//! The per-file outcome of loading rules: what loaded, what is unsupported (by construct and
//! line) and what is invalid (by reason and line).

use std::path::PathBuf;

use serde::Serialize;

/// What happened to one problem inside a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Valid Sigma that our engine cannot run; the document is skipped.
    Unsupported {
        /// The construct, by name (e.g. `modifier |xyz`, `regex look-around`).
        construct: String,
        /// 1-based line in the file, when it could be located.
        line: Option<usize>,
    },
    /// Not valid Sigma (YAML error, missing field, unknown detection name, ...).
    Invalid {
        /// What was expected.
        reason: String,
        /// 1-based line in the file, when it could be located.
        line: Option<usize>,
    },
}

/// The summary status of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    /// Every document loaded.
    Loaded {
        /// Rules, correlations and filters loaded from the file.
        rules: usize,
    },
    /// At least one document uses a construct we do not support (none is invalid).
    Unsupported {
        /// The first unsupported construct.
        construct: String,
        /// Its line.
        line: Option<usize>,
    },
    /// At least one document is invalid.
    Invalid {
        /// The first reason.
        reason: String,
        /// Its line.
        line: Option<usize>,
    },
}

/// The outcome of loading one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file (for built-in rules: `builtin:<path under rules/>`).
    pub path: PathBuf,
    /// Rules, correlations and filters loaded.
    pub loaded: usize,
    /// Every problem found, in file order.
    pub problems: Vec<Problem>,
}

impl FileReport {
    /// The summary: invalid beats unsupported beats loaded.
    pub fn status(&self) -> FileStatus {
        let invalid = self.problems.iter().find_map(|p| match p {
            Problem::Invalid { reason, line } => Some(FileStatus::Invalid {
                reason: reason.clone(),
                line: *line,
            }),
            Problem::Unsupported { .. } => None,
        });
        let unsupported = self.problems.iter().find_map(|p| match p {
            Problem::Unsupported { construct, line } => Some(FileStatus::Unsupported {
                construct: construct.clone(),
                line: *line,
            }),
            Problem::Invalid { .. } => None,
        });
        invalid
            .or(unsupported)
            .unwrap_or(FileStatus::Loaded { rules: self.loaded })
    }
}

/// Per-file outcomes of a load.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// One entry per file read, in load order.
    pub files: Vec<FileReport>,
}

impl LoadReport {
    /// Files with no problem.
    pub fn loaded_files(&self) -> usize {
        self.files.iter().filter(|f| f.problems.is_empty()).count()
    }

    /// Whether any file is invalid.
    pub fn any_invalid(&self) -> bool {
        self.files
            .iter()
            .any(|f| matches!(f.status(), FileStatus::Invalid { .. }))
    }
}
