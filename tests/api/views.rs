//! The billing views (status, credits, summaries, usage, daily usage, overview, limits, plans)
//! against what was charged, through the HTTP API against DynamoDB Local.

use billing_core::clock::Clock;
use billing_core::domain::usage::{format_date, Period};
use billing_tests::app::{spawn_app_with, TestApp};
use http::StatusCode;
use serde_json::{json, Value};
use time::{Date, Duration};

/// An app whose clock reads 12:00 UTC on the 10th of next month (so "yesterday" and "eight days
/// ago" are in the same month), a user with `credit` cents and a key, and a workspace.
/// Returns the app, the account, the key, the workspace and today.
async fn on_the_tenth(credit: i64) -> (TestApp, String, String, String, Date) {
    let app = spawn_app_with(|c| c.intro_credit_cents = credit).await;
    let now = app.clock.now();
    let next_month = Period::month_of(now.date()).end + Duration::days(1);
    let target = next_month
        .replace_day(10)
        .unwrap()
        .with_hms(12, 0, 0)
        .unwrap()
        .assume_utc();
    app.clock.advance(target - now);
    let (_, account, key) = app.user_with_key("viewer").await;
    let workspace = app.create_workspace(&key, "Agents").await;
    (app, account, key, workspace, target.date())
}

fn day(date: Date) -> String {
    format_date(date)
}

/// Records a usage event at the basic tier (an action costs 0.1 cent, so 10 actions are a cent).
async fn usage(app: &TestApp, key: &str, workspace: &str, event: Value) -> StatusCode {
    let mut event = event;
    event["agent_tier"] = json!("basic");
    let recorded = app
        .post(
            &format!("/v1/workspaces/{workspace}/usage-events"),
            key,
            event,
        )
        .await;
    assert!(
        recorded.status.is_success() || recorded.status == StatusCode::PAYMENT_REQUIRED,
        "{:?}",
        recorded.body
    );
    recorded.status
}

async fn view(app: &TestApp, key: &str, path: &str) -> Value {
    let answer = app.get(path, key).await;
    assert_eq!(answer.status, StatusCode::OK, "{path}: {:?}", answer.body);
    answer.body
}

/// A run of `agent` at the basic tier that reports `actions` and completes.
async fn run(app: &TestApp, key: &str, workspace: &str, agent: &str, actions: u64) {
    let authorized = app
        .post(
            &format!("/v1/workspaces/{workspace}/runs"),
            key,
            json!({"agent_id": agent, "agent_tier": "basic", "max_cost_cents": 100}),
        )
        .await;
    assert_eq!(
        authorized.status,
        StatusCode::CREATED,
        "{:?}",
        authorized.body
    );
    let run = authorized.body["run_id"].as_str().unwrap();
    let completed = app
        .post(
            &format!("/v1/workspaces/{workspace}/runs/{run}/complete"),
            key,
            json!({"actions": actions}),
        )
        .await;
    assert_eq!(completed.status, StatusCode::OK, "{:?}", completed.body);
}

/// The workspace's usage transactions this test made, summed (negative: debits).
async fn usage_debits(app: &TestApp, key: &str, workspace: &str) -> i64 {
    let page = view(
        app,
        key,
        &format!("/v1/workspaces/{workspace}/billing/transactions?type=usage&limit=100"),
    )
    .await;
    assert_eq!(page["has_more"], false);
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount_cents"].as_i64().unwrap())
        .sum()
}

