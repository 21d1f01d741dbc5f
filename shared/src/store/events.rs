//! The outbox: each billing event is an item written in the same transaction as its cause. The
//! table's stream carries new items to `events-publish`; on the local stage, the committed
//! events of this process are also handed to the in-process pipeline (the tap).

use super::{keys, s, Item, Store, StoreError, NEW_ITEM};
use crate::domain::events::{Event, EventPayload, EventType};
use crate::domain::ids::{BillingAccountId, EventId, WorkspaceId};
use crate::domain::webhooks::ATTEMPT_RETENTION_SECS;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, PoisonError};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// An outbox item. `event` is the event's JSON: the exact bytes published and delivered.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct OutboxItem {
    pk: String,
    sk: String,
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub workspace_id: Option<WorkspaceId>,
    pub billing_account_id: BillingAccountId,
    pub event: String,
    pub created_at: String,
    /// Set once EventBridge accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    /// Kept as long as a delivery may still need it (its last retry plus the attempt log's age).
    expires_at_epoch: i64,
}

impl OutboxItem {
    /// The outbox item of `event`, as a stream record's new image carries it.
    pub fn from_item(item: Item) -> Result<Self, StoreError> {
        serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(StoreError::codec)
    }
}

/// Where this process's committed events go, when something listens (the local pipeline).
#[derive(Default)]
pub struct EventTap(Mutex<Option<UnboundedSender<String>>>);

impl EventTap {
    /// From now on, every event this process commits is sent here (one listener at a time).
    pub fn listen(&self) -> UnboundedReceiver<String> {
        let (sender, receiver) = unbounded_channel();
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
        receiver
    }

    /// Hands the outbox items among a committed transaction's items to the listener.
    pub(crate) fn committed(&self, items: &[TransactWriteItem]) {
        let guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = guard.as_ref() else {
            return;
        };
        for item in items {
            let Some(put) = item.put() else { continue };
            let fields = put.item();
            let is_outbox = matches!(fields.get(keys::PK), Some(AttributeValue::S(pk)) if pk.starts_with(keys::OUTBOX_PK_PREFIX));
            if let (true, Some(AttributeValue::S(event))) = (is_outbox, fields.get("event")) {
                let _ = sender.send(event.clone());
            }
        }
    }
}

impl Store {
    /// The outbox item of a new event, for the transaction of its cause. Its id is made from
    /// `millis`, its `timestamp` is `created_at`.
    pub(crate) fn outbox_put(
        &self,
        payload: EventPayload,
        workspace: Option<&WorkspaceId>,
        account: &BillingAccountId,
        created_at: &str,
        millis: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let event = Event::new(payload, workspace, account, created_at, millis);
        let epoch = i64::try_from(millis / 1000).unwrap_or(i64::MAX);
        self.put(
            OutboxItem {
                pk: keys::outbox(event.id.as_str()),
                sk: keys::OUTBOX_SK.to_owned(),
                id: event.id.clone(),
                kind: event.event_type(),
                workspace_id: event.workspace_id.clone(),
                billing_account_id: event.billing_account_id.clone(),
                event: event.to_json(),
                created_at: created_at.to_owned(),
                published_at: None,
                // Deliveries retry for about 28 hours (52 with a long Retry-After).
                expires_at_epoch: epoch.saturating_add(ATTEMPT_RETENTION_SECS),
            },
            Some(NEW_ITEM),
        )
    }

    /// An event as recorded.
    pub async fn outbox_event(&self, id: &EventId) -> Result<Option<OutboxItem>, StoreError> {
        self.get(keys::outbox(id.as_str()), keys::OUTBOX_SK).await
    }

    /// Records that EventBridge accepted the event.
    pub async fn mark_published(&self, id: &EventId, at: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::outbox(id.as_str())))
            .key(keys::SK, s(keys::OUTBOX_SK))
            .update_expression("SET published_at = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", s(at))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    /// Every outbox item of the table (tests and tools: a scan).
    pub async fn all_events(&self) -> Result<Vec<OutboxItem>, StoreError> {
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", s(keys::OUTBOX_PK_PREFIX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::sdk)?;
            for item in output.items.unwrap_or_default() {
                events.push(OutboxItem::from_item(item)?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        events.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(events)
    }
}
