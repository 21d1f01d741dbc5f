//! A minimal AWS Lambda Runtime API (version 2018-06-01) on loopback, so tests and benchmarks can
//! boot a real Lambda binary and invoke it the way the Lambda service does.
//!
//! ```no_run
//! # async fn demo() {
//! use billing_tests::runtime_api::{http_api_event, lambda_env, RuntimeApi};
//! use std::time::Duration;
//!
//! let api = RuntimeApi::start().await;
//! let child = tokio::process::Command::new("target/release/health")
//!     .envs(lambda_env(&api, "health"))
//!     .kill_on_drop(true)
//!     .spawn()
//!     .expect("spawn the function");
//! let event = http_api_event("GET", "/v1/health", "/v1/health", "", &[], None, None);
//! let response = api.invoke(event, Duration::from_secs(5)).await;
//! # drop((child, response));
//! # }
//! ```
//!
//! What it serves, and what `lambda_runtime` 1.5 needs from it:
//! - `GET /2018-06-01/runtime/invocation/next` long-polls until an invocation is queued. The reply
//!   must carry `Lambda-Runtime-Aws-Request-Id` and `Lambda-Runtime-Deadline-Ms` (the runtime
//!   panics without them) and must be a 200: the runtime does not look at the status, so an error
//!   reply would be read as an event without headers.
//! - `POST .../invocation/{id}/response` and `POST .../invocation/{id}/error` complete an
//!   invocation; `POST .../init/error` fails every waiting and future invocation.
//!
//! Connections are kept alive (the runtime reuses one pooled connection for `/next` and the
//! response), and any number of `/next` long-polls may wait at once.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

const RUNTIME_PREFIX: &str = "/2018-06-01/runtime/";
const ACCOUNT_ID: &str = "123456789012";
const REGION: &str = "us-east-1";

/// Why [`RuntimeApi::invoke`] returned no response.
#[derive(Debug)]
pub enum InvokeError {
    /// The function neither responded nor reported an error in time.
    Timeout,
    /// The function posted to `/invocation/{id}/error`; the body it posted.
    FunctionError(Value),
    /// The function posted to `/init/error` (now or before this invocation); the body it posted.
    InitError(Value),
}

/// A running Runtime API emulator. Dropping it stops the server and closes every connection, so
/// a function still long-polling `/next` sees its connection close.
pub struct RuntimeApi {
    address: String,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Invocation>,
    server: JoinHandle<()>,
}

/// One queued invocation, as `/next` hands it out.
struct Invocation {
    request_id: String,
    event: Bytes,
    deadline_epoch_ms: u128,
}

type Outcome = Result<Value, InvokeError>;

/// State shared by the handle and the connection tasks.
struct Shared {
    /// Invocations not yet handed to the function. The lock makes concurrent `/next` long-polls
    /// take turns; receiving is cancel-safe, so a poll whose connection drops loses nothing.
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    completions: Mutex<Completions>,
    first_next: watch::Sender<Option<Instant>>,
    function_arn: Mutex<String>,
    request_counter: AtomicU64,
    /// Makes request ids differ between emulators started by one test binary.
    salt: u64,
}

/// Invocations waiting for their outcome, and the init error once one was reported. Kept under
/// one lock so an invocation is either refused by an init error or failed by it, never missed.
#[derive(Default)]
struct Completions {
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    init_error: Option<Value>,
}

impl RuntimeApi {
    /// Binds `127.0.0.1:0` and serves the Runtime API endpoints until dropped.
    ///
    /// Panics if no loopback port can be bound (a broken test machine, not a test failure).
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("runtime_api: bind 127.0.0.1:0");
        let address = listener
            .local_addr()
            .expect("runtime_api: local address of a bound listener")
            .to_string();
        let (queue, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(receiver),
            completions: Mutex::new(Completions::default()),
            first_next: watch::Sender::new(None),
            function_arn: Mutex::new(function_arn("function")),
            request_counter: AtomicU64::new(0),
            salt: epoch_nanos(),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        RuntimeApi {
            address,
            shared,
            queue,
            server,
        }
    }