#[tokio::test]
async fn usage_by_day_and_by_agent_adds_up_to_what_was_charged() {
    let (app, _, key, ws, today) = on_the_tenth(10_000).await;
    let yesterday = today - Duration::days(1);
    let at_yesterday = format!("{}T09:00:00Z", day(yesterday));
    for event in [
        json!({"event_id": "w1", "category": "actions", "quantity": 50, "agent_id": "writer", "occurred_at": at_yesterday}),
        json!({"event_id": "r1", "category": "actions", "quantity": 30, "agent_id": "reviewer", "occurred_at": at_yesterday}),
        json!({"event_id": "w2", "category": "actions", "quantity": 20, "agent_id": "writer"}),
        json!({"event_id": "n1", "category": "actions", "quantity": 10}),
        json!({"event_id": "t1", "category": "input_tokens", "quantity": 1000, "agent_id": "writer"}),
    ] {
        assert!(usage(&app, &key, &ws, event).await.is_success());
    }
    // A run's settled actions count too: 50 actions, 5 cents, for the reviewer, today.
    run(&app, &key, &ws, "reviewer", 50).await;

    let base = format!("/v1/workspaces/{ws}/billing/usage?category=actions");
    let plain = view(&app, &key, &base).await;
    assert_eq!(plain["category"], "actions");
    assert_eq!(plain["quantity"], 160);
    assert_eq!(plain["cost_cents"], 16);
    assert_eq!(plain["groups"], json!([]), "no groups without group_by");
    let month = Period::month_of(today);
    assert_eq!(plain["period_start"], day(month.start));
    assert_eq!(plain["period_end"], day(month.end));

    let by_day = view(&app, &key, &format!("{base}&group_by=day")).await;
    assert_eq!(
        by_day["groups"],
        json!([
            {"key": day(today), "quantity": 80, "cost_cents": 8},
            {"key": day(yesterday), "quantity": 80, "cost_cents": 8},
        ])
    );
    let by_agent = view(&app, &key, &format!("{base}&group_by=agent")).await;
    assert_eq!(
        by_agent["groups"],
        json!([
            {"key": "reviewer", "quantity": 80, "cost_cents": 8},
            {"key": "writer", "quantity": 70, "cost_cents": 7},
            {"key": null, "quantity": 10, "cost_cents": 1},
        ])
    );
    let only_yesterday = view(
        &app,
        &key,
        &format!(
            "{base}&period_start={0}&period_end={0}&group_by=agent",
            day(yesterday)
        ),
    )
    .await;
    assert_eq!(only_yesterday["quantity"], 80);
    assert_eq!(only_yesterday["groups"].as_array().unwrap().len(), 2);

    // Every category's cost adds up to what the ledger debited.
    let tokens = view(
        &app,
        &key,
        &format!("/v1/workspaces/{ws}/billing/usage?category=input_tokens"),
    )
    .await;
    assert_eq!(
        (tokens["quantity"].as_i64(), tokens["cost_cents"].as_i64()),
        (Some(1000), Some(1))
    );
    assert_eq!(usage_debits(&app, &key, &ws).await, -17);
}

#[tokio::test]
async fn the_daily_view_is_zero_filled_and_newest_first() {
    let (app, _, key, ws, today) = on_the_tenth(10_000).await;
    let two_days_ago = today - Duration::days(2);
    usage(
        &app,
        &key,
        &ws,
        json!({"event_id": "a", "category": "actions", "quantity": 30}),
    )
    .await;
    usage(
        &app,
        &key,
        &ws,
        json!({"event_id": "b", "category": "actions", "quantity": 15, "agent_id": "x",
        "occurred_at": format!("{}T23:59:59Z", day(two_days_ago))}),
    )
    .await;
    usage(
        &app,
        &key,
        &ws,
        json!({"event_id": "c", "category": "api_calls", "quantity": 4}),
    )
    .await;

    let daily = view(
        &app,
        &key,
        &format!("/v1/workspaces/{ws}/billing/usage/daily?days=4"),
    )
    .await;
    assert_eq!(
        daily,
        json!([
            {"date": day(today), "count": 30, "cost_cents": 3},
            {"date": day(today - Duration::days(1)), "count": 0, "cost_cents": 0},
            {"date": day(two_days_ago), "count": 15, "cost_cents": 2},
            {"date": day(today - Duration::days(3)), "count": 0, "cost_cents": 0},
        ])
    );
    let default = view(
        &app,
        &key,
        &format!("/v1/workspaces/{ws}/billing/usage/daily"),
    )
    .await;
    let default = default.as_array().unwrap();
    assert_eq!(default.len(), 30, "30 days by default");
    assert_eq!(default[0]["date"], day(today));
    assert_eq!(default[29]["date"], day(today - Duration::days(29)));
    let calls = view(
        &app,
        &key,
        &format!("/v1/workspaces/{ws}/billing/usage/daily?days=1&category=api_calls"),
    )
    .await;
    assert_eq!(
        calls,
        json!([{"date": day(today), "count": 4, "cost_cents": 1}])
    );

    // A day later, the new day leads with nothing used yet.
    app.clock.advance(Duration::days(1));
    let later = view(
        &app,
        &key,
        &format!("/v1/workspaces/{ws}/billing/usage/daily?days=2"),
    )
    .await;
    assert_eq!(
        later,
        json!([
            {"date": day(today + Duration::days(1)), "count": 0, "cost_cents": 0},
            {"date": day(today), "count": 30, "cost_cents": 3},
        ])
    );
}

