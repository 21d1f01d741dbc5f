//! A workspace's subscription: saving a payment method (a route, or Stripe's
//! `setup_intent.succeeded`) starts it on the first method in trial and pays the open invoice
//! of a suspended workspace; Stripe's `customer.subscription.*` events mirror it and end it.

use super::customers::customer_of;
use super::invoices::retry_open_invoice;
use super::{claim_only, workspace_of, Handled};
use crate::api::lifecycle::{fire, fire_with, Fired};
use crate::app::App;
use crate::clock::{rfc3339, unix_millis};
use crate::domain::events::{EventPayload, SubscriptionData};
use crate::domain::lifecycle::Trigger;
use crate::domain::workspace::{PlanStatus, Workspace};
use crate::http::ApiError;
use crate::payments::events::{SetupIntent, Subscription, SubscriptionChange};
use crate::payments::metadata::PaymentMetadata;
use crate::payments::SubscriptionRequest;
use aws_sdk_dynamodb::types::TransactWriteItem;

/// Saves the method as the workspace's default and fires the lifecycle's trigger (trial →
/// promo); then makes sure a subscription exists for a priced plan, and pays the open invoice
/// of a suspended workspace. `None` when `claim` (a Stripe event's) was taken before.
pub async fn save_payment_method(
    app: &App,
    workspace: &Workspace,
    payment_method_id: &str,
    claim: Vec<TransactWriteItem>,
) -> Result<Option<PlanStatus>, ApiError> {
    if !app
        .store
        .save_payment_method(
            &workspace.id,
            &workspace.default_billing_account_id,
            payment_method_id,
            claim,
        )
        .await?
    {
        return Ok(None);
    }
    let status = match fire(app, &workspace.id, Trigger::PaymentMethodAttached).await? {
        Fired::Applied(transition) => transition.to.status,
        _ => workspace.plan_status,
    };
    ensure_subscription(app, workspace).await?;
    if status == PlanStatus::Suspended {
        retry_open_invoice(app, workspace).await?;
    }
    Ok(Some(
        app.store
            .get_workspace(&workspace.id)
            .await?
            .map_or(status, |w| w.plan_status),
    ))
}

/// Starts the workspace's subscription if its lifecycle says it has one and none was made
/// yet: the plan's price, quantity 1, free until the promo's end, charging the saved method.
/// The idempotency key is the workspace and the promo's end, so concurrent (or retried) first
/// attaches send Stripe the same request and make one subscription.
pub async fn ensure_subscription(app: &App, workspace: &Workspace) -> Result<(), ApiError> {
    let Some(state) = app.store.get_workspace_state(&workspace.id).await? else {
        return Ok(());
    };
    let dates = &state.lifecycle.dates;
    if dates.billing.is_none() || state.lifecycle.status == PlanStatus::Deleted {
        return Ok(());
    }
    let profile = app.store.billing_profile(&workspace.id).await?;
    let (None, Some(method)) = (&profile.subscription_id, &profile.payment_method_id) else {
        return Ok(());
    };
    let Some(price_id) = app
        .catalog
        .plan(&workspace.plan_id)
        .and_then(|plan| plan.stripe_price_id.clone())
    else {
        return Ok(());
    };
    let customer = customer_of(app, workspace).await?;
    let trial_end = dates.promo_ends_at.map(|at| at.unix_timestamp());
    let key = format!(
        "subscription:{}:{}",
        workspace.id,
        trial_end.unwrap_or_default()
    );
    let payments = app.payments().await?;
    let subscription = payments
        .gateway
        .create_subscription(&SubscriptionRequest {
            customer_id: &customer,
            price_id: &price_id,
            payment_method_id: method,
            trial_end,
            metadata: PaymentMetadata {
                workspace_id: Some(workspace.id.clone()),
                plan_id: Some(workspace.plan_id.clone()),
                ..PaymentMetadata::default()
            }
            .to_stripe(),
            idempotency_key: &key,
        })
        .await?;
    // Event time 0: any report from Stripe about it is newer than this first record.
    app.store
        .mirror_subscription(&workspace.id, &subscription, "trialing", 0, Vec::new())
        .await?;
    Ok(())
}

