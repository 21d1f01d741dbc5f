//! Stripe's webhook events, parsed once into our own types holding just the fields the
//! backend reads. Our own small serde types rather than `async-stripe-webhook`: that crate
//! deserializes every event into async-stripe's full object graph (`stripe_shared`'s
//! `Invoice`, `Charge`, `Subscription`… with all their nested types), which the webhook
//! binary is built without on purpose (docs/BENCHMARKS.md). The signature is checked by
//! [`super::signature`] before anything is parsed.
//!
//! Every field is optional or defaulted unless Stripe always sends it, and unknown fields are
//! ignored, so a real object (with its many other fields) parses; event types not handled
//! here are [`EventKind::Other`], acknowledged without effect.

use super::metadata::PaymentMetadata;
use crate::domain::invoice::InvoiceStatus;
use crate::domain::lifecycle::BilledPeriod;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

/// One webhook delivery.
#[derive(Debug)]
pub struct StripeEvent {
    /// `evt_…`: each takes effect once.
    pub id: String,
    /// Stripe's `type`, for the log.
    pub type_name: String,
    /// Unix seconds: orders deliveries of the same object.
    pub created: i64,
    pub kind: EventKind,
}

/// The events the backend acts on, each with its object.
#[derive(Debug)]
pub enum EventKind {
    /// `checkout.session.completed` and `checkout.session.async_payment_succeeded`.
    CheckoutCompleted(CheckoutSession),
    /// `customer.subscription.created|updated|deleted`.
    Subscription(SubscriptionChange, Subscription),
    /// `invoice.created|finalized|paid|payment_failed|voided`.
    Invoice(InvoiceChange, Invoice),
    /// `setup_intent.succeeded`.
    SetupSucceeded(SetupIntent),
    /// `payment_intent.succeeded|payment_failed|canceled|requires_action`.
    PaymentIntent(PaymentIntentChange, PaymentIntent),
    /// `charge.refunded`.
    ChargeRefunded(Charge),
    /// Any other type: acknowledged, nothing done.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionChange {
    Created,
    Updated,
    Deleted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvoiceChange {
    Created,
    Finalized,
    Paid,
    PaymentFailed,
    Voided,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentIntentChange {
    Succeeded,
    PaymentFailed,
    Canceled,
    RequiresAction,
}

impl StripeEvent {
    /// Parses a (verified) webhook body: the envelope, then the object as its type says.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Envelope {
            id: String,
            #[serde(rename = "type")]
            type_name: String,
            created: i64,
            data: Data,
        }
        #[derive(Deserialize)]
        struct Data {
            object: Value,
        }
        let Envelope {
            id,
            type_name,
            created,
            data: Data { object },
        } = serde_json::from_slice(body)?;
        use serde_json::from_value as typed;
        let kind = match type_name.as_str() {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                EventKind::CheckoutCompleted(typed(object)?)
            }
            "customer.subscription.created" => {
                EventKind::Subscription(SubscriptionChange::Created, typed(object)?)
            }
            "customer.subscription.updated" => {
                EventKind::Subscription(SubscriptionChange::Updated, typed(object)?)
            }
            "customer.subscription.deleted" => {
                EventKind::Subscription(SubscriptionChange::Deleted, typed(object)?)
            }
            "invoice.created" => EventKind::Invoice(InvoiceChange::Created, typed(object)?),
            "invoice.finalized" => EventKind::Invoice(InvoiceChange::Finalized, typed(object)?),
            "invoice.paid" => EventKind::Invoice(InvoiceChange::Paid, typed(object)?),
            "invoice.payment_failed" => {
                EventKind::Invoice(InvoiceChange::PaymentFailed, typed(object)?)
            }
            "invoice.voided" => EventKind::Invoice(InvoiceChange::Voided, typed(object)?),
            "setup_intent.succeeded" => EventKind::SetupSucceeded(typed(object)?),
            "payment_intent.succeeded" => {
                EventKind::PaymentIntent(PaymentIntentChange::Succeeded, typed(object)?)
            }
            "payment_intent.payment_failed" => {
                EventKind::PaymentIntent(PaymentIntentChange::PaymentFailed, typed(object)?)
            }
            "payment_intent.canceled" => {
                EventKind::PaymentIntent(PaymentIntentChange::Canceled, typed(object)?)
            }
            "payment_intent.requires_action" => {
                EventKind::PaymentIntent(PaymentIntentChange::RequiresAction, typed(object)?)
            }
            "charge.refunded" => EventKind::ChargeRefunded(typed(object)?),
            _ => EventKind::Other,
        };
        Ok(Self {
            id,
            type_name,
            created,
            kind,
        })
    }
}

