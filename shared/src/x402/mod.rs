//! x402 (HTTP 402 payments), the `exact` scheme on EVM networks: what the checkout asks for
//! ([`requirements`]), what a client pays with ([`payload`]), the EIP-712 and secp256k1 rules
//! ([`evm`], pure), and who settles a payment ([`facilitator`]: offline on the local stage, an
//! HTTP facilitator when deployed).

pub mod evm;
pub mod facilitator;
pub mod payload;
pub mod requirements;

use evm::Address;

/// v2: the server's requirements (base64 JSON), the client's payment, the settlement.
pub const PAYMENT_REQUIRED_HEADER: &str = "payment-required";
pub const PAYMENT_SIGNATURE_HEADER: &str = "payment-signature";
pub const PAYMENT_RESPONSE_HEADER: &str = "payment-response";
/// v1: the client's payment and the settlement.
pub const X_PAYMENT_HEADER: &str = "x-payment";
pub const X_PAYMENT_RESPONSE_HEADER: &str = "x-payment-response";
/// The payment headers, v2 first: the first present is read.
pub const PAYMENT_HEADERS: &[&str] = &[PAYMENT_SIGNATURE_HEADER, X_PAYMENT_HEADER];

/// An EVM network by its CAIP-2 id (`eip155:<chain id>`), with its x402 v1 name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    chain_id: u64,
    v1_name: &'static str,
}

/// A network's USDC: its address and EIP-712 domain.
#[derive(Clone, Copy, Debug)]
pub struct DefaultAsset {
    pub address: Address,
    pub name: &'static str,
    pub version: &'static str,
}

/// The networks x402 v1 names (the v1 wire form needs the name).
const NETWORKS: &[(u64, &str)] = &[
    (8453, "base"),
    (84532, "base-sepolia"),
    (43114, "avalanche"),
    (43113, "avalanche-fuji"),
    (137, "polygon"),
    (80002, "polygon-amoy"),
];

impl Network {
    /// `eip155:<chain id>` of a known network, or its v1 name.
    pub fn parse(text: &str) -> Option<Self> {
        let known = |chain_id: u64| {
            NETWORKS
                .iter()
                .find(|(id, _)| *id == chain_id)
                .map(|&(chain_id, v1_name)| Network { chain_id, v1_name })
        };
        match text.strip_prefix("eip155:") {
            Some(id) => known(id.parse().ok()?),
            None => NETWORKS
                .iter()
                .find(|(_, name)| *name == text)
                .and_then(|(id, _)| known(*id)),
        }
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub fn caip2(&self) -> String {
        format!("eip155:{}", self.chain_id)
    }

    pub fn v1_name(&self) -> &'static str {
        self.v1_name
    }

    /// Circle's USDC where it has a well-known address.
    pub fn default_asset(&self) -> Option<DefaultAsset> {
        let (address, name) = match self.chain_id {
            8453 => ("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin"),
            84532 => ("0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC"),
            _ => return None,
        };
        Some(DefaultAsset {
            address: Address::parse(address)?,
            name,
            version: "2",
        })
    }
}

/// Why a payment is refused: the x402 reasons, in the order they are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    RequirementsMismatch,
    RecipientMismatch,
    ValueMismatch,
    ValidBefore,
    ValidAfter,
    Signature,
    NonceAlreadyUsed,
    /// The facilitator's own reason (`invalidReason` / `errorReason`), passed on.
    Facilitator(String),
}

impl Refusal {
    pub fn reason(&self) -> &str {
        match self {
            Refusal::RequirementsMismatch => "payment_requirements_mismatch",
            Refusal::RecipientMismatch => "invalid_exact_evm_payload_recipient_mismatch",
            Refusal::ValueMismatch => "invalid_exact_evm_payload_authorization_value_mismatch",
            Refusal::ValidBefore => "invalid_exact_evm_payload_authorization_valid_before",
            Refusal::ValidAfter => "invalid_exact_evm_payload_authorization_valid_after",
            Refusal::Signature => "invalid_exact_evm_payload_signature",
            Refusal::NonceAlreadyUsed => "invalid_exact_evm_nonce_already_used",
            Refusal::Facilitator(reason) => reason,
        }
    }
}
