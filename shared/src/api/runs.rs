//! Agent runs: authorize (hold), capture usage, complete (settle), read.

use super::access::{visible_workspace, visible_workspace_state, workspace_id};
use super::lifecycle;
use super::metering::{tier, validate_id};
use crate::clock::{rfc3339, unix_millis};
use crate::domain::bounds::{HoldCents, ReportSequence, ReportedCount};
use crate::domain::calendar::{Day, Month};
use crate::domain::ids::RunId;
use crate::domain::run::{Run, RunStatus, RunUsage};
use crate::domain::workspace::Workspace;
use crate::http::{ApiError, Ctx, Reply};
use crate::store::runs::{RunOutcome, SettleAt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRun {
    #[schemars(
        length(min = 1, max = 255),
        pattern(crate::domain::user::NO_CONTROL_CHARS_PATTERN)
    )]
    pub agent_id: String,
    #[schemars(schema_with = "crate::openapi::agent_tier")]
    pub agent_tier: String,
    /// The hold: at most this much is set aside now (more only as usage needs and credit allows).
    pub max_cost_cents: HoldCents,
}

#[derive(Serialize, JsonSchema)]
pub struct Authorized {
    pub run_id: RunId,
    pub hold_cents: i64,
    pub expires_at: String,
    pub status: RunStatus,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportUsage {
    /// Increases with each report; a report whose sequence was already applied changes nothing.
    pub sequence: ReportSequence,
    #[serde(default)]
    pub input_tokens: ReportedCount,
    #[serde(default)]
    pub output_tokens: ReportedCount,
    #[serde(default)]
    pub actions: ReportedCount,
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CompleteRun {
    #[serde(default)]
    pub input_tokens: ReportedCount,
    #[serde(default)]
    pub output_tokens: ReportedCount,
    #[serde(default)]
    pub actions: ReportedCount,
}

#[derive(Serialize, JsonSchema)]
pub struct Completed {
    pub run_id: RunId,
    /// What was debited: the captured cost, rounded up once, never beyond the hold plus what the
    /// account could still afford.
    pub cost_cents: i64,
    pub released_cents: i64,
    pub balance_after_cents: i64,
    /// `completed`, or `expired` when the sweep settled the run first.
    pub status: RunStatus,
}

/// The run, if it belongs to a workspace the caller may see.
async fn visible_run(cx: &Ctx<'_>) -> Result<(Workspace, Run), ApiError> {
    let workspace = visible_workspace(cx, &workspace_id(cx)?).await?;
    let id = cx.path_id("runId", RunId::parse, "run")?;
    let run = cx
        .app
        .store
        .get_run(&id)
        .await?
        .filter(|run| run.workspace_id == workspace.id)
        .ok_or_else(|| ApiError::not_found("run"))?;
    Ok((workspace, run))
}

pub async fn authorize(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(&cx, &workspace_id(&cx)?).await?;
    let workspace = &state.workspace;
    let body: AuthorizeRun = cx.body()?;
    validate_id("agent_id", &body.agent_id)?;
    let tier = tier(&cx, Some(&body.agent_tier))?;
    let max_cost_cents = body.max_cost_cents.get();
    lifecycle::may_run(cx.app, workspace, Some(&body.agent_id)).await?;
    let max_open_runs = lifecycle::rate_tier(cx.app, &state).concurrent_runs;
    let now = cx.now();
    let millis = unix_millis(now);
    let expires = now + time::Duration::seconds(cx.app.config.run_hold_secs);
    // Under an Idempotency-Key the run id is derived from it, so even a retry that outlives the
    // key's record names the same run and holds nothing twice.
    let run_id = match cx.idempotency_key() {
        Some(key) => RunId::derived(&format!("{}|{}|{key}", cx.caller()?.scope(), workspace.id)),
        None => RunId::generate(millis),
    };
    let run = Run {
        run_id,
        workspace_id: workspace.id.clone(),
        billing_account_id: workspace.default_billing_account_id.clone(),
        agent_id: body.agent_id,
        agent_tier: tier.id.clone(),
        status: RunStatus::Authorized,
        max_cost_cents,
        hold_cents: max_cost_cents,
        captured_micros: 0,
        captured_cost_cents: 0,
        usage: Default::default(),
        last_sequence: 0,
        expires_at: rfc3339(expires),
        created_at: rfc3339(now),
        settlement: None,
    };
    let created_at = rfc3339(now);
    match cx
        .app
        .store
        .authorize_run(
            &run,
            Some(max_open_runs),
            expires.unix_timestamp(),
            Month::of(now),
            &created_at,
            millis,
        )
        .await?
    {
        RunOutcome::Done(run) => {
            cx.app
                .store
                .remember_agent(workspace.id.as_str(), &run.agent_id, &created_at)
                .await?;
            Reply::created(&Authorized {
                run_id: run.run_id,
                hold_cents: run.hold_cents,
                expires_at: run.expires_at,
                status: run.status,
            })
        }
        RunOutcome::Refused(refusal) => Err(refusal.into()),
        RunOutcome::NotFound => Err(ApiError::not_found("run")),
    }
}

pub async fn report_usage(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let (_, run) = visible_run(&cx).await?;
    let body: ReportUsage = cx.body()?;
    if run.status != RunStatus::Authorized {
        return Err(ApiError::Conflict(format!(
            "the run is {}",
            status_name(run.status)
        )));
    }
    let tier = tier(&cx, Some(&run.agent_tier))?;
    let usage = RunUsage {
        input_tokens: body.input_tokens.unsigned(),
        output_tokens: body.output_tokens.unsigned(),
        actions: body.actions.unsigned(),
    };
    let now = rfc3339(cx.now());
    match cx
        .app
        .store
        .capture_run_usage(
            &run.run_id,
            body.sequence.get(),
            &usage,
            tier,
            &now,
            unix_millis(cx.now()),
        )
        .await?
    {
        RunOutcome::Done(run) => Reply::ok(&run),
        RunOutcome::Refused(refusal) => Err(refusal.into()),
        RunOutcome::NotFound => Err(ApiError::not_found("run")),
    }
}

pub async fn complete(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let (workspace, run) = visible_run(&cx).await?;
    let body: CompleteRun = cx.body()?;
    let tier = tier(&cx, Some(&run.agent_tier))?;
    let usage = RunUsage {
        input_tokens: body.input_tokens.unsigned(),
        output_tokens: body.output_tokens.unsigned(),
        actions: body.actions.unsigned(),
    };
    let now = cx.now();
    let at = rfc3339(now);
    let settled = cx
        .app
        .store
        .settle_run(
            &run.run_id,
            tier,
            SettleAt {
                status: RunStatus::Completed,
                final_usage: Some(&usage),
                day: Day::of(now),
                settled_at: &at,
                millis: unix_millis(now),
            },
        )
        .await?;
    match settled {
        RunOutcome::Done(run) => {
            lifecycle::recount_trial_actions(cx.app, &workspace).await?;
            let settlement = run
                .settlement
                .ok_or_else(|| ApiError::Internal("a settled run has no settlement".into()))?;
            Reply::ok(&Completed {
                run_id: run.run_id,
                cost_cents: settlement.cost_cents,
                released_cents: settlement.released_cents,
                balance_after_cents: settlement.balance_after_cents,
                status: run.status,
            })
        }
        RunOutcome::Refused(refusal) => Err(refusal.into()),
        RunOutcome::NotFound => Err(ApiError::not_found("run")),
    }
}

pub async fn get(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let (_, run) = visible_run(&cx).await?;
    Reply::ok(&run)
}

fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Authorized => "authorized",
        RunStatus::Completed => "completed",
        RunStatus::Expired => "expired",
    }
}

