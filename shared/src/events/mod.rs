//! Events out: publishing the outbox to EventBridge ([`publish`]), delivering each event to the
//! subscribed webhook endpoints of its workspace and retrying failed attempts (here), over the
//! wire ([`sender`]); on the local stage all of it runs in-process ([`local`]).
//!
//! A delivery's attempts are claimed in the store before they are sent, so the at-least-once
//! triggers (EventBridge, the retry job, a lapsed claim) never send one attempt twice, and every
//! attempt of an event carries the same `webhook-id` (the event id) and body bytes.

pub mod local;
pub mod publish;
pub mod sender;

use crate::app::App;
use crate::clock::{rfc3339, unix_millis};
use crate::config::Stage;
use crate::domain::events::{Event, EventType};
use crate::domain::ids::{DeliveryAttemptId, EventId, WorkspaceId};
use crate::domain::webhooks::{
    random_jitter, retry_delay_secs, signature, AttemptStatus, DeliveryAttempt, EndpointStatus,
    DELIVERY_TIMEOUT_SECS, FAILING_DISABLE_SECS, MAX_ATTEMPTS,
};
use crate::http::ApiError;
use crate::store::webhooks::{AttemptRecord, Claim, Delivery, DeliveryState, EndpointRecord};
use futures::stream::{self, StreamExt};
use sender::{AddressPolicy, Signed};

/// A claimed attempt that recorded no outcome by then (its process died) is taken over.
const CLAIM_LEASE_SECS: i64 = DELIVERY_TIMEOUT_SECS as i64 + 45;
/// Attempts sent at once by one invocation.
const PARALLEL_ATTEMPTS: usize = 16;
/// Due deliveries one retry run takes on (the next run, a minute later, takes the rest).
const RETRIES_PER_RUN: usize = 200;

/// Which hosts this stage may deliver to.
pub fn address_policy(stage: &Stage) -> AddressPolicy {
    match stage {
        Stage::Local => AddressPolicy::Any,
        Stage::Deployed(_) => AddressPolicy::GlobalOnly,
    }
}

/// Makes the first attempt of `event` to every endpoint subscribed to it; returns how many
/// endpoints it was sent to.
pub async fn deliver(app: &App, event: &Event) -> Result<usize, ApiError> {
    let body = event.to_json();
    let endpoints = subscribed_endpoints(app, event).await?;
    let sent = stream::iter(endpoints)
        .map(|endpoint| {
            let body = &body;
            async move {
                let now = app.clock.now().unix_timestamp();
                let claimed = app
                    .store
                    .claim_attempt(
                        None,
                        Claim {
                            endpoint: &endpoint.endpoint.id,
                            event: &event.id,
                            workspace: &endpoint.endpoint.workspace_id,
                            attempt: 1,
                            lease_epoch: now + CLAIM_LEASE_SECS,
                            now_epoch: now,
                        },
                    )
                    .await?;
                match claimed {
                    // Delivered by another trigger of the same event.
                    None => Ok::<usize, ApiError>(0),
                    Some(claimed) => {
                        send_and_record(app, &endpoint, event.event_type(), body, &claimed).await?;
                        Ok(1)
                    }
                }
            }
        })
        .buffer_unordered(PARALLEL_ATTEMPTS)
        .collect::<Vec<_>>()
        .await;
    let mut count = 0;
    for result in sent {
        count += result?;
    }
    Ok(count)
}

/// The enabled endpoints of the event's workspace (of every workspace whose default account
/// it is about, for an event without one) that subscribe to its type and existed when it
/// committed.
async fn subscribed_endpoints(app: &App, event: &Event) -> Result<Vec<EndpointRecord>, ApiError> {
    let workspaces: Vec<WorkspaceId> = match &event.workspace_id {
        Some(workspace) => vec![workspace.clone()],
        None => {
            let mut defaults = Vec::new();
            for workspace in app
                .store
                .linked_workspace_ids(&event.billing_account_id)
                .await?
            {
                if let Some(found) = app.store.get_workspace(&workspace).await? {
                    if found.default_billing_account_id == event.billing_account_id {
                        defaults.push(workspace);
                    }
                }
            }
            defaults
        }
    };
    let mut subscribed = Vec::new();
    for workspace in workspaces {
        let page = app.store.list_endpoints(&workspace, 100, None).await?;
        subscribed.extend(page.items.into_iter().filter(|e| {
            e.endpoint.status == EndpointStatus::Enabled
                && e.endpoint.events.includes(event.event_type())
                && e.receives(&event.id)
        }));
    }
    Ok(subscribed)
}

