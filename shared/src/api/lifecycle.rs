//! The plan lifecycle at work: firing triggers (from the one-time schedules, the hourly sweep,
//! usage and, later, payment events), what each status lets a workspace do, and the
//! subscription views.

use super::access::{visible_workspace_state, workspace_id};
use crate::app::App;
use crate::clock::rfc3339;
use crate::config::PaymentsConfig;
use crate::domain::calendar::Month;
use crate::domain::ids::WorkspaceId;
use crate::domain::lifecycle::{
    apply, next_deadline, Billing, IllegalTransition, Lifecycle, Transition, Trigger,
};
use crate::domain::plan::Plan;
use crate::domain::plan::{subscription_status_without_subscription, SubscriptionStatus};
use crate::domain::rate_limit::{tier_for, RateTier};
use crate::domain::workspace::{PlanStatus, Workspace};
use crate::http::{ApiError, Ctx, Reply};
use crate::scheduler::Deadline;
use crate::store::lifecycle::{TransitionWrite, TransitionWritten, WorkspaceState};
use aws_sdk_dynamodb::types::TransactWriteItem;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What firing a trigger did.
#[derive(Debug)]
pub enum Fired {
    Applied(Transition),
    /// Not applicable now (already applied by someone else, not due, or not allowed).
    Refused(IllegalTransition),
    /// One of the cause's own items refused (index into the `extra` given to [`fire_with`]):
    /// nothing was written.
    CauseRefused {
        index: usize,
    },
    NoSuchWorkspace,
}

/// How often a trigger is decided again after another writer moved the workspace first.
const FIRE_ATTEMPTS: usize = 10;

/// Fires `trigger` on the workspace: decided on its current state, written conditionally on
/// that state's version, so racing firings (schedule, sweep, webhook) apply it once.
pub async fn fire(app: &App, id: &WorkspaceId, trigger: Trigger) -> Result<Fired, ApiError> {
    fire_with(app, id, trigger, Vec::new()).await
}

/// [`fire`], writing `extra` (the cause's own items: an invoice mirror, an event's claim) in
/// the same transaction: the decision and the cause commit together or not at all.
pub async fn fire_with(
    app: &App,
    id: &WorkspaceId,
    trigger: Trigger,
    extra: Vec<TransactWriteItem>,
) -> Result<Fired, ApiError> {
    for _ in 0..FIRE_ATTEMPTS {
        let Some(state) = app.store.get_workspace_state(id).await? else {
            return Ok(Fired::NoSuchWorkspace);
        };
        let now = app.clock.now();
        let plan = app.catalog.plan(&state.workspace.plan_id).ok_or_else(|| {
            ApiError::Internal(format!(
                "plan {} is not in the catalog",
                state.workspace.plan_id
            ))
        })?;
        let billing = match trigger {
            Trigger::PaymentMethodAttached
            | Trigger::InvoicePaid(_)
            | Trigger::InvoiceFailed(_) => subscription_billing(app, plan),
            _ => None,
        };
        let transition = match apply(&state.lifecycle, trigger, now, &app.durations, billing) {
            Ok(transition) => transition,
            Err(refused) => return Ok(Fired::Refused(refused)),
        };
        let paid = lifetime_paid(app, &state.workspace).await?;
        let tier = tier_for(
            &app.catalog.rate_limit_tiers,
            &plan.rate_limit_tier,
            transition.to.status,
            paid,
        );
        let write = TransitionWrite {
            trigger,
            transition: &transition,
            included_credits_cents: plan.included_credits_cents,
            rate_limit_tier: &tier.id,
            at: now,
            extra: extra.clone(),
        };
        match app.store.apply_transition(&state, &write).await? {
            TransitionWritten::Committed => {
                tracing::info!(
                    workspace = %id,
                    trigger = trigger.as_str(),
                    from = ?transition.from,
                    to = ?transition.to.status,
                    "lifecycle transition"
                );
                schedule_deadline(app, id, &transition.to, state.version + 1).await;
                return Ok(Fired::Applied(transition));
            }
            TransitionWritten::Refused { index } => return Ok(Fired::CauseRefused { index }),
            TransitionWritten::Stale => {}
        }
    }
    Err(ApiError::Conflict(
        "the workspace's plan status is changing concurrently; retry".into(),
    ))
}

