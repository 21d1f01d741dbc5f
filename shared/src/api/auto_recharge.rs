//! Auto-recharge: spending that leaves an account under its threshold marks a recharge as
//! under way in the same write (so one shortfall starts one charge), and this process then
//! charges the saved method of the workspace whose movement it was. The outcome: credited at
//! once, waiting for the customer (3-D Secure), or ended; the webhook settles what is pending.

use crate::app::App;
use crate::billing::payments::{credit_payment, PaymentCredit};
use crate::clock::{rfc3339, unix_millis};
use crate::domain::calendar::Month;
use crate::domain::events::{EventPayload, RechargeFailedData, RechargePaymentData};
use crate::domain::transaction::TransactionType;
use crate::http::ApiError;
use crate::payments::metadata::{PaymentKind, PaymentMetadata};
use crate::payments::Charge;
use crate::store::credits::CreditOutcome;
use crate::store::ledger::RechargeRequest;
use crate::store::payments::RechargeAction;

/// Charges every recharge this process started. Failures are logged: the marker stays (or is
/// ended), and nothing is charged twice, as each charge is named by its marker.
pub async fn charge_started(app: &App) {
    for request in app.store.recharges.take() {
        if let Err(error) = charge(app, &request).await {
            tracing::error!(account = %request.account_id, %error, "auto-recharge failed");
        }
    }
}

/// How long a recharge may be under way before the retry job charges it itself: longer than
/// any function runs, so a charge still in flight is never raced.
const STALE_AFTER_SECS: i64 = 10 * 60;
/// Stripe remembers an idempotency key for 24 hours: a recharge still under way after this
/// long is ended (released), never charged again under a key Stripe may have forgotten.
const GIVE_UP_AFTER_SECS: i64 = 23 * 3600;

/// The `auto-recharge-retry` job: charges recharges that were marked but whose process never
/// charged them (it stopped in between, or Stripe failed), under the same marker's key, so
/// Stripe makes each once; ones waiting for the customer (3-D Secure) are left to the customer;
/// any older than [`GIVE_UP_AFTER_SECS`] is ended and its waiting payment canceled.
pub async fn retry_stale(app: &App) -> Result<usize, ApiError> {
    let now = app.clock.now().unix_timestamp();
    let mut handled = 0;
    for (started, request) in app
        .store
        .stale_recharges(now - STALE_AFTER_SECS, 100)
        .await?
    {
        if started <= now - GIVE_UP_AFTER_SECS {
            give_up(app, &request).await?;
            handled += 1;
            continue;
        }
        if let Some(workspace) = &request.workspace_id {
            if app
                .store
                .billing_profile(workspace)
                .await?
                .recharge_action
                .is_some()
            {
                continue;
            }
        }
        match charge(app, &request).await {
            Ok(()) => handled += 1,
            Err(error) => {
                tracing::error!(account = %request.account_id, %error, "auto-recharge retry failed")
            }
        }
    }
    Ok(handled)
}

/// Ends a recharge nobody waits for any more. Its PaymentIntent waiting for the customer is
/// canceled first, so it can't take money once the reservation is released (a failure is
/// logged: a success that still arrives is credited and counted against the month's limit
/// again, see `Store::apply_payment_credit`).
async fn give_up(app: &App, request: &RechargeRequest) -> Result<(), ApiError> {
    if let Some(workspace) = &request.workspace_id {
        let waiting = app.store.billing_profile(workspace).await?.recharge_action;
        if let Some(action) = waiting {
            let payments = app.payments().await?;
            if let Err(error) = payments
                .gateway
                .cancel_payment_intent(&action.payment_intent_id)
                .await
            {
                tracing::warn!(
                    account = %request.account_id,
                    payment_intent = %action.payment_intent_id,
                    %error,
                    "a given-up auto-recharge's payment could not be canceled"
                );
            }
        }
    }
    fail(app, request, "expired").await?;
    if let Some(workspace) = &request.workspace_id {
        app.store.set_recharge_action(workspace, None).await?;
    }
    Ok(())
}

