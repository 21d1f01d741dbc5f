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

/// Text without control characters (`char::is_control`: U+0000–U+001F, U+007F–U+009F), for
/// the schemas of caller-chosen ids.
pub const NO_CONTROL_CHARS_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";

/// An external id: 1–255 characters (as the schema's `maxLength` counts them), none a control.
pub fn validate_external_id(external_id: &str) -> Result<(), String> {
    if external_id.is_empty() || external_id.chars().count() > MAX_EXTERNAL_ID_LEN {
        return Err(format!(
            "`external_id` must be 1 to {MAX_EXTERNAL_ID_LEN} characters"
        ));
    }
    if external_id.chars().any(char::is_control) {
        return Err("`external_id` must not contain control characters".into());
    }
    Ok(())
}
