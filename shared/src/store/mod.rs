//! The DynamoDB store: one table (see [`keys`]), conditional writes and transactions. The only
//! store implementation; tests run it against DynamoDB Local.

pub mod accounts;
pub mod api_keys;
pub mod counters;
pub mod credits;
pub mod events;
pub mod idempotency;
pub mod keys;
pub mod ledger;
pub mod lifecycle;
pub mod limits;
pub mod movement;
pub mod payments;
pub mod runs;
pub mod table;
pub mod usage;
pub mod users;
pub mod views;
pub mod webhooks;
pub mod workspaces;
pub mod x402;

use crate::domain::calendar::Month;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub type Item = HashMap<String, AttributeValue>;

/// Something the store could not do. Business outcomes (a refused condition, a duplicate) are
/// not errors here: each operation returns its own outcome type for those.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("dynamodb request failed: {0}")]
    Dynamo(String),
    #[error("item does not match its shape: {0}")]
    Corrupt(String),
    #[error("too much contention on one item; gave up after retries")]
    Contention,
}

impl StoreError {
    pub(crate) fn sdk<E, R>(error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::fmt::Debug,
        R: std::fmt::Debug,
    {
        let detail = match error.as_service_error() {
            Some(service) => format!(
                "{}: {}",
                service.code().unwrap_or("unknown"),
                service.message().unwrap_or("")
            ),
            None => format!("{error:?}"),
        };
        StoreError::Dynamo(detail)
    }

    pub(crate) fn build(error: aws_sdk_dynamodb::error::BuildError) -> Self {
        StoreError::Dynamo(format!("request could not be built: {error}"))
    }

    pub(crate) fn codec(error: serde_dynamo::Error) -> Self {
        StoreError::Corrupt(error.to_string())
    }
}

/// A handle on the table. Cheap to clone; built once per cold start.
#[derive(Clone)]
pub struct Store {
    pub(crate) client: Client,
    pub(crate) table: String,
    /// Money state this process last saw, and a lock per account (see [`ledger::LedgerCache`]).
    pub(crate) ledger_cache: std::sync::Arc<ledger::LedgerCache>,
    /// Auto-recharges started by this process's movements, to charge.
    pub recharges: std::sync::Arc<ledger::RechargeQueue>,
    /// Agents this process recorded (see [`limits::KnownAgents`]).
    pub(crate) known_agents: std::sync::Arc<limits::KnownAgents>,
    /// What this handle's transactions cost and how often they were retried.
    pub stats: std::sync::Arc<WriteStats>,
    /// The app's clock, for the times the store records itself (an auto-recharge's start).
    pub(crate) clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// Billing events this handle committed, for the local stage's in-process pipeline.
    pub events: std::sync::Arc<events::EventTap>,
    /// Who applies this handle's usage counts to the counters.
    pub(crate) counting: counters::Counting,
    /// In-process counting's queue and turn.
    pub(crate) counts: std::sync::Arc<counters::InProcessCounts>,
}

/// Counters for benchmarks and logs.
#[derive(Default, Debug)]
pub struct WriteStats {
    /// Transactions that committed.
    pub transactions: AtomicU64,
    /// Write capacity consumed by them, in thousandths of a unit, as DynamoDB reports it.
    pub write_milli_units: AtomicU64,
    /// Transactions retried because another one touched the same items at the same moment.
    pub conflict_retries: AtomicU64,
    /// Money movements re-decided because the account or budget had changed since read.
    pub stale_retries: AtomicU64,
}

/// Where a listing stopped: the last item's key attributes, all strings in this table.
pub type PageKey = BTreeMap<String, String>;

/// One page of a listing, newest first.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts, if there is one.
    pub next: Option<PageKey>,
}

/// What a transaction did.
pub(crate) enum Transacted {
    Committed,
    /// A condition failed; one entry per element of the transaction.
    Refused(Vec<Cancelled>),
}

