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

#[cfg(test)]
mod tests {
    //! Objects shaped as Stripe's API reference shows them (trimmed of fields that don't
    //! change the parse, but keeping nested objects, nulls and lists like the real ones).
    use super::*;
    use crate::payments::metadata::PaymentKind;
    use serde_json::json;

    const WORKSPACE: &str = "ws_01hzy3k4m5n6p7q8r9s0t1v2w3";
    const ACCOUNT: &str = "ba_01hzy3k4m5n6p7q8r9s0t1v2w3";

    fn parse(kind: &str, object: Value) -> StripeEvent {
        let body = json!({
            "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": 1_686_089_970,
            "data": {"object": object, "previous_attributes": {}},
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "type": kind,
        });
        let event = StripeEvent::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(event.id, "evt_1NG8Du2eZvKYlo2CUI79vXWy");
        assert_eq!(event.type_name, kind);
        assert_eq!(event.created, 1_686_089_970);
        event
    }

    fn checkout_session(payment_status: &str) -> Value {
        json!({
            "id": "cs_test_a11YYufWQzNY63zpQ6QSNRQhkUpVph4WRmzW0zWJO2znZKdVujZ0N0S22u",
            "object": "checkout.session",
            "after_expiration": null,
            "allow_promotion_codes": null,
            "amount_subtotal": 2198,
            "amount_total": 2198,
            "automatic_tax": {"enabled": false, "liability": null, "status": null},
            "cancel_url": null,
            "client_reference_id": null,
            "created": 1_679_600_215,
            "currency": "usd",
            "customer": "cus_NeZwdNtLEOXuvB",
            "customer_details": {"email": "jenny.rosen@example.com", "name": null},
            "expires_at": 1_679_686_615,
            "livemode": false,
            "metadata": {"workspace_id": WORKSPACE, "billing_account_id": ACCOUNT, "kind": "credits"},
            "mode": "payment",
            "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "payment_method_types": ["card"],
            "payment_status": payment_status,
            "status": "complete",
            "subscription": null,
            "success_url": "https://example.com/success",
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "url": null
        })
    }

    #[test]
    fn a_completed_checkout_session() {
        for kind in [
            "checkout.session.completed",
            "checkout.session.async_payment_succeeded",
        ] {
            let EventKind::CheckoutCompleted(session) = parse(kind, checkout_session("paid")).kind
            else {
                panic!("not a checkout completion");
            };
            assert!(session.id.starts_with("cs_test_"));
            assert!(session.is_paid());
            assert_eq!(session.amount_total, Some(2198));
            assert_eq!(
                session.payment_intent.as_deref(),
                Some("pi_3MtwBwLkdIwHu7ix28a3tqPa")
            );
            assert_eq!(session.subscription, None);
            assert_eq!(session.payment_method, None);
        }
        let EventKind::CheckoutCompleted(unpaid) =
            parse("checkout.session.completed", checkout_session("unpaid")).kind
        else {
            panic!("not a checkout completion");
        };
        assert!(!unpaid.is_paid());
        let EventKind::CheckoutCompleted(unknown) = parse(
            "checkout.session.completed",
            checkout_session("a_status_added_later"),
        )
        .kind
        else {
            panic!("not a checkout completion");
        };
        assert!(!unknown.is_paid());
    }

    fn subscription(status: &str, cancel_at_period_end: bool) -> Value {
        json!({
            "id": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
            "object": "subscription",
            "application": null,
            "automatic_tax": {"enabled": false, "liability": null},
            "billing_cycle_anchor": 1_679_609_767,
            "cancel_at": null,
            "cancel_at_period_end": cancel_at_period_end,
            "canceled_at": null,
            "collection_method": "charge_automatically",
            "created": 1_679_609_767,
            "currency": "usd",
            "customer": "cus_Na6dX7aXxi11N4",
            "default_payment_method": "pm_1MowQULkdIwHu7ixraBm4o3G",
            "discounts": [],
            "items": {
                "object": "list",
                "data": [{
                    "id": "si_Na6dzxczY5fwHx",
                    "object": "subscription_item",
                    "current_period_end": 1_682_288_167,
                    "current_period_start": 1_679_609_767,
                    "price": {"id": "price_1MowQULkdIwHu7ixspc", "object": "price", "unit_amount": 2400},
                    "quantity": 1
                }],
                "has_more": false,
                "url": "/v1/subscription_items?subscription=sub_1MowQVLkdIwHu7ixeRlqHVzs"
            },
            "latest_invoice": "in_1MowQWLkdIwHu7ixuzkSPfKd",
            "livemode": false,
            "metadata": {"workspace_id": WORKSPACE, "plan_id": "pro"},
            "status": status,
            "trial_end": 1_679_609_767,
            "trial_start": null
        })
    }

