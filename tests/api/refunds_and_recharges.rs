//! Refunds whatever the delivery order (one that arrives before its purchase is taken back when
//! the credit lands, once), a refund lowering lifetime paid by all of it, and auto-recharges:
//! only spending starts one, and one given up has its payment canceled and, if that payment
//! succeeds anyway, still counts against the month's limit.

use super::payments::{
    balance, checkout, customer, event, save_card, send, session_completed, spawn, transactions,
    workspace, SECRET,
};
use billing_core::config::{PaymentsConfig, StripeKeys};
use billing_core::domain::ids::BillingAccountId;
use billing_core::store::keys::{self, DueIndex};
use billing_tests::app::{spawn_app_with, TestApp};
use billing_tests::fake_stripe::{FakeStripe, NextPayment, PUBLISHABLE_KEY, SECRET_KEY};
use futures::future::join_all;
use http::StatusCode;
use serde_json::{json, Value};

/// Stripe's `charge.refunded`: `total` is the charge's refunded running total.
fn refunded(
    app: &TestApp,
    id: &str,
    customer: &str,
    charge: &str,
    payment: &str,
    total: i64,
) -> Value {
    event(
        id,
        "charge.refunded",
        app.clock_now(),
        json!({"id": charge, "object": "charge", "customer": customer, "payment_intent": payment,
               "amount_refunded": total, "refunded": false}),
    )
}

/// Spends `cents` now through a usage event (basic input tokens cost 1 cent per 20,000).
async fn spend(app: &TestApp, key: &str, ws: &str, event_id: &str, cents: i64) {
    let debited = app
        .post(
            &format!("/v1/workspaces/{ws}/usage-events"),
            key,
            json!({"event_id": event_id, "category": "input_tokens", "quantity": cents * 20_000,
                   "agent_tier": "basic"}),
        )
        .await;
    assert_eq!(debited.status, StatusCode::CREATED, "{:?}", debited.body);
    assert_eq!(debited.body["cost_cents"], cents);
}

/// A service credit (`grant`, `adjustment`) of `cents` to the workspace's default account.
async fn service_credit(app: &TestApp, ws: &str, kind: &str, cents: i64) {
    let credited = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/credits"),
            &app.service_key,
            json!({"amount_cents": cents, "type": kind, "reason": "support"}),
        )
        .await;
    assert_eq!(credited.status, StatusCode::CREATED, "{:?}", credited.body);
}

