//! The payment routes with the Stripe gateway, against the fake Stripe: one customer per
//! workspace under concurrent first requests, what checkout and top-up send, and how Stripe's
//! failures and 3-D Secure answers reach the caller.

use billing_core::config::{PaymentsConfig, StripeKeys};
use billing_tests::app::{spawn_app_with, TestApp};
use billing_tests::fake_stripe::{FakeStripe, NextPayment, PUBLISHABLE_KEY, SECRET_KEY};
use futures::future::join_all;
use http::{Method, StatusCode};
use serde_json::json;

async fn spawn(stripe: &FakeStripe) -> TestApp {
    let base = stripe.base_url();
    spawn_app_with(move |c| {
        c.payments = PaymentsConfig::Stripe {
            keys: StripeKeys::Plain {
                secret_key: SECRET_KEY.into(),
                publishable_key: PUBLISHABLE_KEY.into(),
                webhook_secret: "whsec_routes".into(),
            },
            api_base: Some(base),
        };
    })
    .await
}

async fn workspace(app: &TestApp) -> (String, String, String) {
    let (_, account, key) = app.user_with_key("stripe-payer").await;
    let workspace = app.create_workspace(&key, "Stripe").await;
    (key, account, workspace)
}

fn assert_no_violations(stripe: &FakeStripe) {
    assert!(stripe.violations().is_empty(), "{:?}", stripe.violations());
}

#[tokio::test]
async fn concurrent_first_requests_make_one_customer() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let (key, _, ws) = workspace(&app).await;
    let path = format!("/v1/workspaces/{ws}/billing/setup-intent");
    let answers = join_all((0..6).map(|_| app.post(&path, &key, json!({})))).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert!(answer.body["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("seti_"));
    }
    let customers: std::collections::BTreeSet<String> = stripe
        .requests_to("POST", "/v1/setup_intents")
        .iter()
        .map(|r| r.field("customer").unwrap().to_owned())
        .collect();
    assert_eq!(
        customers.len(),
        1,
        "every setup intent is for the one customer"
    );
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn a_checkout_sends_what_stripe_requires() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let (key, account, ws) = workspace(&app).await;
    let created = app
        .call(
            Method::POST,
            format!("/v1/workspaces/{ws}/billing/checkout"),
        )
        .key(&key)
        .header("idempotency-key", "buy-once")
        .json(
            json!({"amount_cents": 2500, "success_url": "https://app.example/ok",
                     "cancel_url": "https://app.example/no"}),
        )
        .send()
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    assert!(created.body["checkout_session_id"]
        .as_str()
        .unwrap()
        .starts_with("cs_test_"));
    let sent = stripe
        .last_request_to("POST", "/v1/checkout/sessions")
        .unwrap();
    assert_eq!(sent.field("mode"), Some("payment"));
    assert_eq!(
        sent.field("line_items[0][price_data][unit_amount]"),
        Some("2500")
    );
    assert_eq!(sent.metadata("metadata").get("workspace_id"), Some(&ws));
    assert_eq!(
        sent.metadata("metadata").get("billing_account_id"),
        Some(&account)
    );
    assert!(sent.idempotency_key().is_some_and(|k| k.len() <= 255));
    let subscribed = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/subscribe"),
            &key,
            json!({"plan_id": "team", "success_url": "https://app.example/ok",
                   "cancel_url": "https://app.example/no"}),
        )
        .await;
    assert_eq!(subscribed.status, StatusCode::OK, "{:?}", subscribed.body);
    let sent = stripe
        .last_request_to("POST", "/v1/checkout/sessions")
        .unwrap();
    assert_eq!(sent.field("mode"), Some("subscription"));
    assert_eq!(
        sent.field("line_items[0][price]"),
        Some("price_team_monthly_per_seat")
    );
    let custom = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/subscribe"),
            &key,
            json!({"plan_id": "enterprise", "success_url": "https://app.example/ok",
                   "cancel_url": "https://app.example/no"}),
        )
        .await;
    assert_eq!(custom.status, StatusCode::BAD_REQUEST);
    assert_no_violations(&stripe);
}

#[tokio::test]
async fn stripe_failures_and_3d_secure_reach_the_caller_as_the_contract_says() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let (key, account, ws) = workspace(&app).await;
    stripe.fail_portal(true);
    let portal = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/portal"),
            &key,
            json!({"return_url": "https://app.example/billing"}),
        )
        .await;
    assert_eq!(
        (portal.status, portal.error_code()),
        (StatusCode::BAD_GATEWAY, "portal_error")
    );
    assert!(!portal.body.to_string().contains(SECRET_KEY));

    let saved = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/payment-method"),
            &key,
            json!({"payment_method_id": "pm_card_visa"}),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
    stripe.next_payment(NextPayment::RequiresAction);
    let top_up = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/top-up"),
            &key,
            json!({"amount_cents": 1000}),
        )
        .await;
    assert_eq!(
        (top_up.status, top_up.error_code()),
        (StatusCode::PAYMENT_REQUIRED, "requires_action")
    );
    assert!(top_up.body["error"]["client_secret"]
        .as_str()
        .unwrap()
        .contains("_secret_"));
    stripe.next_payment(NextPayment::Decline {
        decline_code: "insufficient_funds".into(),
    });
    let declined = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/top-up"),
            &key,
            json!({"amount_cents": 1000}),
        )
        .await;
    assert_eq!(declined.error_code(), "payment_required");
    let paid = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/top-up"),
            &key,
            json!({"amount_cents": 1000}),
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{:?}", paid.body);
    let charge = stripe
        .last_request_to("POST", "/v1/payment_intents")
        .unwrap();
    assert_eq!(charge.field("off_session"), Some("true"));
    assert_eq!(
        charge.metadata("metadata").get("kind").map(String::as_str),
        Some("top_up")
    );
    let balance = app
        .get(&format!("/v1/billing-accounts/{account}/balance"), &key)
        .await
        .body;
    // 1000 introductory and one 1000 top-up: the promo grants no included credit.
    assert_eq!(balance["balance_cents"], 2000);
    let publishable = app.get("/v1/billing/publishable-key", &key).await;
    assert_eq!(publishable.body["publishable_key"], PUBLISHABLE_KEY);
}

#[tokio::test]
async fn a_payment_method_stripe_refuses_is_the_callers_error() {
    let stripe = FakeStripe::start().await;
    let app = spawn(&stripe).await;
    let (key, _, ws) = workspace(&app).await;
    let other = app.create_workspace(&key, "Other").await;
    let attach = |ws: String| {
        let app = &app;
        let key = &key;
        async move {
            app.post(
                &format!("/v1/workspaces/{ws}/billing/payment-method"),
                key,
                json!({"payment_method_id": "pm_card_shared"}),
            )
            .await
        }
    };
    assert_eq!(attach(ws.clone()).await.status, StatusCode::OK);
    // Stripe refuses a method attached to another customer: the caller's error, not a 502.
    let refused = attach(other.clone()).await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{:?}",
        refused.body
    );
    assert!(refused.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already been attached"));
    let status = app
        .get(&format!("/v1/workspaces/{other}/billing"), &key)
        .await;
    assert_eq!(status.body["plan_status"], "trial", "nothing changed");
}
