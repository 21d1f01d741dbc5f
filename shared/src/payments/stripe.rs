//! Stripe through async-stripe 1.x: its typed request per call, sent by our transport
//! ([`super::stripe_http`], one per cold start), and only the fields of each answer the gateway
//! uses read into small types of its own, then mapped onto the gateway's vocabulary.
//!
//! Every call that creates something sends the caller's idempotency key as `Idempotency-Key`, so
//! a retried request (ours or a client's) gets Stripe's first answer instead of a second object.

use std::collections::HashMap;
use std::time::Duration;

use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::invoice::PayInvoice;
use stripe_billing::subscription::{
    CreateSubscription, CreateSubscriptionItems, CreateSubscriptionTrialEnd,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionSubscriptionData, ProductData,
};
use stripe_checkout::CheckoutSessionMode;
use stripe_client_core::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_core::customer::{CreateCustomer, UpdateCustomer, UpdateCustomerInvoiceSettings};
use stripe_core::payment_intent::{
    CancelPaymentIntent, CancelPaymentIntentCancellationReason, CreatePaymentIntent,
    CreatePaymentIntentAutomaticPaymentMethods,
    CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects, CreatePaymentIntentOffSession,
};
use stripe_core::setup_intent::{CreateSetupIntent, CreateSetupIntentUsage};
use stripe_payment::payment_method::AttachPaymentMethod;
use stripe_types::Currency;

use super::stripe_http::{ApiError, StripeHttp, StripeHttpError};
use super::{
    Charge, CheckoutMode, CheckoutRequest, CheckoutSession, GatewayError, SetupIntent,
    SubscriptionRequest,
};

/// The product name a credits checkout shows the customer.
const CREDITS_PRODUCT_NAME: &str = "Credits";

/// Per attempt: two calls fit inside a function's 25 s (template.yaml) and API Gateway's 30 s,
/// so a hung connection becomes a 502 we answer, not a function stopped mid-payment. A
/// timed-out create is safe to retry with the same idempotency key.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// Stripe's API, unless the configuration names a stand-in.
const STRIPE_API_BASE: &str = "https://api.stripe.com/";

pub struct StripeGateway {
    /// The client, or why it could not be built (a malformed key). Kept as an error rather than
    /// a panic so a bad Stripe setting fails the payment routes, not every route. Boxed: the
    /// client is large, and `Gateway` holds this beside a tiny offline gateway.
    client: Result<Box<StripeHttp>, String>,
    publishable_key: String,
}

/// The fields of Stripe's answers that the gateway reads (the rest is skipped unread).
#[derive(miniserde::Deserialize)]
struct Created {
    id: String,
}

#[derive(miniserde::Deserialize)]
struct CreatedCheckout {
    id: String,
    url: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct CreatedPortal {
    url: String,
}

#[derive(miniserde::Deserialize)]
struct CreatedSetupIntent {
    id: String,
    client_secret: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct ConfirmedPaymentIntent {
    id: String,
    status: String,
    client_secret: Option<String>,
    last_payment_error: Option<LastPaymentError>,
}

#[derive(miniserde::Deserialize)]
struct LastPaymentError {
    message: Option<String>,
}

impl StripeGateway {
    /// Builds the client once (per cold start); `base_url` replaces `https://api.stripe.com/`
    /// (the tests point it at a fake Stripe).
    pub fn new(secret_key: &str, publishable_key: &str, base_url: Option<&str>) -> Self {
        let client = StripeHttp::new(
            secret_key,
            base_url.unwrap_or(STRIPE_API_BASE),
            REQUEST_TIMEOUT,
        )
        .map(Box::new)
        .map_err(|error| format!("the Stripe client could not be built: {error}"));
        Self {
            client,
            publishable_key: publishable_key.to_owned(),
        }
    }

    pub fn publishable_key(&self) -> &str {
        &self.publishable_key
    }

    fn client(&self) -> Result<&StripeHttp, GatewayError> {
        self.client
            .as_deref()
            .map_err(|reason| GatewayError::Provider(reason.clone()))
    }

