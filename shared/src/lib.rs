//! The billing backend's core crate, used by every Lambda and by the dev server.
//!
//! - [`domain`]: ids, money, accounts, workspaces, keys and ledger shapes. Pure rules, no I/O.
//! - [`store`]: the DynamoDB single table, its keys, conditional writes and transactions.
//! - [`http`]: request parsing, authentication, errors → responses, cursors, idempotency.
//! - [`api`]: one module per feature, holding the handlers the routes point at.
//! - [`routes`]: the route table, the single source for Lambdas, the dev server, `template.yaml`
//!   checks and the OpenAPI document ([`openapi`]).
//! - [`mcp`] and [`x402`]: the protocols agents use to read their budget and to pay: MCP's
//!   JSON-RPC messages, versions and tools; x402's requirements, payments and facilitators.
//! - [`events`]: billing events out: EventBridge publishing and signed webhook delivery.
//! - [`aws`]: the AWS SDK configuration every client shares.
//! - [`lambda`] and [`dev_server`]: the two ways the same handlers are served.

// async-stripe's object types nest deeply; proving a handler's future `Send` walks them all.
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod aws;
pub mod billing;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod dev_server;
pub mod domain;
pub mod events;
pub mod http;
pub mod lambda;
pub mod mcp;
pub mod openapi;
pub mod payments;
pub mod routes;
pub mod scheduler;
pub mod store;
pub mod x402;
