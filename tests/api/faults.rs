//! Injected DynamoDB faults (tests/support/fault_proxy.rs): a write whose answer is lost must
//! still be answered as what it did, and money must move at most once. First one case per lost
//! answer, scripted; then a seeded campaign of concurrent clients against every money path,
//! checked afterwards from the table itself.

use billing_core::config::PaymentsConfig;
use billing_core::payments::signature;
use billing_tests::app::{dynamodb_endpoint, spawn_app_through, TestApp, TestResponse};
use billing_tests::fault_proxy::{Fault, FaultProxy, Plan, Rates};
use http::{Method, StatusCode};
use serde_json::{json, Value};

const SECRET: &str = "whsec_fault_secret";

/// The app, its store reaching DynamoDB Local through `proxy`.
async fn spawn_through(proxy: &FaultProxy) -> TestApp {
    spawn_app_through(&proxy.url, |c| {
        c.intro_credit_cents = 1000;
        c.payments = PaymentsConfig::Offline {
            base_url: "http://127.0.0.1:3000".into(),
            webhook_secret: SECRET.into(),
        };
    })
    .await
}

/// A proxy with no random faults, for scripted plans.
async fn scripted_proxy() -> FaultProxy {
    FaultProxy::start(&dynamodb_endpoint(), 0, Rates::none()).await
}

/// A user with a key, its default account and a workspace on it.
async fn workspace(app: &TestApp, name: &str) -> (String, String, String) {
    let (_, account, key) = app.user_with_key(name).await;
    let workspace = app.create_workspace(&key, name).await;
    (key, account, workspace)
}

async fn balance(app: &TestApp, key: &str, account: &str) -> Value {
    app.get(&format!("/v1/billing-accounts/{account}/balance"), key)
        .await
        .body
}

async fn transactions(app: &TestApp, key: &str, account: &str) -> Vec<Value> {
    app.get(
        &format!("/v1/billing-accounts/{account}/transactions?limit=100"),
        key,
    )
    .await
    .body["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn grant(amount: i64) -> Value {
    json!({"amount_cents": amount, "type": "grant", "reason": "fault test"})
}

async fn credit(app: &TestApp, ws: &str, body: Value, key: Option<&str>) -> TestResponse {
    let mut call = app
        .call(Method::POST, format!("/v1/workspaces/{ws}/billing/credits"))
        .key(&app.service_key)
        .json(body);
    if let Some(key) = key {
        call = call.header("idempotency-key", key);
    }
    call.send().await
}

#[tokio::test]
async fn a_keyed_request_whose_claim_was_applied_but_unanswered_runs_instead_of_answering_in_use() {
    let proxy = scripted_proxy().await;
    let app = spawn_through(&proxy).await;
    let (key, account, ws) = workspace(&app, "claim").await;
    // The claim's put is applied and its answer lost; the SDK's retry of it is refused by the
    // claim itself.
    proxy.plan(Plan {
        operation: "PutItem",
        key_contains: "IDEM#".into(),
        faults: vec![Fault::LostResponse],
    });
    let credited = credit(&app, &ws, grant(250), Some("lost-claim")).await;
    assert!(proxy.plans_used());
    assert_eq!(credited.status, StatusCode::CREATED, "{:?}", credited.body);
    let replay = credit(&app, &ws, grant(250), Some("lost-claim")).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.body["id"], credited.body["id"]);
    assert_eq!(balance(&app, &key, &account).await["balance_cents"], 1250);
}

/// Each way an answer is lost, followed by a conflict on the SDK's retry so that the store's own
/// retry loop sends the transaction again.
#[tokio::test]
async fn a_credit_committed_but_unanswered_is_answered_as_made_and_made_once() {
    for lost in [Fault::LostResponse, Fault::LostConnection] {
        let proxy = scripted_proxy().await;
        let app = spawn_through(&proxy).await;
        let (key, account, ws) = workspace(&app, "lost-credit").await;
        proxy.plan(Plan {
            operation: "TransactWriteItems",
            key_contains: format!("ACCOUNT#{account}"),
            faults: vec![lost, Fault::TransactionConflict],
        });
        // Without an Idempotency-Key: a false 500 here would be retried into a second credit.
        let credited = credit(&app, &ws, grant(250), None).await;
        assert!(proxy.plans_used(), "{lost:?}");
        assert_eq!(
            credited.status,
            StatusCode::CREATED,
            "{lost:?}: {:?}",
            credited.body
        );
        assert_eq!(credited.body["balance_after_cents"], 1250);
        let money = balance(&app, &key, &account).await;
        assert_eq!(money["balance_cents"], 1250, "{lost:?}");
        let ledger = transactions(&app, &key, &account).await;
        assert_eq!(ledger.len(), 2, "{lost:?}: {ledger:?}");
    }
}