    /// A customer tagged with the workspace; returns its `cus_…` id.
    pub async fn create_customer(
        &self,
        workspace_id: &str,
        email: Option<&str>,
        idempotency_key: &str,
    ) -> Result<String, GatewayError> {
        let mut request = CreateCustomer::new().metadata(HashMap::from([(
            "workspace_id".to_owned(),
            workspace_id.to_owned(),
        )]));
        if let Some(email) = email {
            request = request.email(email);
        }
        let customer = request
            .build()
            .customize::<Created>()
            .request_strategy(idempotent(idempotency_key)?)
            .send(self.client()?)
            .await
            .map_err(provider_error)?;
        Ok(customer.id)
    }

    /// A hosted Checkout session: a one-off payment for credits, or a subscription to a price.
    pub async fn create_checkout(
        &self,
        request: &CheckoutRequest<'_>,
    ) -> Result<CheckoutSession, GatewayError> {
        let metadata = metadata_map(&request.metadata);
        let mut session = CreateCheckoutSession::new()
            .customer(request.customer_id)
            .success_url(request.success_url)
            .cancel_url(request.cancel_url)
            .metadata(metadata.clone());
        session = match &request.mode {
            CheckoutMode::Credits { amount_cents } => {
                let mut price = CreateCheckoutSessionLineItemsPriceData::new(Currency::USD);
                price.unit_amount = Some(*amount_cents);
                price.product_data = Some(ProductData::new(CREDITS_PRODUCT_NAME));
                let mut line = CreateCheckoutSessionLineItems::new();
                line.price_data = Some(price);
                line.quantity = Some(1);
                // The PaymentIntent carries the metadata too: its own webhooks (refunds,
                // disputes) then know what the payment was for without the session.
                let mut payment_intent = CreateCheckoutSessionPaymentIntentData::new();
                payment_intent.metadata = Some(metadata);
                session
                    .mode(CheckoutSessionMode::Payment)
                    .line_items(vec![line])
                    .payment_intent_data(payment_intent)
            }
            CheckoutMode::Subscription {
                price_id,
                trial_end,
            } => {
                let mut line = CreateCheckoutSessionLineItems::new();
                line.price = Some(price_id.clone());
                line.quantity = Some(1);
                // The subscription carries the metadata too, so its invoices name the workspace.
                let mut subscription = CreateCheckoutSessionSubscriptionData::new();
                subscription.metadata = Some(metadata);
                subscription.trial_end = *trial_end;
                session
                    .mode(CheckoutSessionMode::Subscription)
                    .line_items(vec![line])
                    .subscription_data(subscription)
            }
        };
        let created = session
            .build()
            .customize::<CreatedCheckout>()
            .request_strategy(idempotent(request.idempotency_key)?)
            .send(self.client()?)
            .await
            .map_err(provider_error)?;
        let url = created.url.ok_or_else(|| {
            GatewayError::Provider(format!(
                "checkout session {} came without a url",
                created.id
            ))
        })?;
        Ok(CheckoutSession {
            id: created.id,
            url,
        })
    }

    /// A billing portal session's URL. Not idempotent on purpose: each visit needs a fresh,
    /// short-lived session.
    pub async fn create_portal(
        &self,
        customer_id: &str,
        return_url: &str,
    ) -> Result<String, GatewayError> {
        let session = CreateBillingPortalSession::new()
            .customer(customer_id)
            .return_url(return_url)
            .build()
            .customize::<CreatedPortal>()
            .send(self.client()?)
            .await
            .map_err(provider_error)?;
        Ok(session.url)
    }

    /// A SetupIntent for saving a card that later pays off-session (top-ups, auto-recharge).
    pub async fn create_setup_intent(
        &self,
        customer_id: &str,
        idempotency_key: &str,
    ) -> Result<SetupIntent, GatewayError> {
        let intent = CreateSetupIntent::new()
            .customer(customer_id)
            .usage(CreateSetupIntentUsage::OffSession)
            .build()
            .customize::<CreatedSetupIntent>()
            .request_strategy(idempotent(idempotency_key)?)
            .send(self.client()?)
            .await
            .map_err(provider_error)?;
        let client_secret = intent.client_secret.ok_or_else(|| {
            GatewayError::Provider(format!(
                "setup intent {} came without a client_secret",
                intent.id
            ))
        })?;
        Ok(SetupIntent {
            id: intent.id,
            client_secret,
        })
    }

