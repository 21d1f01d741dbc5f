//! Read-only billing views: the plans, a workspace's billing status, credits, summary, usage,
//! usage overview and limits, and an account's summary.
//!
//! Choices made where the contract is silent (the route summaries repeat them for the OpenAPI
//! document):
//! - The period is the calendar month (UTC); `period_start` and `period_end` are dates, both
//!   included.
//! - Money comes from the ledger (the default account's balance and holds, the month's spend as
//!   the caps count it); `by_category` and usage come from the usage counters, which count usage
//!   on the day it occurred.
//! - `*_cap_reached` on a workspace view is true when the workspace's or its account's cap is
//!   reached; the caps shown are the workspace's own.

use super::access::{visible_account, visible_workspace, visible_workspace_state, workspace_id};
use super::lifecycle;
use crate::domain::calendar::{Day, Month};
use crate::domain::ids::{BillingAccountId, WorkspaceId};
use crate::domain::ledger::included_left;
use crate::domain::plan::{permissions, Plan, SubscriptionStatus};
use crate::domain::pricing::Category;
use crate::domain::usage::{
    by_category, daily_series, format_date, group_by_agent, group_by_day, parse_date,
    project_month_end, total, MonthlyCounter, Period, UsageTotals,
};
use crate::domain::workspace::{PlanStatus, Workspace};
use crate::http::{ApiError, Ctx, Reply};
use crate::store::views::UsageOwner;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;
use time::{Date, UtcOffset};

/// `GET /v1/plans`: the catalog's plans, in catalog order.
pub async fn plans(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    Reply::ok(&cx.app.catalog.plans)
}

#[derive(Serialize, JsonSchema)]
pub struct PlanRef {
    pub id: String,
    pub name: String,
}

/// A workspace's billing status: plan, lifecycle, this period's actions, money and what it may do.
#[derive(Serialize, JsonSchema)]
pub struct BillingStatus {
    pub workspace_id: WorkspaceId,
    pub plan: PlanRef,
    pub plan_status: PlanStatus,
    /// The subscription's status (Stripe's vocabulary). No subscription exists yet: `trialing`
    /// during the trial, otherwise `null`.
    pub subscription_status: Option<SubscriptionStatus>,
    /// Actions that count toward `actions_limit`: on trial, every action since the trial began
    /// (it may span two calendar months); otherwise this period's.
    pub actions_used: i64,
    /// The trial's action allowance while on trial; `null` (no limit) otherwise.
    pub actions_limit: Option<u64>,
    /// The calendar month (UTC): its first day…
    pub period_start: String,
    /// …and its last day, included.
    pub period_end: String,
    /// Days until the period ends, counting today.
    pub days_remaining: i64,
    pub has_payment_method: bool,
    pub balance_cents: i64,
    pub available_cents: i64,
    /// What is left of this billing period's included plan credit (spent first; what is left
    /// expires when the period ends).
    pub included_credits_cents: i64,
    /// The workspace's own monthly caps inside its account.
    pub soft_cap_cents: Option<i64>,
    pub hard_cap_cents: Option<i64>,
    /// Whether the workspace's or its account's soft cap is reached by this month's spend.
    pub soft_cap_reached: bool,
    /// Whether the workspace's or its account's hard cap is reached by this month's spend and
    /// holds.
    pub hard_cap_reached: bool,
    /// From the plan status: trial, promo, active and readonly (existing agents only) yes;
    /// suspended and deleted no. Credit and caps are reported separately.
    pub can_run_agents: bool,
    /// From the plan status: trial, promo and active only.
    pub can_deploy: bool,
}

#[derive(Serialize, JsonSchema)]
pub struct Credits {
    pub balance_cents: i64,
    pub available_cents: i64,
    pub held_cents: i64,
    /// What is left of this billing period's included plan credit.
    pub included_credits_cents: i64,
    /// What the workspace spent this calendar month, as its caps count it.
    pub period_usage_cents: i64,
    /// The workspace's own monthly caps.
    pub soft_cap_cents: Option<i64>,
    pub hard_cap_cents: Option<i64>,
    /// Whether the workspace's or its account's soft cap is reached.
    pub soft_cap_reached: bool,
    /// Whether the workspace's or its account's hard cap is reached (spend plus holds).
    pub hard_cap_reached: bool,
}

