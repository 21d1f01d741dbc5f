//! Injected DynamoDB faults (tests/support/fault_proxy.rs): a write whose answer is lost must
//! still be answered as what it did, and money must move at most once. First one case per lost
//! answer, scripted; then a seeded campaign of concurrent clients against every money path,
//! checked afterwards from the table itself.

use billing_core::config::PaymentsConfig;
use billing_core::payments::signature;
use billing_tests::app::{
    dynamodb_endpoint, scan_table as scan, spawn_app_through, text, Item, TestApp, TestResponse,
};
use billing_tests::fault_proxy::{seed_from_env, Fault, FaultProxy, Plan, Rates};
use http::{Method, StatusCode};
use serde_json::{json, Value};

const SECRET: &str = "whsec_fault_secret";

/// The app, its store reaching DynamoDB Local through `proxy`.
async fn spawn_through(proxy: &FaultProxy) -> TestApp {
    spawn_process(proxy, None).await
}

/// An app through `proxy` on `table` (another process of the same deployment), or on a new one.
async fn spawn_process(proxy: &FaultProxy, table: Option<&str>) -> TestApp {
    spawn_app_through(&proxy.url, table, |c| {
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

// ---------------------------------------------------------------------------------------------
// The campaign: concurrent clients on every money path, two processes on one table, faults
// injected on every DynamoDB request; then the table is checked directly.

/// Concurrent clients, the operations each makes, and the workspaces they share: sized to
/// finish well within 90 s on two cores (`FAULT_CLIENTS`, `FAULT_OPERATIONS` for longer runs).
const CLIENTS: u64 = 12;
const OPERATIONS: u64 = 12;
const TENANTS: usize = 4;
/// How often a client sends one request before it gives up on a final answer.
const CLIENT_ATTEMPTS: u32 = 12;

/// Per thousand requests each fault applies to.
fn campaign_rates() -> Rates {
    Rates(vec![
        (Fault::Delay, 60),
        (Fault::ServerError, 20),
        (Fault::Throttling, 10),
        (Fault::ThroughputExceeded, 10),
        (Fault::TransactionConflict, 60),
        (Fault::LostResponse, 50),
        (Fault::LostConnection, 25),
    ])
}

#[derive(Clone)]
struct Tenant {
    key: String,
    account: String,
    workspace: String,
}

/// What a client was finally told about a movement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Told {
    Done,
    Refused,
    /// No final answer (a server error, or the attempts ran out): either may have happened.
    Unknown,
}

/// What a real client retries under the same Idempotency-Key: contention, a rate limit, a key
/// in use by its own earlier attempt, a server error.
fn retryable(response: &TestResponse) -> bool {
    response.status.is_server_error()
        || response.status == StatusCode::TOO_MANY_REQUESTS
        || (response.status == StatusCode::CONFLICT
            && matches!(response.error_code(), "conflict" | "idempotency_key_in_use"))
}

fn told(response: &TestResponse) -> Told {
    if response.status.is_success() {
        Told::Done
    } else if retryable(response) {
        Told::Unknown
    } else {
        Told::Refused
    }
}

/// Everything the clients were told, to check against the table.
#[derive(Default)]
struct Record {
    /// (account, event id, told, cost).
    usage: Vec<(String, String, Told, i64)>,
    /// (account, reason, told): the reason names the credit's transaction.
    credits: Vec<(String, String, Told)>,
    /// (account, PaymentIntent, told).
    top_ups: Vec<(String, Option<String>, Told)>,
    /// (account, session, event id).
    checkouts: Vec<(String, String, String)>,
    /// (workspace, run id, authorization told).
    runs: Vec<(String, Option<String>, Told)>,
    requests: u64,
    retries: u64,
    sampled_reads: u64,
    violations: Vec<String>,
}

type Shared = std::sync::Arc<std::sync::Mutex<Record>>;

fn note(record: &Shared) -> std::sync::MutexGuard<'_, Record> {
    record
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One POST as a client sends it, retried (same body, same key) until its answer is final.
/// A request is retried only under an Idempotency-Key, or when its body names it
/// (`by_body`: a usage event's `event_id`); a client without either can't tell a retry from a
/// second request, and sends once.
async fn until_final(
    app: &TestApp,
    record: &Shared,
    path: &str,
    key: &str,
    body: &Value,
    idempotency_key: Option<&str>,
) -> TestResponse {
    send_until_final(app, record, path, key, body, idempotency_key, false).await
}

async fn send_until_final(
    app: &TestApp,
    record: &Shared,
    path: &str,
    key: &str,
    body: &Value,
    idempotency_key: Option<&str>,
    by_body: bool,
) -> TestResponse {
    let mut attempt = 0;
    loop {
        let mut call = app.call(Method::POST, path).key(key).json(body.clone());
        if let Some(idempotency_key) = idempotency_key {
            call = call.header("idempotency-key", idempotency_key);
        }
        let response = call.send().await;
        note(record).requests += 1;
        attempt += 1;
        let may_retry = idempotency_key.is_some() || by_body;
        if !retryable(&response) || attempt >= CLIENT_ATTEMPTS || !may_retry {
            return response;
        }
        note(record).retries += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
    }
}

/// A webhook delivery as Stripe makes it: retried until it is answered 2xx.
async fn delivered(app: &TestApp, record: &Shared, event: &Value) -> TestResponse {
    let mut attempt = 0;
    loop {
        let response = deliver(app, event).await;
        note(record).requests += 1;
        attempt += 1;
        if response.status.is_success() || attempt >= CLIENT_ATTEMPTS {
            return response;
        }
        note(record).retries += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
    }
}

struct Client {
    name: String,
    app: std::sync::Arc<TestApp>,
    tenants: Vec<Tenant>,
    rng: billing_tests::fault_proxy::SplitMix,
    record: Shared,
    /// Events this client was told were charged, to deliver again later.
    charged: Vec<(Tenant, Value, i64)>,
    operations: u64,
}

impl Client {
    async fn run(mut self) {
        for n in 0..self.operations {
            let tenant = self.tenants[self.rng.below(self.tenants.len() as u64) as usize].clone();
            match self.rng.below(20) {
                0..=6 => self.usage_event(&tenant, n).await,
                7..=10 => self.agent_run(&tenant, n).await,
                11..=13 => self.service_credit(&tenant, n).await,
                14..=15 => self.top_up(&tenant, n).await,
                16..=17 => self.checkout(&tenant, n).await,
                _ => self.redeliver_usage().await,
            }
        }
    }

    async fn usage_event(&mut self, tenant: &Tenant, n: u64) {
        let event_id = format!("{}-event-{n}", self.name);
        let body = json!({"event_id": event_id, "category": "actions",
                          "quantity": 10 * (1 + self.rng.below(300)), "agent_tier": "basic"});
        let path = format!("/v1/workspaces/{}/usage-events", tenant.workspace);
        let key = (self.rng.below(2) == 0).then(|| format!("{event_id}-key"));
        // A quarter are delivered twice at once, as a client's duplicate would be.
        let copies = if self.rng.below(4) == 0 { 2 } else { 1 };
        let answers = futures::future::join_all((0..copies).map(|_| {
            send_until_final(
                &self.app,
                &self.record,
                &path,
                &tenant.key,
                &body,
                key.as_deref(),
                true,
            )
        }))
        .await;
        let outcomes: Vec<Told> = answers.iter().map(told).collect();
        // Charged if any copy was told so: a copy refused first was answered truly at its time
        // (a refusal claims nothing, so a later delivery may charge the event).
        let outcome = outcomes.iter().copied().min().unwrap_or(Told::Unknown);
        let done: Vec<&TestResponse> = answers.iter().filter(|a| a.status.is_success()).collect();
        let cost = done
            .first()
            .map_or(0, |a| a.body["cost_cents"].as_i64().unwrap_or(0));
        let mut record = note(&self.record);
        if done
            .iter()
            .any(|a| a.body["cost_cents"] != done[0].body["cost_cents"])
        {
            record
                .violations
                .push(format!("event {event_id}: two answers: {answers:?}"));
        }
        record
            .usage
            .push((tenant.account.clone(), event_id, outcome, cost));
        drop(record);
        if outcome == Told::Done {
            self.charged.push((tenant.clone(), body, cost));
        }
    }

    /// An event told charged, delivered again: answered as the first time, charged never again.
    async fn redeliver_usage(&mut self) {
        if self.charged.is_empty() {
            return;
        }
        let (tenant, body, cost) =
            self.charged[self.rng.below(self.charged.len() as u64) as usize].clone();
        let path = format!("/v1/workspaces/{}/usage-events", tenant.workspace);
        let again = send_until_final(
            &self.app,
            &self.record,
            &path,
            &tenant.key,
            &body,
            None,
            true,
        )
        .await;
        if told(&again) != Told::Unknown
            && (!again.status.is_success() || again.body["cost_cents"] != cost)
        {
            note(&self.record).violations.push(format!(
                "event {} delivered again answered otherwise: {again:?}",
                body["event_id"]
            ));
        }
    }

    async fn agent_run(&mut self, tenant: &Tenant, n: u64) {
        let key = format!("{}-run-{n}", self.name);
        let runs = format!("/v1/workspaces/{}/runs", tenant.workspace);
        let body = json!({"agent_id": format!("agent-{}", self.name), "agent_tier": "basic",
                          "max_cost_cents": 20 + self.rng.below(400)});
        let authorized = until_final(
            &self.app,
            &self.record,
            &runs,
            &tenant.key,
            &body,
            Some(&key),
        )
        .await;
        let run_id = authorized.body["run_id"].as_str().map(str::to_owned);
        note(&self.record)
            .runs
            .push((tenant.workspace.clone(), run_id.clone(), told(&authorized)));
        let Some(run_id) = run_id.filter(|_| authorized.status.is_success()) else {
            return;
        };
        for sequence in 1..=self.rng.below(3) {
            let report = json!({"sequence": sequence, "input_tokens": 1000 * self.rng.below(50),
                                "actions": 10 * self.rng.below(500)});
            until_final(
                &self.app,
                &self.record,
                &format!("{runs}/{run_id}/usage"),
                &tenant.key,
                &report,
                Some(&format!("{key}-usage-{sequence}")),
            )
            .await;
        }
        // Some runs are left open: the end of the campaign completes them.
        if self.rng.below(6) > 0 {
            let done = json!({"output_tokens": 1000 * self.rng.below(100)});
            until_final(
                &self.app,
                &self.record,
                &format!("{runs}/{run_id}/complete"),
                &tenant.key,
                &done,
                Some(&format!("{key}-complete")),
            )
            .await;
        }
    }

    async fn service_credit(&mut self, tenant: &Tenant, n: u64) {
        let reason = format!("{}-credit-{n}", self.name);
        let body = if self.rng.below(3) == 0 {
            json!({"amount_cents": -(50 + self.rng.below(1500) as i64), "type": "adjustment",
                   "reason": reason})
        } else {
            json!({"amount_cents": 50 + self.rng.below(450), "type": "grant", "reason": reason})
        };
        let key = (self.rng.below(3) > 0).then(|| format!("{reason}-key"));
        let path = format!("/v1/workspaces/{}/billing/credits", tenant.workspace);
        let answer = until_final(
            &self.app,
            &self.record,
            &path,
            &self.app.service_key,
            &body,
            key.as_deref(),
        )
        .await;
        note(&self.record)
            .credits
            .push((tenant.account.clone(), reason, told(&answer)));
    }

    async fn top_up(&mut self, tenant: &Tenant, n: u64) {
        let key = format!("{}-top-up-{n}", self.name);
        let path = format!("/v1/workspaces/{}/billing/top-up", tenant.workspace);
        let body = json!({"amount_cents": 500 + 100 * self.rng.below(5)});
        let answer = until_final(
            &self.app,
            &self.record,
            &path,
            &tenant.key,
            &body,
            Some(&key),
        )
        .await;
        let reference = answer.body["reference"].as_str().map(str::to_owned);
        note(&self.record)
            .top_ups
            .push((tenant.account.clone(), reference, told(&answer)));
    }

    async fn checkout(&mut self, tenant: &Tenant, n: u64) {
        let key = format!("{}-checkout-{n}", self.name);
        let amount = 500 + 100 * self.rng.below(10) as i64;
        let path = format!("/v1/workspaces/{}/billing/checkout", tenant.workspace);
        let body = json!({"amount_cents": amount, "success_url": "https://app.example/ok",
                          "cancel_url": "https://app.example/cancel"});
        let created = until_final(
            &self.app,
            &self.record,
            &path,
            &tenant.key,
            &body,
            Some(&key),
        )
        .await;
        let Some(session) = created.body["checkout_session_id"].as_str() else {
            return;
        };
        let event_id = format!("evt_{}_{n}", self.name.replace('-', "_"));
        let paid = session_completed(&event_id, session, amount, self.app.clock_now());
        // Stripe delivers an event once or more, at once; the local completion may race it.
        let deliveries = 1 + self.rng.below(3);
        let complete_local = self.rng.below(3) == 0;
        let complete_path = format!(
            "/v1/workspaces/{}/billing/dev/complete-local",
            tenant.workspace
        );
        let complete_body = json!({"checkout_session_id": session});
        let (answers, _) = futures::join!(
            futures::future::join_all((0..deliveries).map(|_| delivered(
                &self.app,
                &self.record,
                &paid
            ))),
            async {
                if complete_local {
                    until_final(
                        &self.app,
                        &self.record,
                        &complete_path,
                        &tenant.key,
                        &complete_body,
                        Some(&format!("{key}-local")),
                    )
                    .await;
                }
            }
        );
        let applied = answers
            .iter()
            .filter(|a| a.body["handled"] == "applied")
            .count();
        let mut record = note(&self.record);
        if applied > 1 {
            record
                .violations
                .push(format!("checkout {session}: {applied} deliveries applied"));
        }
        record
            .checkouts
            .push((tenant.account.clone(), session.to_owned(), event_id));
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::N(value)) => value.parse().ok(),
        _ => None,
    }
}

fn nested<'a>(item: &'a Item, name: &str) -> Option<&'a Item> {
    match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::M(map)) => Some(map),
        _ => None,
    }
}