    /// Attaches the method, then makes it the customer's default for invoices (which
    /// subscriptions charge) as well as for our off-session charges. Both steps are idempotent
    /// by nature, so no key is needed.
    pub async fn attach_payment_method(
        &self,
        customer_id: &str,
        payment_method_id: &str,
    ) -> Result<(), GatewayError> {
        let client = self.client()?;
        AttachPaymentMethod::new(payment_method_id)
            .customer(customer_id)
            .build()
            .customize::<Created>()
            .send(client)
            .await
            .map_err(rejected_or_provider_error)?;
        let mut invoice_settings = UpdateCustomerInvoiceSettings::new();
        invoice_settings.default_payment_method = Some(payment_method_id.to_owned());
        UpdateCustomer::new(customer_id)
            .invoice_settings(invoice_settings)
            .build()
            .customize::<Created>()
            .send(client)
            .await
            .map_err(provider_error)?;
        Ok(())
    }

    /// Charges the saved method while the customer is away. A card error is an answer, not a
    /// failure: a decline, or (SCA) a payment the customer must come back to authenticate.
    pub async fn charge_off_session(
        &self,
        customer_id: &str,
        payment_method_id: &str,
        amount_cents: i64,
        metadata: &[(&'static str, String)],
        idempotency_key: &str,
    ) -> Result<Charge, GatewayError> {
        // Confirming without a `return_url` is refused while redirect-based methods are enabled
        // (the default); an off-session charge can never redirect anyway.
        let mut automatic_methods = CreatePaymentIntentAutomaticPaymentMethods::new(true);
        automatic_methods.allow_redirects =
            Some(CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects::Never);
        let outcome = CreatePaymentIntent::new(amount_cents, Currency::USD)
            .customer(customer_id)
            .payment_method(payment_method_id)
            .off_session(CreatePaymentIntentOffSession::Bool(true))
            .confirm(true)
            .automatic_payment_methods(automatic_methods)
            .metadata(metadata_map(metadata))
            .build()
            .customize::<ConfirmedPaymentIntent>()
            .request_strategy(idempotent(idempotency_key)?)
            .send(self.client()?)
            .await;
        match outcome {
            Ok(intent) => charge_from_intent(intent),
            Err(StripeHttpError::Api { error, .. }) if error.kind == "card_error" => {
                Ok(charge_from_card_error(error))
            }
            Err(error) => Err(provider_error(error)),
        }
    }

    /// Cancels a PaymentIntent nobody waits for any more (an auto-recharge given up), so it can
    /// no longer take money. Canceling is idempotent by nature: no key is needed.
    pub async fn cancel_payment_intent(&self, payment_intent_id: &str) -> Result<(), GatewayError> {
        CancelPaymentIntent::new(payment_intent_id)
            .cancellation_reason(CancelPaymentIntentCancellationReason::Abandoned)
            .build()
            .customize::<Created>()
            .send(self.client()?)
            .await
            .map_err(provider_error)?;
        Ok(())
    }
}

impl StripeGateway {
    /// The workspace's subscription to the plan's price (quantity 1), its free period ending
    /// at `trial_end`, charging `payment_method_id`; the idempotency key makes concurrent
    /// first attaches create one. Returns its `sub_…` id.
    pub async fn create_subscription(
        &self,
        request: &SubscriptionRequest<'_>,
    ) -> Result<String, GatewayError> {
        let mut item = CreateSubscriptionItems::new();
        item.price = Some(request.price_id.to_owned());
        item.quantity = Some(1);
        let mut subscription = CreateSubscription::new()
            .customer(request.customer_id)
            .items(vec![item])
            .default_payment_method(request.payment_method_id)
            .off_session(true)
            .metadata(metadata_map(&request.metadata));
        if let Some(trial_end) = request.trial_end {
            subscription = subscription.trial_end(CreateSubscriptionTrialEnd::Timestamp(trial_end));
        }
        let created = subscription
            .build()
            .customize::<Created>()
            .request_strategy(idempotent(request.idempotency_key)?)
            .send(self.client()?)
            .await
            .map_err(rejected_or_provider_error)?;
        Ok(created.id)
    }

    /// Asks Stripe to pay the open invoice now with the default method; the outcome arrives as
    /// `invoice.paid` or `invoice.payment_failed`. A card error is that outcome, not a failure.
    pub async fn pay_invoice(&self, invoice_id: &str) -> Result<(), GatewayError> {
        let outcome = PayInvoice::new(invoice_id)
            .off_session(true)
            .build()
            .customize::<Created>()
            .send(self.client()?)
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(StripeHttpError::Api { error, .. }) if error.kind == "card_error" => Ok(()),
            Err(error) => Err(provider_error(error)),
        }
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, GatewayError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|error| GatewayError::Provider(format!("unusable idempotency key: {error}")))
}

fn metadata_map(metadata: &[(&'static str, String)]) -> HashMap<String, String> {
    metadata
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

/// What a confirmed PaymentIntent's status means for the caller.
fn charge_from_intent(intent: ConfirmedPaymentIntent) -> Result<Charge, GatewayError> {
    let payment_intent_id = intent.id;
    match intent.status.as_str() {
        "succeeded" => Ok(Charge::Succeeded { payment_intent_id }),
        "processing" => Ok(Charge::Processing { payment_intent_id }),
        "requires_action" => match intent.client_secret {
            Some(client_secret) => Ok(Charge::RequiresAction {
                payment_intent_id,
                client_secret,
            }),
            None => Err(GatewayError::Provider(format!(
                "payment intent {payment_intent_id} requires action but came without a client_secret"
            ))),
        },
        // Stripe normally reports a failed confirmation as a 402 card error; this is the same
        // outcome seen through the object.
        "requires_payment_method" => Ok(Charge::Declined {
            message: intent
                .last_payment_error
                .and_then(|error| error.message)
                .unwrap_or_else(|| "the payment method was declined".into()),
            payment_intent_id: Some(payment_intent_id),
        }),
        other => Err(GatewayError::Provider(format!(
            "payment intent {payment_intent_id} is in unexpected status {other}"
        ))),
    }
}

/// A 402 card error. With `authentication_required` (an off-session charge the bank wants 3-D
/// Secure for) Stripe returns the PaymentIntent, which the customer can confirm on-session with
/// its client secret: that is "requires action", not a decline.
fn charge_from_card_error(error: ApiError) -> Charge {
    let needs_authentication = error.code.as_deref() == Some("authentication_required")
        || error.decline_code.as_deref() == Some("authentication_required")
        || error
            .payment_intent
            .as_ref()
            .is_some_and(|intent| intent.status == "requires_action");
    let message = error
        .message
        .clone()
        .or_else(|| error.decline_code.clone())
        .unwrap_or_else(|| "the card was declined".into());
    match error.payment_intent {
        Some(intent) if needs_authentication && intent.client_secret.is_some() => {
            Charge::RequiresAction {
                payment_intent_id: intent.id,
                client_secret: intent.client_secret.unwrap_or_default(),
            }
        }
        intent => Charge::Declined {
            payment_intent_id: intent.map(|intent| intent.id),
            message,
        },
    }
}

/// Stripe refusing the caller's own input (no such payment method, a card that can't be
/// attached) is the caller's to fix; anything else is the provider's failure.
fn rejected_or_provider_error(error: StripeHttpError) -> GatewayError {
    if let StripeHttpError::Api {
        error: details,
        status,
    } = &error
    {
        let callers_input = matches!(status, 400 | 402 | 404)
            && matches!(
                details.kind.as_str(),
                "invalid_request_error" | "card_error"
            );
        if callers_input {
            return GatewayError::Rejected(
                details
                    .message
                    .clone()
                    .unwrap_or_else(|| "the payment method was refused".into()),
            );
        }
    }
    provider_error(error)
}

/// Any other failure, described for the log (never the PaymentIntent's client secret).
fn provider_error(error: StripeHttpError) -> GatewayError {
    let detail = match error {
        StripeHttpError::Api { error, status } => {
            let mut detail = format!("Stripe answered {status} {}", error.kind);
            if let Some(code) = &error.code {
                detail.push_str(&format!(" ({code})"));
            }
            if let Some(param) = &error.param {
                detail.push_str(&format!(" on {param}"));
            }
            if let Some(message) = &error.message {
                detail.push_str(&format!(": {message}"));
            }
            detail
        }
        StripeHttpError::Timeout => "Stripe did not answer in time".into(),
        StripeHttpError::Unreadable(reason) => format!("Stripe's answer was unreadable: {reason}"),
        StripeHttpError::Transport(reason) => format!("Stripe could not be reached: {reason}"),
    };
    GatewayError::Provider(detail)
}
