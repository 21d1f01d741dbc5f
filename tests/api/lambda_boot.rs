//! The real function binaries, booted against a minimal Lambda Runtime API and handed API Gateway
//! HTTP API (v2) events, as AWS would. `make test` builds them first (`cargo build --bins`).

use billing_core::routes::{Access, Invocation, JOBS, ROUTES};
use billing_tests::app::{dynamodb_endpoint, fresh_store};
use billing_tests::dev_server::debug_binary;
use billing_tests::runtime_api::{http_api_event, lambda_env, RuntimeApi};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::process::{Child, Command};

const SERVICE_KEY: &str = "bk_lambda_boot_service_key_0123456789";

/// A function process talking to its own Runtime API, on a table of its own.
struct Booted {
    api: RuntimeApi,
    _process: Child,
}

async fn boot(name: &str, table: &str) -> Booted {
    let api = RuntimeApi::start().await;
    let process = Command::new(debug_binary(name))
        .envs(lambda_env(&api, name))
        .env("TABLE_NAME", table)
        .env("DYNAMODB_ENDPOINT", dynamodb_endpoint())
        .env("SERVICE_KEY", SERVICE_KEY)
        .env("STAGE", "local")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the function");
    Booted {
        api,
        _process: process,
    }
}

impl Booted {
    /// Invokes with an API Gateway event; returns (status, parsed body).
    async fn call(&self, event: Value) -> (u16, Value) {
        let response = self
            .api
            .invoke(event, Duration::from_secs(20))
            .await
            .expect("the function answers the invocation");
        let status = response["statusCode"].as_u64().expect("a statusCode") as u16;
        let body = response["body"].as_str().unwrap_or("null");
        (status, serde_json::from_str(body).expect("a JSON body"))
    }
}

fn concrete(path: &str) -> String {
    path.replace("{keyId}", "key_00000000000000000000000000")
        .replace("{billingAccountId}", "ba_00000000000000000000000000")
        .replace("{workspaceId}", "ws_00000000000000000000000000")
        .replace("{runId}", "run_00000000000000000000000000")
}

#[tokio::test]
async fn every_function_binary_boots_and_answers_its_route() {
    let store = fresh_store().await;
    for route in ROUTES {
        let booted = boot(route.name, store.table_name()).await;
        let path = concrete(route.path);
        let event = http_api_event(
            route.method.as_str(),
            route.path,
            &path,
            "",
            &[],
            None,
            None,
        );
        let (status, body) = booted.call(event).await;
        match route.access {
            // Stripe's webhook authenticates by its signature: an unsigned call is a 400.
            Access::Public if route.name == "stripe-webhook" => {
                assert_eq!(status, 400, "{}: {body}", route.name);
                assert!(body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Stripe-Signature"));
            }
            Access::Public => assert_eq!(status, 200, "{}: {body}", route.name),
            _ => {
                assert_eq!(status, 401, "{}: {body}", route.name);
                assert_eq!(body["error"]["code"], "unauthorized", "{}", route.name);
            }
        }
    }
}

#[tokio::test]
async fn a_function_works_with_and_without_api_gateway_path_parameters() {
    let store = fresh_store().await;
    let auth = format!("Bearer {SERVICE_KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];

    let create = boot("users-create", store.table_name()).await;
    let body = json!({"external_id": "lambda-user"}).to_string();
    let event = http_api_event(
        "POST",
        "/v1/users",
        "/v1/users",
        "",
        &headers,
        Some(&body),
        None,
    );
    let (status, created) = create.call(event.clone()).await;
    assert_eq!(status, 201, "{created}");
    let (again, _) = create.call(event).await;
    assert_eq!(again, 200, "the warm function answers a second invocation");
    let account = created["default_billing_account"]["id"].as_str().unwrap();

    let get = boot("billing-accounts-get", store.table_name()).await;
    let template = "/v1/billing-accounts/{billingAccountId}";
    let path = format!("/v1/billing-accounts/{account}");
    let filled = [("billingAccountId", account)];
    for params in [Some(&filled[..]), None] {
        let event = http_api_event("GET", template, &path, "", &headers, None, params);
        let (status, fetched) = get.call(event).await;
        assert_eq!(status, 200, "{fetched}");
        assert_eq!(fetched["balance_cents"], 1000);
    }

    let list = boot("billing-accounts-transactions", store.table_name()).await;
    let event = http_api_event(
        "GET",
        "/v1/billing-accounts/{billingAccountId}/transactions",
        &format!("/v1/billing-accounts/{account}/transactions"),
        "type=grant&limit=5",
        &headers,
        None,
        None,
    );
    let (status, ledger) = list.call(event).await;
    assert_eq!(status, 200, "{ledger}");
    assert_eq!(ledger["data"][0]["type"], "grant");
}

#[tokio::test]
async fn every_job_binary_boots_and_runs_on_a_scheduled_event() {
    let store = fresh_store().await;
    for job in JOBS {
        let booted = boot(job.name, store.table_name()).await;
        // A job without a recurring schedule is invoked by a one-time schedule with its payload:
        // here, a deadline of a workspace that doesn't exist (nothing to do).
        let deadline = json!({
            "workspace_id": "ws_00000000000000000000000000",
            "trigger": "trial_ended",
            "due_at": "2026-03-01T00:00:00Z",
            "version": 1
        });
        let scheduled = json!({
            "version": "0",
            "id": "5b8e5b7e-0000-4000-8000-000000000000",
            "detail-type": "Scheduled Event",
            "source": "aws.scheduler",
            "account": "123456789012",
            "time": "2026-03-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {}
        });
        // The stream's batch and the bus's event carry nothing to do.
        let (event, expected) = match job.invoked_by {
            Invocation::Schedule(_) => (scheduled, json!({"handled": 0})),
            Invocation::OneTimeSchedule => (deadline, json!({"handled": 0})),
            Invocation::TableStream => (
                json!({"Records": []}),
                json!({"handled": 0, "batchItemFailures": []}),
            ),
            Invocation::BusRule => (scheduled, json!({"handled": 0})),
        };
        let result = booted
            .api
            .invoke(event, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", job.name));
        assert_eq!(result, expected, "{}", job.name);
    }
}

fn links_stripe(name: &str) -> bool {
    billing_tests::binaries::links_stripe(&debug_binary(name)).unwrap()
}

#[test]
fn a_function_that_never_calls_stripe_links_no_stripe_code() {
    // Every route outside payments, and that moves no money (a movement may start an
    // auto-recharge, which the route then charges through Stripe).
    let stripe_free: Vec<&str> = ROUTES
        .iter()
        .filter(|route| route.after.is_none())
        .map(|route| route.name)
        .filter(|name| {
            ![
                "checkout",
                "subscribe",
                "portal",
                "setup-intent",
                "payment-method",
                "invoices",
                "recharge-action",
                "publishable-key",
                "no-cap-reminder",
            ]
            .iter()
            .any(|payments| name.contains(payments))
        })
        .collect();
    assert!(stripe_free.contains(&"health"));
    assert!(stripe_free.len() >= 30, "{stripe_free:?}");
    let linked: Vec<&str> = stripe_free
        .iter()
        .copied()
        .filter(|name| links_stripe(name))
        .collect();
    assert!(linked.is_empty(), "these link Stripe: {linked:?}");
    // The probe finds Stripe where it is.
    assert!(links_stripe("stripe-webhook"));
    assert!(links_stripe("usage-events-create"));
}
