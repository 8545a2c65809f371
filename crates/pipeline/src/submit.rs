//! What every input does with a decoded batch: run the user-defined mappings (`[[mappings]]`,
//! [`crowsnest_mapping`]), give each event its id, ingest time and (when missing) timestamp, flag a timestamp far from the ingest time, serialize it as a WAL record,
//! count it, and submit the batch. The HTTP endpoints and the stream listeners all call
//! [`Pipeline::submit_decoded`], so an event is stamped the same way whatever brought it.

use std::collections::HashMap;

use chrono::Utc;
use crowsnest_model::{ecs, format_timestamp, record, Event};
use crowsnest_normalize::{Decoded, LineError};
use serde_json::Value;

use crate::{Admission, Pipeline, SubmitError};

/// Events with their WAL records and the count per source.
type Prepared = (Vec<Event>, Vec<Vec<u8>>, HashMap<String, u64>);

impl Pipeline {
    /// Stamps, serializes and submits the decoded events, counting them per source (`label`
    /// names the input for the rejected count). Returns how many were stored durably and the
    /// decoders' errors. Serializing runs on a blocking thread.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] when the batch was not acknowledged (nothing of it is stored).
    pub async fn submit_decoded(
        &self,
        decoded: Decoded,
        label: &str,
        admission: Admission,
    ) -> Result<(usize, Vec<LineError>), SubmitError> {
        let Decoded { events, errors } = decoded;
        let metrics = self.metrics();
        metrics.count_rejected(label, errors.len() as u64);
        let window = self.store_config().clone();
        let mappings = self.mappings().clone();
        let (events, payloads, per_source, mapping_failures) =
            tokio::task::spawn_blocking(move || {
                let (events, failures) = map(events, &mappings);
                prepare(events, &window).map(|(e, p, s)| (e, p, s, failures))
            })
            .await
            .map_err(|e| SubmitError::Wal(format!("preparing the batch: {e}")))??;
        for (source, count) in mapping_failures {
            metrics
                .mapping_failures
                .get_or_create(&metrics.source(&source))
                .inc_by(count);
        }
        for (source, count) in per_source {
            metrics
                .received
                .get_or_create(&metrics.source(&source))
                .inc_by(count);
        }
        let accepted = events.len();
        if accepted > 0 {
            self.submit_as(events, payloads, admission).await?;
        }
        Ok((accepted, errors))
    }
}

/// Runs the user-defined mappings over the events and counts, per source, the events one
/// failed on (those are kept as they were before it, with `crowsnest.mapping_error`).
pub fn map(
    mut events: Vec<Event>,
    mappings: &crowsnest_mapping::Mappings,
) -> (Vec<Event>, HashMap<String, u64>) {
    let mut failures: HashMap<String, u64> = HashMap::new();
    if mappings.is_empty() {
        return (events, failures);
    }
    for event in &mut events {
        let failed = mappings.apply(event);
        if let Some(first) = failed.first() {
            let source = event.get_str(ecs::EVENT_DATASET).unwrap_or("unknown");
            tracing::debug!(%source, failure = %first, "a mapping failed; the event is kept as it was");
            *failures.entry(source.to_string()).or_default() += 1;
        }
    }
    (events, failures)
}

/// Gives each event its id, ingest time and (when missing) timestamp, flags a timestamp far
/// from the ingest time (the store keeps such events by their ingest time: see
/// [`crowsnest_store::StoreConfig::window_past_hours`]), and serializes it.
pub fn prepare(
    mut events: Vec<Event>,
    window: &crowsnest_store::StoreConfig,
) -> Result<Prepared, SubmitError> {
    let now = Utc::now();
    let now_text = format_timestamp(now);
    let mut generator = ulid::Generator::new();
    let mut payloads = Vec::with_capacity(events.len());
    let mut per_source: HashMap<String, u64> = HashMap::new();
    // Payloads start at about the previous one's size, so serializing rarely reallocates.
    let mut capacity = 1024;
    for event in &mut events {
        let id = generator
            .generate_from_datetime(now.into())
            .unwrap_or_else(|_| ulid::Ulid::new());
        event.set(ecs::EVENT_ID, Value::String(id.to_string()));
        event.set(ecs::EVENT_INGESTED, Value::String(now_text.clone()));
        match event.timestamp() {
            Some(ts) => {
                event.set(ecs::TIMESTAMP, Value::String(format_timestamp(ts)));
                if let Some(side) = window.out_of_range(ts, now) {
                    event.set(
                        crowsnest_store::OUT_OF_RANGE_FIELD,
                        Value::String(side.as_str().into()),
                    );
                }
            }
            None => event.set(ecs::TIMESTAMP, Value::String(now_text.clone())),
        }
        let source = event.get_str(ecs::EVENT_DATASET).unwrap_or("unknown");
        *per_source.entry(source.to_string()).or_default() += 1;
        let mut payload = Vec::with_capacity(capacity);
        record::encode(event, &mut payload)
            .map_err(|e| SubmitError::Wal(format!("an event could not be serialized: {e}")))?;
        capacity = payload.len() + payload.len() / 8;
        payloads.push(payload);
    }
    Ok((events, payloads, per_source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: &str) -> Event {
        serde_json::from_value(serde_json::json!({"@timestamp": ts, "event": {"dataset": "x"}}))
            .expect("event")
    }

    #[test]
    fn events_get_ids_ingest_time_and_out_of_range_flags() {
        let config = crowsnest_store::StoreConfig::default();
        let now = format_timestamp(Utc::now());
        let (events, payloads, per_source) =
            prepare(vec![event(&now), event("1800-01-01T00:00:00Z")], &config).expect("prepare");
        assert_eq!(payloads.len(), 2);
        assert_eq!(per_source["x"], 2);
        assert!(events[0].id().is_some());
        assert_ne!(events[0].id(), events[1].id());
        assert!(events[0].get(ecs::EVENT_INGESTED).is_some());
        assert_eq!(events[0].get(crowsnest_store::OUT_OF_RANGE_FIELD), None);
        assert_eq!(
            events[1].get_str(crowsnest_store::OUT_OF_RANGE_FIELD),
            Some("past")
        );
        // The record carries the flag, so the stored event shows it.
        let decoded = record::decode(&payloads[1]).expect("record");
        assert_eq!(
            decoded.get_str(crowsnest_store::OUT_OF_RANGE_FIELD),
            Some("past")
        );
    }
}