async fn charge(app: &App, request: &RechargeRequest) -> Result<(), ApiError> {
    let now = app.clock.now();
    let workspace = match &request.workspace_id {
        Some(id) => app.store.get_workspace(id).await?,
        None => None,
    };
    let profile = match &workspace {
        Some(w) => Some(app.store.billing_profile(&w.id).await?),
        None => None,
    };
    let saved = profile.and_then(|p| Some((p.customer_id?, p.payment_method_id?)));
    let (Some(workspace), Some((customer, method))) = (workspace, saved) else {
        // Nothing to charge: end it (and say so).
        return fail(app, request, "no_payment_method").await;
    };
    // The owner may have turned it off since it started.
    let enabled = app
        .store
        .get_account(&request.account_id)
        .await?
        .is_some_and(|a| a.settings.auto_recharge.enabled);
    if !enabled {
        return fail(app, request, "disabled").await;
    }
    let metadata = PaymentMetadata::new(&workspace.id, PaymentKind::AutoRecharge)
        .for_account(&request.account_id)
        .ending_recharge(request.marker)
        .to_stripe();
    let payments = app.payments().await?;
    let outcome = payments
        .gateway
        .charge_off_session(
            &customer,
            &method,
            request.amount_cents,
            &metadata,
            &format!("auto-recharge:{}:{}", request.account_id, request.marker),
        )
        .await;
    let event = |payload: EventPayload| {
        app.store.outbox_put(
            payload,
            Some(&workspace.id),
            &request.account_id,
            &rfc3339(now),
            unix_millis(now),
        )
    };
    match outcome {
        Ok(Charge::Succeeded { payment_intent_id }) => {
            let succeeded = event(EventPayload::AutoRechargeSucceeded(RechargePaymentData {
                payment_intent_id: payment_intent_id.clone(),
                amount_cents: Some(request.amount_cents),
            }))?;
            match credit_payment(
                app,
                &workspace,
                PaymentCredit {
                    account: &request.account_id,
                    kind: TransactionType::AutoRecharge,
                    payment_intent_id: &payment_intent_id,
                    amount_cents: request.amount_cents,
                    recharge_marker: Some(request.marker),
                },
                vec![succeeded],
            )
            .await?
            {
                CreditOutcome::Refused(refusal) => return Err(refusal.into()),
                _ => app.store.set_recharge_action(&workspace.id, None).await?,
            }
        }
        Ok(Charge::RequiresAction {
            payment_intent_id,
            client_secret,
        }) => {
            let action = RechargeAction {
                payment_intent_id: payment_intent_id.clone(),
                client_secret,
                amount_cents: request.amount_cents,
                since: rfc3339(now),
            };
            app.store
                .set_recharge_action(&workspace.id, Some(&action))
                .await?;
            let requires = event(EventPayload::AutoRechargeRequiresAction(
                RechargePaymentData {
                    payment_intent_id: payment_intent_id.clone(),
                    amount_cents: Some(request.amount_cents),
                },
            ))?;
            app.store.claim_events(vec![requires]).await?;
        }
        // The webhook will say how it ends.
        Ok(Charge::Processing { .. }) => {}
        Ok(Charge::Declined { message, .. }) => fail(app, request, &message).await?,
        // The provider failed, so the outcome is unknown: the recharge stays under way and the
        // retry job charges it again under the same key (Stripe answers with the first charge
        // if there was one).
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// Ends a recharge that moved no money, releasing its reservation and recording
/// `auto_recharge.failed` in the same write.
async fn fail(app: &App, request: &RechargeRequest, reason: &str) -> Result<(), ApiError> {
    let now = app.clock.now();
    let failed = app.store.outbox_put(
        EventPayload::AutoRechargeFailed(RechargeFailedData {
            amount_cents: request.amount_cents,
            reason: reason.to_owned(),
        }),
        request.workspace_id.as_ref(),
        &request.account_id,
        &rfc3339(now),
        unix_millis(now),
    )?;
    app.store
        .end_recharge(
            &request.account_id,
            request.marker,
            request.amount_cents,
            vec![failed],
            Month::of(now),
        )
        .await?;
    Ok(())
}
