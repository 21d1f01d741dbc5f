//! The handlers, one module per feature. Each handler takes a [`crate::http::Ctx`] and returns a
//! [`crate::http::Reply`] or an [`crate::http::ApiError`]; the route table points at them.

pub mod access;
pub mod api_keys;
pub mod auto_recharge;
pub mod billing_accounts;
pub mod budget;
pub mod lifecycle;
pub mod mcp;
pub mod meta;
pub mod metering;
pub mod payments;
pub mod rate_limits;
pub mod runs;
pub mod stripe_webhook;
pub mod usage_counters;
pub mod users;
pub mod views;
pub mod webhook_endpoints;
pub mod workspace_billing;
pub mod workspaces;
pub mod x402_checkout;
