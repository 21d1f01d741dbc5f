use billing_core::domain::api_key::Principal;
use billing_core::http::idempotency::fingerprint;
use billing_core::store::idempotency::{Claim, Lifetimes};
use billing_tests::app::spawn_app;
use futures::future::join_all;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_replays_the_first_response() {
    let app = spawn_app().await;
    let (_, _, key) = app.user_with_key("pat").await;
    let workspace = app.create_workspace(&key, "Main").await;
    let path = format!("/v1/workspaces/{workspace}/billing/accounts");
    let send = || {
        app.call(Method::POST, &path)
            .key(&key)
            .header("idempotency-key", "create-savings-1")
            .json(json!({"name": "Savings"}))
            .send()
    };
    let first = send().await;
    let retry = send().await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(first.body, retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    let accounts = app.get(&path, &key).await;
    assert_eq!(
        accounts.body["data"].as_array().unwrap().len(),
        2,
        "one account created, not two"
    );

    let other_body = app
        .call(Method::POST, &path)
        .key(&key)
        .header("idempotency-key", "create-savings-1")
        .json(json!({"name": "Checking"}))
        .send()
        .await;
    assert_eq!(other_body.status, StatusCode::BAD_REQUEST);
    assert_eq!(other_body.error_code(), "idempotency_key_reused");
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_once() {
    let app = spawn_app().await;
    let (_, _, key) = app.user_with_key("quinn").await;
    let workspace = app.create_workspace(&key, "Main").await;
    let path = format!("/v1/workspaces/{workspace}/billing/accounts");
    let responses = join_all((0..8).map(|_| {
        app.call(Method::POST, &path)
            .key(&key)
            .header("idempotency-key", "burst")
            .json(json!({"name": "Burst"}))
            .send()
    }))
    .await;
    for response in &responses {
        assert!(
            response.status == StatusCode::CREATED
                || (response.status == StatusCode::CONFLICT
                    && response.error_code() == "idempotency_key_in_use"),
            "{response:?}"
        );
    }
    let accounts = app.get(&path, &key).await;
    assert_eq!(accounts.body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_retry_while_the_first_is_running_is_409() {
    let app = spawn_app().await;
    let body = json!({"external_id": "rita"}).to_string();
    // The first request holds the key (as if it were still running).
    let claim = app
        .app
        .store
        .claim_idempotency_key(
            &Principal::Service.scope(),
            "in-flight",
            &fingerprint("POST", "/v1/users", body.as_bytes(), None),
            "the-first-request",
            app.clock_now(),
            &Lifetimes {
                lease_secs: 60,
                retain_secs: 3600,
            },
        )
        .await
        .unwrap();
    assert_eq!(claim, Claim::Claimed);
    let retry = app
        .call(Method::POST, "/v1/users")
        .key(&app.service_key)
        .header("idempotency-key", "in-flight")
        .raw_body(body)
        .send()
        .await;
    assert_eq!(retry.status, StatusCode::CONFLICT);
    assert_eq!(retry.error_code(), "idempotency_key_in_use");
    // After its lease, an abandoned claim is taken over and the request runs once.
    app.clock.advance(time::Duration::seconds(61));
    let taken_over = app
        .call(Method::POST, "/v1/users")
        .key(&app.service_key)
        .header("idempotency-key", "in-flight")
        .json(json!({"external_id": "rita"}))
        .send()
        .await;
    assert_eq!(
        taken_over.status,
        StatusCode::CREATED,
        "{:?}",
        taken_over.body
    );
}

#[tokio::test]
async fn keys_are_scoped_to_the_caller_and_checked_for_length() {
    let app = spawn_app().await;
    let (_, _, sam) = app.user_with_key("sam").await;
    let (_, _, tia) = app.user_with_key("tia").await;
    for key in [&sam, &tia] {
        let made = app
            .call(Method::POST, "/v1/workspaces")
            .key(key)
            .header("idempotency-key", "same-key")
            .json(json!({"name": "W"}))
            .send()
            .await;
        assert_eq!(
            made.status,
            StatusCode::CREATED,
            "each caller has its own key space"
        );
        assert!(!made.headers.contains_key("idempotent-replayed"));
    }
    let too_long = app
        .call(Method::POST, "/v1/workspaces")
        .key(&sam)
        .header("idempotency-key", &"k".repeat(256))
        .json(json!({"name": "W"}))
        .send()
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_long.error_code(), "invalid_request");
}

#[tokio::test]
async fn a_rate_limited_request_is_not_stored_and_its_retry_is_processed_afresh() {
    let app = billing_tests::app::spawn_app_with(|c| c.intro_credit_cents = 10_000).await;
    let (_, _, key) = app.user_with_key("uma").await;
    let workspace = app.create_workspace(&key, "Busy").await;
    let ws = billing_core::domain::ids::WorkspaceId::parse(&workspace).unwrap();
    app.app
        .store
        .set_rate_limit_tier(&ws, "free")
        .await
        .unwrap();
    let path = format!("/v1/workspaces/{workspace}/usage-events");
    let event = |id: String| json!({"event_id": id, "category": "actions", "quantity": 1});
    // Start at a minute's first second, so the whole minute's allowance shares one window.
    let into_minute = app.clock_now().rem_euclid(60);
    app.clock.advance(time::Duration::seconds(60 - into_minute));
    let sent = join_all((0..60).map(|i| app.post(&path, &key, event(format!("e{i}"))))).await;
    let refused: Vec<_> = sent
        .iter()
        .filter(|r| r.status != StatusCode::CREATED)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    let send = || {
        app.call(Method::POST, &path)
            .key(&key)
            .header("idempotency-key", "over-the-limit")
            .json(event("late".into()))
            .send()
    };
    let limited = send().await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(time::Duration::seconds(60));
    let retry = send().await;
    assert_eq!(retry.status, StatusCode::CREATED, "{:?}", retry.body);
    assert!(!retry.headers.contains_key("idempotent-replayed"));
    // Once final, the outcome is what a further retry replays.
    let replay = send().await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_final_refusal_is_stored_and_replayed() {
    let app = spawn_app().await;
    let (_, _, key) = app.user_with_key("vic").await;
    let workspace = app.create_workspace(&key, "Main").await;
    let path = format!("/v1/workspaces/{workspace}/billing/accounts/link");
    let send = || {
        app.call(Method::POST, &path)
            .key(&key)
            .header("idempotency-key", "link-nothing")
            .json(json!({"billing_account_id": "ba_00000000000000000000000000"}))
            .send()
    };
    let first = send().await;
    assert_eq!(first.status, StatusCode::NOT_FOUND);
    let retry = send().await;
    assert_eq!(retry.status, StatusCode::NOT_FOUND);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.body, first.body);
}