/// Settles every run whose hold expired: what was reported is debited, the rest released.
/// Returns how many it settled. A run that fails to settle is logged and left for the next pass;
/// it never stops the others.
pub async fn expire_overdue(app: &crate::app::App) -> Result<usize, ApiError> {
    const PAGE: usize = 100;
    const PAGES_PER_PASS: usize = 10;
    let now = app.clock.now();
    let at = rfc3339(now);
    let mut settled = 0;
    for _ in 0..PAGES_PER_PASS {
        let due = app.store.overdue_runs(now.unix_timestamp(), PAGE).await?;
        let mut settled_here = 0;
        for id in &due {
            match expire_one(app, id, &at, unix_millis(now)).await {
                Ok(true) => settled_here += 1,
                Ok(false) => {}
                Err(error) => tracing::error!(run = %id, %error, "could not settle an expired run"),
            }
        }
        settled += settled_here;
        // The index lags behind the settlements: a page that settled nothing new is the end.
        if due.len() < PAGE || settled_here == 0 {
            break;
        }
    }
    Ok(settled)
}

/// Settles one expired run; `false` if it was settled already.
async fn expire_one(
    app: &crate::app::App,
    id: &RunId,
    at: &str,
    millis: u64,
) -> Result<bool, ApiError> {
    let Some(run) = app.store.get_run(id).await? else {
        return Ok(false);
    };
    if run.settlement.is_some() {
        return Ok(false);
    }
    let pricing = &app.catalog.pricing;
    let tier = pricing
        .tier(&run.agent_tier)
        .or_else(|| pricing.tier(&pricing.default_tier))
        .ok_or_else(|| ApiError::Internal("no pricing tier".into()))?;
    app.store
        .settle_run(
            id,
            tier,
            SettleAt {
                status: RunStatus::Expired,
                final_usage: None,
                day: Day::of_timestamp(at)
                    .ok_or_else(|| ApiError::Internal(format!("`{at}` is not a time")))?,
                settled_at: at,
                millis,
            },
        )
        .await?;
    if let Some(workspace) = app.store.get_workspace(&run.workspace_id).await? {
        lifecycle::recount_trial_actions(app, &workspace).await?;
    }
    Ok(true)
}
