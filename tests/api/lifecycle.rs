//! The plan lifecycle end to end: deadlines fired by the sweep and the one-time schedule's
//! function (racing), the trial's action limit, what each status permits, period rollover of the
//! included credit, and the subscription views. Time moves by the injected clock.

use billing_core::api::lifecycle::{fire, Fired};
use billing_core::domain::events::EventType;
use billing_core::domain::ids::WorkspaceId;
use billing_core::domain::lifecycle::Trigger;
use billing_core::routes::job_by_name;
use billing_core::store::keys::{self, DueIndex};
use billing_tests::app::{spawn_app_with, TestApp};
use futures::future::join_all;
use http::StatusCode;
use serde_json::{json, Value};
use time::Duration;

async fn run_job(app: &TestApp, name: &str, payload: Value) -> usize {
    (job_by_name(name).unwrap().run)(&app.app, payload)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .handled
}

async fn sweep(app: &TestApp) -> usize {
    run_job(app, "lifecycle-sweep", Value::Null).await
}

/// Runs the sweep and the one-time schedule's function `n` times at once, alternating; returns
/// how many transitions they applied in all.
async fn race_sweep_and_schedule(app: &TestApp, deadline: &Value, n: usize) -> usize {
    join_all((0..n).map(|i| async move {
        if i % 2 == 0 {
            sweep(app).await
        } else {
            run_job(app, "lifecycle-transition", deadline.clone()).await
        }
    }))
    .await
    .into_iter()
    .sum()
}

/// A user with 10 000 cents and a trial workspace.
async fn trial(app: &TestApp) -> (String, String, WorkspaceId) {
    let (_, account, key) = app.user_with_key("owner").await;
    let workspace = app.create_workspace(&key, "Agents").await;
    (key, account, WorkspaceId::parse(&workspace).unwrap())
}

async fn spawn() -> TestApp {
    spawn_app_with(|c| c.intro_credit_cents = 10_000).await
}

async fn status(app: &TestApp, key: &str, ws: &WorkspaceId) -> Value {
    let response = app.get(&format!("/v1/workspaces/{ws}/billing"), key).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    response.body
}

async fn subscription(app: &TestApp, key: &str, ws: &WorkspaceId) -> Value {
    let response = app
        .get(&format!("/v1/workspaces/{ws}/billing/subscription"), key)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    response.body
}

async fn status_changes(app: &TestApp, ws: &WorkspaceId) -> Vec<Value> {
    let events = app.app.store.all_events().await.unwrap();
    events
        .into_iter()
        .filter(|e| e.kind == EventType::PlanStatusChanged && e.workspace_id.as_ref() == Some(ws))
        .map(|e| serde_json::from_str::<Value>(&e.event).unwrap()["data"].clone())
        .collect()
}

async fn run(
    app: &TestApp,
    key: &str,
    ws: &WorkspaceId,
    agent: &str,
) -> billing_tests::app::TestResponse {
    app.post(
        &format!("/v1/workspaces/{ws}/runs"),
        key,
        json!({"agent_id": agent, "agent_tier": "basic", "max_cost_cents": 10}),
    )
    .await
}

async fn usage(
    app: &TestApp,
    key: &str,
    ws: &WorkspaceId,
    event: &str,
    quantity: u64,
    agent: Option<&str>,
) -> billing_tests::app::TestResponse {
    app.post(
        &format!("/v1/workspaces/{ws}/usage-events"),
        key,
        json!({"event_id": event, "category": "actions", "quantity": quantity,
               "agent_id": agent, "agent_tier": "basic"}),
    )
    .await
}

async fn applied(app: &TestApp, ws: &WorkspaceId, trigger: Trigger) {
    match fire(&app.app, ws, trigger).await.unwrap() {
        Fired::Applied(_) => {}
        other => panic!("{trigger:?}: {other:?}"),
    }
}

