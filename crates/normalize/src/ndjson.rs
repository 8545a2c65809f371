//! Newline-delimited JSON: one JSON object per line, each routed to the decoder its shape calls
//! for.
//!
//! Lines are split on `\n`; a trailing `\r` is dropped, so `\r\n` bodies work; a UTF-8 byte
//! order mark before the first line is ignored; lines of only whitespace are skipped. Every
//! other line yields events or a [`LineError`] with its 1-based line number, in this order of
//! checks: length ([`Limits::max_line_bytes`]), UTF-8, nesting depth, JSON syntax, "is an
//! object". A line never affects its neighbours.
//!
//! Routing (unless `source` forces one decoder, see [`crate::known_sources`]):
//!
//! 1. a Kubernetes audit `Event` → [`crate::k8s_audit`];
//! 2. an audit `EventList` → one event per item (each keeps its item's exact text as
//!    `event.original`; a bad item is an error of the line naming `items[N]`);
//! 3. an EKS, AKS or GKE envelope, or any CloudWatch Logs subscription batch →
//!    [`crate::managed`] (one event per record of a batch);
//! 4. anything else → [`crate::generic`].
//!
//! A line that holds many events (an `EventList`, a batch) yields all of them; one that holds
//! none (an empty `EventList`, a CloudWatch `CONTROL_MESSAGE`) yields neither event nor error.

use serde_json::Value;

use crate::error::{describe, LineError};
use crate::k8s_audit::{looks_like_audit_event, map_audit_event, Origin};
use crate::limits::{check_line, parse_json, Limits};
use crate::managed;
use crate::webhook::{decode_list_line, is_event_list};
use crate::{finish, generic, Decoded};

/// How the lines of one body are routed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// Detect each line's shape; generic events get this dataset.
    Auto { dataset: String },
    /// Every line is a native audit event.
    Audit,
    /// Every line is from this managed service (`eks`, `aks`, `gke`).
    Managed(&'static str),
    /// Every line is a generic event.
    Generic,
}

impl Route {
    fn from_source(source: Option<&str>) -> Self {
        match source {
            // `k8s-audit` is the endpoint's name; accept it (and `k8s_audit`) as the source too.
            Some("kubernetes.audit" | "k8s-audit" | "k8s_audit") => Route::Audit,
            Some("eks") => Route::Managed("eks"),
            Some("aks") => Route::Managed("aks"),
            Some("gke") => Route::Managed("gke"),
            Some("generic") => Route::Generic,
            Some(other) if !other.is_empty() => Route::Auto {
                dataset: other.to_string(),
            },
            _ => Route::Auto {
                dataset: generic::DATASET.to_string(),
            },
        }
    }
}

/// Decodes an NDJSON body.
pub(crate) fn decode(body: &[u8], source: Option<&str>, limits: &Limits) -> Decoded {
    let route = Route::from_source(source);
    let mut out = Decoded::default();
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if is_blank(line) {
            continue;
        }
        decode_line(line, index + 1, &route, limits, &mut out);
    }
    out
}

/// Whether a line is skipped: empty or only ASCII whitespace.
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

fn decode_line(raw: &[u8], line: usize, route: &Route, limits: &Limits, out: &mut Decoded) {
    let text = match check_line(raw, limits) {
        Ok(text) => text,
        Err(reason) => return out.errors.push(LineError::new(line, reason)),
    };
    let obj = match parse_json(text, limits) {
        Ok(Value::Object(obj)) => obj,
        Ok(other) => {
            let reason = format!("expected a JSON object, found {}", describe(&other));
            return out.errors.push(LineError::new(line, reason));
        }
        Err(reason) => return out.errors.push(LineError::new(line, reason)),
    };
    let native = |obj, origin: Origin, out: &mut Decoded| match map_audit_event(obj, &origin) {
        Ok(event) => out.events.push(finish(event, text, limits)),
        Err(error) => out.errors.push(error.at(line)),
    };
    match route {
        Route::Auto { dataset } => {
            if looks_like_audit_event(&obj) {
                native(obj, Origin::default(), out);
            } else if is_event_list(&obj) {
                decode_list_line(text, line, &Origin::default(), limits, out);
            } else if let Some(shape) = managed::detect(&obj) {
                managed::decode(shape, obj, text, line, dataset, limits, out);
            } else {
                let event = generic::map_generic(obj, dataset);
                out.events.push(finish(event, text, limits));
            }
        }
        Route::Audit => {
            let is_event = looks_like_audit_event(&obj)
                || obj.get("kind").and_then(Value::as_str) == Some("Event");
            if is_event {
                native(obj, Origin::default(), out);
            } else if is_event_list(&obj) {
                decode_list_line(text, line, &Origin::default(), limits, out);
            } else {
                let reason = "expected a Kubernetes audit `Event` or `EventList` (`kind: Event`, `apiVersion: audit.k8s.io/*`)";
                out.errors.push(LineError::new(line, reason));
            }
        }
        Route::Managed(provider) => {
            let origin = || Origin {
                cloud_provider: Some(cloud_of(provider)),
                ..Origin::default()
            };
            if let Some(shape) = managed::detect_forced(provider, &obj) {
                managed::decode(shape, obj, text, line, generic::DATASET, limits, out);
            } else if *provider != "gke" && looks_like_audit_event(&obj) {
                native(obj, origin(), out);
            } else if *provider != "gke" && is_event_list(&obj) {
                decode_list_line(text, line, &origin(), limits, out);
            } else {
                out.errors
                    .push(LineError::new(line, managed::expected_shape(provider)));
            }
        }
        Route::Generic => {
            let event = generic::map_generic(obj, generic::DATASET);
            out.events.push(finish(event, text, limits));
        }
    }
}

fn cloud_of(provider: &str) -> &'static str {
    match provider {
        "eks" => "aws",
        "aks" => "azure",
        _ => "gcp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_pick_routes() {
        assert_eq!(Route::from_source(Some("eks")), Route::Managed("eks"));
        assert_eq!(Route::from_source(Some("kubernetes.audit")), Route::Audit);
        assert_eq!(Route::from_source(Some("k8s-audit")), Route::Audit);
        assert_eq!(
            Route::from_source(Some("myapp")),
            Route::Auto {
                dataset: "myapp".to_string()
            }
        );
        assert_eq!(
            Route::from_source(None),
            Route::Auto {
                dataset: "ndjson".to_string()
            }
        );
    }
}
