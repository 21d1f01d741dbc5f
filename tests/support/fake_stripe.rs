//! A fake Stripe API on loopback, strict where Stripe is strict, so a test can point the real
//! Stripe gateway at it and see exactly what it sent.
//!
//! ```no_run
//! # async fn demo() {
//! use billing_tests::fake_stripe::{FakeStripe, PUBLISHABLE_KEY, SECRET_KEY};
//! use billing_core::payments::stripe::StripeGateway;
//!
//! let stripe = FakeStripe::start().await;
//! let gateway = StripeGateway::new(SECRET_KEY, PUBLISHABLE_KEY, Some(&stripe.base_url()));
//! let customer = gateway.create_customer("ws_1", None, "key-1").await.unwrap();
//! let sent = stripe.last_request_to("POST", "/v1/customers").unwrap();
//! assert_eq!(sent.field("metadata[workspace_id]"), Some("ws_1"));
//! # drop(customer);
//! # }
//! ```
//!
//! Every request is recorded ([`RecordedRequest`]) and checked as Stripe would check it:
//! - `Authorization: Bearer` with [`SECRET_KEY`] (otherwise 401, as Stripe answers);
//! - POST bodies are `application/x-www-form-urlencoded` with Stripe's bracket keys
//!   (`line_items[0][price_data][unit_amount]=500`);
//! - every POST that creates an object (customers, checkout sessions, setup intents, payment
//!   intents) carries an `Idempotency-Key` (stricter than Stripe, which only recommends it);
//! - each endpoint's required and mutually exclusive parameters, the objects it names existing
//!   (`No such customer`), a payment method attached before it becomes a default or is charged.
//!
//! A request that breaks a rule gets a 400 Stripe-shaped error
//! (`{"error": {"type": "invalid_request_error", "message", "param"}}`) and is recorded as a
//! violation ([`FakeStripe::violations`]). Answers are real object shapes with real id prefixes,
//! complete enough for async-stripe's strict decoding.
//!
//! Idempotency works like Stripe's: the same key on the same endpoint with the same parameters
//! replays the first answer (errors included, with `Idempotent-Replayed: true`); the same key with
//! other parameters or on another endpoint is an `idempotency_error`. Requests that failed
//! validation are not saved, so they can be retried with the same key.
//!
//! Scripted outcomes: [`FakeStripe::next_payment`] makes the next PaymentIntent need 3-D Secure,
//! stay processing or be declined; [`FakeStripe::fail_portal`] makes portal sessions fail with 500.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The only secret key the fake accepts.
pub const SECRET_KEY: &str = "sk_test_fake0000000000000000000000";
/// A publishable key to go with it (the fake never sees it: browsers use it).
pub const PUBLISHABLE_KEY: &str = "pk_test_fake0000000000000000000000";

/// Stripe's smallest USD charge.
const MINIMUM_AMOUNT_CENTS: i64 = 50;
/// Stripe's metadata limits.
const METADATA_MAX_KEYS: usize = 50;
const METADATA_KEY_MAX_CHARS: usize = 40;
const METADATA_VALUE_MAX_CHARS: usize = 500;

/// One request as the fake received it, and what it answered.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lowercased names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub raw_body: String,
    /// The body's fields, percent-decoded, in order (`("line_items[0][quantity]", "1")`).
    pub form: Vec<(String, String)>,
    pub status: u16,
    pub response: Value,
    /// The rule the request broke, when the fake refused it.
    pub violation: Option<String>,
    /// The answer was the saved one for its idempotency key.
    pub replayed: bool,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn idempotency_key(&self) -> Option<&str> {
        self.header("idempotency-key")
    }

    /// The value of one form field, by its full bracket name.
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.form, name)
    }

    /// The `metadata[…]` entries under `prefix` (`"metadata"`, `"payment_intent_data[metadata]"`).
    pub fn metadata(&self, prefix: &str) -> HashMap<String, String> {
        metadata(&self.form, prefix)
    }
}

/// What the next PaymentIntent confirmation does instead of succeeding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextPayment {
    /// 200 with `status: requires_action` (3-D Secure) and a `use_stripe_sdk` next action.
    RequiresAction,
    /// 200 with `status: processing`.
    Processing,
    /// 402 `card_error` with this `decline_code` and the failed PaymentIntent in the error.
    /// `authentication_required` is what an off-session charge gets when the bank wants 3-D
    /// Secure: `code` is then `authentication_required` too.
    Decline { decline_code: String },
}

/// A running fake Stripe. Dropping it stops the server.
pub struct FakeStripe {
    base_url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    state: Mutex<State>,
    /// Makes ids differ between fakes started by one test binary.
    salt: u64,
}

#[derive(Default)]
struct State {
    requests: Vec<RecordedRequest>,
    customers: HashMap<String, Value>,
    /// Payment method → the customer it is attached to.
    attachments: HashMap<String, String>,
    /// Idempotency key → the first request made with it and its answer.
    idempotent: HashMap<String, SavedAnswer>,
    next_payments: VecDeque<NextPayment>,
    /// Every PaymentIntent created, as it stands now (cancels change it).
    payment_intents: HashMap<String, Value>,
    portal_fails: bool,
    id_counter: u64,
    /// Subscriptions created, by id.
    subscriptions: HashMap<String, Value>,
    /// Invoices asked to be paid, in order.
    paid_invoices: Vec<String>,
}

struct SavedAnswer {
    method: Method,
    path: String,
    /// Sorted, so field order does not count as a difference.
    form: Vec<(String, String)>,
    status: StatusCode,
    body: Value,
}

