//! The `usage-counters` job: the table's stream, applying each debit's usage count (recorded on
//! its item, see [`crate::store::counters`]) to the usage counters once.

use crate::app::App;
use crate::domain::usage::UsageCount;
use crate::http::ApiError;
use crate::routes::{BatchItemFailure, JobOutcome};
use crate::store::counters::{Counted, USAGE_COUNT};
use serde_json::{Map, Value};

/// Applies the counts of a DynamoDB Streams batch. Records without a count are passed over; if
/// the counters can't be written, the whole batch is reported failed from its first counted
/// record, so the stream delivers it again (and the markers keep what was applied from being
/// applied twice).
pub async fn from_stream(app: &App, payload: Value) -> Result<JobOutcome, ApiError> {
    let mut counted = Vec::new();
    let mut first_sequence = None;
    for record in payload["Records"].as_array().into_iter().flatten() {
        let image = &record["dynamodb"]["NewImage"];
        let Some(stored) = image.get(USAGE_COUNT) else {
            continue;
        };
        let sequence = record["dynamodb"]["SequenceNumber"].as_str().unwrap_or("");
        let source = image["pk"]["S"].as_str().unwrap_or_default().to_owned();
        match serde_json::from_value::<UsageCount>(plain(stored)) {
            Ok(count) => {
                first_sequence.get_or_insert_with(|| sequence.to_owned());
                counted.push(Counted { source, count });
            }
            // Retrying cannot fix it: logged and passed over.
            Err(error) => {
                tracing::error!(%sequence, %source, %error, "a usage count does not parse")
            }
        }
    }
    let failures = match app.store.apply_usage(&counted).await {
        Ok(()) => Vec::new(),
        Err(error) => {
            tracing::error!(%error, records = counted.len(), "usage counters not applied; retried");
            first_sequence
                .into_iter()
                .map(|item_identifier| BatchItemFailure { item_identifier })
                .collect()
        }
    };
    Ok(JobOutcome {
        handled: if failures.is_empty() {
            counted.len()
        } else {
            0
        },
        batch_item_failures: Some(failures),
    })
}

/// A value in DynamoDB's JSON form (`{"S": …}`, `{"N": …}`, `{"M": …}`, …) as plain JSON.
fn plain(value: &Value) -> Value {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return Value::Null;
    };
    match kind.as_str() {
        "S" => inner.clone(),
        "N" => inner
            .as_str()
            .and_then(|n| n.parse::<i64>().ok())
            .map_or(Value::Null, Value::from),
        "BOOL" => inner.clone(),
        "M" => Value::Object(
            inner
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, v)| (name.clone(), plain(v)))
                .collect::<Map<_, _>>(),
        ),
        "L" => Value::Array(inner.as_array().into_iter().flatten().map(plain).collect()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::plain;
    use serde_json::json;

    #[test]
    fn dynamodb_json_reads_as_plain_json() {
        let stored = json!({"M": {
            "day": {"S": "2026-03-01"},
            "agent_id": {"NULL": true},
            "lines": {"L": [{"M": {"quantity": {"N": "10"}, "ok": {"BOOL": true}}}]}
        }});
        assert_eq!(
            plain(&stored),
            json!({"day": "2026-03-01", "agent_id": null, "lines": [{"quantity": 10, "ok": true}]})
        );
    }
}