/// An account's (or a workspace's) month: balance, spend, credit, usage by category.
#[derive(Serialize, JsonSchema)]
pub struct Summary {
    pub billing_account_id: BillingAccountId,
    pub balance_cents: i64,
    pub held_cents: i64,
    pub available_cents: i64,
    pub currency: String,
    pub period_start: String,
    pub period_end: String,
    /// Debited this month (the ledger's spend, as the caps count it).
    pub spent_cents: i64,
    /// Credited this month (grants, purchases, refunds…).
    pub credited_cents: i64,
    /// This month's usage counters, every category (0 when unused). Usage counts in the month
    /// it occurred.
    pub by_category: BTreeMap<Category, UsageTotals>,
    /// An account: the workspaces linked to it, newest first. A workspace: itself.
    pub linked_workspace_ids: Vec<WorkspaceId>,
    pub soft_cap_reached: bool,
    pub hard_cap_reached: bool,
}

#[derive(Serialize, JsonSchema)]
pub struct UsageReport {
    pub category: Category,
    pub period_start: String,
    pub period_end: String,
    pub quantity: i64,
    pub cost_cents: i64,
    /// Empty without `group_by`. By day: days with usage, newest first. By agent: most
    /// expensive first.
    pub groups: Vec<UsageGroup>,
}

#[derive(Serialize, JsonSchema)]
pub struct UsageGroup {
    /// The day (`YYYY-MM-DD`) or the agent id; `null` groups usage that named no agent.
    pub key: Option<String>,
    pub quantity: i64,
    pub cost_cents: i64,
}

#[derive(Serialize, JsonSchema)]
pub struct DailyUsage {
    pub date: String,
    pub count: i64,
    pub cost_cents: i64,
}

#[derive(Serialize, JsonSchema)]
pub struct UsageOverview {
    pub workspace_id: WorkspaceId,
    pub period_start: String,
    pub period_end: String,
    /// This month's usage, every category (0 when unused).
    pub by_category: BTreeMap<Category, UsageTotals>,
    /// Up to 5 agents, most expensive this month first (usage without an agent is left out).
    pub top_agents: Vec<AgentCost>,
    /// The cost of this month's usage so far: the sum of `by_category`.
    pub spent_cents: i64,
    /// `spent_cents × days in the month ÷ days elapsed` (today counts as elapsed), rounded up.
    pub projected_spend_cents: i64,
}

#[derive(Serialize, JsonSchema)]
pub struct AgentCost {
    pub agent_id: String,
    pub cost_cents: i64,
}

#[derive(Serialize, JsonSchema)]
pub struct Limits {
    pub plan_id: String,
    pub limits: Vec<LimitUse>,
}

#[derive(Serialize, JsonSchema)]
pub struct LimitUse {
    /// `api_calls` and `agent_invocations` (this calendar month), and `actions` during a trial
    /// (since the trial began).
    pub metric: Category,
    pub used: i64,
    /// `null`: unlimited.
    pub limit: Option<u64>,
    /// `limit - used`, never below 0; `null`: unlimited.
    pub remaining: Option<i64>,
}

/// How many agents the overview ranks.
const TOP_AGENTS: usize = 5;
/// `?days=` of the daily view: at most, and by default.
pub const MAX_DAYS: u32 = 90;
const DEFAULT_DAYS: u32 = 30;

fn today(cx: &Ctx<'_>) -> Date {
    cx.now().to_offset(UtcOffset::UTC).date()
}

fn plan_of<'a>(cx: &Ctx<'a>, workspace: &Workspace) -> Result<&'a Plan, ApiError> {
    cx.app.catalog.plan(&workspace.plan_id).ok_or_else(|| {
        ApiError::Internal(format!(
            "workspace {} is on plan `{}`, which is not in the catalog",
            workspace.id, workspace.plan_id
        ))
    })
}

/// The first month whose counters count toward the workspace's limits: the month its trial
/// began while on trial (the trial starts when the workspace is created), else `month`.
fn counted_from(workspace: &Workspace, month: Month) -> Month {
    match Month::of_timestamp(&workspace.created_at) {
        Some(created) if workspace.plan_status == PlanStatus::Trial && created < month => created,
        _ => month,
    }
}

/// What a workspace used: this month per category, and actions over all the counters read
/// (since the trial began, on trial).
struct Counted {
    this_month: BTreeMap<Category, UsageTotals>,
    actions_counted: i64,
}

fn counted(counters: &[MonthlyCounter], month: Month) -> Counted {
    let this_month = by_category(
        counters
            .iter()
            .filter(|c| c.month == month)
            .map(|c| (c.category, c.quantity, c.cost_cents)),
    );
    let actions_counted = counters
        .iter()
        .filter(|c| c.category == Category::Actions)
        .fold(0i64, |sum, c| sum.saturating_add(c.quantity));
    Counted {
        this_month,
        actions_counted,
    }
}

