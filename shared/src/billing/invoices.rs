//! Invoices of a workspace's subscription: what an invoice's outcome does to the plan, the
//! same for Stripe's `invoice.*` events and for the invoices the offline gateway makes at each
//! due time, and the retry of an open invoice once the method is fixed.

use crate::api::lifecycle::{fire_with, Fired};
use crate::app::App;
use crate::clock::{rfc3339, unix_millis};
use crate::domain::events::{EventPayload, InvoiceData};
use crate::domain::invoice::{Invoice, InvoiceStatus};
use crate::domain::lifecycle::{next_invoice_period, BilledPeriod, Trigger};
use crate::domain::workspace::Workspace;
use crate::http::ApiError;
use crate::payments::events::{self, InvoiceChange};
use crate::payments::metadata::{PaymentKind, PaymentMetadata};
use crate::payments::{Charge, Gateway};
use crate::store::lifecycle::WorkspaceState;
use aws_sdk_dynamodb::types::TransactWriteItem;
use sha2::{Digest, Sha256};

use super::{claim_only, workspace_of, Handled};

/// What an invoice report says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvoiceOutcome {
    Paid,
    PaymentFailed,
    /// Created, finalized, voided: mirrored, the plan doesn't move.
    Updated,
}

/// An invoice as reported (by Stripe, or by the offline billing below).
pub struct InvoiceReport {
    pub invoice: Invoice,
    pub outcome: InvoiceOutcome,
    /// The service period it bills; `None` for an invoice that is not the plan's.
    pub period: Option<BilledPeriod>,
    /// When the report was made (Stripe's event time): orders reports of one invoice.
    pub reported_at: i64,
}

/// What recording a report did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Mirrored, and the plan moved if the outcome moves it.
    Applied,
    /// The mirror is further along already (a late delivery): nothing written but the claim.
    Stale,
    /// The report's claim was taken before: nothing written.
    Duplicate,
}

/// Records an invoice report: the mirror, the plan's move (`invoice_paid` / `invoice_failed`
/// of its period), its billing event and `claim` (a Stripe event's) in one transaction, so
/// the decision is taken on the state it is written over: concurrent or out-of-order reports of
/// a paid and a failed payment can't leave a paid workspace suspended.
pub async fn record_invoice(
    app: &App,
    workspace: &Workspace,
    report: &InvoiceReport,
    claim: Option<TransactWriteItem>,
) -> Result<Recorded, ApiError> {
    let invoice = &report.invoice;
    let now = app.clock.now();
    let mirror = app.store.invoice_mirror(invoice, report.reported_at)?;
    let event = match report.outcome {
        InvoiceOutcome::Paid => Some(EventPayload::InvoicePaid as fn(InvoiceData) -> EventPayload),
        InvoiceOutcome::PaymentFailed => Some(EventPayload::InvoicePaymentFailed as _),
        InvoiceOutcome::Updated => None,
    }
    .map(|payload| {
        app.store.outbox_put(
            payload(InvoiceData {
                invoice_id: invoice.id.clone(),
                amount_due_cents: invoice.amount_due_cents,
            }),
            Some(&workspace.id),
            &workspace.default_billing_account_id,
            &rfc3339(now),
            unix_millis(now),
        )
    })
    .transpose()?;
    // The plan moves only for an invoice of a period at a price (a subscription's $0 invoice at
    // the start of its free period moves nothing).
    let trigger = match (report.outcome, report.period) {
        (InvoiceOutcome::Paid, Some(period)) if invoice.amount_due_cents > 0 => {
            Some(Trigger::InvoicePaid(period))
        }
        (InvoiceOutcome::PaymentFailed, Some(period)) if invoice.amount_due_cents > 0 => {
            Some(Trigger::InvoiceFailed(period))
        }
        _ => None,
    };
    let mut items = vec![mirror];
    items.extend(claim.clone());
    if let Some(trigger) = trigger {
        let mut with_event = items.clone();
        with_event.extend(event.clone());
        match fire_with(app, &workspace.id, trigger, with_event).await? {
            Fired::Applied(_) => return Ok(Recorded::Applied),
            Fired::CauseRefused { index } => return refused(app, index, claim).await,
            Fired::NoSuchWorkspace => return Ok(Recorded::Stale),
            // Already so (the period was paid before, or the workspace is suspended already):
            // the mirror still moves.
            Fired::Refused(refused) => {
                tracing::info!(workspace = %workspace.id, invoice = %invoice.id, %refused, "invoice moved no plan");
            }
        }
    }
    // No move: the mirror, with its event when the report is a fresh one (a Stripe event
    // claimed once, or a failed attempt), not when a paid period is reported again.
    if claim.is_some() || report.outcome == InvoiceOutcome::PaymentFailed || trigger.is_none() {
        items.extend(event);
    }
    match app.store.write_claimed(items).await? {
        None => Ok(Recorded::Applied),
        Some(index) => refused(app, index, claim).await,
    }
}

