//! The Stripe webhook: the signature is checked over the raw body, the event is parsed once
//! into its type, and each is handed to its billing operation. Each event id takes effect
//! once (its claim is written in the same transaction as its effect), an older event never
//! overwrites newer state, and events it doesn't act on are acknowledged. Answers: 2xx when
//! done or ignored, 400 for a bad signature or body, 5xx only for transient failures so Stripe
//! retries.

use crate::app::App;
pub use crate::billing::Handled;
use crate::billing::{checkout, invoices, payments, subscriptions};
use crate::http::{ApiError, Ctx, Reply};
use crate::payments::events::{EventKind, StripeEvent};
use crate::payments::signature;
use schemars::JsonSchema;
use serde::Serialize;

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
    let event = StripeEvent::parse(&cx.req.body)
        .map_err(|e| ApiError::InvalidRequest(format!("not a Stripe event: {e}")))?;
    let handled = if cx.app.store.event_claimed(&event.id).await? {
        Handled::Duplicate
    } else {
        handle(cx.app, &event).await?
    };
    tracing::info!(event = %event.id, kind = %event.type_name, ?handled, "stripe event");
    Reply::ok(&Received {
        received: true,
        handled,
    })
}

async fn handle(app: &App, event: &StripeEvent) -> Result<Handled, ApiError> {
    let claim = app
        .store
        .event_claim(&event.id, app.clock.now().unix_timestamp())?;
    let at = event.created;
    match &event.kind {
        EventKind::CheckoutCompleted(session) => {
            checkout::checkout_completed(app, session, at, Some(claim)).await
        }
        EventKind::Subscription(change, subscription) => {
            subscriptions::subscription_reported(app, *change, subscription, at, claim).await
        }
        EventKind::Invoice(change, invoice) => {
            invoices::invoice_reported(app, *change, invoice, at, claim).await
        }
        EventKind::SetupSucceeded(intent) => {
            subscriptions::setup_succeeded(app, intent, claim).await
        }
        EventKind::PaymentIntent(change, intent) => {
            payments::payment_intent_reported(app, *change, intent, claim).await
        }
        EventKind::ChargeRefunded(charge) => payments::charge_refunded(app, charge, claim).await,
        EventKind::Other => Ok(Handled::Ignored),
    }
}
