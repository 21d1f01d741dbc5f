//! The Stripe webhook: the signature is checked over the raw body, each event id takes effect
//! once (its claim is written in the same transaction as its effect), an older event never
//! overwrites newer state, and events it doesn't act on are acknowledged. Answers: 2xx when
//! done or ignored, 400 for a bad signature or body, 5xx only for transient failures so Stripe
//! retries.

use super::lifecycle::fire;
use super::payments::{credit_payment, PaymentCredit};
use crate::app::App;
use crate::billing::invoices::{record_invoice, InvoiceOutcome, InvoiceReport, Recorded};
use crate::billing::subscriptions::{record_subscription, save_payment_method, SubscriptionReport};
use crate::clock::{rfc3339, unix_millis};
use crate::domain::ids::{BillingAccountId, TransactionId, WorkspaceId};
use crate::domain::invoice::{Invoice, InvoiceStatus};
use crate::domain::lifecycle::BilledPeriod;
use crate::domain::lifecycle::Trigger;
use crate::domain::transaction::{Transaction, TransactionType};
use crate::domain::workspace::{PlanStatus, Workspace};
use crate::http::{ApiError, Ctx, Reply};
use crate::payments::signature;
use crate::store::credits::{CreditOutcome, PaidBy};
use crate::store::payments::{CheckoutKind, EarlyRefund, RechargeAction};
use aws_sdk_dynamodb::types::TransactWriteItem;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The parts of a Stripe event the handler reads.
#[derive(Deserialize)]
pub struct StripeEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds: orders deliveries of the same object.
    pub created: i64,
    pub data: EventData,
}

#[derive(Deserialize)]
pub struct EventData {
    pub object: Value,
}

/// What an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Handled {
    Applied,
    /// Delivered before (or its effect already happened through another path).
    Duplicate,
    /// Older than what is recorded: acknowledged, nothing overwritten.
    Stale,
    /// A type (or an object) this backend doesn't act on.
    Ignored,
}

#[derive(Serialize, JsonSchema)]
pub struct Received {
    pub received: bool,
    pub handled: Handled,
}

pub async fn receive(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let payments = cx.app.payments().await?;
    let header = cx
        .req
        .headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    signature::verify(
        header,
        &cx.req.body,
        &payments.webhook_secret,
        cx.now().unix_timestamp(),
    )
    .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let event: StripeEvent = serde_json::from_slice(&cx.req.body)
        .map_err(|e| ApiError::InvalidRequest(format!("not a Stripe event: {e}")))?;
    let handled = if cx.app.store.event_claimed(&event.id).await? {
        Handled::Duplicate
    } else {
        handle(cx.app, &event).await?
    };
    tracing::info!(event = %event.id, kind = %event.kind, ?handled, "stripe event");
    Reply::ok(&Received {
        received: true,
        handled,
    })
}

async fn handle(app: &App, event: &StripeEvent) -> Result<Handled, ApiError> {
    let object = &event.data.object;
    let claim = app
        .store
        .event_claim(&event.id, app.clock.now().unix_timestamp())?;
    match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            checkout_completed(app, object, event.created, Some(claim)).await
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => subscription_changed(app, event, claim).await,
        "invoice.created"
        | "invoice.finalized"
        | "invoice.paid"
        | "invoice.payment_failed"
        | "invoice.voided" => invoice_changed(app, event, claim).await,
        "setup_intent.succeeded" => setup_succeeded(app, object, claim).await,
        "payment_intent.succeeded"
        | "payment_intent.payment_failed"
        | "payment_intent.canceled"
        | "payment_intent.requires_action" => payment_intent_changed(app, event, claim).await,
        "charge.refunded" => charge_refunded(app, object, claim).await,
        _ => Ok(Handled::Ignored),
    }
}

fn text<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get(field).and_then(Value::as_str)
}

fn required<'a>(object: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    text(object, field)
        .ok_or_else(|| ApiError::InvalidRequest(format!("the event's object has no `{field}`")))
}

fn metadata<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata").and_then(|m| text(m, field))
}

