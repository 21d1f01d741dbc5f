//! Payments: a gateway with two implementations, Stripe (deployed stages, and locally when
//! Stripe keys are given) and an offline one for the local stage, whose checkouts are completed
//! through `POST .../dev/complete-local` by the same code path as Stripe's webhook. The stage
//! decides, and a deployed stage can never run the offline gateway.

pub mod events;
pub mod metadata;
pub mod offline;
pub mod signature;
pub mod stripe;
pub mod stripe_http;

use offline::OfflineGateway;
use stripe::StripeGateway;

/// What a checkout sells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckoutMode {
    /// Credits: a one-off payment of `amount_cents`.
    Credits { amount_cents: i64 },
    /// A subscription to the catalog price `price_id`, free until `trial_end` (Unix seconds)
    /// when given.
    Subscription {
        price_id: String,
        trial_end: Option<i64>,
    },
}

/// A subscription to start for a workspace.
#[derive(Clone, Debug)]
pub struct SubscriptionRequest<'a> {
    pub customer_id: &'a str,
    pub price_id: &'a str,
    pub payment_method_id: &'a str,
    /// The end of its free period (the promo), Unix seconds.
    pub trial_end: Option<i64>,
    pub metadata: Vec<(&'static str, String)>,
    pub idempotency_key: &'a str,
}

#[derive(Clone, Debug)]
pub struct CheckoutRequest<'a> {
    pub customer_id: &'a str,
    pub mode: CheckoutMode,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    /// Copied onto the session (and, for credits, its PaymentIntent), so the webhook knows
    /// what the payment was for.
    pub metadata: Vec<(&'static str, String)>,
    pub idempotency_key: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `cs_…`
    pub id: String,
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupIntent {
    /// `seti_…`
    pub id: String,
    pub client_secret: String,
}

/// An off-session charge's immediate outcome (the final word arrives by webhook).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Charge {
    Succeeded {
        payment_intent_id: String,
    },
    /// The customer must authenticate (3-D Secure).
    RequiresAction {
        payment_intent_id: String,
        client_secret: String,
    },
    /// Still processing: the webhook will tell.
    Processing {
        payment_intent_id: String,
    },
    /// Declined (card error): not retried.
    Declined {
        payment_intent_id: Option<String>,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The provider failed or is unreachable (maps to 502); the detail is for the log.
    #[error("payment provider error: {0}")]
    Provider(String),
    /// The provider refused what it was given (an unknown or unusable payment method): the
    /// caller's input, safe to show.
    #[error("{0}")]
    Rejected(String),
}

/// The payment gateway this stage uses.
pub enum Gateway {
    Stripe(StripeGateway),
    Offline(OfflineGateway),
}

impl Gateway {
    pub fn publishable_key(&self) -> &str {
        match self {
            Gateway::Stripe(g) => g.publishable_key(),
            Gateway::Offline(g) => g.publishable_key(),
        }
    }

    /// A customer for the workspace. The idempotency key makes concurrent first requests get
    /// the same customer.
    pub async fn create_customer(
        &self,
        workspace_id: &str,
        email: Option<&str>,
        idempotency_key: &str,
    ) -> Result<String, GatewayError> {
        match self {
            Gateway::Stripe(g) => {
                g.create_customer(workspace_id, email, idempotency_key)
                    .await
            }
            Gateway::Offline(g) => Ok(g.create_customer(workspace_id)),
        }
    }

    pub async fn create_checkout(
        &self,
        request: &CheckoutRequest<'_>,
    ) -> Result<CheckoutSession, GatewayError> {
        match self {
            Gateway::Stripe(g) => g.create_checkout(request).await,
            Gateway::Offline(g) => Ok(g.create_checkout(request)),
        }
    }

    /// A billing portal session's URL.
    pub async fn create_portal(
        &self,
        customer_id: &str,
        return_url: &str,
    ) -> Result<String, GatewayError> {
        match self {
            Gateway::Stripe(g) => g.create_portal(customer_id, return_url).await,
            Gateway::Offline(g) => Ok(g.create_portal(customer_id, return_url)),
        }
    }

    pub async fn create_setup_intent(
        &self,
        customer_id: &str,
        idempotency_key: &str,
    ) -> Result<SetupIntent, GatewayError> {
        match self {
            Gateway::Stripe(g) => g.create_setup_intent(customer_id, idempotency_key).await,
            Gateway::Offline(g) => Ok(g.create_setup_intent(customer_id)),
        }
    }

    /// Attaches the method to the customer and makes it the default for invoices and
    /// off-session charges.
    pub async fn attach_payment_method(
        &self,
        customer_id: &str,
        payment_method_id: &str,
    ) -> Result<(), GatewayError> {
        match self {
            Gateway::Stripe(g) => {
                g.attach_payment_method(customer_id, payment_method_id)
                    .await
            }
            Gateway::Offline(_) => OfflineGateway::attach_payment_method(payment_method_id),
        }
    }

    /// Starts the workspace's subscription; returns its id.
    pub async fn create_subscription(
        &self,
        request: &SubscriptionRequest<'_>,
    ) -> Result<String, GatewayError> {
        match self {
            Gateway::Stripe(g) => g.create_subscription(request).await,
            Gateway::Offline(g) => Ok(g.create_subscription(request)),
        }
    }

    /// Charges the saved method off-session (top-ups, auto-recharge).
    pub async fn charge_off_session(
        &self,
        customer_id: &str,
        payment_method_id: &str,
        amount_cents: i64,
        metadata: &[(&'static str, String)],
        idempotency_key: &str,
    ) -> Result<Charge, GatewayError> {
        match self {
            Gateway::Stripe(g) => {
                g.charge_off_session(
                    customer_id,
                    payment_method_id,
                    amount_cents,
                    metadata,
                    idempotency_key,
                )
                .await
            }
            Gateway::Offline(g) => Ok(g.charge_off_session(payment_method_id, idempotency_key)),
        }
    }

    /// Cancels a PaymentIntent that is no longer waited for (an auto-recharge given up), so a
    /// customer who comes back to it later can't pay it. The offline gateway's payments succeed
    /// at once: nothing is left to cancel.
    pub async fn cancel_payment_intent(&self, payment_intent_id: &str) -> Result<(), GatewayError> {
        match self {
            Gateway::Stripe(g) => g.cancel_payment_intent(payment_intent_id).await,
            Gateway::Offline(_) => Ok(()),
        }
    }
}
