//! Payments on the local stage (offline gateway) and the Stripe webhook: the signature matrix,
//! events taking effect once (also when delivered concurrently, and racing
//! `dev/complete-local`), out-of-order invoices, refunds, top-ups and saved methods.

use billing_core::config::PaymentsConfig;
use billing_core::payments::signature;
use billing_tests::app::{spawn_app_with, TestApp, TestResponse};
use futures::future::join_all;
use http::{Method, StatusCode};
use serde_json::{json, Value};

pub(crate) const SECRET: &str = "whsec_test_secret";

pub(crate) async fn spawn() -> TestApp {
    spawn_app_with(|c| {
        c.intro_credit_cents = 1000;
        c.payments = PaymentsConfig::Offline {
            base_url: "http://127.0.0.1:3000".into(),
            webhook_secret: SECRET.into(),
        };
    })
    .await
}

/// A user with a key, its default account and a workspace on it.
pub(crate) async fn workspace(app: &TestApp) -> (String, String, String) {
    let (_, account, key) = app.user_with_key("payer").await;
    let workspace = app.create_workspace(&key, "Paid").await;
    (key, account, workspace)
}

async fn deliver(app: &TestApp, event: &Value, header: Option<String>) -> TestResponse {
    let body = serde_json::to_vec(event).unwrap();
    let mut call = app.call(Method::POST, "/v1/webhooks/stripe").raw_body(body);
    if let Some(header) = header {
        call = call.header("stripe-signature", &header);
    }
    call.send().await
}

/// Delivered as Stripe would: signed now with the endpoint's secret.
pub(crate) async fn send(app: &TestApp, event: &Value) -> TestResponse {
    let body = serde_json::to_vec(event).unwrap();
    let header = signature::sign(&body, SECRET, app.clock_now());
    deliver(app, event, Some(header)).await
}

pub(crate) fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": created,
           "livemode": false, "data": {"object": object}})
}

pub(crate) async fn balance(app: &TestApp, key: &str, account: &str) -> i64 {
    app.get(&format!("/v1/billing-accounts/{account}/balance"), key)
        .await
        .body["balance_cents"]
        .as_i64()
        .unwrap()
}

