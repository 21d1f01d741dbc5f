//! Billing events: the facts the platform's backend reacts to. One enum of every type with its
//! typed `data`, so a writer can only record a type the contract has, with the fields it
//! promises; the JSON each one becomes is the webhook body and the EventBridge `Detail`.

use super::calendar::Month;
use super::ids::{BillingAccountId, EventId, WorkspaceId};
use super::workspace::PlanStatus;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An event's type, as endpoints subscribe to it (`events`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "subscription.created")]
    SubscriptionCreated,
    #[serde(rename = "subscription.updated")]
    SubscriptionUpdated,
    #[serde(rename = "subscription.canceled")]
    SubscriptionCanceled,
    #[serde(rename = "invoice.paid")]
    InvoicePaid,
    #[serde(rename = "invoice.payment_failed")]
    InvoicePaymentFailed,
    #[serde(rename = "plan_status.changed")]
    PlanStatusChanged,
    #[serde(rename = "credits.purchased")]
    CreditsPurchased,
    #[serde(rename = "credits.low")]
    CreditsLow,
    #[serde(rename = "credits.hard_cap_reached")]
    CreditsHardCapReached,
    #[serde(rename = "auto_recharge.succeeded")]
    AutoRechargeSucceeded,
    #[serde(rename = "auto_recharge.requires_action")]
    AutoRechargeRequiresAction,
    #[serde(rename = "auto_recharge.failed")]
    AutoRechargeFailed,
}

impl EventType {
    pub const ALL: [EventType; 12] = [
        EventType::SubscriptionCreated,
        EventType::SubscriptionUpdated,
        EventType::SubscriptionCanceled,
        EventType::InvoicePaid,
        EventType::InvoicePaymentFailed,
        EventType::PlanStatusChanged,
        EventType::CreditsPurchased,
        EventType::CreditsLow,
        EventType::CreditsHardCapReached,
        EventType::AutoRechargeSucceeded,
        EventType::AutoRechargeRequiresAction,
        EventType::AutoRechargeFailed,
    ];

