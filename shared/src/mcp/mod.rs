//! The Model Context Protocol as `POST /v1/mcp` speaks it: Streamable HTTP with JSON answers
//! only, stateless. [`protocol`] reads one JSON-RPC message and writes answers, [`version`]
//! holds the revision rules (the handshake revisions and the stateless `2026-07-28` one), and
//! [`tools`] the three billing tools' schemas and typed arguments. The handler that joins them
//! to the billing views is `api::mcp`.

pub mod protocol;
pub mod tools;
pub mod version;

/// `serverInfo`'s name.
pub const SERVER_NAME: &str = "billing";
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const INSTRUCTIONS: &str = "Billing tools for this workspace: read the billing status and usage, and check whether a budget (in US cents) can be spent on an agent run before starting it.";
/// How long a client may cache `server/discover` and `tools/list` (they are the same for all).
pub const TTL_MS: u64 = 300_000;
