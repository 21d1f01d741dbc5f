//! Rate-limit tiers: how many usage events a workspace may send per minute and how many runs it
//! may have open. The tier follows the workspace's plan and what its default account has paid
//! over its lifetime (the higher of the two), and drops to the lowest tier while the plan status
//! doesn't let agents run freely (readonly, suspended, deleted).

use super::workspace::PlanStatus;
use serde::{Deserialize, Serialize};

/// A tier of the catalog, lowest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateTier {
    pub id: String,
    pub requests_per_minute: u32,
    pub concurrent_runs: u32,
    /// Paying in at least this much over an account's lifetime earns the tier whatever the
    /// plan; `null`: only a plan gives it.
    pub min_lifetime_paid_cents: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateTierError {
    #[error("rate_limit_tiers: there must be at least one tier")]
    Empty,
    #[error("rate_limit_tiers: tier `{id}`: {problem}")]
    Invalid { id: String, problem: &'static str },
}

/// Checks the tiers are unique, non-zero, and ordered lowest first (limits and paid thresholds
/// never decrease).
pub fn validate(tiers: &[RateTier]) -> Result<(), RateTierError> {
    if tiers.is_empty() {
        return Err(RateTierError::Empty);
    }
    for (i, tier) in tiers.iter().enumerate() {
        let invalid = |problem| RateTierError::Invalid {
            id: tier.id.clone(),
            problem,
        };
        if tier.id.trim().is_empty() {
            return Err(invalid("the id must not be empty"));
        }
        if tiers[..i].iter().any(|t| t.id == tier.id) {
            return Err(invalid("appears twice"));
        }
        if tier.requests_per_minute == 0 || tier.concurrent_runs == 0 {
            return Err(invalid("limits must be at least 1"));
        }
        if tier.min_lifetime_paid_cents.is_some_and(|c| c < 0) {
            return Err(invalid("`min_lifetime_paid_cents` must be 0 or more"));
        }
        if let Some(lower) = i.checked_sub(1).map(|j| &tiers[j]) {
            if tier.requests_per_minute < lower.requests_per_minute
                || tier.concurrent_runs < lower.concurrent_runs
            {
                return Err(invalid("tiers must be listed lowest first"));
            }
            if let (Some(lower_paid), Some(paid)) =
                (lower.min_lifetime_paid_cents, tier.min_lifetime_paid_cents)
            {
                if paid < lower_paid {
                    return Err(invalid("paid thresholds must not decrease"));
                }
            }
        }
    }
    Ok(())
}

/// The tier a workspace gets: its plan's, raised by its account's lifetime paid, or the lowest
/// while its status restricts it. `plan_tier` must be one of `tiers` (the catalog checks it).
pub fn tier_for<'a>(
    tiers: &'a [RateTier],
    plan_tier: &str,
    status: PlanStatus,
    lifetime_paid_cents: i64,
) -> &'a RateTier {
    let lowest = &tiers[0];
    if matches!(
        status,
        PlanStatus::Readonly | PlanStatus::Suspended | PlanStatus::Deleted
    ) {
        return lowest;
    }
    let by_plan = tiers.iter().position(|t| t.id == plan_tier).unwrap_or(0);
    let by_paid = tiers
        .iter()
        .rposition(|t| {
            t.min_lifetime_paid_cents
                .is_some_and(|min| lifetime_paid_cents >= min)
        })
        .unwrap_or(0);
    &tiers[by_plan.max(by_paid)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<RateTier> {
        [
            ("free", 60, 2, Some(0)),
            ("pro", 600, 10, Some(5_000)),
            ("enterprise", 6000, 100, None),
        ]
        .into_iter()
        .map(|(id, rpm, runs, paid)| RateTier {
            id: id.into(),
            requests_per_minute: rpm,
            concurrent_runs: runs,
            min_lifetime_paid_cents: paid,
        })
        .collect()
    }

    #[test]
    fn the_tier_is_the_higher_of_plan_and_lifetime_paid() {
        let tiers = tiers();
        assert_eq!(tier_for(&tiers, "free", PlanStatus::Active, 0).id, "free");
        assert_eq!(
            tier_for(&tiers, "free", PlanStatus::Active, 4_999).id,
            "free"
        );
        assert_eq!(
            tier_for(&tiers, "free", PlanStatus::Active, 5_000).id,
            "pro"
        );
        assert_eq!(
            tier_for(&tiers, "free", PlanStatus::Active, i64::MAX).id,
            "pro",
            "enterprise is only given by the plan"
        );
        assert_eq!(
            tier_for(&tiers, "enterprise", PlanStatus::Trial, 0).id,
            "enterprise"
        );
    }

    #[test]
    fn restricted_statuses_get_the_lowest_tier() {
        let tiers = tiers();
        for status in [
            PlanStatus::Readonly,
            PlanStatus::Suspended,
            PlanStatus::Deleted,
        ] {
            assert_eq!(tier_for(&tiers, "enterprise", status, 1_000_000).id, "free");
        }
        for status in [PlanStatus::Trial, PlanStatus::Promo, PlanStatus::Active] {
            assert_eq!(tier_for(&tiers, "pro", status, 0).id, "pro");
        }
    }

    #[test]
    fn validation_names_the_bad_tier() {
        assert_eq!(validate(&tiers()), Ok(()));
        let mut unordered = tiers();
        unordered.swap(0, 1);
        assert!(matches!(
            validate(&unordered),
            Err(RateTierError::Invalid { id, .. }) if id == "free"
        ));
        let mut zero = tiers();
        zero[2].concurrent_runs = 0;
        assert!(matches!(
            validate(&zero),
            Err(RateTierError::Invalid { id, .. }) if id == "enterprise"
        ));
        assert_eq!(validate(&[]), Err(RateTierError::Empty));
    }
}
