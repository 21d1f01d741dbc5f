//! Webhook endpoints, each event's delivery to each endpoint, and the attempt log. A delivery's
//! attempts are claimed by a conditional write on its version before they are sent, so a
//! redelivered trigger (EventBridge is at-least-once) never sends the same attempt twice; a
//! delivery with an attempt due is indexed (`gsi2`, `WEBHOOK_RETRIES`, by due time) for the
//! retry job.

use super::{keys, n, s, Page, PageKey, Query, Store, StoreError, Transacted, NEW_ITEM};
use crate::domain::ids::{EventId, WebhookEndpointId, WorkspaceId};
use crate::domain::webhooks::{
    AttemptStatus, DeliveryAttempt, DisabledReason, EndpointStatus, WebhookEndpoint,
    ATTEMPT_RETENTION_SECS, MAX_ENDPOINTS_PER_WORKSPACE,
};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

/// An endpoint with what only the server sees.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointRecord {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

impl EndpointRecord {
    /// Whether `event` committed after this endpoint was created: ids are time-ordered (and
    /// strictly ordered within one process, whatever their kind), so the suffixes tell.
    pub fn receives(&self, event: &EventId) -> bool {
        let suffix = |id: &str| {
            id.split_once('_')
                .map(|(_, s)| s.to_owned())
                .unwrap_or_default()
        };
        suffix(event.as_str()) > suffix(self.endpoint.id.as_str())
    }
}

#[derive(Serialize, Deserialize)]
struct EndpointItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: EndpointRecord,
    /// The first failure of the current unbroken run of failures (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failing_since: Option<i64>,
}

/// Where one event's delivery to one endpoint stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// An attempt is being made (claimed until its lease ends).
    Sending,
    /// The last attempt failed; the next is due at `due_epoch`.
    Retrying,
    Succeeded,
    /// The last attempt failed and none follows.
    Failed,
    /// The endpoint was deleted or disabled before the next attempt.
    Dropped,
}

/// One event's delivery to one endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delivery {
    pub endpoint_id: WebhookEndpointId,
    pub event_id: EventId,
    pub workspace_id: WorkspaceId,
    /// The last attempt claimed (0 before the first).
    pub attempt: u32,
    pub state: DeliveryState,
    /// When the next attempt is due, or the claim's lease ends (epoch seconds).
    pub due_epoch: Option<i64>,
    pub version: i64,
}

#[derive(Serialize, Deserialize)]
struct DeliveryItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    delivery: Delivery,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    expires_at_epoch: i64,
}

#[derive(Serialize, Deserialize)]
struct AttemptItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    attempt: DeliveryAttempt,
    expires_at_epoch: i64,
}

/// An attempt to claim: which delivery, its number, and until when the claim holds.
pub struct Claim<'a> {
    pub endpoint: &'a WebhookEndpointId,
    pub event: &'a EventId,
    pub workspace: &'a WorkspaceId,
    pub attempt: u32,
    pub lease_epoch: i64,
    pub now_epoch: i64,
}

/// What an attempt's outcome makes of its delivery.
pub struct AttemptRecord<'a> {
    pub attempt: &'a DeliveryAttempt,
    /// The next attempt's due time, when one follows.
    pub next_due_epoch: Option<i64>,
    pub now_epoch: i64,
}

fn retry_sk(due_epoch: i64, endpoint: &WebhookEndpointId, event: &EventId) -> String {
    keys::deadline_sk(due_epoch, &format!("{endpoint}#{event}"))
}

/// The retry index's shard of a delivery, by the delivery's own id (its endpoint and event).
fn retry_partition(endpoint: &WebhookEndpointId, event: &EventId) -> String {
    keys::DueIndex::WebhookRetries.partition(&format!("{endpoint}#{event}"))
}

impl Store {
    /// Creates `record` unless the workspace has its 20 already (`false`).
    pub async fn create_endpoint(&self, record: &EndpointRecord) -> Result<bool, StoreError> {
        let workspace = &record.endpoint.workspace_id;
        let items = vec![
            self.update(
                keys::workspace(workspace.as_str()),
                keys::ENDPOINT_COUNT_SK,
                "ADD endpoints :one",
                Some("attribute_not_exists(endpoints) OR endpoints < :max"),
                &[(":one", n(1)), (":max", n(MAX_ENDPOINTS_PER_WORKSPACE))],
            )?,
            self.put(
                EndpointItem {
                    pk: keys::workspace(workspace.as_str()),
                    sk: keys::endpoint_sk(record.endpoint.id.as_str()),
                    record: record.clone(),
                    failing_since: None,
                },
                Some(NEW_ITEM),
            )?,
        ];
        match self.transact(items).await? {
            Transacted::Committed => Ok(true),
            Transacted::Refused(reasons) if reasons.first().is_some_and(|r| r.failed) => Ok(false),
            Transacted::Refused(_) => Err(StoreError::Corrupt(
                "a fresh endpoint id already exists".into(),
            )),
        }
    }

