//! The catalog: a versioned file in the repo (`shared/catalog/catalog.json`), read and validated
//! once per cold start, so a bad entry stops the function with an error naming it.

use crate::domain::pricing::{Pricing, PricingError, Tier};
use serde::Deserialize;

const CATALOG: &str = include_str!("../catalog/catalog.json");

#[derive(Clone, Debug)]
pub struct Catalog {
    pub version: u32,
    pub pricing: Pricing,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog.json is malformed: {0}")]
    Malformed(String),
    #[error("catalog.json: {0}")]
    Pricing(#[from] PricingError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    version: u32,
    currency: String,
    default_tier: String,
    agent_tiers: Vec<Tier>,
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
        Ok(Self {
            version: file.version,
            pricing,
        })
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
}