    /// `"127.0.0.1:PORT"`: the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Queues one invocation with `event` as its payload and waits up to `timeout` for the
    /// function's response (the JSON it posted) or error. The deadline the function sees is now
    /// plus `timeout`.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Value, InvokeError> {
        let n = self.shared.request_counter.fetch_add(1, Ordering::Relaxed);
        let request_id = uuid_like(self.shared.salt, n);
        let (sender, outcome) = oneshot::channel();
        {
            let mut completions = lock(&self.shared.completions);
            if let Some(error) = &completions.init_error {
                return Err(InvokeError::InitError(error.clone()));
            }
            completions.waiting.insert(request_id.clone(), sender);
        }
        let invocation = Invocation {
            request_id: request_id.clone(),
            event: Bytes::from(event.to_string()),
            deadline_epoch_ms: epoch_millis() + timeout.as_millis(),
        };
        // The receiver lives in `shared`, which `self` keeps alive: sending cannot fail.
        let _ = self.queue.send(invocation);
        match tokio::time::timeout(timeout, outcome).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => {
                // Forget it, so a late answer gets 400 and a still-queued event is skipped.
                lock(&self.shared.completions).waiting.remove(&request_id);
                Err(InvokeError::Timeout)
            }
        }
    }

    /// The instant the first `GET .../invocation/next` arrived (the end of the function's init
    /// phase), or `None` if none has yet.
    pub fn first_next_at(&self) -> Option<Instant> {
        *self.shared.first_next.borrow()
    }

    /// Waits until the first `/next` arrives or `timeout` passes; returns [`Self::first_next_at`].
    pub async fn wait_for_first_next(&self, timeout: Duration) -> Option<Instant> {
        let mut seen = self.shared.first_next.subscribe();
        let arrived = tokio::time::timeout(timeout, seen.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|waited| waited.ok().and_then(|at| *at));
        arrived.or_else(|| self.first_next_at())
    }

    /// Names the function in the ARN sent as `Lambda-Runtime-Invoked-Function-Arn`.
    fn set_function_name(&self, name: &str) {
        *lock(&self.shared.function_arn) = function_arn(name);
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.server.abort();
    }
}

/// The environment a function needs to run against `api` as `function_name`: the variables the
/// Lambda service sets (`AWS_LAMBDA_RUNTIME_API`, function name, memory 128, version `$LATEST`,
/// log group and stream, `AWS_REGION`/`AWS_DEFAULT_REGION` = us-east-1, `_HANDLER=bootstrap`) and
/// dummy credentials (`test`/`test`) so AWS SDK clients build without looking further.
///
/// It also names the function in the invoked-function ARN `api` sends.
pub fn lambda_env(api: &RuntimeApi, function_name: &str) -> Vec<(String, String)> {
    api.set_function_name(function_name);
    let log_stream = format!(
        "2026/01/01/[$LATEST]{:032x}",
        u128::from(api.shared.salt) << 64 | u128::from(api.shared.salt.rotate_left(17))
    );
    [
        ("AWS_LAMBDA_RUNTIME_API", api.address()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// An API Gateway HTTP API event (payload format 2.0) as API Gateway sends it for `method
/// raw_path?raw_query`, matched by the route `method route_path_template`.
///
/// Header names are lowercased and repeated headers joined with `,`; `cookie` headers become the
/// `cookies` array; `host`, `x-forwarded-*`, `x-amzn-trace-id` and (with a body)
/// `content-length` are added unless given. `queryStringParameters` holds the percent-decoded
/// query (repeated names joined with `,`) and is absent for an empty query, like `pathParameters`
/// when `path_params` is `None` and `body` when there is none.
pub fn http_api_event(
    method: &str,
    route_path_template: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    path_params: Option<&[(&str, &str)]>,
) -> Value {
    static EVENT_COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = EVENT_COUNTER.fetch_add(1, Ordering::Relaxed);
    let api_id = "emu0000000";
    let domain_name = format!("{api_id}.execute-api.{REGION}.amazonaws.com");
    let method = method.to_ascii_uppercase();
    let route_key = format!("{method} {route_path_template}");
    let now = time::OffsetDateTime::now_utc();

    let mut header_map = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(String::from),
            );
            continue;
        }
        join_value(&mut header_map, &name, value);
    }
    let source_ip = "127.0.0.1";
    let defaults = [
        ("host", domain_name.clone()),
        ("x-forwarded-for", source_ip.to_owned()),
        ("x-forwarded-port", "443".to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
        (
            "x-amzn-trace-id",
            format!("Root=1-{:08x}-{:024x}", now.unix_timestamp(), n),
        ),
    ];
    for (name, value) in defaults {
        header_map.entry(name).or_insert(Value::String(value));
    }
    if let Some(body) = body {
        header_map
            .entry("content-length")
            .or_insert(Value::String(body.len().to_string()));
    }
    let user_agent = header_map
        .get("user-agent")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();

    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": api_id,
            "domainName": domain_name,
            "domainPrefix": api_id,
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": format!("emu{:013x}=", n),
            "routeKey": route_key,
            "stage": "$default",
            "time": format_request_time(now),
            "timeEpoch": now.unix_timestamp_nanos() / 1_000_000,
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !raw_query.is_empty() {
        let mut params = Map::new();
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            join_value(&mut params, &percent_decode(name), &percent_decode(value));
        }
        event["queryStringParameters"] = Value::Object(params);
    }
    if let Some(path_params) = path_params {
        let params: Map<String, Value> = path_params
            .iter()
            .map(|(name, value)| ((*name).to_owned(), Value::String((*value).to_owned())))
            .collect();
        event["pathParameters"] = Value::Object(params);
    }
    if let Some(body) = body {
        event["body"] = Value::String(body.to_owned());
    }
    event
}