    #[test]
    fn subscription_events() {
        for (kind, change) in [
            ("customer.subscription.created", SubscriptionChange::Created),
            ("customer.subscription.updated", SubscriptionChange::Updated),
            ("customer.subscription.deleted", SubscriptionChange::Deleted),
        ] {
            let EventKind::Subscription(parsed, subscription) =
                parse(kind, subscription("active", true)).kind
            else {
                panic!("not a subscription event");
            };
            assert_eq!(parsed, change);
            assert_eq!(subscription.id, "sub_1MowQVLkdIwHu7ixeRlqHVzs");
            assert_eq!(subscription.status.as_deref(), Some("active"));
            assert!(subscription.cancel_at_period_end);
            assert_eq!(subscription.customer.as_deref(), Some("cus_Na6dX7aXxi11N4"));
            assert_eq!(
                subscription
                    .metadata
                    .workspace_id
                    .as_ref()
                    .map(|w| w.as_str()),
                Some(WORKSPACE)
            );
            assert_eq!(subscription.metadata.plan_id.as_deref(), Some("pro"));
        }
    }

    /// An invoice of API version 2025-03-31 and later: the subscription under `parent`, the
    /// billed period on its line.
    fn basil_invoice(status: &str) -> Value {
        json!({
            "id": "in_1MtHbELkdIwHu7ixl4OzzPMv",
            "object": "invoice",
            "account_country": "US",
            "amount_due": 2400,
            "amount_paid": 2400,
            "amount_remaining": 0,
            "attempt_count": 1,
            "automatic_tax": {"enabled": false, "liability": null, "status": null},
            "billing_reason": "subscription_cycle",
            "collection_method": "charge_automatically",
            "created": 1_680_644_467,
            "currency": "usd",
            "customer": "cus_NeZwdNtLEOXuvB",
            "customer_tax_ids": [],
            "default_payment_method": null,
            "discounts": [],
            "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test_x",
            "invoice_pdf": "https://pay.stripe.com/invoice/acct_1/test_x/pdf",
            "issuer": {"type": "self"},
            "lines": {
                "object": "list",
                "data": [{
                    "id": "il_1MtHbELkdIwHu7ixzRnShNtf",
                    "object": "line_item",
                    "amount": 2400,
                    "currency": "usd",
                    "parent": {
                        "type": "subscription_item_details",
                        "subscription_item_details": {
                            "invoice_item": null,
                            "proration": false,
                            "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
                            "subscription_item": "si_Na6dzxczY5fwHx"
                        }
                    },
                    "period": {"end": 1_683_236_467, "start": 1_680_644_467},
                    "quantity": 1
                }],
                "has_more": false,
                "total_count": 1,
                "url": "/v1/invoices/in_1MtHbELkdIwHu7ixl4OzzPMv/lines"
            },
            "livemode": false,
            "metadata": {},
            "number": "2C9B8C1E-0001",
            "parent": {
                "quote_details": null,
                "subscription_details": {
                    "metadata": {"workspace_id": WORKSPACE},
                    "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs"
                },
                "type": "subscription_details"
            },
            "period_end": 1_680_644_467,
            "period_start": 1_678_052_467,
            "status": status,
            "total": 2400
        })
    }

    #[test]
    fn invoice_events() {
        for (kind, change, status) in [
            (
                "invoice.created",
                InvoiceChange::Created,
                InvoiceStatus::Draft,
            ),
            (
                "invoice.finalized",
                InvoiceChange::Finalized,
                InvoiceStatus::Open,
            ),
            ("invoice.paid", InvoiceChange::Paid, InvoiceStatus::Paid),
            (
                "invoice.payment_failed",
                InvoiceChange::PaymentFailed,
                InvoiceStatus::Open,
            ),
            ("invoice.voided", InvoiceChange::Voided, InvoiceStatus::Void),
        ] {
            let object_status = match change {
                InvoiceChange::Created => "draft",
                InvoiceChange::Paid => "paid",
                InvoiceChange::Voided => "void",
                _ => "open",
            };
            let EventKind::Invoice(parsed, invoice) =
                parse(kind, basil_invoice(object_status)).kind
            else {
                panic!("not an invoice event");
            };
            assert_eq!(parsed, change);
            assert_eq!(invoice.status_after(change), status);
            assert_eq!(invoice.id, "in_1MtHbELkdIwHu7ixl4OzzPMv");
            assert_eq!((invoice.amount_due, invoice.amount_paid), (2400, 2400));
            assert_eq!(invoice.number.as_deref(), Some("2C9B8C1E-0001"));
            assert_eq!(invoice.customer.as_deref(), Some("cus_NeZwdNtLEOXuvB"));
            assert!(invoice.bills_subscription());
            // The line's period, not the invoice's own (the one before).
            let period = invoice.billed_period().unwrap();
            assert_eq!(period.start.unix_timestamp(), 1_680_644_467);
            assert_eq!(period.end.unix_timestamp(), 1_683_236_467);
            assert_eq!(
                invoice.created_at().map(|t| t.unix_timestamp()),
                Some(1_680_644_467)
            );
        }
    }

