//! Which leaves of an event get a fast column: the bound on the store's cost per event
//! whatever the shape of the events (issue 23).
//!
//! Every leaf of `fields` used to get a keyword term *and* a fast column. A column costs a
//! dictionary entry and an ordinal per event, and only serves aggregations; for values that
//! never repeat, or a field nobody groups by, it is pure cost, and the number of paths is
//! whatever the shippers send (every label, annotation and ConfigMap key is a path). So a leaf
//! of a dynamic path goes to `_unique` (terms, the same query answers, no column) when:
//!
//! * (a) it is long free text: a string of more than [`LONG_TEXT_BYTES`] bytes, or of more than
//!   [`TEXT_BYTES`] bytes with at least [`TEXT_SPACES`] spaces (a log line, a ConfigMap's file,
//!   an authorization reason). Its words are searchable as free text through `_raw`, the words
//!   of the raw input; at its path it matches exactly, as every keyword does;
//! * (b) it looks like an identifier unique to an object or an event: a UUID, a run of
//!   [`HEX_RUN`] or more hex digits (container and image ids, digests), a time with seconds,
//!   or a key named like one ([`ID_KEYS`]: `uid`, `exec_id`, `resourceVersion`, ...);
//! * (c) its partition already gives columns to [`crate::StoreConfig::max_columns`] dynamic
//!   paths and this path is not one of them.
//!
//! A path declared in [`crate::StoreConfig::aggregate_fields`] (or built in:
//! [`BUILT_IN_AGGREGATE_FIELDS`]) keeps its columns whatever its values look like, and counts
//! against no cap. An aggregation over a path that has values in
//! `_unique` says so in its answer (`SearchResponse::warnings`).

use std::collections::HashSet;

use serde_json::Value;
use tantivy::schema::OwnedValue;

/// Strings longer than this are free text.
pub const LONG_TEXT_BYTES: usize = 200;
/// Strings longer than this with [`TEXT_SPACES`] spaces are free text.
pub const TEXT_BYTES: usize = 48;
/// See [`TEXT_BYTES`].
pub const TEXT_SPACES: usize = 5;
/// A run of this many hex digits makes a string an identifier.
pub const HEX_RUN: usize = 24;
/// Last path segments whose values are identifiers.
pub const ID_KEYS: [&str; 10] = [
    "uid",
    "exec_id",
    "parent_exec_id",
    "resourceVersion",
    "request_id",
    "trace_id",
    "span_id",
    "auditID",
    "pod_id",
    "docker_id",
];

/// Paths that keep their columns whatever their values look like, as if declared in
/// [`crate::StoreConfig::aggregate_fields`]: identifiers crowsnest itself aggregates on
/// (`alert.id`, a hex digest, is counted distinct by the console's rule hits and dashboard),
/// and the entity fields a SIEM groups by whose values can look like identifiers (a
/// container's 64-hex id, an image pinned by digest, a user named by a GUID as Entra ID
/// names AKS users). Their values repeat per entity, so their columns stay small.
pub const BUILT_IN_AGGREGATE_FIELDS: [&str; 5] = [
    "alert.id",
    "container.id",
    "container.image.name",
    "user.name",
    "user.id",
];

/// The dynamic paths of one partition that have fast columns, bounded.
#[derive(Debug, Default)]
pub(crate) struct ColumnPaths {
    paths: HashSet<String>,
}

impl ColumnPaths {
    /// Starts from the columns a partition already has (`fields.` paths, dots as separators).
    pub(crate) fn from_existing(paths: impl IntoIterator<Item = String>) -> Self {
        Self {
            paths: paths.into_iter().collect(),
        }
    }

    /// How many paths have columns.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.paths.len()
    }
}

/// What decides a partition's routing: the config and the partition's column paths.
pub(crate) struct Router<'a> {
    /// Paths (or `prefix.*`) declared for aggregation.
    pub declared: &'a [String],
    /// Most dynamic column paths per partition.
    pub max_columns: usize,
    /// The partition's column paths.
    pub columns: &'a mut ColumnPaths,
    /// Whether `_source` may be stored as a delta against the raw input (`delta.rs`).
    pub delta: bool,
}

/// A leaf as the router sees it.
pub(crate) enum Leaf<'a> {
    Str(&'a str),
    Other,
}

impl<'a> From<&'a Value> for Leaf<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::String(s) => Leaf::Str(s),
            _ => Leaf::Other,
        }
    }
}

impl<'a> From<&'a OwnedValue> for Leaf<'a> {
    fn from(value: &'a OwnedValue) -> Self {
        match value {
            OwnedValue::Str(s) => Leaf::Str(s),
            _ => Leaf::Other,
        }
    }
}

impl Router<'_> {
    /// True when the leaf at `path` keeps its column (goes to `fields`).
    pub(crate) fn columns(&mut self, path: &str, leaf: Leaf<'_>) -> bool {
        if is_declared(self.declared, path) || BUILT_IN_AGGREGATE_FIELDS.contains(&path) {
            return true;
        }
        if let Leaf::Str(text) = leaf {
            if is_free_text(text) || is_identifier(path, text) {
                return false;
            }
        }
        if self.columns.paths.contains(path) {
            return true;
        }
        if self.columns.paths.len() < self.max_columns {
            self.columns.paths.insert(path.to_owned());
            return true;
        }
        false
    }
}

/// True when `path` is declared for aggregation: named, or below a `prefix.*`.
pub(crate) fn is_declared(declared: &[String], path: &str) -> bool {
    declared.iter().any(|d| match d.strip_suffix(".*") {
        _ if d == "*" => true,
        Some(prefix) => path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => d == path,
    })
}