/* ------------------------------------------ server ------------------------------------------ */

/// Accepts connections until aborted; each connection is served on its own task.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(error) => {
                    eprintln!("runtime_api: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    if let Err(error) = stream.set_nodelay(true) {
        eprintln!("runtime_api: set_nodelay failed: {error}");
    }
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(route(&shared, request).await) }
    });
    if let Err(error) = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        // A function killed mid-long-poll closes its connection: expected, not worth a line.
        if !error.is_incomplete_message() && !error.is_canceled() {
            eprintln!("runtime_api: connection error: {error}");
        }
    }
}

async fn route(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(RUNTIME_PREFIX) else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"errorMessage": "unknown path", "errorType": "NotFound"}),
        );
    };
    let segments: Vec<&str> = rest.split('/').collect();
    match (request.method(), segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next_invocation(shared).await,
        (&Method::POST, ["invocation", id, kind @ ("response" | "error")]) => {
            let (id, is_error) = ((*id).to_owned(), *kind == "error");
            let body = read_json(request).await;
            complete(
                shared,
                &id,
                if is_error {
                    Err(InvokeError::FunctionError(body))
                } else {
                    Ok(body)
                },
            )
        }
        (&Method::POST, ["init", "error"]) => {
            let body = read_json(request).await;
            let mut completions = lock(&shared.completions);
            for (_, waiter) in completions.waiting.drain() {
                let _ = waiter.send(Err(InvokeError::InitError(body.clone())));
            }
            completions.init_error = Some(body);
            reply(StatusCode::ACCEPTED, json!({"status": "OK"}))
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"errorMessage": format!("no route for {} {path}", request.method()), "errorType": "NotFound"}),
        ),
    }
}

/// `GET /invocation/next`: records the first poll, then waits for an invocation that is still
/// awaited (one whose `invoke` timed out is skipped).
async fn next_invocation(shared: &Shared) -> Response<Full<Bytes>> {
    shared.first_next.send_if_modified(|first| {
        let unset = first.is_none();
        if unset {
            *first = Some(Instant::now());
        }
        unset
    });
    let mut queue = shared.queue.lock().await;
    loop {
        let Some(invocation) = queue.recv().await else {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"errorMessage": "emulator stopped"}),
            );
        };
        if !lock(&shared.completions)
            .waiting
            .contains_key(&invocation.request_id)
        {
            continue;
        }
        let arn = lock(&shared.function_arn).clone();
        let trace_id = trace_id(shared.salt, &invocation.request_id);
        let built = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", &invocation.request_id)
            .header(
                "lambda-runtime-deadline-ms",
                invocation.deadline_epoch_ms.to_string(),
            )
            .header("lambda-runtime-invoked-function-arn", arn)
            .header("lambda-runtime-trace-id", trace_id)
            .body(Full::new(invocation.event));
        return match built {
            Ok(response) => response,
            Err(error) => {
                eprintln!("runtime_api: could not build the /next reply: {error}");
                reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"errorMessage": "bad invocation"}),
                )
            }
        };
    }
}

