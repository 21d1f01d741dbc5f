//! Prices: per agent tier, micro-cents (10⁻⁶ cent) per unit of each usage category. Costs are
//! summed exactly in micro-cents and rounded up to a whole cent once, per usage event or per run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MICROS_PER_CENT: u128 = 1_000_000;

/// What agents consume.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    InputTokens,
    OutputTokens,
    Actions,
    ApiCalls,
    AgentInvocations,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Self::InputTokens,
        Self::OutputTokens,
        Self::Actions,
        Self::ApiCalls,
        Self::AgentInvocations,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InputTokens => "input_tokens",
            Self::OutputTokens => "output_tokens",
            Self::Actions => "actions",
            Self::ApiCalls => "api_calls",
            Self::AgentInvocations => "agent_invocations",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// One agent tier's prices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub id: String,
    /// Micro-cents per unit, for every category.
    pub prices: BTreeMap<Category, u64>,
}

/// The agent tiers of the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    pub default_tier: String,
    pub tiers: Vec<Tier>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PricingError {
    #[error("agent tier `{0}` has no price for `{1}`")]
    MissingPrice(String, &'static str),
    #[error("agent tier `{0}` appears twice")]
    DuplicateTier(String),
    #[error("the default tier `{0}` is not one of the tiers")]
    UnknownDefault(String),
}

impl Pricing {
    /// Checks that every tier prices every category and the default tier exists.
    pub fn validate(&self) -> Result<(), PricingError> {
        for (i, tier) in self.tiers.iter().enumerate() {
            if self.tiers[..i].iter().any(|t| t.id == tier.id) {
                return Err(PricingError::DuplicateTier(tier.id.clone()));
            }
            if let Some(missing) = Category::ALL.iter().find(|c| !tier.prices.contains_key(c)) {
                return Err(PricingError::MissingPrice(
                    tier.id.clone(),
                    missing.as_str(),
                ));
            }
        }
        if self.tier(&self.default_tier).is_none() {
            return Err(PricingError::UnknownDefault(self.default_tier.clone()));
        }
        Ok(())
    }

    pub fn tier(&self, id: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.id == id)
    }
}

impl Tier {
    /// The exact cost of `quantity` units, in micro-cents.
    pub fn cost_micros(&self, category: Category, quantity: u64) -> u128 {
        u128::from(quantity) * u128::from(self.prices.get(&category).copied().unwrap_or(0))
    }
}

/// Micro-cents rounded up to whole cents.
pub fn round_up_to_cents(micros: u128) -> i64 {
    i64::try_from(micros.div_ceil(MICROS_PER_CENT)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(price: u64) -> Tier {
        Tier {
            id: "t".into(),
            prices: Category::ALL.iter().map(|c| (*c, price)).collect(),
        }
    }

    #[test]
    fn costs_round_up_once_to_a_whole_cent() {
        assert_eq!(round_up_to_cents(0), 0);
        assert_eq!(round_up_to_cents(1), 1);
        assert_eq!(round_up_to_cents(1_000_000), 1);
        assert_eq!(round_up_to_cents(1_000_001), 2);
        // 3 tokens at 300 µ¢ is 900 µ¢: one cent, not three.
        assert_eq!(
            round_up_to_cents(tier(300).cost_micros(Category::InputTokens, 3)),
            1
        );
    }

    #[test]
    fn huge_quantities_do_not_overflow() {
        let micros = tier(u64::MAX).cost_micros(Category::Actions, u64::MAX);
        assert!(micros > u128::from(u64::MAX));
        assert_eq!(round_up_to_cents(micros), i64::MAX);
    }

    #[test]
    fn validation_names_the_bad_entry() {
        let mut incomplete = tier(1);
        incomplete.prices.remove(&Category::ApiCalls);
        let pricing = Pricing {
            default_tier: "t".into(),
            tiers: vec![incomplete],
        };
        assert_eq!(
            pricing.validate(),
            Err(PricingError::MissingPrice("t".into(), "api_calls"))
        );
        let pricing = Pricing {
            default_tier: "nope".into(),
            tiers: vec![tier(1)],
        };
        assert_eq!(
            pricing.validate(),
            Err(PricingError::UnknownDefault("nope".into()))
        );
    }
}