pub async fn status(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let id = workspace_id(&cx)?;
    Reply::ok(&billing_status(&cx, &id).await?)
}

/// The body of `GET /v1/workspaces/{id}/billing` (and of MCP's `get_billing_status`), for a
/// workspace the caller may see.
pub async fn billing_status(cx: &Ctx<'_>, id: &WorkspaceId) -> Result<BillingStatus, ApiError> {
    let mut state = visible_workspace_state(cx, id).await?;
    // A trial whose last action was counted but whose move to readonly was lost (a crash between
    // the two writes) is moved now, so the status never shows a spent trial as running.
    if state.workspace.plan_status == PlanStatus::Trial {
        lifecycle::recount_trial_actions(cx.app, &state.workspace).await?;
        state = visible_workspace_state(cx, id).await?;
    }
    let workspace = state.workspace.clone();
    let plan = plan_of(cx, &workspace)?;
    let period = Period::month_of(today(cx));
    let month = Day::from(period.start).month();
    let counted_since = counted_from(&workspace, month);
    let store = &cx.app.store;
    let (account, snapshot, counters) = tokio::try_join!(
        store.get_account(&workspace.default_billing_account_id),
        store.workspace_snapshot(&workspace, month),
        store.monthly_usage(UsageOwner::Workspace(&workspace.id), counted_since, month),
    )?;
    let account = account
        .ok_or_else(|| ApiError::Internal("a workspace's default account is missing".into()))?;
    let on_trial = workspace.plan_status == PlanStatus::Trial;
    let allowed = permissions(workspace.plan_status);
    let (money, budget) = (&snapshot.account, &snapshot.budget);
    Ok(BillingStatus {
        workspace_id: workspace.id.clone(),
        plan: PlanRef {
            id: plan.id.clone(),
            name: plan.name.clone(),
        },
        plan_status: workspace.plan_status,
        subscription_status: lifecycle::subscription_status(workspace.plan_status),
        actions_used: if on_trial {
            budget.actions_used
        } else {
            counted(&counters, month).actions_counted
        },
        actions_limit: on_trial.then_some(cx.app.catalog.lifecycle.trial_actions),
        period_start: format_date(period.start),
        period_end: format_date(period.end),
        days_remaining: period.days_remaining(cx.now()),
        has_payment_method: account.has_payment_method || state.lifecycle.dates.has_payment_method,
        balance_cents: money.balance_cents,
        available_cents: money.available_cents(),
        included_credits_cents: included_left(money, workspace.id.as_str()),
        soft_cap_cents: budget.soft_cap_cents,
        hard_cap_cents: budget.hard_cap_cents,
        soft_cap_reached: money.soft_cap_reached() || budget.soft_cap_reached(),
        hard_cap_reached: money.hard_cap_reached() || budget.hard_cap_reached(),
        can_run_agents: allowed.run_agents,
        can_deploy: allowed.deploy,
    })
}

pub async fn credits(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let month = Day::from(today(&cx)).month();
    let snapshot = cx.app.store.workspace_snapshot(&workspace, month).await?;
    let (money, budget) = (&snapshot.account, &snapshot.budget);
    Reply::ok(&Credits {
        balance_cents: money.balance_cents,
        available_cents: money.available_cents(),
        held_cents: money.held_cents,
        included_credits_cents: included_left(money, workspace.id.as_str()),
        period_usage_cents: budget.spent_cents,
        soft_cap_cents: budget.soft_cap_cents,
        hard_cap_cents: budget.hard_cap_cents,
        soft_cap_reached: money.soft_cap_reached() || budget.soft_cap_reached(),
        hard_cap_reached: money.hard_cap_reached() || budget.hard_cap_reached(),
    })
}

/// The workspace's month: its default account's balance, its own spend, credit and usage.
pub async fn workspace_summary(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let period = Period::month_of(today(&cx));
    let month = Day::from(period.start).month();
    let store = &cx.app.store;
    let (snapshot, counters) = tokio::try_join!(
        store.workspace_snapshot(&workspace, month),
        store.monthly_usage(UsageOwner::Workspace(&workspace.id), month, month),
    )?;
    let (money, budget) = (&snapshot.account, &snapshot.budget);
    Reply::ok(&Summary {
        billing_account_id: workspace.default_billing_account_id,
        balance_cents: money.balance_cents,
        held_cents: money.held_cents,
        available_cents: money.available_cents(),
        currency: crate::domain::money::CURRENCY.to_owned(),
        period_start: format_date(period.start),
        period_end: format_date(period.end),
        spent_cents: budget.spent_cents,
        credited_cents: budget.credited_cents,
        by_category: counted(&counters, month).this_month,
        linked_workspace_ids: vec![workspace.id],
        soft_cap_reached: money.soft_cap_reached() || budget.soft_cap_reached(),
        hard_cap_reached: money.hard_cap_reached() || budget.hard_cap_reached(),
    })
}