    #[test]
    fn invoices_of_older_api_versions_and_one_off_invoices() {
        // Before 2025-03-31 the subscription is a top-level field.
        let mut legacy = basil_invoice("paid");
        legacy["parent"] = Value::Null;
        legacy["subscription"] = json!("sub_1MowQVLkdIwHu7ixeRlqHVzs");
        legacy["lines"]["data"] = json!([]);
        let EventKind::Invoice(_, invoice) = parse("invoice.paid", legacy).kind else {
            panic!("not an invoice event");
        };
        assert!(invoice.bills_subscription());
        // No line: the invoice's own period.
        let period = invoice.billed_period().unwrap();
        assert_eq!(period.start.unix_timestamp(), 1_678_052_467);
        // A one-off invoice: no subscription anywhere (null), so it moves no plan.
        let mut one_off = basil_invoice("open");
        one_off["parent"] = json!({"type": "quote_details", "quote_details": {"quote": "qt_1"},
                                   "subscription_details": null});
        one_off["subscription"] = Value::Null;
        one_off["status"] = json!("a_status_added_later");
        let EventKind::Invoice(_, invoice) = parse("invoice.finalized", one_off).kind else {
            panic!("not an invoice event");
        };
        assert!(!invoice.bills_subscription());
        assert_eq!(
            invoice.status_after(InvoiceChange::Finalized),
            InvoiceStatus::Open
        );
    }