async fn enable_auto_recharge(app: &TestApp, key: &str, account: &str, limit: Option<i64>) {
    let changed = app
        .patch(
            &format!("/v1/billing-accounts/{account}"),
            key,
            json!({"auto_recharge": {"enabled": true, "threshold_cents": 500, "amount_cents": 2000,
                                     "monthly_limit_cents": limit}}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
}

async fn tier(app: &TestApp, key: &str, ws: &str) -> String {
    let refreshed = app
        .post(
            &format!("/v1/workspaces/{ws}/rate-limits/refresh"),
            key,
            json!({}),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    refreshed.body["tier"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_refund_delivered_before_its_purchase_is_taken_back_when_the_credit_lands() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let cus = customer(&app, &key, &ws).await;
    let start = balance(&app, &key, &account).await;
    let session = checkout(&app, &key, &ws, 3000).await;
    let payment = format!("pi_for_{session}");

    let early = refunded(&app, "evt_early", &cus, "ch_early", &payment, 1200);
    assert_eq!(send(&app, &early).await.body["handled"], "applied");
    assert_eq!(
        balance(&app, &key, &account).await,
        start,
        "nothing credited yet, nothing taken"
    );
    let again = refunded(&app, "evt_early_again", &cus, "ch_early", &payment, 1200);
    assert_eq!(send(&app, &again).await.body["handled"], "duplicate");

    let paid = session_completed("evt_paid_late", &session, 3000, app.clock_now());
    assert_eq!(send(&app, &paid).await.body["handled"], "applied");
    assert_eq!(balance(&app, &key, &account).await, start + 3000 - 1200);
    let refunds = transactions(&app, &key, &account, "refund").await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["amount_cents"], -1200);
    assert_eq!(refunds[0]["reference"], "ch_early");
    // The completion again (another delivery of it): nothing more credited or taken.
    let paid_again = session_completed("evt_paid_late_again", &session, 3000, app.clock_now());
    assert_eq!(send(&app, &paid_again).await.body["handled"], "duplicate");

    // A second refund of the charge after the credit: only what it adds to the running total.
    let more = refunded(&app, "evt_more", &cus, "ch_early", &payment, 2000);
    assert_eq!(send(&app, &more).await.body["handled"], "applied");
    let late_copy = refunded(
        &app,
        "evt_early_late_copy",
        &cus,
        "ch_early",
        &payment,
        1200,
    );
    assert_ne!(send(&app, &late_copy).await.body["handled"], "applied");
    assert_eq!(balance(&app, &key, &account).await, start + 3000 - 2000);
    assert_eq!(transactions(&app, &key, &account, "refund").await.len(), 2);
}

#[tokio::test]
async fn a_refund_racing_its_purchase_is_taken_exactly_once() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let cus = customer(&app, &key, &ws).await;
    let start = balance(&app, &key, &account).await;
    let rounds = 4;
    for round in 0..rounds {
        let session = checkout(&app, &key, &ws, 3000).await;
        let payment = format!("pi_for_{session}");
        let refund = refunded(
            &app,
            &format!("evt_race_refund_{round}"),
            &cus,
            &format!("ch_race_{round}"),
            &payment,
            1000,
        );
        let paid = session_completed(
            &format!("evt_race_paid_{round}"),
            &session,
            3000,
            app.clock_now(),
        );
        let deliveries: Vec<Value> = (0..3)
            .flat_map(|_| [refund.clone(), paid.clone()])
            .collect();
        let answers = join_all(deliveries.iter().map(|e| send(&app, e))).await;
        for answer in &answers {
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        }
    }
    assert_eq!(
        balance(&app, &key, &account).await,
        start + rounds * (3000 - 1000)
    );
    let refunds = transactions(&app, &key, &account, "refund").await;
    assert_eq!(refunds.len(), 4, "{refunds:?}");
    assert!(
        refunds.iter().all(|r| r["amount_cents"] == -1000),
        "{refunds:?}"
    );
}

#[tokio::test]
async fn a_top_up_refunded_before_stripe_reports_it_paid_is_credited_less_the_refund() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let cus = customer(&app, &key, &ws).await;
    let start = balance(&app, &key, &account).await;
    let early = refunded(
        &app,
        "evt_top_up_refund",
        &cus,
        "ch_top_up",
        "pi_top_up",
        500,
    );
    assert_eq!(send(&app, &early).await.body["handled"], "applied");
    let succeeded = event(
        "evt_top_up_paid",
        "payment_intent.succeeded",
        app.clock_now(),
        json!({"id": "pi_top_up", "object": "payment_intent", "status": "succeeded",
               "amount": 2000, "amount_received": 2000, "customer": cus,
               "metadata": {"workspace_id": ws, "billing_account_id": account, "kind": "top_up"}}),
    );
    assert_eq!(send(&app, &succeeded).await.body["handled"], "applied");
    assert_eq!(balance(&app, &key, &account).await, start + 2000 - 500);
    assert_eq!(transactions(&app, &key, &account, "refund").await.len(), 1);
}

#[tokio::test]
async fn a_refund_of_a_spent_purchase_lowers_lifetime_paid_by_all_of_it() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let cus = customer(&app, &key, &ws).await;
    let mut sessions = Vec::new();
    for (id, amount) in [("evt_big", 50_000), ("evt_small", 10_000)] {
        let session = checkout(&app, &key, &ws, amount).await;
        let paid = session_completed(id, &session, amount, app.clock_now());
        assert_eq!(send(&app, &paid).await.body["handled"], "applied");
        sessions.push(session);
    }
    assert_eq!(tier(&app, &key, &ws).await, "team", "$600 paid in");
    let available = balance(&app, &key, &account).await;
    spend(&app, &key, &ws, "spent_it", available - 100).await;
    // The $500 purchase refunded in full: only 100 cents were left to take back, but none of
    // the $500 counts as paid any more.
    let refund = refunded(
        &app,
        "evt_big_refund",
        &cus,
        "ch_big",
        &format!("pi_for_{}", sessions[0]),
        50_000,
    );
    assert_eq!(send(&app, &refund).await.body["handled"], "applied");
    assert_eq!(balance(&app, &key, &account).await, 0);
    assert_eq!(
        tier(&app, &key, &ws).await,
        "pro",
        "$100 paid in, on the Pro plan"
    );
}

