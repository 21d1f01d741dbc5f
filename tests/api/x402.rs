//! `POST .../billing/checkout/x402`: the official x402 Python client buys credits exactly once;
//! replays, concurrent uses and refused authorizations move nothing; v1 payments; the deployed
//! path against a stub facilitator (verify refuses, settle fails, facilitator down).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use billing_core::config::FacilitatorConfig;
use billing_core::x402::evm::{hex, parse_hex, Address, U256};
use billing_tests::app::{spawn_app, spawn_app_with, TestApp, TestResponse};
use billing_tests::python;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The contract's throwaway key (address 0x2c7536E3605D9C16a7a3D7b1898e529396a65c23).
const PAYER_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const PAYER: &str = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";

struct Buyer {
    key: String,
    workspace: String,
}

async fn buyer(app: &TestApp) -> Buyer {
    let (_, _, key) = app.user_with_key("agent-buyer").await;
    let workspace = app.create_workspace(&key, "Agents").await;
    Buyer { key, workspace }
}

impl Buyer {
    fn path(&self) -> String {
        format!("/v1/workspaces/{}/billing/checkout/x402", self.workspace)
    }

    fn url(&self, app: &TestApp) -> String {
        format!("{}{}", app.base_url, self.path())
    }

    async fn balance(&self, app: &TestApp) -> i64 {
        let balance = app
            .get(
                &format!("/v1/workspaces/{}/billing/balance", self.workspace),
                &self.key,
            )
            .await;
        balance.body["balance_cents"].as_i64().unwrap()
    }

    async fn purchases(&self, app: &TestApp) -> usize {
        let list = app
            .get(
                &format!("/v1/workspaces/{}/billing/transactions", self.workspace),
                &self.key,
            )
            .await;
        list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["type"] == "purchase")
            .count()
    }

    async fn pay(&self, app: &TestApp, cents: i64, headers: &[(&str, &str)]) -> TestResponse {
        let mut call = app
            .call(Method::POST, self.path())
            .key(&self.key)
            .json(json!({"amount_cents": cents}));
        for (name, value) in headers {
            call = call.header(name, value);
        }
        call.send().await
    }

    /// The `PAYMENT-SIGNATURE` the official client makes for `cents`.
    async fn signed_by_the_client(&self, app: &TestApp, cents: i64) -> String {
        let out = python::run(
            "x402_pay.py",
            &[
                "sign",
                &self.url(app),
                &self.key,
                PAYER_KEY,
                &cents.to_string(),
            ],
        )
        .await;
        assert_eq!(out["status"], 402);
        out["headers"]["PAYMENT-SIGNATURE"]
            .as_str()
            .unwrap_or_else(|| panic!("no PAYMENT-SIGNATURE in {out}"))
            .to_owned()
    }
}

fn decode(header: &str) -> Value {
    serde_json::from_slice(&BASE64.decode(header).unwrap()).unwrap()
}

fn encode(value: &Value) -> String {
    BASE64.encode(value.to_string())
}

/// The 402's reason, which must be the same in the header and the body.
fn refusal(answer: &TestResponse) -> String {
    assert_eq!(
        answer.status,
        StatusCode::PAYMENT_REQUIRED,
        "{:?}",
        answer.body
    );
    let header = decode(answer.headers["payment-required"].to_str().unwrap());
    assert_eq!(header["error"], answer.body["error"]);
    answer.body["error"].as_str().unwrap().to_owned()
}