    /// The contract's name (`credits.low`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SubscriptionCreated => "subscription.created",
            EventType::SubscriptionUpdated => "subscription.updated",
            EventType::SubscriptionCanceled => "subscription.canceled",
            EventType::InvoicePaid => "invoice.paid",
            EventType::InvoicePaymentFailed => "invoice.payment_failed",
            EventType::PlanStatusChanged => "plan_status.changed",
            EventType::CreditsPurchased => "credits.purchased",
            EventType::CreditsLow => "credits.low",
            EventType::CreditsHardCapReached => "credits.hard_cap_reached",
            EventType::AutoRechargeSucceeded => "auto_recharge.succeeded",
            EventType::AutoRechargeRequiresAction => "auto_recharge.requires_action",
            EventType::AutoRechargeFailed => "auto_recharge.failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionData {
    pub subscription_id: String,
    /// Stripe's vocabulary (`active`, `past_due`, `canceled`…).
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceData {
    pub invoice_id: String,
    pub amount_due_cents: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStatusData {
    pub from: PlanStatus,
    pub to: PlanStatus,
    /// What moved it (`trial_ended`, `invoice_paid`…: the lifecycle trigger's name).
    pub trigger: String,
    pub changed_at: String,
}

/// How credits were bought.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseMethod {
    StripeCheckout,
    TopUp,
    X402,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PurchaseData {
    pub amount_cents: i64,
    pub method: PurchaseMethod,
    /// The checkout session id, the PaymentIntent id, or the x402 settlement `transaction`.
    pub reference: String,
    /// The x402 payer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
}

/// Whose limit a `credits.low` or `credits.hard_cap_reached` is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// The account's monthly cap.
    Account,
    /// The workspace's monthly cap.
    Workspace,
    /// The account's auto-recharge threshold (available credit, not spend).
    Balance,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LimitData {
    pub scope: LimitScope,
    /// The cap, or the threshold.
    pub cap_cents: i64,
    pub spent_cents: i64,
    pub available_cents: i64,
    pub month: Month,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RechargePaymentData {
    pub payment_intent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RechargeFailedData {
    pub amount_cents: i64,
    pub reason: String,
}

/// An event's type with its `data`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventPayload {
    #[serde(rename = "subscription.created")]
    SubscriptionCreated(SubscriptionData),
    #[serde(rename = "subscription.updated")]
    SubscriptionUpdated(SubscriptionData),
    #[serde(rename = "subscription.canceled")]
    SubscriptionCanceled(SubscriptionData),
    #[serde(rename = "invoice.paid")]
    InvoicePaid(InvoiceData),
    #[serde(rename = "invoice.payment_failed")]
    InvoicePaymentFailed(InvoiceData),
    #[serde(rename = "plan_status.changed")]
    PlanStatusChanged(PlanStatusData),
    #[serde(rename = "credits.purchased")]
    CreditsPurchased(PurchaseData),
    #[serde(rename = "credits.low")]
    CreditsLow(LimitData),
    #[serde(rename = "credits.hard_cap_reached")]
    CreditsHardCapReached(LimitData),
    #[serde(rename = "auto_recharge.succeeded")]
    AutoRechargeSucceeded(RechargePaymentData),
    #[serde(rename = "auto_recharge.requires_action")]
    AutoRechargeRequiresAction(RechargePaymentData),
    #[serde(rename = "auto_recharge.failed")]
    AutoRechargeFailed(RechargeFailedData),
}

impl EventPayload {
    pub fn event_type(&self) -> EventType {
        match self {
            EventPayload::SubscriptionCreated(_) => EventType::SubscriptionCreated,
            EventPayload::SubscriptionUpdated(_) => EventType::SubscriptionUpdated,
            EventPayload::SubscriptionCanceled(_) => EventType::SubscriptionCanceled,
            EventPayload::InvoicePaid(_) => EventType::InvoicePaid,
            EventPayload::InvoicePaymentFailed(_) => EventType::InvoicePaymentFailed,
            EventPayload::PlanStatusChanged(_) => EventType::PlanStatusChanged,
            EventPayload::CreditsPurchased(_) => EventType::CreditsPurchased,
            EventPayload::CreditsLow(_) => EventType::CreditsLow,
            EventPayload::CreditsHardCapReached(_) => EventType::CreditsHardCapReached,
            EventPayload::AutoRechargeSucceeded(_) => EventType::AutoRechargeSucceeded,
            EventPayload::AutoRechargeRequiresAction(_) => EventType::AutoRechargeRequiresAction,
            EventPayload::AutoRechargeFailed(_) => EventType::AutoRechargeFailed,
        }
    }
}

/// One billing event: `{"id", "type", "timestamp", "workspace_id", "billing_account_id", "data"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    /// When the cause committed (RFC 3339, whole seconds).
    pub timestamp: String,
    pub workspace_id: Option<WorkspaceId>,
    pub billing_account_id: BillingAccountId,
    pub payload: EventPayload,
}

/// The wire shape, in the contract's field order.
#[derive(Serialize, Deserialize)]
struct Wire {
    id: EventId,
    #[serde(rename = "type")]
    kind: String,
    timestamp: String,
    workspace_id: Option<WorkspaceId>,
    billing_account_id: BillingAccountId,
    data: serde_json::Value,
}

impl Event {
    /// A new event, committed at `millis` (its id sorts by that time) and `timestamp`.
    pub fn new(
        payload: EventPayload,
        workspace_id: Option<&WorkspaceId>,
        billing_account_id: &BillingAccountId,
        timestamp: &str,
        millis: u64,
    ) -> Self {
        Self {
            id: EventId::generate(millis),
            timestamp: timestamp.to_owned(),
            workspace_id: workspace_id.cloned(),
            billing_account_id: billing_account_id.clone(),
            payload,
        }
    }

    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// The compact JSON body: the same bytes for every attempt, endpoint and publication.
    pub fn to_json(&self) -> String {
        let tagged = serde_json::to_value(&self.payload).expect("event payloads serialize");
        let wire = Wire {
            id: self.id.clone(),
            kind: self.event_type().as_str().to_owned(),
            timestamp: self.timestamp.clone(),
            workspace_id: self.workspace_id.clone(),
            billing_account_id: self.billing_account_id.clone(),
            data: tagged.get("data").cloned().unwrap_or_default(),
        };
        serde_json::to_string(&wire).expect("events serialize")
    }

    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        Self::from_value(serde_json::from_str(text)?)
    }

    pub fn from_value(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        let wire: Wire = serde_json::from_value(value)?;
        let payload = serde_json::from_value(serde_json::json!({
            "type": wire.kind,
            "data": wire.data,
        }))?;
        Ok(Self {
            id: wire.id,
            timestamp: wire.timestamp,
            workspace_id: wire.workspace_id,
            billing_account_id: wire.billing_account_id,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase() -> Event {
        Event {
            id: EventId::parse("evt_0001abcdefgh").unwrap(),
            timestamp: "2026-11-23T12:00:00Z".into(),
            workspace_id: WorkspaceId::parse("ws_1abcdefgh"),
            billing_account_id: BillingAccountId::parse("ba_1abcdefgh").unwrap(),
            payload: EventPayload::CreditsPurchased(PurchaseData {
                amount_cents: 2000,
                method: PurchaseMethod::StripeCheckout,
                reference: "cs_1".into(),
                payer: None,
            }),
        }
    }

    #[test]
    fn an_event_is_written_in_the_contracts_field_order() {
        assert_eq!(
            purchase().to_json(),
            r#"{"id":"evt_0001abcdefgh","type":"credits.purchased","timestamp":"2026-11-23T12:00:00Z","workspace_id":"ws_1abcdefgh","billing_account_id":"ba_1abcdefgh","data":{"amount_cents":2000,"method":"stripe_checkout","reference":"cs_1"}}"#
        );
    }

    #[test]
    fn reading_an_event_back_gives_the_same_bytes() {
        let event = purchase();
        let again = Event::from_json(&event.to_json()).unwrap();
        assert_eq!(again, event);
        assert_eq!(again.to_json(), event.to_json());
    }

    #[test]
    fn each_payloads_type_is_the_name_endpoints_subscribe_to() {
        let low = LimitData {
            scope: LimitScope::Balance,
            cap_cents: 500,
            spent_cents: 10,
            available_cents: 400,
            month: Month::parse("2026-03").unwrap(),
        };
        let payloads = [
            EventPayload::CreditsLow(low.clone()),
            EventPayload::CreditsHardCapReached(low),
            EventPayload::AutoRechargeFailed(RechargeFailedData {
                amount_cents: 1,
                reason: "declined".into(),
            }),
        ];
        for payload in payloads {
            let value = serde_json::to_value(&payload).unwrap();
            assert_eq!(
                EventType::parse(value["type"].as_str().unwrap()),
                Some(payload.event_type())
            );
        }
        for kind in EventType::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
    }
}
