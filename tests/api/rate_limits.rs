//! Rate-limit tiers: the view, refresh from plan and lifetime paid, usage events per minute and
//! concurrent runs (429 with Retry-After, nothing debited).

use billing_core::clock::Clock;
use billing_core::domain::ids::{BillingAccountId, TransactionId, WorkspaceId};
use billing_core::domain::transaction::{Transaction, TransactionType};
use billing_tests::app::{spawn_app_with, TestApp, TestResponse};
use futures::future::join_all;
use http::StatusCode;
use serde_json::{json, Value};
use time::Duration;

async fn setup(tier: Option<&str>) -> (TestApp, String, String, WorkspaceId) {
    let app = spawn_app_with(|c| c.intro_credit_cents = 10_000).await;
    let (_, account, key) = app.user_with_key("limited").await;
    let ws = WorkspaceId::parse(&app.create_workspace(&key, "Limited").await).unwrap();
    if let Some(tier) = tier {
        app.app.store.set_rate_limit_tier(&ws, tier).await.unwrap();
    }
    (app, account, key, ws)
}

async fn event(app: &TestApp, key: &str, ws: &WorkspaceId, id: &str) -> TestResponse {
    app.post(
        &format!("/v1/workspaces/{ws}/usage-events"),
        key,
        json!({"event_id": id, "category": "actions", "quantity": 10, "agent_tier": "basic"}),
    )
    .await
}

async fn limits(app: &TestApp, key: &str, ws: &WorkspaceId) -> Value {
    let response = app
        .get(&format!("/v1/workspaces/{ws}/rate-limits"), key)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    response.body
}

#[tokio::test]
async fn usage_events_over_the_minute_limit_get_429_and_debit_nothing() {
    let (app, account, key, ws) = setup(Some("free")).await;
    // Start at a minute's first second, so the 60 requests share one window.
    let into_minute = app.clock_now().rem_euclid(60);
    app.clock.advance(Duration::seconds(60 - into_minute));
    let sent = join_all((0..60).map(|i| {
        let (app, key, ws) = (&app, &key, &ws);
        async move { event(app, key, ws, &format!("e{i}")).await }
    }))
    .await;
    assert!(sent.iter().all(|r| r.status == StatusCode::CREATED));
    app.clock.advance(Duration::seconds(15));
    let over = event(&app, &key, &ws, "e60").await;
    assert_eq!(
        (over.status, over.error_code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let retry: u64 = over.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 45, "seconds until the next minute");
    let view = limits(&app, &key, &ws).await;
    assert_eq!(view["usage"]["requests_this_minute"], 60);
    let balance = app
        .get(&format!("/v1/billing-accounts/{account}/balance"), &key)
        .await
        .body;
    assert_eq!(
        balance["balance_cents"],
        10_000 - 60,
        "the refused event debited nothing"
    );
    // The next minute takes events again.
    app.clock.advance(Duration::seconds(45));
    assert_eq!(
        event(&app, &key, &ws, "e60").await.status,
        StatusCode::CREATED
    );
}

async fn authorize(app: &TestApp, key: &str, ws: &WorkspaceId, agent: &str) -> TestResponse {
    app.post(
        &format!("/v1/workspaces/{ws}/runs"),
        key,
        json!({"agent_id": agent, "agent_tier": "basic", "max_cost_cents": 10}),
    )
    .await
}

#[tokio::test]
async fn concurrent_runs_over_the_tier_get_429_even_when_racing() {
    let (app, account, key, ws) = setup(Some("free")).await;
    let racing = join_all((0..10).map(|i| {
        let (app, key, ws) = (&app, &key, &ws);
        async move { authorize(app, key, ws, &format!("a{i}")).await }
    }))
    .await;
    let admitted: Vec<&TestResponse> = racing
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(admitted.len(), 2, "the free tier allows two open runs");
    for refused in racing.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.error_code(), "rate_limited");
        assert!(refused.headers.contains_key("retry-after"));
    }
    let balance = app
        .get(&format!("/v1/billing-accounts/{account}/balance"), &key)
        .await
        .body;
    assert_eq!(balance["held_cents"], 20, "refused runs hold nothing");
    assert_eq!(limits(&app, &key, &ws).await["usage"]["concurrent_runs"], 2);
    // Completing one frees its place.
    let run_id = admitted[0].body["run_id"].as_str().unwrap();
    let done = app
        .post(
            &format!("/v1/workspaces/{ws}/runs/{run_id}/complete"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(limits(&app, &key, &ws).await["usage"]["concurrent_runs"], 1);
    assert_eq!(
        authorize(&app, &key, &ws, "next").await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn the_tier_follows_the_plan_lifetime_paid_and_status() {
    let (app, account, key, ws) = setup(None).await;
    let view = limits(&app, &key, &ws).await;
    assert_eq!(view["tier"], "pro", "a trial is on the Pro plan");
    assert_eq!(
        view["limits"],
        json!({"requests_per_minute": 600, "concurrent_runs": 10})
    );
    assert_eq!(
        view["usage"],
        json!({"requests_this_minute": 0, "concurrent_runs": 0})
    );
    assert_eq!(view["billing_account_id"], account);

    // $500 paid in over the account's lifetime earns the team tier.
    let now = billing_core::clock::rfc3339(app.clock.now());
    let purchase = Transaction {
        id: TransactionId::generate(1),
        billing_account_id: BillingAccountId::parse(&account).unwrap(),
        workspace_id: None,
        kind: TransactionType::Purchase,
        amount_cents: 50_000,
        balance_after_cents: 0,
        description: "credits".into(),
        category: None,
        agent_id: None,
        run_id: None,
        reference: None,
        created_at: now,
    };
    app.app
        .store
        .apply_credit(&purchase, None, Vec::new())
        .await
        .unwrap();
    assert_eq!(
        limits(&app, &key, &ws).await["tier"],
        "pro",
        "until refreshed"
    );
    let refreshed = app
        .post(
            &format!("/v1/workspaces/{ws}/rate-limits/refresh"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    assert_eq!(refreshed.body["tier"], "team");
    assert_eq!(refreshed.body["limits"]["concurrent_runs"], 50);
    assert_eq!(limits(&app, &key, &ws).await["tier"], "team");

    // Readonly drops to the lowest tier, at the transition itself.
    app.clock.advance(Duration::days(31));
    let sweep = billing_core::routes::job_by_name("lifecycle-sweep").unwrap();
    assert_eq!((sweep.run)(&app.app, Value::Null).await.unwrap(), 1);
    assert_eq!(limits(&app, &key, &ws).await["tier"], "free");
}