/// Who invoices a subscription to `plan` started now: none for a plan without a price.
/// Read from the configuration, not the gateway: routes that only move the lifecycle (a trial's
/// last action) must not link the payment gateway's code.
pub fn subscription_billing(app: &App, plan: &Plan) -> Option<Billing> {
    if plan.price_cents.is_none_or(|price| price <= 0) {
        return None;
    }
    Some(match app.config.payments {
        PaymentsConfig::Stripe { .. } => Billing::Stripe,
        PaymentsConfig::Offline { .. } => Billing::Local,
    })
}

/// Keeps the workspace's one-time schedule on its next deadline. A failure is logged, not
/// returned: the transition is written, and the hourly sweep fires whatever a schedule missed.
pub async fn schedule_deadline(app: &App, id: &WorkspaceId, lifecycle: &Lifecycle, version: i64) {
    let Some(scheduler) = app.deadlines().await else {
        return;
    };
    let result = match next_deadline(lifecycle) {
        Some((at, trigger)) => {
            scheduler
                .put(&Deadline {
                    workspace_id: id.to_string(),
                    at,
                    trigger: trigger.as_str().to_owned(),
                    version,
                })
                .await
        }
        None => scheduler.remove(id.as_str()).await,
    };
    if let Err(error) = result {
        tracing::warn!(workspace = %id, %error, "lifecycle deadline not scheduled; the sweep will catch it");
    }
}

async fn lifetime_paid(app: &App, workspace: &Workspace) -> Result<i64, ApiError> {
    let month = Month::of(app.clock.now());
    let snapshot = app
        .store
        .ledger_snapshot(&workspace.default_billing_account_id, None, month)
        .await?;
    Ok(snapshot.account.paid_cents)
}

/// The hourly sweep: fires the due deadline of every overdue workspace.
pub async fn sweep(app: &App) -> Result<usize, ApiError> {
    let mut applied = 0;
    let mut failed = 0;
    loop {
        let due = app.store.due_workspaces(app.clock.now(), 100).await?;
        let mut progressed = false;
        for id in &due {
            match fire_due(app, id).await {
                Ok(true) => {
                    applied += 1;
                    progressed = true;
                }
                Ok(false) => {}
                // One workspace's failure must not stop the others.
                Err(error) => {
                    failed += 1;
                    tracing::error!(workspace = %id, %error, "lifecycle sweep failed for a workspace");
                }
            }
        }
        if due.len() < 100 || !progressed {
            break;
        }
    }
    if failed > 0 {
        return Err(ApiError::Internal(format!(
            "{failed} workspaces could not be moved"
        )));
    }
    Ok(applied)
}

/// Fires the workspace's deadlines that are due, in order (after an outage there may be
/// several: a promo end, then period ends); `false` when none was.
pub async fn fire_due(app: &App, id: &WorkspaceId) -> Result<bool, ApiError> {
    /// A bound on catching up: two years of monthly periods.
    const CATCH_UP: usize = 24;
    let mut fired = false;
    for _ in 0..CATCH_UP {
        let Some(state) = app.store.get_workspace_state(id).await? else {
            break;
        };
        match next_deadline(&state.lifecycle) {
            Some((at, Trigger::InvoiceDue)) if at <= app.clock.now() => {
                if !crate::billing::invoices::bill_due_period(app, &state).await? {
                    break;
                }
                fired = true;
            }
            Some((at, trigger)) if at <= app.clock.now() => {
                if !matches!(fire(app, id, trigger).await?, Fired::Applied(_)) {
                    break;
                }
                fired = true;
            }
            _ => break,
        }
    }
    Ok(fired)
}

/// What a one-time schedule sends.
#[derive(Deserialize)]
struct ScheduledDeadline {
    workspace_id: String,
    trigger: Trigger,
}

