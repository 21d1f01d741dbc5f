//! Plans: what a workspace subscribes to (price, included credits, limits, features), the trial
//! and promo durations of the plan lifecycle, and what each plan status allows.

use super::workspace::PlanStatus;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A plan of the catalog, as `GET /v1/plans` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub id: String,
    pub name: String,
    /// The price per `interval` in cents (per seat when `per_seat`); `null`: custom, agreed with
    /// sales.
    pub price_cents: Option<i64>,
    /// Whether `price_cents` is per team member.
    pub per_seat: bool,
    pub interval: Interval,
    /// Credit the plan includes each period, in cents (0: none; for Enterprise it is agreed per
    /// contract).
    pub included_credits_cents: i64,
    pub limits: PlanLimits,
    pub features: PlanFeatures,
    /// The uptime commitment, e.g. `"99.9%"`; `null`: none.
    pub sla: Option<String>,
    /// The rate-limit tier a workspace on this plan gets.
    pub rate_limit_tier: String,
    /// The Stripe price a subscription to this plan uses; `null`: not sold through checkout
    /// (free, or custom). Not shown by `GET /v1/plans`.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub stripe_price_id: Option<String>,
}

/// A plan's billing interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Month,
    Year,
}

/// What a plan allows; `null` is unlimited (or custom, agreed per contract).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanLimits {
    pub projects: Option<u64>,
    /// API calls per calendar month.
    pub api_calls: Option<u64>,
    /// Agent invocations per calendar month.
    pub agent_invocations: Option<u64>,
    pub team_members: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanFeatures {
    pub priority_support: bool,
    pub custom_agents: bool,
    pub policy_controls: bool,
}

/// The plan lifecycle's durations and thresholds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleTerms {
    /// A trial ends (to `readonly`, without a payment method) after this many days…
    pub trial_days: u32,
    /// …or once this many actions are used, whichever comes first.
    pub trial_actions: u64,
    /// Months at no charge after a payment method is attached (`promo`).
    pub promo_months: u32,
    /// Days a `readonly` workspace is kept before it is deleted.
    pub grace_days: u32,
}

/// The subscription's status, in Stripe's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Trialing,
    Active,
    PastDue,
    Canceled,
    Unpaid,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("plan `{0}` appears twice")]
    Duplicate(String),
    #[error("plan `{id}`: {problem}")]
    Invalid { id: String, problem: String },
    #[error("there must be a plan `{0}`: new workspaces start their trial on it")]
    MissingTrialPlan(String),
    #[error("lifecycle: `{0}` must be greater than 0")]
    Lifecycle(&'static str),
}

/// Checks every plan (ids unique and well-formed, names present, amounts not negative, a
/// rate-limit tier), that `trial_plan` is one of them, and that the lifecycle's durations are
/// positive. Errors name the bad entry.
pub fn validate(
    plans: &[Plan],
    lifecycle: &LifecycleTerms,
    trial_plan: &str,
) -> Result<(), PlanError> {
    for (i, plan) in plans.iter().enumerate() {
        let invalid = |problem: &str| PlanError::Invalid {
            id: plan.id.clone(),
            problem: problem.to_owned(),
        };
        if plan.id.is_empty()
            || !plan
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                "the id must be lowercase letters, digits, `_` or `-`",
            ));
        }
        if plans[..i].iter().any(|p| p.id == plan.id) {
            return Err(PlanError::Duplicate(plan.id.clone()));
        }
        if plan.name.trim().is_empty() {
            return Err(invalid("`name` must not be empty"));
        }
        if plan.price_cents.is_some_and(|p| p < 0) {
            return Err(invalid("`price_cents` must be 0 or more"));
        }
        if plan.included_credits_cents < 0 {
            return Err(invalid("`included_credits_cents` must be 0 or more"));
        }
        if plan.rate_limit_tier.trim().is_empty() {
            return Err(invalid("`rate_limit_tier` must not be empty"));
        }
        if plan
            .stripe_price_id
            .as_deref()
            .is_some_and(|p| !p.starts_with("price_"))
        {
            return Err(invalid(
                "`stripe_price_id` must be a Stripe price id (`price_…`)",
            ));
        }
        if plan.sla.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(invalid("`sla` must be null or a non-empty text"));
        }
    }
    if !plans.iter().any(|p| p.id == trial_plan) {
        return Err(PlanError::MissingTrialPlan(trial_plan.to_owned()));
    }
    for (field, value) in [
        ("trial_days", u64::from(lifecycle.trial_days)),
        ("trial_actions", lifecycle.trial_actions),
        ("promo_months", u64::from(lifecycle.promo_months)),
        ("grace_days", u64::from(lifecycle.grace_days)),
    ] {
        if value == 0 {
            return Err(PlanError::Lifecycle(field));
        }
    }
    Ok(())
}

