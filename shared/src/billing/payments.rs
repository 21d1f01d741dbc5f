//! Payments Stripe reports: crediting a succeeded payment (a top-up's or an auto-recharge's
//! own answer, or `payment_intent.succeeded`), an auto-recharge's other outcomes, and refunds.

use super::{claim_only, claimed, workspace_of, Handled};
use crate::app::App;
use crate::clock::{rfc3339, unix_millis};
use crate::domain::calendar::Month;
use crate::domain::events::{
    EventPayload, PurchaseData, PurchaseMethod, RechargeFailedData, RechargePaymentData,
};
use crate::domain::ids::{BillingAccountId, TransactionId};
use crate::domain::transaction::{Transaction, TransactionType};
use crate::domain::workspace::Workspace;
use crate::http::ApiError;
use crate::payments::events::{Charge, PaymentIntent, PaymentIntentChange};
use crate::payments::metadata::PaymentKind;
use crate::store::credits::{CreditOutcome, PaidBy};
use crate::store::payments::{EarlyRefund, RechargeAction};
use aws_sdk_dynamodb::types::TransactWriteItem;

/// A payment Stripe reports succeeded, to credit.
pub struct PaymentCredit<'a> {
    /// The account it was for.
    pub account: &'a BillingAccountId,
    pub kind: TransactionType,
    pub payment_intent_id: &'a str,
    pub amount_cents: i64,
    /// The auto-recharge it ends, if it is one.
    pub recharge_marker: Option<i64>,
}

/// Credits a payment Stripe reports succeeded, once per PaymentIntent, whoever reports it (the
/// charge's answer, or the webhook).
pub async fn credit_payment(
    app: &App,
    workspace: &Workspace,
    payment: PaymentCredit<'_>,
    extra: Vec<TransactWriteItem>,
) -> Result<CreditOutcome, ApiError> {
    let PaymentCredit {
        account,
        kind,
        payment_intent_id,
        amount_cents,
        recharge_marker,
    } = payment;
    let now = app.clock.now();
    let transaction = Transaction {
        id: TransactionId::generate(unix_millis(now)),
        billing_account_id: account.clone(),
        workspace_id: Some(workspace.id.clone()),
        kind,
        amount_cents,
        balance_after_cents: 0,
        description: match kind {
            TransactionType::AutoRecharge => "auto-recharge".to_owned(),
            TransactionType::TopUp => "top-up".to_owned(),
            _ => "credits purchased".to_owned(),
        },
        category: None,
        agent_id: None,
        run_id: None,
        reference: Some(payment_intent_id.to_owned()),
        created_at: rfc3339(now),
    };
    let mut extra = extra;
    // An auto-recharge's event is its caller's (`auto_recharge.succeeded`).
    if kind == TransactionType::TopUp {
        extra.push(app.store.outbox_put(
            EventPayload::CreditsPurchased(PurchaseData {
                amount_cents,
                method: PurchaseMethod::TopUp,
                reference: payment_intent_id.to_owned(),
                payer: None,
            }),
            Some(&workspace.id),
            account,
            &transaction.created_at,
            unix_millis(now),
        )?);
    }
    Ok(app
        .store
        .apply_payment_credit(
            &transaction,
            Some(&format!("stripe-payment:{payment_intent_id}")),
            extra,
            PaidBy {
                payment_intent_id,
                recharge_marker,
            },
        )
        .await?)
}

/// A billing event recorded now, for the workspace's default account.
fn outbox_now(
    app: &App,
    payload: EventPayload,
    workspace: &Workspace,
) -> Result<TransactWriteItem, ApiError> {
    let now = app.clock.now();
    Ok(app.store.outbox_put(
        payload,
        Some(&workspace.id),
        &workspace.default_billing_account_id,
        &rfc3339(now),
        unix_millis(now),
    )?)
}

/// A PaymentIntent of a top-up or an auto-recharge changed: a success is credited (once,
/// whoever reports it first); an auto-recharge waiting for the customer is recorded; one that
/// failed or was canceled ends its recharge.
pub async fn payment_intent_reported(
    app: &App,
    change: PaymentIntentChange,
    intent: &PaymentIntent,
    claim: TransactWriteItem,
) -> Result<Handled, ApiError> {
    let kind = match intent.metadata.kind {
        Some(PaymentKind::TopUp) => TransactionType::TopUp,
        Some(PaymentKind::AutoRecharge) => TransactionType::AutoRecharge,
        // Checkout payments are credited by their session; others aren't ours.
        _ => return claim_only(app, claim, Handled::Ignored).await,
    };
    let Some(workspace) = workspace_of(app, &intent.metadata, intent.customer.as_deref()).await?
    else {
        return claim_only(app, claim, Handled::Ignored).await;
    };
    let payment_intent = intent.id.as_str();
    // The account the payment was for (the workspace's default may have changed since).
    let account = intent
        .metadata
        .billing_account_id
        .clone()
        .unwrap_or_else(|| workspace.default_billing_account_id.clone());
    let now = app.clock.now();
    let payment = || RechargePaymentData {
        payment_intent_id: payment_intent.to_owned(),
        amount_cents: intent.amount,
    };
    let outbox = |payload: EventPayload| outbox_now(app, payload, &workspace);
    let recharge = kind == TransactionType::AutoRecharge;
    match change {
        PaymentIntentChange::Succeeded => {
            let amount = intent
                .amount_paid()
                .ok_or_else(|| ApiError::InvalidRequest("the payment has no amount".into()))?;
            let mut extra = vec![claim];
            if recharge {
                extra.push(outbox(EventPayload::AutoRechargeSucceeded(payment()))?);
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
                        recharge_marker: intent.metadata.recharge_marker,
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
        PaymentIntentChange::RequiresAction | PaymentIntentChange::PaymentFailed
            if recharge
                && (change == PaymentIntentChange::RequiresAction
                    || intent.needs_authentication()) =>
        {
            let action = RechargeAction {
                payment_intent_id: payment_intent.to_owned(),
                client_secret: intent.client_secret.clone().unwrap_or_default(),
                amount_cents: intent.amount.unwrap_or(0),
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
                        vec![
                            claim,
                            outbox(EventPayload::AutoRechargeRequiresAction(payment()))?,
                        ],
                    )
                    .await?,
            ))
        }
        PaymentIntentChange::PaymentFailed | PaymentIntentChange::Canceled if recharge => {
            // That recharge is over (only that one: the marker names it), so a later shortfall
            // may start another.
            let marker = intent.metadata.recharge_marker.unwrap_or(-1);
            let amount = intent.amount.unwrap_or(0);
            let ended = app
                .store
                .end_recharge(
                    &account,
                    marker,
                    amount,
                    vec![
                        claim.clone(),
                        outbox(EventPayload::AutoRechargeFailed(RechargeFailedData {
                            amount_cents: amount,
                            reason: format!("the payment {payment_intent} failed or was canceled"),
                        }))?,
                    ],
                    Month::of(now),
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
pub async fn charge_refunded(
    app: &App,
    charge: &Charge,
    claim: TransactWriteItem,
) -> Result<Handled, ApiError> {
    let Some(workspace) = workspace_of(app, &charge.metadata, charge.customer.as_deref()).await?
    else {
        return claim_only(app, claim, Handled::Ignored).await;
    };
    let charge_id = charge.id.as_str();
    let total = charge.amount_refunded;
    let Some(payment) = charge.payment_intent.as_deref() else {
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
