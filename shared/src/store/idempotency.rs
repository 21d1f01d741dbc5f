//! Idempotency records: the first response to a POST with an `Idempotency-Key`, kept for replay.

use super::{keys, n, s, Item, Store, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

/// What claiming a key found.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// Ours: run the request, then `complete` or `release`.
    Claimed,
    /// The first request with this key finished: answer as it did (its own headers as
    /// `(name, value)` pairs).
    Replay {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// The first request with this key is still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

const IN_PROGRESS: &str = "in_progress";
const DONE: &str = "done";

/// Lifetimes of a claim, in seconds.
pub struct Lifetimes {
    /// How long a claim blocks retries before a crashed request's key may be taken over.
    pub lease_secs: i64,
    /// How long the finished response is replayed.
    pub retain_secs: i64,
}

impl Store {
    /// Claims `key` for a request with this `fingerprint`, or reports what holds it.
    pub async fn claim_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        owner: &str,
        now_epoch: i64,
        lifetimes: &Lifetimes,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(keys::PK, s(keys::idempotency(scope, key)))
            .item(keys::SK, s(keys::IDEMPOTENCY_SK))
            .item("fingerprint", s(fingerprint))
            .item("state", s(IN_PROGRESS))
            // Who holds the claim: only that request may complete or release it, even after its
            // lease lapsed and a retry took the key over.
            .item("owner", s(owner))
            .item("lease_until", n(now_epoch + lifetimes.lease_secs))
            .item(keys::TTL_ATTRIBUTE, n(now_epoch + lifetimes.retain_secs))
            // Free, expired (TTL deletion lags), or abandoned by a request that crashed.
            .condition_expression(
                "attribute_not_exists(pk) OR #ttl < :now OR (#state = :in_progress AND lease_until < :now)",
            )
            .expression_attribute_names("#ttl", keys::TTL_ATTRIBUTE)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now", n(now_epoch))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Claim::Claimed),
            Err(error) => error,
        };
        let existing = match error.as_service_error() {
            Some(e) if e.is_conditional_check_failed_exception() => match e {
                aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                    c.item().cloned()
                }
                _ => None,
            },
            _ => return Err(StoreError::sdk(error)),
        };
        let existing = match existing {
            Some(item) => item,
            // DynamoDB Local may omit the old item: read it.
            None => self
                .read_record(scope, key)
                .await?
                .ok_or(StoreError::Contention)?,
        };
        Ok(classify(&existing, fingerprint, owner))
    }

    async fn read_record(&self, scope: &str, key: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::idempotency(scope, key)))
            .key(keys::SK, s(keys::IDEMPOTENCY_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(output.item)
    }

    /// Stores the response of the request that holds the claim.
    pub async fn complete_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        status: u16,
        body: &str,
        headers: &[(&str, String)],
    ) -> Result<(), StoreError> {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let headers = serde_json::to_string(&headers)
            .map_err(|e| StoreError::Corrupt(format!("response headers: {e}")))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::idempotency(scope, key)))
            .key(keys::SK, s(keys::IDEMPOTENCY_SK))
            .update_expression(
                "SET #state = :done, response_status = :status, response_body = :body, response_headers = :headers",
            )
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":done", s(DONE))
            .expression_attribute_values(":status", n(i64::from(status)))
            .expression_attribute_values(":body", s(body))
            .expression_attribute_values(":headers", s(headers))
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        ignore_lost_claim(result.map(|_| ()))
    }

    /// Gives the key back (the request failed without effect), so a retry can run.
    pub async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::idempotency(scope, key)))
            .key(keys::SK, s(keys::IDEMPOTENCY_SK))
            .condition_expression("#owner = :owner AND #state = :in_progress")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .send()
            .await;
        ignore_lost_claim(result.map(|_| ()))
    }
}

/// A claim taken over by a retry (after its lease lapsed) is the retry's now: this request's
/// completion or release quietly yields to it.
fn ignore_lost_claim<E>(
    result: Result<
        (),
        aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    >,
) -> Result<(), StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::fmt::Debug,
{
    match result {
        Err(error)
            if error.as_service_error().and_then(|e| e.code())
                != Some("ConditionalCheckFailedException") =>
        {
            Err(StoreError::sdk(error))
        }
        _ => Ok(()),
    }
}

fn classify(item: &Item, fingerprint: &str, owner: &str) -> Claim {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.as_str()),
        _ => None,
    };
    // Held by this very request: an earlier attempt of this put was applied and its answer
    // lost, and the SDK's retry was refused by the claim that attempt made.
    if text("owner") == Some(owner) && text("state") == Some(IN_PROGRESS) {
        return Claim::Claimed;
    }
    if text("fingerprint") != Some(fingerprint) {
        return Claim::Mismatch;
    }
    if text("state") != Some(DONE) {
        return Claim::InProgress;
    }
    let status = match item.get("response_status") {
        Some(AttributeValue::N(number)) => number.parse().unwrap_or(500),
        _ => 500,
    };
    Claim::Replay {
        status,
        body: text("response_body").unwrap_or_default().to_owned(),
        headers: text("response_headers")
            .and_then(|h| serde_json::from_str(h).ok())
            .unwrap_or_default(),
    }
}