/// One element of a refused transaction.
pub(crate) struct Cancelled {
    /// Whether this element's condition failed.
    pub failed: bool,
    /// The item as it was, where the element asked for it (`ReturnValuesOnConditionCheckFailure`).
    pub item: Option<Item>,
}

impl Transacted {
    /// Whether the element at `index` is among those whose condition failed.
    pub(crate) fn failed(&self, index: usize) -> bool {
        match self {
            Transacted::Committed => false,
            Transacted::Refused(reasons) => reasons.get(index).is_some_and(|r| r.failed),
        }
    }
}

/// How often a request that only lost a race (or was throttled) is tried again, with jittered
/// backoff capped at 200 ms: about five seconds in all.
const TRANSACTION_ATTEMPTS: u32 = 30;

/// How often a transaction the SDK gave up on (after its own retries of a 5xx, a throttle or a
/// lost connection) is sent again under its token: a few, since each already retried.
const UNANSWERED_ATTEMPTS: u32 = 3;

/// The condition that makes a put create, never overwrite.
pub(crate) const NEW_ITEM: &str = "attribute_not_exists(pk)";

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            ledger_cache: Default::default(),
            known_agents: Default::default(),
            recharges: Default::default(),
            stats: Default::default(),
            clock: std::sync::Arc::new(crate::clock::SystemClock),
            events: Default::default(),
            counting: counters::Counting::InProcess,
            counts: Default::default(),
        }
    }

    /// A client for DynamoDB (or DynamoDB Local at `endpoint`) built from the environment.
    pub async fn connect(table: &str, endpoint: Option<&str>) -> Self {
        Self::new(Client::new(&crate::aws::sdk_config(endpoint).await), table)
    }

    /// This handle, with its usage counts applied by `counting`.
    pub fn with_counting(mut self, counting: counters::Counting) -> Self {
        self.counting = counting;
        self
    }

    /// This handle, reading time from `clock` (the app's, so tests can move it).
    pub fn with_clock(mut self, clock: std::sync::Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client, for benchmarks that compare against bare requests.
    pub fn dynamodb(&self) -> &Client {
        &self.client
    }

    /// A handle on the same table that shares nothing else with this one (no remembered
    /// state, no per-account turns, its own stats), as another process would be.
    pub fn independent(&self) -> Self {
        Self::new(self.client.clone(), self.table.clone()).with_counting(self.counting)
    }

    /// A strongly consistent read of one item.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        output
            .item
            .map(|item| {
                serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(StoreError::codec)
            })
            .transpose()
    }

    /// Runs a transaction, retrying when it only lost a race (TransactionConflict) or its answer
    /// did not arrive, and reporting which conditions failed when it was refused.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Transacted, StoreError> {
        // One token for every attempt: when an attempt committed and its answer was lost,
        // DynamoDB answers a retry of the same token and items as the success it was (for 10
        // minutes), where a new token would be refused by the conditions the attempt changed.
        let token = format!("{:032x}", rand::random::<u128>());
        let mut unanswered = 0;
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(&token)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            let error = match result {
                Ok(output) => {
                    let units: f64 = output
                        .consumed_capacity()
                        .iter()
                        .filter_map(|c| c.capacity_units())
                        .sum();
                    self.stats.transactions.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .write_milli_units
                        .fetch_add((units * 1000.0) as u64, Ordering::Relaxed);
                    self.events.committed(&items);
                    return Ok(Transacted::Committed);
                }
                Err(error) => error,
            };
            let retryable = match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    let reasons = cancelled.cancellation_reasons();
                    let codes: Vec<&str> =
                        reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
                    if codes.contains(&"ConditionalCheckFailed") {
                        return Ok(Transacted::Refused(
                            reasons
                                .iter()
                                .map(|r| Cancelled {
                                    failed: r.code() == Some("ConditionalCheckFailed"),
                                    item: r.item().cloned(),
                                })
                                .collect(),
                        ));
                    }
                    codes
                        .iter()
                        .all(|c| matches!(*c, "None" | "TransactionConflict" | "ThrottlingError"))
                }
                // The same token still running (an attempt whose answer was lost).
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
                // The SDK gave up on its own retries of this token: whether it committed is
                // unknown, and only another attempt with the token can tell.
                _ if is_transient(&error) && unanswered < UNANSWERED_ATTEMPTS => {
                    unanswered += 1;
                    true
                }
                _ => false,
            };
            if !retryable {
                return Err(StoreError::sdk(error));
            }
            self.stats.conflict_retries.fetch_add(1, Ordering::Relaxed);
            backoff(attempt).await;
        }
        Err(StoreError::Contention)
    }

    /// One page of a query, newest first, `limit` items at most after `filter`.
    pub(crate) async fn query_page<T: DeserializeOwned>(
        &self,
        query: Query,
        limit: usize,
        start: Option<PageKey>,
    ) -> Result<Page<T>, StoreError> {
        let mut collected: Vec<Item> = Vec::with_capacity(limit + 1);
        let mut exclusive_start = start.map(to_key_item);
        loop {
            // One more than asked, to know whether another page exists.
            let wanted = limit + 1 - collected.len();
            let (items, last) = self
                .query_once(&query, exclusive_start.take(), wanted)
                .await?;
            collected.extend(items);
            exclusive_start = last;
            if collected.len() > limit || exclusive_start.is_none() {
                break;
            }
        }
        let has_more = collected.len() > limit;
        collected.truncate(limit);
        let next = if has_more {
            collected.last().map(|last| page_key(last, query.index))
        } else {
            None
        };
        let items = collected
            .into_iter()
            .map(|item| {
                serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(StoreError::codec)
            })
            .collect::<Result<Vec<T>, _>>()?;
        Ok(Page { items, next })
    }

    /// One `Query` call, newest first, from `start`: at most `limit` items (before the filter)
    /// and where the next call would start (`None`: the query is done).
    pub(crate) async fn query_once(
        &self,
        query: &Query,
        start: Option<Item>,
        limit: usize,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(&query.key_condition)
            .set_expression_attribute_values(Some(query.values.clone()))
            .scan_index_forward(false)
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        if let Some(index) = query.index {
            request = request.index_name(index);
        } else {
            request = request.consistent_read(true);
        }
        if let Some(filter) = &query.filter {
            request = request.filter_expression(filter);
        }
        if !query.names.is_empty() {
            request = request.set_expression_attribute_names(Some(query.names.clone()));
        }
        let output = request.send().await.map_err(StoreError::sdk)?;
        Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
    }

    /// Reads many items by key (in one or more BatchGetItem calls), in no particular order.
    pub(crate) async fn get_many<T: DeserializeOwned>(
        &self,
        item_keys: Vec<(String, String)>,
    ) -> Result<Vec<T>, StoreError> {
        self.get_many_raw(item_keys)
            .await?
            .into_iter()
            .map(|item| {
                serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(StoreError::codec)
            })
            .collect()
    }

    /// [`Store::get_many`], without decoding the items.
    pub(crate) async fn get_many_raw(
        &self,
        item_keys: Vec<(String, String)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(item_keys.len());
        for chunk in item_keys.chunks(100) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| key_item(pk.clone(), sk.clone()))
                .collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                let keys_and_attributes = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(StoreError::build)?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys_and_attributes)
                    .send()
                    .await
                    .map_err(StoreError::sdk)?;
                if let Some(mut responses) = output.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                if let Some(rest) = output
                    .unprocessed_keys
                    .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                {
                    pending = rest.keys;
                    attempt += 1;
                    if attempt >= TRANSACTION_ATTEMPTS {
                        return Err(StoreError::Contention);
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(found)
    }
}

