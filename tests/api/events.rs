//! Events out, as a receiver sees them: each committed event delivered to the workspace's
//! subscribed endpoints, signed by the Standard Webhooks scheme (checked by the Python
//! reference library), retried with the same `webhook-id`, and logged; and published to
//! EventBridge (moto_server), from the local pipeline and from the stream-triggered function.

use billing_core::config::EventsConfig;
use billing_core::domain::events::EventType;
use billing_core::domain::ids::{EventId, WebhookEndpointId};
use billing_core::routes::{BatchItemFailure, EVENTS_PUBLISH};
use billing_core::store::keys::{self, DueIndex};
use billing_tests::app::{spawn_app_with, TestApp};
use billing_tests::receiver::{standard_webhooks_accepts, Received, Receiver};
use http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Well within the contract's 5 s for a first attempt.
const FIRST_ATTEMPT_WITHIN: Duration = Duration::from_secs(10);

async fn spawn() -> TestApp {
    spawn_app_with(|c| c.intro_credit_cents = 1000).await
}

/// A user, its key and a workspace on its default account: (key, account, workspace).
async fn workspace(app: &TestApp) -> (String, String, String) {
    let (_, account, key) = app.user_with_key("receiver-owner").await;
    let ws = app.create_workspace(&key, "Hooked").await;
    (key, account, ws)
}