/// The `lifecycle-transition` function: one workspace's deadline, from its schedule. A
/// deadline already applied (by the sweep, or a webhook) or moved since is refused and ignored.
pub async fn on_schedule(app: &App, payload: serde_json::Value) -> Result<usize, ApiError> {
    let deadline: ScheduledDeadline = serde_json::from_value(payload)
        .map_err(|e| ApiError::InvalidRequest(format!("not a lifecycle deadline: {e}")))?;
    let id = WorkspaceId::parse(&deadline.workspace_id)
        .ok_or_else(|| ApiError::InvalidRequest("`workspace_id` is not a workspace id".into()))?;
    if !deadline.trigger.is_deadline() {
        return Err(ApiError::InvalidRequest(format!(
            "`{}` is not a deadline",
            deadline.trigger.as_str()
        )));
    }
    if deadline.trigger == Trigger::InvoiceDue {
        // Billed once per period whoever comes first: the invoice is named by its period.
        return Ok(usize::from(fire_due(app, &id).await?));
    }
    match fire(app, &id, deadline.trigger).await? {
        Fired::Applied(_) => Ok(1),
        Fired::Refused(refused) => {
            tracing::info!(workspace = %id, %refused, "stale lifecycle deadline ignored");
            Ok(0)
        }
        Fired::CauseRefused { .. } | Fired::NoSuchWorkspace => Ok(0),
    }
}

/// The trial ends with its last action: once a trial workspace has used the catalog's actions,
/// it moves to readonly (whoever sees it first; later calls are refused by the state machine).
pub async fn count_trial_actions(
    app: &App,
    workspace: &Workspace,
    actions_used: i64,
) -> Result<(), ApiError> {
    let limit = i64::try_from(app.durations.trial_actions).unwrap_or(i64::MAX);
    if workspace.plan_status == PlanStatus::Trial && actions_used >= limit {
        fire(app, &workspace.id, Trigger::TrialActionsUsed).await?;
    }
    Ok(())
}

/// [`count_trial_actions`] with the count read from the workspace's budget, for writes that
/// don't return it (run settlements).
pub async fn recount_trial_actions(app: &App, workspace: &Workspace) -> Result<(), ApiError> {
    if workspace.plan_status != PlanStatus::Trial {
        return Ok(());
    }
    let month = Month::of(app.clock.now());
    let snapshot = app.store.workspace_snapshot(workspace, month).await?;
    count_trial_actions(app, workspace, snapshot.budget.actions_used).await
}

/// Whether the workspace may run `agent` now, per the contract's permission table: trial,
/// promo and active run anything; readonly only agents that ran before; suspended nothing;
/// deleted answers 402 `plan_inactive`.
pub async fn may_run(
    app: &App,
    workspace: &Workspace,
    agent: Option<&str>,
) -> Result<(), ApiError> {
    match workspace.plan_status {
        PlanStatus::Trial | PlanStatus::Promo | PlanStatus::Active => Ok(()),
        PlanStatus::Readonly => {
            let known = match agent {
                Some(agent) => app.store.agent_known(workspace.id.as_str(), agent).await?,
                None => false,
            };
            if known {
                Ok(())
            } else {
                Err(ApiError::PlanReadonly(
                    "the workspace is readonly: only agents that ran before may run; attach a \
                     payment method and subscribe to run new agents"
                        .into(),
                ))
            }
        }
        PlanStatus::Suspended => Err(ApiError::PlanSuspended(
            "the workspace is suspended after a failed payment; fix the payment method to run \
             agents"
                .into(),
        )),
        PlanStatus::Deleted => Err(ApiError::PlanInactive(
            "the workspace's plan has ended (deleted); its agents no longer run".into(),
        )),
    }
}

/// The workspace's rate-limit tier: the one last computed, or its plan's.
pub fn rate_tier<'a>(app: &'a App, state: &WorkspaceState) -> &'a RateTier {
    let tiers = &app.catalog.rate_limit_tiers;
    state
        .rate_limit_tier
        .as_deref()
        .and_then(|id| tiers.iter().find(|t| t.id == id))
        .unwrap_or_else(|| {
            let plan_tier = app
                .catalog
                .plan(&state.workspace.plan_id)
                .map_or("", |p| p.rate_limit_tier.as_str());
            tier_for(tiers, plan_tier, state.workspace.plan_status, 0)
        })
}