#[tokio::test]
async fn a_short_trial_ends_in_readonly_when_the_sweep_finds_it() {
    let app = spawn_app_with(|c| c.trial_secs = Some(60)).await;
    let (key, _, ws) = trial(&app).await;
    let view = subscription(&app, &key, &ws).await;
    assert_eq!(view["status"], "trialing");
    assert_eq!(view["plan_status"], "trial");
    assert!(view["trial_ends_at"].is_string());
    assert_eq!(sweep(&app).await, 0, "not due yet");
    app.clock.advance(Duration::seconds(59));
    assert_eq!(sweep(&app).await, 0, "one second early");
    app.clock.advance(Duration::seconds(1));
    assert_eq!(sweep(&app).await, 1);
    assert_eq!(sweep(&app).await, 0, "applied once");
    let billing = status(&app, &key, &ws).await;
    assert_eq!(billing["plan_status"], "readonly");
    assert_eq!(billing["can_run_agents"], true, "existing agents only");
    assert_eq!(billing["can_deploy"], false);
    let view = subscription(&app, &key, &ws).await;
    assert_eq!(view["status"], Value::Null, "readonly has no subscription");
    assert_eq!(view["trial_ends_at"], Value::Null);
    assert!(view["grace_ends_at"].is_string());
    let changes = status_changes(&app, &ws).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (
            &changes[0]["from"],
            &changes[0]["to"],
            &changes[0]["trigger"]
        ),
        (&json!("trial"), &json!("readonly"), &json!("trial_ended"))
    );
    // The grace passes without a payment method: deleted.
    app.clock.advance(Duration::days(30));
    assert_eq!(sweep(&app).await, 1);
    assert_eq!(status(&app, &key, &ws).await["plan_status"], "deleted");
}

/// The deadline index partition the workspace is under, if it waits for a date.
async fn deadline_partition(app: &TestApp, ws: &WorkspaceId) -> Option<String> {
    let pk = keys::workspace(ws.as_str());
    app.due_partition(&pk, keys::WORKSPACE_SK, DueIndex::Deadlines)
        .await
}

#[tokio::test]
async fn the_sweep_finds_deadlines_in_every_shard_and_under_the_unsharded_key() {
    let app = spawn_app_with(|c| c.trial_secs = Some(60)).await;
    let (key, _, first) = trial(&app).await;
    let mut trials = vec![first];
    for i in 1..8 {
        app.clock.advance(Duration::seconds(1));
        let ws = app.create_workspace(&key, &format!("Agents {i}")).await;
        trials.push(WorkspaceId::parse(&ws).unwrap());
    }
    let waiting: Vec<_> = trials
        .iter()
        .map(|ws| (keys::workspace(ws.as_str()), keys::WORKSPACE_SK.to_owned()))
        .collect();
    let shards = app.due_partitions(&waiting, DueIndex::Deadlines).await;
    assert!(shards.len() >= 3, "8 trials in {shards:?}");
    // The earliest as a workspace indexed before the index was sharded.
    let old = &trials[0];
    app.move_to_legacy_partition(
        &keys::workspace(old.as_str()),
        keys::WORKSPACE_SK,
        DueIndex::Deadlines,
    )
    .await;

    app.clock.advance(Duration::seconds(60));
    let now = time::OffsetDateTime::from_unix_timestamp(app.clock_now()).unwrap();
    let earliest = app.app.store.due_workspaces(now, 3).await.unwrap();
    assert_eq!(earliest, trials[..3], "earliest first, at most the limit");
    assert_eq!(sweep(&app).await, trials.len());
    assert_eq!(sweep(&app).await, 0, "applied once");
    for ws in &trials {
        assert_eq!(status(&app, &key, ws).await["plan_status"], "readonly");
    }
    // Its next deadline (the grace's end) is written to its shard.
    assert_eq!(
        deadline_partition(&app, old).await,
        Some(DueIndex::Deadlines.partition(old.as_str()))
    );
}

#[tokio::test]
async fn the_sweep_and_the_schedule_racing_apply_one_transition() {
    let app = spawn().await;
    let (key, _, ws) = trial(&app).await;
    app.clock.advance(Duration::days(30));
    let deadline = json!({"workspace_id": ws, "trigger": "trial_ended",
                          "due_at": "2026-01-01T00:00:00Z", "version": 1});
    let handled = race_sweep_and_schedule(&app, &deadline, 8).await;
    assert_eq!(handled, 1, "one transition, whoever fired first");
    assert_eq!(status_changes(&app, &ws).await.len(), 1);
    assert_eq!(status(&app, &key, &ws).await["plan_status"], "readonly");
    // A late schedule for a deadline already applied is ignored, not an error.
    assert_eq!(run_job(&app, "lifecycle-transition", deadline).await, 0);
}