/// Building blocks of transactions, on this store's table.
impl Store {
    /// The items of `index` whose due epoch is at or before `now_epoch`, earliest first, at
    /// most `limit`: what is due, from every shard and the legacy partition at once.
    pub(crate) async fn due_items(
        &self,
        index: keys::DueIndex,
        now_epoch: i64,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        // Every index `gsiN` is keyed by `gsiNpk` and `gsiNsk`.
        let sort_key = format!("{}sk", index.gsi());
        let partitions = index.partitions();
        let queries = partitions
            .iter()
            .map(|partition| self.due_in_partition(index.gsi(), partition, now_epoch, limit));
        let mut due: Vec<Item> = futures::future::try_join_all(queries)
            .await?
            .into_iter()
            .flatten()
            .collect();
        // Each partition's items come sorted; the sort key (`<epoch>#…`) orders them across.
        due.sort_by_cached_key(|item| item.get(&sort_key).and_then(|v| v.as_s().ok()).cloned());
        due.truncate(limit);
        Ok(due)
    }

    /// The first `limit` due items of one index partition, earliest first.
    async fn due_in_partition(
        &self,
        index: &str,
        partition: &str,
        now_epoch: i64,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let (pk, sk) = (format!("{index}pk"), format!("{index}sk"));
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#pk = :partition AND #sk < :due")
            .expression_attribute_names("#pk", pk)
            .expression_attribute_names("#sk", sk)
            .expression_attribute_values(":partition", s(partition))
            // Due: the epoch ≤ now ("#" sorts below "~").
            .expression_attribute_values(":due", s(format!("{now_epoch:012}~")))
            .limit(i32::try_from(limit).unwrap_or(100))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(output.items.unwrap_or_default())
    }