/// The tier recomputed from the plan, status and the default account's lifetime paid, and
/// recorded.
pub async fn refresh_rate_tier<'a>(
    app: &'a App,
    state: &WorkspaceState,
) -> Result<&'a RateTier, ApiError> {
    let paid = lifetime_paid(app, &state.workspace).await?;
    let plan_tier = app
        .catalog
        .plan(&state.workspace.plan_id)
        .map_or("", |p| p.rate_limit_tier.as_str());
    let tier = tier_for(
        &app.catalog.rate_limit_tiers,
        plan_tier,
        state.workspace.plan_status,
        paid,
    );
    app.store
        .set_rate_limit_tier(&state.workspace.id, &tier.id)
        .await?;
    Ok(tier)
}

#[derive(Serialize, JsonSchema)]
pub struct SubscriptionView {
    pub plan_id: String,
    pub plan_name: String,
    /// Stripe's vocabulary, derived from the plan status until Stripe reports a subscription:
    /// `trialing` (trial, promo), `active`, `past_due` (suspended), `canceled` (deleted), `null`
    /// (readonly: no subscription).
    pub status: Option<SubscriptionStatus>,
    pub plan_status: PlanStatus,
    pub current_period_start: Option<String>,
    pub current_period_end: Option<String>,
    /// When the next period starts and is charged; `null` when the subscription ends instead.
    pub renews_at: Option<String>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<String>,
    pub trial_ends_at: Option<String>,
    pub promo_ends_at: Option<String>,
    pub grace_ends_at: Option<String>,
}

/// The subscription status shown for a plan status.
pub fn subscription_status(status: PlanStatus) -> Option<SubscriptionStatus> {
    match status {
        PlanStatus::Trial | PlanStatus::Promo => Some(SubscriptionStatus::Trialing),
        PlanStatus::Active => Some(SubscriptionStatus::Active),
        PlanStatus::Suspended => Some(SubscriptionStatus::PastDue),
        PlanStatus::Deleted => Some(SubscriptionStatus::Canceled),
        PlanStatus::Readonly => subscription_status_without_subscription(status),
    }
}

pub fn subscription_view(app: &App, state: &WorkspaceState) -> SubscriptionView {
    let dates = &state.lifecycle.dates;
    let time = |at: Option<time::OffsetDateTime>| at.map(rfc3339);
    let status = state.workspace.plan_status;
    let renews =
        matches!(status, PlanStatus::Promo | PlanStatus::Active) && !dates.cancel_at_period_end;
    SubscriptionView {
        plan_id: state.workspace.plan_id.clone(),
        plan_name: app
            .catalog
            .plan(&state.workspace.plan_id)
            .map_or_else(|| state.workspace.plan_id.clone(), |p| p.name.clone()),
        status: subscription_status(status),
        plan_status: status,
        current_period_start: time(dates.current_period_start),
        current_period_end: time(dates.current_period_end),
        renews_at: time(dates.current_period_end.filter(|_| renews)),
        cancel_at_period_end: dates.cancel_at_period_end,
        canceled_at: time(dates.canceled_at),
        trial_ends_at: time(dates.trial_ends_at),
        promo_ends_at: time(dates.promo_ends_at),
        grace_ends_at: time(dates.grace_ends_at),
    }
}

pub async fn subscription(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    Reply::ok(&subscription_view(cx.app, &state))
}

#[derive(Serialize, JsonSchema)]
pub struct CancellationView {
    pub cancel_at_period_end: bool,
    /// When the subscription ends: the current period's end, if it is canceled.
    pub cancels_at: Option<String>,
}

pub async fn cancellation(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let dates = &state.lifecycle.dates;
    Reply::ok(&CancellationView {
        cancel_at_period_end: dates.cancel_at_period_end,
        cancels_at: dates
            .current_period_end
            .filter(|_| dates.cancel_at_period_end)
            .map(rfc3339),
    })
}
