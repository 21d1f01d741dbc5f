//! Money under concurrency, retries and caps, through the HTTP API against DynamoDB Local.

use billing_core::domain::ids::RunId;
use billing_core::store::keys::{self, DueIndex};
use billing_tests::app::{spawn_app_with, TestApp, TestResponse};
use futures::future::join_all;
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// An app whose new users open with `credit` cents, and a workspace with a user key.
async fn funded(credit: i64) -> (TestApp, String, String, String) {
    let app = spawn_app_with(|c| c.intro_credit_cents = credit).await;
    let (_, account, key) = app.user_with_key("payer").await;
    let workspace = app.create_workspace(&key, "Agents").await;
    (app, account, key, workspace)
}

/// One cent at the basic tier: 10 actions × 100 000 µ¢.
fn one_cent_event(event_id: &str) -> Value {
    json!({"event_id": event_id, "category": "actions", "quantity": 10, "agent_tier": "basic"})
}

async fn balance(app: &TestApp, account: &str, key: &str) -> Value {
    app.get(&format!("/v1/billing-accounts/{account}/balance"), key)
        .await
        .body
}

/// Sum of the account's transactions, over every page.
async fn ledger_sum(app: &TestApp, account: &str, key: &str) -> (i64, usize) {
    let (mut sum, mut count, mut cursor) = (0, 0, None::<String>);
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/billing-accounts/{account}/transactions?limit=100&cursor={c}"),
            None => format!("/v1/billing-accounts/{account}/transactions?limit=100"),
        };
        let page = app.get(&path, key).await;
        for txn in page.body["data"].as_array().unwrap() {
            sum += txn["amount_cents"].as_i64().unwrap();
            count += 1;
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (sum, count),
        }
    }
}

fn statuses(responses: &[TestResponse]) -> (usize, usize) {
    let ok = responses
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let refused = responses
        .iter()
        .filter(|r| {
            r.status == StatusCode::PAYMENT_REQUIRED && r.error_code() == "insufficient_credits"
        })
        .count();
    (ok, refused)
}

#[tokio::test]
async fn five_hundred_concurrent_one_cent_events_against_300_cents_debit_exactly_300() {
    let (app, account, key, workspace) = funded(300).await;
    let path = format!("/v1/workspaces/{workspace}/usage-events");
    let responses =
        join_all((0..500).map(|i| app.post(&path, &key, one_cent_event(&format!("evt-{i}")))))
            .await;
    let (ok, refused) = statuses(&responses);
    assert_eq!(
        (ok, refused),
        (300, 200),
        "{:?}",
        responses
            .iter()
            .find(|r| !r.status.is_success() && r.status != StatusCode::PAYMENT_REQUIRED)
    );
    let balance = balance(&app, &account, &key).await;
    assert_eq!(balance["balance_cents"], 0);
    assert_eq!(balance["available_cents"], 0);
    let (sum, count) = ledger_sum(&app, &account, &key).await;
    assert_eq!(sum, 0, "the transactions sum to the balance");
    assert_eq!(count, 301, "one grant and 300 debits");
}

#[tokio::test]
async fn concurrent_authorizations_never_hold_more_than_is_available() {
    let (app, account, key, workspace) = funded(300).await;
    // Credit, not the tier's concurrent-run limit, is what this test runs into.
    let id = billing_core::domain::ids::WorkspaceId::parse(&workspace).unwrap();
    app.app
        .store
        .set_rate_limit_tier(&id, "enterprise")
        .await
        .unwrap();
    let path = format!("/v1/workspaces/{workspace}/runs");
    let responses = join_all((0..60).map(|i| {
        app.post(
            &path,
            &key,
            json!({"agent_id": format!("agent-{i}"), "agent_tier": "basic", "max_cost_cents": 10}),
        )
    }))
    .await;
    let (ok, refused) = statuses(&responses);
    assert_eq!((ok, refused), (30, 30));
    let balance = balance(&app, &account, &key).await;
    assert_eq!(balance["held_cents"], 300);
    assert_eq!(balance["available_cents"], 0);
    assert_eq!(balance["balance_cents"], 300, "holds move no money");
}

