//! The crowsnest ingest pipeline: everything between a decoded batch and the store, detection
//! and the forwarding outputs. The HTTP API and the stream listeners (`crowsnest-server`) only
//! decode bytes and call [`Pipeline::submit_decoded`]; nothing here knows about HTTP.
//!
//! ```text
//!  decoded batch ─► submit_decoded: id, ingest time, timestamp flags, WAL record (submit.rs)
//!      │             (bounded queue in bytes: full = SubmitError::Busy; disk below its
//!      │              watermark = SubmitError::DiskFull)
//!      ▼
//!  WAL writer thread: group commit, one write + fsync, then the acknowledgement  (pipeline.rs)
//!      ├─► detector thread: Sigma rules, correlation, alerts back through the WAL (detection.rs)
//!      ├─► indexer thread: Store::add / commit, WAL truncation; a failed commit rolls back
//!      │     and is retried from the WAL; a full in-memory queue is read back from the WAL
//!      └─► output threads: follow the WAL with their own cursors                  (outputs.rs)
//! ```
//!
//! * [`pipeline`]: the threads and the back-pressure; replays the WAL into the store and the
//!   detector on start, so `kill -9` loses no acknowledged event and duplicates none.
//! * [`submit`]: what every input does with a decoded batch (stamping, serializing, metrics).
//! * [`detection`]: the detector thread, its checkpoint and the alert hand-back.
//! * [`dedup`]: batch ids of shippers that retry (the agent), stored once.
//! * [`outputs`]: forwarding sinks fed from the WAL.
//! * [`disk`]: free space of the data directory and the ingest watermark.
//! * [`metrics`]: the Prometheus metrics of the process.

pub mod baselines;
pub mod dedup;
pub mod detection;
pub mod disk;
mod handoff;
pub mod metrics;
pub mod outputs;
pub mod pipeline;
pub mod submit;

pub use pipeline::{Admission, Pipeline, PipelineConfig, Problem, SubmitError};
