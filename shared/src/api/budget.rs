//! Whether a run could be authorized now, without holding anything: MCP's `check_budget`.
//! It asks the same two questions as `POST .../runs`, through the same code: the plan's
//! permission (`lifecycle::may_run`) and the ledger's rule for committing money
//! (`domain::ledger::may_commit`, which the run's hold applies), against the same snapshot the
//! views read. Only the concurrency limit is left out, as the contract says.

use super::lifecycle;
use crate::app::App;
use crate::domain::calendar::Month;
use crate::domain::ids::WorkspaceId;
use crate::domain::ledger::{affordable, may_commit};
use crate::domain::workspace::{PlanStatus, Workspace};
use crate::http::ApiError;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct BudgetCheck {
    pub workspace_id: WorkspaceId,
    pub amount_cents: i64,
    pub allowed: bool,
    /// The code `POST .../runs` would answer; `null` when allowed.
    pub reason: Option<&'static str>,
    pub available_cents: i64,
    /// min(available, each hard cap minus its month spend and holds), never below 0.
    pub spendable_cents: i64,
    pub soft_cap_reached: bool,
    /// The smaller of the account's and the workspace's hard caps, if either is set.
    pub hard_cap_cents: Option<i64>,
    pub plan_status: PlanStatus,
}

/// The decision for a run of `amount_cents` (`agent`: the agent that would run) in `month`.
/// Reasons in the contract's order: the plan (suspended, inactive, readonly), then credit,
/// then the hard caps.
pub async fn check(
    app: &App,
    workspace: &Workspace,
    agent: Option<&str>,
    amount_cents: i64,
    month: Month,
) -> Result<BudgetCheck, ApiError> {
    let snapshot = app.store.workspace_snapshot(workspace, month).await?;
    let (money, budget) = (&snapshot.account, &snapshot.budget);
    let plan = match lifecycle::may_run(app, workspace, agent).await {
        Ok(()) => None,
        Err(
            refusal @ (ApiError::PlanSuspended(_)
            | ApiError::PlanInactive(_)
            | ApiError::PlanReadonly(_)),
        ) => Some(refusal.code()),
        Err(other) => return Err(other),
    };
    let reason = match plan {
        Some(code) => Some(code),
        None => may_commit(money, budget, amount_cents)
            .err()
            .map(|refusal| ApiError::from(refusal).code()),
    };
    let hard_cap_cents = match (money.hard_cap_cents, budget.hard_cap_cents) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(BudgetCheck {
        workspace_id: workspace.id.clone(),
        amount_cents,
        allowed: reason.is_none(),
        reason,
        available_cents: money.available_cents(),
        spendable_cents: affordable(money, budget, 0),
        soft_cap_reached: money.soft_cap_reached() || budget.soft_cap_reached(),
        hard_cap_cents,
        plan_status: workspace.plan_status,
    })
}
