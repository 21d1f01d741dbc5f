//! How items are keyed in the single table. Every key format lives here, so the access patterns
//! can be read in one place:
//!
//! | item | pk | sk | gsi1pk / gsi1sk |
//! |---|---|---|---|
//! | user | `USER#usr` | `USER` | |
//! | external-id claim | `USER_EXT#<external id>` | `USER_EXT` | |
//! | billing account | `ACCOUNT#ba` | `ACCOUNT` | `OWNER#usr` / `ACCOUNT#ba`; gsi2: `RECHARGES` / `<epoch>#ba` while an auto-recharge is under way |
//! | ledger transaction | `ACCOUNT#ba` | `TXN#txn` | `WS_TXN#ws` / `TXN#txn` (when it has a workspace) |
//! | workspace | `WS#ws` | `WS` | `OWNER#usr` / `WS#ws`; gsi2: `DEADLINES` / `<epoch>#ws` while a lifecycle date is ahead |
//! | usage-event rate window | `RATE#ws` | `<minute epoch>` | |
//! | agent seen in a workspace | `WS#ws` | `AGENT#<agent id>` | |
//! | billing profile (Stripe customer, method, subscription) | `WS#ws` | `BILLING` | |
//! | checkout session | `CHECKOUT#cs` | `CHECKOUT` | |
//! | Stripe customer → workspace | `CUSTOMER#cus` | `CUSTOMER` | |
//! | invoice mirror | `INVOICE#in` | `INVOICE` | `WS_INVOICES#ws` / `<created epoch>#in` |
//! | Stripe event claim | `STRIPE_EVENT#evt` | `STRIPE_EVENT` | |
//! | refunds taken back for a charge | `CHARGE_REFUNDS#ch` | `REFUNDS` | |
//! | the account a payment credited; a refund reported before it was | `PAYMENT#pi` | `PAYMENT` | |
//! | workspace ↔ account link | `WS#ws` | `LINK#ba` | `ACCOUNT_LINKS#ba` / `WS#ws` |
//! | API key | `KEY#key` | `KEY` | `KEY_OWNER#usr\|ws` / `KEY#key` |
//! | API key by hash (auth) | `KEY_HASH#<sha256>` | `KEY_HASH` | |
//! | idempotency record | `IDEM#<scope>#<key>` | `IDEM` | |
//! | workspace budget (caps, month spend, holds) | `WS#ws` | `BUDGET` | |
//! | usage event claim (its first result) | `USAGE_EVENT#ws#<event id>` | `USAGE_EVENT` | |
//! | usage counter, daily | `WS_USAGE#ws` | `D#<date>#<category>#<agent>` | |
//! | usage counter, monthly | `WS_USAGE#ws` / `ACCOUNT_USAGE#ba` | `M#<month>#<category>` | |
//! | run | `RUN#run` | `RUN` | `RUNS_OPEN` / `<expires epoch>#run` while open |
//! | service credit claim | `CREDIT#<scope>#<idempotency key>` | `CREDIT` | |
//! | billing event (outbox; the table's stream publishes it) | `EVT#evt` | `EVT` | |
//! | x402 authorization claim | `X402#<network>#<from>#<nonce>` (lower case) | `X402` | gsi2: `X402_PENDING` / `<epoch>#<pk>` while pending |
//! | webhook endpoint | `WS#ws` | `WHE#whe` | |
//! | a workspace's endpoint count | `WS#ws` | `WHE_COUNT` | |
//! | one event's delivery to one endpoint | `WHE#whe` | `EVT#evt` | gsi2: `WEBHOOK_RETRIES` / `<epoch>#whe#evt` while an attempt is due |
//! | delivery attempt (log) | `WHE#whe` | `WHD#whd` | |
//!
//! Ids are time-ordered, so sorting by a key that ends in an id sorts by creation time.

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
/// The lifecycle deadline index: one partition, sorted by due time.
pub const GSI2: &str = "gsi2";
pub const DEADLINES: &str = "DEADLINES";
/// Accounts with an auto-recharge under way, by start time (also on `gsi2`).
pub const RECHARGES: &str = "RECHARGES";

pub fn deadline_sk(due_epoch: i64, workspace_id: &str) -> String {
    format!("{due_epoch:012}#{workspace_id}")
}

pub const BILLING_PROFILE_SK: &str = "BILLING";

/// An x402 authorization's claim (its pk is `X402#…`, made by `x402::payload::Payment::claim_key`).
pub const X402_CLAIM_SK: &str = "X402";
/// Pending x402 claims, by claim time (on `gsi2`): what reconciliation reads.
pub const X402_PENDING: &str = "X402_PENDING";

pub fn customer(id: &str) -> String {
    format!("CUSTOMER#{id}")
}
pub const CUSTOMER_SK: &str = "CUSTOMER";

pub fn checkout(id: &str) -> String {
    format!("CHECKOUT#{id}")
}
pub const CHECKOUT_SK: &str = "CHECKOUT";

pub fn invoice(id: &str) -> String {
    format!("INVOICE#{id}")
}
pub const INVOICE_SK: &str = "INVOICE";

