//! What the checkout asks for: the one `exact` requirement for an amount, its v1 form, and the
//! 402 answer in both versions (the v2 `PAYMENT-REQUIRED` header and the v1 body).

use crate::config::X402Config;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// USDC's 6 decimals against the API's cents: 1 cent is 10⁴ atomic units.
pub const UNITS_PER_CENT: u128 = 10_000;

/// The v2 payment requirement (`accepts[0]`, and what a v2 payment's `accepted` must repeat).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    pub scheme: String,
    pub network: String,
    /// Atomic units, as a decimal string.
    pub amount: String,
    pub asset: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    pub extra: Value,
}

/// What is being paid for: `resource` of the 402.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub url: String,
    pub description: String,
    pub mime_type: &'static str,
}

/// The checkout's requirement for `cents`, with the resource it pays for.
#[derive(Clone, Debug)]
pub struct Offer {
    pub requirement: Requirement,
    pub resource: Resource,
    pub atomic_amount: u128,
    v1_network: &'static str,
}

impl Offer {
    pub fn new(config: &X402Config, cents: i64, url: String, workspace_id: &str) -> Self {
        let atomic_amount = u128::try_from(cents).unwrap_or(0) * UNITS_PER_CENT;
        Self {
            requirement: Requirement {
                scheme: "exact".into(),
                network: config.network.caip2(),
                amount: atomic_amount.to_string(),
                asset: config.asset.checksummed(),
                pay_to: config.pay_to.checksummed(),
                max_timeout_seconds: config.max_timeout_seconds,
                // No `assetTransferMethod`: the client signs EIP-3009, not Permit2.
                extra: json!({"name": config.asset_name, "version": config.asset_version}),
            },
            resource: Resource {
                url,
                description: format!("{cents} cents of credits for {workspace_id}"),
                mime_type: "application/json",
            },
            atomic_amount,
            v1_network: config.network.v1_name(),
        }
    }

    /// The requirement in x402 v1's words.
    pub fn v1_requirement(&self) -> Value {
        let r = &self.requirement;
        json!({
            "scheme": r.scheme,
            "network": self.v1_network,
            "maxAmountRequired": r.amount,
            "resource": self.resource.url,
            "description": self.resource.description,
            "mimeType": self.resource.mime_type,
            "payTo": r.pay_to,
            "maxTimeoutSeconds": r.max_timeout_seconds,
            "asset": r.asset,
            "outputSchema": null,
            "extra": r.extra,
        })
    }

    /// The v2 `PAYMENT-REQUIRED` object (sent base64-encoded) with `error` as its reason.
    pub fn payment_required_v2(&self, error: &str) -> Value {
        json!({
            "x402Version": 2,
            "error": error,
            "resource": self.resource,
            "accepts": [self.requirement],
        })
    }

    /// The v1 402 body.
    pub fn payment_required_v1(&self, error: &str) -> Value {
        json!({
            "x402Version": 1,
            "error": error,
            "accepts": [self.v1_requirement()],
        })
    }

    pub fn v1_network(&self) -> &'static str {
        self.v1_network
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_dollars_is_five_million_units_to_the_checksummed_treasury() {
        let offer = Offer::new(
            &X402Config::local(),
            500,
            "http://127.0.0.1:3000/v1/workspaces/ws_1/billing/checkout/x402".into(),
            "ws_1",
        );
        let v2 = offer.payment_required_v2("PAYMENT-SIGNATURE header is required");
        assert_eq!(
            v2["accepts"][0],
            json!({
                "scheme": "exact", "network": "eip155:84532", "amount": "5000000",
                "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
                "maxTimeoutSeconds": 300, "extra": {"name": "USDC", "version": "2"},
            })
        );
        assert_eq!(
            v2["resource"]["description"],
            "500 cents of credits for ws_1"
        );
        let v1 = offer.payment_required_v1("X-PAYMENT header is required");
        assert_eq!(v1["accepts"][0]["network"], "base-sepolia");
        assert_eq!(v1["accepts"][0]["maxAmountRequired"], "5000000");
        assert_eq!(v1["accepts"][0]["outputSchema"], Value::Null);
    }
}
