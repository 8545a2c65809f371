//! Limits every input applies, and the capped decompression helpers every input must use.
//!
//! Decoders never trust a length they read from the wire: a frame header, a Content-Length
//! or a compressed stream can claim or expand to anything. [`decompress`] stops reading one
//! byte past [`Limits::max_decompressed_bytes`] (a zip bomb costs at most that much memory)
//! and the framers reject lengths above [`Limits::max_frame_bytes`] before allocating.

use std::io::Read;

use crate::IngestError;

/// Bounds applied by every decoder and listener. All sizes are in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per-line and per-field bounds shared with `crowsnest-normalize` (line/item length,
    /// JSON nesting depth, longest kept string).
    pub decode: crowsnest_normalize::Limits,
    /// Longest frame read from a stream connection: one syslog message (octet-counted or
    /// newline-delimited) or one Fluent forward message. Default 16 MiB.
    pub max_frame_bytes: usize,
    /// Most bytes a compressed body or chunk may expand to. Default 64 MiB.
    pub max_decompressed_bytes: usize,
    /// Most events taken from one frame or request; the rest are reported as errors.
    /// Default 100 000.
    pub max_events: usize,
    /// Most concurrent connections per stream listener. Default 512.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            decode: crowsnest_normalize::Limits::default(),
            max_frame_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_events: 100_000,
            max_connections: 512,
        }
    }
}

/// A compression scheme used on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// RFC 1952 gzip (several members are read as one stream).
    Gzip,
    /// RFC 1950 zlib (HTTP's `deflate`).
    Zlib,
}

impl Encoding {
    /// Parses an HTTP `Content-Encoding` value: `Ok(None)` for identity.
    ///
    /// # Errors
    ///
    /// [`IngestError::Invalid`] for encodings other than gzip, deflate and identity.
    pub fn from_header(value: Option<&str>) -> Result<Option<Self>, IngestError> {
        let value = value.map(|v| v.trim().to_ascii_lowercase());
        match value.as_deref() {
            None | Some("") | Some("identity") => Ok(None),
            Some("gzip") | Some("x-gzip") => Ok(Some(Self::Gzip)),
            Some("deflate") => Ok(Some(Self::Zlib)),
            Some(other) => Err(IngestError::invalid(
                "content encoding gzip, deflate or identity",
                format!("found `{other}`"),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zlib => "zlib",
        }
    }
}

/// Decompresses `bytes`, reading at most `max` output bytes.
///
/// # Errors
///
/// [`IngestError::TooLarge`] when the output would exceed `max`, [`IngestError::Decompress`]
/// when the stream is corrupt or truncated.
pub fn decompress(bytes: &[u8], encoding: Encoding, max: usize) -> Result<Vec<u8>, IngestError> {
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        Encoding::Zlib => Box::new(flate2::read::ZlibDecoder::new(bytes)),
    };
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|error| IngestError::Decompress {
            encoding: encoding.name(),
            reason: error.to_string(),
        })?;
    if out.len() > max {
        return Err(IngestError::TooLarge {
            limit: max,
            found: out.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("write");
        encoder.finish().expect("finish")
    }

    #[test]
    fn decompression_stops_at_the_cap() {
        let bomb = gzip(&vec![b'a'; 1 << 20]);
        assert!(bomb.len() < 10_000);
        let error = decompress(&bomb, Encoding::Gzip, 1000).expect_err("over the cap");
        assert!(matches!(error, IngestError::TooLarge { limit: 1000, .. }));
        let whole = decompress(&bomb, Encoding::Gzip, 1 << 20).expect("fits");
        assert_eq!(whole.len(), 1 << 20);
    }

    #[test]
    fn truncated_streams_are_errors() {
        let data = gzip(b"hello world, hello world");
        let error = decompress(&data[..data.len() / 2], Encoding::Gzip, 1000).expect_err("cut");
        assert!(matches!(error, IngestError::Decompress { .. }), "{error}");
    }

    #[test]
    fn encodings_parse_from_headers() {
        assert_eq!(Encoding::from_header(None), Ok(None));
        assert_eq!(
            Encoding::from_header(Some("GZIP")),
            Ok(Some(Encoding::Gzip))
        );
        assert_eq!(
            Encoding::from_header(Some("deflate")),
            Ok(Some(Encoding::Zlib))
        );
        assert!(Encoding::from_header(Some("br")).is_err());
    }
}