#[tokio::test]
async fn summaries_match_the_ledger_for_the_account_and_each_workspace() {
    let (app, account, key, first, today) = on_the_tenth(1000).await;
    // Ids are ordered by the (frozen) clock's milliseconds: make the second one newer.
    app.clock.advance(Duration::seconds(1));
    let second = app.create_workspace(&key, "More agents").await;
    usage(
        &app,
        &key,
        &first,
        json!({"event_id": "a", "category": "actions", "quantity": 120, "agent_id": "a"}),
    )
    .await;
    usage(
        &app,
        &key,
        &first,
        json!({"event_id": "b", "category": "output_tokens", "quantity": 1000}),
    )
    .await;
    usage(
        &app,
        &key,
        &second,
        json!({"event_id": "c", "category": "actions", "quantity": 40}),
    )
    .await;
    run(&app, &key, &second, "b", 30).await;
    let granted = app
        .post(
            &format!("/v1/workspaces/{second}/billing/credits"),
            &app.service_key,
            json!({"amount_cents": 250, "type": "grant", "reason": "sorry"}),
        )
        .await;
    assert_eq!(granted.status, StatusCode::CREATED);
    // Spent: first 12 + 1 (1000 output tokens at 150 µ¢), second 4 + 3.
    let (first_spent, second_spent) = (13, 7);
    assert_eq!(usage_debits(&app, &key, &first).await, -first_spent);
    assert_eq!(usage_debits(&app, &key, &second).await, -second_spent);
    let balance = 1000 - first_spent - second_spent + 250;
    let month = Period::month_of(today);

    let summary = view(
        &app,
        &key,
        &format!("/v1/billing-accounts/{account}/summary"),
    )
    .await;
    assert_eq!(summary["billing_account_id"], account.as_str());
    assert_eq!(summary["balance_cents"], balance);
    assert_eq!(summary["available_cents"], balance);
    assert_eq!(summary["held_cents"], 0);
    assert_eq!(summary["currency"], "usd");
    assert_eq!(summary["period_start"], day(month.start));
    assert_eq!(summary["period_end"], day(month.end));
    assert_eq!(summary["spent_cents"], first_spent + second_spent);
    assert_eq!(
        summary["credited_cents"],
        1000 + 250,
        "the introductory grant and the grant"
    );
    assert_eq!(
        summary["by_category"]["actions"],
        json!({"quantity": 190, "cost_cents": 19})
    );
    assert_eq!(
        summary["by_category"]["output_tokens"],
        json!({"quantity": 1000, "cost_cents": 1})
    );
    assert_eq!(
        summary["by_category"]["api_calls"],
        json!({"quantity": 0, "cost_cents": 0})
    );
    let by_category_cost: i64 = summary["by_category"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["cost_cents"].as_i64().unwrap())
        .sum();
    assert_eq!(by_category_cost, first_spent + second_spent);
    assert_eq!(
        summary["linked_workspace_ids"],
        json!([second, first]),
        "newest first"
    );
    assert_eq!(
        (
            summary["soft_cap_reached"].as_bool(),
            summary["hard_cap_reached"].as_bool()
        ),
        (Some(false), Some(false))
    );

    let first_summary = view(
        &app,
        &key,
        &format!("/v1/workspaces/{first}/billing/summary"),
    )
    .await;
    assert_eq!(first_summary["billing_account_id"], account.as_str());
    assert_eq!(
        first_summary["balance_cents"], balance,
        "the default account's balance"
    );
    assert_eq!(first_summary["spent_cents"], first_spent);
    assert_eq!(first_summary["credited_cents"], 0);
    assert_eq!(
        first_summary["by_category"]["actions"],
        json!({"quantity": 120, "cost_cents": 12})
    );
    assert_eq!(first_summary["linked_workspace_ids"], json!([first]));
    let second_summary = view(
        &app,
        &key,
        &format!("/v1/workspaces/{second}/billing/summary"),
    )
    .await;
    assert_eq!(second_summary["spent_cents"], second_spent);
    assert_eq!(second_summary["credited_cents"], 250);
    assert_eq!(
        second_summary["by_category"]["actions"],
        json!({"quantity": 70, "cost_cents": 7})
    );

    // Next month starts with nothing spent, and the balance carries over.
    app.clock.advance(Duration::days(31));
    let next = view(
        &app,
        &key,
        &format!("/v1/billing-accounts/{account}/summary"),
    )
    .await;
    assert_eq!(next["spent_cents"], 0);
    assert_eq!(next["credited_cents"], 0);
    assert_eq!(
        next["by_category"]["actions"],
        json!({"quantity": 0, "cost_cents": 0})
    );
    assert_eq!(next["balance_cents"], balance);
}