/// A v1 or v2 `exact` payment signed here with the throwaway key (for the paths the Python
/// client does not take: v1, and the stub facilitator).
fn sign_here(app: &TestApp, cents: i64, nonce: u8, v1: bool) -> String {
    let config = &app.app.config.x402;
    let now = app.clock_now();
    let authorization = billing_core::x402::evm::TransferWithAuthorization {
        from: Address::parse(PAYER).unwrap(),
        to: config.pay_to,
        value: U256::from_u128(cents as u128 * 10_000),
        valid_after: U256::from_u128((now - 60) as u128),
        valid_before: U256::from_u128((now + 300) as u128),
        nonce: [nonce; 32],
    };
    let digest = authorization.digest(&billing_core::x402::evm::Domain {
        name: &config.asset_name,
        version: &config.asset_version,
        chain_id: config.network.chain_id(),
        verifying_contract: config.asset,
    });
    let key = k256::ecdsa::SigningKey::from_slice(&parse_hex::<32>(PAYER_KEY).unwrap()).unwrap();
    let (signature, recovery) = key.sign_prehash_recoverable(&digest).unwrap();
    let mut bytes = signature.to_bytes().to_vec();
    bytes.push(27 + recovery.to_byte());
    let exact = json!({
        "signature": format!("0x{}", hex(&bytes)),
        "authorization": {
            "from": PAYER, "to": config.pay_to.checksummed(),
            "value": (cents * 10_000).to_string(),
            "validAfter": (now - 60).to_string(), "validBefore": (now + 300).to_string(),
            "nonce": format!("0x{}", hex(&[nonce; 32])),
        },
    });
    let payload = if v1 {
        json!({"x402Version": 1, "scheme": "exact", "network": config.network.v1_name(), "payload": exact})
    } else {
        json!({"x402Version": 2, "accepted": {
            "scheme": "exact", "network": config.network.caip2(), "amount": (cents * 10_000).to_string(),
            "asset": config.asset.checksummed(), "payTo": config.pay_to.checksummed(),
            "maxTimeoutSeconds": config.max_timeout_seconds,
            "extra": {"name": config.asset_name, "version": config.asset_version},
        }, "payload": exact})
    };
    encode(&payload)
}

#[tokio::test]
async fn without_a_payment_the_answer_is_the_402_that_says_what_to_pay() {
    let app = spawn_app().await;
    let buyer = buyer(&app).await;
    let answer = buyer.pay(&app, 500, &[]).await;
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED);
    let required = decode(answer.headers["payment-required"].to_str().unwrap());
    let url = buyer.url(&app);
    assert_eq!(
        required,
        json!({
            "x402Version": 2,
            "error": "PAYMENT-SIGNATURE header is required",
            "resource": {"url": url, "description": format!("500 cents of credits for {}", buyer.workspace), "mimeType": "application/json"},
            "accepts": [{
                "scheme": "exact", "network": "eip155:84532", "amount": "5000000",
                "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
                "maxTimeoutSeconds": 300, "extra": {"name": "USDC", "version": "2"},
            }],
        })
    );
    assert_eq!(answer.body["x402Version"], 1);
    assert_eq!(answer.body["error"], "X-PAYMENT header is required");
    assert_eq!(answer.body["accepts"][0]["network"], "base-sepolia");
    assert_eq!(answer.body["accepts"][0]["maxAmountRequired"], "5000000");
    assert_eq!(answer.body["accepts"][0]["resource"], url);
    // Auth and the body come first, in the envelope.
    assert_eq!(
        buyer.pay(&app, 100, &[]).await.error_code(),
        "invalid_request"
    );
    let read_key = app
        .create_key(json!({"type": "workspace", "id": buyer.workspace, "role": "read"}))
        .await;
    let read = app
        .post(&buyer.path(), &read_key, json!({"amount_cents": 500}))
        .await;
    assert_eq!(read.status, StatusCode::FORBIDDEN);
    // A header that is not a payment payload: 400.
    let garbage = buyer
        .pay(&app, 500, &[("payment-signature", "not base64!")])
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbage.error_code(), "invalid_request");
}

#[tokio::test]
async fn the_official_client_buys_500_cents_exactly_once() {
    let app = spawn_app().await;
    let buyer = buyer(&app).await;
    let before = buyer.balance(&app).await;
    let out = python::run(
        "x402_pay.py",
        &["buy", &buyer.url(&app), &buyer.key, PAYER_KEY, "500"],
    )
    .await;
    assert_eq!(out["status"], 200, "{out}");
    let transaction = &out["body"];
    assert_eq!(transaction["type"], "purchase");
    assert_eq!(transaction["amount_cents"], 500);
    assert_eq!(transaction["description"], "credits purchased (x402)");
    assert_eq!(transaction["balance_after_cents"], before + 500);
    let settled = &out["payment_response"];
    assert_eq!(settled["success"], true);
    assert_eq!(settled["network"], "eip155:84532");
    assert_eq!(settled["payer"], PAYER);
    assert_eq!(settled["amount"], "5000000");
    assert_eq!(settled["transaction"], transaction["reference"]);
    assert_eq!(buyer.balance(&app).await, before + 500);
    assert_eq!(buyer.purchases(&app).await, 1);
    // The purchase's event was written with it.
    let events = app.app.store.all_events().await.unwrap();
    let purchased: Vec<_> = events
        .iter()
        .filter(|e| e.kind == billing_core::domain::events::EventType::CreditsPurchased)
        .map(|e| serde_json::from_str::<Value>(&e.event).unwrap()["data"].clone())
        .collect();
    assert_eq!(purchased.len(), 1);
    assert_eq!(purchased[0]["method"], "x402");
    assert_eq!(purchased[0]["reference"], transaction["reference"]);
    assert_eq!(purchased[0]["payer"], PAYER);
}