#[tokio::test]
async fn only_spending_starts_an_auto_recharge() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let cus = customer(&app, &key, &ws).await;
    let saved = save_card(&app, &key, &ws).await;
    assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
    enable_auto_recharge(&app, &key, &account, None).await;
    let none_started = |what: &'static str| {
        let app = &app;
        let key = key.clone();
        let account = account.clone();
        async move {
            assert!(!app.app.store.recharges.pending(), "{what}: queued");
            let recharges = transactions(app, &key, &account, "auto_recharge").await;
            assert!(recharges.is_empty(), "{what}: {recharges:?}");
        }
    };

    // A negative adjustment takes the account from above the 500 threshold to 100.
    let available = balance(&app, &key, &account).await;
    assert!(available > 500, "{available}");
    service_credit(&app, &ws, "adjustment", -(available - 100)).await;
    assert_eq!(balance(&app, &key, &account).await, 100);
    none_started("an adjustment").await;

    // A refund does the same.
    let session = checkout(&app, &key, &ws, 3000).await;
    let paid = session_completed("evt_recharge_buy", &session, 3000, app.clock_now());
    assert_eq!(send(&app, &paid).await.body["handled"], "applied");
    let refund = refunded(
        &app,
        "evt_recharge_refund",
        &cus,
        "ch_recharge",
        &format!("pi_for_{session}"),
        3000,
    );
    assert_eq!(send(&app, &refund).await.body["handled"], "applied");
    assert_eq!(balance(&app, &key, &account).await, 100);
    none_started("a refund").await;

    // Spending does: one charge, credited.
    service_credit(&app, &ws, "grant", 1000).await;
    spend(&app, &key, &ws, "under_the_threshold", 700).await;
    let recharges = transactions(&app, &key, &account, "auto_recharge").await;
    assert_eq!(recharges.len(), 1, "{recharges:?}");
    assert_eq!(balance(&app, &key, &account).await, 1100 - 700 + 2000);
}

/// The app with the Stripe gateway pointed at `stripe`, the webhook secret of [`SECRET`].
pub(crate) async fn spawn_with_stripe(stripe: &FakeStripe) -> TestApp {
    let base = stripe.base_url();
    spawn_app_with(move |c| {
        c.intro_credit_cents = 1000;
        c.payments = PaymentsConfig::Stripe {
            keys: StripeKeys::Plain {
                secret_key: SECRET_KEY.into(),
                publishable_key: PUBLISHABLE_KEY.into(),
                webhook_secret: SECRET.into(),
            },
            api_base: Some(base),
        };
    })
    .await
}