fn claimed(applied: bool) -> Handled {
    if applied {
        Handled::Applied
    } else {
        Handled::Duplicate
    }
}

/// The workspace an object is about: our metadata, else its customer.
async fn workspace_of(app: &App, object: &Value) -> Result<Option<Workspace>, ApiError> {
    let id = match metadata(object, "workspace_id").and_then(WorkspaceId::parse) {
        Some(id) => Some(id),
        None => match text(object, "customer") {
            Some(customer) => app.store.workspace_of_customer(customer).await?,
            None => None,
        },
    };
    Ok(match id {
        Some(id) => app.store.get_workspace(&id).await?,
        None => None,
    })
}

/// A billing event recorded now, for the workspace's default account.
fn outbox_now(
    app: &App,
    kind: &str,
    workspace: &Workspace,
    data: Value,
) -> Result<TransactWriteItem, ApiError> {
    let now = app.clock.now();
    Ok(app.store.outbox_put(
        kind,
        Some(&workspace.id),
        &workspace.default_billing_account_id,
        data,
        &rfc3339(now),
        unix_millis(now),
    )?)
}

/// Acknowledges an event without another effect: its claim alone.
async fn claim_only(
    app: &App,
    claim: TransactWriteItem,
    handled: Handled,
) -> Result<Handled, ApiError> {
    Ok(if app.store.claim_event(claim).await? {
        handled
    } else {
        Handled::Duplicate
    })
}

fn claims(claim: Option<TransactWriteItem>) -> Vec<TransactWriteItem> {
    claim.into_iter().collect()
}

/// A checkout session paid: credits are credited once per session (whichever of the webhook
/// and `dev/complete-local` comes first); a subscription sets the plan and counts as the
/// workspace's payment.
/// `event_at`: when Stripe created the event (orders it against later subscription events).
pub async fn checkout_completed(
    app: &App,
    session: &Value,
    event_at: i64,
    claim: Option<TransactWriteItem>,
) -> Result<Handled, ApiError> {
    let session_id = required(session, "id")?;
    let Some(checkout) = app.store.get_checkout(session_id).await? else {
        return match claim {
            Some(claim) => claim_only(app, claim, Handled::Ignored).await,
            None => Ok(Handled::Ignored),
        };
    };
    let paid = matches!(
        text(session, "payment_status"),
        Some("paid" | "no_payment_required")
    );
    if !paid {
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
            let amount = session
                .get("amount_total")
                .and_then(Value::as_i64)
                .unwrap_or(checkout.amount_cents);
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
                "credits.purchased",
                Some(&workspace.id),
                &checkout.billing_account_id,
                serde_json::json!({"amount_cents": amount, "checkout_session_id": session_id}),
                &transaction.created_at,
                unix_millis(now),
            )?);
            transaction.description = format!("credits purchased (checkout {session_id})");
            let credit_claim = format!("stripe-checkout:{session_id}");
            // Its PaymentIntent: what Stripe's refunds name (one reported first is taken back
            // with the credit).
            let credited = match text(session, "payment_intent") {
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
            let subscription = text(session, "subscription").unwrap_or(session_id);
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
            if let Some(method) =
                text(session, "payment_method").or_else(|| metadata(session, "payment_method"))
            {
                save_payment_method(app, &workspace, method, Vec::new()).await?;
            } else if workspace.plan_status == PlanStatus::Trial {
                fire(app, &workspace.id, Trigger::PaymentMethodAttached).await?;
            }
            Ok(Handled::Applied)
        }
    }
}

