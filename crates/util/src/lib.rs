//! Small helpers the crates share that do I/O or draw random numbers, which `crowsnest-model`
//! (the root of the workspace, pure data and parsing) does not:
//!
//! * [`write_atomic`]: replace a file's contents atomically and durably (state files, cursors,
//!   tokens, spool batches, the store's commit marker);
//! * [`Backoff`]: retry delays growing exponentially, with full jitter (the forwarding outputs
//!   and the agent's shipper and Docker reconnects);
//! * [`glob`]: the `*`/`?` match of suppressions, playbooks, guards and mapping datasets.

mod atomic;
mod backoff;
mod glob;

pub use atomic::{write_atomic, AtomicWrite};
pub use backoff::{Backoff, MAX_RETRY_AFTER};
pub use glob::glob;