#[tokio::test]
async fn a_recharge_given_up_has_its_payment_canceled_and_a_late_success_counts_against_the_limit()
{
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(&stripe).await;
    let (key, account, ws) = workspace(&app).await;
    let saved = save_card(&app, &key, &ws).await;
    assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
    enable_auto_recharge(&app, &key, &account, Some(2000)).await;
    stripe.next_payment(NextPayment::RequiresAction);
    let available = balance(&app, &key, &account).await;
    spend(&app, &key, &ws, "short", available - 100).await;
    let action_path = format!("/v1/workspaces/{ws}/billing/auto-recharge/requires-action");
    let action = app.get(&action_path, &key).await.body;
    assert_eq!(action["requires_action"], true, "{action:?}");
    let payment = action["payment_intent_id"].as_str().unwrap().to_owned();
    // What Stripe will report if the customer authenticates before the cancel reaches it.
    let mut succeeded = stripe.payment_intent(&payment).unwrap();

    app.clock.advance(time::Duration::hours(24));
    let retry = billing_core::routes::job_by_name("auto-recharge-retry").unwrap();
    assert_eq!((retry.run)(&app.app, Value::Null).await.unwrap(), 1);
    let cancels = stripe.requests_to("POST", &format!("/v1/payment_intents/{payment}/cancel"));
    assert_eq!(cancels.len(), 1, "{:?}", stripe.requests());
    assert_eq!(cancels[0].field("cancellation_reason"), Some("abandoned"));
    assert_eq!(
        stripe.payment_intent(&payment).unwrap()["status"],
        "canceled"
    );
    assert_eq!(
        app.get(&action_path, &key).await.body["requires_action"],
        false
    );
    assert!(stripe.violations().is_empty(), "{:?}", stripe.violations());

    // It succeeded all the same: the money was taken, so it is credited, and it is the
    // month's whole limit, so the next shortfall charges nothing.
    succeeded["status"] = json!("succeeded");
    succeeded["amount_received"] = succeeded["amount"].clone();
    let late = event(
        "evt_late_recharge",
        "payment_intent.succeeded",
        app.clock_now(),
        succeeded,
    );
    assert_eq!(send(&app, &late).await.body["handled"], "applied");
    assert_eq!(balance(&app, &key, &account).await, 100 + 2000);
    spend(&app, &key, &ws, "short_again", 2000).await;
    assert_eq!(
        stripe.requests_to("POST", "/v1/payment_intents").len(),
        1,
        "no second recharge past the monthly limit"
    );
    assert_eq!(
        transactions(&app, &key, &account, "auto_recharge")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn the_recharge_retry_finds_recharges_in_every_shard_and_under_the_unsharded_key() {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(&stripe).await;
    let mut accounts = Vec::new();
    for i in 0..6 {
        let (_, account, key) = app.user_with_key(&format!("payer-{i}")).await;
        let ws = app.create_workspace(&key, "Paid").await;
        // A card of its own: Stripe attaches a payment method to one customer.
        let saved = app
            .post(
                &format!("/v1/workspaces/{ws}/billing/payment-method"),
                &key,
                json!({"payment_method_id": format!("pm_card_visa_{i}")}),
            )
            .await;
        assert_eq!(saved.status, StatusCode::OK, "{:?}", saved.body);
        enable_auto_recharge(&app, &key, &account, None).await;
        // Waiting for the customer: the recharge stays under way.
        stripe.next_payment(NextPayment::RequiresAction);
        let available = balance(&app, &key, &account).await;
        spend(&app, &key, &ws, &format!("short-{i}"), available - 100).await;
        accounts.push(BillingAccountId::parse(&account).unwrap());
        // A second apart, so they are stale in the order they started.
        app.clock.advance(time::Duration::seconds(1));
    }
    let recharging: Vec<_> = accounts
        .iter()
        .map(|account| (keys::account(account.as_str()), keys::ACCOUNT_SK.to_owned()))
        .collect();
    let shards = app.due_partitions(&recharging, DueIndex::Recharges).await;
    assert!(shards.len() >= 2, "6 recharges in {shards:?}");
    // The earliest as a recharge started before the index was sharded.
    app.move_to_legacy_partition(
        &keys::account(accounts[0].as_str()),
        keys::ACCOUNT_SK,
        DueIndex::Recharges,
    )
    .await;

    app.clock.advance(time::Duration::hours(24));
    let earliest: Vec<BillingAccountId> = app
        .app
        .store
        .stale_recharges(app.clock_now(), 3)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, request)| request.account_id)
        .collect();
    assert_eq!(earliest, accounts[..3], "earliest first, at most the limit");
    // Every one is past the give-up age: ended, its waiting payment canceled.
    let retry = billing_core::routes::job_by_name("auto-recharge-retry").unwrap();
    assert_eq!(
        (retry.run)(&app.app, Value::Null).await.unwrap(),
        accounts.len()
    );
    assert_eq!((retry.run)(&app.app, Value::Null).await.unwrap(), 0);
}
