//! A fault-injecting HTTP proxy between the AWS SDK and DynamoDB Local. Point a store's endpoint
//! at [`FaultProxy::url`]; the proxy reads each request's `X-Amz-Target` and, by a seeded
//! schedule (or a scripted [`Plan`]), delays it, answers a 500, a throttle or a transaction
//! conflict without forwarding it, or — the fault that matters most — forwards a write and then
//! loses its answer (a 500, or the connection closed), so the write happened and the caller
//! doesn't know. It counts the writes DynamoDB Local applied, per item key.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// An item's key: (pk, sk).
pub type ItemKey = (String, String);

/// What the proxy does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Waits 1–40 ms, then forwards it.
    Delay,
    /// 500 `InternalServerError`, not forwarded.
    ServerError,
    /// 400 `ThrottlingException`, not forwarded.
    Throttling,
    /// 400 `ProvisionedThroughputExceededException`, not forwarded.
    ThroughputExceeded,
    /// A TransactWriteItems answered `TransactionCanceledException` with `TransactionConflict`
    /// reasons, not forwarded.
    TransactionConflict,
    /// A write forwarded (and applied), then answered 500 instead of its answer.
    LostResponse,
    /// A write forwarded (and applied), then its connection closed without an answer.
    LostConnection,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::Delay,
        Fault::ServerError,
        Fault::Throttling,
        Fault::ThroughputExceeded,
        Fault::TransactionConflict,
        Fault::LostResponse,
        Fault::LostConnection,
    ];

    fn applies_to(self, operation: &str) -> bool {
        match self {
            Fault::TransactionConflict => operation == "TransactWriteItems",
            Fault::LostResponse | Fault::LostConnection => is_write(operation),
            _ => true,
        }
    }
}

/// How often each fault is injected, in requests per thousand it applies to.
#[derive(Clone, Debug)]
pub struct Rates(pub Vec<(Fault, u32)>);

impl Rates {
    /// No random faults (only scripted plans).
    pub fn none() -> Self {
        Rates(Vec::new())
    }
}

/// Faults for the requests that match: the n-th matching request gets the n-th fault, and once
/// they are used up the plan passes requests through.
pub struct Plan {
    /// The `X-Amz-Target` operation, e.g. `TransactWriteItems`.
    pub operation: &'static str,
    /// A substring of one of the written (or read) items' partition keys.
    pub key_contains: String,
    pub faults: Vec<Fault>,
}

/// A small deterministic PRNG (splitmix64): the same seed gives the same decisions.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

struct Planned {
    operation: &'static str,
    key_contains: String,
    faults: VecDeque<Fault>,
}

struct State {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    rates: Rates,
    rng: Mutex<SplitMix>,
    plans: Mutex<Vec<Planned>>,
    /// Random faults are injected only while armed (set-up and checks run without them).
    armed: std::sync::atomic::AtomicBool,
    injected: Mutex<BTreeMap<Fault, u64>>,
    requests: Mutex<BTreeMap<String, u64>>,
    writes: Mutex<HashMap<(String, String), u64>>,
    /// The same writes, by the operation that made them (a transaction's cost per item differs).
    writes_by_operation: Mutex<HashMap<(String, ItemKey), u64>>,
    /// Transaction tokens DynamoDB Local applied: a replay of one writes nothing again.
    applied_tokens: Mutex<HashSet<String>>,
}

/// A running proxy. Dropping it leaves its task running until the test's runtime ends.
#[derive(Clone)]
pub struct FaultProxy {
    pub url: String,
    pub seed: u64,
    state: Arc<State>,
}

/// The seed to use: `FAULT_SEED` to replay one, else a new one. Printed either way.
pub fn seed_from_env(name: &str) -> u64 {
    let seed = match std::env::var("FAULT_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FAULT_SEED={text} is not a number")),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            SplitMix(nanos ^ u64::from(std::process::id())).next_u64() % 1_000_000_000
        }
    };
    println!("{name}: FAULT_SEED={seed}");
    seed
}