/// Stripe reported an invoice (`invoice.*`): mirrored, and a subscription's paid or failed
/// invoice moves the plan, through [`record_invoice`] as the offline invoices do.
pub async fn invoice_reported(
    app: &App,
    change: InvoiceChange,
    reported: &events::Invoice,
    reported_at: i64,
    claim: TransactWriteItem,
) -> Result<Handled, ApiError> {
    let Some(workspace) =
        workspace_of(app, &reported.metadata, reported.customer.as_deref()).await?
    else {
        return claim_only(app, claim, Handled::Ignored).await;
    };
    let period = reported.billed_period();
    let invoice = Invoice {
        id: reported.id.clone(),
        workspace_id: workspace.id.clone(),
        number: reported.number.clone(),
        status: reported.status_after(change),
        amount_due_cents: reported.amount_due,
        amount_paid_cents: reported.amount_paid,
        currency: reported
            .currency
            .clone()
            .unwrap_or_else(|| "usd".to_owned()),
        period_start: period.map(|p| rfc3339(p.start)),
        period_end: period.map(|p| rfc3339(p.end)),
        hosted_invoice_url: reported.hosted_invoice_url.clone(),
        invoice_pdf: reported.invoice_pdf.clone(),
        created_at: rfc3339(reported.created_at().unwrap_or_else(|| app.clock.now())),
    };
    let outcome = match change {
        InvoiceChange::Paid => InvoiceOutcome::Paid,
        InvoiceChange::PaymentFailed => InvoiceOutcome::PaymentFailed,
        InvoiceChange::Created | InvoiceChange::Finalized | InvoiceChange::Voided => {
            InvoiceOutcome::Updated
        }
    };
    let report = InvoiceReport {
        invoice,
        outcome,
        // Only a subscription's invoice moves the plan.
        period: period.filter(|_| reported.bills_subscription()),
        reported_at,
    };
    Ok(
        match record_invoice(app, &workspace, &report, Some(claim)).await? {
            Recorded::Applied => Handled::Applied,
            Recorded::Stale => Handled::Stale,
            Recorded::Duplicate => Handled::Duplicate,
        },
    )
}

/// Item 0 (the mirror) refused: a late report, acknowledged by its claim alone; item 1 (the
/// claim): a duplicate.
async fn refused(
    app: &App,
    index: usize,
    claim: Option<TransactWriteItem>,
) -> Result<Recorded, ApiError> {
    if index != 0 {
        return Ok(Recorded::Duplicate);
    }
    match claim {
        Some(claim) => Ok(if app.store.claim_event(claim).await? {
            Recorded::Stale
        } else {
            Recorded::Duplicate
        }),
        None => Ok(Recorded::Stale),
    }
}

/// The offline invoice of a workspace's period at its plan's price, open until charged.
fn local_invoice(app: &App, workspace: &Workspace, period: &BilledPeriod) -> Invoice {
    Invoice {
        id: local_invoice_id(workspace, period),
        workspace_id: workspace.id.clone(),
        number: None,
        status: InvoiceStatus::Open,
        amount_due_cents: app
            .catalog
            .plan(&workspace.plan_id)
            .and_then(|plan| plan.price_cents)
            .unwrap_or(0),
        amount_paid_cents: 0,
        currency: "usd".into(),
        period_start: Some(rfc3339(period.start)),
        period_end: Some(rfc3339(period.end)),
        hosted_invoice_url: None,
        invoice_pdf: None,
        created_at: rfc3339(app.clock.now()),
    }
}

