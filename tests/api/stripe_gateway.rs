//! The Stripe gateway against the fake Stripe: what each call sends (the form fields Stripe
//! requires, the idempotency key), how each answer is read, and how failures are mapped. No
//! DynamoDB needed.

use billing_core::payments::stripe::StripeGateway;
use billing_core::payments::{Charge, CheckoutMode, CheckoutRequest, GatewayError};
use billing_tests::fake_stripe::{FakeStripe, NextPayment, PUBLISHABLE_KEY, SECRET_KEY};
use std::collections::HashMap;

const CARD: &str = "pm_card_visa";

async fn stripe_and_gateway() -> (FakeStripe, StripeGateway) {
    let stripe = FakeStripe::start().await;
    let gateway = StripeGateway::new(SECRET_KEY, PUBLISHABLE_KEY, Some(&stripe.base_url()));
    (stripe, gateway)
}

/// A customer with `CARD` attached and made its default, as the payment-method route leaves it.
async fn customer_with_card(gateway: &StripeGateway, workspace_id: &str) -> String {
    let customer = gateway
        .create_customer(workspace_id, None, &format!("customer-{workspace_id}"))
        .await
        .expect("customer");
    gateway
        .attach_payment_method(&customer, CARD)
        .await
        .expect("attach");
    customer
}

fn assert_no_violations(stripe: &FakeStripe) {
    assert_eq!(
        stripe.violations(),
        Vec::<String>::new(),
        "requests Stripe would refuse"
    );
}

fn provider_detail(error: GatewayError) -> String {
    match error {
        GatewayError::Provider(detail) => detail,
        GatewayError::Rejected(message) => {
            panic!("expected a provider error, got a rejection: {message}")
        }
    }
}