/// A ledger transaction: in its own item, a usage claim's, or (written before histories were
/// spread) in its account's partition.
fn is_transaction(item: &Item) -> bool {
    let (pk, sk) = (text(item, "pk"), text(item, "sk"));
    text(item, "gsi3pk").starts_with("TXNS#")
        || (pk.starts_with("ACCOUNT#") && sk.starts_with("TXN#"))
}

/// The campaign's invariants, over the table as it is and what the clients were told.
fn violations(items: &[Item], record: &Record) -> Vec<String> {
    use std::collections::{BTreeMap, HashMap, HashSet};
    let mut found = Vec::new();
    let mut ledger_sum: HashMap<&str, i64> = HashMap::new();
    let mut by_reason: HashMap<&str, usize> = HashMap::new();
    // Per account: a plan's period credit names its period, the same in every workspace.
    let mut by_reference: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut by_run: HashMap<&str, usize> = HashMap::new();
    let mut transaction_ids: std::collections::HashSet<&str> = Default::default();
    let mut open_holds: HashMap<&str, i64> = HashMap::new();
    let mut open_budget_holds: HashMap<&str, i64> = HashMap::new();
    let mut runs_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut usage_claims: std::collections::HashSet<&str> = Default::default();
    for item in items {
        let (pk, sk) = (text(item, "pk"), text(item, "sk"));
        if pk.starts_with("USAGE_EVENT#") {
            usage_claims.insert(pk);
        }
        if is_transaction(item) {
            let account = text(item, "billing_account_id");
            *ledger_sum.entry(account).or_default() += number(item, "amount_cents").unwrap_or(0);
            *by_reason.entry(text(item, "description")).or_default() += 1;
            transaction_ids.insert(text(item, "id"));
            let reference = text(item, "reference");
            if !reference.is_empty() {
                *by_reference
                    .entry((account, text(item, "type"), reference))
                    .or_default() += 1;
            }
            let run = text(item, "run_id");
            if !run.is_empty() {
                *by_run.entry(run).or_default() += 1;
            }
        } else if pk.starts_with("RUN#") && sk == "RUN" {
            *runs_of.entry(text(item, "workspace_id")).or_default() += 1;
            if text(item, "status") == "authorized" {
                let hold = number(item, "hold_cents").unwrap_or(0);
                *open_holds
                    .entry(text(item, "billing_account_id"))
                    .or_default() += hold;
                *open_budget_holds
                    .entry(text(item, "workspace_id"))
                    .or_default() += hold;
            }
        }
    }
    for item in items {
        let (pk, sk) = (text(item, "pk"), text(item, "sk"));
        if pk.starts_with("ACCOUNT#") && sk == "ACCOUNT" {
            let id = &pk["ACCOUNT#".len()..];
            let balance = number(item, "balance_cents").unwrap_or(0);
            let held = number(item, "held_cents").unwrap_or(0);
            let sum = ledger_sum.get(id).copied().unwrap_or(0);
            if sum != balance {
                found.push(format!(
                    "account {id}: transactions sum to {sum}, balance {balance}"
                ));
            }
            if balance - held < 0 {
                found.push(format!("account {id}: available {} < 0", balance - held));
            }
            let holds = open_holds.get(id).copied().unwrap_or(0);
            if held != holds {
                found.push(format!("account {id}: held {held}, open runs hold {holds}"));
            }
            let cap = nested(item, "settings").and_then(|s| number(s, "hard_cap_cents"));
            let spent = number(item, "spent_month_cents").unwrap_or(0);
            if cap.is_some_and(|cap| spent > cap) {
                found.push(format!(
                    "account {id}: spent {spent} beyond its hard cap {cap:?}"
                ));
            }
        } else if pk.starts_with("WS#") && sk == "BUDGET" {
            let id = text(item, "workspace_id");
            let held = number(item, "held_cents").unwrap_or(0);
            let holds = open_budget_holds.get(id).copied().unwrap_or(0);
            if held != holds {
                found.push(format!(
                    "workspace {id}: held {held}, open runs hold {holds}"
                ));
            }
            let (cap, spent) = (
                number(item, "hard_cap_cents"),
                number(item, "spent_month_cents"),
            );
            if let (Some(cap), Some(spent)) = (cap, spent) {
                if spent > cap {
                    found.push(format!(
                        "workspace {id}: spent {spent} beyond its hard cap {cap}"
                    ));
                }
            }
        } else if pk.starts_with("RUN#") && sk == "RUN" {
            let run = text(item, "run_id");
            if text(item, "status") == "authorized" {
                found.push(format!("run {run} was never settled"));
            }
            let settled_by = nested(item, "settlement").map(|s| text(s, "transaction_id"));
            match settled_by {
                Some("") | None => {
                    if by_run.get(run).copied().unwrap_or(0) != 0 {
                        found.push(format!("run {run}: a transaction without a settlement's"));
                    }
                }
                Some(id) if !transaction_ids.contains(id) => found.push(format!(
                    "run {run}: its settlement's transaction {id} is missing"
                )),
                Some(_) => {}
            }
        }
    }
    for (run, count) in &by_run {
        if *count > 1 {
            found.push(format!("run {run}: {count} transactions"));
        }
    }
    // The usage counters (applied after each debit, once) agree with the usage debited: per
    // workspace, the monthly counters' cost is what its usage transactions took.
    let mut counted: BTreeMap<&str, i64> = BTreeMap::new();
    let mut debited: BTreeMap<&str, i64> = BTreeMap::new();
    for item in items {
        let (pk, sk) = (text(item, "pk"), text(item, "sk"));
        if let Some(workspace) = pk
            .strip_prefix("WS_USAGE#")
            .filter(|_| sk.starts_with("M#"))
        {
            *counted.entry(workspace).or_default() += number(item, "cost_cents").unwrap_or(0);
        }
        if is_transaction(item) && text(item, "type") == "usage" {
            *debited.entry(text(item, "workspace_id")).or_default() -=
                number(item, "amount_cents").unwrap_or(0);
        }
    }
    for workspace in counted.keys().chain(debited.keys()).collect::<HashSet<_>>() {
        let (c, d) = (counted.get(workspace), debited.get(workspace));
        if c.copied().unwrap_or(0) != d.copied().unwrap_or(0) {
            found.push(format!(
                "workspace {workspace}: counters count {c:?} cents of usage, transactions {d:?}"
            ));
        }
    }
    for ((account, kind, reference), count) in &by_reference {
        if *count > 1 {
            found.push(format!(
                "{account}: {kind} {reference}: {count} transactions"
            ));
        }
    }
    let references = |kind: &str, reference: &str| -> usize {
        by_reference
            .iter()
            .filter(|((_, k, r), _)| *k == kind && *r == reference)
            .map(|(_, count)| count)
            .sum()
    };
    for (_, event, told, cost) in &record.usage {
        let claimed = usage_claims
            .iter()
            .any(|pk| pk.ends_with(&format!("#{event}")));
        let charged = references("usage", event);
        match told {
            Told::Done if *cost > 0 && charged != 1 => found.push(format!(
                "event {event}: told charged, {charged} transactions"
            )),
            Told::Refused if claimed || charged > 0 => {
                found.push(format!("event {event}: told refused, but charged"))
            }
            _ => {}
        }
    }
    for (_, reason, told) in &record.credits {
        let made = by_reason.get(reason.as_str()).copied().unwrap_or(0);
        let wrong = match told {
            Told::Done => made != 1,
            Told::Refused => made != 0,
            Told::Unknown => made > 1,
        };
        if wrong {
            found.push(format!(
                "credit {reason}: told {told:?}, {made} transactions"
            ));
        }
    }
    for (_, reference, told) in &record.top_ups {
        if let (Told::Done, Some(reference)) = (told, reference) {
            let made = references("top_up", reference);
            if made != 1 {
                found.push(format!(
                    "top-up {reference}: told done, {made} transactions"
                ));
            }
        }
    }
    for (_, session, _) in &record.checkouts {
        let made = references("purchase", session);
        if made != 1 {
            found.push(format!(
                "checkout {session}: {made} purchases after its deliveries"
            ));
        }
    }
    let mut told_runs: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (workspace, _, told) in &record.runs {
        let entry = told_runs.entry(workspace.as_str()).or_default();
        match told {
            Told::Done => entry.0 += 1,
            Told::Unknown => entry.1 += 1,
            Told::Refused => {}
        }
    }
    for (workspace, count) in &runs_of {
        let (done, unknown) = told_runs.get(workspace).copied().unwrap_or_default();
        if *count < done || *count > done + unknown {
            found.push(format!(
                "workspace {workspace}: {count} runs, {done} told authorized, {unknown} unknown"
            ));
        }
    }
    found
}

