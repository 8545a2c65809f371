//! The console's static files, embedded in the binary and served under content-hashed names
//! (`/assets/htmx.min.<hash>.js`) with a year-long, immutable cache and an `ETag`.
//!
//! The vendored libraries (`assets/vendor/`) are pinned by `assets/vendor/SHA256SUMS`; a test
//! checks every embedded file against it.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
pub(crate) struct Asset {
    /// Name without the hash (`htmx.min.js`).
    pub(crate) name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// First 16 hex digits of its SHA-256.
    hash: String,
    /// `/assets/<stem>.<hash>.<ext>`.
    pub(crate) url: String,
}

macro_rules! asset {
    ($name:literal, $path:literal, $type:literal) => {
        (
            $name,
            $type,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path))
                as &'static [u8],
            $path,
        )
    };
}

/// (name, content type, bytes, path under `assets/`).
type Embedded = (&'static str, &'static str, &'static [u8], &'static str);

const FILES: [Embedded; 5] = [
    asset!(
        "htmx.min.js",
        "vendor/htmx-2.0.11/htmx.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "uPlot.min.js",
        "vendor/uplot-1.6.32/uPlot.iife.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "uPlot.min.css",
        "vendor/uplot-1.6.32/uPlot.min.css",
        "text/css; charset=utf-8"
    ),
    asset!("console.js", "console.js", "text/javascript; charset=utf-8"),
    asset!("console.css", "console.css", "text/css; charset=utf-8"),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, bytes, _)| {
            let hash = hex::encode(Sha256::digest(bytes))[..16].to_string();
            let url = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("/assets/{stem}.{hash}.{ext}"),
                None => format!("/assets/{name}.{hash}"),
            };
            Asset {
                name,
                content_type,
                bytes,
                hash,
                url,
            }
        })
        .collect()
});

/// The URL of an embedded file by its plain name (`console.css`).
pub(crate) fn url(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map_or("/assets/missing", |a| a.url.as_str())
}

/// `GET /assets/{file}`: only the current hashed names exist.
pub(crate) async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let wanted = format!("/assets/{file}");
    let Some(asset) = ASSETS.iter().find(|a| a.url == wanted) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let etag = format!("\"{}\"", asset.hash);
    let cache = HeaderValue::from_static("public, max-age=31536000, immutable");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (
                    header::CACHE_CONTROL,
                    cache.to_str().unwrap_or_default().to_string(),
                ),
            ],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, cache),
            (
                header::ETAG,
                HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
            ),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_assets_match_their_pinned_sums() {
        let sums = include_str!("../assets/vendor/SHA256SUMS");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/vendor");
        let mut listed = 0;
        for line in sums.lines().filter(|l| !l.trim().is_empty()) {
            let (sum, path) = line.split_once("  ").expect("`<sum>  <path>` lines");
            let bytes = std::fs::read(dir.join(path)).expect("listed file exists");
            assert_eq!(
                hex::encode(Sha256::digest(&bytes)),
                sum,
                "{path} differs from SHA256SUMS"
            );
            listed += 1;
        }
        // Every embedded vendored file is pinned, and pinned to what is embedded.
        for (name, _, bytes, path) in FILES {
            if let Some(vendored) = path.strip_prefix("vendor/") {
                let line = sums
                    .lines()
                    .find(|l| l.ends_with(&format!("  {vendored}")))
                    .unwrap_or_else(|| panic!("{name} ({vendored}) is not in SHA256SUMS"));
                assert!(line.starts_with(&hex::encode(Sha256::digest(bytes))));
            }
        }
        // Every vendored directory carries its licence.
        for entry in std::fs::read_dir(&dir).expect("vendor dir") {
            let entry = entry.expect("entry");
            if entry.path().is_dir() {
                assert!(
                    entry.path().join("LICENSE").is_file(),
                    "{:?} has no LICENSE",
                    entry.path()
                );
            }
        }
        assert_eq!(listed, 5);
    }

    #[test]
    fn urls_carry_the_content_hash() {
        let url = url("htmx.min.js");
        assert!(
            url.starts_with("/assets/htmx.min.") && url.ends_with(".js"),
            "{url}"
        );
        assert_eq!(url.len(), "/assets/htmx.min..js".len() + 16);
        assert_eq!(super::url("nope"), "/assets/missing");
    }
}