fn unix(seconds: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

/// A Checkout Session (`cs_…`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub payment_status: Option<CheckoutPaymentStatus>,
    /// What the customer paid, in cents (after discounts).
    pub amount_total: Option<i64>,
    /// Its PaymentIntent (credits): what Stripe's refunds name.
    pub payment_intent: Option<String>,
    /// The subscription it started (a subscription checkout).
    pub subscription: Option<String>,
    /// Not on Stripe's sessions (their method lands by `setup_intent.succeeded` or on the
    /// subscription): the card an offline checkout "collected".
    pub payment_method: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutPaymentStatus {
    Paid,
    NoPaymentRequired,
    Unpaid,
    #[serde(other)]
    Other,
}

impl CheckoutSession {
    /// Paid (or nothing to pay): an asynchronous payment is not, until
    /// `async_payment_succeeded`.
    pub fn is_paid(&self) -> bool {
        matches!(
            self.payment_status,
            Some(CheckoutPaymentStatus::Paid | CheckoutPaymentStatus::NoPaymentRequired)
        )
    }
}

/// A subscription (`sub_…`).
#[derive(Clone, Debug, Deserialize)]
pub struct Subscription {
    pub id: String,
    /// Stripe's status (`trialing`, `active`, `past_due`, `canceled`, `unpaid`…), mirrored
    /// as it is.
    pub status: Option<String>,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    pub customer: Option<String>,
    #[serde(default)]
    pub metadata: PaymentMetadata,
}

/// An invoice (`in_…`).
#[derive(Clone, Debug, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub status: Option<String>,
    pub number: Option<String>,
    #[serde(default)]
    pub amount_due: i64,
    #[serde(default)]
    pub amount_paid: i64,
    pub currency: Option<String>,
    /// Unix seconds; for a subscription's invoice, the period before the one it bills.
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub lines: Option<InvoiceLines>,
    /// Before API version 2025-03-31: the subscription it bills (an id, or expanded).
    pub subscription: Option<IgnoredAny>,
    /// Since 2025-03-31: what made it (`parent.subscription_details.subscription`).
    pub parent: Option<InvoiceParent>,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    /// Unix seconds.
    pub created: Option<i64>,
    pub customer: Option<String>,
    #[serde(default)]
    pub metadata: PaymentMetadata,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct InvoiceLines {
    #[serde(default)]
    pub data: Vec<InvoiceLine>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct InvoiceLine {
    pub period: Option<LinePeriod>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
pub struct LinePeriod {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct InvoiceParent {
    pub subscription_details: Option<SubscriptionDetails>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SubscriptionDetails {
    pub subscription: Option<IgnoredAny>,
}

impl Invoice {
    /// The service period it bills: its first line's (a subscription invoice's own
    /// `period_*` is the period before), else the invoice's.
    pub fn billed_period(&self) -> Option<BilledPeriod> {
        let line_period = self
            .lines
            .as_ref()
            .and_then(|lines| lines.data.first())
            .and_then(|line| line.period);
        let (start, end) = match line_period {
            Some(period) => (period.start?, period.end?),
            None => (self.period_start?, self.period_end?),
        };
        Some(BilledPeriod {
            start: unix(start)?,
            end: unix(end)?,
        })
    }

    /// A subscription's invoice (only those move the plan).
    pub fn bills_subscription(&self) -> bool {
        self.subscription.is_some()
            || self
                .parent
                .as_ref()
                .and_then(|parent| parent.subscription_details.as_ref())
                .is_some_and(|details| details.subscription.is_some())
    }

    /// Its status once `change` happened: paid and voided say so themselves; otherwise the
    /// object's (open when unknown).
    pub fn status_after(&self, change: InvoiceChange) -> InvoiceStatus {
        match change {
            InvoiceChange::Paid => InvoiceStatus::Paid,
            InvoiceChange::Voided => InvoiceStatus::Void,
            _ => self
                .status
                .as_deref()
                .and_then(InvoiceStatus::parse)
                .unwrap_or(InvoiceStatus::Open),
        }
    }

    pub fn created_at(&self) -> Option<OffsetDateTime> {
        self.created.and_then(unix)
    }
}

/// A SetupIntent (`seti_…`).
#[derive(Clone, Debug, Deserialize)]
pub struct SetupIntent {
    /// The method it set up (`pm_…`).
    pub payment_method: Option<String>,
    pub customer: Option<String>,
    #[serde(default)]
    pub metadata: PaymentMetadata,
}

/// A PaymentIntent (`pi_…`).
#[derive(Clone, Debug, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub amount: Option<i64>,
    pub amount_received: Option<i64>,
    pub client_secret: Option<String>,
    pub last_payment_error: Option<PaymentError>,
    pub customer: Option<String>,
    #[serde(default)]
    pub metadata: PaymentMetadata,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PaymentError {
    pub code: Option<String>,
}

impl PaymentIntent {
    /// What it took: the amount received, else the amount asked.
    pub fn amount_paid(&self) -> Option<i64> {
        self.amount_received.or(self.amount)
    }

    /// Failed because the bank wants the customer to authenticate (off-session 3-D Secure):
    /// a charge waiting for the customer, not a failure.
    pub fn needs_authentication(&self) -> bool {
        self.last_payment_error
            .as_ref()
            .and_then(|error| error.code.as_deref())
            == Some("authentication_required")
    }
}

/// A charge (`ch_…`).
#[derive(Clone, Debug, Deserialize)]
pub struct Charge {
    pub id: String,
    /// The charge's refunded total so far, in cents.
    #[serde(default)]
    pub amount_refunded: i64,
    pub payment_intent: Option<String>,
    pub customer: Option<String>,
    #[serde(default)]
    pub metadata: PaymentMetadata,
}