/// The account's month: balance, spend and credit across its workspaces, usage by category.
pub async fn account_summary(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let id = cx.path_id(
        "billingAccountId",
        BillingAccountId::parse,
        "billing account",
    )?;
    let account = visible_account(&cx, &id).await?;
    let period = Period::month_of(today(&cx));
    let month = Day::from(period.start).month();
    let store = &cx.app.store;
    let (snapshot, counters, linked) = tokio::try_join!(
        store.ledger_snapshot(&account.id, None, month),
        store.monthly_usage(UsageOwner::Account(&account.id), month, month),
        store.linked_workspace_ids(&account.id),
    )?;
    let money = &snapshot.account;
    Reply::ok(&Summary {
        billing_account_id: account.id,
        balance_cents: money.balance_cents,
        held_cents: money.held_cents,
        available_cents: money.available_cents(),
        currency: account.currency,
        period_start: format_date(period.start),
        period_end: format_date(period.end),
        spent_cents: money.spent_cents,
        credited_cents: money.credited_cents,
        by_category: counted(&counters, month).this_month,
        linked_workspace_ids: linked,
        soft_cap_reached: money.soft_cap_reached(),
        hard_cap_reached: money.hard_cap_reached(),
    })
}

fn category_names() -> String {
    Category::ALL.map(Category::as_str).join(", ")
}

/// `?category=`: `default` when absent (a 400 naming the parameter when there is none).
fn category_param(cx: &Ctx<'_>, default: Option<Category>) -> Result<Category, ApiError> {
    category_of(cx.query("category"), default)
}

fn category_of(given: Option<&str>, default: Option<Category>) -> Result<Category, ApiError> {
    match (given, default) {
        (Some(text), _) => Category::parse(text).ok_or_else(|| {
            ApiError::InvalidRequest(format!("`category` must be one of: {}", category_names()))
        }),
        (None, Some(default)) => Ok(default),
        (None, None) => Err(ApiError::InvalidRequest(format!(
            "`category` is required: one of {}",
            category_names()
        ))),
    }
}

fn date_param(given: Option<&str>, name: &str, default: Date) -> Result<Date, ApiError> {
    match given {
        None => Ok(default),
        Some(text) => parse_date(text).ok_or_else(|| {
            ApiError::InvalidRequest(format!("`{name}` must be a date (YYYY-MM-DD)"))
        }),
    }
}

#[derive(Clone, Copy)]
enum GroupBy {
    Day,
    Agent,
}

/// The usage report's parameters, as given (checked by [`usage_report`]).
#[derive(Clone, Copy, Default)]
pub struct UsageQuery<'q> {
    pub category: Option<&'q str>,
    pub period_start: Option<&'q str>,
    pub period_end: Option<&'q str>,
    pub group_by: Option<&'q str>,
}

/// `?category=` (required), `?period_start=`/`?period_end=` (each defaults to this month's
/// first/last day), `?group_by=day|agent`.
pub async fn usage(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let query = UsageQuery {
        category: cx.query("category"),
        period_start: cx.query("period_start"),
        period_end: cx.query("period_end"),
        group_by: cx.query("group_by"),
    };
    let id = workspace_id(&cx)?;
    Reply::ok(&usage_report(&cx, &id, query).await?)
}

