//! Invoices, mirrored from Stripe's webhooks. Deliveries arrive in any order, so a mirror only
//! moves forward: by the event's time, and at the same second by how far along the status is.

use super::ids::WorkspaceId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Open,
    Paid,
    Void,
    Uncollectible,
}

impl InvoiceStatus {
    pub const ALL: [InvoiceStatus; 5] = [
        Self::Draft,
        Self::Open,
        Self::Paid,
        Self::Void,
        Self::Uncollectible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Open => "open",
            Self::Paid => "paid",
            Self::Void => "void",
            Self::Uncollectible => "uncollectible",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// How far along an invoice is: a later delivery of an earlier step never undoes a later one.
    pub fn rank(self) -> i64 {
        match self {
            Self::Draft => 0,
            Self::Open => 1,
            Self::Uncollectible => 2,
            Self::Paid | Self::Void => 3,
        }
    }
}

/// An invoice as `GET .../billing/invoices` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Invoice {
    /// Stripe's `in_…`.
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub number: Option<String>,
    pub status: InvoiceStatus,
    pub amount_due_cents: i64,
    pub amount_paid_cents: i64,
    pub currency: String,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settled_invoice_outranks_an_open_one() {
        assert!(InvoiceStatus::Paid.rank() > InvoiceStatus::Open.rank());
        assert!(InvoiceStatus::Open.rank() > InvoiceStatus::Draft.rank());
        assert_eq!(InvoiceStatus::parse("void"), Some(InvoiceStatus::Void));
        assert_eq!(InvoiceStatus::parse("deleted"), None);
    }
}
