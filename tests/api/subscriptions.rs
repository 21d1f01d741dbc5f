//! The plan billed for real (issue 11): a first card in trial starts one Stripe subscription as
//! Stripe expects it, invoices (Stripe's, or the offline gateway's at each due time) move the
//! plan once whatever their order, included credit is granted per paid period and expires only
//! unspent, and the dev server bills a short promo and period in real time.

use crate::payments::{balance, event, send, spawn as spawn_offline, transactions, workspace};
use crate::refunds_and_recharges::spawn_with_stripe;
use billing_core::domain::ids::WorkspaceId;
use billing_core::routes::job_by_name;
use billing_tests::app::{TestApp, TestResponse};
use billing_tests::dev_server::DevServer;
use billing_tests::fake_stripe::FakeStripe;
use futures::future::join_all;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration as StdDuration;
use time::Duration;

async fn attach(app: &TestApp, key: &str, ws: &str, method: &str) -> TestResponse {
    app.post(
        &format!("/v1/workspaces/{ws}/billing/payment-method"),
        key,
        json!({"payment_method_id": method}),
    )
    .await
}

async fn sweep(app: &TestApp) -> usize {
    (job_by_name("lifecycle-sweep").unwrap().run)(&app.app, Value::Null)
        .await
        .unwrap()
        .handled
}

async fn plan_status(app: &TestApp, key: &str, ws: &str) -> String {
    let view = app.get(&format!("/v1/workspaces/{ws}/billing"), key).await;
    assert_eq!(view.status, StatusCode::OK, "{:?}", view.body);
    view.body["plan_status"].as_str().unwrap().to_owned()
}

async fn subscription_view(app: &TestApp, key: &str, ws: &str) -> Value {
    app.get(&format!("/v1/workspaces/{ws}/billing/subscription"), key)
        .await
        .body
}

