//! End-to-end tests through HTTP against DynamoDB Local: each test spawns the API on its own
//! port with its own table, so they run in parallel.

mod accounts;
mod consistency;
mod events;
mod faults;
mod history;
mod idempotency;
mod lambda_boot;
mod ledger;
mod ledger_model;
mod lifecycle;
mod mcp;
mod payments;
mod rate_limits;
mod refunds_and_recharges;
mod scheduler;
mod schema_conformance;
mod security;
mod stripe_gateway;
mod stripe_routes;
mod subscriptions;
mod usage_counters;
mod users_and_keys;
mod views;
mod webhook_endpoints;
mod workspaces;
mod x402;