/// Sends the claimed attempt, signed now, and records what came of it.
async fn send_and_record(
    app: &App,
    endpoint: &EndpointRecord,
    event_type: EventType,
    body: &str,
    claimed: &Delivery,
) -> Result<(), ApiError> {
    let now = app.clock.now();
    let timestamp = now.unix_timestamp();
    let webhook_id = claimed.event_id.as_str();
    let signed = signature(&endpoint.secret, webhook_id, timestamp, body.as_bytes())
        .ok_or_else(|| ApiError::Internal("an endpoint's secret is malformed".into()))?;
    let sent = sender::post(
        &endpoint.endpoint.url,
        address_policy(&app.config.stage),
        Signed {
            webhook_id,
            timestamp,
            signature: &signed,
        },
        bytes::Bytes::from(body.to_owned()),
    )
    .await;
    let succeeded = sent.succeeded();
    let gone = sent.response_status == Some(410);
    let delay = if succeeded || gone {
        None
    } else {
        retry_delay_secs(claimed.attempt, sent.retry_after_secs, random_jitter())
    };
    let next_due_epoch = delay.map(|d| timestamp + d);
    let attempt = DeliveryAttempt {
        id: DeliveryAttemptId::generate(unix_millis(now)),
        endpoint_id: claimed.endpoint_id.clone(),
        event_id: claimed.event_id.clone(),
        event_type: event_type.as_str().to_owned(),
        attempt: claimed.attempt,
        status: if succeeded {
            AttemptStatus::Succeeded
        } else {
            AttemptStatus::Failed
        },
        response_status: sent.response_status,
        error: sent.error,
        duration_ms: sent.duration_ms,
        attempted_at: rfc3339(now),
        next_attempt_at: next_due_epoch
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .map(rfc3339),
    };
    tracing::info!(
        endpoint = %claimed.endpoint_id,
        event = %claimed.event_id,
        attempt = claimed.attempt,
        status = ?sent.response_status,
        error = ?sent.error,
        "webhook attempt"
    );
    app.store
        .record_attempt(
            claimed,
            AttemptRecord {
                attempt: &attempt,
                next_due_epoch,
                now_epoch: timestamp,
            },
        )
        .await?;
    app.store
        .endpoint_attempted(
            &claimed.workspace_id,
            &claimed.endpoint_id,
            succeeded,
            gone,
            timestamp,
            FAILING_DISABLE_SECS,
        )
        .await?;
    Ok(())
}

/// Makes every attempt that is due (and takes over lapsed claims); returns how many it sent.
pub async fn retry_due(app: &App) -> Result<usize, ApiError> {
    let now = app.clock.now().unix_timestamp();
    let due = app.store.due_deliveries(now, RETRIES_PER_RUN).await?;
    let results = stream::iter(due)
        .map(|(endpoint, event)| async move { retry_one(app, &endpoint, &event, now).await })
        .buffer_unordered(PARALLEL_ATTEMPTS)
        .collect::<Vec<_>>()
        .await;
    let mut sent = 0;
    for result in results {
        sent += usize::from(result?);
    }
    Ok(sent)
}

async fn retry_one(
    app: &App,
    endpoint_id: &crate::domain::ids::WebhookEndpointId,
    event_id: &EventId,
    now: i64,
) -> Result<bool, ApiError> {
    let Some(delivery) = app.store.get_delivery(endpoint_id, event_id).await? else {
        return Ok(false);
    };
    let attempt = match delivery.state {
        DeliveryState::Retrying => delivery.attempt + 1,
        // A claim whose process never recorded the outcome: that attempt again.
        DeliveryState::Sending => delivery.attempt,
        _ => return Ok(false),
    };
    if delivery.due_epoch.is_some_and(|due| due > now) {
        return Ok(false);
    }
    let endpoint = app
        .store
        .get_endpoint(&delivery.workspace_id, endpoint_id)
        .await?
        .filter(|e| e.endpoint.status == EndpointStatus::Enabled);
    let event = app.store.outbox_event(event_id).await?;
    let (Some(endpoint), Some(event), true) = (endpoint, event, attempt <= MAX_ATTEMPTS) else {
        // Deleted or disabled since, or nothing left to send: no more attempts.
        app.store.drop_delivery(&delivery, now).await?;
        return Ok(false);
    };
    let Some(claimed) = app
        .store
        .claim_attempt(
            Some(&delivery),
            Claim {
                endpoint: endpoint_id,
                event: event_id,
                workspace: &delivery.workspace_id,
                attempt,
                lease_epoch: now + CLAIM_LEASE_SECS,
                now_epoch: now,
            },
        )
        .await?
    else {
        return Ok(false);
    };
    send_and_record(app, &endpoint, event.kind, &event.event, &claimed).await?;
    Ok(true)
}