impl FaultProxy {
    /// A proxy to `upstream` (DynamoDB Local's URL) injecting faults at `rates`, drawn from
    /// `seed`. Random faults start disarmed: see [`FaultProxy::arm`].
    pub async fn start(upstream: &str, seed: u64, rates: Rates) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            rates,
            rng: Mutex::new(SplitMix(seed)),
            plans: Mutex::new(Vec::new()),
            armed: Default::default(),
            injected: Default::default(),
            requests: Default::default(),
            writes: Default::default(),
            writes_by_operation: Default::default(),
            applied_tokens: Default::default(),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    // An error here is a connection the proxy closed on purpose.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { url, seed, state }
    }

    /// Starts (or stops) injecting random faults.
    pub fn arm(&self, armed: bool) {
        self.state
            .armed
            .store(armed, std::sync::atomic::Ordering::SeqCst);
    }

    /// Adds a scripted plan; plans take precedence over random faults, armed or not.
    pub fn plan(&self, plan: Plan) {
        lock(&self.state.plans).push(Planned {
            operation: plan.operation,
            key_contains: plan.key_contains,
            faults: plan.faults.into(),
        });
    }

    /// Whether every scripted fault was used.
    pub fn plans_used(&self) -> bool {
        lock(&self.state.plans).iter().all(|p| p.faults.is_empty())
    }

    /// Faults injected so far, by kind.
    pub fn injected(&self) -> BTreeMap<Fault, u64> {
        lock(&self.state.injected).clone()
    }

    /// Requests seen so far, by operation.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        lock(&self.state.requests).clone()
    }

    /// Writes DynamoDB Local applied so far, per item key (pk, sk); a transaction's replay under
    /// an applied token is not counted again.
    pub fn write_counts(&self) -> HashMap<(String, String), u64> {
        lock(&self.state.writes).clone()
    }

    /// [`FaultProxy::write_counts`] by operation: ((operation, (pk, sk)), writes), e.g. to tell
    /// an item written in a `TransactWriteItems` (2 write units per KB on AWS) from one written
    /// alone (1).
    pub fn writes_by_operation(&self) -> HashMap<(String, ItemKey), u64> {
        lock(&self.state.writes_by_operation).clone()
    }

    /// Applied writes of one item.
    pub fn writes_of(&self, pk: &str, sk: &str) -> u64 {
        lock(&self.state.writes)
            .get(&(pk.to_owned(), sk.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn is_write(operation: &str) -> bool {
    matches!(
        operation,
        "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
    )
}

/// Operations on the table itself (set-up), never faulted.
fn is_control(operation: &str) -> bool {
    matches!(
        operation,
        "CreateTable" | "DescribeTable" | "UpdateTimeToLive" | "UpdateTable" | "DeleteTable"
    )
}

/// The (pk, sk) of every item a request names, writes first; for a transaction, the keys of
/// its writes (not of its condition checks) and whether each is a write.
fn item_keys(operation: &str, body: &Value) -> Vec<((String, String), bool)> {
    let key_of = |item: &Value| -> Option<(String, String)> {
        Some((
            item["pk"]["S"].as_str()?.to_owned(),
            item["sk"]["S"].as_str()?.to_owned(),
        ))
    };
    let mut keys = Vec::new();
    match operation {
        "TransactWriteItems" => {
            for element in body["TransactItems"].as_array().into_iter().flatten() {
                for (kind, field, write) in [
                    ("Put", "Item", true),
                    ("Update", "Key", true),
                    ("Delete", "Key", true),
                    ("ConditionCheck", "Key", false),
                ] {
                    if let Some(key) = key_of(&element[kind][field]) {
                        keys.push((key, write));
                    }
                }
            }
        }
        "PutItem" => keys.extend(key_of(&body["Item"]).map(|k| (k, true))),
        "UpdateItem" | "DeleteItem" => keys.extend(key_of(&body["Key"]).map(|k| (k, true))),
        "GetItem" => keys.extend(key_of(&body["Key"]).map(|k| (k, false))),
        "BatchGetItem" => {
            for table in body["RequestItems"].as_object().into_iter().flatten() {
                for key in table.1["Keys"].as_array().into_iter().flatten() {
                    keys.extend(key_of(key).map(|k| (k, false)));
                }
            }
        }
        "Query" => {
            if let Some(pk) = body["ExpressionAttributeValues"][":pk"]["S"].as_str() {
                keys.push(((pk.to_owned(), String::new()), false));
            }
        }
        _ => {}
    }
    keys
}

fn decide(state: &State, operation: &str, keys: &[((String, String), bool)]) -> Option<Fault> {
    {
        let mut plans = lock(&state.plans);
        let matching = plans.iter_mut().find(|p| {
            p.operation == operation
                && !p.faults.is_empty()
                && keys.iter().any(|((pk, _), _)| pk.contains(&p.key_contains))
        });
        if let Some(plan) = matching {
            return plan.faults.pop_front();
        }
    }
    if !state.armed.load(std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    let draw = lock(&state.rng).below(1000) as u32;
    let mut below = 0;
    for (fault, per_mille) in &state.rates.0 {
        if !fault.applies_to(operation) {
            continue;
        }
        below += per_mille;
        if draw < below {
            return Some(*fault);
        }
    }
    None
}

fn error(status: StatusCode, kind: &str, extra: Value) -> Response<Full<Bytes>> {
    let mut body = json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"),
        "message": format!("injected by the fault proxy: {kind}"),
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", "fault-proxy")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_owned();
    *lock(&state.requests).entry(operation.clone()).or_default() += 1;
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let keys = item_keys(&operation, &parsed);
    let fault = if is_control(&operation) {
        None
    } else {
        decide(&state, &operation, &keys)
    };
    if let Some(fault) = fault {
        *lock(&state.injected).entry(fault).or_default() += 1;
    }
    match fault {
        Some(Fault::ServerError) => {
            return Ok(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                json!({}),
            ))
        }
        Some(Fault::Throttling) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                json!({}),
            ))
        }
        Some(Fault::ThroughputExceeded) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "ProvisionedThroughputExceededException",
                json!({}),
            ))
        }
        Some(Fault::TransactionConflict) => {
            let count = parsed["TransactItems"].as_array().map_or(1, Vec::len);
            let reasons: Vec<Value> = (0..count)
                .map(|i| {
                    if i == 0 {
                        json!({"Code": "TransactionConflict",
                               "Message": "Transaction is ongoing for the item"})
                    } else {
                        json!({"Code": "None"})
                    }
                })
                .collect();
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "TransactionCanceledException",
                json!({"Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                       "CancellationReasons": reasons}),
            ));
        }
        Some(Fault::Delay) => {
            let millis = 1 + lock(&state.rng).below(40);
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        _ => {}
    }
    let (status, headers, answer) = forward(&state, &parts, body).await?;
    if status == StatusCode::OK && is_write(&operation) {
        let replay = parsed["ClientRequestToken"]
            .as_str()
            .is_some_and(|token| !lock(&state.applied_tokens).insert(token.to_owned()));
        if !replay {
            let mut writes = lock(&state.writes);
            let mut by_operation = lock(&state.writes_by_operation);
            for (key, write) in &keys {
                if *write {
                    *writes.entry(key.clone()).or_default() += 1;
                    *by_operation
                        .entry((operation.clone(), key.clone()))
                        .or_default() += 1;
                }
            }
        }
    }
    match fault {
        Some(Fault::LostResponse) => Ok(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            json!({}),
        )),
        Some(Fault::LostConnection) => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the fault proxy lost this answer",
        )),
        _ => {
            let mut response = Response::builder().status(status);
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response = response.header(name, value);
                }
            }
            Ok(response.body(Full::new(answer)).expect("a valid response"))
        }
    }
}

async fn forward(
    state: &State,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<(StatusCode, http::HeaderMap, Bytes), std::io::Error> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", state.upstream));
    for (name, value) in &parts.headers {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream
        .body(Full::new(body))
        .map_err(std::io::Error::other)?;
    let response = state
        .client
        .request(upstream)
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok((parts.status, parts.headers, bytes))
}
