//! Workspaces: where agents run. Each is bound to one default billing account, through which its
//! balance, caps and rate limits resolve, and may have further linked accounts.

use super::ids::{BillingAccountId, UserId, WorkspaceId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The plan a new workspace starts its trial on.
pub const TRIAL_PLAN_ID: &str = "pro";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Trial,
    Promo,
    Active,
    Readonly,
    Suspended,
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub owner_user_id: UserId,
    pub default_billing_account_id: BillingAccountId,
    pub plan_id: String,
    pub plan_status: PlanStatus,
    pub created_at: String,
}

impl Workspace {
    /// A new workspace: on trial, bound to `account`.
    pub fn start_trial(
        id: WorkspaceId,
        name: String,
        owner_user_id: UserId,
        account: BillingAccountId,
        created_at: String,
    ) -> Self {
        Self {
            id,
            name,
            owner_user_id,
            default_billing_account_id: account,
            plan_id: TRIAL_PLAN_ID.to_owned(),
            plan_status: PlanStatus::Trial,
            created_at,
        }
    }
}