async fn subscription_changed(
    app: &App,
    event: &StripeEvent,
    claim: TransactWriteItem,
) -> Result<Handled, ApiError> {
    let object = &event.data.object;
    let Some(workspace) = workspace_of(app, object).await? else {
        return claim_only(app, claim, Handled::Ignored).await;
    };
    let ended = event.kind == "customer.subscription.deleted";
    let report = SubscriptionReport {
        subscription_id: required(object, "id")?,
        status: if ended {
            "canceled"
        } else {
            text(object, "status").unwrap_or("active")
        },
        cancel_at_period_end: object
            .get("cancel_at_period_end")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ended,
        event_type: match event.kind.as_str() {
            "customer.subscription.created" => "subscription.created",
            "customer.subscription.deleted" => "subscription.canceled",
            _ => "subscription.updated",
        },
        reported_at: event.created,
    };
    if record_subscription(app, &workspace, &report, claim.clone()).await? {
        Ok(Handled::Applied)
    } else {
        // A newer report is mirrored already: acknowledged only.
        claim_only(app, claim, Handled::Stale).await
    }
}

fn time_field(object: &Value, field: &str) -> Option<String> {
    object
        .get(field)
        .and_then(Value::as_i64)
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(rfc3339)
}

fn unix(object: &Value, field: &str) -> Option<time::OffsetDateTime> {
    object
        .get(field)
        .and_then(Value::as_i64)
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
}

/// The service period an invoice bills: its first line's (a subscription invoice's own
/// `period_*` is the period before), else the invoice's.
fn billed_period(object: &Value) -> Option<BilledPeriod> {
    let line_period = object
        .pointer("/lines/data/0/period")
        .filter(|period| period.is_object());
    let (start, end) = match line_period {
        Some(period) => (unix(period, "start")?, unix(period, "end")?),
        None => (unix(object, "period_start")?, unix(object, "period_end")?),
    };
    Some(BilledPeriod { start, end })
}

async fn invoice_changed(
    app: &App,
    event: &StripeEvent,
    claim: TransactWriteItem,
) -> Result<Handled, ApiError> {
    let object = &event.data.object;
    let Some(workspace) = workspace_of(app, object).await? else {
        return claim_only(app, claim, Handled::Ignored).await;
    };
    let status = match event.kind.as_str() {
        "invoice.paid" => InvoiceStatus::Paid,
        "invoice.voided" => InvoiceStatus::Void,
        _ => text(object, "status")
            .and_then(InvoiceStatus::parse)
            .unwrap_or(InvoiceStatus::Open),
    };
    let period = billed_period(object);
    let invoice = Invoice {
        id: required(object, "id")?.to_owned(),
        workspace_id: workspace.id.clone(),
        number: text(object, "number").map(str::to_owned),
        status,
        amount_due_cents: object
            .get("amount_due")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        amount_paid_cents: object
            .get("amount_paid")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        currency: text(object, "currency").unwrap_or("usd").to_owned(),
        period_start: period.map(|p| rfc3339(p.start)),
        period_end: period.map(|p| rfc3339(p.end)),
        hosted_invoice_url: text(object, "hosted_invoice_url").map(str::to_owned),
        invoice_pdf: text(object, "invoice_pdf").map(str::to_owned),
        created_at: time_field(object, "created").unwrap_or_else(|| rfc3339(app.clock.now())),
    };
    let outcome = match event.kind.as_str() {
        "invoice.paid" => InvoiceOutcome::Paid,
        "invoice.payment_failed" => InvoiceOutcome::PaymentFailed,
        _ => InvoiceOutcome::Updated,
    };
    let report = InvoiceReport {
        invoice,
        outcome,
        // Only a subscription's invoice moves the plan.
        period: period.filter(|_| {
            [
                object.get("subscription"),
                object.pointer("/parent/subscription_details/subscription"),
            ]
            .into_iter()
            .flatten()
            .any(|s| !s.is_null())
        }),
        reported_at: event.created,
    };
    Ok(
        match record_invoice(app, &workspace, &report, Some(claim)).await? {
            Recorded::Applied => Handled::Applied,
            Recorded::Stale => Handled::Stale,
            Recorded::Duplicate => Handled::Duplicate,
        },
    )
}

