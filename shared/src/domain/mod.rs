//! Domain rules: ids, money, accounts, workspaces, keys and the ledger's shapes. Pure: no I/O and
//! no transport types.

pub mod account;
pub mod api_key;
pub mod bounds;
pub mod calendar;
pub mod events;
pub mod ids;
pub mod invoice;
pub mod ledger;
pub mod lifecycle;
pub mod money;
pub mod plan;
pub mod pricing;
pub mod rate_limit;
pub mod run;
pub mod transaction;
pub mod usage;
pub mod user;
pub mod webhooks;
pub mod workspace;