pub fn workspace_invoices(workspace_id: &str) -> String {
    format!("WS_INVOICES#{workspace_id}")
}

pub fn payment(payment_intent_id: &str) -> String {
    format!("PAYMENT#{payment_intent_id}")
}
pub const PAYMENT_SK: &str = "PAYMENT";

pub fn charge_refunds(charge_id: &str) -> String {
    format!("CHARGE_REFUNDS#{charge_id}")
}
pub const CHARGE_REFUNDS_SK: &str = "REFUNDS";

pub fn stripe_event(id: &str) -> String {
    format!("STRIPE_EVENT#{id}")
}
pub const STRIPE_EVENT_SK: &str = "STRIPE_EVENT";

pub fn rate_window(workspace_id: &str) -> String {
    format!("RATE#{workspace_id}")
}

pub fn agent_sk(agent_id: &str) -> String {
    format!("AGENT#{agent_id}")
}
/// DynamoDB deletes items whose TTL attribute (epoch seconds) has passed.
pub const TTL_ATTRIBUTE: &str = "expires_at_epoch";

pub fn user(id: &str) -> String {
    format!("USER#{id}")
}
pub const USER_SK: &str = "USER";

pub fn user_external(external_id: &str) -> String {
    format!("USER_EXT#{external_id}")
}
pub const USER_EXT_SK: &str = "USER_EXT";

pub fn account(id: &str) -> String {
    format!("ACCOUNT#{id}")
}
pub const ACCOUNT_SK: &str = "ACCOUNT";

pub fn owner(user_id: &str) -> String {
    format!("OWNER#{user_id}")
}

pub fn transaction_sk(id: &str) -> String {
    format!("TXN#{id}")
}
pub const TRANSACTION_SK_PREFIX: &str = "TXN#";

pub fn workspace_transactions(workspace_id: &str) -> String {
    format!("WS_TXN#{workspace_id}")
}

pub fn workspace(id: &str) -> String {
    format!("WS#{id}")
}
pub const WORKSPACE_SK: &str = "WS";

pub fn link_sk(account_id: &str) -> String {
    format!("LINK#{account_id}")
}
pub const LINK_SK_PREFIX: &str = "LINK#";

pub fn account_links(account_id: &str) -> String {
    format!("ACCOUNT_LINKS#{account_id}")
}

pub fn api_key(id: &str) -> String {
    format!("KEY#{id}")
}
pub const API_KEY_SK: &str = "KEY";

pub fn key_owner(owner_id: &str) -> String {
    format!("KEY_OWNER#{owner_id}")
}

pub fn key_hash(hash: &str) -> String {
    format!("KEY_HASH#{hash}")
}
pub const KEY_HASH_SK: &str = "KEY_HASH";

pub fn idempotency(scope: &str, key: &str) -> String {
    format!("IDEM#{scope}#{key}")
}
pub const IDEMPOTENCY_SK: &str = "IDEM";

pub const BUDGET_SK: &str = "BUDGET";

pub fn usage_event(workspace_id: &str, event_id: &str) -> String {
    format!("USAGE_EVENT#{workspace_id}#{event_id}")
}
pub const USAGE_EVENT_SK: &str = "USAGE_EVENT";

pub fn workspace_usage(workspace_id: &str) -> String {
    format!("WS_USAGE#{workspace_id}")
}

pub fn account_usage(account_id: &str) -> String {
    format!("ACCOUNT_USAGE#{account_id}")
}

/// Stands for "no agent" in counter keys: empty, which no agent id can be (ids are 1–255
/// characters), so usage without an agent never mixes with any agent's.
pub const NO_AGENT: &str = "";

pub fn daily_usage_sk(day: &str, category: &str, agent: &str) -> String {
    format!("D#{day}#{category}#{agent}")
}

pub fn monthly_usage_sk(month: &str, category: &str) -> String {
    format!("M#{month}#{category}")
}

pub fn run(id: &str) -> String {
    format!("RUN#{id}")
}
pub const RUN_SK: &str = "RUN";
pub const RUNS_OPEN: &str = "RUNS_OPEN";

pub fn outbox(id: &str) -> String {
    format!("EVT#{id}")
}
pub const OUTBOX_SK: &str = "EVT";
/// Every outbox item's `pk` starts so: the stream's filter and the local tap match it.
pub const OUTBOX_PK_PREFIX: &str = "EVT#";

pub fn endpoint_sk(id: &str) -> String {
    format!("WHE#{id}")
}
pub const ENDPOINT_SK_PREFIX: &str = "WHE#";
pub const ENDPOINT_COUNT_SK: &str = "WHE_COUNT";

pub fn endpoint(id: &str) -> String {
    format!("WHE#{id}")
}

pub fn delivery_sk(event_id: &str) -> String {
    format!("EVT#{event_id}")
}

pub fn attempt_sk(id: &str) -> String {
    format!("WHD#{id}")
}
pub const ATTEMPT_SK_PREFIX: &str = "WHD#";
/// Deliveries with an attempt due, by due time (on `gsi2`).
pub const WEBHOOK_RETRIES: &str = "WEBHOOK_RETRIES";
pub const CREDIT_CLAIM_SK: &str = "CREDIT";