pub(crate) async fn transactions(
    app: &TestApp,
    key: &str,
    account: &str,
    kind: &str,
) -> Vec<Value> {
    app.get(
        &format!("/v1/billing-accounts/{account}/transactions?type={kind}&limit=100"),
        key,
    )
    .await
    .body["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// Saves a card for the workspace (a trial moves to promo; the promo grants no credit).
pub(crate) async fn save_card(app: &TestApp, key: &str, ws: &str) -> TestResponse {
    app.post(
        &format!("/v1/workspaces/{ws}/billing/payment-method"),
        key,
        json!({"payment_method_id": "pm_card_visa"}),
    )
    .await
}

/// A checkout of `amount` cents, paid (its webhook delivered as `event_id`); its session id.
async fn buy(app: &TestApp, key: &str, ws: &str, event_id: &str, amount: i64) -> String {
    let session = checkout(app, key, ws, amount).await;
    let paid = send(
        app,
        &session_completed(event_id, &session, amount, app.clock_now()),
    )
    .await;
    assert_eq!(paid.body["handled"], "applied");
    session
}

/// A credits checkout of `amount` cents; returns its session id.
pub(crate) async fn checkout(app: &TestApp, key: &str, ws: &str, amount: i64) -> String {
    let created = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/checkout"),
            key,
            json!({"amount_cents": amount, "success_url": "https://app.example/ok",
                   "cancel_url": "https://app.example/cancel"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    assert!(created.body["url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:3000/"));
    created.body["checkout_session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn session_completed(id: &str, session: &str, amount: i64, created: i64) -> Value {
    event(
        id,
        "checkout.session.completed",
        created,
        json!({"id": session, "object": "checkout.session", "mode": "payment",
               "payment_status": "paid", "status": "complete", "amount_total": amount,
               "currency": "usd", "payment_intent": format!("pi_for_{session}"), "metadata": {}}),
    )
}

#[tokio::test]
async fn the_signature_matrix() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let session = checkout(&app, &key, &ws, 500).await;
    let paid = session_completed("evt_sig", &session, 500, app.clock_now());
    let body = serde_json::to_vec(&paid).unwrap();
    let now = app.clock_now();

    let missing = deliver(&app, &paid, None).await;
    assert_eq!(
        (missing.status, missing.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let forged = signature::sign(&body, "whsec_someone_else", now);
    assert_eq!(
        deliver(&app, &paid, Some(forged)).await.status,
        StatusCode::BAD_REQUEST
    );
    let stale = signature::sign(&body, SECRET, now - 301);
    assert_eq!(
        deliver(&app, &paid, Some(stale)).await.status,
        StatusCode::BAD_REQUEST
    );
    let tampered = signature::sign(b"{\"other\": true}", SECRET, now);
    assert_eq!(
        deliver(&app, &paid, Some(tampered)).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        balance(&app, &key, &account).await,
        1000,
        "refused deliveries change nothing"
    );

    // During a secret rotation Stripe signs with each secret: the second `v1` is ours.
    let rotated = format!(
        "t={now},v1={},v1={}",
        signature::signature(&body, "whsec_old", now),
        signature::signature(&body, SECRET, now)
    );
    let accepted = deliver(&app, &paid, Some(rotated)).await;
    assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
    assert_eq!(accepted.body["handled"], "applied");
    assert_eq!(balance(&app, &key, &account).await, 1500);

    let unknown = send(
        &app,
        &event(
            "evt_unknown",
            "customer.discount.created",
            now,
            json!({"id": "di_1"}),
        ),
    )
    .await;
    assert_eq!(
        (unknown.status, &unknown.body["handled"]),
        (StatusCode::OK, &json!("ignored"))
    );
    let malformed = app
        .call(Method::POST, "/v1/webhooks/stripe")
        .header(
            "stripe-signature",
            &signature::sign(b"not json", SECRET, now),
        )
        .raw_body(b"not json".to_vec())
        .send()
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_event_delivered_twice_or_concurrently_takes_effect_once() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let first = checkout(&app, &key, &ws, 700).await;
    let paid = session_completed("evt_twice", &first, 700, app.clock_now());
    assert_eq!(send(&app, &paid).await.body["handled"], "applied");
    assert_eq!(send(&app, &paid).await.body["handled"], "duplicate");
    assert_eq!(balance(&app, &key, &account).await, 1700);

    let second = checkout(&app, &key, &ws, 900).await;
    let concurrent = session_completed("evt_concurrent", &second, 900, app.clock_now());
    let answers = join_all((0..8).map(|_| send(&app, &concurrent))).await;
    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{answers:?}"
    );
    let applied = answers
        .iter()
        .filter(|a| a.body["handled"] == "applied")
        .count();
    assert_eq!(applied, 1);
    assert_eq!(balance(&app, &key, &account).await, 2600);
    assert_eq!(
        transactions(&app, &key, &account, "purchase").await.len(),
        2
    );
}

#[tokio::test]
async fn a_checkout_credits_once_when_the_webhook_and_complete_local_race() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let session = checkout(&app, &key, &ws, 2500).await;
    let paid = session_completed("evt_race", &session, 2500, app.clock_now());
    let complete = format!("/v1/workspaces/{ws}/billing/dev/complete-local");
    let (webhooks, locals) = futures::join!(
        join_all((0..4).map(|_| send(&app, &paid))),
        join_all((0..4).map(|_| app.post(
            &complete,
            &key,
            json!({"checkout_session_id": session})
        ))),
    );
    assert!(webhooks.iter().all(|r| r.status == StatusCode::OK));
    assert!(
        locals.iter().all(|r| r.status == StatusCode::OK),
        "{locals:?}"
    );
    let purchases = transactions(&app, &key, &account, "purchase").await;
    assert_eq!(purchases.len(), 1, "{purchases:?}");
    assert_eq!(purchases[0]["amount_cents"], 2500);
    assert_eq!(balance(&app, &key, &account).await, 3500);
    // Someone else's session is not found; an unknown one neither.
    let unknown = app
        .post(
            &complete,
            &key,
            json!({"checkout_session_id": "cs_local_nope"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn complete_local_does_not_exist_with_stripe() {
    let app = spawn_app_with(|c| {
        c.payments = PaymentsConfig::Stripe {
            keys: billing_core::config::StripeKeys::Plain {
                secret_key: "sk_test_x".into(),
                publishable_key: "pk_test_x".into(),
                webhook_secret: SECRET.into(),
            },
            api_base: Some("http://127.0.0.1:9".into()),
        };
    })
    .await;
    let (key, _, ws) = workspace(&app).await;
    let answer = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/dev/complete-local"),
            &key,
            json!({"checkout_session_id": "cs_test_1"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let key_view = app.get("/v1/billing/publishable-key", &key).await;
    assert_eq!(key_view.body["publishable_key"], "pk_test_x");
}

fn invoice(id: &str, customer: &str, status: &str, created: i64) -> Value {
    json!({"id": id, "object": "invoice", "customer": customer, "number": "INV-0001",
           "subscription": "sub_1",
           "status": status, "amount_due": 1900, "amount_paid": if status == "paid" { 1900 } else { 0 },
           "currency": "usd", "period_start": created, "period_end": created + 2_592_000,
           "hosted_invoice_url": "https://invoice.stripe.com/i/1",
           "invoice_pdf": "https://pay.stripe.com/invoice/1/pdf", "created": created})
}

/// The workspace's Stripe customer (created on first need).
pub(crate) async fn customer(app: &TestApp, key: &str, ws: &str) -> String {
    app.post(
        &format!("/v1/workspaces/{ws}/billing/setup-intent"),
        key,
        json!({}),
    )
    .await;
    let id = billing_core::domain::ids::WorkspaceId::parse(ws).unwrap();
    app.app
        .store
        .billing_profile(&id)
        .await
        .unwrap()
        .customer_id
        .expect("a customer")
}

#[tokio::test]
async fn an_invoice_paid_before_it_was_created_stays_paid() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    let cus = customer(&app, &key, &ws).await;
    let t = app.clock_now();
    let paid = event(
        "evt_inv_paid",
        "invoice.paid",
        t + 5,
        invoice("in_1", &cus, "paid", t),
    );
    let created = event(
        "evt_inv_created",
        "invoice.created",
        t,
        invoice("in_1", &cus, "draft", t),
    );
    assert_eq!(send(&app, &paid).await.body["handled"], "applied");
    assert_eq!(send(&app, &created).await.body["handled"], "stale");
    let list = app
        .get(&format!("/v1/workspaces/{ws}/billing/invoices"), &key)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    let invoices = list.body["data"].as_array().unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["status"], "paid");
    assert_eq!(invoices[0]["amount_paid_cents"], 1900);
    let open = app
        .get(
            &format!("/v1/workspaces/{ws}/billing/invoices?status=open"),
            &key,
        )
        .await;
    assert_eq!(open.body["data"], json!([]));
    let bad = app
        .get(
            &format!("/v1/workspaces/{ws}/billing/invoices?status=lost"),
            &key,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn plan_status(app: &TestApp, id: &billing_core::domain::ids::WorkspaceId) -> String {
    let workspace = app.app.store.get_workspace(id).await.unwrap().unwrap();
    format!("{:?}", workspace.plan_status)
}

#[tokio::test]
async fn payment_failures_suspend_and_payments_restore() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    let saved = save_card(&app, &key, &ws).await;
    assert_eq!(
        (saved.status, &saved.body["status"]),
        (StatusCode::OK, &json!("promo"))
    );
    let cus = customer(&app, &key, &ws).await;
    // Promo ends: active.
    let id = billing_core::domain::ids::WorkspaceId::parse(&ws).unwrap();
    app.clock.advance(time::Duration::days(93));
    let sweep = billing_core::routes::job_by_name("lifecycle-sweep").unwrap();
    (sweep.run)(&app.app, Value::Null).await.unwrap();
    assert_eq!(plan_status(&app, &id).await, "Active");
    let t = app.clock_now();
    let failed = event(
        "evt_fail",
        "invoice.payment_failed",
        t,
        invoice("in_2", &cus, "open", t),
    );
    assert_eq!(send(&app, &failed).await.body["handled"], "applied");
    assert_eq!(plan_status(&app, &id).await, "Suspended");
    let paid = event(
        "evt_paid",
        "invoice.paid",
        t + 1,
        invoice("in_2", &cus, "paid", t),
    );
    assert_eq!(send(&app, &paid).await.body["handled"], "applied");
    assert_eq!(plan_status(&app, &id).await, "Active");
    // The failure delivered again late moves nothing.
    let late = event(
        "evt_fail_late",
        "invoice.payment_failed",
        t,
        invoice("in_2", &cus, "open", t),
    );
    assert_eq!(send(&app, &late).await.body["handled"], "stale");
    assert_eq!(plan_status(&app, &id).await, "Active");
}

#[tokio::test]
async fn a_refund_claws_back_once() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let cus = customer(&app, &key, &ws).await;
    let session = buy(&app, &key, &ws, "evt_buy", 3000).await;
    assert_eq!(balance(&app, &key, &account).await, 4000);
    let refunded = event(
        "evt_refund",
        "charge.refunded",
        app.clock_now(),
        json!({"id": "ch_1", "object": "charge", "customer": cus, "amount": 3000,
               "payment_intent": format!("pi_for_{session}"), "amount_refunded": 1200, "refunds": {"object": "list",
               "data": [{"id": "re_1", "object": "refund", "amount": 1200}]}}),
    );
    let answers = join_all((0..4).map(|_| send(&app, &refunded))).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(balance(&app, &key, &account).await, 2800);
    // The same refund inside a later event (a second refund added) is not taken twice.
    let more = event(
        "evt_refund_2",
        "charge.refunded",
        app.clock_now(),
        json!({"id": "ch_1", "object": "charge", "customer": cus, "amount": 3000,
               "payment_intent": format!("pi_for_{session}"), "amount_refunded": 1500, "refunds": {"object": "list", "data": [
                   {"id": "re_2", "object": "refund", "amount": 300},
                   {"id": "re_1", "object": "refund", "amount": 1200}]}}),
    );
    assert_eq!(send(&app, &more).await.status, StatusCode::OK);
    assert_eq!(balance(&app, &key, &account).await, 2500);
    let refunds = transactions(&app, &key, &account, "refund").await;
    assert_eq!(refunds.len(), 2);
}

#[tokio::test]
async fn top_ups_need_a_saved_method_and_credit_once() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let path = format!("/v1/workspaces/{ws}/billing/top-up");
    let without = app.post(&path, &key, json!({"amount_cents": 1000})).await;
    assert_eq!(
        (without.status, without.error_code()),
        (StatusCode::PAYMENT_REQUIRED, "payment_required")
    );
    let too_small = app.post(&path, &key, json!({"amount_cents": 1})).await;
    assert_eq!(too_small.status, StatusCode::BAD_REQUEST);
    save_card(&app, &key, &ws).await;
    let topped = app
        .call(Method::POST, &path)
        .key(&key)
        .header("idempotency-key", "top-up-1")
        .json(json!({"amount_cents": 1000}))
        .send()
        .await;
    assert_eq!(topped.status, StatusCode::OK, "{:?}", topped.body);
    assert_eq!(topped.body["type"], "top_up");
    assert_eq!(topped.body["amount_cents"], 1000);
    // The webhook for the same PaymentIntent credits nothing more.
    let pi = topped.body["reference"].as_str().unwrap().to_owned();
    let succeeded = event(
        "evt_pi",
        "payment_intent.succeeded",
        app.clock_now(),
        json!({"id": pi, "object": "payment_intent", "amount": 1000, "amount_received": 1000,
               "status": "succeeded", "metadata": {"workspace_id": ws, "kind": "top_up"}}),
    );
    assert_eq!(send(&app, &succeeded).await.body["handled"], "duplicate");
    // 1000 introductory and the 1000 top-up: the promo grants no included credit.
    assert_eq!(balance(&app, &key, &account).await, 2000);
}

#[tokio::test]
async fn the_no_cap_reminder_shows_while_spend_is_unbounded() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let path = format!("/v1/workspaces/{ws}/billing/no-cap-reminder");
    assert_eq!(
        app.get(&path, &key).await.body,
        json!({"show": false, "reason": null})
    );
    let enabled = app
        .patch(
            &format!("/v1/billing-accounts/{account}"),
            &key,
            json!({"auto_recharge": {"enabled": true}}),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{:?}", enabled.body);
    let reminder = app.get(&path, &key).await.body;
    assert_eq!(reminder["show"], true);
    assert_eq!(reminder["reason"], "auto_recharge_without_hard_cap");
    let dismissed = app.post(&format!("{path}/dismiss"), &key, json!({})).await;
    assert_eq!(dismissed.body["show"], false);
    assert!(dismissed.body["dismissed_at"].is_string());
    assert_eq!(app.get(&path, &key).await.body["show"], false);
}

#[tokio::test]
async fn one_shortfall_starts_one_auto_recharge_within_the_monthly_limit() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    save_card(&app, &key, &ws).await;
    let enabled = app
        .patch(
            &format!("/v1/billing-accounts/{account}"),
            &key,
            json!({"auto_recharge": {"enabled": true, "threshold_cents": 500,
                                     "amount_cents": 2000, "monthly_limit_cents": 2000}}),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{:?}", enabled.body);
    // 1000 of introductory credit; fifteen concurrent 60-cent events cross under 500 once.
    let events = join_all((0..15).map(|i| {
        let (app, key, ws) = (&app, &key, &ws);
        async move {
            app.post(
                &format!("/v1/workspaces/{ws}/usage-events"),
                key,
                json!({"event_id": format!("e{i}"), "category": "actions", "quantity": 600,
                       "agent_tier": "basic"}),
            )
            .await
        }
    }))
    .await;
    assert!(
        events.iter().all(|e| e.status == StatusCode::CREATED),
        "{events:?}"
    );
    let recharges = transactions(&app, &key, &account, "auto_recharge").await;
    assert_eq!(recharges.len(), 1, "{recharges:?}");
    assert_eq!(recharges[0]["amount_cents"], 2000);
    assert_eq!(balance(&app, &key, &account).await, 1000 - 15 * 60 + 2000);
    // Spend down again: the month's limit is used, so no second recharge.
    for i in 0..30 {
        app.post(
            &format!("/v1/workspaces/{ws}/usage-events"),
            &key,
            json!({"event_id": format!("f{i}"), "category": "actions", "quantity": 600,
                   "agent_tier": "basic"}),
        )
        .await;
    }
    assert_eq!(
        transactions(&app, &key, &account, "auto_recharge")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn concurrent_top_ups_under_one_key_charge_and_credit_once() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    save_card(&app, &key, &ws).await;
    let path = format!("/v1/workspaces/{ws}/billing/top-up");
    let answers = join_all((0..6).map(|_| {
        app.call(Method::POST, &path)
            .key(&key)
            .header("idempotency-key", "the-one-top-up")
            .json(json!({"amount_cents": 1500}))
            .send()
    }))
    .await;
    assert!(answers.iter().any(|a| a.status == StatusCode::OK));
    for answer in &answers {
        assert!(
            answer.status == StatusCode::OK || answer.error_code() == "idempotency_key_in_use",
            "{answer:?}"
        );
    }
    // A retry after the others finished replays the first answer.
    let retry = app
        .call(Method::POST, &path)
        .key(&key)
        .header("idempotency-key", "the-one-top-up")
        .json(json!({"amount_cents": 1500}))
        .send()
        .await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(transactions(&app, &key, &account, "top_up").await.len(), 1);
    assert_eq!(balance(&app, &key, &account).await, 1000 + 1500);
}

#[tokio::test]
async fn a_cancellation_can_be_withdrawn_and_an_older_event_changes_nothing() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    save_card(&app, &key, &ws).await;
    let cus = customer(&app, &key, &ws).await;
    let t = app.clock_now();
    let subscription = |cancel: bool| {
        json!({"id": "sub_1", "object": "subscription", "customer": cus, "status": "active",
               "cancel_at_period_end": cancel})
    };
    let cancellation = format!("/v1/workspaces/{ws}/billing/subscription/cancellation");
    let canceled = event(
        "evt_sub_cancel",
        "customer.subscription.updated",
        t,
        subscription(true),
    );
    assert_eq!(send(&app, &canceled).await.body["handled"], "applied");
    assert_eq!(
        app.get(&cancellation, &key).await.body["cancel_at_period_end"],
        true
    );
    let withdrawn = event(
        "evt_sub_keep",
        "customer.subscription.updated",
        t + 10,
        subscription(false),
    );
    assert_eq!(send(&app, &withdrawn).await.body["handled"], "applied");
    assert_eq!(
        app.get(&cancellation, &key).await.body,
        json!({"cancel_at_period_end": false, "cancels_at": null})
    );
    // The cancellation delivered again, late: older than the mirror, it changes nothing.
    let late = event(
        "evt_sub_cancel_late",
        "customer.subscription.updated",
        t,
        subscription(true),
    );
    assert_eq!(send(&app, &late).await.body["handled"], "stale");
    assert_eq!(
        app.get(&cancellation, &key).await.body["cancel_at_period_end"],
        false
    );
}

#[tokio::test]
async fn refunds_reported_as_a_running_total_are_taken_once_each() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let cus = customer(&app, &key, &ws).await;
    let session = buy(&app, &key, &ws, "evt_buy_2", 3000).await;
    let refunded = |id: &str, total: i64| {
        event(
            id,
            "charge.refunded",
            app.clock_now(),
            json!({"id": "ch_2", "object": "charge", "customer": cus, "amount": 3000,
                     "payment_intent": format!("pi_for_{session}"), "amount_refunded": total}),
        )
    };
    assert_eq!(
        send(&app, &refunded("evt_r1", 1000)).await.body["handled"],
        "applied"
    );
    assert_eq!(
        send(&app, &refunded("evt_r2", 2500)).await.body["handled"],
        "applied"
    );
    // The first event again, redelivered after the second: nothing more.
    assert_ne!(
        send(&app, &refunded("evt_r1", 1000)).await.body["handled"],
        "applied"
    );
    assert_eq!(balance(&app, &key, &account).await, 4000 - 2500);
}

#[tokio::test]
async fn a_recharge_whose_process_stopped_is_charged_by_the_retry_job() {
    use billing_core::domain::ids::{BillingAccountId, WorkspaceId};
    use billing_core::domain::pricing::Category;
    use billing_core::store::usage::UsageCharge;
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    save_card(&app, &key, &ws).await;
    app.patch(
        &format!("/v1/billing-accounts/{account}"),
        &key,
        json!({"auto_recharge": {"enabled": true, "threshold_cents": 500, "amount_cents": 2000}}),
    )
    .await;
    // A debit outside any request (no one charges what it starts), then the process "stops".
    // (Only a debit starts one: the test once used an adjustment, which no longer does.)
    let now = time::OffsetDateTime::now_utc();
    app.app
        .store
        .record_usage(&UsageCharge {
            workspace_id: WorkspaceId::parse(&ws).unwrap(),
            account_id: BillingAccountId::parse(&account).unwrap(),
            event_id: "outside-any-request".into(),
            fingerprint: "outside-any-request".into(),
            category: Category::Actions,
            quantity: 7_000,
            agent_id: None,
            cost_cents: 700,
            day: billing_core::domain::calendar::Day::of(now),
            created_at: billing_core::clock::rfc3339(now),
            millis: billing_core::clock::unix_millis(now),
        })
        .await
        .unwrap();
    assert_eq!(
        app.app.store.recharges.take().len(),
        1,
        "started, never charged"
    );
    let retry = billing_core::routes::job_by_name("auto-recharge-retry").unwrap();
    assert_eq!(
        (retry.run)(&app.app, Value::Null).await.unwrap(),
        0,
        "not stale yet"
    );
    app.clock.advance(time::Duration::minutes(11));
    assert_eq!((retry.run)(&app.app, Value::Null).await.unwrap(), 1);
    assert_eq!(
        (retry.run)(&app.app, Value::Null).await.unwrap(),
        0,
        "charged once"
    );
    let recharges = transactions(&app, &key, &account, "auto_recharge").await;
    assert_eq!(recharges.len(), 1);
    assert_eq!(balance(&app, &key, &account).await, 1000 - 700 + 2000);
}

#[tokio::test]
async fn a_refund_is_taken_from_the_account_the_payment_credited() {
    let app = spawn().await;
    let (key, first, ws) = workspace(&app).await;
    let cus = customer(&app, &key, &ws).await;
    let session = checkout(&app, &key, &ws, 3000).await;
    let mut paid = session_completed("evt_buy_3", &session, 3000, app.clock_now());
    paid["data"]["object"]["payment_intent"] = json!("pi_bought");
    assert_eq!(send(&app, &paid).await.body["handled"], "applied");
    // The workspace moves to another default account before the refund.
    let second = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/accounts"),
            &key,
            json!({"name": "Next"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let made_default = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/accounts/{second}/default"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(
        made_default.status,
        StatusCode::OK,
        "{:?}",
        made_default.body
    );
    let refunded = event(
        "evt_refund_3",
        "charge.refunded",
        app.clock_now(),
        json!({"id": "ch_3", "object": "charge", "customer": cus, "payment_intent": "pi_bought",
               "amount": 3000, "amount_refunded": 3000}),
    );
    assert_eq!(send(&app, &refunded).await.body["handled"], "applied");
    assert_eq!(balance(&app, &key, &first).await, 1000);
    assert_eq!(balance(&app, &key, &second).await, 0);
}

#[tokio::test]
async fn a_deployed_stage_sends_customers_back_to_https_urls_only() {
    let app = spawn_app_with(|c| {
        c.stage = billing_core::config::Stage::Deployed("prod".into());
        c.payments = PaymentsConfig::Offline {
            base_url: "http://127.0.0.1:3000".into(),
            webhook_secret: SECRET.into(),
        };
    })
    .await;
    let (key, _, ws) = workspace(&app).await;
    let checkout = format!("/v1/workspaces/{ws}/billing/checkout");
    let portal = format!("/v1/workspaces/{ws}/billing/portal");
    let safe = "https://app.example.com/done";
    for (path, body, field) in [
        (
            &checkout,
            json!({"amount_cents": 1000, "success_url": "http://app.example.com/done", "cancel_url": safe}),
            "success_url",
        ),
        (
            &checkout,
            json!({"amount_cents": 1000, "success_url": safe, "cancel_url": "http://app.example.com/x"}),
            "cancel_url",
        ),
        (
            &checkout,
            json!({"amount_cents": 1000, "success_url": "https://", "cancel_url": safe}),
            "success_url",
        ),
        (
            &portal,
            json!({"return_url": "http://app.example.com/billing"}),
            "return_url",
        ),
    ] {
        let refused = app.post(path, &key, body.clone()).await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message}");
    }
    let accepted = app
        .post(
            &checkout,
            &key,
            json!({"amount_cents": 1000, "success_url": safe, "cancel_url": safe}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
}

#[tokio::test]
async fn the_local_stage_also_takes_http_return_urls() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    let local = "http://127.0.0.1:5173/done";
    let accepted = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/checkout"),
            &key,
            json!({"amount_cents": 1000, "success_url": local, "cancel_url": local}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
    let no_scheme = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/portal"),
            &key,
            json!({"return_url": "ftp://example.com"}),
        )
        .await;
    assert_eq!(no_scheme.status, StatusCode::BAD_REQUEST);
}