fn pairs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn a_customer_is_created_with_the_workspace_in_its_metadata_and_the_idempotency_key() {
    let (stripe, gateway) = stripe_and_gateway().await;

    let customer = gateway
        .create_customer(
            "ws_123",
            Some("owner+billing@example.com"),
            "customer-ws_123",
        )
        .await
        .expect("customer");

    assert!(customer.starts_with("cus_"), "{customer}");
    let sent = stripe.last_request_to("POST", "/v1/customers").unwrap();
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {SECRET_KEY}").as_str())
    );
    assert_eq!(
        sent.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(sent.idempotency_key(), Some("customer-ws_123"));
    assert_eq!(sent.field("metadata[workspace_id]"), Some("ws_123"));
    assert_eq!(sent.field("email"), Some("owner+billing@example.com"));
    assert_eq!(
        stripe.customer(&customer).unwrap()["email"],
        "owner+billing@example.com"
    );
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn a_customer_without_an_email_sends_none() {
    let (stripe, gateway) = stripe_and_gateway().await;

    gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .expect("customer");

    let sent = stripe.last_request_to("POST", "/v1/customers").unwrap();
    assert_eq!(sent.field("email"), None);
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn the_same_idempotency_key_twice_yields_the_same_customer() {
    let (stripe, gateway) = stripe_and_gateway().await;

    let first = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .unwrap();
    let second = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .unwrap();
    let other = gateway
        .create_customer("ws_2", None, "customer-ws_2")
        .await
        .unwrap();

    assert_eq!(first, second);
    assert_ne!(first, other);
    let sent = stripe.requests_to("POST", "/v1/customers");
    assert_eq!(sent.len(), 3);
    assert!(!sent[0].replayed && sent[1].replayed && !sent[2].replayed);
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn a_credits_checkout_is_a_one_off_payment_with_inline_price_data() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .unwrap();
    let metadata = vec![
        ("workspace_id", "ws_1".to_owned()),
        ("purpose", "credits".to_owned()),
    ];

    let session = gateway
        .create_checkout(&CheckoutRequest {
            customer_id: &customer,
            mode: CheckoutMode::Credits { amount_cents: 500 },
            success_url: "https://app.example.com/billing?paid=1&session={CHECKOUT_SESSION_ID}",
            cancel_url: "https://app.example.com/billing",
            metadata,
            idempotency_key: "checkout-credits-1",
        })
        .await
        .expect("checkout");

    assert!(session.id.starts_with("cs_test_"), "{}", session.id);
    assert!(
        session.url.starts_with("https://checkout.stripe.com/"),
        "{}",
        session.url
    );
    let sent = stripe
        .last_request_to("POST", "/v1/checkout/sessions")
        .unwrap();
    assert_eq!(sent.idempotency_key(), Some("checkout-credits-1"));
    assert_eq!(sent.field("mode"), Some("payment"));
    assert_eq!(sent.field("customer"), Some(customer.as_str()));
    assert_eq!(
        sent.field("success_url"),
        Some("https://app.example.com/billing?paid=1&session={CHECKOUT_SESSION_ID}")
    );
    assert_eq!(
        sent.field("cancel_url"),
        Some("https://app.example.com/billing")
    );
    assert_eq!(
        sent.field("line_items[0][price_data][currency]"),
        Some("usd")
    );
    assert_eq!(
        sent.field("line_items[0][price_data][unit_amount]"),
        Some("500")
    );
    assert_eq!(
        sent.field("line_items[0][price_data][product_data][name]"),
        Some("Credits")
    );
    assert_eq!(sent.field("line_items[0][quantity]"), Some("1"));
    assert_eq!(sent.field("line_items[1][quantity]"), None, "one line item");
    let expected = pairs(&[("workspace_id", "ws_1"), ("purpose", "credits")]);
    assert_eq!(sent.metadata("metadata"), expected);
    assert_eq!(sent.metadata("payment_intent_data[metadata]"), expected);
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn a_subscription_checkout_names_the_catalog_price() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .unwrap();

    let session = gateway
        .create_checkout(&CheckoutRequest {
            customer_id: &customer,
            mode: CheckoutMode::Subscription {
                trial_end: None,
                price_id: "price_pro_monthly".into(),
            },
            success_url: "https://app.example.com/done",
            cancel_url: "https://app.example.com/cancel",
            metadata: vec![("workspace_id", "ws_1".to_owned())],
            idempotency_key: "subscribe-1",
        })
        .await
        .expect("checkout");

    assert!(session.id.starts_with("cs_test_"));
    let sent = stripe
        .last_request_to("POST", "/v1/checkout/sessions")
        .unwrap();
    assert_eq!(sent.idempotency_key(), Some("subscribe-1"));
    assert_eq!(sent.field("mode"), Some("subscription"));
    assert_eq!(
        sent.field("line_items[0][price]"),
        Some("price_pro_monthly")
    );
    assert_eq!(sent.field("line_items[0][quantity]"), Some("1"));
    assert_eq!(
        sent.metadata("metadata"),
        pairs(&[("workspace_id", "ws_1")])
    );
    assert!(
        sent.metadata("payment_intent_data[metadata]").is_empty(),
        "Stripe refuses payment_intent_data in subscription mode"
    );
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn a_portal_session_returns_its_url() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .unwrap();

    let url = gateway
        .create_portal(&customer, "https://app.example.com/billing")
        .await
        .expect("portal");

    assert!(
        url.starts_with("https://billing.stripe.com/p/session/"),
        "{url}"
    );
    let sent = stripe
        .last_request_to("POST", "/v1/billing_portal/sessions")
        .unwrap();
    assert_eq!(sent.field("customer"), Some(customer.as_str()));
    assert_eq!(
        sent.field("return_url"),
        Some("https://app.example.com/billing")
    );
    assert!(sent.response["id"].as_str().unwrap().starts_with("bps_"));
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn a_failing_portal_is_a_provider_error_with_stripes_message_and_no_secret() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .unwrap();
    stripe.fail_portal(true);

    let error = gateway
        .create_portal(&customer, "https://app.example.com/billing")
        .await
        .expect_err("the portal fails");

    let detail = provider_detail(error);
    assert!(detail.contains("500"), "{detail}");
    assert!(detail.contains("An unknown error occurred"), "{detail}");
    assert!(!detail.contains(SECRET_KEY), "{detail}");
}

#[tokio::test]
async fn a_setup_intent_is_for_off_session_use_and_returns_its_client_secret() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .unwrap();

    let intent = gateway
        .create_setup_intent(&customer, "setup-1")
        .await
        .expect("setup intent");

    assert!(intent.id.starts_with("seti_"), "{}", intent.id);
    assert!(
        intent
            .client_secret
            .starts_with(&format!("{}_secret_", intent.id)),
        "{}",
        intent.client_secret
    );
    let sent = stripe.last_request_to("POST", "/v1/setup_intents").unwrap();
    assert_eq!(sent.idempotency_key(), Some("setup-1"));
    assert_eq!(sent.field("customer"), Some(customer.as_str()));
    assert_eq!(sent.field("usage"), Some("off_session"));
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn attaching_a_payment_method_also_makes_it_the_invoice_default() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .unwrap();

    gateway
        .attach_payment_method(&customer, CARD)
        .await
        .expect("attach");

    let attach = stripe
        .last_request_to("POST", &format!("/v1/payment_methods/{CARD}/attach"))
        .unwrap();
    assert_eq!(attach.field("customer"), Some(customer.as_str()));
    let update = stripe
        .last_request_to("POST", &format!("/v1/customers/{customer}"))
        .unwrap();
    assert_eq!(
        update.field("invoice_settings[default_payment_method]"),
        Some(CARD)
    );
    let order: Vec<String> = stripe
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .skip(1)
        .collect();
    assert_eq!(
        order,
        [
            format!("/v1/payment_methods/{CARD}/attach"),
            format!("/v1/customers/{customer}")
        ],
        "attached first: Stripe refuses a default that is not attached"
    );
    assert_eq!(stripe.attached_customer(CARD), Some(customer.clone()));
    assert_eq!(
        stripe.customer(&customer).unwrap()["invoice_settings"]["default_payment_method"],
        CARD
    );
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn an_off_session_charge_sends_what_stripe_requires_and_succeeds() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = customer_with_card(&gateway, "ws_1").await;
    let metadata = [
        ("workspace_id", "ws_1".to_owned()),
        ("purpose", "top_up".to_owned()),
    ];

    let charge = gateway
        .charge_off_session(&customer, CARD, 2_000, &metadata, "top-up-1")
        .await
        .expect("charge");

    let Charge::Succeeded { payment_intent_id } = charge else {
        panic!("expected a success, got {charge:?}");
    };
    assert!(payment_intent_id.starts_with("pi_"), "{payment_intent_id}");
    let sent = stripe
        .last_request_to("POST", "/v1/payment_intents")
        .unwrap();
    assert_eq!(sent.idempotency_key(), Some("top-up-1"));
    assert_eq!(sent.field("amount"), Some("2000"));
    assert_eq!(sent.field("currency"), Some("usd"));
    assert_eq!(sent.field("customer"), Some(customer.as_str()));
    assert_eq!(sent.field("payment_method"), Some(CARD));
    assert_eq!(sent.field("off_session"), Some("true"));
    assert_eq!(sent.field("confirm"), Some("true"));
    assert_eq!(
        sent.metadata("metadata"),
        pairs(&[("workspace_id", "ws_1"), ("purpose", "top_up")])
    );
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn a_charge_retried_with_its_key_is_the_same_payment() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = customer_with_card(&gateway, "ws_1").await;
    let metadata = [("workspace_id", "ws_1".to_owned())];

    let first = gateway
        .charge_off_session(&customer, CARD, 1_000, &metadata, "top-up-1")
        .await
        .unwrap();
    let retry = gateway
        .charge_off_session(&customer, CARD, 1_000, &metadata, "top-up-1")
        .await
        .unwrap();

    assert_eq!(first, retry);
    assert!(
        stripe
            .last_request_to("POST", "/v1/payment_intents")
            .unwrap()
            .replayed
    );
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn a_charge_that_needs_3d_secure_requires_action_with_its_client_secret() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = customer_with_card(&gateway, "ws_1").await;
    stripe.next_payment(NextPayment::RequiresAction);

    let charge = gateway
        .charge_off_session(&customer, CARD, 2_000, &[], "top-up-3ds")
        .await
        .expect("charge");

    let Charge::RequiresAction {
        payment_intent_id,
        client_secret,
    } = charge
    else {
        panic!("expected requires action, got {charge:?}");
    };
    assert!(payment_intent_id.starts_with("pi_"));
    assert!(client_secret.starts_with(&format!("{payment_intent_id}_secret_")));
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn a_processing_charge_is_reported_as_processing() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = customer_with_card(&gateway, "ws_1").await;
    stripe.next_payment(NextPayment::Processing);

    let charge = gateway
        .charge_off_session(&customer, CARD, 2_000, &[], "top-up-slow")
        .await
        .expect("charge");

    assert!(
        matches!(&charge, Charge::Processing { payment_intent_id } if payment_intent_id.starts_with("pi_")),
        "{charge:?}"
    );
}

#[tokio::test]
async fn a_declined_card_is_a_decline_with_stripes_message_not_an_error() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = customer_with_card(&gateway, "ws_1").await;
    stripe.next_payment(NextPayment::Decline {
        decline_code: "insufficient_funds".into(),
    });

    let charge = gateway
        .charge_off_session(&customer, CARD, 2_000, &[], "top-up-broke")
        .await
        .expect("a decline is an answer");

    let Charge::Declined {
        payment_intent_id,
        message,
    } = charge
    else {
        panic!("expected a decline, got {charge:?}");
    };
    assert!(payment_intent_id.is_some_and(|id| id.starts_with("pi_")));
    assert_eq!(message, "Your card has insufficient funds.");
    let sent = stripe
        .last_request_to("POST", "/v1/payment_intents")
        .unwrap();
    assert_eq!(sent.status, 402);
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn an_off_session_charge_the_bank_wants_authenticated_requires_action() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = customer_with_card(&gateway, "ws_1").await;
    stripe.next_payment(NextPayment::Decline {
        decline_code: "authentication_required".into(),
    });

    let charge = gateway
        .charge_off_session(&customer, CARD, 2_000, &[], "top-up-sca")
        .await
        .expect("an answer");

    let Charge::RequiresAction {
        payment_intent_id,
        client_secret,
    } = charge
    else {
        panic!("expected requires action, got {charge:?}");
    };
    let error = &stripe
        .last_request_to("POST", "/v1/payment_intents")
        .unwrap()
        .response["error"];
    assert_eq!(error["payment_intent"]["id"], payment_intent_id.as_str());
    assert_eq!(
        error["payment_intent"]["client_secret"],
        client_secret.as_str()
    );
}