#[tokio::test]
async fn the_thousandth_action_ends_the_trial() {
    let app = spawn().await;
    let (key, _, ws) = trial(&app).await;
    assert_eq!(
        usage(&app, &key, &ws, "a", 999, Some("scout")).await.status,
        StatusCode::CREATED
    );
    let billing = status(&app, &key, &ws).await;
    assert_eq!(
        (&billing["plan_status"], &billing["actions_used"]),
        (&json!("trial"), &json!(999))
    );
    assert_eq!(billing["actions_limit"], 1000);
    assert_eq!(
        usage(&app, &key, &ws, "b", 1, Some("scout")).await.status,
        StatusCode::CREATED
    );
    let billing = status(&app, &key, &ws).await;
    assert_eq!(billing["plan_status"], "readonly");
    let changes = status_changes(&app, &ws).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["trigger"], "trial_actions_used");
}

#[tokio::test]
async fn actions_reported_by_runs_count_toward_the_trial() {
    let app = spawn().await;
    let (key, _, ws) = trial(&app).await;
    let authorized = run(&app, &key, &ws, "builder").await;
    assert_eq!(
        authorized.status,
        StatusCode::CREATED,
        "{:?}",
        authorized.body
    );
    let run_id = authorized.body["run_id"].as_str().unwrap();
    let completed = app
        .post(
            &format!("/v1/workspaces/{ws}/runs/{run_id}/complete"),
            &key,
            json!({"actions": 1000}),
        )
        .await;
    assert_eq!(completed.status, StatusCode::OK, "{:?}", completed.body);
    assert_eq!(status(&app, &key, &ws).await["plan_status"], "readonly");
}

#[tokio::test]
async fn readonly_runs_only_agents_that_ran_before() {
    let app = spawn().await;
    let (key, _, ws) = trial(&app).await;
    let veteran = run(&app, &key, &ws, "veteran").await;
    assert_eq!(veteran.status, StatusCode::CREATED);
    assert_eq!(
        usage(&app, &key, &ws, "old", 1, Some("metered"))
            .await
            .status,
        StatusCode::CREATED
    );
    app.clock.advance(Duration::days(31));
    assert_eq!(sweep(&app).await, 1);
    assert_eq!(status(&app, &key, &ws).await["plan_status"], "readonly");
    // The first run's hold expired long ago; readonly's tier allows two open runs.
    assert_eq!(run_job(&app, "runs-expire", Value::Null).await, 1);

    let newcomer = run(&app, &key, &ws, "newcomer").await;
    assert_eq!(newcomer.status, StatusCode::FORBIDDEN);
    assert_eq!(newcomer.error_code(), "plan_readonly");
    assert_eq!(
        run(&app, &key, &ws, "veteran").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        run(&app, &key, &ws, "metered").await.status,
        StatusCode::CREATED
    );
    let unknown = usage(&app, &key, &ws, "new", 1, Some("newcomer")).await;
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (StatusCode::FORBIDDEN, "plan_readonly")
    );
    let anonymous = usage(&app, &key, &ws, "anon", 1, None).await;
    assert_eq!(anonymous.error_code(), "plan_readonly");
    assert_eq!(
        usage(&app, &key, &ws, "known", 1, Some("veteran"))
            .await
            .status,
        StatusCode::CREATED
    );
}

