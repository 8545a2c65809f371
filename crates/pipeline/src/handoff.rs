//! What the WAL writer, the callers of [`crate::Pipeline::submit_as`] and the detector hand
//! each other: batches, their replies, and the detector's way of submitting alerts. Its own
//! module so that `pipeline` (the threads) and `detection` (the detector) both depend on it
//! and not on each other.

use std::ops::Range;
use std::sync::Arc;

use crowsnest_model::Event;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::disk::Disk;

/// Why a batch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue budget is spent; retry after this many seconds.
    #[error("pipeline saturated")]
    Busy(u64),
    /// The server is shutting down.
    #[error("pipeline is shutting down")]
    Closed,
    /// The data disk is below its free-space watermark (or a write found it full): nothing of
    /// the batch was acknowledged; retry after this many seconds.
    #[error("the data disk is full; retry after {0} s")]
    DiskFull(u64),
    /// The WAL append failed; nothing of the batch was acknowledged.
    #[error("wal append failed: {0}")]
    Wal(String),
}

/// Why the WAL writer refused a batch.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Below the free-space watermark, or out of space: the batch's events and records come
    /// back, so a submitter that waits (a stream listener, which cannot refuse its sender)
    /// submits them again once space returns instead of losing them.
    DiskFull(Vec<Event>, Vec<Vec<u8>>),
    /// Any other append failure.
    Wal(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DiskFull(..) => f.write_str("the data disk is full"),
            Self::Wal(message) => f.write_str(message),
        }
    }
}

impl Batch {
    /// Answers the submitter that the disk is full, handing its batch back.
    pub(crate) fn refuse_disk_full(self) {
        let _ = self
            .reply
            .send(Err(Refused::DiskFull(self.events, self.payloads)));
    }
}

/// A batch on its way to the WAL writer.
pub(crate) struct Batch {
    pub(crate) events: Vec<Event>,
    pub(crate) payloads: Vec<Vec<u8>>,
    /// Its share of the queue budget, given back when the batch is dropped.
    pub(crate) permit: OwnedSemaphorePermit,
    pub(crate) reply: oneshot::Sender<Result<Range<u64>, Refused>>,
    /// Made by the server itself (alerts): indexed, not fed back to detection.
    pub(crate) derived: bool,
}

/// Acknowledged events with their WAL positions, shared by the indexer and the detector.
pub(crate) type Acked = Arc<Vec<(u64, Event)>>;

/// A batch for the detector. When the indexer's queue had no room for it (the indexer reads it
/// back from the WAL), the detector holds its share of the queue budget until it is done, so
/// the memory of a detection backlog stays within `max_queued_bytes` too.
pub(crate) struct DetectBatch {
    pub(crate) events: Acked,
    pub(crate) _permit: Option<OwnedSemaphorePermit>,
}

/// How the detector submits alerts without ever waiting on the writer (which may be waiting
/// on the detector's queue): a weak sender, so shutdown is not held up, and `try_send`.
pub(crate) struct Submitter {
    pub(crate) tx: mpsc::WeakSender<Batch>,
    pub(crate) budget: Arc<Semaphore>,
    pub(crate) disk: Arc<Disk>,
}

/// The reply to a derived batch: its WAL positions once fsync'd.
pub(crate) type Pending = oneshot::Receiver<Result<Range<u64>, Refused>>;

impl Submitter {
    /// Queues server-made events (alerts) for the WAL; never blocks. The events are taken out
    /// of `events` only when the batch is queued: on `Busy` or `Closed` they stay with the
    /// caller for a later attempt.
    pub(crate) fn try_submit(
        &self,
        events: &mut Vec<Event>,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Pending, SubmitError> {
        if self.disk.is_full() {
            // Kept by the caller until space returns.
            return Err(SubmitError::DiskFull(1));
        }
        let cost = payloads.iter().map(Vec::len).sum::<usize>().max(1);
        let cost = u32::try_from(cost).unwrap_or(u32::MAX);
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| SubmitError::Busy(1))?;
        let tx = self.tx.upgrade().ok_or(SubmitError::Closed)?;
        let slot = tx.try_reserve().map_err(|error| match error {
            mpsc::error::TrySendError::Full(()) => SubmitError::Busy(1),
            mpsc::error::TrySendError::Closed(()) => SubmitError::Closed,
        })?;
        let (reply, answer) = oneshot::channel();
        slot.send(Batch {
            events: std::mem::take(events),
            payloads,
            permit,
            reply,
            derived: true,
        });
        Ok(answer)
    }
}
