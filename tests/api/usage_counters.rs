//! The usage counters off the debit: deployed, a debit only records its count on its own item
//! and the `usage-counters` job applies it from the table's stream, once, however often the
//! stream delivers the record.

use aws_sdk_dynamodb::types::AttributeValue;
use billing_core::clock::{rfc3339, unix_millis};
use billing_core::domain::calendar::Day;
use billing_core::domain::ids::{BillingAccountId, WorkspaceId};
use billing_core::domain::pricing::Category;
use billing_core::routes::USAGE_COUNTERS;
use billing_core::store::counters::Counting;
use billing_core::store::keys;
use billing_core::store::usage::{UsageCharge, UsageOutcome};
use billing_tests::app::{spawn_app_with, TestApp};
use serde_json::{json, Map, Value};

/// An item in the stream's JSON form (`{"S": …}`, `{"N": …}`, …).
fn stream_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(_) => json!({"NULL": true}),
        AttributeValue::M(map) => json!({"M": image(map)}),
        AttributeValue::L(list) => json!({"L": list.iter().map(stream_json).collect::<Vec<_>>()}),
        other => panic!("no stream form written for {other:?}"),
    }
}

fn image(item: &std::collections::HashMap<String, AttributeValue>) -> Map<String, Value> {
    item.iter()
        .map(|(name, value)| (name.clone(), stream_json(value)))
        .collect()
}

/// The stream record of the item `pk`/`sk` as it is now, inserted.
async fn inserted(app: &TestApp, pk: &str, sk: &str, sequence: &str) -> Value {
    let item = app.stored_item(pk, sk).await.expect("the item exists");
    json!({
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
            "NewImage": image(&item),
            "SequenceNumber": sequence,
        }
    })
}

async fn actions_counted(app: &TestApp, key: &str, ws: &str) -> (i64, i64) {
    let summary = app
        .get(&format!("/v1/workspaces/{ws}/billing/summary"), key)
        .await
        .body;
    let actions = &summary["by_category"]["actions"];
    (
        actions["quantity"].as_i64().unwrap(),
        actions["cost_cents"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn the_stream_applies_each_debits_usage_count_once() {
    let app = spawn_app_with(|c| c.intro_credit_cents = 1000).await;
    let (_, account, key) = app.user_with_key("payer").await;
    let ws = app.create_workspace(&key, "Agents").await;
    // A handle that counts as a deployed function does: by the stream, not in-process.
    let deployed = app.app.store.independent().with_counting(Counting::Stream);
    let now = time::OffsetDateTime::now_utc();
    let charge = |event_id: &str, quantity: u64| UsageCharge {
        workspace_id: WorkspaceId::parse(&ws).unwrap(),
        account_id: BillingAccountId::parse(&account).unwrap(),
        event_id: event_id.into(),
        fingerprint: event_id.into(),
        category: Category::Actions,
        quantity,
        agent_id: Some("agent-1".into()),
        cost_cents: 3,
        day: Day::of(now),
        created_at: rfc3339(now),
        millis: unix_millis(now),
    };
    for (event, quantity) in [("first", 30), ("second", 50)] {
        let outcome = deployed
            .record_usage(&charge(event, quantity))
            .await
            .unwrap();
        assert!(matches!(outcome, UsageOutcome::Charged(..)));
    }
    assert_eq!(
        actions_counted(&app, &key, &ws).await,
        (0, 0),
        "the debit wrote no counter"
    );

    let first = inserted(
        &app,
        &keys::usage_event(&ws, "first"),
        keys::USAGE_EVENT_SK,
        "100",
    )
    .await;
    let second = inserted(
        &app,
        &keys::usage_event(&ws, "second"),
        keys::USAGE_EVENT_SK,
        "200",
    )
    .await;
    let outbox_like = json!({"eventName": "INSERT", "dynamodb": {
        "Keys": {"pk": {"S": "EVT#x"}}, "NewImage": {"pk": {"S": "EVT#x"}}, "SequenceNumber": "150"}});
    let outcome = USAGE_COUNTERS
        .invoke(&app.app, json!({"Records": [first.clone(), outbox_like]}))
        .await
        .unwrap();
    assert_eq!(outcome.handled, 1, "the outbox record is passed over");
    assert_eq!(outcome.batch_item_failures, Some(Vec::new()));
    assert_eq!(actions_counted(&app, &key, &ws).await, (30, 3));

    // The batch again (a retry), with the next record, and with a record twice in one batch:
    // each is counted once.
    for records in [
        vec![first.clone(), second.clone()],
        vec![second.clone(), first.clone(), second],
    ] {
        let outcome = USAGE_COUNTERS
            .invoke(&app.app, json!({ "Records": records }))
            .await
            .unwrap();
        assert_eq!(outcome.batch_item_failures, Some(Vec::new()));
    }
    assert_eq!(actions_counted(&app, &key, &ws).await, (80, 6));
    let daily = app
        .get(
            &format!("/v1/workspaces/{ws}/billing/usage?category=actions&group_by=agent"),
            &key,
        )
        .await
        .body;
    assert_eq!(daily["quantity"], 80, "the daily counters too: {daily}");
}
