//! How items are keyed in the single table. Every key format lives here, so the access patterns
//! can be read in one place:
//!
//! | item | pk | sk | gsi1pk / gsi1sk |
//! |---|---|---|---|
//! | user | `USER#usr` | `USER` | |
//! | external-id claim | `USER_EXT#<external id>` | `USER_EXT` | |
//! | billing account | `ACCOUNT#ba` | `ACCOUNT` | `OWNER#usr` / `ACCOUNT#ba` |
//! | ledger transaction | `ACCOUNT#ba` | `TXN#txn` | `WS_TXN#ws` / `TXN#txn` (when it has a workspace) |
//! | workspace | `WS#ws` | `WS` | `OWNER#usr` / `WS#ws` |
//! | workspace ↔ account link | `WS#ws` | `LINK#ba` | `ACCOUNT_LINKS#ba` / `WS#ws` |
//! | API key | `KEY#key` | `KEY` | `KEY_OWNER#usr\|ws` / `KEY#key` |
//! | API key by hash (auth) | `KEY_HASH#<sha256>` | `KEY_HASH` | |
//! | idempotency record | `IDEM#<scope>#<key>` | `IDEM` | |
//!
//! Ids are time-ordered, so sorting by a key that ends in an id sorts by creation time.

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
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
