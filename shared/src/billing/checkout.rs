//! A checkout session paid, however it is reported: Stripe's `checkout.session.completed`
//! (or `async_payment_succeeded`), or the offline gateway's `dev/complete-local`.

use super::subscriptions::save_payment_method;
use super::{claim_only, Handled};
use crate::api::lifecycle::fire;
use crate::app::App;
use crate::clock::{rfc3339, unix_millis};
use crate::domain::events::{EventPayload, PurchaseData, PurchaseMethod};
use crate::domain::ids::TransactionId;
use crate::domain::lifecycle::Trigger;
use crate::domain::transaction::{Transaction, TransactionType};
use crate::domain::workspace::PlanStatus;
use crate::http::ApiError;
use crate::payments::events::CheckoutSession;
use crate::store::credits::{CreditOutcome, PaidBy};
use crate::store::payments::CheckoutKind;
use aws_sdk_dynamodb::types::TransactWriteItem;

fn claims(claim: Option<TransactWriteItem>) -> Vec<TransactWriteItem> {
    claim.into_iter().collect()
}

/// A checkout session paid: credits are credited once per session (whichever of the webhook
/// and `dev/complete-local` comes first); a subscription sets the plan and counts as the
/// workspace's payment.
/// `event_at`: when Stripe created the event (orders it against later subscription events).
pub async fn checkout_completed(
    app: &App,
    session: &CheckoutSession,
    event_at: i64,
    claim: Option<TransactWriteItem>,
) -> Result<Handled, ApiError> {
    let session_id = session.id.as_str();
    let Some(checkout) = app.store.get_checkout(session_id).await? else {
        return match claim {
            Some(claim) => claim_only(app, claim, Handled::Ignored).await,
            None => Ok(Handled::Ignored),
        };
    };
    if !session.is_paid() {
        // An asynchronous payment: `async_payment_succeeded` will follow.
        return match claim {
            Some(claim) => claim_only(app, claim, Handled::Ignored).await,
            None => Ok(Handled::Ignored),
        };
    }
    let Some(workspace) = app.store.get_workspace(&checkout.workspace_id).await? else {
        return Ok(Handled::Ignored);
    };
    match checkout.kind {
        CheckoutKind::Credits => {
            let amount = session.amount_total.unwrap_or(checkout.amount_cents);
            let now = app.clock.now();
            let mut transaction = Transaction {
                id: TransactionId::generate(unix_millis(now)),
                billing_account_id: checkout.billing_account_id.clone(),
                workspace_id: Some(workspace.id.clone()),
                kind: TransactionType::Purchase,
                amount_cents: amount,
                balance_after_cents: 0,
                description: "credits purchased".into(),
                category: None,
                agent_id: None,
                run_id: None,
                reference: Some(session_id.to_owned()),
                created_at: rfc3339(now),
            };
            let mut extra = claims(claim);
            extra.push(app.store.outbox_put(
                EventPayload::CreditsPurchased(PurchaseData {
                    amount_cents: amount,
                    method: PurchaseMethod::StripeCheckout,
                    reference: session_id.to_owned(),
                    payer: None,
                }),
                Some(&workspace.id),
                &checkout.billing_account_id,
                &transaction.created_at,
                unix_millis(now),
            )?);
            transaction.description = format!("credits purchased (checkout {session_id})");
            let credit_claim = format!("stripe-checkout:{session_id}");
            // Its PaymentIntent: what Stripe's refunds name (one reported first is taken back
            // with the credit).
            let credited = match session.payment_intent.as_deref() {
                Some(payment_intent_id) => {
                    let paid_by = PaidBy {
                        payment_intent_id,
                        recharge_marker: None,
                    };
                    app.store
                        .apply_payment_credit(&transaction, Some(&credit_claim), extra, paid_by)
                        .await?
                }
                None => {
                    app.store
                        .apply_credit(&transaction, Some(&credit_claim), extra)
                        .await?
                }
            };
            Ok(match credited {
                CreditOutcome::Credited(_) => Handled::Applied,
                CreditOutcome::Repeated(_) | CreditOutcome::NotApplied => Handled::Duplicate,
                CreditOutcome::Refused(refusal) => return Err(refusal.into()),
            })
        }
        CheckoutKind::Subscription => {
            // The subscription is recorded in its place in the ordered mirror: a late
            // completion never undoes a newer subscription state, and never moves the plan by
            // itself. Its method is saved like any other (a trial starts its promo, whose end
            // the checkout set as the subscription's free period); its invoices move the rest.
            let subscription = session.subscription.as_deref().unwrap_or(session_id);
            // One subscription per workspace: a checkout completed after another subscription
            // started (a late or second checkout) replaces nothing.
            let profile = app.store.billing_profile(&workspace.id).await?;
            if profile
                .subscription_id
                .as_deref()
                .is_some_and(|existing| existing != subscription)
            {
                return match claim {
                    Some(claim) => claim_only(app, claim, Handled::Stale).await,
                    None => Ok(Handled::Stale),
                };
            }
            let mut items = claims(claim);
            if let Some(plan) = &checkout.plan_id {
                items.push(app.store.plan_update(&workspace.id, plan)?);
            }
            if !app
                .store
                .mirror_subscription(&workspace.id, subscription, "active", event_at, items)
                .await?
            {
                return Ok(Handled::Stale);
            }
            if let Some(method) = &session.payment_method {
                save_payment_method(app, &workspace, method, Vec::new()).await?;
            } else if workspace.plan_status == PlanStatus::Trial {
                fire(app, &workspace.id, Trigger::PaymentMethodAttached).await?;
            }
            Ok(Handled::Applied)
        }
    }
}