#[tokio::test]
async fn an_authorization_presented_again_credits_nothing_more() {
    let app = spawn_app().await;
    let buyer = buyer(&app).await;
    let before = buyer.balance(&app).await;
    let payment = buyer.signed_by_the_client(&app, 500).await;
    // A 402 without payment is never kept under the key the paid retry carries.
    let unpaid = buyer.pay(&app, 500, &[("idempotency-key", "buy-1")]).await;
    assert_eq!(unpaid.status, StatusCode::PAYMENT_REQUIRED);
    let paid = buyer
        .pay(
            &app,
            500,
            &[
                ("idempotency-key", "buy-1"),
                ("payment-signature", &payment),
            ],
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{:?}", paid.body);
    // The same key, body and header: the first 200 again, with its PAYMENT-RESPONSE.
    let replayed = buyer
        .pay(
            &app,
            500,
            &[
                ("idempotency-key", "buy-1"),
                ("payment-signature", &payment),
            ],
        )
        .await;
    assert_eq!(replayed.status, StatusCode::OK);
    assert_eq!(replayed.body, paid.body);
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    assert_eq!(
        replayed.headers["payment-response"],
        paid.headers["payment-response"]
    );
    // The same key with another header: reused.
    let other = sign_here(&app, 500, 0x33, false);
    let reused = buyer
        .pay(
            &app,
            500,
            &[("idempotency-key", "buy-1"), ("payment-signature", &other)],
        )
        .await;
    assert_eq!(reused.error_code(), "idempotency_key_reused");
    // Without the key, or under another: the authorization is spent.
    let again = buyer
        .pay(&app, 500, &[("payment-signature", &payment)])
        .await;
    assert_eq!(refusal(&again), "invalid_exact_evm_nonce_already_used");
    let other_key = buyer
        .pay(
            &app,
            500,
            &[
                ("idempotency-key", "buy-2"),
                ("payment-signature", &payment),
            ],
        )
        .await;
    assert_eq!(refusal(&other_key), "invalid_exact_evm_nonce_already_used");
    assert_eq!(buyer.balance(&app).await, before + 500);
    assert_eq!(buyer.purchases(&app).await, 1);
}

#[tokio::test]
async fn concurrent_uses_of_one_authorization_credit_it_once() {
    let app = spawn_app().await;
    let buyer = buyer(&app).await;
    let before = buyer.balance(&app).await;
    let payment = buyer.signed_by_the_client(&app, 500).await;
    let headers = [("payment-signature", payment.as_str())];
    let answers = futures::future::join_all((0..8).map(|_| buyer.pay(&app, 500, &headers))).await;
    let paid = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    assert_eq!(
        paid,
        1,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for refused in answers.iter().filter(|a| a.status != StatusCode::OK) {
        assert_eq!(refusal(refused), "invalid_exact_evm_nonce_already_used");
    }
    assert_eq!(buyer.balance(&app).await, before + 500);
    assert_eq!(buyer.purchases(&app).await, 1);
}

#[tokio::test]
async fn smaller_redirected_tampered_or_expired_authorizations_are_refused_and_move_nothing() {
    let app = spawn_app().await;
    let buyer = buyer(&app).await;
    let before = buyer.balance(&app).await;
    let payment = buyer.signed_by_the_client(&app, 500).await;
    let original = decode(&payment);
    let tampered = |change: &dyn Fn(&mut Value)| {
        let mut payload = original.clone();
        change(&mut payload);
        encode(&payload)
    };
    let authorization = "/payload/authorization";
    let cases: Vec<(String, i64, &str)> = vec![
        // Paying 500 for a 600-cent purchase.
        (payment.clone(), 600, "payment_requirements_mismatch"),
        (
            tampered(&|p| p.pointer_mut(authorization).unwrap()["value"] = json!("4000000")),
            500,
            "invalid_exact_evm_payload_authorization_value_mismatch",
        ),
        (
            tampered(&|p| p.pointer_mut(authorization).unwrap()["to"] = json!(PAYER)),
            500,
            "invalid_exact_evm_payload_recipient_mismatch",
        ),
        (
            tampered(&|p| {
                p.pointer_mut(authorization).unwrap()["validAfter"] =
                    json!((app.clock_now() + 3600).to_string())
            }),
            500,
            "invalid_exact_evm_payload_authorization_valid_after",
        ),
        (
            tampered(&|p| {
                p.pointer_mut(authorization).unwrap()["nonce"] =
                    json!(format!("0x{}", "44".repeat(32)))
            }),
            500,
            "invalid_exact_evm_payload_signature",
        ),
        (
            tampered(&|p| {
                let signature = p["payload"]["signature"].as_str().unwrap().to_owned();
                let flipped = if signature.ends_with("1b") {
                    "1c"
                } else {
                    "1b"
                };
                p["payload"]["signature"] =
                    json!(format!("{}{flipped}", &signature[..signature.len() - 2]));
            }),
            500,
            "invalid_exact_evm_payload_signature",
        ),
    ];
    for (header, cents, reason) in &cases {
        let answer = buyer
            .pay(&app, *cents, &[("payment-signature", header)])
            .await;
        assert_eq!(refusal(&answer), *reason);
    }
    assert_eq!(buyer.balance(&app).await, before);
    // Expired: the same authorization once its window has passed.
    app.clock.advance(time::Duration::seconds(600));
    let expired = buyer
        .pay(&app, 500, &[("payment-signature", &payment)])
        .await;
    assert_eq!(
        refusal(&expired),
        "invalid_exact_evm_payload_authorization_valid_before"
    );
    assert_eq!(buyer.balance(&app).await, before);
    assert_eq!(buyer.purchases(&app).await, 0);
}

#[tokio::test]
async fn a_v1_payment_is_answered_with_x_payment_response() {
    let app = spawn_app().await;
    let buyer = buyer(&app).await;
    let payment = sign_here(&app, 700, 0x55, true);
    let paid = buyer.pay(&app, 700, &[("x-payment", &payment)]).await;
    assert_eq!(paid.status, StatusCode::OK, "{:?}", paid.body);
    let settled = decode(paid.headers["x-payment-response"].to_str().unwrap());
    assert_eq!(settled["network"], "base-sepolia");
    assert_eq!(settled["success"], true);
    assert!(paid.headers.get("payment-response").is_none());
    let again = buyer.pay(&app, 700, &[("x-payment", &payment)]).await;
    assert_eq!(refusal(&again), "invalid_exact_evm_nonce_already_used");
}

/// A facilitator stand-in: answers `/verify` and `/settle` as told, and counts the calls.
#[derive(Clone)]
struct StubFacilitator {
    url: String,
    verify: Arc<Mutex<(u16, Value)>>,
    settle: Arc<Mutex<(u16, Value)>>,
    settles: Arc<AtomicUsize>,
}

impl StubFacilitator {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stub = StubFacilitator {
            url: format!("http://{}", listener.local_addr().unwrap()),
            verify: Arc::new(Mutex::new((200, json!({"isValid": true, "payer": PAYER})))),
            settle: Arc::new(Mutex::new((
                200,
                json!({"success": true, "transaction": "0xfeed", "network": "eip155:84532", "payer": PAYER}),
            ))),
            settles: Arc::new(AtomicUsize::new(0)),
        };
        let served = stub.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let stub = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let stub = stub.clone();
                            async move {
                                let path = request.uri().path().to_owned();
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let sent: Value =
                                    serde_json::from_slice(&body).unwrap_or(Value::Null);
                                assert!(
                                    sent["paymentPayload"].is_object()
                                        && sent["paymentRequirements"].is_object()
                                );
                                let (status, answer) = if path == "/settle" {
                                    stub.settles.fetch_add(1, Ordering::SeqCst);
                                    stub.settle.lock().unwrap().clone()
                                } else {
                                    stub.verify.lock().unwrap().clone()
                                };
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from(answer.to_string())))
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
        stub
    }
}