async fn setup_succeeded(
    app: &App,
    object: &Value,
    claim: TransactWriteItem,
) -> Result<Handled, ApiError> {
    let (Some(workspace), Some(method)) = (
        workspace_of(app, object).await?,
        text(object, "payment_method"),
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

async fn payment_intent_changed(
    app: &App,
    event: &StripeEvent,
    claim: TransactWriteItem,
) -> Result<Handled, ApiError> {
    let object = &event.data.object;
    let kind = match metadata(object, "kind") {
        Some("top_up") => TransactionType::TopUp,
        Some("auto_recharge") => TransactionType::AutoRecharge,
        // Checkout payments are credited by their session; others aren't ours.
        _ => return claim_only(app, claim, Handled::Ignored).await,
    };
    let Some(workspace) = workspace_of(app, object).await? else {
        return claim_only(app, claim, Handled::Ignored).await;
    };
    let payment_intent = required(object, "id")?;
    // The account the payment was for (the workspace's default may have changed since).
    let account = metadata(object, "billing_account_id")
        .and_then(BillingAccountId::parse)
        .unwrap_or_else(|| workspace.default_billing_account_id.clone());
    let now = app.clock.now();
    let outbox = |name: &str| {
        outbox_now(
            app,
            name,
            &workspace,
            serde_json::json!({"payment_intent_id": payment_intent}),
        )
    };
    match event.kind.as_str() {
        "payment_intent.succeeded" => {
            let amount = object
                .get("amount_received")
                .or_else(|| object.get("amount"))
                .and_then(Value::as_i64)
                .ok_or_else(|| ApiError::InvalidRequest("the payment has no amount".into()))?;
            let mut extra = vec![claim];
            if kind == TransactionType::AutoRecharge {
                extra.push(outbox("auto_recharge.succeeded")?);
                app.store.set_recharge_action(&workspace.id, None).await?;
            }
            Ok(
                match credit_payment(
                    app,
                    &workspace,
                    PaymentCredit {
                        account: &account,
                        kind,
                        payment_intent_id: payment_intent,
                        amount_cents: amount,
                        recharge_marker: metadata(object, "recharge_marker")
                            .and_then(|m| m.parse().ok()),
                    },
                    extra,
                )
                .await?
                {
                    CreditOutcome::Credited(_) => Handled::Applied,
                    CreditOutcome::Repeated(_) | CreditOutcome::NotApplied => Handled::Duplicate,
                    CreditOutcome::Refused(refusal) => return Err(refusal.into()),
                },
            )
        }
        // A bank asking for authentication off-session may answer as a failure with
        // `authentication_required`: that is a charge waiting for the customer, not a failure.
        "payment_intent.requires_action" | "payment_intent.payment_failed"
            if kind == TransactionType::AutoRecharge
                && (event.kind == "payment_intent.requires_action"
                    || object
                        .get("last_payment_error")
                        .and_then(|e| text(e, "code"))
                        == Some("authentication_required")) =>
        {
            let action = RechargeAction {
                payment_intent_id: payment_intent.to_owned(),
                client_secret: text(object, "client_secret").unwrap_or_default().to_owned(),
                amount_cents: object.get("amount").and_then(Value::as_i64).unwrap_or(0),
                since: rfc3339(now),
            };
            // Conditional on the payment not being credited yet: a late delivery after it
            // succeeded must not ask the customer again.
            Ok(claimed(
                app.store
                    .record_recharge_action(
                        &workspace.id,
                        &action,
                        &format!("stripe-payment:{payment_intent}"),
                        vec![claim, outbox("auto_recharge.requires_action")?],
                    )
                    .await?,
            ))
        }
        "payment_intent.payment_failed" | "payment_intent.canceled"
            if kind == TransactionType::AutoRecharge =>
        {
            // That recharge is over (only that one: the marker names it), so a later shortfall
            // may start another.
            let marker = metadata(object, "recharge_marker")
                .and_then(|m| m.parse::<i64>().ok())
                .unwrap_or(-1);
            let amount = object.get("amount").and_then(Value::as_i64).unwrap_or(0);
            let ended = app
                .store
                .end_recharge(
                    &account,
                    marker,
                    amount,
                    vec![claim.clone(), outbox("auto_recharge.failed")?],
                    &rfc3339(now)[..7],
                )
                .await?;
            if !ended {
                // Ended already (the charge's own answer said so): acknowledge only.
                return claim_only(app, claim, Handled::Duplicate).await;
            }
            app.store.set_recharge_action(&workspace.id, None).await?;
            Ok(Handled::Applied)
        }
        _ => claim_only(app, claim, Handled::Ignored).await,
    }
}

/// How often a refund is decided again after another delivery (or the credit it refunds)
/// changed what it is decided on; each retry follows someone else's commit.
const REFUND_ATTEMPTS: usize = 10;

/// A refund takes the refunded credit back, never below what is available, and lowers lifetime
/// paid by all of it. Stripe reports a charge's refunded total (`amount_refunded`); each
/// delivery takes what that total adds to the total already taken, recorded per charge in the
/// same write, so every refund is taken once. A refund of a payment not credited yet (delivery
/// order is arbitrary) is remembered, as its running total in the same write as the event's
/// claim, and taken back in the credit's own write when that lands; a charge that never buys
/// credit here (a plan's invoice, say) so takes nothing.
async fn charge_refunded(
    app: &App,
    charge: &Value,
    claim: TransactWriteItem,
) -> Result<Handled, ApiError> {
    let Some(workspace) = workspace_of(app, charge).await? else {
        return claim_only(app, claim, Handled::Ignored).await;
    };
    let charge_id = required(charge, "id")?;
    let total = charge
        .get("amount_refunded")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let Some(payment) = text(charge, "payment_intent") else {
        return claim_only(app, claim, Handled::Ignored).await;
    };
    for _ in 0..REFUND_ATTEMPTS {
        let record = app.store.payment_record(payment).await?;
        let Some(account) = record.credited_account.clone() else {
            let before = record.early_refund.as_ref();
            if total <= before.map_or(0, |b| b.refunded_cents) {
                return claim_only(app, claim, Handled::Duplicate).await;
            }
            let early = EarlyRefund {
                charge_id: charge_id.to_owned(),
                refunded_cents: total,
            };
            let remembered = app.store.remember_refund(payment, before, &early)?;
            if app
                .store
                .claim_events(vec![claim.clone(), remembered])
                .await?
            {
                return Ok(Handled::Applied);
            }
            if app.store.payment_record(payment).await? == record {
                // Nothing it is conditional on moved: its claim was taken first.
                return Ok(Handled::Duplicate);
            }
            continue;
        };
        let taken_before = app.store.refunded_so_far(charge_id).await?;
        let refunded = total - taken_before;
        if refunded <= 0 {
            return claim_only(app, claim, Handled::Duplicate).await;
        }
        let now = app.clock.now();
        // From the account the payment credited (the workspace's default may have changed
        // since); what it takes and says is decided in the write.
        let transaction = Transaction {
            id: TransactionId::generate(unix_millis(now)),
            billing_account_id: account,
            workspace_id: Some(workspace.id.clone()),
            kind: TransactionType::Refund,
            amount_cents: -refunded,
            balance_after_cents: 0,
            description: String::new(),
            category: None,
            agent_id: None,
            run_id: None,
            reference: Some(charge_id.to_owned()),
            created_at: rfc3339(now),
        };
        let extra = vec![
            claim.clone(),
            app.store.refund_progress(charge_id, taken_before, total)?,
        ];
        match app
            .store
            .apply_refund(
                &transaction,
                charge_id,
                refunded,
                Some(&format!("stripe-refund:{charge_id}:{total}")),
                extra,
            )
            .await?
        {
            CreditOutcome::Credited(_) => return Ok(Handled::Applied),
            CreditOutcome::Repeated(_) => return Ok(Handled::Duplicate),
            // Another delivery moved the charge's total first, or took this event's claim:
            // decided again on what it did.
            CreditOutcome::NotApplied => continue,
            CreditOutcome::Refused(refusal) => {
                return Err(ApiError::Conflict(format!(
                    "refund not taken yet: {refusal}"
                )))
            }
        }
    }
    Err(ApiError::Conflict(
        "other deliveries of this charge's refunds keep being applied first".into(),
    ))
}
