//! Billing operations shared by several entry points: the routes, the Stripe webhook and the
//! lifecycle jobs. Each is one function however it is reached, so an offline invoice and a
//! Stripe one, or a method saved by a route and by a webhook, take the same path.

pub mod checkout;
pub mod customers;
pub mod invoices;
pub mod payments;
pub mod subscriptions;

use crate::app::App;
use crate::domain::ids::WorkspaceId;
use crate::domain::workspace::Workspace;
use crate::http::ApiError;
use crate::payments::metadata::PaymentMetadata;
use aws_sdk_dynamodb::types::TransactWriteItem;
use schemars::JsonSchema;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a reported event (a Stripe webhook, or the offline checkout's completion) did.
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

/// `Applied` when the event's claim was written with its effect, else a duplicate.
fn claimed(applied: bool) -> Handled {
    if applied {
        Handled::Applied
    } else {
        Handled::Duplicate
    }
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

/// The workspace a Stripe object is about: our metadata, else its customer.
async fn workspace_of(
    app: &App,
    metadata: &PaymentMetadata,
    customer: Option<&str>,
) -> Result<Option<Workspace>, ApiError> {
    let id: Option<WorkspaceId> = match &metadata.workspace_id {
        Some(id) => Some(id.clone()),
        None => match customer {
            Some(customer) => app.store.workspace_of_customer(customer).await?,
            None => None,
        },
    };
    Ok(match id {
        Some(id) => app.store.get_workspace(&id).await?,
        None => None,
    })
}

/// A short, fixed-length stand-in for `text` in an idempotency key (Stripe's stop at 255).
pub fn key_digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
