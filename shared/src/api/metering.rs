//! Pricing and usage events.

use super::access::visible_workspace_state;
use super::lifecycle;
use crate::clock::{rfc3339, unix_millis};
use crate::domain::bounds::Quantity;
use crate::domain::calendar::Day;
use crate::domain::ledger::Refusal;
use crate::domain::pricing::{round_up_to_cents, Category, Tier};
use crate::http::{ApiError, Ctx, Reply};
use crate::store::usage::{UsageCharge, UsageOutcome};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Serialize, JsonSchema)]
pub struct PricingView {
    pub currency: &'static str,
    /// Prices are micro-cents (10⁻⁶ cent) per unit.
    pub unit: &'static str,
    pub default_tier: String,
    pub tiers: Vec<TierView>,
}

#[derive(Serialize, JsonSchema)]
pub struct TierView {
    pub id: String,
    pub prices: BTreeMap<Category, u64>,
}

pub async fn pricing(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let pricing = &cx.app.catalog.pricing;
    Reply::ok(&PricingView {
        currency: crate::domain::money::CURRENCY,
        unit: "micro_cents",
        default_tier: pricing.default_tier.clone(),
        tiers: pricing
            .tiers
            .iter()
            .map(|t| TierView {
                id: t.id.clone(),
                prices: t.prices.clone(),
            })
            .collect(),
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEvent {
    /// The caller's id for this event (1–255 characters); the same id again is the same event,
    /// charged once, forever.
    #[schemars(
        length(min = 1, max = 255),
        pattern(crate::domain::user::NO_CONTROL_CHARS_PATTERN)
    )]
    pub event_id: String,
    /// One of `input_tokens`, `output_tokens`, `actions`, `api_calls`, `agent_invocations`.
    #[schemars(with = "Category")]
    pub category: String,
    /// Units consumed.
    pub quantity: Quantity,
    #[schemars(
        length(min = 1, max = 255),
        pattern(crate::domain::user::NO_CONTROL_CHARS_PATTERN)
    )]
    pub agent_id: Option<String>,
    /// The agent's pricing tier; the catalog's default tier when absent.
    #[schemars(schema_with = "crate::openapi::optional_agent_tier")]
    pub agent_tier: Option<String>,
    /// When it happened (RFC 3339, at most 5 minutes ahead of the server's clock): the day it
    /// counts on in usage views.
    #[schemars(extend("format" = "date-time"))]
    pub occurred_at: Option<String>,
}

pub const MAX_ID_LEN: usize = 255;

/// A caller-chosen id (event, agent): 1–255 visible characters.
pub fn validate_id(field: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(format!(
            "`{field}` must be 1 to {MAX_ID_LEN} visible characters"
        )));
    }
    Ok(())
}

pub fn parse_category(text: &str) -> Result<Category, ApiError> {
    Category::parse(text).ok_or_else(|| {
        ApiError::InvalidRequest(format!(
            "unknown category `{text}`; one of: {}",
            Category::ALL.map(Category::as_str).join(", ")
        ))
    })
}

/// The tier named, or the default; an unknown tier is a 400.
pub fn tier<'a>(cx: &'a Ctx<'_>, name: Option<&str>) -> Result<&'a Tier, ApiError> {
    let pricing = &cx.app.catalog.pricing;
    let name = name.unwrap_or(&pricing.default_tier);
    pricing.tier(name).ok_or_else(|| {
        let known: Vec<&str> = pricing.tiers.iter().map(|t| t.id.as_str()).collect();
        ApiError::InvalidRequest(format!(
            "unknown agent tier `{name}`; one of: {}",
            known.join(", ")
        ))
    })
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::InsufficientCredits { .. } => {
                ApiError::InsufficientCredits(refusal.to_string())
            }
            Refusal::HardCap { .. } => ApiError::HardCapReached(refusal.to_string()),
            // A run ends within seconds to minutes; a short wait is the useful hint.
            Refusal::ConcurrentRuns { .. } => ApiError::RateLimited {
                message: refusal.to_string(),
                retry_after_secs: 5,
            },
            Refusal::OutOfRange(_) => ApiError::InvalidRequest(refusal.to_string()),
        }
    }
}

pub async fn record_usage(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let state = visible_workspace_state(
        &cx,
        &cx.path_id(
            "workspaceId",
            crate::domain::ids::WorkspaceId::parse,
            "workspace",
        )?,
    )
    .await?;
    let workspace = &state.workspace;
    let body: UsageEvent = cx.body()?;
    validate_id("event_id", &body.event_id)?;
    if let Some(agent) = &body.agent_id {
        validate_id("agent_id", agent)?;
    }
    let category = parse_category(&body.category)?;
    let tier = tier(&cx, body.agent_tier.as_deref())?;
    lifecycle::may_run(cx.app, workspace, body.agent_id.as_deref()).await?;
    let now = cx.now();
    let limit = lifecycle::rate_tier(cx.app, &state).requests_per_minute;
    if let Err(over) = cx
        .app
        .store
        .count_request(workspace.id.as_str(), now, limit)
        .await?
    {
        return Err(ApiError::RateLimited {
            message: format!("over the tier's {limit} usage events a minute"),
            retry_after_secs: over.retry_after_secs,
        });
    }
    let occurred = match &body.occurred_at {
        None => now,
        Some(text) => {
            let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                ApiError::InvalidRequest("`occurred_at` must be an RFC 3339 time".into())
            })?;
            if at > now + time::Duration::minutes(5) {
                return Err(ApiError::InvalidRequest(
                    "`occurred_at` is in the future".into(),
                ));
            }
            at
        }
    };
    let cost_cents = round_up_to_cents(tier.cost_micros(category, body.quantity.unsigned()));
    let charge = UsageCharge {
        workspace_id: workspace.id.clone(),
        account_id: workspace.default_billing_account_id.clone(),
        fingerprint: fingerprint(&body, &tier.id),
        event_id: body.event_id,
        category,
        quantity: body.quantity.unsigned(),
        agent_id: body.agent_id,
        cost_cents,
        day: Day::of(occurred),
        created_at: rfc3339(now),
        millis: unix_millis(now),
    };
    match cx.app.store.record_usage(&charge).await? {
        UsageOutcome::Charged(result, actions_used) => {
            if let Some(agent) = &charge.agent_id {
                cx.app
                    .store
                    .remember_agent(workspace.id.as_str(), agent, &charge.created_at)
                    .await?;
            }
            lifecycle::count_trial_actions(cx.app, workspace, actions_used).await?;
            Reply::created(&result)
        }
        UsageOutcome::Repeated(result) => Reply::ok(&result),
        UsageOutcome::Mismatch => Err(ApiError::IdempotencyKeyReused(
            "this event_id was already used for a different event".into(),
        )),
        UsageOutcome::Refused(refusal) => Err(refusal.into()),
    }
}

/// What identifies an event's content, so a reused `event_id` with other content is refused.
fn fingerprint(event: &UsageEvent, tier: &str) -> String {
    let canonical = serde_json::json!([
        event.category,
        event.quantity,
        event.agent_id,
        tier,
        event.occurred_at,
    ]);
    Sha256::digest(canonical.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