#[tokio::test]
async fn a_credit_the_sdk_gave_up_on_is_sent_again_under_its_token() {
    let proxy = scripted_proxy().await;
    let app = spawn_through(&proxy).await;
    let (key, account, ws) = workspace(&app, "gave-up").await;
    // The SDK tries three times: applied but unanswered, then two server errors.
    proxy.plan(Plan {
        operation: "TransactWriteItems",
        key_contains: format!("ACCOUNT#{account}"),
        faults: vec![
            Fault::LostResponse,
            Fault::ServerError,
            Fault::ThroughputExceeded,
        ],
    });
    let credited = credit(&app, &ws, grant(250), None).await;
    assert!(proxy.plans_used());
    assert_eq!(credited.status, StatusCode::CREATED, "{:?}", credited.body);
    assert_eq!(balance(&app, &key, &account).await["balance_cents"], 1250);
    assert_eq!(transactions(&app, &key, &account).await.len(), 2);
}

#[tokio::test]
async fn a_workspace_created_but_unanswered_is_answered_created() {
    let proxy = scripted_proxy().await;
    let app = spawn_through(&proxy).await;
    let (user, _, key) = app.user_with_key("lost-workspace").await;
    proxy.plan(Plan {
        operation: "TransactWriteItems",
        key_contains: "WS#".into(),
        faults: vec![Fault::LostResponse, Fault::TransactionConflict],
    });
    let created = app
        .post("/v1/workspaces", &key, json!({"name": "Lost"}))
        .await;
    assert!(proxy.plans_used());
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let fetched = app.get(&format!("/v1/workspaces/{id}"), &key).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body["owner_user_id"], user.as_str());
}

/// A checkout of `amount` cents on the offline gateway; its session id.
async fn checkout(app: &TestApp, key: &str, ws: &str, amount: i64) -> TestResponse {
    app.post(
        &format!("/v1/workspaces/{ws}/billing/checkout"),
        key,
        json!({"amount_cents": amount, "success_url": "https://app.example/ok",
               "cancel_url": "https://app.example/cancel"}),
    )
    .await
}

fn session_completed(id: &str, session: &str, amount: i64, created: i64) -> Value {
    json!({"id": id, "object": "event", "type": "checkout.session.completed", "created": created,
           "livemode": false, "data": {"object": {
               "id": session, "object": "checkout.session", "mode": "payment",
               "payment_status": "paid", "status": "complete", "amount_total": amount,
               "currency": "usd", "payment_intent": format!("pi_for_{session}"), "metadata": {}}}})
}

/// Delivered as Stripe would: signed now with the endpoint's secret.
async fn deliver(app: &TestApp, event: &Value) -> TestResponse {
    let body = serde_json::to_vec(event).unwrap();
    let header = signature::sign(&body, SECRET, app.clock_now());
    app.call(Method::POST, "/v1/webhooks/stripe")
        .raw_body(body)
        .header("stripe-signature", &header)
        .send()
        .await
}

#[tokio::test]
async fn a_checkout_webhook_credited_but_unanswered_is_answered_applied() {
    let proxy = scripted_proxy().await;
    let app = spawn_through(&proxy).await;
    let (key, account, ws) = workspace(&app, "lost-webhook").await;
    let session = checkout(&app, &key, &ws, 700).await;
    assert_eq!(session.status, StatusCode::OK, "{:?}", session.body);
    let session = session.body["checkout_session_id"].as_str().unwrap();
    proxy.plan(Plan {
        operation: "TransactWriteItems",
        key_contains: "STRIPE_EVENT#evt_lost".into(),
        faults: vec![Fault::LostConnection, Fault::TransactionConflict],
    });
    let paid = session_completed("evt_lost", session, 700, app.clock_now());
    let answered = deliver(&app, &paid).await;
    assert!(proxy.plans_used());
    assert_eq!(answered.status, StatusCode::OK, "{:?}", answered.body);
    assert_eq!(answered.body["handled"], "applied");
    assert_eq!(deliver(&app, &paid).await.body["handled"], "duplicate");
    assert_eq!(balance(&app, &key, &account).await["balance_cents"], 1700);
}
