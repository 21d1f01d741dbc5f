//! Publishing: each event is one EventBridge `PutEvents` entry (`Source: billing`,
//! `DetailType` its type, `Detail` its JSON, `Time` its timestamp) on the configured bus. Entries
//! EventBridge refused are sent again; an outbox item is marked published only once accepted.
//! Deployed, the table's stream invokes [`from_stream`] with batches of new outbox items.

use crate::app::App;
use crate::clock::rfc3339;
use crate::domain::events::Event;
use crate::http::ApiError;
use crate::routes::{BatchItemFailure, JobOutcome};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;
use std::time::Duration;

/// Every event's `Source`.
pub const SOURCE: &str = "billing";
/// `PutEvents` takes at most 10 entries.
const ENTRIES_PER_CALL: usize = 10;
/// Rounds of sending the entries EventBridge refused (throttled, internal failure).
const PUT_ATTEMPTS: u32 = 4;

/// A handle on the event bus. Built once per cold start, on first use.
#[derive(Clone, Debug)]
pub struct Publisher {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl Publisher {
    /// `endpoint`: moto's address in tests and on the local stage; `None`: EventBridge.
    pub async fn connect(endpoint: Option<&str>, bus_name: &str) -> Self {
        Self {
            client: aws_sdk_eventbridge::Client::new(&crate::aws::sdk_config(endpoint).await),
            bus_name: bus_name.to_owned(),
        }
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    /// Publishes `events`; returns the indexes of those still refused after the retries.
    pub async fn publish(&self, events: &[Event]) -> Result<Vec<usize>, ApiError> {
        let mut refused = Vec::new();
        for (chunk_index, chunk) in events.chunks(ENTRIES_PER_CALL).enumerate() {
            let offset = chunk_index * ENTRIES_PER_CALL;
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            for attempt in 0..PUT_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                let entries = pending
                    .iter()
                    .map(|&i| self.entry(&chunk[i]))
                    .collect::<Result<Vec<_>, _>>()?;
                let output = self
                    .client
                    .put_events()
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| ApiError::Internal(format!("eventbridge PutEvents: {e:?}")))?;
                if output.failed_entry_count() == 0 {
                    pending.clear();
                    break;
                }
                // Result entries are in the request's order; a failed one has an error code.
                pending = output
                    .entries()
                    .iter()
                    .zip(&pending)
                    .filter(|(result, _)| result.error_code().is_some())
                    .map(|(_, &i)| i)
                    .collect();
                tracing::warn!(
                    refused = pending.len(),
                    attempt,
                    "eventbridge refused entries"
                );
                if pending.is_empty() {
                    break;
                }
            }
            refused.extend(pending.into_iter().map(|i| offset + i));
        }
        Ok(refused)
    }

    fn entry(&self, event: &Event) -> Result<PutEventsRequestEntry, ApiError> {
        let time = time::OffsetDateTime::parse(
            &event.timestamp,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| aws_sdk_eventbridge::primitives::DateTime::from_secs(t.unix_timestamp()))
        .map_err(|e| ApiError::Internal(format!("an event's timestamp is malformed: {e}")))?;
        Ok(PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(event.event_type().as_str())
            .detail(event.to_json())
            .time(time)
            .event_bus_name(&self.bus_name)
            .build())
    }
}

/// Publishes events and marks the accepted ones; returns the indexes EventBridge refused.
pub async fn publish_and_mark(
    app: &App,
    publisher: &Publisher,
    events: &[Event],
) -> Result<Vec<usize>, ApiError> {
    let refused = publisher.publish(events).await?;
    let at = rfc3339(app.clock.now());
    for (index, event) in events.iter().enumerate() {
        if !refused.contains(&index) {
            // Published already; a failed mark only leaves it looking unpublished.
            if let Err(error) = app.store.mark_published(&event.id, &at).await {
                tracing::warn!(event = %event.id, %error, "could not mark an event published");
            }
        }
    }
    Ok(refused)
}

/// The `events-publish` job: a DynamoDB Streams batch. Each inserted outbox item's event is
/// published; the records whose entry EventBridge kept refusing are reported as batch item
/// failures, so the stream retries from them.
pub async fn from_stream(app: &App, payload: Value) -> Result<JobOutcome, ApiError> {
    let mut events = Vec::new();
    let mut sequences = Vec::new();
    for record in payload["Records"].as_array().into_iter().flatten() {
        if record["eventName"] != "INSERT" {
            continue;
        }
        let image = &record["dynamodb"]["NewImage"];
        let is_outbox = image["pk"]["S"]
            .as_str()
            .is_some_and(|pk| pk.starts_with(crate::store::keys::OUTBOX_PK_PREFIX));
        let Some(text) = image["event"]["S"].as_str().filter(|_| is_outbox) else {
            continue;
        };
        let sequence = record["dynamodb"]["SequenceNumber"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match Event::from_json(text) {
            Ok(event) => {
                events.push(event);
                sequences.push(sequence);
            }
            // Retrying cannot fix it: logged and passed over.
            Err(error) => tracing::error!(%sequence, %error, "an outbox item is not an event"),
        }
    }
    if events.is_empty() {
        return Ok(JobOutcome {
            handled: 0,
            batch_item_failures: Some(Vec::new()),
        });
    }
    let publisher = app
        .publisher()
        .await
        .ok_or_else(|| ApiError::Internal("EVENT_BUS_NAME is not configured".into()))?;
    let refused = publish_and_mark(app, publisher, &events).await?;
    Ok(JobOutcome {
        handled: events.len() - refused.len(),
        batch_item_failures: Some(
            refused
                .into_iter()
                .map(|i| BatchItemFailure {
                    item_identifier: sequences[i].clone(),
                })
                .collect(),
        ),
    })
}

/// The `webhooks-deliver` job: an EventBridge event whose `detail` is a billing event.
pub async fn on_bus_event(app: &App, payload: Value) -> Result<usize, ApiError> {
    let Some(detail) = payload.get("detail").filter(|d| d.is_object()) else {
        return Ok(0);
    };
    if detail.as_object().is_some_and(|d| d.is_empty()) {
        return Ok(0);
    }
    let event = Event::from_value(detail.clone())
        .map_err(|e| ApiError::InvalidRequest(format!("not a billing event: {e}")))?;
    super::deliver(app, &event).await
}