/// Saves `method` as the workspace's card (a trial moves to promo and starts the subscription).
async fn attach(app: &TestApp, key: &str, ws: &WorkspaceId, method: &str) -> Value {
    let response = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/payment-method"),
            key,
            json!({"payment_method_id": method}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    response.body
}

async fn invoices(app: &TestApp, key: &str, ws: &WorkspaceId) -> Vec<Value> {
    let page = app
        .get(&format!("/v1/workspaces/{ws}/billing/invoices"), key)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    page.body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn invoices_move_the_status_and_it_decides_what_runs() {
    let app = spawn().await;
    let (key, _, ws) = trial(&app).await;
    assert_eq!(
        attach(&app, &key, &ws, "pm_card_visa").await["status"],
        "promo"
    );
    let view = subscription(&app, &key, &ws).await;
    assert_eq!(
        (&view["plan_status"], &view["status"]),
        (&json!("promo"), &json!("trialing"))
    );
    assert!(view["promo_ends_at"].is_string() && view["renews_at"].is_string());
    assert_eq!(status(&app, &key, &ws).await["has_payment_method"], true);

    // The promo's end is invoiced at the plan price and charged: active.
    app.clock.advance(Duration::days(92));
    assert_eq!(sweep(&app).await, 1);
    assert_eq!(subscription(&app, &key, &ws).await["plan_status"], "active");
    let billed = invoices(&app, &key, &ws).await;
    assert_eq!(billed.len(), 1, "{billed:?}");
    assert_eq!(
        (&billed[0]["status"], &billed[0]["amount_due_cents"]),
        (&json!("paid"), &json!(1900))
    );

    // A card that declines every charge: the next period's invoice fails, suspended.
    attach(&app, &key, &ws, "pm_card_chargeCustomerFail").await;
    app.clock.advance(Duration::days(31));
    assert_eq!(sweep(&app).await, 1);
    let suspended = run(&app, &key, &ws, "any").await;
    assert_eq!(
        (suspended.status, suspended.error_code()),
        (StatusCode::FORBIDDEN, "plan_suspended")
    );
    let event = usage(&app, &key, &ws, "e1", 1, Some("any")).await;
    assert_eq!(event.error_code(), "plan_suspended");
    assert_eq!(subscription(&app, &key, &ws).await["status"], "past_due");
    let billing = status(&app, &key, &ws).await;
    assert_eq!(
        (&billing["can_run_agents"], &billing["can_deploy"]),
        (&json!(false), &json!(false))
    );

    // Fixing the card pays the open invoice: active again.
    assert_eq!(
        attach(&app, &key, &ws, "pm_card_visa").await["status"],
        "active"
    );
    assert_eq!(
        run(&app, &key, &ws, "any").await.status,
        StatusCode::CREATED
    );
    let billed = invoices(&app, &key, &ws).await;
    assert_eq!(billed.len(), 2, "{billed:?}");
    assert!(billed.iter().all(|i| i["status"] == "paid"), "{billed:?}");

    // Canceled: active until the period ends, then deleted.
    applied(&app, &ws, Trigger::CanceledAtPeriodEnd).await;
    let cancellation = app
        .get(
            &format!("/v1/workspaces/{ws}/billing/subscription/cancellation"),
            &key,
        )
        .await
        .body;
    assert_eq!(cancellation["cancel_at_period_end"], true);
    let ends = subscription(&app, &key, &ws).await;
    assert_eq!(cancellation["cancels_at"], ends["current_period_end"]);
    assert_eq!(ends["renews_at"], Value::Null);
    assert_eq!(ends["plan_status"], "active");
    app.clock.advance(Duration::days(31));
    assert_eq!(sweep(&app).await, 1);

    // Deleted answers consistently: the workspace is there, nothing runs (402 plan_inactive).
    let workspace = app.get(&format!("/v1/workspaces/{ws}"), &key).await;
    assert_eq!(workspace.body["plan_status"], "deleted");
    let gone = run(&app, &key, &ws, "any").await;
    assert_eq!(
        (gone.status, gone.error_code()),
        (StatusCode::PAYMENT_REQUIRED, "plan_inactive")
    );
    assert_eq!(
        usage(&app, &key, &ws, "e2", 1, Some("any"))
            .await
            .error_code(),
        "plan_inactive"
    );
    assert_eq!(subscription(&app, &key, &ws).await["status"], "canceled");
    assert_eq!(
        invoices(&app, &key, &ws).await.len(),
        2,
        "a canceled period is not billed"
    );
    let tos: Vec<Value> = status_changes(&app, &ws)
        .await
        .into_iter()
        .map(|c| c["to"].clone())
        .collect();
    assert_eq!(
        tos,
        [
            json!("promo"),
            json!("active"),
            json!("suspended"),
            json!("active"),
            json!("deleted")
        ]
    );
}

async fn transactions(app: &TestApp, key: &str, account: &str, kind: &str) -> Vec<Value> {
    let page = app
        .get(
            &format!("/v1/billing-accounts/{account}/transactions?type={kind}&limit=100"),
            key,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    page.body["data"].as_array().unwrap().clone()
}

async fn balance(app: &TestApp, key: &str, account: &str) -> i64 {
    app.get(&format!("/v1/billing-accounts/{account}/balance"), key)
        .await
        .body["balance_cents"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn each_paid_period_grants_the_included_credit_once_and_expires_the_unused_rest() {
    let app = spawn().await;
    let (key, account, ws) = trial(&app).await;
    attach(&app, &key, &ws, "pm_card_visa").await;
    // The promo grants nothing (the plan is not paid yet).
    assert_eq!(balance(&app, &key, &account).await, 10_000);
    assert!(transactions(&app, &key, &account, "plan_credit")
        .await
        .is_empty());
    app.clock.advance(Duration::days(92));
    assert_eq!(sweep(&app).await, 1);
    // The first paid period: Pro includes 500 cents.
    assert_eq!(balance(&app, &key, &account).await, 10_500);
    let credits = app
        .get(&format!("/v1/workspaces/{ws}/billing/credits"), &key)
        .await
        .body;
    assert_eq!(credits["included_credits_cents"], 500);
    // 1000 basic actions cost 100 cents, taken from the included credit first.
    assert_eq!(
        usage(&app, &key, &ws, "spend", 1000, Some("a"))
            .await
            .status,
        StatusCode::CREATED
    );
    let credits = app
        .get(&format!("/v1/workspaces/{ws}/billing/credits"), &key)
        .await
        .body;
    assert_eq!(credits["included_credits_cents"], 400);

    // The period ends; the sweep and the schedule race to bill the next one.
    app.clock.advance(Duration::days(31));
    let deadline = json!({"workspace_id": ws, "trigger": "invoice_due",
                          "due_at": "2026-01-01T00:00:00Z", "version": 3});
    let handled = race_sweep_and_schedule(&app, &deadline, 6).await;
    assert_eq!(handled, 1);
    assert_eq!(invoices(&app, &key, &ws).await.len(), 2);
    let grants = transactions(&app, &key, &account, "plan_credit").await;
    let expiries = transactions(&app, &key, &account, "expiry").await;
    assert_eq!(grants.len(), 2, "one grant per paid period: {grants:?}");
    assert_eq!(expiries.len(), 1, "{expiries:?}");
    assert_eq!(expiries[0]["amount_cents"], -400);
    assert_eq!(
        balance(&app, &key, &account).await,
        10_500 - 100 - 400 + 500
    );
    let credits = app
        .get(&format!("/v1/workspaces/{ws}/billing/credits"), &key)
        .await
        .body;
    assert_eq!(credits["included_credits_cents"], 500);
    // The ledger still sums to the balance.
    let all = transactions(&app, &key, &account, "grant").await.len()
        + grants.len()
        + expiries.len()
        + transactions(&app, &key, &account, "usage").await.len();
    assert_eq!(all, 5);
}

#[tokio::test]
async fn illegal_and_early_triggers_change_nothing() {
    let app = spawn().await;
    let (key, _, ws) = trial(&app).await;
    for trigger in [
        Trigger::PromoEnded,
        Trigger::InvoiceFailed(billing_core::domain::lifecycle::BilledPeriod {
            start: time::OffsetDateTime::UNIX_EPOCH,
            end: time::OffsetDateTime::UNIX_EPOCH,
        }),
        Trigger::GraceEnded,
        Trigger::TrialEnded,
    ] {
        assert!(
            matches!(
                fire(&app.app, &ws, trigger).await.unwrap(),
                Fired::Refused(_)
            ),
            "{trigger:?}"
        );
    }
    assert_eq!(status(&app, &key, &ws).await["plan_status"], "trial");
    assert!(status_changes(&app, &ws).await.is_empty());
}