#[tokio::test]
async fn a_backdated_event_from_last_month_counts_against_this_months_spend_and_caps() {
    let (app, account, key, ws, today) = on_the_tenth(1000).await;
    let last_month = format!("{}T12:00:00Z", day(today - Duration::days(15)));
    usage(
        &app,
        &key,
        &ws,
        json!({"event_id": "now", "category": "actions", "quantity": 50}),
    )
    .await;
    let capped = app
        .patch(
            &format!("/v1/workspaces/{ws}/billing"),
            &key,
            json!({"hard_cap_cents": 7}),
        )
        .await;
    assert_eq!(capped.status, StatusCode::OK);
    let over = usage(&app, &key, &ws, json!({"event_id": "old", "category": "actions", "quantity": 30, "occurred_at": last_month})).await;
    assert_eq!(
        over,
        StatusCode::PAYMENT_REQUIRED,
        "5 spent + 3 would cross the cap of 7"
    );
    let fits = usage(&app, &key, &ws, json!({"event_id": "old-2", "category": "actions", "quantity": 20, "occurred_at": last_month})).await;
    assert_eq!(fits, StatusCode::CREATED);

    let summary = view(&app, &key, &format!("/v1/workspaces/{ws}/billing/summary")).await;
    assert_eq!(summary["spent_cents"], 7, "both debits count this month");
    assert_eq!(
        summary["by_category"]["actions"],
        json!({"quantity": 70, "cost_cents": 7}),
        "the month's usage by category is what was charged this month, like its spend"
    );
    assert_eq!(summary["hard_cap_reached"], true);
    let account_summary = view(
        &app,
        &key,
        &format!("/v1/billing-accounts/{account}/summary"),
    )
    .await;
    assert_eq!(account_summary["spent_cents"], 7);
}

