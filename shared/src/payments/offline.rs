//! The local stage's gateway: no network. Checkout URLs point at the dev server, where
//! `POST .../billing/dev/complete-local` completes them through the webhook's own code path;
//! off-session charges succeed at once. Ids are Stripe-shaped with a `local` marker.

use super::{Charge, CheckoutRequest, CheckoutSession, SetupIntent};
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

    /// Succeeds at once; the same idempotency key names the same payment.
    pub fn charge_off_session(&self, payment_method_id: &str, idempotency_key: &str) -> Charge {
        let _ = payment_method_id;
        Charge::Succeeded {
            payment_intent_id: format!("pi_local_{}", suffix(idempotency_key)),
        }
    }
}
