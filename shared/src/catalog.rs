//! The catalog: a versioned file in the repo (`shared/catalog/catalog.json`), read and validated
//! once per cold start, so a bad entry stops the function with an error naming it. It holds the
//! agent tiers' prices, the plans and the plan lifecycle's durations.
//!
//! Included credits per period, chosen where the contract is silent: Free 0, Pro 500 ($5),
//! Team 2000 ($20), Enterprise 0 (agreed per contract). Rate-limit tiers are named after the
//! plans: `free` 60 usage events a minute and 2 open runs, `pro` 600/10 (or $50 paid in),
//! `team` 3000/50 (or $500 paid in), `enterprise` 10000/200 (by plan only).

use crate::domain::lifecycle::{Durations, Span};
use crate::domain::plan::{self, LifecycleTerms, Plan, PlanError};
use crate::domain::pricing::{Pricing, PricingError, Tier};
use crate::domain::rate_limit::{self, RateTier, RateTierError};
use crate::domain::workspace::TRIAL_PLAN_ID;
use serde::Deserialize;

const CATALOG: &str = include_str!("../catalog/catalog.json");

#[derive(Clone, Debug)]
pub struct Catalog {
    pub version: u32,
    pub pricing: Pricing,
    /// In the order `GET /v1/plans` lists them.
    pub plans: Vec<Plan>,
    /// Lowest first.
    pub rate_limit_tiers: Vec<RateTier>,
    pub lifecycle: LifecycleTerms,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog.json is malformed: {0}")]
    Malformed(String),
    #[error("catalog.json: {0}")]
    Pricing(#[from] PricingError),
    #[error("catalog.json: {0}")]
    Plans(#[from] PlanError),
    #[error("catalog.json: {0}")]
    RateTiers(#[from] RateTierError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    version: u32,
    currency: String,
    default_tier: String,
    agent_tiers: Vec<Tier>,
    plans: Vec<Plan>,
    rate_limit_tiers: Vec<RateTier>,
    lifecycle: LifecycleTerms,
}

impl Catalog {
    /// The catalog built into this binary.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::parse(CATALOG)
    }

    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let file: CatalogFile = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| CatalogError::Malformed(format!("at `{}`: {}", e.path(), e.inner())))?;
        if file.currency != crate::domain::money::CURRENCY {
            return Err(CatalogError::Malformed(format!(
                "currency `{}` is not supported",
                file.currency
            )));
        }
        let pricing = Pricing {
            default_tier: file.default_tier,
            tiers: file.agent_tiers,
        };
        pricing.validate()?;
        plan::validate(&file.plans, &file.lifecycle, TRIAL_PLAN_ID)?;
        rate_limit::validate(&file.rate_limit_tiers)?;
        for plan in &file.plans {
            if !file
                .rate_limit_tiers
                .iter()
                .any(|t| t.id == plan.rate_limit_tier)
            {
                return Err(CatalogError::Plans(PlanError::Invalid {
                    id: plan.id.clone(),
                    problem: format!(
                        "rate_limit_tier `{}` is not in rate_limit_tiers",
                        plan.rate_limit_tier
                    ),
                }));
            }
        }
        Ok(Self {
            version: file.version,
            pricing,
            plans: file.plans,
            rate_limit_tiers: file.rate_limit_tiers,
            lifecycle: file.lifecycle,
        })
    }

    /// The lifecycle's durations; the configuration's lengths in seconds (local) replace the
    /// catalog's.
    pub fn durations(&self, config: &crate::config::Config) -> Durations {
        let days = |d: u32| time::Duration::days(i64::from(d));
        Durations {
            trial: config
                .trial_secs
                .map_or(days(self.lifecycle.trial_days), time::Duration::seconds),
            trial_actions: self.lifecycle.trial_actions,
            promo: config
                .promo_secs
                .map_or(Span::Months(self.lifecycle.promo_months), Span::Seconds),
            grace: config
                .grace_secs
                .map_or(days(self.lifecycle.grace_days), time::Duration::seconds),
            period: config.period_secs.map_or(Span::Months(1), Span::Seconds),
        }
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_is_valid() {
        let catalog = Catalog::builtin().unwrap();
        assert!(catalog
            .pricing
            .tier(&catalog.pricing.default_tier)
            .is_some());
    }

    #[test]
    fn a_bad_entry_is_named() {
        let missing_price = CATALOG.replace("\"api_calls\": 10000, ", "");
        let error = Catalog::parse(&missing_price).unwrap_err().to_string();
        assert!(
            error.contains("basic") && error.contains("api_calls"),
            "{error}"
        );
        let bad_category = CATALOG.replace("\"actions\": 100000", "\"acts\": 100000");
        let error = Catalog::parse(&bad_category).unwrap_err().to_string();
        assert!(error.contains("agent_tiers[0].prices"), "{error}");
    }

    #[test]
    fn the_builtin_plans_follow_the_plan_table() {
        let catalog = Catalog::builtin().unwrap();
        let ids: Vec<&str> = catalog.plans.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["free", "pro", "team", "enterprise"]);
        let team = catalog.plan("team").unwrap();
        assert_eq!((team.price_cents, team.per_seat), (Some(4900), true));
        assert_eq!(team.limits.team_members, None);
        assert_eq!(catalog.plan("enterprise").unwrap().price_cents, None);
        assert_eq!(catalog.lifecycle.trial_actions, 1000);
    }

    #[test]
    fn a_bad_plan_is_named() {
        let negative = CATALOG.replace("\"price_cents\": 4900", "\"price_cents\": -4900");
        let error = Catalog::parse(&negative).unwrap_err().to_string();
        assert!(
            error.contains("team") && error.contains("price_cents"),
            "{error}"
        );
        let unknown = CATALOG.replace("\"custom_agents\": true", "\"custom_agent\": true");
        let error = Catalog::parse(&unknown).unwrap_err().to_string();
        assert!(
            error.contains("plans[2].features") && error.contains("custom_agent"),
            "{error}"
        );
        let unknown_tier = CATALOG.replace(
            "\"rate_limit_tier\": \"team\"",
            "\"rate_limit_tier\": \"gold\"",
        );
        let error = Catalog::parse(&unknown_tier).unwrap_err().to_string();
        assert!(error.contains("team") && error.contains("gold"), "{error}");
        let no_pro = CATALOG.replace("\"id\": \"pro\"", "\"id\": \"plus\"");
        let error = Catalog::parse(&no_pro).unwrap_err().to_string();
        assert!(error.contains("`pro`"), "{error}");
    }
}
