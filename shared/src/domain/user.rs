//! Users: the people (or platform accounts) who own billing accounts and workspaces.

use super::ids::{BillingAccountId, UserId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct User {
    pub id: UserId,
    /// The platform's own id for this person; unique, and what makes user creation idempotent.
    pub external_id: String,
    pub email: Option<String>,
    pub default_billing_account_id: BillingAccountId,
    pub created_at: String,
}

pub const MAX_EXTERNAL_ID_LEN: usize = 255;

/// An external id: 1–255 visible characters.
pub fn validate_external_id(external_id: &str) -> Result<(), String> {
    if external_id.is_empty() || external_id.len() > MAX_EXTERNAL_ID_LEN {
        return Err(format!(
            "`external_id` must be 1 to {MAX_EXTERNAL_ID_LEN} characters"
        ));
    }
    if external_id.chars().any(char::is_control) {
        return Err("`external_id` must not contain control characters".into());
    }
    Ok(())
}
