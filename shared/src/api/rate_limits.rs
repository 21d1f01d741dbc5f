//! A workspace's rate-limit tier, its limits and what it uses of them now.

use super::access::{visible_workspace_state, workspace_id};
use super::lifecycle::{rate_tier, refresh_rate_tier};
use crate::domain::calendar::Month;
use crate::domain::ids::BillingAccountId;
use crate::domain::rate_limit::RateTier;
use crate::http::{ApiError, Ctx, Reply};
use crate::store::lifecycle::WorkspaceState;
use schemars::JsonSchema;
use serde::Serialize;

#[derive(Serialize, JsonSchema)]
pub struct RateLimitStatus {
    pub tier: String,
    pub limits: Limits,
    pub usage: Usage,
    /// The default account, whose lifetime paid (with the plan) decides the tier.
    pub billing_account_id: BillingAccountId,
}

#[derive(Serialize, JsonSchema)]
pub struct Limits {
    /// Usage events accepted per calendar minute (UTC).
    pub requests_per_minute: u32,
    /// Runs authorized and not yet completed or expired.
    pub concurrent_runs: u32,
}

#[derive(Serialize, JsonSchema)]
pub struct Usage {
    pub requests_this_minute: u64,
    pub concurrent_runs: i64,
}

async fn status(cx: &Ctx<'_>, state: &WorkspaceState, tier: &RateTier) -> Result<Reply, ApiError> {
    let workspace = &state.workspace;
    let now = cx.now();
    let snapshot = cx
        .app
        .store
        .workspace_snapshot(workspace, Month::of(now))
        .await?;
    let requests = cx
        .app
        .store
        .requests_this_minute(workspace.id.as_str(), now)
        .await?;
    Reply::ok(&RateLimitStatus {
        tier: tier.id.clone(),
        limits: Limits {
            requests_per_minute: tier.requests_per_minute,
            concurrent_runs: tier.concurrent_runs,
        },
        usage: Usage {
            requests_this_minute: requests,
            concurrent_runs: snapshot.budget.open_runs,
        },
        billing_account_id: workspace.default_billing_account_id.clone(),
    })
}

pub async fn get(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    status(&cx, &state, rate_tier(cx.app, &state)).await
}

pub async fn refresh(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let tier = refresh_rate_tier(cx.app, &state).await?;
    status(&cx, &state, tier).await
}