impl ColumnPaths {
    /// A router over these columns that keeps every leaf's column (`aggregate_fields = ["*"]`).
    #[cfg(test)]
    pub(crate) fn keep_all(&mut self) -> Router<'_> {
        static ALL: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["*".to_owned()]);
        Router {
            declared: &ALL,
            max_columns: usize::MAX,
            columns: self,
            delta: false,
        }
    }
}

/// (a): long free text, which gets no fast column.
pub fn is_free_text(text: &str) -> bool {
    text.len() > LONG_TEXT_BYTES
        || (text.len() > TEXT_BYTES
            && text
                .bytes()
                .filter(|b| *b == b' ')
                .take(TEXT_SPACES)
                .count()
                >= TEXT_SPACES)
}

/// (b): an identifier, by its key (the last segment of `path`) or its shape, which gets no
/// fast column.
pub fn is_identifier(path: &str, text: &str) -> bool {
    let key = path.rsplit('.').next().unwrap_or(path);
    if ID_KEYS.contains(&key) {
        return true;
    }
    let bytes = text.as_bytes();
    if bytes.len() < 19 {
        return false;
    }
    // A time with seconds: `2024-05-01T10:00:00`.
    let time = |b: &[u8]| {
        b.len() >= 19
            && b[..19].iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T' || *c == b' ',
                13 | 16 => *c == b':',
                _ => c.is_ascii_digit(),
            })
    };
    if time(bytes) {
        return true;
    }
    // A UUID anywhere, or a long run of hex digits.
    let mut run = 0;
    let mut uuid_groups = 0;
    for (i, c) in bytes.iter().enumerate() {
        if c.is_ascii_hexdigit() {
            run += 1;
            if run >= HEX_RUN {
                return true;
            }
        } else {
            if *c == b'-' && i + 1 < bytes.len() {
                uuid_groups = match (uuid_groups, run) {
                    (0, 8) | (1, 4) | (2, 4) | (3, 4) => uuid_groups + 1,
                    _ => 0,
                };
                if uuid_groups == 4 {
                    let tail = &bytes[i + 1..];
                    if tail.len() >= 12 && tail[..12].iter().all(u8::is_ascii_hexdigit) {
                        return true;
                    }
                    uuid_groups = 0;
                }
            } else {
                uuid_groups = 0;
            }
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_told_by_shape_or_key() {
        for (path, text) in [
            ("kubernetes.pod_id", "anything"),
            ("a.b", "e9f2963f-15ad-11e8-9a06-0800279e0d30"),
            ("x", "pod e9f2963f-15ad-11e8-9a06-0800279e0d30 gone"),
            (
                "kubernetes.container_hash",
                "nginx@sha256:8e86f744bfea165fd4ce68caa05abc96500f40130b857773186401926af7e9e6",
            ),
            ("time", "2024-05-01T10:00:00.123Z"),
            ("tetragon.exec_id", "a2luZDo5OTk="),
        ] {
            assert!(is_identifier(path, text), "{path} {text}");
        }
        for (path, text) in [
            ("kubernetes.namespace", "payments"),
            ("user.name", "system:serviceaccount:kube-system:default"),
            ("image", "registry.example.com/team/api:1.2.3"),
            ("date", "2024-05-01"),
            ("hex", "deadbeef"),
        ] {
            assert!(!is_identifier(path, text), "{path} {text}");
        }
    }

    #[test]
    fn long_or_wordy_strings_are_free_text() {
        assert!(is_free_text(&"x".repeat(LONG_TEXT_BYTES + 1)));
        assert!(!is_free_text(&"x".repeat(LONG_TEXT_BYTES)));
        assert!(is_free_text(
            "GET /api/v1/orders HTTP/1.1 200 512 took 3 ms for user 7"
        ));
        assert!(!is_free_text("a b c d e f"));
    }

    #[test]
    fn the_cap_bounds_dynamic_paths_but_not_declared_ones() {
        let mut columns = ColumnPaths::default();
        let declared = vec!["big.*".to_owned(), "k".to_owned()];
        let mut router = Router {
            declared: &declared,
            max_columns: 2,
            columns: &mut columns,
            delta: false,
        };
        assert!(router.columns("a", Leaf::Other));
        assert!(router.columns("b", Leaf::Str("v")));
        assert!(router.columns("a", Leaf::Str("w")));
        assert!(!router.columns("c", Leaf::Str("v")));
        assert!(router.columns("big.one", Leaf::Str("v")));
        assert!(router.columns("k", Leaf::Str("e9f2963f-15ad-11e8-9a06-0800279e0d30")));
        assert!(!router.columns("bigger", Leaf::Other));
        assert!(!router.columns("b", Leaf::Str("e9f2963f-15ad-11e8-9a06-0800279e0d30")));
        // crowsnest's own alert id (a hex digest) stays countable: `dc(alert.id)`; so do the
        // entity fields whose values can look like ids.
        assert!(router.columns("alert.id", Leaf::Str("3f0c2a9be41d7a6c5e0f9b8d2c1a4e7f")));
        assert!(router.columns(
            "user.name",
            Leaf::Str("e9f2963f-15ad-11e8-9a06-0800279e0d30")
        ));
        assert!(router.columns(
            "container.id",
            Leaf::Str("3f2a9c1be47d5a0f6c2e8b9d1a7f4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e")
        ));
        assert_eq!(columns.len(), 2);
    }
}
