//! The local stage's gateway: no network. Checkout URLs point at the dev server, where
//! `POST .../billing/dev/complete-local` completes them through the webhook's own code path;
//! off-session charges are answered at once. Ids are Stripe-shaped with a `local` marker.
//!
//! It answers Stripe's documented test payment methods as Stripe's test mode does:
//! `pm_card_chargeDeclined` is declined when attached, every charge on
//! `pm_card_chargeCustomerFail` is declined, every off-session charge on
//! `pm_card_authenticationRequired` needs 3-D Secure; any other `pm_` id charges.

use super::{
    Charge, CheckoutRequest, CheckoutSession, GatewayError, SetupIntent, SubscriptionRequest,
};

/// Stripe's test method declined when it is attached.
pub const DECLINED_AT_ATTACH: &str = "pm_card_chargeDeclined";
/// Stripe's test method that attaches, and then every charge on it is declined.
pub const DECLINES_EVERY_CHARGE: &str = "pm_card_chargeCustomerFail";
/// Stripe's test method whose off-session charges need 3-D Secure.
pub const NEEDS_AUTHENTICATION: &str = "pm_card_authenticationRequired";
use sha2::{Digest, Sha256};

pub struct OfflineGateway {
    /// The dev server's address, for the URLs it hands out.
    base_url: String,
}

/// A short, stable id suffix for `seed`.
fn suffix(seed: &str) -> String {
    Sha256::digest(seed.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fresh_suffix() -> String {
    suffix(&format!(
        "{:?}",
        (std::time::SystemTime::now(), rand::random::<u64>())
    ))
}

impl OfflineGateway {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    pub fn publishable_key(&self) -> &str {
        "pk_test_local_offline"
    }

    /// One customer per workspace, the same whoever asks.
    pub fn create_customer(&self, workspace_id: &str) -> String {
        format!("cus_local_{}", suffix(workspace_id))
    }

    pub fn create_checkout(&self, request: &CheckoutRequest<'_>) -> CheckoutSession {
        let id = format!("cs_local_{}", suffix(request.idempotency_key));
        CheckoutSession {
            url: format!("{}/local-checkout/{id}", self.base_url),
            id,
        }
    }

    pub fn create_portal(&self, customer_id: &str, return_url: &str) -> String {
        let _ = return_url;
        format!("{}/local-portal/{customer_id}", self.base_url)
    }

    pub fn create_setup_intent(&self, customer_id: &str) -> SetupIntent {
        let id = format!(
            "seti_local_{}",
            suffix(&format!("{customer_id}{}", fresh_suffix()))
        );
        SetupIntent {
            client_secret: format!("{id}_secret_{}", fresh_suffix()),
            id,
        }
    }

    /// Stripe's answer to attaching this test method.
    pub fn attach_payment_method(payment_method_id: &str) -> Result<(), GatewayError> {
        if payment_method_id == DECLINED_AT_ATTACH {
            return Err(GatewayError::Rejected(
                "Your card was declined. (card_declined: generic_decline)".into(),
            ));
        }
        Ok(())
    }

    /// One subscription per workspace (the idempotency key names it).
    pub fn create_subscription(&self, request: &SubscriptionRequest<'_>) -> String {
        format!("sub_local_{}", suffix(request.idempotency_key))
    }

    /// Answered at once, as the test method would be; the same idempotency key names the same
    /// payment.
    pub fn charge_off_session(&self, payment_method_id: &str, idempotency_key: &str) -> Charge {
        let payment_intent_id = format!("pi_local_{}", suffix(idempotency_key));
        match payment_method_id {
            DECLINES_EVERY_CHARGE => Charge::Declined {
                payment_intent_id: Some(payment_intent_id),
                message: "Your card was declined.".into(),
            },
            NEEDS_AUTHENTICATION => Charge::RequiresAction {
                client_secret: format!("{payment_intent_id}_secret_{}", fresh_suffix()),
                payment_intent_id,
            },
            _ => Charge::Succeeded { payment_intent_id },
        }
    }
}