/// The body of `GET /v1/workspaces/{id}/billing/usage` (and of MCP's `get_usage`); its 400s
/// name the parameter.
pub async fn usage_report(
    cx: &Ctx<'_>,
    id: &WorkspaceId,
    query: UsageQuery<'_>,
) -> Result<UsageReport, ApiError> {
    let category = category_of(query.category, None)?;
    let month = Period::month_of(today(cx));
    let period = Period::new(
        date_param(query.period_start, "period_start", month.start)?,
        date_param(query.period_end, "period_end", month.end)?,
    )
    .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let group_by = match query.group_by {
        None => None,
        Some("day") => Some(GroupBy::Day),
        Some("agent") => Some(GroupBy::Agent),
        Some(_) => {
            return Err(ApiError::InvalidRequest(
                "`group_by` must be `day` or `agent`".into(),
            ))
        }
    };
    let workspace = visible_workspace(cx, id).await?;
    let mut counters = cx.app.store.daily_usage(&workspace.id, &period).await?;
    counters.retain(|c| c.category == category);
    let sum = total(&counters);
    let groups = match group_by {
        None => Vec::new(),
        Some(GroupBy::Day) => group_by_day(&counters)
            .into_iter()
            .map(|(day, totals)| group(Some(day), totals))
            .collect(),
        Some(GroupBy::Agent) => group_by_agent(&counters)
            .into_iter()
            .map(|(agent, totals)| group(agent, totals))
            .collect(),
    };
    Ok(UsageReport {
        category,
        period_start: format_date(period.start),
        period_end: format_date(period.end),
        quantity: sum.quantity,
        cost_cents: sum.cost_cents,
        groups,
    })
}

fn group(key: Option<String>, totals: UsageTotals) -> UsageGroup {
    UsageGroup {
        key,
        quantity: totals.quantity,
        cost_cents: totals.cost_cents,
    }
}

/// `?days=` (1–90, default 30) days ending today, newest first, zero-filled; `?category=`
/// (default `actions`).
pub async fn usage_daily(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let days = match cx.query("days") {
        None => DEFAULT_DAYS,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "`days` must be a whole number from 1 to {MAX_DAYS}"
                ))
            })?,
    };
    let category = category_param(&cx, Some(Category::Actions))?;
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let period = Period::ending(today(&cx), days);
    let mut counters = cx.app.store.daily_usage(&workspace.id, &period).await?;
    counters.retain(|c| c.category == category);
    let series: Vec<DailyUsage> = daily_series(&period, &counters)
        .into_iter()
        .map(|(date, totals)| DailyUsage {
            date,
            count: totals.quantity,
            cost_cents: totals.cost_cents,
        })
        .collect();
    Reply::ok(&series)
}

/// This month: usage per category, the top agents by cost, and the projected month-end spend.
pub async fn usage_overview(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let today = today(&cx);
    let period = Period::month_of(today);
    let counters = cx.app.store.daily_usage(&workspace.id, &period).await?;
    let spent = total(&counters).cost_cents;
    let top_agents = group_by_agent(&counters)
        .into_iter()
        .filter_map(|(agent, totals)| {
            agent.map(|agent_id| AgentCost {
                agent_id,
                cost_cents: totals.cost_cents,
            })
        })
        .take(TOP_AGENTS)
        .collect();
    Reply::ok(&UsageOverview {
        workspace_id: workspace.id,
        period_start: format_date(period.start),
        period_end: format_date(period.end),
        by_category: by_category(
            counters
                .iter()
                .map(|c| (c.category, c.quantity, c.cost_cents)),
        ),
        top_agents,
        spent_cents: spent,
        projected_spend_cents: project_month_end(
            spent,
            today.day(),
            today.month().length(today.year()),
        ),
    })
}

/// This month's API calls and agent invocations against the plan's limits, and the trial's
/// actions during a trial.
pub async fn limits(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let workspace = visible_workspace(&cx, &workspace_id(&cx)?).await?;
    let plan = plan_of(&cx, &workspace)?;
    let month = Day::from(today(&cx)).month();
    let counters = cx
        .app
        .store
        .monthly_usage(
            UsageOwner::Workspace(&workspace.id),
            counted_from(&workspace, month),
            month,
        )
        .await?;
    let used = counted(&counters, month);
    let mut limits = vec![
        limit_use(
            Category::ApiCalls,
            used.this_month[&Category::ApiCalls].quantity,
            plan.limits.api_calls,
        ),
        limit_use(
            Category::AgentInvocations,
            used.this_month[&Category::AgentInvocations].quantity,
            plan.limits.agent_invocations,
        ),
    ];
    if workspace.plan_status == PlanStatus::Trial {
        limits.push(limit_use(
            Category::Actions,
            used.actions_counted,
            Some(cx.app.catalog.lifecycle.trial_actions),
        ));
    }
    Reply::ok(&Limits {
        plan_id: plan.id.clone(),
        limits,
    })
}

fn limit_use(metric: Category, used: i64, limit: Option<u64>) -> LimitUse {
    LimitUse {
        metric,
        used,
        limit,
        remaining: limit.map(|limit| {
            i64::try_from(limit)
                .unwrap_or(i64::MAX)
                .saturating_sub(used)
                .max(0)
        }),
    }
}
