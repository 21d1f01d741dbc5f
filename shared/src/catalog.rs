//! The catalog: a versioned file in the repo (`shared/catalog/catalog.json`), read and validated
//! once per cold start, so a bad entry stops the function with an error naming it. It holds the
//! agent tiers' prices, the plans and the plan lifecycle's durations.
//!
//! Included credits per period, chosen where the contract is silent: Free 0, Pro 500 ($5),
//! Team 2000 ($20), Enterprise 0 (agreed per contract). Rate-limit tiers are named after the
//! plans: `free`, `pro`, `team`, `enterprise`.

use crate::domain::plan::{self, Lifecycle, Plan, PlanError};
use crate::domain::pricing::{Pricing, PricingError, Tier};
use crate::domain::workspace::TRIAL_PLAN_ID;
use serde::Deserialize;

const CATALOG: &str = include_str!("../catalog/catalog.json");

#[derive(Clone, Debug)]
pub struct Catalog {
    pub version: u32,
    pub pricing: Pricing,
    /// In the order `GET /v1/plans` lists them.
    pub plans: Vec<Plan>,
    pub lifecycle: Lifecycle,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog.json is malformed: {0}")]
    Malformed(String),
    #[error("catalog.json: {0}")]
    Pricing(#[from] PricingError),
    #[error("catalog.json: {0}")]
    Plans(#[from] PlanError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    version: u32,
    currency: String,
    default_tier: String,
    agent_tiers: Vec<Tier>,
    plans: Vec<Plan>,
    lifecycle: Lifecycle,
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
        Ok(Self {
            version: file.version,
            pricing,
            plans: file.plans,
            lifecycle: file.lifecycle,
        })
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
        let no_pro = CATALOG.replace("\"id\": \"pro\"", "\"id\": \"plus\"");
        let error = Catalog::parse(&no_pro).unwrap_err().to_string();
        assert!(error.contains("`pro`"), "{error}");
    }
}