#[tokio::test]
async fn a_refused_request_is_a_provider_error_carrying_stripes_message() {
    let (stripe, gateway) = stripe_and_gateway().await;

    // No such customer: Stripe refuses the charge with a 400 before trying the card.
    let error = gateway
        .charge_off_session("cus_missing", CARD, 2_000, &[], "top-up-x")
        .await
        .expect_err("refused");

    let detail = provider_detail(error);
    assert!(detail.contains("400"), "{detail}");
    assert!(
        detail.contains("No such customer: 'cus_missing'"),
        "{detail}"
    );
    assert!(!detail.contains(SECRET_KEY), "{detail}");
    assert_eq!(stripe.violations().len(), 1);
}

#[tokio::test]
async fn a_wrong_secret_key_is_a_provider_error_that_does_not_echo_the_key() {
    let stripe = FakeStripe::start().await;
    let wrong_key = "sk_test_wrong0000000000000000000000";
    let gateway = StripeGateway::new(wrong_key, PUBLISHABLE_KEY, Some(&stripe.base_url()));

    let error = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .expect_err("unauthorized");

    let detail = provider_detail(error);
    assert!(detail.contains("401"), "{detail}");
    assert!(!detail.contains(wrong_key), "{detail}");
}

#[tokio::test]
async fn an_unreachable_stripe_is_a_provider_error() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let gateway = StripeGateway::new(SECRET_KEY, PUBLISHABLE_KEY, Some(&base_url));

    let error = gateway
        .create_portal("cus_1", "https://app.example.com")
        .await
        .expect_err("unreachable");

    assert!(matches!(error, GatewayError::Provider(_)), "{error:?}");
}

