//! What a client pays with: the `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1) header, base64 of
//! JSON, parsed into a typed authorization, and the checks it must pass, in the contract's
//! order (the first that fails is the refusal's reason).

use super::evm::{parse_hex, recover_signer, Address, Domain, TransferWithAuthorization, U256};
use super::requirements::Offer;
use super::Refusal;
use crate::config::X402Config;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

/// The x402 protocol version of a payment (from the header it came in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A decoded payment header.
#[derive(Clone, Debug)]
pub struct Payment {
    pub version: Version,
    /// The header's JSON as sent: what an HTTP facilitator is given.
    pub raw: Value,
    /// v2: the requirement the client says it accepted; v1: `scheme` and `network`.
    pub accepted: Accepted,
    pub authorization: TransferWithAuthorization,
    pub signature: [u8; 65],
}

#[derive(Clone, Debug)]
pub enum Accepted {
    V2(Value),
    V1 { scheme: String, network: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireV2 {
    accepted: Value,
    payload: WireExact,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireV1 {
    scheme: String,
    network: String,
    payload: WireExact,
}

#[derive(Deserialize)]
struct WireExact {
    signature: String,
    authorization: WireAuthorization,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAuthorization {
    from: String,
    to: String,
    value: String,
    valid_after: String,
    valid_before: String,
    nonce: String,
}

/// Why a header is not a payment at all (a 400, not a refusal).
#[derive(Debug, thiserror::Error)]
#[error("the payment header is not base64 of a JSON x402 payment payload: {0}")]
pub struct Malformed(String);

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ]
    .iter()
    .find_map(|engine| engine.decode(text).ok())
}

impl Payment {
    /// Reads a header of `version`.
    pub fn parse(version: Version, header: &[u8]) -> Result<Self, Malformed> {
        let text = std::str::from_utf8(header).map_err(|_| Malformed("not text".into()))?;
        let bytes = decode_base64(text).ok_or_else(|| Malformed("not base64".into()))?;
        let raw: Value =
            serde_json::from_slice(&bytes).map_err(|e| Malformed(format!("not JSON ({e})")))?;
        let expected_version = match version {
            Version::V1 => 1,
            Version::V2 => 2,
        };
        if raw.get("x402Version").and_then(Value::as_u64) != Some(expected_version) {
            return Err(Malformed(format!(
                "`x402Version` must be {expected_version} in this header"
            )));
        }
        let shape = |e: serde_json::Error| Malformed(e.to_string());
        let (accepted, exact) = match version {
            Version::V2 => {
                let wire: WireV2 = serde_json::from_value(raw.clone()).map_err(shape)?;
                (Accepted::V2(wire.accepted), wire.payload)
            }
            Version::V1 => {
                let wire: WireV1 = serde_json::from_value(raw.clone()).map_err(shape)?;
                (
                    Accepted::V1 {
                        scheme: wire.scheme,
                        network: wire.network,
                    },
                    wire.payload,
                )
            }
        };
        let a = &exact.authorization;
        let address = |name: &str, text: &str| {
            Address::parse(text).ok_or_else(|| Malformed(format!("`{name}` is not an address")))
        };
        let number = |name: &str, text: &str| {
            U256::from_decimal(text)
                .ok_or_else(|| Malformed(format!("`{name}` is not a decimal uint256")))
        };
        let authorization = TransferWithAuthorization {
            from: address("from", &a.from)?,
            to: address("to", &a.to)?,
            value: number("value", &a.value)?,
            valid_after: number("validAfter", &a.valid_after)?,
            valid_before: number("validBefore", &a.valid_before)?,
            nonce: parse_hex::<32>(&a.nonce)
                .ok_or_else(|| Malformed("`nonce` is not 32 bytes of hex".into()))?,
        };
        let signature = parse_hex::<65>(&exact.signature)
            .ok_or_else(|| Malformed("`signature` is not 65 bytes of hex".into()))?;
        Ok(Payment {
            version,
            raw,
            accepted,
            authorization,
            signature,
        })
    }

    /// Which authorization this is, once and for all: `X402#<network>#<from>#<nonce>`.
    pub fn claim_key(&self, config: &X402Config) -> String {
        format!(
            "X402#{}#{}#0x{}",
            config.network.caip2(),
            self.authorization.from.lowercase(),
            super::evm::hex(&self.authorization.nonce)
        )
    }

    /// The EIP-712 digest the signature signs, under the configured token's domain.
    pub fn digest(&self, config: &X402Config) -> [u8; 32] {
        self.authorization.digest(&Domain {
            name: &config.asset_name,
            version: &config.asset_version,
            chain_id: config.network.chain_id(),
            verifying_contract: config.asset,
        })
    }

    /// The checks before the nonce, in order; `check_signature` only for the offline
    /// facilitator (an HTTP facilitator verifies the signature itself).
    pub fn check(
        &self,
        config: &X402Config,
        offer: &Offer,
        now_epoch: i64,
        check_signature: bool,
    ) -> Result<(), Refusal> {
        if !self.accepts(config, offer) {
            return Err(Refusal::RequirementsMismatch);
        }
        let a = &self.authorization;
        if a.to != config.pay_to {
            return Err(Refusal::RecipientMismatch);
        }
        if a.value.to_u128() != Some(offer.atomic_amount) {
            return Err(Refusal::ValueMismatch);
        }
        let now = u128::try_from(now_epoch).unwrap_or(0);
        // Far-future ends (past u128) are as good as any other future end.
        if a.valid_before
            .to_u128()
            .is_some_and(|before| before < now + 6)
        {
            return Err(Refusal::ValidBefore);
        }
        if a.valid_after.to_u128().is_none_or(|after| after > now) {
            return Err(Refusal::ValidAfter);
        }
        if check_signature && recover_signer(&self.digest(config), &self.signature) != Some(a.from)
        {
            return Err(Refusal::Signature);
        }
        Ok(())
    }

    /// v2: `accepted` repeats the requirement (addresses in any case, `extra` may hold more);
    /// v1: the scheme and the network's v1 name.
    fn accepts(&self, config: &X402Config, offer: &Offer) -> bool {
        let required = &offer.requirement;
        match &self.accepted {
            Accepted::V1 { scheme, network } => {
                scheme == "exact" && network == config.network.v1_name()
            }
            Accepted::V2(accepted) => {
                let text = |name: &str| accepted.get(name).and_then(Value::as_str);
                let same_address = |name: &str, wanted: &str| {
                    text(name).and_then(Address::parse) == Address::parse(wanted)
                };
                let extra_ok = ["name", "version"].iter().all(|field| {
                    accepted.get("extra").and_then(|e| e.get(field)) == required.extra.get(field)
                });
                text("scheme") == Some(required.scheme.as_str())
                    && text("network") == Some(required.network.as_str())
                    && text("amount") == Some(required.amount.as_str())
                    && accepted.get("maxTimeoutSeconds").and_then(Value::as_u64)
                        == Some(required.max_timeout_seconds)
                    && same_address("asset", &required.asset)
                    && same_address("payTo", &required.pay_to)
                    && extra_ok
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    const SIGNATURE: &str = "0x2d7c9a36f38d6b59db76067dcb1328b1b4f25cc7d262f31c9f230571e607c3c11e212dffcf2f4a0de40f7c0409e3b8f4da7b08b46306b23652aa7a332b427f761b";

    fn header(offer: &Offer, authorization: Value) -> Vec<u8> {
        let body = json!({
            "x402Version": 2,
            "accepted": offer.requirement,
            "payload": {"signature": SIGNATURE, "authorization": authorization},
        });
        STANDARD.encode(body.to_string()).into_bytes()
    }

    fn vector_authorization() -> Value {
        json!({
            "from": "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23",
            "to": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
            "value": "5000000", "validAfter": "0", "validBefore": "1900000000",
            "nonce": format!("0x{}", "11".repeat(32)),
        })
    }

    #[test]
    fn the_vector_passes_and_each_check_refuses_with_its_reason() {
        let config = X402Config::local();
        let offer = Offer::new(&config, 500, "http://h/x".into(), "ws_1");
        let now = 1_800_000_000;
        let payment = Payment::parse(Version::V2, &header(&offer, vector_authorization())).unwrap();
        assert_eq!(payment.check(&config, &offer, now, true), Ok(()));
        assert_eq!(
            payment.claim_key(&config),
            format!(
                "X402#eip155:84532#0x2c7536e3605d9c16a7a3d7b1898e529396a65c23#0x{}",
                "11".repeat(32)
            )
        );
        let smaller = Offer::new(&config, 600, "http://h/x".into(), "ws_1");
        assert_eq!(
            payment.check(&config, &smaller, now, true),
            Err(Refusal::RequirementsMismatch)
        );
        let refused = |change: &dyn Fn(&mut Value), when: i64| {
            let mut authorization = vector_authorization();
            change(&mut authorization);
            Payment::parse(Version::V2, &header(&offer, authorization))
                .unwrap()
                .check(&config, &offer, when, true)
                .unwrap_err()
        };
        assert_eq!(
            refused(
                &|a| a["to"] = json!("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"),
                now
            ),
            Refusal::RecipientMismatch
        );
        assert_eq!(
            refused(&|a| a["value"] = json!("4999999"), now),
            Refusal::ValueMismatch
        );
        assert_eq!(refused(&|_| {}, 1_900_000_000 - 5), Refusal::ValidBefore);
        assert_eq!(
            refused(&|a| a["validAfter"] = json!("1800000001"), now),
            Refusal::ValidAfter
        );
        assert_eq!(
            refused(
                &|a| a["nonce"] = json!(format!("0x{}", "22".repeat(32))),
                now
            ),
            Refusal::Signature
        );
    }

    #[test]
    fn a_header_that_is_not_a_payment_is_malformed() {
        assert!(Payment::parse(Version::V2, b"%%%").is_err());
        assert!(Payment::parse(Version::V2, STANDARD.encode("[1]").as_bytes()).is_err());
        let v1 = STANDARD.encode(json!({"x402Version": 1}).to_string());
        assert!(Payment::parse(Version::V2, v1.as_bytes()).is_err());
    }
}