async fn invoices(app: &TestApp, key: &str, ws: &str) -> Vec<Value> {
    app.get(&format!("/v1/workspaces/{ws}/billing/invoices"), key)
        .await
        .body["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn unix(text: &str) -> i64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

/// A subscription invoice as Stripe sends it: its line's period is the service period.
fn stripe_invoice(id: &str, customer: &str, status: &str, period: (i64, i64)) -> Value {
    json!({"id": id, "object": "invoice", "customer": customer, "subscription": "sub_test",
           "status": status, "amount_due": 1900, "amount_paid": if status == "paid" { 1900 } else { 0 },
           "currency": "usd", "period_start": period.0 - 2_592_000, "period_end": period.0,
           "lines": {"object": "list", "data": [{"period": {"start": period.0, "end": period.1}}]},
           "created": period.0})
}

async fn customer_of(app: &TestApp, ws: &str) -> String {
    app.app
        .store
        .billing_profile(&WorkspaceId::parse(ws).unwrap())
        .await
        .unwrap()
        .customer_id
        .unwrap()
}

#[tokio::test]
async fn a_first_card_in_trial_starts_one_subscription_as_stripe_expects_it() {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(&stripe).await;
    let (key, account, ws) = workspace(&app).await;
    let answers = join_all((0..4).map(|_| attach(&app, &key, &ws, "pm_card_visa"))).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.body["status"], "promo");
    }
    assert_eq!(
        stripe.subscriptions().len(),
        1,
        "concurrent attaches make one"
    );
    let sent = stripe.requests_to("POST", "/v1/subscriptions");
    assert!(!sent.is_empty());
    let promo_ends = subscription_view(&app, &key, &ws).await["promo_ends_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let customer = customer_of(&app, &ws).await;
    for request in &sent {
        assert_eq!(request.field("customer"), Some(customer.as_str()));
        assert_eq!(request.field("items[0][price]"), Some("price_pro_monthly"));
        assert_eq!(request.field("items[0][quantity]"), Some("1"));
        assert_eq!(
            request.field("trial_end"),
            Some(unix(&promo_ends).to_string().as_str())
        );
        assert_eq!(
            request.field("default_payment_method"),
            Some("pm_card_visa")
        );
        assert_eq!(request.idempotency_key(), sent[0].idempotency_key());
        assert_eq!(request.metadata("metadata").get("workspace_id"), Some(&ws));
    }
    assert!(stripe.violations().is_empty(), "{:?}", stripe.violations());
    // The promo is free and grants nothing: included credit comes with a paid invoice.
    assert_eq!(balance(&app, &key, &account).await, 1000);
    assert!(transactions(&app, &key, &account, "plan_credit")
        .await
        .is_empty());
    // Nothing Stripe invoices is decided by the date here.
    app.clock.advance(Duration::days(92));
    assert_eq!(sweep(&app).await, 0);
    assert_eq!(plan_status(&app, &key, &ws).await, "promo");
}

#[tokio::test]
async fn stripe_invoices_move_the_plan_once_in_any_order_twice_and_concurrently() {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(&stripe).await;
    let (key, account, ws) = workspace(&app).await;
    assert_eq!(
        attach(&app, &key, &ws, "pm_card_visa").await.status,
        StatusCode::OK
    );
    let customer = customer_of(&app, &ws).await;
    let promo_end = unix(
        subscription_view(&app, &key, &ws).await["promo_ends_at"]
            .as_str()
            .unwrap(),
    );
    let first = (promo_end, promo_end + 2_592_000);
    app.clock.advance(Duration::days(92));
    let t = app.clock_now();

    // The first invoice paid, delivered four times at once: active, one grant.
    let paid = event(
        "evt_paid_1",
        "invoice.paid",
        t,
        stripe_invoice("in_1", &customer, "paid", first),
    );
    let answers = join_all((0..4).map(|_| send(&app, &paid))).await;
    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{answers:?}"
    );
    assert_eq!(plan_status(&app, &key, &ws).await, "active");
    assert_eq!(
        transactions(&app, &key, &account, "plan_credit")
            .await
            .len(),
        1
    );

    // The second period: its failure and its payment delivered concurrently, in both orders,
    // and each twice. Whatever commits first, the paid invoice wins.
    let second = (first.1, first.1 + 2_592_000);
    let failed = event(
        "evt_failed_2",
        "invoice.payment_failed",
        t + 10,
        stripe_invoice("in_2", &customer, "open", second),
    );
    let paid_2 = event(
        "evt_paid_2",
        "invoice.paid",
        t + 11,
        stripe_invoice("in_2", &customer, "paid", second),
    );
    let answers = join_all([&failed, &paid_2, &paid_2, &failed].map(|e| send(&app, e))).await;
    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{answers:?}"
    );
    assert_eq!(plan_status(&app, &key, &ws).await, "active");
    // The failure again, late: acknowledged, nothing moves.
    let late = event(
        "evt_failed_2_late",
        "invoice.payment_failed",
        t + 10,
        stripe_invoice("in_2", &customer, "open", second),
    );
    assert_eq!(send(&app, &late).await.status, StatusCode::OK);
    assert_eq!(plan_status(&app, &key, &ws).await, "active");
    assert_eq!(
        transactions(&app, &key, &account, "plan_credit")
            .await
            .len(),
        2
    );
    let listed = invoices(&app, &key, &ws).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|i| i["status"] == "paid"), "{listed:?}");

    // The third period fails: suspended; Stripe's retries give up and delete it: deleted.
    let third = (second.1, second.1 + 2_592_000);
    let failed_3 = event(
        "evt_failed_3",
        "invoice.payment_failed",
        t + 20,
        stripe_invoice("in_3", &customer, "open", third),
    );
    assert_eq!(send(&app, &failed_3).await.body["handled"], "applied");
    assert_eq!(plan_status(&app, &key, &ws).await, "suspended");
    // Fixing the card asks Stripe to pay the open invoice.
    assert_eq!(
        attach(&app, &key, &ws, "pm_card_mastercard").await.status,
        StatusCode::OK
    );
    assert_eq!(stripe.paid_invoices(), ["in_3"]);
    let deleted = event(
        "evt_sub_deleted",
        "customer.subscription.deleted",
        t + 30,
        json!({"id": "sub_test", "object": "subscription", "customer": customer,
               "status": "canceled", "cancel_at_period_end": false}),
    );
    assert_eq!(send(&app, &deleted).await.body["handled"], "applied");
    assert_eq!(plan_status(&app, &key, &ws).await, "deleted");
    // A late payment of the open invoice can't bring it back.
    let late_paid = event(
        "evt_paid_3",
        "invoice.paid",
        t + 31,
        stripe_invoice("in_3", &customer, "paid", third),
    );
    send(&app, &late_paid).await;
    assert_eq!(plan_status(&app, &key, &ws).await, "deleted");
}

