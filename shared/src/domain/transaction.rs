//! Ledger transactions: immutable, signed entries whose sum is an account's balance.

use super::ids::{BillingAccountId, TransactionId, WorkspaceId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransactionType {
    Grant,
    Purchase,
    TopUp,
    AutoRecharge,
    PlanCredit,
    Usage,
    Refund,
    Adjustment,
    Expiry,
}

impl TransactionType {
    pub const ALL: [TransactionType; 9] = [
        Self::Grant,
        Self::Purchase,
        Self::TopUp,
        Self::AutoRecharge,
        Self::PlanCredit,
        Self::Usage,
        Self::Refund,
        Self::Adjustment,
        Self::Expiry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Purchase => "purchase",
            Self::TopUp => "top_up",
            Self::AutoRecharge => "auto_recharge",
            Self::PlanCredit => "plan_credit",
            Self::Usage => "usage",
            Self::Refund => "refund",
            Self::Adjustment => "adjustment",
            Self::Expiry => "expiry",
        }
    }

    /// Money the customer paid in: it counts toward the lifetime paid that raises rate limits.
    pub fn is_payment(self) -> bool {
        matches!(self, Self::Purchase | Self::TopUp | Self::AutoRecharge)
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// One movement of money. `amount_cents` is signed: + credit, − debit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Transaction {
    pub id: TransactionId,
    pub billing_account_id: BillingAccountId,
    pub workspace_id: Option<WorkspaceId>,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    pub amount_cents: i64,
    pub balance_after_cents: i64,
    pub description: String,
    pub category: Option<String>,
    pub agent_id: Option<String>,
    pub run_id: Option<String>,
    pub reference: Option<String>,
    pub created_at: String,
}
