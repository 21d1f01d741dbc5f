//! The metadata we put on Stripe objects (checkout sessions, PaymentIntents, subscriptions) so
//! that their webhooks say what a payment was for: written by [`PaymentMetadata::to_stripe`]
//! and read back by [`PaymentMetadata::from_stripe`], the only two places that know its keys.

use crate::domain::ids::{BillingAccountId, WorkspaceId};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::HashMap;

/// What a payment (or the object that makes them) was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentKind {
    /// A checkout that buys credits: credited by its session, not its PaymentIntent.
    CheckoutCredits,
    /// A checkout that starts a subscription.
    CheckoutSubscription,
    /// An off-session top-up of the saved method.
    TopUp,
    /// An auto-recharge of the saved method.
    AutoRecharge,
    /// The offline gateway's charge of a subscription invoice.
    Invoice,
}

impl PaymentKind {
    const ALL: [Self; 5] = [
        Self::CheckoutCredits,
        Self::CheckoutSubscription,
        Self::TopUp,
        Self::AutoRecharge,
        Self::Invoice,
    ];

    /// The value Stripe carries (unchanged from what earlier releases wrote, so payments made
    /// before still read back).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CheckoutCredits => "credits",
            Self::CheckoutSubscription => "subscription",
            Self::TopUp => "top_up",
            Self::AutoRecharge => "auto_recharge",
            Self::Invoice => "invoice",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Our metadata on a Stripe object. Every field is optional when read: objects made elsewhere
/// (the dashboard, another integration) carry none of it, or other keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentMetadata {
    pub workspace_id: Option<WorkspaceId>,
    /// The account a payment is for (the workspace's default may change before it lands).
    pub billing_account_id: Option<BillingAccountId>,
    pub kind: Option<PaymentKind>,
    /// The plan a subscription (or its checkout) is for.
    pub plan_id: Option<String>,
    /// The auto-recharge a payment ends.
    pub recharge_marker: Option<i64>,
}

const WORKSPACE_ID: &str = "workspace_id";
const BILLING_ACCOUNT_ID: &str = "billing_account_id";
const KIND: &str = "kind";
const PLAN_ID: &str = "plan_id";
const RECHARGE_MARKER: &str = "recharge_marker";

impl PaymentMetadata {
    /// Metadata naming a workspace and what it pays for.
    pub fn new(workspace_id: &WorkspaceId, kind: PaymentKind) -> Self {
        Self {
            workspace_id: Some(workspace_id.clone()),
            kind: Some(kind),
            ..Self::default()
        }
    }

    pub fn for_account(mut self, account: &BillingAccountId) -> Self {
        self.billing_account_id = Some(account.clone());
        self
    }

    pub fn for_plan(mut self, plan_id: &str) -> Self {
        self.plan_id = Some(plan_id.to_owned());
        self
    }

    pub fn ending_recharge(mut self, marker: i64) -> Self {
        self.recharge_marker = Some(marker);
        self
    }

    /// Stripe's metadata pairs, in a stable order.
    pub fn to_stripe(&self) -> Vec<(&'static str, String)> {
        [
            (
                WORKSPACE_ID,
                self.workspace_id.as_ref().map(|id| id.to_string()),
            ),
            (
                BILLING_ACCOUNT_ID,
                self.billing_account_id.as_ref().map(|id| id.to_string()),
            ),
            (KIND, self.kind.map(|kind| kind.as_str().to_owned())),
            (PLAN_ID, self.plan_id.clone()),
            (RECHARGE_MARKER, self.recharge_marker.map(|m| m.to_string())),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
        .collect()
    }

    /// Reads Stripe's metadata back; keys that aren't ours, and values that don't parse, are
    /// left out (a malformed id falls back to the object's customer, as an absent one does).
    pub fn from_stripe<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut metadata = Self::default();
        for (key, value) in pairs {
            match key {
                WORKSPACE_ID => metadata.workspace_id = WorkspaceId::parse(value),
                BILLING_ACCOUNT_ID => metadata.billing_account_id = BillingAccountId::parse(value),
                KIND => metadata.kind = PaymentKind::parse(value),
                PLAN_ID => metadata.plan_id = Some(value.to_owned()),
                RECHARGE_MARKER => metadata.recharge_marker = value.parse().ok(),
                _ => {}
            }
        }
        metadata
    }
}

/// A Stripe object's `metadata` (a map of strings; absent or `null` on some objects).
impl<'de> Deserialize<'de> for PaymentMetadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Option::<HashMap<String, Value>>::deserialize(deserializer)?.unwrap_or_default();
        Ok(Self::from_stripe(map.iter().filter_map(|(key, value)| {
            Some((key.as_str(), value.as_str()?))
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let workspace = WorkspaceId::parse("ws_01hzy3k4m5n6p7q8r9s0t1v2w3").unwrap();
        let account = BillingAccountId::parse("ba_01hzy3k4m5n6p7q8r9s0t1v2w3").unwrap();
        let written = PaymentMetadata::new(&workspace, PaymentKind::AutoRecharge)
            .for_account(&account)
            .ending_recharge(42);
        let pairs = written.to_stripe();
        assert_eq!(
            pairs.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [
                "workspace_id",
                "billing_account_id",
                "kind",
                "recharge_marker"
            ]
        );
        let read = PaymentMetadata::from_stripe(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        assert_eq!(read, written);
    }

    #[test]
    fn every_kind_reads_back_and_foreign_values_are_left_out() {
        for kind in PaymentKind::ALL {
            assert_eq!(PaymentKind::parse(kind.as_str()), Some(kind));
        }
        let read: PaymentMetadata = serde_json::from_value(serde_json::json!({
            "kind": "donation", "workspace_id": "not-an-id", "recharge_marker": "x",
            "order": "A-17", "plan_id": null
        }))
        .unwrap();
        assert_eq!(read, PaymentMetadata::default());
        let none: PaymentMetadata = serde_json::from_value(Value::Null).unwrap();
        assert_eq!(none, PaymentMetadata::default());
    }
}