#[tokio::test]
async fn offline_billing_charges_the_plan_suspends_a_failing_card_and_recovers() {
    let app = spawn_offline().await;
    let (key, account, ws) = workspace(&app).await;
    assert_eq!(
        attach(&app, &key, &ws, "pm_card_chargeCustomerFail")
            .await
            .body["status"],
        "promo"
    );
    app.clock.advance(Duration::days(92));
    assert_eq!(sweep(&app).await, 1);
    assert_eq!(plan_status(&app, &key, &ws).await, "suspended");
    let open = invoices(&app, &key, &ws).await;
    assert_eq!(open.len(), 1);
    assert_eq!(
        (&open[0]["status"], &open[0]["amount_due_cents"]),
        (&json!("open"), &json!(1900))
    );
    assert!(transactions(&app, &key, &account, "plan_credit")
        .await
        .is_empty());
    // A working card pays the open invoice: active, and the period's credit is granted.
    assert_eq!(
        attach(&app, &key, &ws, "pm_card_visa").await.body["status"],
        "active"
    );
    let paid = invoices(&app, &key, &ws).await;
    assert_eq!((paid.len(), &paid[0]["status"]), (1, &json!("paid")));
    assert_eq!(
        transactions(&app, &key, &account, "plan_credit")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_suspended_workspace_whose_grace_passes_unpaid_is_deleted() {
    let app = spawn_offline().await;
    let (key, _, ws) = workspace(&app).await;
    attach(&app, &key, &ws, "pm_card_chargeCustomerFail").await;
    app.clock.advance(Duration::days(92));
    sweep(&app).await;
    assert_eq!(plan_status(&app, &key, &ws).await, "suspended");
    app.clock.advance(Duration::days(29));
    assert_eq!(sweep(&app).await, 0);
    app.clock.advance(Duration::days(2));
    assert_eq!(sweep(&app).await, 1);
    assert_eq!(plan_status(&app, &key, &ws).await, "deleted");
}

#[tokio::test]
async fn stripe_test_cards_answer_as_in_test_mode() {
    let app = spawn_offline().await;
    let (key, account, ws) = workspace(&app).await;
    let declined = attach(&app, &key, &ws, "pm_card_chargeDeclined").await;
    assert_eq!(
        (declined.status, declined.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    // Nothing changed: still on trial without a method.
    let status = app
        .get(&format!("/v1/workspaces/{ws}/billing"), &key)
        .await
        .body;
    assert_eq!(
        (&status["plan_status"], &status["has_payment_method"]),
        (&json!("trial"), &json!(false))
    );
    // A card that needs 3-D Secure attaches; charging it off-session asks for the customer.
    assert_eq!(
        attach(&app, &key, &ws, "pm_card_authenticationRequired")
            .await
            .status,
        StatusCode::OK
    );
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
    assert_eq!(
        balance(&app, &key, &account).await,
        1000,
        "nothing credited"
    );
}

#[tokio::test]
async fn a_workspace_with_a_subscription_cannot_subscribe_again() {
    let app = spawn_offline().await;
    let (key, _, ws) = workspace(&app).await;
    attach(&app, &key, &ws, "pm_card_visa").await;
    let again = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/subscribe"),
            &key,
            json!({"plan_id": "pro", "success_url": "https://app.example/ok",
                   "cancel_url": "https://app.example/cancel"}),
        )
        .await;
    assert_eq!(
        (again.status, again.error_code()),
        (StatusCode::CONFLICT, "conflict")
    );
}

#[tokio::test]
async fn a_late_subscription_checkout_never_replaces_the_subscription_or_reactivates() {
    let app = spawn_offline().await;
    let (key, _, ws) = workspace(&app).await;
    // A subscribe checkout opened in trial, left unfinished.
    let opened = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/subscribe"),
            &key,
            json!({"plan_id": "pro", "success_url": "https://app.example/ok",
                   "cancel_url": "https://app.example/cancel"}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK, "{:?}", opened.body);
    let session = opened.body["checkout_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Then a card that fails: suspended at the promo's end.
    attach(&app, &key, &ws, "pm_card_chargeCustomerFail").await;
    app.clock.advance(Duration::days(92));
    sweep(&app).await;
    assert_eq!(plan_status(&app, &key, &ws).await, "suspended");
    // The old checkout completes late: the workspace keeps its subscription and stays suspended.
    let completed = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/dev/complete-local"),
            &key,
            json!({"checkout_session_id": session}),
        )
        .await;
    assert_eq!(completed.status, StatusCode::OK, "{:?}", completed.body);
    assert_eq!(plan_status(&app, &key, &ws).await, "suspended");
    assert_eq!(invoices(&app, &key, &ws).await.len(), 1);
}

#[tokio::test]
async fn included_credit_of_workspaces_sharing_an_account_expires_only_what_is_unspent() {
    let app = spawn_offline().await;
    let (key, account, a) = workspace(&app).await;
    let b = app.create_workspace(&key, "Second").await;
    for ws in [&a, &b] {
        assert_eq!(
            attach(&app, &key, ws, "pm_card_visa").await.status,
            StatusCode::OK
        );
    }
    app.clock.advance(Duration::days(92));
    assert_eq!(sweep(&app).await, 2);
    // 1000 of introductory credit (as good as bought) and two grants of 500.
    assert_eq!(balance(&app, &key, &account).await, 2000);
    // Workspace b spends 300 (3000 basic actions).
    let spent = app
        .post(
            &format!("/v1/workspaces/{b}/usage-events"),
            &key,
            json!({"event_id": "b-spends", "category": "actions", "quantity": 3000, "agent_tier": "basic"}),
        )
        .await;
    assert_eq!(spent.status, StatusCode::CREATED, "{:?}", spent.body);
    app.clock.advance(Duration::days(31));
    assert_eq!(sweep(&app).await, 2);
    let expired: i64 = transactions(&app, &key, &account, "expiry")
        .await
        .iter()
        .map(|t| t["amount_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(
        expired, -700,
        "only the 700 unspent cents of the two grants"
    );
    // The purchased 1000 is intact: 1000 + the two new grants.
    assert_eq!(balance(&app, &key, &account).await, 2000);
}

#[tokio::test]
async fn a_grant_expires_from_the_account_it_was_granted_to_after_the_default_changes() {
    let app = spawn_offline().await;
    let (key, first, ws) = workspace(&app).await;
    attach(&app, &key, &ws, "pm_card_visa").await;
    app.clock.advance(Duration::days(92));
    sweep(&app).await;
    assert_eq!(balance(&app, &key, &first).await, 1500);
    let created = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/accounts"),
            &key,
            json!({"name": "Second"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let second = created.body["id"].as_str().unwrap().to_owned();
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
    app.clock.advance(Duration::days(31));
    assert_eq!(sweep(&app).await, 1);
    // The first grant's 500 expire where they were; the new grant lands in the new default.
    assert_eq!(balance(&app, &key, &first).await, 1000);
    let expiries = transactions(&app, &key, &first, "expiry").await;
    assert_eq!(expiries.len(), 1);
    assert_eq!(expiries[0]["amount_cents"], -500);
    assert_eq!(
        transactions(&app, &key, &second, "plan_credit").await.len(),
        1
    );
}

/// Polls `check` every half second for up to `within`.
async fn eventually<F, Fut>(within: StdDuration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(500)).await;
    }
    panic!("{what} did not happen within {within:?}");
}

/// The acceptance of issue 11 on the real dev server, in real time: `BILLING_PROMO_SECONDS=20
/// BILLING_PERIOD_SECONDS=45`.
#[tokio::test]
async fn the_dev_server_bills_a_short_promo_and_period_in_real_time() {
    let server = DevServer::start(&[
        ("BILLING_PROMO_SECONDS", "20"),
        ("BILLING_PERIOD_SECONDS", "45"),
    ])
    .await;
    let service = server.service_key.clone();
    let user = |name: &'static str| {
        let server = &server;
        let service = service.clone();
        async move {
            let created = server
                .ok(
                    Method::POST,
                    "/v1/users",
                    &service,
                    Some(json!({"external_id": name})),
                )
                .await;
            let user = created["user"]["id"].as_str().unwrap().to_owned();
            let account = created["default_billing_account"]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let key = server
                .ok(
                    Method::POST,
                    "/v1/api-keys",
                    &service,
                    Some(json!({"owner": {"type": "user", "id": user}})),
                )
                .await["key"]
                .as_str()
                .unwrap()
                .to_owned();
            let ws = server
                .ok(
                    Method::POST,
                    "/v1/workspaces",
                    &key,
                    Some(json!({"name": name})),
                )
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            (key, account, ws)
        }
    };
    let (key, account, ws) = user("paying").await;
    let (bad_key, _, bad_ws) = user("declining").await;
    let attach = |key: String, ws: String, method: &'static str| {
        let server = &server;
        async move {
            server
                .ok(
                    Method::POST,
                    &format!("/v1/workspaces/{ws}/billing/payment-method"),
                    &key,
                    Some(json!({"payment_method_id": method})),
                )
                .await
        }
    };
    assert_eq!(
        attach(key.clone(), ws.clone(), "pm_card_visa").await["status"],
        "promo"
    );
    assert_eq!(
        attach(
            bad_key.clone(),
            bad_ws.clone(),
            "pm_card_chargeCustomerFail"
        )
        .await["status"],
        "promo"
    );
    let kinds = |kind: &'static str| {
        let (server, key, account) = (&server, key.clone(), account.clone());
        async move {
            server
                .ok(
                    Method::GET,
                    &format!("/v1/billing-accounts/{account}/transactions?type={kind}&limit=100"),
                    &key,
                    None,
                )
                .await["data"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    assert!(
        kinds("plan_credit").await.is_empty(),
        "the promo grants nothing"
    );
    let status_of = |key: String, ws: String| {
        let server = &server;
        async move {
            server
                .ok(
                    Method::GET,
                    &format!("/v1/workspaces/{ws}/billing"),
                    &key,
                    None,
                )
                .await["plan_status"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let paid_invoices = |key: String, ws: String| {
        let server = &server;
        async move {
            server
                .ok(
                    Method::GET,
                    &format!("/v1/workspaces/{ws}/billing/invoices?status=paid"),
                    &key,
                    None,
                )
                .await["data"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    // ~20 s: the promo ends; one paid invoice at the plan price and one grant.
    eventually(
        StdDuration::from_secs(45),
        "the promo's end billed",
        || async { status_of(key.clone(), ws.clone()).await == "active" },
    )
    .await;
    let first = paid_invoices(key.clone(), ws.clone()).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["amount_due_cents"], 1900);
    assert_eq!(kinds("plan_credit").await.len(), 1);
    // The declining card is suspended at the same time; a working card pays and reactivates.
    eventually(
        StdDuration::from_secs(15),
        "the declined card suspended",
        || async { status_of(bad_key.clone(), bad_ws.clone()).await == "suspended" },
    )
    .await;
    assert_eq!(
        attach(bad_key.clone(), bad_ws.clone(), "pm_card_visa").await["status"],
        "active"
    );
    // ~45 s later: the next period is billed and granted; at most the unspent first grant expires.
    eventually(
        StdDuration::from_secs(75),
        "the second period billed",
        || async { paid_invoices(key.clone(), ws.clone()).await.len() == 2 },
    )
    .await;
    eventually(StdDuration::from_secs(10), "the second grant", || async {
        kinds("plan_credit").await.len() == 2
    })
    .await;
    let expired: i64 = kinds("expiry")
        .await
        .iter()
        .map(|t| t["amount_cents"].as_i64().unwrap())
        .sum();
    assert!((-500..=0).contains(&expired), "{expired}");
}