/// What Stripe reports of a subscription.
pub struct SubscriptionReport<'a> {
    pub subscription_id: &'a str,
    /// Stripe's status (`trialing`, `active`, `past_due`, `canceled`, `unpaid`…).
    pub status: &'a str,
    pub cancel_at_period_end: bool,
    /// Stripe deleted it (`customer.subscription.deleted`): it is over.
    pub ended: bool,
    /// `subscription.created`, `subscription.updated` or `subscription.canceled`.
    pub event: fn(SubscriptionData) -> EventPayload,
    pub reported_at: i64,
}

/// Mirrors a subscription report and moves the plan: a cancellation at the period's end (or
/// its withdrawal), or the end of the subscription (deleted: canceled, or unpaid after
/// Stripe's retries), in one transaction with the mirror and `claim`; a report older than the
/// mirror moves nothing.
pub async fn record_subscription(
    app: &App,
    workspace: &Workspace,
    report: &SubscriptionReport<'_>,
    claim: TransactWriteItem,
) -> Result<bool, ApiError> {
    let now = app.clock.now();
    let mirror = app.store.subscription_mirror(
        &workspace.id,
        report.subscription_id,
        report.status,
        report.reported_at,
    )?;
    let event = app.store.outbox_put(
        (report.event)(SubscriptionData {
            subscription_id: report.subscription_id.to_string(),
            status: report.status.to_string(),
        }),
        Some(&workspace.id),
        &workspace.default_billing_account_id,
        &rfc3339(now),
        unix_millis(now),
    )?;
    let items = vec![mirror, claim, event];
    let trigger = if report.ended {
        Trigger::SubscriptionEnded
    } else if report.cancel_at_period_end {
        Trigger::CanceledAtPeriodEnd
    } else {
        Trigger::CancellationWithdrawn
    };
    match fire_with(app, &workspace.id, trigger, items.clone()).await? {
        Fired::Applied(_) => Ok(true),
        Fired::CauseRefused { .. } | Fired::NoSuchWorkspace => Ok(false),
        // Already so: the mirror and the event alone.
        Fired::Refused(_) => Ok(app.store.write_claimed(items).await?.is_none()),
    }
}

/// Stripe's `setup_intent.succeeded`: its method saved as any other is.
pub async fn setup_succeeded(
    app: &App,
    intent: &SetupIntent,
    claim: TransactWriteItem,
) -> Result<Handled, ApiError> {
    let (Some(workspace), Some(method)) = (
        workspace_of(app, &intent.metadata, intent.customer.as_deref()).await?,
        intent.payment_method.as_deref(),
    ) else {
        return claim_only(app, claim, Handled::Ignored).await;
    };
    Ok(
        match save_payment_method(app, &workspace, method, vec![claim]).await? {
            Some(_) => Handled::Applied,
            None => Handled::Duplicate,
        },
    )
}

/// Stripe's `customer.subscription.*`: recorded by [`record_subscription`]; a report older
/// than the mirror is acknowledged only.
pub async fn subscription_reported(
    app: &App,
    change: SubscriptionChange,
    subscription: &Subscription,
    reported_at: i64,
    claim: TransactWriteItem,
) -> Result<Handled, ApiError> {
    let Some(workspace) = workspace_of(
        app,
        &subscription.metadata,
        subscription.customer.as_deref(),
    )
    .await?
    else {
        return claim_only(app, claim, Handled::Ignored).await;
    };
    let ended = change == SubscriptionChange::Deleted;
    let report = SubscriptionReport {
        subscription_id: &subscription.id,
        status: if ended {
            "canceled"
        } else {
            subscription.status.as_deref().unwrap_or("active")
        },
        cancel_at_period_end: subscription.cancel_at_period_end,
        ended,
        event: match change {
            SubscriptionChange::Created => EventPayload::SubscriptionCreated,
            SubscriptionChange::Updated => EventPayload::SubscriptionUpdated,
            SubscriptionChange::Deleted => EventPayload::SubscriptionCanceled,
        },
        reported_at,
    };
    if record_subscription(app, &workspace, &report, claim.clone()).await? {
        Ok(Handled::Applied)
    } else {
        // A newer report is mirrored already: acknowledged only.
        claim_only(app, claim, Handled::Stale).await
    }
}