/// Hands an outcome to the waiting `invoke`; 400 for an unknown or expired request id.
fn complete(shared: &Shared, request_id: &str, outcome: Outcome) -> Response<Full<Bytes>> {
    let waiter = lock(&shared.completions).waiting.remove(request_id);
    match waiter {
        Some(waiter) => {
            let _ = waiter.send(outcome);
            reply(StatusCode::ACCEPTED, json!({"status": "OK"}))
        }
        None => reply(
            StatusCode::BAD_REQUEST,
            json!({"errorMessage": format!("unknown or expired request id {request_id}"), "errorType": "InvalidRequestID"}),
        ),
    }
}

/// The request body as JSON; a body that is not JSON comes back as a JSON string.
async fn read_json(request: Request<Incoming>) -> Value {
    match request.into_body().collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Err(error) => {
            eprintln!("runtime_api: reading a request body failed: {error}");
            Value::Null
        }
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/* ------------------------------------------ helpers ----------------------------------------- */

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}")
}

fn epoch_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn epoch_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// A request id shaped like the UUIDs Lambda sends.
fn uuid_like(salt: u64, n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (salt >> 32) as u32,
        (salt >> 16) as u16,
        salt & 0xfff,
        (n >> 48) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// An X-Ray trace header shaped like Lambda's.
fn trace_id(salt: u64, request_id: &str) -> String {
    let seconds = epoch_millis() / 1000;
    let digits: String = request_id.chars().filter(char::is_ascii_hexdigit).collect();
    let tail = &digits[digits.len().saturating_sub(24)..];
    format!("Root=1-{seconds:08x}-{tail:0>24};Parent={salt:016x};Sampled=0")
}

/// API Gateway's `requestContext.time`: `12/Mar/2020:19:03:58 +0000`.
fn format_request_time(now: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    now.format(&format).unwrap_or_default()
}

/// Adds `value` under `name`, joining a repeated name's values with `,` as API Gateway does.
fn join_value(map: &mut Map<String, Value>, name: &str, value: &str) {
    match map.get_mut(name) {
        Some(Value::String(existing)) => {
            existing.push(',');
            existing.push_str(value);
        }
        _ => {
            map.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::client::conn::http1::SendRequest;

    /// A fake function: one keep-alive connection doing `GET /next` → `POST /response` (or
    /// `/error` when the event asks for it), echoing the event and the headers it was given.
    async fn fake_function(address: String) {
        let mut client = connect(&address).await;
        loop {
            let next = Request::get(format!("http://{address}{RUNTIME_PREFIX}invocation/next"))
                .body(Full::new(Bytes::new()))
                .expect("request");
            let Ok(response) = client.send_request(next).await else {
                return;
            };
            assert_eq!(response.status(), StatusCode::OK);
            let header = |name: &str| {
                response.headers()[name]
                    .to_str()
                    .expect("ascii header")
                    .to_owned()
            };
            let request_id = header("lambda-runtime-aws-request-id");
            let deadline: u128 = header("lambda-runtime-deadline-ms")
                .parse()
                .expect("deadline is a number");
            assert!(deadline > epoch_millis(), "deadline in the future");
            assert!(header("lambda-runtime-invoked-function-arn").ends_with(":function:echo"));
            assert!(header("lambda-runtime-trace-id").starts_with("Root=1-"));
            let body = response
                .into_body()
                .collect()
                .await
                .expect("event body")
                .to_bytes();
            let event: Value = serde_json::from_slice(&body).expect("event is JSON");
            let kind = if event["fail"] == true {
                "error"
            } else {
                "response"
            };
            let answer = json!({"echo": event, "request_id": request_id});
            let post = Request::post(format!(
                "http://{address}{RUNTIME_PREFIX}invocation/{request_id}/{kind}"
            ))
            .body(Full::new(Bytes::from(answer.to_string())))
            .expect("request");
            let posted = client.send_request(post).await.expect("post the answer");
            assert_eq!(posted.status(), StatusCode::ACCEPTED);
        }
    }

    async fn connect(address: &str) -> SendRequest<Full<Bytes>> {
        let stream = TcpStream::connect(address)
            .await
            .expect("connect to the emulator");
        let (client, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        client
    }

    #[tokio::test]
    async fn invoke_returns_what_the_function_posted_and_records_the_first_poll() {
        let api = RuntimeApi::start().await;
        let _env = lambda_env(&api, "echo");
        assert!(api.first_next_at().is_none());
        let started = Instant::now();
        tokio::spawn(fake_function(api.address()));

        let first = api
            .wait_for_first_next(Duration::from_secs(5))
            .await
            .expect("first /next");
        assert!(first >= started);
        assert_eq!(api.first_next_at(), Some(first));

        for i in 0..3 {
            let answer = api
                .invoke(json!({"n": i}), Duration::from_secs(5))
                .await
                .expect("a response");
            assert_eq!(answer["echo"], json!({"n": i}));
        }
        assert_eq!(
            api.first_next_at(),
            Some(first),
            "only the first poll is recorded"
        );

        match api
            .invoke(json!({"fail": true}), Duration::from_secs(5))
            .await
        {
            Err(InvokeError::FunctionError(body)) => assert_eq!(body["echo"]["fail"], true),
            other => panic!("expected a function error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn concurrent_long_polls_share_the_queue_and_each_invocation_is_answered_once() {
        let api = Arc::new(RuntimeApi::start().await);
        let _env = lambda_env(&api, "echo");
        for _ in 0..4 {
            tokio::spawn(fake_function(api.address()));
        }
        let invocations: Vec<_> = (0..16)
            .map(|i| {
                let api = Arc::clone(&api);
                tokio::spawn(
                    async move { api.invoke(json!({"n": i}), Duration::from_secs(5)).await },
                )
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        for (i, invocation) in invocations.into_iter().enumerate() {
            let answer = invocation.await.expect("invoke task").expect("a response");
            assert_eq!(answer["echo"]["n"], i);
            assert!(ids.insert(answer["request_id"].as_str().expect("id").to_owned()));
        }
    }

    #[tokio::test]
    async fn no_function_times_out_and_an_init_error_fails_invocations() {
        let api = RuntimeApi::start().await;
        let result = api.invoke(json!({}), Duration::from_millis(50)).await;
        assert!(matches!(result, Err(InvokeError::Timeout)), "{result:?}");
        assert_eq!(
            api.wait_for_first_next(Duration::from_millis(20)).await,
            None
        );

        let address = api.address();
        let pending = api.invoke(json!({}), Duration::from_secs(5));
        let report = async {
            let mut client = connect(&address).await;
            let post = Request::post(format!("http://{address}{RUNTIME_PREFIX}init/error"))
                .header("lambda-runtime-function-error-type", "Runtime.InitError")
                .body(Full::new(Bytes::from(
                    r#"{"errorType":"boom","errorMessage":"no table"}"#,
                )))
                .expect("request");
            client
                .send_request(post)
                .await
                .expect("post the init error")
                .status()
        };
        let (result, status) = tokio::join!(pending, report);
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(
            matches!(result, Err(InvokeError::InitError(ref body)) if body["errorType"] == "boom"),
            "{result:?}"
        );
        let later = api.invoke(json!({}), Duration::from_secs(5)).await;
        assert!(matches!(later, Err(InvokeError::InitError(_))), "{later:?}");
    }

    #[test]
    fn http_api_event_looks_like_api_gateways() {
        let event = http_api_event(
            "post",
            "/v1/workspaces/{workspaceId}/runs",
            "/v1/workspaces/ws_123/runs",
            "a=1&a=2&b=x%20y",
            &[
                ("Authorization", "Bearer bk_x"),
                ("Cookie", "s=1; t=2"),
                ("X-Multi", "1"),
                ("x-multi", "2"),
            ],
            Some("{}"),
            Some(&[("workspaceId", "ws_123")]),
        );
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "POST /v1/workspaces/{workspaceId}/runs");
        assert_eq!(event["requestContext"]["routeKey"], event["routeKey"]);
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["requestContext"]["stage"], "$default");
        assert_eq!(event["headers"]["authorization"], "Bearer bk_x");
        assert_eq!(event["headers"]["x-multi"], "1,2");
        assert_eq!(event["headers"]["content-length"], "2");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(
            event["queryStringParameters"],
            json!({"a": "1,2", "b": "x y"})
        );
        assert_eq!(event["pathParameters"], json!({"workspaceId": "ws_123"}));
        assert_eq!(event["body"], "{}");
        assert_eq!(event["isBase64Encoded"], false);

        let bare = http_api_event("GET", "/v1/health", "/v1/health", "", &[], None, None);
        for absent in ["body", "pathParameters", "queryStringParameters", "cookies"] {
            assert!(bare.get(absent).is_none(), "{absent} should be absent");
        }
    }
}