/// A stable id for the offline invoice of a workspace's period.
fn local_invoice_id(workspace: &Workspace, period: &BilledPeriod) -> String {
    let digest = Sha256::digest(format!("{}#{}", workspace.id, rfc3339(period.start)).as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("in_local_{hex}")
}

/// The offline gateway bills like Stripe: at the promo's end and at each period's end, the
/// lifecycle job invoices the next period at the plan price and charges the saved method, and
/// the outcome goes through [`record_invoice`] as Stripe's events do. `true` when the plan
/// moved.
pub async fn bill_due_period(app: &App, state: &WorkspaceState) -> Result<bool, ApiError> {
    let payments = app.payments().await?;
    let Gateway::Offline(_) = &payments.gateway else {
        // Stripe bills on its own; nothing to do here.
        return Ok(false);
    };
    let Some(period) = next_invoice_period(&state.lifecycle, &app.durations) else {
        return Ok(false);
    };
    let workspace = &state.workspace;
    let invoice = local_invoice(app, workspace, &period);
    let recorded = charge_invoice(app, workspace, invoice, period).await?;
    Ok(recorded == Recorded::Applied)
}

/// An offline subscription checkout outside a trial: its first period is invoiced and charged
/// now, as Stripe's checkout does.
pub async fn bill_subscription_start(
    app: &App,
    workspace_id: &crate::domain::ids::WorkspaceId,
) -> Result<(), ApiError> {
    let Some(state) = app.store.get_workspace_state(workspace_id).await? else {
        return Ok(());
    };
    if matches!(
        state.lifecycle.status,
        crate::domain::workspace::PlanStatus::Promo | crate::domain::workspace::PlanStatus::Deleted
    ) {
        return Ok(());
    }
    let start = app
        .clock
        .now()
        .replace_nanosecond(0)
        .unwrap_or(app.clock.now());
    let period = BilledPeriod {
        start,
        end: app.durations.period.after(start),
    };
    let workspace = &state.workspace;
    let invoice = local_invoice(app, workspace, &period);
    charge_invoice(app, workspace, invoice, period).await?;
    Ok(())
}

/// Charges an offline invoice with the saved method and records the outcome.
async fn charge_invoice(
    app: &App,
    workspace: &Workspace,
    mut invoice: Invoice,
    period: BilledPeriod,
) -> Result<Recorded, ApiError> {
    let profile = app.store.billing_profile(&workspace.id).await?;
    let payments = app.payments().await?;
    let paid = match (&profile.customer_id, &profile.payment_method_id) {
        (Some(customer), Some(method)) => {
            let now = app.clock.now().unix_timestamp();
            let charge = payments
                .gateway
                .charge_off_session(
                    customer,
                    method,
                    invoice.amount_due_cents,
                    &PaymentMetadata::new(&workspace.id, PaymentKind::Invoice).to_stripe(),
                    // One attempt per invoice and second: a retry later is a new attempt.
                    &format!("invoice:{}:{now}", invoice.id),
                )
                .await?;
            matches!(charge, Charge::Succeeded { .. })
        }
        _ => false,
    };
    if paid {
        invoice.status = InvoiceStatus::Paid;
        invoice.amount_paid_cents = invoice.amount_due_cents;
    }
    let report = InvoiceReport {
        invoice,
        outcome: if paid {
            InvoiceOutcome::Paid
        } else {
            InvoiceOutcome::PaymentFailed
        },
        period: Some(period),
        reported_at: app.clock.now().unix_timestamp(),
    };
    record_invoice(app, workspace, &report, None).await
}

/// A method was fixed on a suspended workspace: its open invoice is paid again (Stripe: asked
/// to pay it, its `invoice.paid` moves the plan; offline: charged now).
pub async fn retry_open_invoice(app: &App, workspace: &Workspace) -> Result<(), ApiError> {
    let Some(open) = app.store.latest_open_invoice(&workspace.id).await? else {
        return Ok(());
    };
    let payments = app.payments().await?;
    match &payments.gateway {
        Gateway::Stripe(stripe) => stripe.pay_invoice(&open.id).await?,
        Gateway::Offline(_) => {
            let period = match (&open.period_start, &open.period_end) {
                (Some(start), Some(end)) => parse_period(start, end),
                _ => None,
            };
            if let Some(period) = period {
                charge_invoice(app, workspace, open, period).await?;
            }
        }
    }
    Ok(())
}

fn parse_period(start: &str, end: &str) -> Option<BilledPeriod> {
    let parse = |text: &str| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
    };
    Some(BilledPeriod {
        start: parse(start)?,
        end: parse(end)?,
    })
}