#[tokio::test]
async fn status_and_limits_show_the_trial_and_this_months_counters() {
    let (app, _, key, ws, today) = on_the_tenth(10_000).await;
    for event in [
        json!({"event_id": "a", "category": "api_calls", "quantity": 100}),
        json!({"event_id": "b", "category": "agent_invocations", "quantity": 7}),
        json!({"event_id": "c", "category": "actions", "quantity": 25}),
    ] {
        usage(&app, &key, &ws, event).await;
    }
    let month = Period::month_of(today);
    let status = view(&app, &key, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!(status["workspace_id"], ws.as_str());
    assert_eq!(status["plan"], json!({"id": "pro", "name": "Pro"}));
    assert_eq!(status["plan_status"], "trial");
    assert_eq!(status["subscription_status"], "trialing");
    assert_eq!(status["actions_used"], 25);
    assert_eq!(status["actions_limit"], 1000);
    assert_eq!(status["period_start"], day(month.start));
    assert_eq!(status["period_end"], day(month.end));
    assert_eq!(status["days_remaining"], month.days() - 9);
    assert_eq!(status["has_payment_method"], false);
    // 100 API calls cost 1 cent, invocations are free at the basic tier, 25 actions 3 cents.
    assert_eq!(status["balance_cents"], 10_000 - 4);
    assert_eq!(status["available_cents"], 10_000 - 4);
    // Included plan credit arrives with the first billing period (a payment method starts the
    // promo); a trial has none.
    assert_eq!(status["included_credits_cents"], 0);
    assert_eq!(
        (
            status["soft_cap_cents"].clone(),
            status["hard_cap_cents"].clone()
        ),
        (Value::Null, Value::Null)
    );
    assert_eq!(
        (
            status["can_run_agents"].as_bool(),
            status["can_deploy"].as_bool()
        ),
        (Some(true), Some(true))
    );

    let limits = view(&app, &key, &format!("/v1/workspaces/{ws}/billing/limits")).await;
    assert_eq!(
        limits,
        json!({"plan_id": "pro", "limits": [
            {"metric": "api_calls", "used": 100, "limit": 10_000, "remaining": 9_900},
            {"metric": "agent_invocations", "used": 7, "limit": 1_000, "remaining": 993},
            {"metric": "actions", "used": 25, "limit": 1_000, "remaining": 975},
        ]})
    );

    // Next month: the monthly limits start again, the trial's actions do not.
    app.clock.advance(Duration::days(25));
    usage(
        &app,
        &key,
        &ws,
        json!({"event_id": "d", "category": "actions", "quantity": 5}),
    )
    .await;
    let limits = view(&app, &key, &format!("/v1/workspaces/{ws}/billing/limits")).await;
    assert_eq!(limits["limits"][0]["used"], 0);
    assert_eq!(
        limits["limits"][2],
        json!({"metric": "actions", "used": 30, "limit": 1000, "remaining": 970})
    );
    let status = view(&app, &key, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!(status["actions_used"], 30);
    assert_ne!(status["period_start"], day(month.start));
}

#[tokio::test]
async fn credits_show_holds_and_which_caps_are_reached() {
    let (app, account, key, ws, _) = on_the_tenth(1000).await;
    let capped = app
        .patch(
            &format!("/v1/workspaces/{ws}/billing"),
            &key,
            json!({"soft_cap_cents": 5, "hard_cap_cents": 20}),
        )
        .await;
    assert_eq!(capped.status, StatusCode::OK);
    usage(
        &app,
        &key,
        &ws,
        json!({"event_id": "a", "category": "actions", "quantity": 60}),
    )
    .await;
    let path = format!("/v1/workspaces/{ws}/billing/credits");
    let credits = view(&app, &key, &path).await;
    assert_eq!(
        credits,
        json!({
            "balance_cents": 994, "available_cents": 994, "held_cents": 0,
            "included_credits_cents": 0, "period_usage_cents": 6,
            "soft_cap_cents": 5, "hard_cap_cents": 20,
            "soft_cap_reached": true, "hard_cap_reached": false,
        })
    );
    // A hold of 14 brings spend plus holds to the hard cap.
    let held = app
        .post(
            &format!("/v1/workspaces/{ws}/runs"),
            &key,
            json!({"agent_id": "a", "agent_tier": "basic", "max_cost_cents": 14}),
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED);
    let credits = view(&app, &key, &path).await;
    assert_eq!(credits["held_cents"], 14);
    assert_eq!(credits["available_cents"], 980);
    assert_eq!(credits["hard_cap_reached"], true);
    let status = view(&app, &key, &format!("/v1/workspaces/{ws}/billing")).await;
    assert_eq!(status["hard_cap_reached"], true);
    assert_eq!(status["available_cents"], 980);

    // Without caps of its own, the workspace still reports its account's.
    app.patch(
        &format!("/v1/workspaces/{ws}/billing"),
        &key,
        json!({"soft_cap_cents": null, "hard_cap_cents": null}),
    )
    .await;
    let account_capped = app
        .patch(
            &format!("/v1/billing-accounts/{account}"),
            &key,
            json!({"soft_cap_cents": 6}),
        )
        .await;
    assert_eq!(account_capped.status, StatusCode::OK);
    let credits = view(&app, &key, &path).await;
    assert_eq!(credits["soft_cap_cents"], Value::Null);
    assert_eq!(credits["soft_cap_reached"], true);
    assert_eq!(credits["hard_cap_reached"], false);
}

#[tokio::test]
async fn the_overview_ranks_five_agents_and_projects_the_month_end() {
    let (app, _, key, ws, today) = on_the_tenth(10_000).await;
    for (i, agent) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        let quantity = 10 * (i as u64 + 1);
        usage(&app, &key, &ws, json!({"event_id": agent, "category": "actions", "quantity": quantity, "agent_id": agent})).await;
    }
    usage(
        &app,
        &key,
        &ws,
        json!({"event_id": "none", "category": "actions", "quantity": 100}),
    )
    .await;
    usage(
        &app,
        &key,
        &ws,
        json!({"event_id": "tok", "category": "input_tokens", "quantity": 40_000, "agent_id": "a"}),
    )
    .await;
    // Cost: agents 1…6 cents of actions, 10 without an agent, 2 of tokens for `a`.
    let spent = 21 + 10 + 2;
    let month = Period::month_of(today);
    let overview = view(
        &app,
        &key,
        &format!("/v1/workspaces/{ws}/billing/usage-overview"),
    )
    .await;
    assert_eq!(overview["workspace_id"], ws.as_str());
    assert_eq!(overview["period_start"], day(month.start));
    assert_eq!(overview["period_end"], day(month.end));
    assert_eq!(
        overview["by_category"]["actions"],
        json!({"quantity": 310, "cost_cents": 31})
    );
    assert_eq!(
        overview["by_category"]["input_tokens"],
        json!({"quantity": 40_000, "cost_cents": 2})
    );
    assert_eq!(
        overview["top_agents"],
        json!([
            {"agent_id": "f", "cost_cents": 6},
            {"agent_id": "e", "cost_cents": 5},
            {"agent_id": "d", "cost_cents": 4},
            {"agent_id": "a", "cost_cents": 3},
            {"agent_id": "c", "cost_cents": 3},
        ])
    );
    assert_eq!(overview["spent_cents"], spent);
    let days_in_month = month.days();
    assert_eq!(
        overview["projected_spend_cents"],
        (spent * days_in_month + 9) / 10,
        "spent × days in month ÷ 10 days elapsed, rounded up"
    );
}

#[tokio::test]
async fn plans_list_the_catalog_with_the_contracts_defaults() {
    let (app, _, key, _, _) = on_the_tenth(1000).await;
    let plans = view(&app, &key, "/v1/plans").await;
    let plans = plans.as_array().expect("a plain array");
    let ids: Vec<&str> = plans.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["free", "pro", "team", "enterprise"]);
    let [free, pro, team, enterprise] = [&plans[0], &plans[1], &plans[2], &plans[3]];
    assert_eq!(free["price_cents"], 0);
    assert_eq!(
        free["limits"],
        json!({"projects": 1, "api_calls": 1000, "agent_invocations": 50, "team_members": 1})
    );
    assert_eq!(
        free["features"],
        json!({"priority_support": false, "custom_agents": false, "policy_controls": false})
    );
    assert_eq!(free["sla"], Value::Null);
    assert_eq!(
        (
            pro["price_cents"].as_i64(),
            pro["per_seat"].as_bool(),
            pro["interval"].as_str()
        ),
        (Some(1900), Some(false), Some("month"))
    );
    assert_eq!(pro["limits"]["api_calls"], 10_000);
    assert_eq!(pro["features"]["priority_support"], true);
    assert_eq!(
        (team["price_cents"].as_i64(), team["per_seat"].as_bool()),
        (Some(4900), Some(true))
    );
    assert_eq!(team["limits"]["team_members"], Value::Null, "unlimited");
    assert_eq!(team["sla"], "99.9%");
    assert_eq!(enterprise["price_cents"], Value::Null, "custom");
    assert_eq!(
        enterprise["limits"],
        json!({"projects": null, "api_calls": null, "agent_invocations": null, "team_members": null})
    );
    assert_eq!(enterprise["sla"], "99.99%");
    for plan in plans {
        for field in ["name", "included_credits_cents", "rate_limit_tier"] {
            assert!(!plan[field].is_null(), "{} has {field}", plan["id"]);
        }
    }
    let unauthenticated = app.call(http::Method::GET, "/v1/plans").send().await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_query_parameters_answer_400_naming_the_parameter() {
    let (app, _, key, ws, today) = on_the_tenth(1000).await;
    let usage = format!("/v1/workspaces/{ws}/billing/usage");
    let daily = format!("/v1/workspaces/{ws}/billing/usage/daily");
    let year_later = day(today + Duration::days(366));
    for (path, mention) in [
        (usage.clone(), "category"),
        (format!("{usage}?category=colours"), "category"),
        (
            format!("{usage}?category=actions&period_start=2026-13-01"),
            "period_start",
        ),
        (
            format!("{usage}?category=actions&period_end=yesterday"),
            "period_end",
        ),
        (
            format!(
                "{usage}?category=actions&period_start={}&period_end={}",
                day(today),
                day(today - Duration::days(1))
            ),
            "period_start",
        ),
        (
            format!(
                "{usage}?category=actions&period_start={}&period_end={year_later}",
                day(today)
            ),
            "366",
        ),
        (
            format!("{usage}?category=actions&group_by=week"),
            "group_by",
        ),
        (format!("{usage}?category=actions&agent=x"), "agent"),
        (format!("{daily}?days=0"), "days"),
        (format!("{daily}?days=91"), "days"),
        (format!("{daily}?days=ten"), "days"),
        (format!("{daily}?category=colours"), "category"),
        (format!("/v1/workspaces/{ws}/billing?verbose=1"), "verbose"),
        (
            format!("/v1/workspaces/{ws}/billing/limits?month=2026-01"),
            "month",
        ),
    ] {
        let refused = app.get(&path, &key).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(refused.error_code(), "invalid_request");
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(mention), "{path}: {message}");
    }
    // The edges are accepted: 366 days, 90 days.
    let longest = format!(
        "{usage}?category=actions&period_start={}&period_end={}",
        day(today),
        day(today + Duration::days(365))
    );
    assert_eq!(view(&app, &key, &longest).await["quantity"], 0);
    let ninety = view(&app, &key, &format!("{daily}?days=90")).await;
    assert_eq!(ninety.as_array().unwrap().len(), 90);
}

#[tokio::test]
async fn another_users_workspace_and_account_answer_404_on_every_view() {
    let (app, account, key, ws, _) = on_the_tenth(1000).await;
    let (_, _, stranger) = app.user_with_key("stranger").await;
    let read_key = app
        .create_key(json!({"type": "workspace", "id": ws, "role": "read"}))
        .await;
    let paths = [
        format!("/v1/workspaces/{ws}/billing"),
        format!("/v1/workspaces/{ws}/billing/credits"),
        format!("/v1/workspaces/{ws}/billing/summary"),
        format!("/v1/workspaces/{ws}/billing/usage?category=actions"),
        format!("/v1/workspaces/{ws}/billing/usage/daily"),
        format!("/v1/workspaces/{ws}/billing/usage-overview"),
        format!("/v1/workspaces/{ws}/billing/limits"),
        format!("/v1/billing-accounts/{account}/summary"),
    ];
    for path in &paths {
        let hidden = app.get(path, &stranger).await;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(hidden.error_code(), "not_found");
        for allowed in [&key, &read_key, &app.service_key] {
            view(&app, allowed, path).await;
        }
    }
    let unknown = app
        .get("/v1/workspaces/ws_00000000000000000000000000/billing", &key)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