#[tokio::test]
async fn a_malformed_secret_key_fails_payment_calls_without_panicking_or_echoing_it() {
    let stripe = FakeStripe::start().await;
    let malformed = "sk_test_pasted\nwith_a_newline";
    let gateway = StripeGateway::new(malformed, PUBLISHABLE_KEY, Some(&stripe.base_url()));

    let error = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .expect_err("no usable client");

    let detail = provider_detail(error);
    assert!(!detail.contains("with_a_newline"), "{detail}");
    assert!(stripe.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn the_publishable_key_is_handed_out_as_configured() {
    let (_stripe, gateway) = stripe_and_gateway().await;
    assert_eq!(gateway.publishable_key(), PUBLISHABLE_KEY);
}

/* ------------- the fake refuses what Stripe refuses, so "no violations" means something ------------- */

/// POSTs `body` to the fake as-is; returns the status and the JSON answer.
async fn raw_post(
    stripe: &FakeStripe,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let mut request = http::Request::post(format!("{}{path}", stripe.base_url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    let response = client.request(request).await.expect("the fake answers");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).expect("a JSON answer"),
    )
}

const AUTH: (&str, &str) = ("authorization", "Bearer sk_test_fake0000000000000000000000");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// A request the fake must refuse, and how.
struct Refusal {
    why: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
    status: u16,
    param: Option<&'static str>,
}

#[tokio::test]
async fn the_fake_refuses_what_stripe_refuses() {
    let stripe = FakeStripe::start().await;
    assert_eq!(AUTH.1, format!("Bearer {SECRET_KEY}"));
    let key = |k| ("idempotency-key", k);
    let refusals = [
        Refusal {
            why: "no API key",
            path: "/v1/customers",
            headers: vec![FORM, key("a")],
            body: "email=a%40b.c",
            status: 401,
            param: None,
        },
        Refusal {
            why: "a create without an idempotency key",
            path: "/v1/customers",
            headers: vec![AUTH, FORM],
            body: "email=a%40b.c",
            status: 400,
            param: None,
        },
        Refusal {
            why: "a JSON body",
            path: "/v1/customers",
            headers: vec![AUTH, ("content-type", "application/json"), key("b")],
            body: r#"{"email":"a@b.c"}"#,
            status: 400,
            param: None,
        },
        Refusal {
            why: "dotted instead of bracket keys",
            path: "/v1/customers",
            headers: vec![AUTH, FORM, key("c")],
            body: "metadata.workspace_id=ws_1",
            status: 400,
            param: Some("metadata.workspace_id"),
        },
        Refusal {
            why: "a checkout without a mode",
            path: "/v1/checkout/sessions",
            headers: vec![AUTH, FORM, key("d")],
            body: "success_url=https%3A%2F%2Fx.example&line_items[0][price]=price_1\
                   &line_items[0][quantity]=1",
            status: 400,
            param: Some("mode"),
        },
        Refusal {
            why: "inline price data without an amount",
            path: "/v1/checkout/sessions",
            headers: vec![AUTH, FORM, key("e")],
            body: "mode=payment&success_url=https%3A%2F%2Fx.example\
                   &line_items[0][price_data][currency]=usd\
                   &line_items[0][price_data][product_data][name]=Credits\
                   &line_items[0][quantity]=1",
            status: 400,
            param: Some("line_items[0][price_data][unit_amount]"),
        },
        Refusal {
            why: "a payment intent without a currency",
            path: "/v1/payment_intents",
            headers: vec![AUTH, FORM, key("f")],
            body: "amount=500",
            status: 400,
            param: Some("currency"),
        },
        Refusal {
            why: "a portal session without a customer",
            path: "/v1/billing_portal/sessions",
            headers: vec![AUTH, FORM],
            body: "return_url=https%3A%2F%2Fx.example",
            status: 400,
            param: Some("customer"),
        },
    ];
    for refusal in &refusals {
        let (status, answer) =
            raw_post(&stripe, refusal.path, &refusal.headers, refusal.body).await;
        assert_eq!(status, refusal.status, "{}: {answer}", refusal.why);
        assert!(
            answer["error"]["message"].is_string(),
            "{}: {answer}",
            refusal.why
        );
        if let Some(param) = refusal.param {
            assert_eq!(answer["error"]["param"], param, "{}: {answer}", refusal.why);
        }
    }
    assert_eq!(
        stripe.violations().len(),
        refusals.len(),
        "{:#?}",
        stripe.violations()
    );
}

#[tokio::test]
async fn the_fake_refuses_a_reused_key_with_other_parameters() {
    let stripe = FakeStripe::start().await;
    let (first, _) = raw_post(
        &stripe,
        "/v1/customers",
        &[AUTH, FORM, ("idempotency-key", "k")],
        "email=a%40b.c",
    )
    .await;
    let (again, answer) = raw_post(
        &stripe,
        "/v1/customers",
        &[AUTH, FORM, ("idempotency-key", "k")],
        "email=z%40b.c",
    )
    .await;
    let (elsewhere, _) = raw_post(
        &stripe,
        "/v1/setup_intents",
        &[AUTH, FORM, ("idempotency-key", "k")],
        "email=a%40b.c",
    )
    .await;

    assert_eq!((first, again, elsewhere), (200, 400, 400));
    assert_eq!(answer["error"]["type"], "idempotency_error");
}

#[tokio::test]
async fn a_charge_on_a_card_never_attached_is_refused() {
    let (stripe, gateway) = stripe_and_gateway().await;
    let customer = gateway
        .create_customer("ws_1", None, "customer-ws_1")
        .await
        .unwrap();

    let error = gateway
        .charge_off_session(&customer, CARD, 2_000, &[], "top-up-1")
        .await
        .expect_err("refused");

    assert!(provider_detail(error).contains("does not belong to the Customer"));
    assert_eq!(stripe.violations().len(), 1);
}
