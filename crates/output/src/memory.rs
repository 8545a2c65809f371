//! An in-memory sink for tests of whatever drives sinks (the server's output worker): it
//! keeps what it receives and fails on cue, with no network.
//!
//! ```
//! use crowsnest_output::{memory::MemorySink, Sink, SinkError};
//! use crowsnest_model::Event;
//! let sink = MemorySink::default();
//! let mut boxed: Box<dyn Sink> = Box::new(sink.clone());
//! sink.fail_next(SinkError::retryable("down"));
//! assert!(boxed.send(&[Event::new()]).is_err());
//! assert_eq!(boxed.send(&[Event::new()]).expect("second try").delivered, 1);
//! assert_eq!(sink.events().len(), 1);
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use crowsnest_model::Event;

use crate::{Delivery, Sink, SinkError};

#[derive(Debug, Default)]
struct State {
    events: Vec<Event>,
    batches: usize,
    failures: VecDeque<SinkError>,
}

/// Keeps every delivered event; clones share the same store, so a test keeps one clone and
/// hands the other to the code under test.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    state: Arc<Mutex<State>>,
}

impl MemorySink {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// Makes the next `send` fail with `error` (queued: several calls fail several sends).
    pub fn fail_next(&self, error: SinkError) {
        self.with(|s| s.failures.push_back(error));
    }

    /// Every event delivered so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.with(|s| s.events.clone())
    }

    /// How many `send` calls were made, failed ones included.
    pub fn batches(&self) -> usize {
        self.with(|s| s.batches)
    }
}

impl Sink for MemorySink {
    fn send(&mut self, batch: &[Event]) -> Result<Delivery, SinkError> {
        self.with(|s| {
            s.batches += 1;
            if let Some(error) = s.failures.pop_front() {
                return Err(error);
            }
            s.events.extend_from_slice(batch);
            Ok(Delivery::all(batch.len()))
        })
    }
}