    pub async fn get_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let item: Option<EndpointItem> = self
            .get(
                keys::workspace(workspace.as_str()),
                &keys::endpoint_sk(id.as_str()),
            )
            .await?;
        Ok(item.map(|i| i.record))
    }

    /// A workspace's endpoints, newest first.
    pub async fn list_endpoints(
        &self,
        workspace: &WorkspaceId,
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<EndpointRecord>, StoreError> {
        let page: Page<EndpointItem> = self
            .query_page(
                Query::prefix(
                    None,
                    keys::workspace(workspace.as_str()),
                    keys::ENDPOINT_SK_PREFIX,
                ),
                limit,
                start,
            )
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(|i| i.record).collect(),
            next: page.next,
        })
    }

    /// Deletes an endpoint (`false`: there was none).
    pub async fn delete_endpoint(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
    ) -> Result<bool, StoreError> {
        let items = vec![
            self.delete(
                keys::workspace(workspace.as_str()),
                &keys::endpoint_sk(id.as_str()),
                Some("attribute_exists(pk)"),
            )?,
            self.update(
                keys::workspace(workspace.as_str()),
                keys::ENDPOINT_COUNT_SK,
                "ADD endpoints :minus",
                None,
                &[(":minus", n(-1))],
            )?,
        ];
        Ok(matches!(self.transact(items).await?, Transacted::Committed))
    }

    /// Records an attempt's outcome on the endpoint: a success ends a run of failures, a
    /// failure starts one (or, five days into it, disables the endpoint), a 410 disables it.
    pub async fn endpoint_attempted(
        &self,
        workspace: &WorkspaceId,
        id: &WebhookEndpointId,
        succeeded: bool,
        gone: bool,
        now_epoch: i64,
        disable_after_secs: i64,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::workspace(workspace.as_str())))
            .key(keys::SK, s(keys::endpoint_sk(id.as_str())))
            .condition_expression("attribute_exists(pk)");
        let disable = |reason: DisabledReason| {
            self.client
                .update_item()
                .table_name(&self.table)
                .key(keys::PK, s(keys::workspace(workspace.as_str())))
                .key(keys::SK, s(keys::endpoint_sk(id.as_str())))
                .condition_expression("attribute_exists(pk)")
                .update_expression("SET #status = :disabled, disabled_reason = :reason")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":disabled", s(serde_plain(EndpointStatus::Disabled)))
                .expression_attribute_values(":reason", s(serde_plain(reason)))
        };
        let result = if gone {
            disable(DisabledReason::Gone).send().await.map(|_| None)
        } else if succeeded {
            update
                .update_expression("REMOVE failing_since")
                .send()
                .await
                .map(|_| None)
        } else {
            update
                .update_expression("SET failing_since = if_not_exists(failing_since, :now)")
                .expression_attribute_values(":now", n(now_epoch))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await
                .map(|output| {
                    output
                        .attributes
                        .and_then(|a| a.get("failing_since").cloned())
                        .and_then(|v| v.as_n().ok().and_then(|t| t.parse::<i64>().ok()))
                })
        };
        match result {
            Ok(Some(since)) if now_epoch - since >= disable_after_secs => {
                let _ = super::update_applied(disable(DisabledReason::Failing).send().await)?;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(error) => super::update_applied(Err(error)).map(|_| ()),
        }
    }

    pub async fn get_delivery(
        &self,
        endpoint: &WebhookEndpointId,
        event: &EventId,
    ) -> Result<Option<Delivery>, StoreError> {
        let item: Option<DeliveryItem> = self
            .get(
                keys::endpoint(endpoint.as_str()),
                &keys::delivery_sk(event.as_str()),
            )
            .await?;
        Ok(item.map(|i| i.delivery))
    }

    /// Claims attempt `attempt` of a delivery (`current`: as read; `None`: its first) until
    /// `lease_epoch`, when the retry job takes it over if no outcome was recorded. `None`: someone
    /// else claimed it first.
    pub async fn claim_attempt(
        &self,
        current: Option<&Delivery>,
        claim: Claim<'_>,
    ) -> Result<Option<Delivery>, StoreError> {
        let Claim {
            endpoint,
            event,
            workspace,
            attempt,
            lease_epoch,
            now_epoch,
        } = claim;
        let claimed = Delivery {
            endpoint_id: endpoint.clone(),
            event_id: event.clone(),
            workspace_id: workspace.clone(),
            attempt,
            state: DeliveryState::Sending,
            due_epoch: Some(lease_epoch),
            version: current.map_or(1, |c| c.version + 1),
        };
        let item = DeliveryItem {
            pk: keys::endpoint(endpoint.as_str()),
            sk: keys::delivery_sk(event.as_str()),
            delivery: claimed.clone(),
            gsi2pk: Some(retry_partition(endpoint, event)),
            gsi2sk: Some(retry_sk(lease_epoch, endpoint, event)),
            expires_at_epoch: now_epoch + ATTEMPT_RETENTION_SECS,
        };
        let put = self.versioned_put(item, current.map(|c| c.version))?;
        Ok(match self.transact(vec![put]).await? {
            Transacted::Committed => Some(claimed),
            Transacted::Refused(_) => None,
        })
    }

    /// Logs an attempt and moves its delivery on, if the claim `claimed` still holds.
    pub async fn record_attempt(
        &self,
        claimed: &Delivery,
        record: AttemptRecord<'_>,
    ) -> Result<bool, StoreError> {
        let attempt = record.attempt;
        let (state, index) = match (attempt.status, record.next_due_epoch) {
            (AttemptStatus::Succeeded, _) => (DeliveryState::Succeeded, None),
            (AttemptStatus::Failed, Some(due)) => (DeliveryState::Retrying, Some(due)),
            (AttemptStatus::Failed, None) => (DeliveryState::Failed, None),
        };
        let next = Delivery {
            state,
            due_epoch: index,
            version: claimed.version + 1,
            ..claimed.clone()
        };
        let items = vec![
            self.put(
                AttemptItem {
                    pk: keys::endpoint(attempt.endpoint_id.as_str()),
                    sk: keys::attempt_sk(attempt.id.as_str()),
                    attempt: attempt.clone(),
                    expires_at_epoch: record.now_epoch + ATTEMPT_RETENTION_SECS,
                },
                Some(NEW_ITEM),
            )?,
            self.versioned_put(
                DeliveryItem {
                    pk: keys::endpoint(claimed.endpoint_id.as_str()),
                    sk: keys::delivery_sk(claimed.event_id.as_str()),
                    delivery: next,
                    gsi2pk: index.map(|_| retry_partition(&claimed.endpoint_id, &claimed.event_id)),
                    gsi2sk: index.map(|due| retry_sk(due, &claimed.endpoint_id, &claimed.event_id)),
                    expires_at_epoch: record.now_epoch + ATTEMPT_RETENTION_SECS,
                },
                Some(claimed.version),
            )?,
        ];
        Ok(matches!(self.transact(items).await?, Transacted::Committed))
    }

    /// Ends a delivery without another attempt (its endpoint is gone or disabled).
    pub async fn drop_delivery(
        &self,
        current: &Delivery,
        now_epoch: i64,
    ) -> Result<(), StoreError> {
        let item = DeliveryItem {
            pk: keys::endpoint(current.endpoint_id.as_str()),
            sk: keys::delivery_sk(current.event_id.as_str()),
            delivery: Delivery {
                state: DeliveryState::Dropped,
                due_epoch: None,
                version: current.version + 1,
                ..current.clone()
            },
            gsi2pk: None,
            gsi2sk: None,
            expires_at_epoch: now_epoch + ATTEMPT_RETENTION_SECS,
        };
        let put = self.versioned_put(item, Some(current.version))?;
        self.transact(vec![put]).await?;
        Ok(())
    }

    /// Deliveries whose next attempt (or whose lapsed claim) is due at `now_epoch`, earliest
    /// first: (endpoint, event).
    pub async fn due_deliveries(
        &self,
        now_epoch: i64,
        limit: usize,
    ) -> Result<Vec<(WebhookEndpointId, EventId)>, StoreError> {
        let items = self
            .due_items(keys::DueIndex::WebhookRetries, now_epoch, limit)
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let text = |name: &str| match item.get(name) {
                    Some(AttributeValue::S(value)) => Some(value.as_str()),
                    _ => None,
                };
                let endpoint = text(keys::PK)?.strip_prefix("WHE#")?;
                let event = text(keys::SK)?.strip_prefix("EVT#")?;
                Some((WebhookEndpointId::parse(endpoint)?, EventId::parse(event)?))
            })
            .collect())
    }

    /// An endpoint's attempts, newest first, optionally of one event and of one status.
    pub async fn list_attempts(
        &self,
        endpoint: &WebhookEndpointId,
        event: Option<&EventId>,
        status: Option<AttemptStatus>,
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<DeliveryAttempt>, StoreError> {
        let mut query = Query::prefix(
            None,
            keys::endpoint(endpoint.as_str()),
            keys::ATTEMPT_SK_PREFIX,
        );
        if let Some(event) = event {
            query = query.with_equal("event_id", event.to_string());
        }
        if let Some(status) = status {
            query = query.with_equal("status", status.as_str().to_owned());
        }
        let page: Page<AttemptItem> = self.query_page(query, limit, start).await?;
        Ok(Page {
            items: page.items.into_iter().map(|i| i.attempt).collect(),
            next: page.next,
        })
    }
}

/// A unit enum's serde name (`disabled`).
fn serde_plain<T: Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}
