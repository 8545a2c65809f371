//! The common event model of crowsnest.
//!
//! Every input (Kubernetes audit, NDJSON, container logs, ...) is normalized into an [`Event`]:
//! a nested JSON object whose field names follow the Elastic Common Schema (ECS) where ECS has
//! a name for the thing (`@timestamp`, `event.*`, `user.*`, `source.ip`, `kubernetes.*`, ...),
//! and keeps source-specific fields under their own namespace (for example `k8s.audit.*` for
//! the full audit event). The raw input is kept in `event.original`.
//!
//! Fields are addressed by dotted paths ([`Event::get`], [`Event::set`]); [`ecs`] holds the
//! names the rest of the code base relies on.
//!
//! The model also owns the vocabulary every stage shares: [`Severity`] (the five Sigma levels),
//! the [`Alert`] and the alert record it is stored as ([`alert`]), and the one duration grammar
//! ([`duration`]) of `--since`, `since=` and `timechart span=`. [`command`] holds the containment
//! commands the server sends to node agents and the results they answer.
//!
//! ```
//! use crowsnest_model::{ecs, Event};
//! let mut event = Event::new();
//! event.set(ecs::USER_NAME, "alice".into());
//! assert_eq!(event.get_str("user.name"), Some("alice"));
//! ```

pub mod alert;
pub mod command;
pub mod duration;
pub mod ecs;
mod event;
pub mod record;
mod severity;
mod time;

pub use alert::{Alert, CorrelationInfo};
pub use duration::{parse_duration, DurationError};
pub use event::Event;
pub use severity::{Severity, SeverityError};
pub use time::{
    epoch_unit, format_timestamp, parse_timestamp, parse_timestamp_checked, EpochUnit,
    TimestampError,
};