impl FakeStripe {
    /// Binds `127.0.0.1:0` and serves until dropped.
    ///
    /// Panics if no loopback port can be bound (a broken test machine, not a test failure).
    pub async fn start() -> FakeStripe {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake_stripe: bind 127.0.0.1:0");
        let address = listener
            .local_addr()
            .expect("fake_stripe: local address of a bound listener");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            salt: epoch_nanos(),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        FakeStripe {
            base_url: format!("http://{address}"),
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`: the gateway's `base_url` (Stripe's API root, without `/v1`).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.state).requests.clone()
    }

    /// The requests with this method and path (`"POST"`, `"/v1/customers"`).
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        lock(&self.shared.state)
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .cloned()
            .collect()
    }

    pub fn last_request_to(&self, method: &str, path: &str) -> Option<RecordedRequest> {
        self.requests_to(method, path).pop()
    }

    /// The rules broken so far, as `"POST /v1/… : why"`.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared.state)
            .requests
            .iter()
            .filter_map(|r| {
                r.violation
                    .as_ref()
                    .map(|v| format!("{} {}: {v}", r.method, r.path))
            })
            .collect()
    }

    /// Scripts the next PaymentIntent confirmation; several calls queue several outcomes.
    pub fn next_payment(&self, outcome: NextPayment) {
        lock(&self.shared.state).next_payments.push_back(outcome);
    }

    /// While `true`, billing portal sessions fail with a 500 `api_error`.
    pub fn fail_portal(&self, fails: bool) {
        lock(&self.shared.state).portal_fails = fails;
    }

    /// The subscriptions created, as the fake answered them.
    pub fn subscriptions(&self) -> Vec<Value> {
        lock(&self.shared.state)
            .subscriptions
            .values()
            .cloned()
            .collect()
    }

    /// The invoices the client asked to pay, in order.
    pub fn paid_invoices(&self) -> Vec<String> {
        lock(&self.shared.state).paid_invoices.clone()
    }

    /// The customer object as the fake holds it now.
    pub fn customer(&self, customer_id: &str) -> Option<Value> {
        lock(&self.shared.state).customers.get(customer_id).cloned()
    }

    /// The PaymentIntent as the fake holds it now (`status: canceled` once canceled).
    pub fn payment_intent(&self, payment_intent_id: &str) -> Option<Value> {
        lock(&self.shared.state)
            .payment_intents
            .get(payment_intent_id)
            .cloned()
    }

    /// The customer a payment method is attached to.
    pub fn attached_customer(&self, payment_method_id: &str) -> Option<String> {
        lock(&self.shared.state)
            .attachments
            .get(payment_method_id)
            .cloned()
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.server.abort();
    }
}

/* ------------------------------------------ server ------------------------------------------ */

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(error) => {
                    eprintln!("fake_stripe: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        if !error.is_incomplete_message() && !error.is_canceled() {
            eprintln!("fake_stripe: connection error: {error}");
        }
    }
}

/// A request with its body read and decoded.
struct ReceivedRequest {
    method: Method,
    path: String,
    headers: HeaderMap,
    form: Vec<(String, String)>,
}

/// What an endpoint made of a request.
enum Outcome {
    /// The endpoint ran (successfully or not): Stripe saves this answer for its idempotency key.
    Ran(StatusCode, Value),
    /// Refused before running, for breaking one of Stripe's rules; never saved.
    Refused {
        status: StatusCode,
        error: Value,
        violation: String,
    },
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let raw_body = match body.collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(error) => {
            eprintln!("fake_stripe: reading a body failed: {error}");
            String::new()
        }
    };
    let incoming = ReceivedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        form: decode_form(&raw_body),
    };

    let mut state = lock(&shared.state);
    let (status, body, violation, replayed) = match answer(&mut state, shared.salt, &incoming) {
        Answer::Fresh(Outcome::Ran(status, body)) => (status, body, None, false),
        Answer::Fresh(Outcome::Refused {
            status,
            error,
            violation,
        }) => (status, error, Some(violation), false),
        Answer::Replayed(status, body) => (status, body, None, true),
    };
    state.requests.push(RecordedRequest {
        method: incoming.method.to_string(),
        path: incoming.path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        raw_body,
        form: incoming.form.clone(),
        status: status.as_u16(),
        response: body.clone(),
        violation,
        replayed,
    });
    let request_id = next_id(&mut state, shared.salt, "req_", 14);
    drop(state);

    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("request-id", request_id);
    if replayed {
        response = response.header("idempotent-replayed", "true");
    }
    response
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}"))))
}

enum Answer {
    Fresh(Outcome),
    Replayed(StatusCode, Value),
}

/// Checks what every request must satisfy, applies idempotency, then runs the endpoint.
fn answer(state: &mut State, salt: u64, request: &ReceivedRequest) -> Answer {
    if let Err(refusal) = check_envelope(request) {
        return Answer::Fresh(refusal);
    }
    let key = header(&request.headers, "idempotency-key").map(str::to_owned);
    if request.method == Method::POST {
        if key.is_none() && creates_an_object(&request.path) {
            return Answer::Fresh(refused(
                None,
                "this request creates an object and needs an Idempotency-Key header (the fake \
                 insists: a retry without one creates a second object)",
            ));
        }
        if let Some(key) = &key {
            if let Some(saved) = state.idempotent.get(key) {
                return replay(saved, key, request);
            }
        }
    }
    let outcome = route(state, salt, request);
    if let (Some(key), Outcome::Ran(status, body)) = (key, &outcome) {
        if request.method == Method::POST {
            state.idempotent.insert(
                key,
                SavedAnswer {
                    method: request.method.clone(),
                    path: request.path.clone(),
                    form: sorted(&request.form),
                    status: *status,
                    body: body.clone(),
                },
            );
        }
    }
    Answer::Fresh(outcome)
}

/// Authentication, content type and Stripe's form encoding.
fn check_envelope(request: &ReceivedRequest) -> Result<(), Outcome> {
    let authorization = header(&request.headers, "authorization").unwrap_or_default();
    if authorization != format!("Bearer {SECRET_KEY}") {
        let shown = authorization
            .strip_prefix("Bearer ")
            .unwrap_or(authorization);
        let message = if shown.is_empty() {
            "You did not provide an API key. Provide it in the Authorization header, using \
             Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
                .to_owned()
        } else {
            format!("Invalid API Key provided: {}", redact(shown))
        };
        return Err(Outcome::Refused {
            status: StatusCode::UNAUTHORIZED,
            error: stripe_error("invalid_request_error", &message, None),
            violation: message,
        });
    }
    if request.method == Method::POST {
        let content_type = header(&request.headers, "content-type").unwrap_or_default();
        if !content_type.starts_with("application/x-www-form-urlencoded") {
            return Err(refused(
                None,
                &format!(
                    "Stripe takes application/x-www-form-urlencoded bodies, not `{content_type}`"
                ),
            ));
        }
    }
    if let Some((name, _)) = request.form.iter().find(|(name, _)| !is_bracket_key(name)) {
        return Err(refused(
            Some(name),
            &format!("Invalid parameter name `{name}`: use Stripe's bracket encoding (a[b][0]=c)"),
        ));
    }
    Ok(())
}

fn creates_an_object(path: &str) -> bool {
    matches!(
        path,
        "/v1/customers"
            | "/v1/checkout/sessions"
            | "/v1/setup_intents"
            | "/v1/payment_intents"
            | "/v1/subscriptions"
    )
}

fn replay(saved: &SavedAnswer, key: &str, request: &ReceivedRequest) -> Answer {
    if saved.method != request.method || saved.path != request.path {
        return Answer::Fresh(idempotency_error(&format!(
            "Keys for idempotent requests can only be used for the same endpoint they were first \
             used for ('{} {}' vs '{} {}'). Try using a key other than '{key}' if you meant to \
             execute a different request.",
            saved.method, saved.path, request.method, request.path
        )));
    }
    if saved.form != sorted(&request.form) {
        return Answer::Fresh(idempotency_error(&format!(
            "Keys for idempotent requests can only be used with the same parameters they were \
             first used with. Try using a key other than '{key}' if you meant to execute a \
             different request."
        )));
    }
    Answer::Replayed(saved.status, saved.body.clone())
}

fn idempotency_error(message: &str) -> Outcome {
    Outcome::Refused {
        status: StatusCode::BAD_REQUEST,
        error: stripe_error("idempotency_error", message, None),
        violation: message.to_owned(),
    }
}

fn route(state: &mut State, salt: u64, request: &ReceivedRequest) -> Outcome {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let form = &request.form;
    match (&request.method, segments.as_slice()) {
        (&Method::POST, ["v1", "customers"]) => create_customer(state, salt, form),
        (&Method::GET, ["v1", "customers", id]) => retrieve_customer(state, id),
        (&Method::POST, ["v1", "customers", id]) => update_customer(state, id, form),
        (&Method::POST, ["v1", "checkout", "sessions"]) => {
            create_checkout_session(state, salt, form)
        }
        (&Method::POST, ["v1", "billing_portal", "sessions"]) => {
            create_portal_session(state, salt, form)
        }
        (&Method::POST, ["v1", "setup_intents"]) => create_setup_intent(state, salt, form),
        (&Method::POST, ["v1", "payment_methods", id, "attach"]) => {
            attach_payment_method(state, id, form)
        }
        (&Method::POST, ["v1", "payment_intents"]) => create_payment_intent(state, salt, form),
        (&Method::POST, ["v1", "subscriptions"]) => create_subscription(state, salt, form),
        (&Method::POST, ["v1", "invoices", id, "pay"]) => pay_invoice(state, id),
        (&Method::POST, ["v1", "payment_intents", id, "cancel"]) => {
            cancel_payment_intent(state, id, form)
        }
        _ => Outcome::Refused {
            status: StatusCode::NOT_FOUND,
            error: stripe_error(
                "invalid_request_error",
                &format!(
                    "Unrecognized request URL ({}: {}).",
                    request.method, request.path
                ),
                None,
            ),
            violation: "the fake does not serve this endpoint".into(),
        },
    }
}

/* ----------------------------------------- endpoints ----------------------------------------- */

/// `POST /v1/subscriptions`: a known customer, one item with a price, an integer quantity.
fn create_subscription(state: &mut State, salt: u64, form: &[(String, String)]) -> Outcome {
    if let Err(refusal) = known_customer(state, form, "customer") {
        return refusal;
    }
    let Some(price) = field(form, "items[0][price]") else {
        return refused(Some("items"), "Missing required param: items[0][price].");
    };
    let quantity = match field(form, "items[0][quantity]").map(str::parse::<u64>) {
        None => 1,
        Some(Ok(quantity)) => quantity,
        Some(Err(_)) => return refused(Some("items[0][quantity]"), "Invalid integer"),
    };
    let trial_end = match field(form, "trial_end").map(str::parse::<i64>) {
        None => None,
        Some(Ok(at)) if at > now() => Some(at),
        Some(_) => {
            return refused(
                Some("trial_end"),
                "Invalid timestamp: must be an integer Unix timestamp in the future.",
            )
        }
    };
    let metadata = match checked_metadata(form, "metadata") {
        Ok(metadata) => metadata,
        Err(refusal) => return refusal,
    };
    let id = next_id(state, salt, "sub_", 14);
    let subscription = json!({
        "id": id,
        "object": "subscription",
        "customer": field(form, "customer"),
        "status": if trial_end.is_some() { "trialing" } else { "active" },
        "trial_end": trial_end,
        "default_payment_method": field(form, "default_payment_method"),
        "cancel_at_period_end": false,
        "items": {"object": "list", "data": [{"price": {"id": price}, "quantity": quantity}]},
        "metadata": metadata,
        "created": now(),
    });
    state.subscriptions.insert(id, subscription.clone());
    Outcome::Ran(StatusCode::OK, subscription)
}

/// `POST /v1/invoices/{id}/pay`: recorded; the fake answers it paid.
fn pay_invoice(state: &mut State, id: &str) -> Outcome {
    if !id.starts_with("in_") {
        return Outcome::Refused {
            status: StatusCode::NOT_FOUND,
            error: resource_missing("invoice", id, "invoice"),
            violation: format!("No such invoice: '{id}'"),
        };
    }
    state.paid_invoices.push(id.to_owned());
    Outcome::Ran(
        StatusCode::OK,
        json!({"id": id, "object": "invoice", "status": "paid"}),
    )
}

fn create_customer(state: &mut State, salt: u64, form: &[(String, String)]) -> Outcome {
    let metadata = match checked_metadata(form, "metadata") {
        Ok(metadata) => metadata,
        Err(refusal) => return refusal,
    };
    let id = next_id(state, salt, "cus_", 14);
    let invoice_prefix = next_token(state, salt, 8).to_ascii_uppercase();
    let customer = json!({
        "id": id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": now(),
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": field(form, "description"),
        "discount": null,
        "email": field(form, "email"),
        "invoice_prefix": invoice_prefix,
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null
        },
        "livemode": false,
        "metadata": metadata,
        "name": field(form, "name"),
        "next_invoice_sequence": 1,
        "phone": null,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null
    });
    state.customers.insert(id, customer.clone());
    Outcome::Ran(StatusCode::OK, customer)
}

fn retrieve_customer(state: &State, id: &str) -> Outcome {
    match state.customers.get(id) {
        Some(customer) => Outcome::Ran(StatusCode::OK, customer.clone()),
        None => Outcome::Refused {
            status: StatusCode::NOT_FOUND,
            error: resource_missing("customer", id, "id"),
            violation: format!("No such customer: '{id}'"),
        },
    }
}

fn update_customer(state: &mut State, id: &str, form: &[(String, String)]) -> Outcome {
    if !state.customers.contains_key(id) {
        return Outcome::Refused {
            status: StatusCode::NOT_FOUND,
            error: resource_missing("customer", id, "id"),
            violation: format!("No such customer: '{id}'"),
        };
    }
    let default_method = field(form, "invoice_settings[default_payment_method]");
    if let Some(method) = default_method {
        if state.attachments.get(method).map(String::as_str) != Some(id) {
            return refused(
                Some("invoice_settings[default_payment_method]"),
                &format!(
                    "The customer does not have a payment method with the ID {method}. The \
                     payment method must be attached to the customer."
                ),
            );
        }
    }
    let metadata = match checked_metadata(form, "metadata") {
        Ok(metadata) => metadata,
        Err(refusal) => return refusal,
    };
    let customer = state
        .customers
        .get_mut(id)
        .expect("checked above, under the same lock");
    if let Some(method) = default_method {
        customer["invoice_settings"]["default_payment_method"] = json!(method);
    }
    if let Some(email) = field(form, "email") {
        customer["email"] = json!(email);
    }
    if let Some(existing) = customer["metadata"].as_object_mut() {
        existing.extend(metadata);
    }
    Outcome::Ran(StatusCode::OK, customer.clone())
}

fn create_checkout_session(state: &mut State, salt: u64, form: &[(String, String)]) -> Outcome {
    let mode = match field(form, "mode") {
        Some(mode @ ("payment" | "subscription" | "setup")) => mode,
        Some(other) => {
            return refused(
                Some("mode"),
                &format!(
                    "Invalid mode: must be one of payment, setup, or subscription (got {other})"
                ),
            )
        }
        None => return refused(Some("mode"), "Missing required param: mode."),
    };
    for url in ["success_url", "cancel_url"] {
        match field(form, url) {
            Some(value) if !is_url(value) => {
                return refused(Some(url), &format!("Not a valid URL: {url}"))
            }
            None if url == "success_url" => {
                return refused(Some(url), "Missing required param: success_url.")
            }
            _ => {}
        }
    }
    if let Err(refusal) = known_customer(state, form, "customer") {
        return refusal;
    }
    let metadata = match checked_metadata(form, "metadata") {
        Ok(metadata) => metadata,
        Err(refusal) => return refusal,
    };
    if mode == "subscription" && has_any(form, "payment_intent_data") {
        return refused(
            Some("payment_intent_data"),
            "You can not pass `payment_intent_data` in `subscription` mode.",
        );
    }
    if let Err(refusal) = checked_metadata(form, "payment_intent_data[metadata]") {
        return refusal;
    }
    let line_indices = indices(form, "line_items");
    if mode != "setup" && line_indices.is_empty() {
        return refused(
            Some("line_items"),
            &format!("`line_items` is required in `{mode}` mode."),
        );
    }
    let mut amount_total = 0;
    let mut recurring_items = 0;
    for index in line_indices {
        let item = format!("line_items[{index}]");
        let price = field(form, &format!("{item}[price]"));
        let has_price_data = has_any(form, &format!("{item}[price_data]"));
        let quantity = field(form, &format!("{item}[quantity]"));
        let Some(quantity) = quantity
            .and_then(|q| q.parse::<i64>().ok())
            .filter(|q| *q > 0)
        else {
            return refused(
                Some(&format!("{item}[quantity]")),
                "Quantity is required. Add `quantity` to `line_items`.",
            );
        };
        match (price, has_price_data) {
            (Some(_), true) | (None, false) => {
                return refused(
                    Some(&item),
                    "You must specify exactly one of `price` or `price_data` for each line item.",
                )
            }
            (Some(price), false) => {
                if !price.starts_with("price_") && !price.starts_with("plan_") {
                    return refused(
                        Some(&format!("{item}[price]")),
                        &format!("No such price: '{price}'"),
                    );
                }
                // Catalog prices are taken to be recurring: only subscriptions name them here.
                recurring_items += 1;
            }
            (None, true) => match checked_price_data(form, &item) {
                Ok(PriceData {
                    unit_amount,
                    recurring,
                }) => {
                    amount_total += unit_amount * quantity;
                    recurring_items += usize::from(recurring);
                }
                Err(refusal) => return refusal,
            },
        }
    }
    if mode == "payment" && recurring_items > 0 {
        return refused(
            Some("line_items"),
            "You specified `payment` mode but passed a recurring price. Either switch to \
             `subscription` mode or use only one-time prices.",
        );
    }
    if mode == "subscription" && recurring_items == 0 {
        return refused(
            Some("line_items"),
            "You must provide at least one recurring price in `subscription` mode when using prices.",
        );
    }
    if mode == "payment" && amount_total < MINIMUM_AMOUNT_CENTS {
        return refused(
            Some("line_items"),
            "The Checkout Session's total amount due must add up to at least $0.50 usd",
        );
    }

    let id = format!("cs_test_{}", next_token(state, salt, 58));
    let fragment = next_token(state, salt, 24);
    let session = json!({
        "id": id,
        "object": "checkout.session",
        "after_expiration": null,
        "allow_promotion_codes": null,
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "billing_address_collection": null,
        "cancel_url": field(form, "cancel_url"),
        "client_reference_id": field(form, "client_reference_id"),
        "client_secret": null,
        "consent": null,
        "consent_collection": null,
        "created": now(),
        "currency": "usd",
        "custom_fields": [],
        "custom_text": {
            "after_submit": null,
            "shipping_address": null,
            "submit": null,
            "terms_of_service_acceptance": null
        },
        "customer": field(form, "customer"),
        "customer_creation": null,
        "customer_details": null,
        "customer_email": field(form, "customer_email"),
        "expires_at": now() + 24 * 3600,
        "invoice": null,
        "invoice_creation": null,
        "livemode": false
    });
    // Two halves: one `json!` this size exceeds the macro recursion limit.
    let rest = json!({
        "locale": null,
        "metadata": metadata,
        "mode": mode,
        "payment_intent": null,
        "payment_link": null,
        "payment_method_collection": if mode == "subscription" { json!("always") } else { Value::Null },
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": false},
        "recovered_from": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": "open",
        "submit_type": null,
        "subscription": null,
        "success_url": field(form, "success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": format!("https://checkout.stripe.com/c/pay/{id}#{fragment}")
    });
    let mut session = session;
    if let (Some(session), Value::Object(rest)) = (session.as_object_mut(), rest) {
        session.extend(rest);
    }
    Outcome::Ran(StatusCode::OK, session)
}

struct PriceData {
    unit_amount: i64,
    recurring: bool,
}

fn checked_price_data(form: &[(String, String)], item: &str) -> Result<PriceData, Outcome> {
    let price_data = format!("{item}[price_data]");
    let name = |suffix: &str| format!("{price_data}[{suffix}]");
    match field(form, &name("currency")) {
        Some(currency) if currency.len() == 3 && currency == currency.to_ascii_lowercase() => {}
        Some(currency) => {
            return Err(refused(
                Some(&name("currency")),
                &format!("Invalid currency: {currency}"),
            ))
        }
        None => {
            return Err(refused(
                Some(&name("currency")),
                "Missing required param: currency.",
            ))
        }
    }
    let unit_amount = match field(form, &name("unit_amount")).map(str::parse::<i64>) {
        Some(Ok(amount)) if amount >= 0 => amount,
        Some(_) => {
            return Err(refused(
                Some(&name("unit_amount")),
                "Invalid non-negative integer",
            ))
        }
        None => {
            return Err(refused(
                Some(&name("unit_amount")),
                "You must specify either `unit_amount` or `unit_amount_decimal`.",
            ))
        }
    };
    let has_product = field(form, &name("product")).is_some();
    let product_name_param = format!("{price_data}[product_data][name]");
    let product_name = field(form, &product_name_param);
    match (has_product, product_name) {
        (false, None) => {
            return Err(refused(
                Some(&price_data),
                "You must specify either `product` or `product_data` when creating a price.",
            ))
        }
        (false, Some("")) => {
            return Err(refused(
                Some(&product_name_param),
                "Missing required param: product_data[name].",
            ))
        }
        _ => {}
    }
    Ok(PriceData {
        unit_amount,
        recurring: has_any(form, &name("recurring")),
    })
}

fn create_portal_session(state: &mut State, salt: u64, form: &[(String, String)]) -> Outcome {
    if field(form, "customer").is_none() {
        return refused(Some("customer"), "Missing required param: customer.");
    }
    if let Err(refusal) = known_customer(state, form, "customer") {
        return refusal;
    }
    if let Some(url) = field(form, "return_url").filter(|url| !is_url(url)) {
        return refused(Some("return_url"), &format!("Not a valid URL: {url}"));
    }
    if state.portal_fails {
        return Outcome::Ran(
            StatusCode::INTERNAL_SERVER_ERROR,
            stripe_error(
                "api_error",
                "An unknown error occurred while processing your request.",
                None,
            ),
        );
    }
    let id = next_id(state, salt, "bps_", 24);
    let configuration = next_id(state, salt, "bpc_", 24);
    let token = next_token(state, salt, 32);
    Outcome::Ran(
        StatusCode::OK,
        json!({
            "id": id,
            "object": "billing_portal.session",
            "configuration": configuration,
            "created": now(),
            "customer": field(form, "customer"),
            "flow": null,
            "livemode": false,
            "locale": null,
            "on_behalf_of": null,
            "return_url": field(form, "return_url"),
            "url": format!("https://billing.stripe.com/p/session/test_{token}")
        }),
    )
}

fn create_setup_intent(state: &mut State, salt: u64, form: &[(String, String)]) -> Outcome {
    if let Err(refusal) = known_customer(state, form, "customer") {
        return refusal;
    }
    let usage = match field(form, "usage") {
        None => "off_session",
        Some(usage @ ("on_session" | "off_session")) => usage,
        Some(other) => {
            return refused(
                Some("usage"),
                &format!("Invalid usage: must be one of on_session or off_session (got {other})"),
            )
        }
    };
    let metadata = match checked_metadata(form, "metadata") {
        Ok(metadata) => metadata,
        Err(refusal) => return refusal,
    };
    let id = next_id(state, salt, "seti_", 24);
    let secret = next_token(state, salt, 32);
    Outcome::Ran(
        StatusCode::OK,
        json!({
            "id": id,
            "object": "setup_intent",
            "application": null,
            "automatic_payment_methods": {"allow_redirects": "always", "enabled": true},
            "cancellation_reason": null,
            "client_secret": format!("{id}_secret_{secret}"),
            "created": now(),
            "customer": field(form, "customer"),
            "description": null,
            "flow_directions": null,
            "last_setup_error": null,
            "latest_attempt": null,
            "livemode": false,
            "mandate": null,
            "metadata": metadata,
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": null,
            "payment_method_configuration_details": null,
            "payment_method_types": ["card"],
            "single_use_mandate": null,
            "status": "requires_payment_method",
            "usage": usage
        }),
    )
}

fn attach_payment_method(state: &mut State, id: &str, form: &[(String, String)]) -> Outcome {
    if !id.starts_with("pm_") {
        return Outcome::Refused {
            status: StatusCode::NOT_FOUND,
            error: resource_missing("payment_method", id, "payment_method"),
            violation: format!("No such PaymentMethod: '{id}'"),
        };
    }
    let Some(customer) = field(form, "customer") else {
        return refused(Some("customer"), "Missing required param: customer.");
    };
    if let Err(refusal) = known_customer(state, form, "customer") {
        return refusal;
    }
    if let Some(other) = state.attachments.get(id).filter(|c| *c != customer) {
        return refused(
            None,
            &format!(
                "The payment method you provided has already been attached to a customer \
                 ({other})."
            ),
        );
    }
    state.attachments.insert(id.to_owned(), customer.to_owned());
    Outcome::Ran(StatusCode::OK, payment_method_object(id, Some(customer)))
}

fn create_payment_intent(state: &mut State, salt: u64, form: &[(String, String)]) -> Outcome {
    let amount = match field(form, "amount").map(str::parse::<i64>) {
        Some(Ok(amount)) if amount >= MINIMUM_AMOUNT_CENTS => amount,
        Some(Ok(_)) => return refused(Some("amount"), "Amount must be at least $0.50 usd"),
        Some(Err(_)) => return refused(Some("amount"), "Invalid integer"),
        None => return refused(Some("amount"), "Missing required param: amount."),
    };
    match field(form, "currency") {
        Some("usd") => {}
        Some(other) => {
            return refused(
                Some("currency"),
                &format!("The fake only takes usd (got {other})"),
            )
        }
        None => return refused(Some("currency"), "Missing required param: currency."),
    }
    if let Err(refusal) = known_customer(state, form, "customer") {
        return refusal;
    }
    let metadata = match checked_metadata(form, "metadata") {
        Ok(metadata) => metadata,
        Err(refusal) => return refusal,
    };
    let confirm = field(form, "confirm") == Some("true");
    let off_session = field(form, "off_session");
    if off_session.is_some() && !confirm {
        return refused(
            Some("off_session"),
            "You may only specify `off_session` when `confirm=true`.",
        );
    }
    let customer = field(form, "customer");
    let payment_method = field(form, "payment_method");
    if confirm {
        let Some(payment_method) = payment_method else {
            return refused(
                Some("payment_method"),
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
            );
        };
        let attached_to = state.attachments.get(payment_method).map(String::as_str);
        if customer.is_some() && attached_to != customer {
            return refused(
                Some("payment_method"),
                &format!(
                    "The provided PaymentMethod {payment_method} does not belong to the \
                     Customer {}. Attach it to the Customer first.",
                    customer.unwrap_or_default()
                ),
            );
        }
        let redirects_ruled_out = field(form, "automatic_payment_methods[allow_redirects]")
            == Some("never")
            || has_any(form, "payment_method_types");
        if field(form, "return_url").is_none() && !redirects_ruled_out {
            return refused(
                None,
                "This PaymentIntent is configured to accept payment methods enabled in your \
                 Dashboard, because some of these payment methods might redirect your customer \
                 off of your page, you must provide a `return_url`. If you don't want to accept \
                 redirect-based payment methods, set `automatic_payment_methods[enabled]` to \
                 `true` and `automatic_payment_methods[allow_redirects]` to `never` when \
                 creating Setup Intents and Payment Intents.",
            );
        }
    }

    let id = next_id(state, salt, "pi_", 24);
    let secret = next_token(state, salt, 25);
    let charge_id = next_id(state, salt, "ch_", 24);
    let intent = json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": {
            "allow_redirects": field(form, "automatic_payment_methods[allow_redirects]").unwrap_or("always"),
            "enabled": true
        },
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic_async",
        "client_secret": format!("{id}_secret_{secret}"),
        "confirmation_method": "automatic",
        "created": now(),
        "currency": "usd",
        "customer": customer,
        "description": field(form, "description"),
        "last_payment_error": null,
        "latest_charge": null,
        "livemode": false,
        "metadata": metadata,
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": payment_method,
        "payment_method_configuration_details": null,
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "requires_payment_method",
        "transfer_data": null,
        "transfer_group": null
    });
    if !confirm {
        state.payment_intents.insert(id, intent.clone());
        return Outcome::Ran(StatusCode::OK, intent);
    }
    let outcome = confirm_payment_intent(state, salt, intent, charge_id, customer, payment_method);
    let created = match &outcome {
        Outcome::Ran(_, body) if body["object"] == "payment_intent" => Some(body.clone()),
        Outcome::Ran(_, body) => Some(body["error"]["payment_intent"].clone()),
        Outcome::Refused { .. } => None,
    };
    if let Some(created) = created {
        state.payment_intents.insert(id, created);
    }
    outcome
}

/// A PaymentIntent confirmed at creation: succeeded, unless an outcome was scripted.
fn confirm_payment_intent(
    state: &mut State,
    salt: u64,
    mut intent: Value,
    charge_id: String,
    customer: Option<&str>,
    payment_method: Option<&str>,
) -> Outcome {
    let amount = intent["amount"].clone();
    match state.next_payments.pop_front() {
        None => {
            intent["status"] = json!("succeeded");
            intent["amount_received"] = json!(amount);
            intent["latest_charge"] = json!(charge_id);
            Outcome::Ran(StatusCode::OK, intent)
        }
        Some(NextPayment::Processing) => {
            intent["status"] = json!("processing");
            intent["latest_charge"] = json!(charge_id);
            Outcome::Ran(StatusCode::OK, intent)
        }
        Some(NextPayment::RequiresAction) => {
            let source = next_id(state, salt, "src_", 24);
            intent["status"] = json!("requires_action");
            intent["next_action"] = json!({
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {
                    "type": "three_d_secure_redirect",
                    "stripe_js": format!("https://hooks.stripe.com/redirect/authenticate/{source}"),
                    "source": source
                }
            });
            Outcome::Ran(StatusCode::OK, intent)
        }
        Some(NextPayment::Decline { decline_code }) => {
            let (code, message) = decline_wording(&decline_code);
            let mut error = json!({
                "charge": charge_id,
                "code": code,
                "decline_code": decline_code,
                "doc_url": format!("https://docs.stripe.com/error-codes/{}", code.replace('_', "-")),
                "message": message,
                "payment_method": payment_method_object(payment_method.unwrap_or_default(), customer),
                "request_log_url": format!("https://dashboard.stripe.com/test/logs/{}", next_id(state, salt, "req_", 14)),
                "type": "card_error"
            });
            intent["last_payment_error"] = error.clone();
            intent["latest_charge"] = json!(charge_id);
            error["payment_intent"] = intent;
            Outcome::Ran(StatusCode::PAYMENT_REQUIRED, json!({ "error": error }))
        }
    }
}

/// Cancels a PaymentIntent that can still be canceled (Stripe refuses one that succeeded or was
/// canceled already with `payment_intent_unexpected_state`).
fn cancel_payment_intent(state: &mut State, id: &str, form: &[(String, String)]) -> Outcome {
    let Some(intent) = state.payment_intents.get_mut(id) else {
        return Outcome::Ran(
            StatusCode::NOT_FOUND,
            resource_missing("payment_intent", id, "intent"),
        );
    };
    let status = intent["status"].as_str().unwrap_or_default().to_owned();
    if matches!(status.as_str(), "succeeded" | "canceled") {
        let mut error = stripe_error(
            "invalid_request_error",
            &format!(
                "You cannot cancel this PaymentIntent because it has a status of {status}. Only                  a PaymentIntent with one of the following statuses may be canceled:                  requires_payment_method, requires_capture, requires_confirmation,                  requires_action, processing."
            ),
            None,
        );
        error["error"]["code"] = json!("payment_intent_unexpected_state");
        return Outcome::Ran(StatusCode::BAD_REQUEST, error);
    }
    intent["status"] = json!("canceled");
    intent["canceled_at"] = json!(now());
    intent["cancellation_reason"] = json!(field(form, "cancellation_reason"));
    intent["next_action"] = Value::Null;
    Outcome::Ran(StatusCode::OK, intent.clone())
}

/// Stripe's `code` and message for a decline code.
fn decline_wording(decline_code: &str) -> (&'static str, &'static str) {
    match decline_code {
        "authentication_required" => (
            "authentication_required",
            "Your card was declined. This transaction requires authentication.",
        ),
        "insufficient_funds" => ("card_declined", "Your card has insufficient funds."),
        "expired_card" => ("expired_card", "Your card has expired."),
        "incorrect_cvc" => ("incorrect_cvc", "Your card's security code is incorrect."),
        "lost_card" | "stolen_card" | "generic_decline" | "do_not_honor" => {
            ("card_declined", "Your card was declined.")
        }
        _ => ("card_declined", "Your card was declined."),
    }
}

fn payment_method_object(id: &str, customer: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": null,
                "country": null,
                "line1": null,
                "line2": null,
                "postal_code": null,
                "state": null
            },
            "email": null,
            "name": null,
            "phone": null,
            "tax_id": null
        },
        "card": {
            "brand": "visa",
            "checks": {
                "address_line1_check": null,
                "address_postal_code_check": null,
                "cvc_check": "pass"
            },
            "country": "US",
            "display_brand": "visa",
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": "Xt5EWLLDS7FJjR1c",
            "funding": "credit",
            "generated_from": null,
            "last4": "4242",
            "networks": {"available": ["visa"], "preferred": null},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": true},
            "wallet": null
        },
        "created": now(),
        "customer": customer,
        "livemode": false,
        "metadata": {},
        "type": "card"
    })
}

/* ------------------------------------------ checks ------------------------------------------ */

fn refused(param: Option<&str>, message: &str) -> Outcome {
    Outcome::Refused {
        status: StatusCode::BAD_REQUEST,
        error: stripe_error("invalid_request_error", message, param),
        violation: message.to_owned(),
    }
}

fn stripe_error(error_type: &str, message: &str, param: Option<&str>) -> Value {
    let mut error = json!({"type": error_type, "message": message});
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    json!({ "error": error })
}

fn resource_missing(object: &str, id: &str, param: &str) -> Value {
    let noun = match object {
        "payment_method" => "PaymentMethod",
        other => other,
    };
    json!({"error": {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "message": format!("No such {noun}: '{id}'"),
        "param": param
    }})
}

/// The named customer, when the parameter is given, must exist.
fn known_customer(state: &State, form: &[(String, String)], param: &str) -> Result<(), Outcome> {
    match field(form, param) {
        Some(id) if !state.customers.contains_key(id) => Err(Outcome::Refused {
            status: StatusCode::BAD_REQUEST,
            error: resource_missing("customer", id, param),
            violation: format!("No such customer: '{id}'"),
        }),
        _ => Ok(()),
    }
}

/// The `prefix[key]=value` entries, within Stripe's limits.
fn checked_metadata(
    form: &[(String, String)],
    prefix: &str,
) -> Result<Map<String, Value>, Outcome> {
    let entries = metadata(form, prefix);
    if entries.len() > METADATA_MAX_KEYS {
        return Err(refused(
            Some(prefix),
            &format!("Metadata can have up to {METADATA_MAX_KEYS} keys."),
        ));
    }
    if let Some((key, _)) = entries
        .iter()
        .find(|(key, _)| key.is_empty() || key.chars().count() > METADATA_KEY_MAX_CHARS)
    {
        return Err(refused(
            Some(&format!("{prefix}[{key}]")),
            &format!("Metadata keys must be 1 to {METADATA_KEY_MAX_CHARS} characters long."),
        ));
    }
    if let Some((key, _)) = entries
        .iter()
        .find(|(_, value)| value.chars().count() > METADATA_VALUE_MAX_CHARS)
    {
        return Err(refused(
            Some(&format!("{prefix}[{key}]")),
            &format!("Metadata values can have up to {METADATA_VALUE_MAX_CHARS} characters."),
        ));
    }
    Ok(entries
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect())
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn metadata(form: &[(String, String)], prefix: &str) -> HashMap<String, String> {
    let opening = format!("{prefix}[");
    form.iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix(&opening)?.strip_suffix(']')?;
            (!key.contains('[')).then(|| (key.to_owned(), value.clone()))
        })
        .collect()
}

/// Whether any field is `name` itself or nested under it.
fn has_any(form: &[(String, String)], name: &str) -> bool {
    let nested = format!("{name}[");
    form.iter()
        .any(|(n, _)| n == name || n.starts_with(&nested))
}

/// The distinct indices of an array parameter (`line_items[0][…]`, `line_items[1][…]`).
fn indices(form: &[(String, String)], name: &str) -> BTreeSet<usize> {
    let opening = format!("{name}[");
    form.iter()
        .filter_map(|(n, _)| {
            let rest = n.strip_prefix(&opening)?;
            rest[..rest.find(']')?].parse().ok()
        })
        .collect()
}

/// `name`, then any number of `[…]` segments without nested brackets.
fn is_bracket_key(key: &str) -> bool {
    let (head, mut rest) = key.split_at(key.find('[').unwrap_or(key.len()));
    if head.is_empty() || !head.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return false;
    }
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
            return false;
        };
        let Some(close) = inner.find(']') else {
            return false;
        };
        if inner[..close].contains('[') {
            return false;
        }
        rest = &inner[close + 1..];
    }
    true
}

fn is_url(value: &str) -> bool {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/') && !rest.contains(' '))
}

fn sorted(form: &[(String, String)]) -> Vec<(String, String)> {
    let mut form = form.to_vec();
    form.sort();
    form
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Shows a key the way Stripe's error does: its start and its last four characters.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

/* ---------------------------------------- encoding ------------------------------------------ */

/// `a=1&b%5Bc%5D=2` → `[("a", "1"), ("b[c]", "2")]`; `+` is a space, as in HTML forms.
fn decode_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => match text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                Some(byte) => {
                    decoded.push(byte);
                    i += 2;
                }
                None => decoded.push(b'%'),
            },
            byte => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/* -------------------------------------------- ids -------------------------------------------- */

fn next_id(state: &mut State, salt: u64, prefix: &str, length: usize) -> String {
    format!("{prefix}{}", next_token(state, salt, length))
}

/// `length` base-62 characters, unique within this fake and unlikely to repeat across fakes.
fn next_token(state: &mut State, salt: u64, length: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    state.id_counter += 1;
    // SplitMix64 over (salt, counter): cheap, deterministic, well spread.
    let mut seed = salt ^ state.id_counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..length)
        .map(|_| {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ALPHABET[(z % 62) as usize] as char
        })
        .collect()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}

fn epoch_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or_default()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock must not hide the other tests' requests.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