async fn app_with_facilitator(url: &str) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(move |c| {
        c.x402.facilitator = FacilitatorConfig::Http {
            url,
            token_arn: None,
        }
    })
    .await
}

#[tokio::test]
async fn the_deployed_path_settles_through_the_facilitator_and_credits_only_what_it_settled() {
    let stub = StubFacilitator::start().await;
    let app = app_with_facilitator(&stub.url).await;
    let buyer = buyer(&app).await;
    let before = buyer.balance(&app).await;
    // Verify refuses: its reason, no settlement, nothing credited.
    *stub.verify.lock().unwrap() = (
        200,
        json!({"isValid": false, "invalidReason": "insufficient_funds", "payer": PAYER}),
    );
    let payment = sign_here(&app, 500, 0x61, false);
    let refused = buyer
        .pay(&app, 500, &[("payment-signature", &payment)])
        .await;
    assert_eq!(refusal(&refused), "insufficient_funds");
    assert_eq!(stub.settles.load(Ordering::SeqCst), 0);
    // Settle fails: its reason and a failed PAYMENT-RESPONSE; nothing credited.
    *stub.verify.lock().unwrap() = (200, json!({"isValid": true, "payer": PAYER}));
    *stub.settle.lock().unwrap() = (
        200,
        json!({"success": false, "errorReason": "invalid_transaction_state", "transaction": "", "network": "eip155:84532", "payer": PAYER}),
    );
    let failed = buyer
        .pay(&app, 500, &[("payment-signature", &payment)])
        .await;
    assert_eq!(refusal(&failed), "invalid_transaction_state");
    let response = decode(failed.headers["payment-response"].to_str().unwrap());
    assert_eq!(
        response,
        json!({"success": false, "errorReason": "invalid_transaction_state", "transaction": "", "network": "eip155:84532", "payer": PAYER})
    );
    // A facilitator failing (5xx) is a provider error; nothing credited.
    *stub.settle.lock().unwrap() = (503, json!({"error": "down"}));
    let broken = buyer
        .pay(
            &app,
            500,
            &[("payment-signature", &sign_here(&app, 500, 0x62, false))],
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_GATEWAY);
    assert_eq!(broken.error_code(), "payment_provider_error");
    assert_eq!(buyer.balance(&app).await, before);
    // Settled: credited once, with the facilitator's transaction as the reference.
    *stub.settle.lock().unwrap() = (
        200,
        json!({"success": true, "transaction": "0xfeed", "network": "eip155:84532", "payer": PAYER}),
    );
    let paid = buyer
        .pay(&app, 500, &[("payment-signature", &payment)])
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{:?}", paid.body);
    assert_eq!(paid.body["reference"], "0xfeed");
    let settled = decode(paid.headers["payment-response"].to_str().unwrap());
    assert_eq!(settled["transaction"], "0xfeed");
    let again = buyer
        .pay(&app, 500, &[("payment-signature", &payment)])
        .await;
    assert_eq!(refusal(&again), "invalid_exact_evm_nonce_already_used");
    assert_eq!(buyer.balance(&app).await, before + 500);
    assert_eq!(buyer.purchases(&app).await, 1);
    // The authorization whose settlement failed with a 5xx stays pending: after 15 minutes
    // the reconciliation log names it.
    app.clock.advance(time::Duration::minutes(16));
    let stale = billing_core::api::x402_checkout::log_stale_claims(&app.app)
        .await
        .unwrap();
    assert_eq!(stale, 1);
}

#[tokio::test]
async fn a_facilitator_that_is_down_is_a_provider_error_and_credits_nothing() {
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = app_with_facilitator(&url).await;
    let buyer = buyer(&app).await;
    let before = buyer.balance(&app).await;
    let payment = sign_here(&app, 500, 0x71, false);
    let answer = buyer
        .pay(&app, 500, &[("payment-signature", &payment)])
        .await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.error_code(), "payment_provider_error");
    assert_eq!(buyer.balance(&app).await, before);
    // Nothing was claimed: once the facilitator is back, the same authorization pays.
    assert!(app
        .app
        .store
        .x402_claim(&format!(
            "X402#eip155:84532#{}#0x{}",
            PAYER.to_lowercase(),
            "71".repeat(32)
        ))
        .await
        .unwrap()
        .is_none());
}
