//! `spawn_app()`: the whole API on 127.0.0.1:0 against a fresh DynamoDB Local table, with an
//! HTTP client that reads like the product.

use aws_sdk_dynamodb::types::AttributeValue;
use billing_core::app::App;
use billing_core::clock::{Clock, ManualClock};
use billing_core::config::Config;
use billing_core::store::keys::{self, DueIndex};
use billing_core::store::Store;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An item as DynamoDB holds it.
pub type Item = std::collections::HashMap<String, AttributeValue>;

/// A text attribute of `item` (`""` when it has none, or not as text).
pub fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::S(value)) => value,
        _ => "",
    }
}

/// Every item of `store`'s table, read directly with consistent reads.
pub async fn scan_table(store: &Store) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .dynamodb()
            .scan()
            .table_name(store.table_name())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan the table");
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// DynamoDB Local's address, set by `make test`.
pub fn dynamodb_endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT").expect(
        "DYNAMODB_ENDPOINT is not set: run the tests with `make test`, which starts DynamoDB Local",
    )
}

/// A table name no other test uses.
pub fn fresh_table_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
    )
}

/// A store on a new, empty table.
pub async fn fresh_store() -> Store {
    let store = Store::connect(&fresh_table_name(), Some(&dynamodb_endpoint())).await;
    store.create_table().await.expect("create a test table");
    store
}

pub struct TestApp {
    pub base_url: String,
    pub service_key: String,
    pub app: Arc<App>,
    pub clock: Arc<ManualClock>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A response, with its body parsed as JSON (`Value::Null` when empty).
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    /// The contract error code, when this is an error.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], letting the test adjust the configuration first.
/// Its events pipeline runs as the dev server's does: committed events are delivered to the
/// workspace's webhook endpoints, due retries every second by the app's clock.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let app = spawn_app_on(fresh_store().await, &dynamodb_endpoint(), adjust).await;
    billing_core::events::local::start(app.app.clone());
    app
}

/// Like [`spawn_app_with`], with the app's store reaching DynamoDB Local through `endpoint`
/// (a [`crate::fault_proxy::FaultProxy`]), on `table` (another process of the same
/// deployment) or on a new one, created directly.
pub async fn spawn_app_through(
    endpoint: &str,
    table: Option<&str>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};
    static PARTITIONS: AtomicU64 = AtomicU64::new(0);
    let table = match table {
        Some(table) => table.to_owned(),
        None => fresh_store().await.table_name().to_owned(),
    };
    // Its own retry budget: the SDK's is shared by every client of a partition in the process,
    // and injected faults must not spend the one the other tests retry on.
    let partition = RetryPartition::custom(format!(
        "fault-proxy-{}",
        PARTITIONS.fetch_add(1, Ordering::Relaxed)
    ))
    .token_bucket(TokenBucket::unlimited())
    .build();
    let config = aws_sdk_dynamodb::config::Builder::from(
        &billing_core::aws::sdk_config(Some(endpoint)).await,
    )
    .retry_partition(partition)
    // Faults come far more often than in production: the SDK's first backoff (1 s) shortened,
    // or a campaign of them would outlast its time bound.
    .retry_config(
        aws_sdk_dynamodb::config::retry::RetryConfig::standard()
            .with_initial_backoff(std::time::Duration::from_millis(20))
            .with_max_backoff(std::time::Duration::from_millis(500)),
    )
    .build();
    let store = Store::new(aws_sdk_dynamodb::Client::from_conf(config), table);
    spawn_app_on(store, endpoint, adjust).await
}

/// A store on the same table as `app`'s, reaching DynamoDB Local directly (no proxy), sharing
/// nothing with the app's: what checks read the table with.
pub async fn direct_store(app: &TestApp) -> Store {
    Store::connect(app.app.store.table_name(), Some(&dynamodb_endpoint())).await
}