/// An endpoint for `events` at `url`: (id, secret).
async fn endpoint(
    app: &TestApp,
    key: &str,
    ws: &str,
    url: &str,
    events: Value,
) -> (String, String) {
    let created = app
        .post(
            &format!("/v1/workspaces/{ws}/webhook-endpoints"),
            key,
            json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Buys `amount` cents of credits through an offline checkout; returns the session id.
async fn buy_credits(app: &TestApp, key: &str, ws: &str, amount: i64) -> String {
    let created = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/checkout"),
            key,
            json!({"amount_cents": amount, "success_url": "https://app.example/ok",
                   "cancel_url": "https://app.example/cancel"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let session = created.body["checkout_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let completed = app
        .post(
            &format!("/v1/workspaces/{ws}/billing/dev/complete-local"),
            key,
            json!({"checkout_session_id": session}),
        )
        .await;
    assert_eq!(completed.status, StatusCode::OK, "{:?}", completed.body);
    session
}

fn of_type(kind: &'static str) -> impl Fn(&Received) -> bool {
    move |r| r.event_type() == kind
}

#[tokio::test]
async fn a_completed_checkout_arrives_as_credits_purchased_signed_for_its_endpoint_only() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let receiver = Receiver::start().await;
    let (_, secret) = endpoint(&app, &key, &ws, &receiver.url, json!(["credits.purchased"])).await;
    let (_, other_secret) = endpoint(
        &app,
        &key,
        &ws,
        "http://127.0.0.1:9/unused",
        json!(["invoice.paid"]),
    )
    .await;
    let session = buy_credits(&app, &key, &ws, 2000).await;

    let delivered = receiver
        .wait_for(1, FIRST_ATTEMPT_WITHIN, of_type("credits.purchased"))
        .await;
    let delivery = &delivered[0];
    let event = delivery.json();
    assert_eq!(event["workspace_id"], ws.as_str());
    assert_eq!(event["billing_account_id"], account.as_str());
    assert_eq!(
        event["data"],
        json!({"amount_cents": 2000, "method": "stripe_checkout", "reference": session})
    );
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(delivery.header("webhook-id"), event["id"].as_str().unwrap());
    assert_eq!(delivery.header("content-type"), "application/json");
    assert_eq!(delivery.header("user-agent"), "billing-webhooks/1");

    assert!(standard_webhooks_accepts(&secret, delivery, &delivery.body));
    let mut tampered = delivery.body.to_vec();
    let at = tampered.windows(4).position(|w| w == b"2000").unwrap();
    tampered[at] = b'9';
    assert!(!standard_webhooks_accepts(&secret, delivery, &tampered));
    assert!(!standard_webhooks_accepts(
        &other_secret,
        delivery,
        &delivery.body
    ));
}

#[tokio::test]
async fn a_soft_cap_crossing_arrives_as_credits_low_and_a_low_balance_as_its_own() {
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    let receiver = Receiver::start().await;
    let (_, secret) = endpoint(&app, &key, &ws, &receiver.url, json!(["credits.low"])).await;
    let capped = app
        .patch(
            &format!("/v1/billing-accounts/{account}"),
            &key,
            json!({"soft_cap_cents": 300}),
        )
        .await;
    assert_eq!(capped.status, StatusCode::OK, "{:?}", capped.body);
    // 2,000,000 output tokens at the basic tier (150 µ¢ each): 300 cents, reaching the soft
    // cap; 700 left (above the default 500-cent recharge threshold). Tokens, not actions: the
    // trial ends at 1,000 actions.
    let usage = format!("/v1/workspaces/{ws}/usage-events");
    let spent = app
        .post(
            &usage,
            &key,
            json!({"event_id": "u1", "category": "output_tokens", "quantity": 2_000_000, "agent_tier": "basic"}),
        )
        .await;
    assert_eq!(spent.status, StatusCode::CREATED, "{:?}", spent.body);
    let low = receiver
        .wait_for(1, FIRST_ATTEMPT_WITHIN, of_type("credits.low"))
        .await;
    assert_eq!(
        low[0].json()["data"],
        json!({"scope": "account", "cap_cents": 300, "spent_cents": 300,
               "available_cents": 700, "month": &low[0].json()["timestamp"].as_str().unwrap()[..7]})
    );
    assert!(standard_webhooks_accepts(&secret, &low[0], &low[0].body));

    // 300 more: available falls from 700 to 400, below the threshold.
    app.post(
        &usage,
        &key,
        json!({"event_id": "u2", "category": "output_tokens", "quantity": 2_000_000, "agent_tier": "basic"}),
    )
    .await;
    let both = receiver
        .wait_for(2, FIRST_ATTEMPT_WITHIN, of_type("credits.low"))
        .await;
    let balance = both
        .iter()
        .find(|r| r.json()["data"]["scope"] == "balance")
        .unwrap();
    assert_eq!(balance.json()["data"]["cap_cents"], 500);
    assert_eq!(balance.json()["data"]["available_cents"], 400);
}

#[tokio::test]
async fn a_receiver_that_fails_first_gets_the_retry_with_the_same_webhook_id() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    let receiver = Receiver::start().await;
    receiver.answer_next(&[500]);
    let (id, secret) = endpoint(&app, &key, &ws, &receiver.url, json!(["*"])).await;
    buy_credits(&app, &key, &ws, 1500).await;
    let first = receiver
        .wait_for(1, FIRST_ATTEMPT_WITHIN, of_type("credits.purchased"))
        .await;
    let deliveries = format!("/v1/workspaces/{ws}/webhook-endpoints/{id}/deliveries");
    // The failed attempt is logged with its retry 5 s (±10 %) later.
    let logged = wait_for_attempts(&app, &key, &deliveries, 1).await;
    assert_eq!(logged[0]["status"], "failed");
    assert_eq!(logged[0]["response_status"], 500);
    assert!(logged[0]["next_attempt_at"].is_string());

    app.clock.advance(time::Duration::seconds(6));
    let both = receiver
        .wait_for(2, FIRST_ATTEMPT_WITHIN, of_type("credits.purchased"))
        .await;
    assert_eq!(both[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(both[1].body, first[0].body, "the same bytes every attempt");
    assert_ne!(
        both[1].header("webhook-timestamp"),
        first[0].header("webhook-timestamp"),
        "signed anew"
    );
    assert!(standard_webhooks_accepts(&secret, &both[1], &both[1].body));

    let logged = wait_for_attempts(&app, &key, &deliveries, 2).await;
    let summary: Vec<(Value, Value, Value)> = logged
        .iter()
        .map(|a| {
            (
                a["attempt"].clone(),
                a["status"].clone(),
                a["response_status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (json!(2), json!("succeeded"), json!(200)),
            (json!(1), json!("failed"), json!(500)),
        ],
        "newest first"
    );
    assert_eq!(logged[0]["next_attempt_at"], Value::Null);
    assert_eq!(logged[0]["event_id"], logged[1]["event_id"]);
    assert_eq!(logged[0]["event_type"], "credits.purchased");
    let failed = app.get(&format!("{deliveries}?status=failed"), &key).await;
    assert_eq!(failed.body["data"].as_array().unwrap().len(), 1);
    let of_event = app
        .get(
            &format!(
                "{deliveries}?event_id={}",
                logged[0]["event_id"].as_str().unwrap()
            ),
            &key,
        )
        .await;
    assert_eq!(of_event.body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn retries_are_found_in_every_shard_and_under_the_unsharded_key() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    let mut receivers = Vec::new();
    let mut endpoints = Vec::new();
    for _ in 0..6 {
        let receiver = Receiver::start().await;
        receiver.answer_next(&[500]);
        let (id, _) = endpoint(&app, &key, &ws, &receiver.url, json!(["credits.purchased"])).await;
        receivers.push(receiver);
        endpoints.push(WebhookEndpointId::parse(&id).unwrap());
    }
    buy_credits(&app, &key, &ws, 1500).await;
    let mut deliveries = Vec::new();
    for endpoint in &endpoints {
        let log = format!("/v1/workspaces/{ws}/webhook-endpoints/{endpoint}/deliveries");
        let failed = wait_for_attempts(&app, &key, &log, 1).await;
        let event = EventId::parse(failed[0]["event_id"].as_str().unwrap()).unwrap();
        deliveries.push((endpoint.clone(), event));
    }
    let retrying: Vec<_> = deliveries
        .iter()
        .map(|(endpoint, event)| {
            (
                keys::endpoint(endpoint.as_str()),
                keys::delivery_sk(event.as_str()),
            )
        })
        .collect();
    let shards = app
        .due_partitions(&retrying, DueIndex::WebhookRetries)
        .await;
    assert!(shards.len() >= 2, "6 deliveries in {shards:?}");
    // One as a delivery indexed before the index was sharded.
    let (old_endpoint, old_event) = &deliveries[0];
    app.move_to_legacy_partition(
        &keys::endpoint(old_endpoint.as_str()),
        &keys::delivery_sk(old_event.as_str()),
        DueIndex::WebhookRetries,
    )
    .await;

    // Read where the clock will be, before moving it: the pipeline retries once it moves.
    let retries_at = app.clock_now() + 6;
    let store = &app.app.store;
    let due = store.due_deliveries(retries_at, 100).await.unwrap();
    assert_eq!(
        due.iter().cloned().collect::<HashSet<_>>(),
        deliveries.iter().cloned().collect::<HashSet<_>>()
    );
    assert_eq!(store.due_deliveries(retries_at, 3).await.unwrap().len(), 3);
    app.clock.advance(time::Duration::seconds(6));
    for receiver in &receivers {
        receiver
            .wait_for(2, FIRST_ATTEMPT_WITHIN, of_type("credits.purchased"))
            .await;
    }
}

#[tokio::test]
async fn a_410_disables_the_endpoint_at_once_and_nothing_is_retried() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    let receiver = Receiver::start().await;
    receiver.answer_next(&[410]);
    let (id, _) = endpoint(&app, &key, &ws, &receiver.url, json!(["*"])).await;
    buy_credits(&app, &key, &ws, 1000).await;
    receiver.wait_for(1, FIRST_ATTEMPT_WITHIN, |_| true).await;
    let deliveries = format!("/v1/workspaces/{ws}/webhook-endpoints/{id}/deliveries");
    let logged = wait_for_attempts(&app, &key, &deliveries, 1).await;
    assert_eq!(logged[0]["response_status"], 410);
    assert_eq!(logged[0]["next_attempt_at"], Value::Null);
    let listed = app
        .get(&format!("/v1/workspaces/{ws}/webhook-endpoints"), &key)
        .await;
    assert_eq!(listed.body["data"][0]["status"], "disabled");
    assert_eq!(listed.body["data"][0]["disabled_reason"], "gone");
    buy_credits(&app, &key, &ws, 1000).await;
    app.clock.advance(time::Duration::hours(1));
    // The next committed event and any retry find it disabled: still the one request.
    let other = Receiver::start().await;
    endpoint(&app, &key, &ws, &other.url, json!(["*"])).await;
    buy_credits(&app, &key, &ws, 1000).await;
    other.wait_for(1, FIRST_ATTEMPT_WITHIN, |_| true).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn five_days_of_unbroken_failure_disable_an_endpoint() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    let receiver = Receiver::start().await;
    receiver.answer_next(&[500; 20]);
    let (id, _) = endpoint(&app, &key, &ws, &receiver.url, json!(["credits.purchased"])).await;
    buy_credits(&app, &key, &ws, 1000).await;
    receiver.wait_for(1, FIRST_ATTEMPT_WITHIN, |_| true).await;
    let deliveries = format!("/v1/workspaces/{ws}/webhook-endpoints/{id}/deliveries");
    wait_for_attempts(&app, &key, &deliveries, 1).await;
    let listing = format!("/v1/workspaces/{ws}/webhook-endpoints");
    let status = || async { app.get(&listing, &key).await.body["data"][0].clone() };
    assert_eq!(
        status().await["status"],
        "enabled",
        "one failure disables nothing"
    );
    app.clock
        .advance(time::Duration::days(5) + time::Duration::seconds(1));
    // The due retry fails again, five days after the run of failures began.
    receiver.wait_for(2, FIRST_ATTEMPT_WITHIN, |_| true).await;
    for _ in 0..100 {
        let endpoint = status().await;
        if endpoint["status"] == "disabled" {
            assert_eq!(endpoint["disabled_reason"], "failing");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the endpoint was never disabled");
}

/// The endpoint's attempts once there are `count` (the log is written after the answer).
async fn wait_for_attempts(app: &TestApp, key: &str, deliveries: &str, count: usize) -> Vec<Value> {
    for _ in 0..100 {
        let listed = app.get(deliveries, key).await;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
        let data = listed.body["data"].as_array().unwrap().clone();
        if data.len() >= count {
            return data;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{count} attempts were never logged");
}

#[tokio::test]
async fn an_endpoint_gets_only_events_committed_after_it_was_created_and_none_once_deleted() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    let early = Receiver::start().await;
    let late = Receiver::start().await;
    let deleted = Receiver::start().await;
    endpoint(&app, &key, &ws, &early.url, json!(["credits.purchased"])).await;
    let (gone, _) = endpoint(&app, &key, &ws, &deleted.url, json!(["credits.purchased"])).await;
    let removed = app
        .delete(
            &format!("/v1/workspaces/{ws}/webhook-endpoints/{gone}"),
            &key,
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    let before = buy_credits(&app, &key, &ws, 1000).await;
    early
        .wait_for(1, FIRST_ATTEMPT_WITHIN, of_type("credits.purchased"))
        .await;
    endpoint(&app, &key, &ws, &late.url, json!(["credits.purchased"])).await;
    let after = buy_credits(&app, &key, &ws, 1100).await;

    let both = early
        .wait_for(2, FIRST_ATTEMPT_WITHIN, of_type("credits.purchased"))
        .await;
    let references: Vec<Value> = both
        .iter()
        .map(|r| r.json()["data"]["reference"].clone())
        .collect();
    assert!(references.contains(&json!(before)) && references.contains(&json!(after)));
    let got = late
        .wait_for(1, FIRST_ATTEMPT_WITHIN, of_type("credits.purchased"))
        .await;
    // The second event was delivered to every endpoint together: the first went out long before.
    assert_eq!(late.received().len(), 1);
    assert_eq!(got[0].json()["data"]["reference"], after.as_str());
    assert!(
        deleted.received().is_empty(),
        "a deleted endpoint gets nothing"
    );
}

#[tokio::test]
async fn a_dead_receiver_never_slows_a_debit() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    // A listener that accepts and never answers: every attempt waits for its 15 s timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    endpoint(&app, &key, &ws, &url, json!(["*"])).await;
    let usage = format!("/v1/workspaces/{ws}/usage-events");
    // Every debit crosses nothing new after the first, but each answers without waiting for
    // the deliveries its events started (the request would otherwise hang 15 s).
    for i in 0..3 {
        let answered = tokio::time::timeout(
            Duration::from_secs(5),
            app.post(
                &usage,
                &key,
                json!({"event_id": format!("d{i}"), "category": "output_tokens", "quantity": 2_000_000, "agent_tier": "basic"}),
            ),
        )
        .await
        .expect("a debit answers while its event's delivery hangs");
        assert_eq!(answered.status, StatusCode::CREATED);
    }
    drop(silent);
}

// ---- Publishing, against moto_server's EventBridge ----

fn moto_endpoint() -> String {
    std::env::var("SCHEDULER_ENDPOINT").expect(
        "SCHEDULER_ENDPOINT is not set: run the tests with `make test`, which starts moto_server",
    )
}

/// A bus with a rule on `Source: billing` whose target is a new SQS queue: (bus, queue url).
async fn bus_into_queue(name: &str) -> (String, String, aws_sdk_sqs::Client) {
    let config = billing_core::aws::sdk_config(Some(&moto_endpoint())).await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = format!("billing-{name}-{}", std::process::id());
    events.create_event_bus().name(&bus).send().await.unwrap();
    let queue = sqs.create_queue().queue_name(&bus).send().await.unwrap();
    let queue_url = queue.queue_url().unwrap().to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let queue_arn = attributes
        .attributes()
        .unwrap()
        .get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .unwrap()
        .clone();
    events
        .put_rule()
        .name("billing-events")
        .event_bus_name(&bus)
        .event_pattern(json!({"source": [billing_core::events::publish::SOURCE]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("billing-events")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (bus, queue_url, sqs)
}

/// What arrived on the queue: EventBridge's envelopes.
async fn published(sqs: &aws_sdk_sqs::Client, queue_url: &str, count: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..50 {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for message in received.messages() {
            found.push(serde_json::from_str(message.body().unwrap()).unwrap());
        }
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{count} events expected on the queue, got {found:?}");
}

#[tokio::test]
async fn committed_events_are_published_to_the_bus_and_marked() {
    let (bus, queue_url, sqs) = bus_into_queue("local").await;
    let app = spawn_app_with(|c| {
        c.events = Some(EventsConfig {
            endpoint: Some(moto_endpoint()),
            bus_name: bus.clone(),
        });
    })
    .await;
    let (key, _, ws) = workspace(&app).await;
    let session = buy_credits(&app, &key, &ws, 2000).await;
    let envelopes = published(&sqs, &queue_url, 1).await;
    let purchase = envelopes
        .iter()
        .find(|e| e["detail-type"] == "credits.purchased")
        .unwrap_or_else(|| panic!("{envelopes:?}"));
    assert_eq!(purchase["source"], "billing");
    assert_eq!(purchase["detail"]["data"]["reference"], session.as_str());
    assert_eq!(purchase["detail"]["workspace_id"], ws.as_str());
    let id = purchase["detail"]["id"].as_str().unwrap().to_owned();
    // Marked once EventBridge accepted it.
    for _ in 0..50 {
        let events = app.app.store.all_events().await.unwrap();
        if events
            .iter()
            .any(|e| e.id.as_str() == id && e.published_at.is_some())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the published event was never marked");
}

/// A DynamoDB Streams batch inserting these outbox items, as Lambda delivers it.
fn stream_batch(items: &[billing_core::store::events::OutboxItem]) -> Value {
    let records: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let pk = format!("EVT#{}", item.id);
            json!({
                "eventID": format!("record-{i}"),
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "dynamodb": {
                    "Keys": {"pk": {"S": pk}, "sk": {"S": "EVT"}},
                    "NewImage": {"pk": {"S": pk}, "sk": {"S": "EVT"}, "type": {"S": item.kind.as_str()}, "event": {"S": item.event}},
                    "SequenceNumber": format!("{}", 1000 + i),
                    "StreamViewType": "NEW_AND_OLD_IMAGES"
                }
            })
        })
        .chain([json!({
            // Not an outbox item: passed over.
            "eventID": "other", "eventName": "MODIFY",
            "dynamodb": {"Keys": {"pk": {"S": "ACCOUNT#ba_x"}}, "SequenceNumber": "1"}
        })])
        .collect();
    json!({"Records": records})
}

#[tokio::test]
async fn the_stream_function_publishes_a_batch_and_reports_what_eventbridge_refused() {
    let (bus, queue_url, sqs) = bus_into_queue("stream").await;
    // No local publishing: only the stream function publishes here.
    let app = spawn().await;
    let (key, account, ws) = workspace(&app).await;
    buy_credits(&app, &key, &ws, 2000).await;
    app.patch(
        &format!("/v1/billing-accounts/{account}"),
        &key,
        json!({"soft_cap_cents": 1}),
    )
    .await;
    app.post(
        &format!("/v1/workspaces/{ws}/usage-events"),
        &key,
        json!({"event_id": "s1", "category": "actions", "quantity": 10, "agent_tier": "basic"}),
    )
    .await;
    let items = app.app.store.all_events().await.unwrap();
    let kinds: Vec<EventType> = items.iter().map(|i| i.kind).collect();
    assert!(kinds.contains(&EventType::CreditsPurchased) && kinds.contains(&EventType::CreditsLow));

    let mut config = app.app.config.clone();
    config.events = Some(EventsConfig {
        endpoint: Some(moto_endpoint()),
        bus_name: bus.clone(),
    });
    // The function's own process on the same table: it marks what it published.
    let function = billing_core::app::App::new(
        config,
        app.app.store.independent(),
        std::sync::Arc::new(billing_core::clock::SystemClock),
    );
    let outcome = EVENTS_PUBLISH
        .invoke(&function, stream_batch(&items))
        .await
        .unwrap();
    assert_eq!(outcome.handled, items.len());
    assert_eq!(outcome.batch_item_failures, Some(Vec::new()));
    let envelopes = published(&sqs, &queue_url, items.len()).await;
    let mut types: Vec<String> = envelopes
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    let mut expected: Vec<String> = kinds.iter().map(|k| k.as_str().to_owned()).collect();
    expected.sort();
    assert_eq!(types, expected);
    assert!(app
        .app
        .store
        .all_events()
        .await
        .unwrap()
        .iter()
        .all(|e| e.published_at.is_some()));
}

/// An EventBridge stand-in whose `PutEvents` refuses the first entry of each call while
/// `refusals` last: what it was sent, per call.
struct RefusingBus {
    url: String,
    calls: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

async fn refusing_bus(refusals: usize) -> RefusingBus {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let seen = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let sent: Value = serde_json::from_slice(&body).unwrap();
                            let count = sent["Entries"].as_array().map_or(0, Vec::len);
                            let refuse = {
                                let mut calls = seen.lock().unwrap();
                                calls.push(sent);
                                calls.len() <= refusals
                            };
                            let entries: Vec<Value> = (0..count)
                            .map(|i| if refuse && i == 0 {
                                json!({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"})
                            } else {
                                json!({"EventId": format!("id-{i}")})
                            })
                            .collect();
                            let answer = json!({"FailedEntryCount": usize::from(refuse && count > 0), "Entries": entries});
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/x-amz-json-1.1")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(
                                        answer.to_string(),
                                    )))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    RefusingBus { url, calls }
}

#[tokio::test]
async fn entries_eventbridge_refused_are_sent_again_and_reported_when_they_stay_refused() {
    let app = spawn().await;
    let (key, _, ws) = workspace(&app).await;
    buy_credits(&app, &key, &ws, 2000).await;
    buy_credits(&app, &key, &ws, 3000).await;
    let items = app.app.store.all_events().await.unwrap();
    assert_eq!(items.len(), 2);
    let function = |bus: &RefusingBus| {
        let mut config = app.app.config.clone();
        config.events = Some(EventsConfig {
            endpoint: Some(bus.url.clone()),
            bus_name: "billing".into(),
        });
        billing_core::app::App::new(
            config,
            app.app.store.independent(),
            std::sync::Arc::new(billing_core::clock::SystemClock),
        )
    };

    // Refused once: the refused entry alone is sent again, and the batch succeeds.
    let once = refusing_bus(1).await;
    let outcome = EVENTS_PUBLISH
        .invoke(&function(&once), stream_batch(&items))
        .await
        .unwrap();
    assert_eq!(outcome.handled, 2);
    assert_eq!(outcome.batch_item_failures, Some(Vec::new()));
    let calls = once.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["Entries"].as_array().unwrap().len(), 2);
    assert_eq!(calls[1]["Entries"].as_array().unwrap().len(), 1);
    assert_eq!(calls[1]["Entries"][0], calls[0]["Entries"][0]);
    let entry = &calls[0]["Entries"][0];
    assert_eq!(entry["Source"], "billing");
    assert_eq!(entry["EventBusName"], "billing");
    let detail: Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
    assert_eq!(entry["DetailType"], detail["type"]);

    // Refused every time: that record is reported for the stream to retry from.
    let always = refusing_bus(usize::MAX).await;
    let outcome = EVENTS_PUBLISH
        .invoke(&function(&always), stream_batch(&items))
        .await
        .unwrap();
    assert_eq!(outcome.handled, 1);
    assert_eq!(
        outcome.batch_item_failures,
        Some(vec![BatchItemFailure {
            item_identifier: "1000".into()
        }])
    );
}