/// What a plan status allows, per the contract's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permissions {
    /// Runs of agents: on `readonly`, agents that already exist may still run (the contract's
    /// "existing agents only"), so this is `true` there too.
    pub run_agents: bool,
    /// New deployments (agents).
    pub deploy: bool,
}

pub fn permissions(status: PlanStatus) -> Permissions {
    match status {
        PlanStatus::Trial | PlanStatus::Promo | PlanStatus::Active => Permissions {
            run_agents: true,
            deploy: true,
        },
        PlanStatus::Readonly => Permissions {
            run_agents: true,
            deploy: false,
        },
        PlanStatus::Suspended | PlanStatus::Deleted => Permissions {
            run_agents: false,
            deploy: false,
        },
    }
}

/// The subscription status a workspace shows while no subscription exists: `trialing` during
/// the trial, otherwise none.
pub fn subscription_status_without_subscription(status: PlanStatus) -> Option<SubscriptionStatus> {
    (status == PlanStatus::Trial).then_some(SubscriptionStatus::Trialing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str) -> Plan {
        Plan {
            id: id.into(),
            name: "Pro".into(),
            price_cents: Some(1900),
            per_seat: false,
            interval: Interval::Month,
            included_credits_cents: 500,
            limits: PlanLimits {
                projects: Some(10),
                api_calls: Some(10_000),
                agent_invocations: Some(1_000),
                team_members: Some(1),
            },
            features: PlanFeatures {
                priority_support: true,
                custom_agents: false,
                policy_controls: false,
            },
            sla: None,
            rate_limit_tier: "pro".into(),
            stripe_price_id: Some("price_pro_monthly".into()),
        }
    }

    fn lifecycle() -> LifecycleTerms {
        LifecycleTerms {
            trial_days: 30,
            trial_actions: 1000,
            promo_months: 3,
            grace_days: 30,
        }
    }

    #[test]
    fn validation_names_the_bad_plan() {
        assert_eq!(validate(&[plan("pro")], &lifecycle(), "pro"), Ok(()));
        assert_eq!(
            validate(&[plan("pro"), plan("pro")], &lifecycle(), "pro"),
            Err(PlanError::Duplicate("pro".into()))
        );
        let mut negative = plan("team");
        negative.price_cents = Some(-1);
        let error = validate(&[plan("pro"), negative], &lifecycle(), "pro").unwrap_err();
        assert!(error.to_string().contains("team"), "{error}");
        assert!(error.to_string().contains("price_cents"), "{error}");
        assert_eq!(
            validate(&[plan("free")], &lifecycle(), "pro"),
            Err(PlanError::MissingTrialPlan("pro".into()))
        );
        let mut no_trial = lifecycle();
        no_trial.trial_days = 0;
        assert_eq!(
            validate(&[plan("pro")], &no_trial, "pro"),
            Err(PlanError::Lifecycle("trial_days"))
        );
    }

    #[test]
    fn readonly_runs_existing_agents_but_deploys_nothing() {
        assert_eq!(
            permissions(PlanStatus::Readonly),
            Permissions {
                run_agents: true,
                deploy: false
            }
        );
        for status in [PlanStatus::Suspended, PlanStatus::Deleted] {
            assert!(!permissions(status).run_agents && !permissions(status).deploy);
        }
        for status in [PlanStatus::Trial, PlanStatus::Promo, PlanStatus::Active] {
            assert!(permissions(status).run_agents && permissions(status).deploy);
        }
    }

    #[test]
    fn only_a_trial_is_trialing_without_a_subscription() {
        assert_eq!(
            subscription_status_without_subscription(PlanStatus::Trial),
            Some(SubscriptionStatus::Trialing)
        );
        assert_eq!(
            subscription_status_without_subscription(PlanStatus::Active),
            None
        );
    }
}