async fn spawn_app_on(store: Store, endpoint: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let service_key = billing_core::domain::api_key::mint_key().plaintext;
    let mut config = Config::local(store.table_name(), endpoint, &service_key);
    adjust(&mut config);
    let clock = Arc::new(ManualClock::at(time::OffsetDateTime::now_utc()));
    let app = Arc::new(App::new(config, store, clock.clone() as Arc<dyn Clock>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(billing_core::dev_server::serve(app.clone(), listener));
    TestApp {
        base_url,
        service_key,
        app,
        clock,
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

/// A request being built.
pub struct Call<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl TestApp {
    /// The app's clock, in epoch seconds.
    pub fn clock_now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    pub fn call(&self, method: Method, path: impl Into<String>) -> Call<'_> {
        Call {
            app: self,
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub async fn get(&self, path: &str, key: &str) -> TestResponse {
        self.call(Method::GET, path).key(key).send().await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> TestResponse {
        self.call(Method::POST, path)
            .key(key)
            .json(body)
            .send()
            .await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> TestResponse {
        self.call(Method::PATCH, path)
            .key(key)
            .json(body)
            .send()
            .await
    }

    pub async fn delete(&self, path: &str, key: &str) -> TestResponse {
        self.call(Method::DELETE, path).key(key).send().await
    }

    /// Creates a user through the API; returns (user id, default account id).
    pub async fn create_user(&self, external_id: &str) -> (String, String) {
        let created = self
            .post(
                "/v1/users",
                &self.service_key,
                json!({"external_id": external_id}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        (
            created.body["user"]["id"].as_str().unwrap().to_owned(),
            created.body["default_billing_account"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    /// A key for `owner` (e.g. `{"type": "user", "id": …}`), created by the service.
    pub async fn create_key(&self, owner: Value) -> String {
        let created = self
            .post("/v1/api-keys", &self.service_key, json!({"owner": owner}))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        created.body["key"].as_str().unwrap().to_owned()
    }

    /// A user with its own key: (user id, default account id, key).
    pub async fn user_with_key(&self, external_id: &str) -> (String, String, String) {
        let (user, account) = self.create_user(external_id).await;
        let key = self.create_key(json!({"type": "user", "id": user})).await;
        (user, account, key)
    }

    /// A workspace of the user whose key this is; returns its id.
    pub async fn create_workspace(&self, user_key: &str, name: &str) -> String {
        let created = self
            .post("/v1/workspaces", user_key, json!({"name": name}))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        created.body["id"].as_str().unwrap().to_owned()
    }

    /// The item `pk`/`sk` as the table holds it, read past the store (consistently).
    pub async fn stored_item(&self, pk: &str, sk: &str) -> Option<Item> {
        self.app
            .store
            .dynamodb()
            .get_item()
            .table_name(self.app.store.table_name())
            .key(keys::PK, AttributeValue::S(pk.to_owned()))
            .key(keys::SK, AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("read an item")
            .item
    }

    /// The partition of `index` the item `pk`/`sk` is under, read past the store (`None`: it
    /// is not in the index).
    pub async fn due_partition(&self, pk: &str, sk: &str, index: DueIndex) -> Option<String> {
        let item = self.stored_item(pk, sk).await?;
        match item.get(&format!("{}pk", index.gsi())) {
            Some(AttributeValue::S(partition)) => Some(partition.clone()),
            _ => None,
        }
    }

    /// The partitions of `index` the items `(pk, sk)` are under; every one must be indexed.
    pub async fn due_partitions(
        &self,
        items: &[(String, String)],
        index: DueIndex,
    ) -> std::collections::HashSet<String> {
        let mut partitions = std::collections::HashSet::new();
        for (pk, sk) in items {
            let partition = self.due_partition(pk, sk, index).await;
            partitions.insert(partition.unwrap_or_else(|| panic!("{pk} {sk} is not in {index:?}")));
        }
        partitions
    }

    /// Moves the item `pk`/`sk` to `index`'s legacy single partition, where items written
    /// before the index was sharded are: a direct write, past the store. The item must be in
    /// the index.
    pub async fn move_to_legacy_partition(&self, pk: &str, sk: &str, index: DueIndex) {
        self.app
            .store
            .dynamodb()
            .update_item()
            .table_name(self.app.store.table_name())
            .key(keys::PK, AttributeValue::S(pk.to_owned()))
            .key(keys::SK, AttributeValue::S(sk.to_owned()))
            .update_expression("SET #partition = :legacy")
            .condition_expression("attribute_exists(#partition)")
            .expression_attribute_names("#partition", format!("{}pk", index.gsi()))
            .expression_attribute_values(
                ":legacy",
                AttributeValue::S(index.legacy_partition().to_owned()),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{pk} {sk} is not in {index:?}: {e:?}"));
    }
}

impl Call<'_> {
    pub fn key(mut self, key: &str) -> Self {
        self.headers
            .push(("authorization".into(), format!("Bearer {key}")));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.headers
            .push(("content-type".into(), "application/json".into()));
        self
    }

    pub fn raw_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub async fn send(self) -> TestResponse {
        let mut request = http::Request::builder()
            .method(self.method)
            .uri(format!("{}{}", self.app.base_url, self.path));
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(self.body.unwrap_or_default())))
            .expect("a valid request");
        let response = self
            .app
            .client
            .request(request)
            .await
            .expect("the server answers");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("a body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}
