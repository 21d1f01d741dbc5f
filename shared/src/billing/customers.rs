//! A workspace's Stripe customer, needed by the payment routes and by subscriptions.

use super::key_digest;
use crate::app::App;
use crate::domain::workspace::Workspace;
use crate::http::ApiError;

/// The workspace's Stripe customer, created on first need, once: concurrent first requests
/// send Stripe the same idempotency key (so get the same customer), and the first to record
/// it wins.
pub async fn customer_of(app: &App, workspace: &Workspace) -> Result<String, ApiError> {
    if let Some(customer) = app.store.billing_profile(&workspace.id).await?.customer_id {
        return Ok(customer);
    }
    let payments = app.payments().await?;
    let owner = app.store.get_user(&workspace.owner_user_id).await?;
    let email = owner.as_ref().and_then(|u| u.email.as_deref());
    let created = payments
        .gateway
        .create_customer(
            workspace.id.as_str(),
            email,
            // The email is part of the request, so of the key: Stripe refuses a key reused with
            // other parameters.
            &format!(
                "customer:{}:{}",
                workspace.id,
                key_digest(email.unwrap_or_default())
            ),
        )
        .await?;
    Ok(app.store.claim_customer(&workspace.id, &created).await?)
}