#[tokio::test]
async fn a_repeated_event_id_is_charged_once_and_other_content_is_refused() {
    let (app, account, key, workspace) = funded(100).await;
    let path = format!("/v1/workspaces/{workspace}/usage-events");
    let first = app.post(&path, &key, one_cent_event("same")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(
        first.body,
        json!({"event_id": "same", "cost_cents": 1, "balance_after_cents": 99, "soft_cap_reached": false})
    );
    let retries = join_all((0..5).map(|_| app.post(&path, &key, one_cent_event("same")))).await;
    for retry in &retries {
        assert_eq!(retry.status, StatusCode::OK);
        assert_eq!(retry.body, first.body);
    }
    let other = app
        .post(&path, &key, json!({"event_id": "same", "category": "actions", "quantity": 20, "agent_tier": "basic"}))
        .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert_eq!(other.error_code(), "idempotency_key_reused");
    assert_eq!(balance(&app, &account, &key).await["balance_cents"], 99);
}

#[tokio::test]
async fn usage_is_priced_by_tier_and_rounded_up_once_per_event() {
    let (app, _, key, workspace) = funded(1000).await;
    let path = format!("/v1/workspaces/{workspace}/usage-events");
    // 3 input tokens at the standard tier: 900 µ¢, rounded up to 1 cent.
    let tiny = app
        .post(
            &path,
            &key,
            json!({"event_id": "a", "category": "input_tokens", "quantity": 3}),
        )
        .await;
    assert_eq!(tiny.body["cost_cents"], 1);
    // 10 001 output tokens at premium: 75 007 500 µ¢ → 76 cents.
    let big = app
        .post(&path, &key, json!({"event_id": "b", "category": "output_tokens", "quantity": 10_001, "agent_tier": "premium"}))
        .await;
    assert_eq!(big.body["cost_cents"], 76);
    // A free category is counted but costs nothing.
    let free = app.post(&path, &key, json!({"event_id": "c", "category": "agent_invocations", "quantity": 5, "agent_tier": "basic"})).await;
    assert_eq!(free.status, StatusCode::CREATED);
    assert_eq!(free.body["cost_cents"], 0);
    assert_eq!(free.body["balance_after_cents"], 1000 - 77);
    for (bad, mention) in [
        (
            json!({"event_id": "d", "category": "colours", "quantity": 1}),
            "colours",
        ),
        (
            json!({"event_id": "d", "category": "actions", "quantity": 1, "agent_tier": "gold"}),
            "gold",
        ),
        (
            json!({"event_id": "d", "category": "actions", "quantity": 0}),
            "quantity",
        ),
        (
            json!({"event_id": "d", "category": "actions", "quantity": -1}),
            "quantity",
        ),
        (
            json!({"event_id": "", "category": "actions", "quantity": 1}),
            "event_id",
        ),
        (
            json!({"event_id": "d", "category": "actions", "quantity": 1, "occurred_at": "yesterday"}),
            "occurred_at",
        ),
    ] {
        let refused = app.post(&path, &key, bad.clone()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(mention),
            "{bad}: {:?}",
            refused.body
        );
    }
    let pricing = app.get("/v1/pricing", &key).await;
    assert_eq!(pricing.body["unit"], "micro_cents");
    assert_eq!(pricing.body["tiers"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_hard_cap_counts_holds_at_the_boundary() {
    let (app, account, key, workspace) = funded(1000).await;
    let capped = app
        .patch(
            &format!("/v1/billing-accounts/{account}"),
            &key,
            json!({"hard_cap_cents": 100}),
        )
        .await;
    assert_eq!(capped.status, StatusCode::OK);
    let run = app
        .post(
            &format!("/v1/workspaces/{workspace}/runs"),
            &key,
            json!({"agent_id": "a", "agent_tier": "basic", "max_cost_cents": 40}),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED);
    let path = format!("/v1/workspaces/{workspace}/usage-events");
    // 59 cents: one under the cap with the 40-cent hold counted.
    let under = app.post(&path, &key, json!({"event_id": "under", "category": "actions", "quantity": 590, "agent_tier": "basic"})).await;
    assert_eq!(under.status, StatusCode::CREATED, "{:?}", under.body);
    let over = app.post(&path, &key, json!({"event_id": "over", "category": "actions", "quantity": 20, "agent_tier": "basic"})).await;
    assert_eq!(over.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(over.error_code(), "hard_cap_reached");
    let at = app.post(&path, &key, one_cent_event("at")).await;
    assert_eq!(
        at.status,
        StatusCode::CREATED,
        "exactly at the cap is allowed"
    );
    let beyond = app.post(&path, &key, one_cent_event("beyond")).await;
    assert_eq!(beyond.error_code(), "hard_cap_reached");
    let new_run = app
        .post(
            &format!("/v1/workspaces/{workspace}/runs"),
            &key,
            json!({"agent_id": "b", "agent_tier": "basic", "max_cost_cents": 1}),
        )
        .await;
    assert_eq!(new_run.error_code(), "hard_cap_reached");
    assert_eq!(
        balance(&app, &account, &key).await["balance_cents"],
        1000 - 60
    );
}

#[tokio::test]
async fn a_run_holds_captures_and_settles_once() {
    let (app, account, key, workspace) = funded(500).await;
    let runs = format!("/v1/workspaces/{workspace}/runs");
    let created = app
        .call(Method::POST, &runs)
        .key(&key)
        .header("idempotency-key", "run-1")
        .json(json!({"agent_id": "writer", "agent_tier": "basic", "max_cost_cents": 100}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["status"], "authorized");
    assert_eq!(created.body["hold_cents"], 100);
    let run = created.body["run_id"].as_str().unwrap();
    assert_eq!(balance(&app, &account, &key).await["available_cents"], 400);

    // 20 000 input tokens (1 cent) + 100 actions (10 cents), reported twice under one sequence.
    let report = json!({"sequence": 1, "input_tokens": 20_000, "actions": 100});
    for _ in 0..2 {
        let captured = app
            .post(&format!("{runs}/{run}/usage"), &key, report.clone())
            .await;
        assert_eq!(captured.status, StatusCode::OK, "{:?}", captured.body);
        assert_eq!(captured.body["captured_cost_cents"], 11);
    }
    let completed = app
        .post(
            &format!("{runs}/{run}/complete"),
            &key,
            json!({"output_tokens": 10_000}),
        )
        .await;
    assert_eq!(completed.status, StatusCode::OK, "{:?}", completed.body);
    // + 10 000 output tokens at 150 µ¢ = 1.5 cents: 11 + 1.5 = 12.5 → 13, rounded once.
    assert_eq!(
        completed.body,
        json!({"run_id": run, "cost_cents": 13, "released_cents": 87, "balance_after_cents": 487, "status": "completed"})
    );
    let again = app
        .post(
            &format!("{runs}/{run}/complete"),
            &key,
            json!({"actions": 1000}),
        )
        .await;
    assert_eq!(
        again.body, completed.body,
        "completing twice returns the first result"
    );
    let late = app
        .post(
            &format!("{runs}/{run}/usage"),
            &key,
            json!({"sequence": 2, "actions": 1}),
        )
        .await;
    assert_eq!(late.status, StatusCode::CONFLICT);

    let balance = balance(&app, &account, &key).await;
    assert_eq!(
        (
            balance["balance_cents"].as_i64(),
            balance["held_cents"].as_i64()
        ),
        (Some(487), Some(0))
    );
    assert_eq!(ledger_sum(&app, &account, &key).await.0, 487);
    let fetched = app.get(&format!("{runs}/{run}"), &key).await;
    assert_eq!(fetched.body["status"], "completed");
    assert_eq!(fetched.body["usage"]["input_tokens"], 20_000);

    // The same Idempotency-Key again: the same run, no second hold.
    let replay = app
        .call(Method::POST, &runs)
        .key(&key)
        .header("idempotency-key", "run-1")
        .json(json!({"agent_id": "writer", "agent_tier": "basic", "max_cost_cents": 100}))
        .send()
        .await;
    assert_eq!(replay.body["run_id"], run);
    assert_eq!(
        app.get(&format!("/v1/billing-accounts/{account}/balance"), &key)
            .await
            .body["held_cents"],
        0
    );
}

#[tokio::test]
async fn usage_beyond_the_hold_extends_it_while_credit_lasts() {
    let (app, account, key, workspace) = funded(30).await;
    let runs = format!("/v1/workspaces/{workspace}/runs");
    let created = app
        .post(
            &runs,
            &key,
            json!({"agent_id": "a", "agent_tier": "basic", "max_cost_cents": 10}),
        )
        .await;
    let run = created.body["run_id"].as_str().unwrap();
    // 200 actions = 20 cents: the hold grows from 10 to 20.
    let grown = app
        .post(
            &format!("{runs}/{run}/usage"),
            &key,
            json!({"sequence": 1, "actions": 200}),
        )
        .await;
    assert_eq!(grown.status, StatusCode::OK, "{:?}", grown.body);
    assert_eq!(grown.body["hold_cents"], 20);
    assert_eq!(balance(&app, &account, &key).await["available_cents"], 10);
    // 200 more would need 20 more cents; only 10 are available.
    let refused = app
        .post(
            &format!("{runs}/{run}/usage"),
            &key,
            json!({"sequence": 2, "actions": 200}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(refused.error_code(), "insufficient_credits");
    let completed = app
        .post(&format!("{runs}/{run}/complete"), &key, json!({}))
        .await;
    assert_eq!(completed.body["cost_cents"], 20);
    assert_eq!(balance(&app, &account, &key).await["balance_cents"], 10);
}

#[tokio::test]
async fn an_expired_hold_is_captured_for_what_was_reported_and_released() {
    let (app, account, key, workspace) = funded(100).await;
    let runs = format!("/v1/workspaces/{workspace}/runs");
    let created = app
        .post(
            &runs,
            &key,
            json!({"agent_id": "a", "agent_tier": "basic", "max_cost_cents": 50}),
        )
        .await;
    let run = created.body["run_id"].as_str().unwrap();
    app.post(
        &format!("{runs}/{run}/usage"),
        &key,
        json!({"sequence": 1, "actions": 70}),
    )
    .await;
    let sweep = billing_core::routes::job_by_name("runs-expire").unwrap();
    assert_eq!(
        (sweep.run)(&app.app, serde_json::Value::Null)
            .await
            .unwrap(),
        0,
        "not expired yet"
    );
    app.clock
        .advance(time::Duration::hours(1) + time::Duration::seconds(1));
    assert_eq!(
        (sweep.run)(&app.app, serde_json::Value::Null)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        (sweep.run)(&app.app, serde_json::Value::Null)
            .await
            .unwrap(),
        0,
        "settled once"
    );
    let fetched = app.get(&format!("{runs}/{run}"), &key).await;
    assert_eq!(fetched.body["status"], "expired");
    assert_eq!(fetched.body["settlement"]["cost_cents"], 7);
    let balance = balance(&app, &account, &key).await;
    assert_eq!(
        (
            balance["balance_cents"].as_i64(),
            balance["held_cents"].as_i64()
        ),
        (Some(93), Some(0))
    );
    let late = app
        .post(&format!("{runs}/{run}/complete"), &key, json!({}))
        .await;
    assert_eq!(late.body["status"], "expired");
    assert_eq!(late.body["cost_cents"], 7);
}

#[tokio::test]
async fn the_expiry_sweep_finds_open_runs_in_every_shard_and_under_the_unsharded_key() {
    let (app, _, key, first_workspace) = funded(1000).await;
    let mut workspaces = vec![first_workspace];
    // One run per workspace: the free tier's concurrency limit stays out of the way.
    for i in 1..8 {
        workspaces.push(app.create_workspace(&key, &format!("Agents {i}")).await);
    }
    let mut opened = Vec::new();
    for workspace in &workspaces {
        let created = app
            .post(
                &format!("/v1/workspaces/{workspace}/runs"),
                &key,
                json!({"agent_id": "a", "agent_tier": "basic", "max_cost_cents": 10}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        opened.push(RunId::parse(created.body["run_id"].as_str().unwrap()).unwrap());
        // A second apart, so they expire in the order they opened.
        app.clock.advance(time::Duration::seconds(1));
    }
    let runs: Vec<_> = opened
        .iter()
        .map(|run| (keys::run(run.as_str()), keys::RUN_SK.to_owned()))
        .collect();
    let shards = app.due_partitions(&runs, DueIndex::OpenRuns).await;
    assert!(shards.len() >= 3, "8 runs in {shards:?}");
    // The earliest as a run opened before the index was sharded.
    app.move_to_legacy_partition(
        &keys::run(opened[0].as_str()),
        keys::RUN_SK,
        DueIndex::OpenRuns,
    )
    .await;

    app.clock.advance(time::Duration::hours(1));
    let earliest = app
        .app
        .store
        .overdue_runs(app.clock_now(), 3)
        .await
        .unwrap();
    assert_eq!(earliest, opened[..3], "earliest first, at most the limit");
    let sweep = billing_core::routes::job_by_name("runs-expire").unwrap();
    assert_eq!(
        (sweep.run)(&app.app, Value::Null).await.unwrap(),
        opened.len()
    );
    assert_eq!(
        (sweep.run)(&app.app, Value::Null).await.unwrap(),
        0,
        "settled once"
    );
}

#[tokio::test]
async fn service_credits_apply_once_per_idempotency_key_and_never_overdraw() {
    let (app, account, key, workspace) = funded(100).await;
    let path = format!("/v1/workspaces/{workspace}/billing/credits");
    let grant = json!({"amount_cents": 250, "type": "grant", "reason": "support gesture"});
    let attempts = join_all((0..6).map(|_| {
        app.call(Method::POST, &path)
            .key(&app.service_key)
            .header("idempotency-key", "gesture-1")
            .json(grant.clone())
            .send()
    }))
    .await;
    for attempt in &attempts {
        assert!(
            attempt.status == StatusCode::CREATED
                || attempt.error_code() == "idempotency_key_in_use",
            "{attempt:?}"
        );
    }
    let created = attempts
        .iter()
        .find(|a| a.status == StatusCode::CREATED)
        .unwrap();
    assert_eq!(created.body["type"], "grant");
    assert_eq!(created.body["workspace_id"], workspace.as_str());
    assert_eq!(created.body["balance_after_cents"], 350);
    assert_eq!(balance(&app, &account, &key).await["balance_cents"], 350);

    let too_much = app
        .post(
            &path,
            &app.service_key,
            json!({"amount_cents": -351, "type": "adjustment", "reason": "clawback"}),
        )
        .await;
    assert_eq!(too_much.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(too_much.error_code(), "insufficient_credits");
    let fine = app
        .post(
            &path,
            &app.service_key,
            json!({"amount_cents": -50, "type": "adjustment", "reason": "clawback"}),
        )
        .await;
    assert_eq!(fine.body["balance_after_cents"], 300);
    for bad in [
        json!({"amount_cents": -5, "type": "grant", "reason": "x"}),
        json!({"amount_cents": 0, "type": "adjustment", "reason": "x"}),
        json!({"amount_cents": 5, "type": "bonus", "reason": "x"}),
        json!({"amount_cents": 5, "type": "refund", "reason": ""}),
    ] {
        assert_eq!(
            app.post(&path, &app.service_key, bad.clone()).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    let by_user = app.post(&path, &key, grant.clone()).await;
    assert_eq!(by_user.status, StatusCode::FORBIDDEN);

    let history = app
        .get(
            &format!("/v1/workspaces/{workspace}/billing/transactions"),
            &key,
        )
        .await;
    let types: Vec<&str> = history.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["adjustment", "grant"],
        "the workspace's own history, newest first"
    );
    assert_eq!(ledger_sum(&app, &account, &key).await.0, 300);
}

#[tokio::test]
async fn a_workspace_hard_cap_limits_that_workspace_only() {
    let (app, account, key, workspace) = funded(100).await;
    let other = app.create_workspace(&key, "Other").await;
    let capped = app
        .patch(
            &format!("/v1/workspaces/{workspace}/billing"),
            &key,
            json!({"soft_cap_cents": 3, "hard_cap_cents": 5}),
        )
        .await;
    assert_eq!(capped.status, StatusCode::OK, "{:?}", capped.body);
    let bad = app
        .patch(
            &format!("/v1/workspaces/{workspace}/billing"),
            &key,
            json!({"soft_cap_cents": 9}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let path = format!("/v1/workspaces/{workspace}/usage-events");
    let mut soft = Vec::new();
    for i in 0..5 {
        let charged = app
            .post(&path, &key, one_cent_event(&format!("e{i}")))
            .await;
        assert_eq!(charged.status, StatusCode::CREATED);
        soft.push(charged.body["soft_cap_reached"].as_bool().unwrap());
    }
    assert_eq!(soft, [false, false, true, true, true]);
    let refused = app.post(&path, &key, one_cent_event("e5")).await;
    assert_eq!(refused.error_code(), "hard_cap_reached");
    let elsewhere = app
        .post(
            &format!("/v1/workspaces/{other}/usage-events"),
            &key,
            one_cent_event("e5"),
        )
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::CREATED,
        "the other workspace has no cap"
    );
    let ws_balance = app
        .get(&format!("/v1/workspaces/{workspace}/billing/balance"), &key)
        .await;
    assert_eq!(ws_balance.body["balance_cents"], 94);
    assert_eq!(ws_balance.body["billing_account_id"], account.as_str());
}

#[tokio::test]
async fn crossing_a_cap_records_a_billing_event_in_the_same_write() {
    let (app, account, key, workspace) = funded(100).await;
    app.patch(
        &format!("/v1/billing-accounts/{account}"),
        &key,
        json!({"soft_cap_cents": 2, "hard_cap_cents": 3}),
    )
    .await;
    let path = format!("/v1/workspaces/{workspace}/usage-events");
    for i in 0..3 {
        app.post(&path, &key, one_cent_event(&format!("x{i}")))
            .await;
    }
    // Its caps only: the balance starts below the recharge threshold (no `balance` crossing).
    let events = app.app.store.all_events().await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["credits.low", "credits.hard_cap_reached"],
        "each crossing once"
    );
    assert!(events
        .iter()
        .all(|e| e.billing_account_id.as_str() == account));
    let refused = app.post(&path, &key, one_cent_event("x3")).await;
    assert_eq!(refused.error_code(), "hard_cap_reached");
    assert_eq!(
        app.app.store.all_events().await.unwrap().len(),
        2,
        "a refusal records nothing"
    );
}

#[tokio::test]
async fn a_workspace_key_may_lower_but_never_raise_or_remove_the_owners_hard_cap() {
    let (app, _, key, workspace) = funded(100).await;
    let admin = app
        .create_key(json!({"type": "workspace", "id": workspace, "role": "admin"}))
        .await;
    let path = format!("/v1/workspaces/{workspace}/billing");
    let set = app.patch(&path, &key, json!({"hard_cap_cents": 50})).await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    for widening in [
        json!({"hard_cap_cents": null}),
        json!({"hard_cap_cents": 51}),
    ] {
        let refused = app.patch(&path, &admin, widening.clone()).await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{widening}"
        );
    }
    assert_eq!(app.get(&path, &key).await.body["hard_cap_cents"], 50);
    // Lowering is fine, and the soft cap is the workspace's to set.
    let lowered = app
        .patch(
            &path,
            &admin,
            json!({"soft_cap_cents": 10, "hard_cap_cents": 20}),
        )
        .await;
    assert_eq!(lowered.status, StatusCode::OK, "{:?}", lowered.body);
    // A cap it lowered is still the owner's: the key cannot climb back, even below 50.
    let back_up = app
        .patch(&path, &admin, json!({"hard_cap_cents": 40}))
        .await;
    assert_eq!(back_up.status, StatusCode::FORBIDDEN);
    // Money moving on the budget keeps who set the cap.
    let event = app
        .post(
            &format!("/v1/workspaces/{workspace}/usage-events"),
            &key,
            one_cent_event("after-the-cap"),
        )
        .await;
    assert_eq!(event.status, StatusCode::CREATED);
    let removed = app
        .patch(&path, &admin, json!({"hard_cap_cents": null}))
        .await;
    assert_eq!(removed.status, StatusCode::FORBIDDEN);
    // The owner may raise or remove it; then a cap of the workspace's own is its to change.
    let by_owner = app
        .patch(&path, &key, json!({"hard_cap_cents": null}))
        .await;
    assert_eq!(by_owner.status, StatusCode::OK);
    let own = app
        .patch(
            &path,
            &admin,
            json!({"soft_cap_cents": null, "hard_cap_cents": 30}),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    let raised = app
        .patch(&path, &admin, json!({"hard_cap_cents": 90}))
        .await;
    assert_eq!(raised.status, StatusCode::OK, "{:?}", raised.body);
    let gone = app
        .patch(&path, &admin, json!({"hard_cap_cents": null}))
        .await;
    assert_eq!(gone.status, StatusCode::OK);
}

#[tokio::test]
async fn a_usage_quantity_out_of_range_is_400_naming_it_and_debits_nothing() {
    let (app, account, key, workspace) = funded(100).await;
    let path = format!("/v1/workspaces/{workspace}/usage-events");
    for quantity in [json!(1_000_000_000_001_u64), json!(0), json!(u64::MAX)] {
        let refused = app
            .post(
                &path,
                &key,
                json!({"event_id": "huge", "category": "actions", "quantity": quantity}),
            )
            .await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{quantity}"
        );
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("quantity"), "{message}");
    }
    // The largest quantity is in range: priced, and refused for credit.
    let largest = app
        .post(
            &path,
            &key,
            json!({"event_id": "largest", "category": "actions", "quantity": 1_000_000_000_000_u64}),
        )
        .await;
    assert_eq!(largest.error_code(), "insufficient_credits");
    let after = balance(&app, &account, &key).await;
    assert_eq!(after["balance_cents"], 100);
    let status = app
        .get(&format!("/v1/workspaces/{workspace}/billing"), &key)
        .await;
    assert_eq!(status.body["actions_used"], 0);
}

#[tokio::test]
async fn a_credit_above_the_money_range_is_400() {
    let (app, account, key, workspace) = funded(100).await;
    let path = format!("/v1/workspaces/{workspace}/billing/credits");
    for (kind, amount) in [
        ("grant", 10_000_000_001_i64),
        ("adjustment", -10_000_000_001),
    ] {
        let refused = app
            .post(
                &path,
                &app.service_key,
                json!({"amount_cents": amount, "type": kind, "reason": "too much"}),
            )
            .await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{kind} {amount}"
        );
        assert!(refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("amount_cents"));
    }
    assert_eq!(balance(&app, &account, &key).await["balance_cents"], 100);
    let largest = app
        .post(
            &path,
            &app.service_key,
            json!({"amount_cents": 10_000_000_000_i64, "type": "grant", "reason": "the most"}),
        )
        .await;
    assert_eq!(largest.status, StatusCode::CREATED, "{:?}", largest.body);
}

#[tokio::test]
async fn a_run_completed_with_counts_out_of_range_is_400_and_changes_nothing() {
    let (app, account, key, workspace) = funded(100).await;
    let authorized = app
        .post(
            &format!("/v1/workspaces/{workspace}/runs"),
            &key,
            json!({"agent_id": "a1", "agent_tier": "basic", "max_cost_cents": 10}),
        )
        .await;
    assert_eq!(
        authorized.status,
        StatusCode::CREATED,
        "{:?}",
        authorized.body
    );
    let run = authorized.body["run_id"].as_str().unwrap().to_owned();
    let run_path = format!("/v1/workspaces/{workspace}/runs/{run}");
    for body in [
        json!({"actions": u64::MAX}),
        json!({"actions": 1_000_000_000_001_u64}),
        json!({"input_tokens": 1_000_000_000_001_u64}),
        json!({"output_tokens": -1}),
    ] {
        let refused = app
            .post(&format!("{run_path}/complete"), &key, body.clone())
            .await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
        let reported = app
            .post(
                &format!("{run_path}/usage"),
                &key,
                json!({"sequence": 1})
                    .as_object()
                    .unwrap()
                    .clone()
                    .into_iter()
                    .chain(body.as_object().unwrap().clone())
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            )
            .await;
        assert_eq!(reported.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let still = app.get(&run_path, &key).await;
    assert_eq!(still.body["status"], "authorized");
    assert_eq!(still.body["usage"], json!({}));
    let money = balance(&app, &account, &key).await;
    assert_eq!(
        (
            money["balance_cents"].as_i64(),
            money["held_cents"].as_i64()
        ),
        (Some(100), Some(10))
    );
    let status = app
        .get(&format!("/v1/workspaces/{workspace}/billing"), &key)
        .await;
    assert_eq!(status.body["actions_used"], 0);
    // In range, it completes as usual.
    let done = app
        .post(
            &format!("{run_path}/complete"),
            &key,
            json!({"actions": 10}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    let status = app
        .get(&format!("/v1/workspaces/{workspace}/billing"), &key)
        .await;
    assert_eq!(status.body["actions_used"], 10, "{:?}", status.body);
}