    pub(crate) fn put(
        &self,
        item: impl Serialize,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        self.put_item(to_item(&item)?, condition)
    }

    /// [`Store::put`] of an item already in DynamoDB's form.
    pub(crate) fn put_item(
        &self,
        item: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .set_condition_expression(condition.map(str::to_owned))
                    .build()
                    .map_err(StoreError::build)?,
            )
            .build())
    }

    /// A put of an item with a `version` attribute, conditional on the version read (`None`: the
    /// item must be new). A refusal returns the item as it is, to decide again without a read.
    pub(crate) fn versioned_put(
        &self,
        item: impl Serialize,
        version: Option<i64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        put = match version {
            None => put.condition_expression(NEW_ITEM),
            Some(version) => put
                .condition_expression("version = :version")
                .expression_attribute_values(":version", n(version)),
        };
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(StoreError::build)?)
            .build())
    }

    /// A condition on another item that the transaction must hold true.
    pub(crate) fn check(
        &self,
        pk: String,
        sk: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(pk, sk.to_owned())))
            .condition_expression(condition);
        for (name, value) in values {
            check = check.expression_attribute_values(*name, value.clone());
        }
        Ok(TransactWriteItem::builder()
            .condition_check(check.build().map_err(StoreError::build)?)
            .build())
    }

    pub(crate) fn update(
        &self,
        pk: String,
        sk: &str,
        expression: &str,
        condition: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(pk, sk.to_owned())))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_owned));
        for (name, value) in values {
            update = update.expression_attribute_values(*name, value.clone());
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(StoreError::build)?)
            .build())
    }

    pub(crate) fn delete(
        &self,
        pk: String,
        sk: &str,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_item(pk, sk.to_owned())))
                    .set_condition_expression(condition.map(str::to_owned))
                    .build()
                    .map_err(StoreError::build)?,
            )
            .build())
    }

    pub(crate) fn workspace_exists(
        &self,
        workspace: &crate::domain::ids::WorkspaceId,
    ) -> Result<TransactWriteItem, StoreError> {
        self.check(
            keys::workspace(workspace.as_str()),
            keys::WORKSPACE_SK,
            "attribute_exists(pk)",
            &[],
        )
    }
}

/// A query: key condition, optional index and filter, and their placeholders.
pub(crate) struct Query {
    pub index: Option<&'static str>,
    pub key_condition: String,
    pub filter: Option<String>,
    pub values: HashMap<String, AttributeValue>,
    pub names: HashMap<String, String>,
}