    #[test]
    fn a_succeeded_setup_intent() {
        let object = json!({
            "id": "seti_1Mm8s8LkdIwHu7ix0OXBfTRG",
            "object": "setup_intent",
            "application": null,
            "automatic_payment_methods": null,
            "cancellation_reason": null,
            "client_secret": "seti_1Mm8s8LkdIwHu7ix0OXBfTRG_secret_NXDICkPqPeiBTAFqWmkbff09lRmSVXe",
            "created": 1_678_942_624,
            "customer": "cus_NeZwdNtLEOXuvB",
            "description": null,
            "last_setup_error": null,
            "latest_attempt": "setatt_1Mm8s9LkdIwHu7ixXyOSL8Qb",
            "livemode": false,
            "mandate": null,
            "metadata": {},
            "next_action": null,
            "payment_method": "pm_1Mm8s8LkdIwHu7ixpA8fLRZi",
            "payment_method_options": {"card": {"mandate_options": null, "network": null,
                                                 "request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"],
            "status": "succeeded",
            "usage": "off_session"
        });
        let EventKind::SetupSucceeded(intent) = parse("setup_intent.succeeded", object).kind else {
            panic!("not a setup intent");
        };
        assert_eq!(
            intent.payment_method.as_deref(),
            Some("pm_1Mm8s8LkdIwHu7ixpA8fLRZi")
        );
        assert_eq!(intent.customer.as_deref(), Some("cus_NeZwdNtLEOXuvB"));
        assert_eq!(intent.metadata.workspace_id, None);
    }

    fn payment_intent(status: &str, last_payment_error: Value) -> Value {
        json!({
            "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "object": "payment_intent",
            "amount": 2000,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": if status == "succeeded" { 2000 } else { 0 },
            "application": null,
            "automatic_payment_methods": {"enabled": true},
            "canceled_at": null,
            "cancellation_reason": null,
            "capture_method": "automatic",
            "client_secret": "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH",
            "confirmation_method": "automatic",
            "created": 1_680_800_504,
            "currency": "usd",
            "customer": "cus_NeZwdNtLEOXuvB",
            "last_payment_error": last_payment_error,
            "latest_charge": "ch_3MtwBwLkdIwHu7ix2l4ziYkN",
            "livemode": false,
            "metadata": {"workspace_id": WORKSPACE, "billing_account_id": ACCOUNT,
                         "kind": "auto_recharge", "recharge_marker": "1680800500123"},
            "next_action": null,
            "payment_method": "pm_1MtwBwLkdIwHu7ixM4a8X9Kx",
            "payment_method_types": ["card"],
            "setup_future_usage": null,
            "status": status
        })
    }

    #[test]
    fn payment_intent_events() {
        let declined = json!({
            "code": "authentication_required",
            "decline_code": "authentication_required",
            "doc_url": "https://stripe.com/docs/error-codes/authentication-required",
            "message": "Your card was declined. This transaction requires authentication.",
            "payment_method": {"id": "pm_1MtwBwLkdIwHu7ixM4a8X9Kx", "object": "payment_method"},
            "type": "card_error"
        });
        for (kind, change, status, error) in [
            (
                "payment_intent.succeeded",
                PaymentIntentChange::Succeeded,
                "succeeded",
                Value::Null,
            ),
            (
                "payment_intent.payment_failed",
                PaymentIntentChange::PaymentFailed,
                "requires_payment_method",
                declined.clone(),
            ),
            (
                "payment_intent.canceled",
                PaymentIntentChange::Canceled,
                "canceled",
                Value::Null,
            ),
            (
                "payment_intent.requires_action",
                PaymentIntentChange::RequiresAction,
                "requires_action",
                Value::Null,
            ),
        ] {
            let EventKind::PaymentIntent(parsed, intent) =
                parse(kind, payment_intent(status, error.clone())).kind
            else {
                panic!("not a payment intent event");
            };
            assert_eq!(parsed, change);
            assert_eq!(intent.id, "pi_3MtwBwLkdIwHu7ix28a3tqPa");
            assert_eq!(intent.amount, Some(2000));
            assert_eq!(intent.needs_authentication(), !error.is_null());
            assert!(intent
                .client_secret
                .as_deref()
                .is_some_and(|s| s.contains("_secret_")));
            let metadata = &intent.metadata;
            assert_eq!(metadata.kind, Some(PaymentKind::AutoRecharge));
            assert_eq!(
                metadata.billing_account_id.as_ref().map(|a| a.as_str()),
                Some(ACCOUNT)
            );
            assert_eq!(metadata.recharge_marker, Some(1_680_800_500_123));
        }
        let EventKind::PaymentIntent(_, succeeded) = parse(
            "payment_intent.succeeded",
            payment_intent("succeeded", Value::Null),
        )
        .kind
        else {
            panic!("not a payment intent event");
        };
        assert_eq!(succeeded.amount_paid(), Some(2000));
    }

    #[test]
    fn a_refunded_charge() {
        let object = json!({
            "id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
            "object": "charge",
            "amount": 1099,
            "amount_captured": 1099,
            "amount_refunded": 500,
            "balance_transaction": "txn_3MmlLrLkdIwHu7ix0uke3Ezy",
            "billing_details": {"address": {"city": null, "country": null}, "email": null},
            "captured": true,
            "created": 1_679_090_539,
            "currency": "usd",
            "customer": "cus_NeZwdNtLEOXuvB",
            "disputed": false,
            "livemode": false,
            "metadata": {"workspace_id": WORKSPACE, "kind": "top_up"},
            "outcome": {"network_status": "approved_by_network", "risk_level": "normal",
                        "seller_message": "Payment complete.", "type": "authorized"},
            "paid": true,
            "payment_intent": "pi_3MmlLrLkdIwHu7ix0Ozk5GKm",
            "payment_method": "pm_1MmlLrLkdIwHu7ixIJwEWSNR",
            "payment_method_details": {"card": {"brand": "visa", "last4": "4242"}, "type": "card"},
            "refunded": false,
            "refunds": {"object": "list", "data": [{"id": "re_1", "object": "refund", "amount": 500}],
                        "has_more": false, "url": "/v1/charges/ch_3MmlLrLkdIwHu7ix0snN0B15/refunds"},
            "status": "succeeded"
        });
        let EventKind::ChargeRefunded(charge) = parse("charge.refunded", object).kind else {
            panic!("not a refund");
        };
        assert_eq!(charge.id, "ch_3MmlLrLkdIwHu7ix0snN0B15");
        assert_eq!(charge.amount_refunded, 500);
        assert_eq!(
            charge.payment_intent.as_deref(),
            Some("pi_3MmlLrLkdIwHu7ix0Ozk5GKm")
        );
        assert_eq!(charge.metadata.kind, Some(PaymentKind::TopUp));
    }

    #[test]
    fn an_unknown_type_is_other_whatever_its_object() {
        let event = parse(
            "customer.tax_id.created",
            json!({"id": "txi_1", "object": "tax_id", "country": "DE", "value": 12}),
        );
        assert!(matches!(event.kind, EventKind::Other));
    }

    #[test]
    fn a_handled_type_whose_object_is_not_its_type_is_refused() {
        let body = json!({"id": "evt_1", "type": "charge.refunded", "created": 1,
                          "data": {"object": {"object": "charge", "amount_refunded": 5}}});
        assert!(StripeEvent::parse(body.to_string().as_bytes()).is_err());
        assert!(StripeEvent::parse(b"{\"id\": \"evt_1\"}").is_err());
    }
}