/// Completes every run still open (through the app, faults disarmed), as its agents would.
async fn complete_open_runs(app: &TestApp, record: &Shared, items: &[Item], tenants: &[Tenant]) {
    for item in items {
        if !(text(item, "pk").starts_with("RUN#") && text(item, "status") == "authorized") {
            continue;
        }
        let workspace = text(item, "workspace_id");
        let Some(tenant) = tenants.iter().find(|t| t.workspace == workspace) else {
            continue;
        };
        let path = format!(
            "/v1/workspaces/{workspace}/runs/{}/complete",
            text(item, "run_id")
        );
        until_final(
            app,
            record,
            &path,
            &tenant.key,
            &json!({}),
            Some(&format!("finish-{}", text(item, "run_id"))),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_campaign_on_every_money_path_keeps_the_ledger_true() {
    let seed = seed_from_env("faults campaign");
    let size = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (clients, operations) = (
        size("FAULT_CLIENTS", CLIENTS),
        size("FAULT_OPERATIONS", OPERATIONS),
    );
    let started = std::time::Instant::now();
    let proxy = FaultProxy::start(&dynamodb_endpoint(), seed, campaign_rates()).await;
    // Two processes of one deployment: each remembers state and takes turns only in itself.
    let first = std::sync::Arc::new(spawn_through(&proxy).await);
    let table = first.app.store.table_name().to_owned();
    let second = std::sync::Arc::new(spawn_process(&proxy, Some(&table)).await);
    let mut tenants = Vec::new();
    for index in 0..TENANTS {
        let (key, account, workspace) = workspace(&first, &format!("tenant-{index}")).await;
        let card = first
            .post(
                &format!("/v1/workspaces/{workspace}/billing/payment-method"),
                &key,
                json!({"payment_method_id": "pm_card_visa"}),
            )
            .await;
        assert_eq!(card.status, StatusCode::OK, "{:?}", card.body);
        // One account capped, one workspace capped, two without caps.
        let capped = match index {
            0 => {
                first
                    .patch(
                        &format!("/v1/billing-accounts/{account}"),
                        &key,
                        json!({"hard_cap_cents": 2500}),
                    )
                    .await
            }
            1 => {
                first
                    .patch(
                        &format!("/v1/workspaces/{workspace}/billing"),
                        &key,
                        json!({"hard_cap_cents": 2000}),
                    )
                    .await
            }
            _ => card,
        };
        assert_eq!(capped.status, StatusCode::OK, "{:?}", capped.body);
        tenants.push(Tenant {
            key,
            account,
            workspace,
        });
    }
    let record: Shared = Default::default();
    let setup_secs = started.elapsed().as_secs_f64();
    proxy.arm(true);
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (app, tenants, record, sampling) = (
            first.clone(),
            tenants.clone(),
            record.clone(),
            sampling.clone(),
        );
        tokio::spawn(async move {
            let mut ticks = 0;
            while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                // One account per tick, in turn: reads are sampled, not the load.
                for tenant in tenants.iter().cycle().skip(ticks % tenants.len()).take(1) {
                    let read = balance(&app, &tenant.key, &tenant.account).await;
                    let mut record = note(&record);
                    if let Some(available) = read["available_cents"].as_i64() {
                        record.sampled_reads += 1;
                        if available < 0 {
                            record.violations.push(format!(
                                "account {}: read available {available}",
                                tenant.account
                            ));
                        }
                    }
                }
                ticks += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    };
    let clients = (0..clients).map(|index| {
        Client {
            name: format!("c{index}"),
            app: if index % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            },
            tenants: tenants.clone(),
            rng: billing_tests::fault_proxy::SplitMix(seed ^ (index + 1).wrapping_mul(0x9E37_79B9)),
            record: record.clone(),
            charged: Vec::new(),
            operations,
        }
        .run()
    });
    futures::future::join_all(clients).await;
    sampling.store(false, std::sync::atomic::Ordering::SeqCst);
    sampler.await.expect("the sampler ran");
    let campaign_secs = started.elapsed().as_secs_f64();
    let injected = proxy.injected();
    proxy.arm(false);

    // Settle what is left as clients eventually would: open runs completed, every checkout's
    // event delivered once more (Stripe retries until it is answered).
    let direct = billing_tests::app::direct_store(&first).await;
    complete_open_runs(&first, &record, &scan(&direct).await, &tenants).await;
    let checkouts = note(&record).checkouts.clone();
    for (_, session, event_id) in &checkouts {
        let paid = session_completed(event_id, session, 0, first.clock_now());
        delivered(&first, &record, &paid).await;
    }
    let items = scan(&direct).await;
    let record = std::mem::take(&mut *note(&record));
    let mut found = record.violations.clone();
    found.extend(violations(&items, &record));

    let count = |told: &[Told], wanted: Told| told.iter().filter(|t| **t == wanted).count();
    let summary = |name: &str, told: Vec<Told>| {
        format!(
            "{name} {} done / {} refused / {} unknown",
            count(&told, Told::Done),
            count(&told, Told::Refused),
            count(&told, Told::Unknown)
        )
    };
    println!(
        "faults campaign: seed {seed}, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("faults campaign: set up in {setup_secs:.1} s, clients done at {campaign_secs:.1} s");
    println!("faults campaign: injected {injected:?}");
    println!(
        "faults campaign: requests to DynamoDB {:?}",
        proxy.requests()
    );
    println!(
        "faults campaign: {} API requests ({} retries), {} sampled balance reads",
        record.requests, record.retries, record.sampled_reads
    );
    println!(
        "faults campaign: {}; {}; {}; {}; {} checkouts",
        summary("usage events", record.usage.iter().map(|u| u.2).collect()),
        summary("runs", record.runs.iter().map(|r| r.2).collect()),
        summary("credits", record.credits.iter().map(|c| c.2).collect()),
        summary("top-ups", record.top_ups.iter().map(|t| t.2).collect()),
        record.checkouts.len()
    );
    println!("faults campaign: {} violations", found.len());
    assert!(
        found.is_empty(),
        "FAULT_SEED={seed}: {} violations:\n{}",
        found.len(),
        found.join("\n")
    );
}