impl Query {
    /// Items whose partition key is `pk` and whose sort key starts with `sk_prefix`.
    pub fn prefix(index: Option<&'static str>, pk: String, sk_prefix: &str) -> Self {
        let (pk_name, sk_name) = match index {
            Some(_) => (keys::GSI1_PK, keys::GSI1_SK),
            None => (keys::PK, keys::SK),
        };
        Self {
            index,
            key_condition: format!("{pk_name} = :pk AND begins_with({sk_name}, :sk)"),
            filter: None,
            values: HashMap::from([
                (":pk".to_owned(), AttributeValue::S(pk)),
                (":sk".to_owned(), AttributeValue::S(sk_prefix.to_owned())),
            ]),
            names: HashMap::new(),
        }
    }

    /// Every item of a partition (of the table, or of the index).
    pub fn partition(index: Option<&'static str>, pk: String) -> Self {
        let pk_name = match index {
            Some(_) => keys::GSI1_PK,
            None => keys::PK,
        };
        Self {
            index,
            key_condition: format!("{pk_name} = :pk"),
            filter: None,
            values: HashMap::from([(":pk".to_owned(), AttributeValue::S(pk))]),
            names: HashMap::new(),
        }
    }

    /// Also requires `attribute = value` (applied after the key condition).
    pub fn with_equal(mut self, attribute: &str, value: String) -> Self {
        let n = self.names.len();
        let (name, placeholder) = (format!("#f{n}"), format!(":f{n}"));
        let clause = format!("{name} = {placeholder}");
        self.filter = Some(match self.filter.take() {
            Some(existing) => format!("{existing} AND {clause}"),
            None => clause,
        });
        self.names.insert(name, attribute.to_owned());
        self.values.insert(placeholder, AttributeValue::S(value));
        self
    }
}

pub(crate) fn key_item(pk: String, sk: String) -> Item {
    HashMap::from([
        (keys::PK.to_owned(), AttributeValue::S(pk)),
        (keys::SK.to_owned(), AttributeValue::S(sk)),
    ])
}

fn page_key(item: &Item, index: Option<&str>) -> PageKey {
    let mut names = vec![keys::PK, keys::SK];
    if index.is_some() {
        names.extend([keys::GSI1_PK, keys::GSI1_SK]);
    }
    names
        .into_iter()
        .filter_map(|name| match item.get(name) {
            Some(AttributeValue::S(value)) => Some((name.to_owned(), value.clone())),
            _ => None,
        })
        .collect()
}

fn to_key_item(key: PageKey) -> Item {
    key.into_iter()
        .map(|(name, value)| (name, AttributeValue::S(value)))
        .collect()
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(value).map_err(StoreError::codec)
}

/// Whether a request failed without an answer about its effect: no connection, no response, a
/// server error or a throttle. Trying again may help; a refusal or a bad request would not.
pub(crate) fn is_transient<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "InternalServerError"
                    | "ServiceUnavailable"
                    | "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
            )
        ),
        _ => false,
    }
}

/// Jittered exponential backoff: 5 ms, 10 ms, 20 ms … capped at 200 ms.
async fn backoff(attempt: u32) {
    let base = 5u64 << attempt.min(5);
    let jitter = rand::random_range(0..=base);
    tokio::time::sleep(Duration::from_millis((base + jitter).min(200))).await;
}

/// Whether a conditional `UpdateItem` applied (`false`: its condition failed).
pub(crate) fn update_applied(
    result: Result<
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
        SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
            aws_sdk_dynamodb::config::http::HttpResponse,
        >,
    >,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(error) => Err(StoreError::sdk(error)),
    }
}

/// The month of an RFC 3339 time or a `YYYY-MM-DD` date this service wrote.
pub(crate) fn month_of(time: &str) -> Result<Month, StoreError> {
    Month::of_timestamp(time).ok_or_else(|| StoreError::Corrupt(format!("`{time}` has no month")))
}

/// A stored `YYYY-MM` that is empty (or absent) before money first moved.
pub(crate) fn stored_month<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Month>, D::Error> {
    let text = <Option<String> as serde::Deserialize>::deserialize(deserializer)?;
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => Month::parse(text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a month"))),
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}
