//! The route table: every endpoint's method, path, function name, access, schemas and handler.
//! It is the single source for the Lambda binaries (`functions/<name>`), the dev server, the
//! OpenAPI document and the test that checks `template.yaml`.

use crate::api::{
    api_keys, auto_recharge, billing_accounts, lifecycle, mcp, meta, metering, payments,
    rate_limits, runs, stripe_webhook, usage_counters, users, views, webhook_endpoints,
    workspace_billing, workspaces, x402_checkout,
};
use crate::domain::account::BillingAccount;
use crate::domain::api_key::ApiKey;
use crate::domain::transaction::Transaction;
use crate::domain::webhooks::{DeliveryAttempt, WebhookEndpoint};
use crate::domain::workspace::Workspace;
use crate::events;
use crate::http::pagination::List;
use crate::http::request::percent_decode;
use crate::http::{ApiError, Ctx, Reply};
use futures::future::BoxFuture;
use http::Method;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use std::collections::HashMap;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No key: health, the OpenAPI document, webhooks that carry their own signature.
    Public,
    /// Any valid key; read keys only for GET.
    Key,
    /// Any valid key, read keys included, whatever the method (the MCP tool).
    KeyReadOnlyAllowed,
}

pub type Handler = for<'a> fn(Ctx<'a>) -> BoxFuture<'a, Result<Reply, ApiError>>;
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// What the API says of a route: everything but its code. The OpenAPI document and the
/// template check read these, so building them links no handler.
pub struct RouteSpec {
    /// The function's one name: binary, directory, `template.yaml` and cargo-lambda output.
    pub name: &'static str,
    /// The `static` that serves it (`health` → `HEALTH`): what `functions/<name>/main.rs` names.
    pub ident: &'static str,
    pub method: Method,
    /// The path template, with `{param}` segments as API Gateway writes them.
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    /// Query parameters: name and description.
    pub query: &'static [(&'static str, &'static str)],
    pub request: Option<SchemaFn>,
    /// The success status and body.
    pub status: u16,
    pub response: SchemaFn,
    /// What the route does differently from a plain JSON route (most have the defaults).
    pub options: RouteOptions,
}

/// A route's departures from the plain JSON route: the protocol endpoints (MCP, x402) need them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteOptions {
    /// The function takes every method (`ANY` in `template.yaml`, so API Gateway does not
    /// answer 404 first); any but `method` answers 405 with `Allow: <method>`.
    pub answers_every_method: bool,
    /// `Origin` is checked before the key (a browser may reach it: MCP's DNS-rebinding rule).
    pub checks_origin: bool,
    pub idempotency: Idempotency,
}

impl RouteOptions {
    pub const PLAIN: RouteOptions = RouteOptions {
        answers_every_method: false,
        checks_origin: false,
        idempotency: Idempotency::Body,
    };
}

/// What an `Idempotency-Key` does on a POST route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// The same key and body replay the first final answer.
    Body,
    /// The key is ignored (MCP: every tool only reads, JSON-RPC ids pair answers).
    Ignored,
    /// Only a request carrying one of `headers` is kept, and "the same request" is the body plus
    /// that header (x402: the unpaid 402 must never be replayed to the paid retry).
    BodyAndHeader { headers: &'static [&'static str] },
}

impl RouteSpec {
    /// The method API Gateway routes to the function (`ANY` for a route that answers every one).
    pub fn gateway_method(&self) -> &'static str {
        if self.options.answers_every_method {
            "ANY"
        } else {
            self.method_name()
        }
    }

    /// `method` as a name that outlives the spec (for `Allow`).
    pub fn method_name(&self) -> &'static str {
        match self.method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            _ => "POST",
        }
    }
}

/// A route with its code: one `static` per route, so a function binary that names its own
/// links only that handler (and Stripe only where the route may call it).
pub struct Route {
    pub spec: &'static RouteSpec,
    pub handler: Handler,
    /// Work after the response is ready, while the function still runs: charging the
    /// auto-recharges that the request's movements started. Only routes that move money have it.
    pub after: Option<AfterHook>,
}

impl std::ops::Deref for Route {
    type Target = RouteSpec;
    fn deref(&self) -> &RouteSpec {
        self.spec
    }
}

/// Work a route or job does after its own: see [`Route::after`].
pub type AfterHook = for<'a> fn(&'a crate::app::App) -> BoxFuture<'a, ()>;

/// Payment work a function left half done: uncharged auto-recharges, x402 claims pending too long.
async fn repair_payments(app: &crate::app::App) -> Result<usize, ApiError> {
    Ok(auto_recharge::retry_stale(app).await? + x402_checkout::log_stale_claims(app).await?)
}

/// Charges the auto-recharges this process's movements started.
fn charge_started_recharges(app: &crate::app::App) -> BoxFuture<'_, ()> {
    Box::pin(auto_recharge::charge_started(app))
}

/// MCP's body: a JSON-RPC message (the OpenAPI document defines it).
fn json_rpc_request(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({"$ref": "#/components/schemas/JsonRpcRequest"})
}

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

macro_rules! handler {
    ($f:path) => {{
        fn boxed(cx: Ctx<'_>) -> BoxFuture<'_, Result<Reply, ApiError>> {
            Box::pin($f(cx))
        }
        boxed as Handler
    }};
}

/// The route table: `IDENT { spec fields } [with options] serves handler[, then hook];` for
/// each route (`options` default to [`RouteOptions::PLAIN`]). It emits `routes::spec::IDENT` (the spec), `routes::IDENT` (the route), and [`SPECS`] and
/// [`ROUTES`] over all of them, in this order.
macro_rules! route_table {
    ($($ident:ident { $($field:ident: $value:expr),* $(,)? } $(with RouteOptions { $($option:tt)* })? serves $handler:path $(, then $after:path)?;)*) => {
        /// Each route's [`RouteSpec`], by the same name as its [`Route`].
        pub mod spec {
            use super::*;
            $(pub static $ident: RouteSpec = RouteSpec {
                ident: stringify!($ident),
                $($field: $value,)*
                options: route_table!(@options $($($option)*)?),
            };)*
        }
        $(pub static $ident: Route = Route {
            spec: &spec::$ident,
            handler: handler!($handler),
            after: route_table!(@after $($after)?),
        };)*
        /// Every route's spec, with no handler: for the OpenAPI document and the template check.
        pub static SPECS: &[&RouteSpec] = &[$(&spec::$ident),*];
        /// Every route: for the dev server, which serves them all.
        pub static ROUTES: &[&Route] = &[$(&$ident),*];
    };
    (@options) => { RouteOptions::PLAIN };
    (@options $($option:tt)+) => { RouteOptions { $($option)+ } };
    (@after) => { None };
    (@after $after:path) => { Some($after as AfterHook) };
}

const PAGE: [(&str, &str); 2] = [
    ("limit", "Page size, 1–100 (default 20)."),
    ("cursor", "The `next_cursor` of the previous page."),
];

route_table! {
    HEALTH {
        name: "health",
        method: Method::GET,
        path: "/v1/health",
        access: Access::Public,
        summary: "`{\"status\": \"ok\"}` once the store answers (503 `unavailable` until then).",
        query: &[],
        request: None,
        status: 200,
        response: schema::<meta::Health>,
    } serves meta::health;
    OPENAPI {
        name: "openapi",
        method: Method::GET,
        path: "/v1/openapi.json",
        access: Access::Public,
        summary: "This OpenAPI 3.1 document.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<serde_json::Value>,
    } serves meta::openapi;
    USERS_CREATE {
        name: "users-create",
        method: Method::POST,
        path: "/v1/users",
        access: Access::Key,
        summary: "Create a user with a default billing account and its introductory grant (service only). The same `external_id` again answers 200 with the existing user and grants nothing.",
        query: &[],
        request: Some(schema::<users::CreateUser>),
        status: 201,
        response: schema::<users::UserCreated>,
    } serves users::create;
    API_KEYS_CREATE {
        name: "api-keys-create",
        method: Method::POST,
        path: "/v1/api-keys",
        access: Access::Key,
        summary: "Create an API key; the plaintext `key` is in this response only.",
        query: &[],
        request: Some(schema::<api_keys::CreateApiKey>),
        status: 201,
        response: schema::<api_keys::ApiKeyCreated>,
    } serves api_keys::create;
    API_KEYS_LIST {
        name: "api-keys-list",
        method: Method::GET,
        path: "/v1/api-keys",
        access: Access::Key,
        summary: "List keys, without plaintext: the caller's own, or a user's / workspace's the caller manages. The service must give `user_id` or `workspace_id`.",
        query: &[
            PAGE[0],
            PAGE[1],
            ("user_id", "List this user's keys."),
            ("workspace_id", "List this workspace's keys."),
        ],
        request: None,
        status: 200,
        response: schema::<List<ApiKey>>,
    } serves api_keys::list;
    API_KEYS_REVOKE {
        name: "api-keys-revoke",
        method: Method::DELETE,
        path: "/v1/api-keys/{keyId}",
        access: Access::Key,
        summary: "Revoke a key; it answers 401 from then on. Revoking again returns the key unchanged.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<ApiKey>,
    } serves api_keys::revoke;
    BILLING_ACCOUNTS_LIST {
        name: "billing-accounts-list",
        method: Method::GET,
        path: "/v1/billing-accounts",
        access: Access::Key,
        summary: "The caller's billing accounts (a workspace key: the accounts linked to it). The service must give `owner_user_id`.",
        query: &[PAGE[0], PAGE[1], ("owner_user_id", "Service only: whose accounts.")],
        request: None,
        status: 200,
        response: schema::<List<BillingAccount>>,
    } serves billing_accounts::list;
    BILLING_ACCOUNTS_GET {
        name: "billing-accounts-get",
        method: Method::GET,
        path: "/v1/billing-accounts/{billingAccountId}",
        access: Access::Key,
        summary: "One billing account.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<BillingAccount>,
    } serves billing_accounts::get;
    BILLING_ACCOUNTS_UPDATE {
        name: "billing-accounts-update",
        method: Method::PATCH,
        path: "/v1/billing-accounts/{billingAccountId}",
        access: Access::Key,
        summary: "Change the name, billing e-mail, monthly caps or auto-recharge (soft ≤ hard, amounts > 0, threshold ≥ 0). `null` clears a cap.",
        query: &[],
        request: Some(schema::<billing_accounts::UpdateAccount>),
        status: 200,
        response: schema::<BillingAccount>,
    } serves billing_accounts::update;
    BILLING_ACCOUNTS_BALANCE {
        name: "billing-accounts-balance",
        method: Method::GET,
        path: "/v1/billing-accounts/{billingAccountId}/balance",
        access: Access::Key,
        summary: "Balance, holds and what is available.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<billing_accounts::Balance>,
    } serves billing_accounts::balance;
    BILLING_ACCOUNTS_SUMMARY {
        name: "billing-accounts-summary",
        method: Method::GET,
        path: "/v1/billing-accounts/{billingAccountId}/summary",
        access: Access::Key,
        summary: "The account's calendar month (UTC; `period_start`/`period_end` are dates, both included): balance, the month's spend and credit across its workspaces (the ledger's, as the caps count them), usage per category from the monthly counters (every category, 0 when unused; usage counts in the month it occurred), the linked workspaces (newest first; read from an index, so a link made a moment ago may be missing) and whether the account's caps are reached.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<views::Summary>,
    } serves views::account_summary;
    BILLING_ACCOUNTS_TRANSACTIONS {
        name: "billing-accounts-transactions",
        method: Method::GET,
        path: "/v1/billing-accounts/{billingAccountId}/transactions",
        access: Access::Key,
        summary: "The account's ledger, newest first. Entries are listed from an index spread over \
                  16 partitions per account (so one busy account's history is no hot partition): \
                  deployed, an entry is listed within moments of its commit; the sum of every \
                  entry is the balance once listed.",
        query: &[
            PAGE[0],
            PAGE[1],
            ("type", "Only transactions of this type."),
            ("workspace_id", "Only transactions of this workspace."),
        ],
        request: None,
        status: 200,
        response: schema::<List<Transaction>>,
    } serves billing_accounts::transactions;
    WORKSPACES_CREATE {
        name: "workspaces-create",
        method: Method::POST,
        path: "/v1/workspaces",
        access: Access::Key,
        summary: "Create a workspace on trial, bound to the owner's default account or to a given account the owner owns.",
        query: &[],
        request: Some(schema::<workspaces::CreateWorkspace>),
        status: 201,
        response: schema::<Workspace>,
    } serves workspaces::create;
    WORKSPACES_GET {
        name: "workspaces-get",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}",
        access: Access::Key,
        summary: "One workspace.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<Workspace>,
    } serves workspaces::get;
    WORKSPACE_ACCOUNTS_LIST {
        name: "workspace-accounts-list",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/accounts",
        access: Access::Key,
        summary: "The billing accounts linked to the workspace, each with `is_default`.",
        query: &PAGE,
        request: None,
        status: 200,
        response: schema::<List<workspaces::LinkedAccount>>,
    } serves workspaces::list_accounts;
    WORKSPACE_ACCOUNTS_CREATE {
        name: "workspace-accounts-create",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/accounts",
        access: Access::Key,
        summary: "Create an account for the workspace's owner and link it (not as the default).",
        query: &[],
        request: Some(schema::<workspaces::CreateLinkedAccount>),
        status: 201,
        response: schema::<workspaces::LinkedAccount>,
    } serves workspaces::create_account;
    WORKSPACE_ACCOUNTS_LINK {
        name: "workspace-accounts-link",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/accounts/link",
        access: Access::Key,
        summary: "Link an existing account of the workspace's owner; linking twice is a no-op 200.",
        query: &[],
        request: Some(schema::<workspaces::LinkAccount>),
        status: 200,
        response: schema::<workspaces::LinkedAccount>,
    } serves workspaces::link_account;
    WORKSPACE_ACCOUNTS_SET_DEFAULT {
        name: "workspace-accounts-set-default",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/accounts/{billingAccountId}/default",
        access: Access::Key,
        summary: "Make a linked account the workspace's default; returns the workspace.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<Workspace>,
    } serves workspaces::set_default_account;
    WORKSPACE_ACCOUNTS_UNLINK {
        name: "workspace-accounts-unlink",
        method: Method::DELETE,
        path: "/v1/workspaces/{workspaceId}/billing/accounts/{billingAccountId}",
        access: Access::Key,
        summary: "Unlink a non-default account; the default answers 409 `default_account_unlink`.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<workspaces::Unlinked>,
    } serves workspaces::unlink_account;
    MCP {
        name: "mcp",
        method: Method::POST,
        path: "/v1/mcp",
        access: Access::KeyReadOnlyAllowed,
        summary: "The Model Context Protocol (Streamable HTTP, JSON answers only, stateless): one JSON-RPC 2.0 message per POST, answered outside the error envelope. Speaks the handshake revisions 2025-03-26, 2025-06-18 and 2025-11-25 (`initialize`, `ping`) and the stateless 2026-07-28 (`server/discover`; `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` must match the body). Tools: `get_billing_status`, `get_usage`, `check_budget`, answered by the same code as the billing views and the run authorization. A notification or a client response answers 202 with no body. JSON-RPC errors travel with 200, except -32700 / -32600 / -32022 / -32020 (400) and -32601 under 2026-07-28 (404). An `Origin` outside `MCP_ALLOWED_ORIGINS` (locally also loopback) answers 403 before the key is read; read keys may call it; `Idempotency-Key` is ignored; other methods answer 405 with `Allow: POST`.",
        query: &[],
        request: Some(json_rpc_request),
        status: 200,
        response: schema::<serde_json::Value>,
    } with RouteOptions {
        answers_every_method: true,
        checks_origin: true,
        idempotency: Idempotency::Ignored,
    } serves mcp::handle;
    PRICING {
        name: "pricing",
        method: Method::GET,
        path: "/v1/pricing",
        access: Access::Key,
        summary: "The agent tiers and their price per unit of each usage category, in micro-cents (10⁻⁶ cent).",
        query: &[],
        request: None,
        status: 200,
        response: schema::<metering::PricingView>,
    } serves metering::pricing;
    PLANS_LIST {
        name: "plans-list",
        method: Method::GET,
        path: "/v1/plans",
        access: Access::Key,
        summary: "The catalog's plans (Free, Pro, Team, Enterprise), as a plain array. Prices are per `interval` (per seat when `per_seat`); `null` price, limit or SLA: custom or unlimited. Included credits per period: Free 0, Pro 500, Team 2000, Enterprise 0 (agreed per contract). Rate-limit tiers are named after the plans.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<Vec<crate::domain::plan::Plan>>,
    } serves views::plans;
    USAGE_EVENTS_CREATE {
        name: "usage-events-create",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/usage-events",
        access: Access::Key,
        summary: "Record usage and debit its cost (ceil(quantity × price / 10⁶) cents) from the workspace's default account, atomically. The same `event_id` again answers 200 with the first result; with different content, 400 `idempotency_key_reused`. 402 `insufficient_credits` / `hard_cap_reached` debit nothing.",
        query: &[],
        request: Some(schema::<metering::UsageEvent>),
        status: 201,
        response: schema::<crate::store::usage::UsageResult>,
    } serves metering::record_usage, then charge_started_recharges;
    RUNS_CREATE {
        name: "runs-create",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/runs",
        access: Access::Key,
        summary: "Authorize an agent run: hold `max_cost_cents` (counted against credit and the hard caps) until it completes or expires (1 h).",
        query: &[],
        request: Some(schema::<runs::AuthorizeRun>),
        status: 201,
        response: schema::<runs::Authorized>,
    } serves runs::authorize, then charge_started_recharges;
    RUNS_USAGE {
        name: "runs-usage",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/runs/{runId}/usage",
        access: Access::Key,
        summary: "Capture incremental usage against the hold. A `sequence` already applied changes nothing; usage beyond the hold extends it if credit allows, else 402 `insufficient_credits`: nothing of that report is captured, the run should stop and report its final usage to `complete`, which debits at most the hold plus what the account can still afford. 409 once the run is settled.",
        query: &[],
        request: Some(schema::<runs::ReportUsage>),
        status: 200,
        response: schema::<crate::domain::run::Run>,
    } serves runs::report_usage, then charge_started_recharges;
    RUNS_COMPLETE {
        name: "runs-complete",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/runs/{runId}/complete",
        access: Access::Key,
        summary: "Settle the run: debit its captured cost (with the final usage given here), release the rest of the hold. Completing again returns the first result.",
        query: &[],
        request: Some(schema::<runs::CompleteRun>),
        status: 200,
        response: schema::<runs::Completed>,
    } serves runs::complete, then charge_started_recharges;
    RUNS_GET {
        name: "runs-get",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/runs/{runId}",
        access: Access::Key,
        summary: "A run: status, hold, captured usage and cost, settlement.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<crate::domain::run::Run>,
    } serves runs::get;
    WORKSPACE_BILLING_UPDATE {
        name: "workspace-billing-update",
        method: Method::PATCH,
        path: "/v1/workspaces/{workspaceId}/billing",
        access: Access::Key,
        summary: "Set the workspace's own monthly soft and hard caps inside its account (soft ≤ hard, ≥ 0; `null` removes one). Spend and holds of the workspace count against them.",
        query: &[],
        request: Some(schema::<workspace_billing::UpdateBudget>),
        status: 200,
        response: schema::<workspace_billing::Budget>,
    } serves workspace_billing::update_budget;
    WORKSPACE_BILLING_BALANCE {
        name: "workspace-billing-balance",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/balance",
        access: Access::Key,
        summary: "The balance of the workspace's default billing account.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<billing_accounts::Balance>,
    } serves workspace_billing::balance;
    WORKSPACE_BILLING_STATUS {
        name: "workspace-billing-status",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing",
        access: Access::Key,
        summary: "The workspace's billing status. The period is the calendar month (UTC; dates, both included; `days_remaining` counts today). No subscription exists yet: `subscription_status` is `trialing` during the trial, else `null`. On trial, `actions_used` counts every action since the trial began against `actions_limit` (the trial's allowance); otherwise it is this month's and the limit `null`. Money is the default account's; caps are the workspace's own; `*_cap_reached` if the workspace's or the account's cap is reached. `can_run_agents`/`can_deploy` follow the plan status only: trial, promo, active both; readonly runs existing agents but deploys nothing; suspended, deleted neither.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<views::BillingStatus>,
    } serves views::status;
    WORKSPACE_BILLING_CREDITS {
        name: "workspace-billing-credits",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/credits",
        access: Access::Key,
        summary: "The workspace's credit: its default account's balance, availability and holds, the plan's included credits, what the workspace spent this calendar month (`period_usage_cents`, as the caps count it), its own caps, and whether its or its account's caps are reached.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<views::Credits>,
    } serves views::credits;
    WORKSPACE_BILLING_SUMMARY {
        name: "workspace-billing-summary",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/summary",
        access: Access::Key,
        summary: "As the account summary, for this workspace: its default account's balance, the workspace's own spend and credit this calendar month, its usage per category, `linked_workspace_ids` = itself, and whether its or its account's caps are reached.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<views::Summary>,
    } serves views::workspace_summary;
    WORKSPACE_BILLING_USAGE {
        name: "workspace-billing-usage",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/usage",
        access: Access::Key,
        summary: "Usage of one category over a period of UTC days (both included, at most 366), by the day it occurred. `period_start` and `period_end` each default to this month's first and last day. `groups` is empty without `group_by`; by day it lists days with usage, newest first; by agent, most expensive first, `key: null` for usage that named no agent. The usage counters are applied after each debit, not in it (so a debit writes 3 items, not 6): deployed, from the table's stream, within 2 seconds of the debit; on the local stage, in-process before the debit answers.",
        query: &[
            ("category", "Required: input_tokens, output_tokens, actions, api_calls or agent_invocations."),
            ("period_start", "First day, YYYY-MM-DD (default: the 1st of this month)."),
            ("period_end", "Last day, included, YYYY-MM-DD (default: the last day of this month)."),
            ("group_by", "`day` or `agent`."),
        ],
        request: None,
        status: 200,
        response: schema::<views::UsageReport>,
    } serves views::usage;
    WORKSPACE_BILLING_USAGE_DAILY {
        name: "workspace-billing-usage-daily",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/usage/daily",
        access: Access::Key,
        summary: "One category's usage per UTC day over the last `days` days, today first, days without usage as 0. A plain array.",
        query: &[
            ("days", "1–90 (default 30), today included."),
            ("category", "Default `actions`."),
        ],
        request: None,
        status: 200,
        response: schema::<Vec<views::DailyUsage>>,
    } serves views::usage_daily;
    WORKSPACE_BILLING_USAGE_OVERVIEW {
        name: "workspace-billing-usage-overview",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/usage-overview",
        access: Access::Key,
        summary: "This calendar month: usage per category, up to 5 agents by cost, what usage cost so far (`spent_cents`) and the projected month-end spend: `spent_cents × days in the month ÷ days elapsed` (today counts as elapsed), rounded up to a cent.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<views::UsageOverview>,
    } serves views::usage_overview;
    WORKSPACE_BILLING_LIMITS {
        name: "workspace-billing-limits",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/limits",
        access: Access::Key,
        summary: "The plan's metered limits against use: `api_calls` and `agent_invocations` this calendar month, and during a trial `actions` since the trial began against the trial's allowance. `limit` and `remaining` are `null` when unlimited; `remaining` never goes below 0.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<views::Limits>,
    } serves views::limits;
    WORKSPACE_BILLING_TRANSACTIONS {
        name: "workspace-billing-transactions",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/transactions",
        access: Access::Key,
        summary: "The workspace's credit history (its transactions on any account), newest first.",
        query: &[PAGE[0], PAGE[1], ("type", "Only transactions of this type.")],
        request: None,
        status: 200,
        response: schema::<List<Transaction>>,
    } serves workspace_billing::transactions;
    WORKSPACE_BILLING_CREDITS_CREATE {
        name: "workspace-billing-credits-create",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/credits",
        access: Access::Key,
        summary: "Service only: a `grant`, `refund` (amount > 0) or `adjustment` (may be negative, never below 0 available: 402 `insufficient_credits`) on the workspace's default account. Under an Idempotency-Key it applies once.",
        query: &[],
        request: Some(schema::<workspace_billing::ServiceCredit>),
        status: 201,
        response: schema::<Transaction>,
    } serves workspace_billing::create_credit, then charge_started_recharges;
    WORKSPACE_BILLING_SUBSCRIPTION {
        name: "workspace-billing-subscription",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/subscription",
        access: Access::Key,
        summary: "The workspace's plan, plan status and lifecycle dates. `status` uses Stripe's vocabulary, derived from the plan status: trial and promo `trialing` (no charge yet), active `active`, suspended `past_due`, deleted `canceled`, readonly `null` (no subscription). The period is the plan period: during the promo (the subscription's free period, started by the first payment method) it runs to the promo's end; after that, each period is the one its paid invoice billed, renewed when the next invoice is paid (Stripe's, or offline the lifecycle job's at the period's end). `renews_at` is its end unless the subscription is canceled. A suspended workspace whose subscription Stripe ends (retries given up) is deleted; offline, one whose grace passes unpaid.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<lifecycle::SubscriptionView>,
    } serves lifecycle::subscription;
    WORKSPACE_BILLING_CANCELLATION {
        name: "workspace-billing-cancellation",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/subscription/cancellation",
        access: Access::Key,
        summary: "Whether the subscription ends at the current period's end, and when.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<lifecycle::CancellationView>,
    } serves lifecycle::cancellation;
    RATE_LIMITS_GET {
        name: "rate-limits-get",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/rate-limits",
        access: Access::Key,
        summary: "The workspace's rate-limit tier, its limits and current use. The tier is the higher of the plan's and the one the default account's lifetime paid earns (purchases, top-ups, auto-recharges: $50 pro, $500 team), and the lowest (`free`) while the plan status is readonly, suspended or deleted. `requests_per_minute` counts usage events per UTC minute (over it: 429 `rate_limited` with `Retry-After`); `concurrent_runs` counts authorized, unsettled runs (over it, run authorization answers 429). The tier shown is the one last computed (at each plan status change or refresh).",
        query: &[],
        request: None,
        status: 200,
        response: schema::<rate_limits::RateLimitStatus>,
    } serves rate_limits::get;
    RATE_LIMITS_REFRESH {
        name: "rate-limits-refresh",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/rate-limits/refresh",
        access: Access::Key,
        summary: "Recomputes the tier from the plan, plan status and the default account's lifetime paid, records it, and answers the new status.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<rate_limits::RateLimitStatus>,
    } serves rate_limits::refresh;
    BILLING_PUBLISHABLE_KEY {
        name: "billing-publishable-key",
        method: Method::GET,
        path: "/v1/billing/publishable-key",
        access: Access::Key,
        summary: "Stripe's publishable key, for the client-side card form (the offline gateway's placeholder locally).",
        query: &[],
        request: None,
        status: 200,
        response: schema::<payments::PublishableKey>,
    } serves payments::publishable_key;
    WORKSPACE_BILLING_CHECKOUT {
        name: "workspace-billing-checkout",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/checkout",
        access: Access::Key,
        summary: "Buy credits through Stripe Checkout: a session for `amount_cents` (within the configured purchase limits, default 500 to 1,000,000). The workspace's default account is credited (`purchase`) once, when Stripe reports the session paid (`checkout.session.completed`); locally, `dev/complete-local` completes it through the same code path. Answers 200 like Stripe's create.",
        query: &[],
        request: Some(schema::<payments::BuyCredits>),
        status: 200,
        response: schema::<payments::CheckoutCreated>,
    } serves payments::checkout;
    WORKSPACE_BILLING_CHECKOUT_X402 {
        name: "workspace-billing-checkout-x402",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/checkout/x402",
        access: Access::Key,
        summary: "Buy credits with an x402 `exact` payment in USDC (EIP-3009). Without `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1): 402 with the requirement, base64 JSON in the `PAYMENT-REQUIRED` header (v2) and the v1 form as the body (outside the error envelope). With a payment: checked in order (requirement, recipient, exact value, validity window, signature, authorization unused), then settled; a refusal is the same 402 with the reason as `error`. Paid: 200 with the `purchase` transaction and `PAYMENT-RESPONSE` (v2) or `X-PAYMENT-RESPONSE` (v1), base64 JSON `{success, transaction, network, payer, amount}`. One authorization credits once, however often or concurrently it is presented. A 402 is never kept under an `Idempotency-Key`; with a payment header the key's request is the body plus that header. 502 `payment_provider_error` when the facilitator is unreachable, slow (10 s) or failing: nothing credited.",
        query: &[],
        request: Some(schema::<payments::BuyX402>),
        status: 200,
        response: schema::<Transaction>,
    } with RouteOptions {
        idempotency: Idempotency::BodyAndHeader { headers: crate::x402::PAYMENT_HEADERS },
        ..RouteOptions::PLAIN
    } serves x402_checkout::checkout;
    WORKSPACE_BILLING_SUBSCRIBE {
        name: "workspace-billing-subscribe",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/subscribe",
        access: Access::Key,
        summary: "Subscribe to a plan through Stripe Checkout (the plan's Stripe price, quantity 1). From a trial the subscription's free period is the promo (no charge until it ends, as when a first card is attached); otherwise Stripe charges the first period at once and its paid invoice makes the workspace active. A late or second completion never replaces the subscription nor moves the plan by itself. A workspace that already has a subscription answers 409 `conflict` (plan changes go through the portal). Free and Enterprise are not sold through checkout (400).",
        query: &[],
        request: Some(schema::<payments::Subscribe>),
        status: 200,
        response: schema::<payments::CheckoutCreated>,
    } serves payments::subscribe, then charge_started_recharges;
    WORKSPACE_BILLING_PORTAL {
        name: "workspace-billing-portal",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/portal",
        access: Access::Key,
        summary: "A Stripe billing portal session for the workspace's customer; 502 `portal_error` when Stripe fails.",
        query: &[],
        request: Some(schema::<payments::OpenPortal>),
        status: 200,
        response: schema::<payments::PortalSession>,
    } serves payments::portal;
    WORKSPACE_BILLING_SETUP_INTENT {
        name: "workspace-billing-setup-intent",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/setup-intent",
        access: Access::Key,
        summary: "A SetupIntent (off-session usage) to save a card; its `setup_intent.succeeded` webhook saves the method like `payment-method` does.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<payments::SetupIntentCreated>,
    } serves payments::setup_intent;
    WORKSPACE_BILLING_PAYMENT_METHOD {
        name: "workspace-billing-payment-method",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/payment-method",
        access: Access::Key,
        summary: "Attach a payment method (`pm_...`) to the workspace's customer as its default; a trial moves to promo and the workspace's subscription starts (the plan's price, quantity 1, free until the promo's end, this method as its default; concurrent first attaches make one); on a suspended workspace the open invoice is paid again with it. Otherwise only the method changes. No included credit comes with a method: it comes with each paid invoice. Answers the plan status after. A card the bank declines when attached answers 400 `invalid_request` and changes nothing. A deleted workspace answers 409 `subscription_canceled`.",
        query: &[],
        request: Some(schema::<payments::AttachPaymentMethod>),
        status: 200,
        response: schema::<payments::PaymentMethodSaved>,
    } serves payments::payment_method, then charge_started_recharges;
    WORKSPACE_BILLING_INVOICES {
        name: "workspace-billing-invoices",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/invoices",
        access: Access::Key,
        summary: "The workspace's invoices, newest first: mirrored from Stripe's `invoice.*` webhooks (out-of-order deliveries never move a mirror back), or, offline, the invoices the lifecycle job makes at each promo and period end. Each paid invoice of a period grants that period's included credit once.",
        query: &[PAGE[0], PAGE[1], ("status", "Only invoices in this status: paid, open, void or uncollectible.")],
        request: None,
        status: 200,
        response: schema::<List<crate::domain::invoice::Invoice>>,
    } serves payments::invoices;
    WORKSPACE_BILLING_TOP_UP {
        name: "workspace-billing-top-up",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/top-up",
        access: Access::Key,
        summary: "Charge the saved payment method off-session for `amount_cents` and credit it (`top_up`) at once: 200 with the transaction. 402 `payment_required` without a saved method (or when it is declined), 402 `requires_action` with `payment_intent_id` and `client_secret` in the error when the bank asks for 3-D Secure; 202 `{status: processing}` when the payment is not final yet (the webhook credits it). Credited once per PaymentIntent, whichever of the answer and the webhook comes first.",
        query: &[],
        request: Some(schema::<payments::TopUp>),
        status: 200,
        response: schema::<Transaction>,
    } serves payments::top_up, then charge_started_recharges;
    WORKSPACE_BILLING_RECHARGE_ACTION {
        name: "workspace-billing-recharge-action",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/auto-recharge/requires-action",
        access: Access::Key,
        summary: "An auto-recharge waiting for the customer (3-D Secure), from `payment_intent.requires_action`; cleared when it succeeds.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<payments::RequiresActionView>,
    } serves payments::recharge_requires_action;
    WORKSPACE_BILLING_NO_CAP_REMINDER {
        name: "workspace-billing-no-cap-reminder",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/billing/no-cap-reminder",
        access: Access::Key,
        summary: "Shown while spend is unbounded (auto-recharge on, and neither the account nor the workspace has a hard cap) and not dismissed.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<payments::NoCapReminder>,
    } serves payments::no_cap_reminder;
    WORKSPACE_BILLING_NO_CAP_REMINDER_DISMISS {
        name: "workspace-billing-no-cap-reminder-dismiss",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/no-cap-reminder/dismiss",
        access: Access::Key,
        summary: "Dismiss the no-cap reminder for good (a second dismissal keeps the first time).",
        query: &[],
        request: None,
        status: 200,
        response: schema::<payments::ReminderDismissed>,
    } serves payments::dismiss_no_cap_reminder;
    WORKSPACE_BILLING_COMPLETE_LOCAL {
        name: "workspace-billing-complete-local",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/billing/dev/complete-local",
        access: Access::Key,
        summary: "Local stage with the offline gateway only (404 elsewhere): complete an offline checkout through the code path of Stripe's `checkout.session.completed`.",
        query: &[],
        request: Some(schema::<payments::CompleteLocal>),
        status: 200,
        response: schema::<payments::CompletedLocally>,
    } serves payments::complete_local, then charge_started_recharges;
    STRIPE_WEBHOOK {
        name: "stripe-webhook",
        method: Method::POST,
        path: "/v1/webhooks/stripe",
        access: Access::Public,
        summary: "Stripe's event deliveries, authenticated by the `Stripe-Signature` header (any `v1` may match, 300 s tolerance; 400 otherwise). Each event id takes effect once; an older event never overwrites newer state; types it doesn't act on answer 200 `ignored`; 5xx only for transient failures.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<stripe_webhook::Received>,
    } serves stripe_webhook::receive, then charge_started_recharges;
    WEBHOOK_ENDPOINTS_CREATE {
        name: "webhook-endpoints-create",
        method: Method::POST,
        path: "/v1/workspaces/{workspaceId}/webhook-endpoints",
        access: Access::Key,
        summary: "Create a webhook endpoint for the workspace's billing events (at most 20 per workspace: the 21st answers 409 `conflict`). It receives the events committed after its creation, signed by the Standard Webhooks scheme with `secret`, which only this response shows (a replay under the same `Idempotency-Key` answers `\"secret\": null`). `events` lists event types or is `[\"*\"]`; an unknown type answers 400. Deployed stages take only `https` URLs whose host resolves to global unicast addresses (400 \"url resolves to a private address\"); a host that does not resolve yet is taken, and its attempts fail until it does.",
        query: &[],
        request: Some(schema::<webhook_endpoints::CreateEndpoint>),
        status: 201,
        response: schema::<webhook_endpoints::EndpointCreated>,
    } serves webhook_endpoints::create;
    WEBHOOK_ENDPOINTS_LIST {
        name: "webhook-endpoints-list",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/webhook-endpoints",
        access: Access::Key,
        summary: "The workspace's webhook endpoints, newest first, without their secrets.",
        query: &[PAGE[0], PAGE[1]],
        request: None,
        status: 200,
        response: schema::<List<WebhookEndpoint>>,
    } serves webhook_endpoints::list;
    WEBHOOK_ENDPOINTS_DELETE {
        name: "webhook-endpoints-delete",
        method: Method::DELETE,
        path: "/v1/workspaces/{workspaceId}/webhook-endpoints/{endpointId}",
        access: Access::Key,
        summary: "Delete an endpoint: it gets no attempt from then on (its pending retries are dropped) and its delivery log goes with it. Again: 404.",
        query: &[],
        request: None,
        status: 200,
        response: schema::<webhook_endpoints::EndpointDeleted>,
    } serves webhook_endpoints::delete;
    WEBHOOK_ENDPOINTS_DELIVERIES {
        name: "webhook-endpoints-deliveries",
        method: Method::GET,
        path: "/v1/workspaces/{workspaceId}/webhook-endpoints/{endpointId}/deliveries",
        access: Access::Key,
        summary: "The endpoint's delivery attempts, newest first, kept 30 days. Each event is POSTed with `webhook-id` (the event id, the same for every attempt), `webhook-timestamp` and `webhook-signature` (signed anew per attempt); a 2xx within 15 s succeeds, anything else (redirects are not followed) is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (±10 % jitter; a longer `Retry-After`, up to 24 h, postpones), 8 attempts in all. 410 disables the endpoint (`gone`), five days of unbroken failure too (`failing`).",
        query: &[
            PAGE[0],
            PAGE[1],
            ("event_id", "Only attempts of this event."),
            ("status", "Only `succeeded` or only `failed` attempts."),
        ],
        request: None,
        status: 200,
        response: schema::<List<DeliveryAttempt>>,
    } serves webhook_endpoints::deliveries;
}

/// A job: its own Lambda, invoked by a schedule, the table's stream or the event bus (and, on
/// the local stage, run in-process).
pub struct Job {
    pub name: &'static str,
    /// The `static` that serves it, as for routes.
    pub ident: &'static str,
    /// What invokes it.
    pub invoked_by: Invocation,
    pub summary: &'static str,
    pub run: JobFn,
    /// As [`Route::after`]: every job moves money, so every job charges what it started.
    pub after: Option<AfterHook>,
}

/// What invokes a job's function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// A recurring EventBridge Scheduler expression (the dev server runs these every few
    /// seconds).
    Schedule(&'static str),
    /// One-time schedules, each with its payload (the dev server's sweep does their work).
    OneTimeSchedule,
    /// The table's DynamoDB stream, in batches (the dev server taps its own commits instead).
    TableStream,
    /// An EventBridge rule on the bus for `Source: billing` (the dev server delivers
    /// in-process).
    BusRule,
}

/// What an invocation did: how many things it handled and, for a stream batch, the records to
/// retry from (the Lambda's `batchItemFailures`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobOutcome {
    pub handled: usize,
    #[serde(rename = "batchItemFailures", skip_serializing_if = "Option::is_none")]
    pub batch_item_failures: Option<Vec<BatchItemFailure>>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// Compares what was handled, as the jobs that report only a count are checked.
impl PartialEq<usize> for JobOutcome {
    fn eq(&self, handled: &usize) -> bool {
        self.handled == *handled && self.batch_item_failures.is_none()
    }
}

impl From<usize> for JobOutcome {
    fn from(handled: usize) -> Self {
        Self {
            handled,
            batch_item_failures: None,
        }
    }
}

impl Job {
    /// The recurring schedule, for a job that has one.
    pub fn schedule(&self) -> Option<&'static str> {
        match self.invoked_by {
            Invocation::Schedule(expression) => Some(expression),
            _ => None,
        }
    }

    /// One invocation: the job's work on its payload, then its `after` work (charging the
    /// auto-recharges it started), whatever the work's outcome.
    pub async fn invoke(
        &self,
        app: &crate::app::App,
        payload: serde_json::Value,
    ) -> Result<JobOutcome, ApiError> {
        let result = (self.run)(app, payload).await;
        if let Some(after) = self.after {
            after(app).await;
        }
        result
    }
}

/// A job's work on the invocation's payload; returns what it handled.
pub type JobFn = for<'a> fn(
    &'a crate::app::App,
    serde_json::Value,
) -> BoxFuture<'a, Result<JobOutcome, ApiError>>;

macro_rules! job {
    // A job that needs nothing from its invocation.
    ($f:path) => {{
        fn boxed(
            app: &crate::app::App,
            _: serde_json::Value,
        ) -> BoxFuture<'_, Result<JobOutcome, ApiError>> {
            Box::pin(async move { $f(app).await.map(Into::into) })
        }
        boxed as JobFn
    }};
    ($f:path, payload) => {{
        fn boxed(
            app: &crate::app::App,
            payload: serde_json::Value,
        ) -> BoxFuture<'_, Result<JobOutcome, ApiError>> {
            Box::pin(async move { $f(app, payload).await.map(Into::into) })
        }
        boxed as JobFn
    }};
}

/// The job table, as the route table: one `static` per job, and [`JOBS`].
macro_rules! job_table {
    ($($ident:ident { $($field:ident: $value:expr),* $(,)? };)*) => {
        $(pub static $ident: Job = Job { ident: stringify!($ident), $($field: $value),* };)*
        pub static JOBS: &[&Job] = &[$(&$ident),*];
    };
}

job_table! {
    RUNS_EXPIRE {
        name: "runs-expire",
        invoked_by: Invocation::Schedule("rate(5 minutes)"),
        summary: "Settle runs whose hold expired: debit what was reported, release the rest.",
        run: job!(runs::expire_overdue),
        after: Some(charge_started_recharges),
    };
    LIFECYCLE_SWEEP {
        name: "lifecycle-sweep",
        invoked_by: Invocation::Schedule("rate(1 hour)"),
        summary: "Fire every overdue lifecycle deadline (trial, promo, period and grace ends) that a one-time schedule missed.",
        run: job!(lifecycle::sweep),
        after: Some(charge_started_recharges),
    };
    AUTO_RECHARGE_RETRY {
        name: "auto-recharge-retry",
        invoked_by: Invocation::Schedule("rate(15 minutes)"),
        summary: "Charge auto-recharges that were started but never charged (their function stopped in between), under the same idempotency key; log x402 claims left pending before `/settle` for over 15 minutes, for reconciliation.",
        run: job!(repair_payments),
        after: Some(charge_started_recharges),
    };
    LIFECYCLE_TRANSITION {
        name: "lifecycle-transition",
        invoked_by: Invocation::OneTimeSchedule,
        summary: "Fire one workspace's lifecycle deadline; invoked by its EventBridge Scheduler one-time schedule with {workspace_id, trigger, due_at, version}.",
        run: job!(lifecycle::on_schedule, payload),
        after: Some(charge_started_recharges),
    };
    EVENTS_PUBLISH {
        name: "events-publish",
        invoked_by: Invocation::TableStream,
        summary: "Publish each new outbox item of the table's stream to EventBridge (Source billing, DetailType its type); entries EventBridge refused are sent again, and records still refused are reported as batch item failures.",
        run: job!(events::publish::from_stream, payload),
        after: None,
    };
    USAGE_COUNTERS {
        name: "usage-counters",
        invoked_by: Invocation::TableStream,
        summary: "Apply each new debit's usage count (on its usage-event claim or settled run) to the day × category × agent and monthly counters, once per debit; a batch whose counters could not be written is reported failed and delivered again.",
        run: job!(usage_counters::from_stream, payload),
        after: None,
    };
    WEBHOOKS_DELIVER {
        name: "webhooks-deliver",
        invoked_by: Invocation::BusRule,
        summary: "Make the first delivery attempt of a billing event (the bus rule's target) to every subscribed endpoint of its workspace.",
        run: job!(events::publish::on_bus_event, payload),
        after: None,
    };
    WEBHOOKS_RETRY {
        name: "webhooks-retry",
        invoked_by: Invocation::Schedule("rate(1 minute)"),
        summary: "Make every webhook delivery attempt that is due (and take over claims whose function stopped mid-attempt).",
        run: job!(events::retry_due),
        after: None,
    };
}

pub fn job_by_name(name: &str) -> Option<&'static Job> {
    JOBS.iter().copied().find(|j| j.name == name)
}

/// What a method and path lead to.
pub enum Resolved {
    Route(&'static Route, HashMap<String, String>),
    /// The path exists, with other methods.
    MethodNotAllowed,
    NotFound,
}

pub fn resolve(method: &Method, path: &str) -> Resolved {
    let mut path_exists = false;
    for &route in ROUTES {
        if let Some(params) = match_path(route.path, path) {
            if route.method == method || route.options.answers_every_method {
                return Resolved::Route(route, params);
            }
            path_exists = true;
        }
    }
    if path_exists {
        Resolved::MethodNotAllowed
    } else {
        Resolved::NotFound
    }
}

/// Matches a concrete path against a template, returning the `{param}` values. Literal segments
/// win over parameters by construction of the table (no two templates overlap).
pub fn match_path(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let template_segments: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let path_segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if template_segments.len() != path_segments.len() {
        return None;
    }
    let mut params = HashMap::new();
    for (expected, actual) in template_segments.iter().zip(&path_segments) {
        match expected.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !actual.is_empty() => {
                params.insert(name.to_owned(), percent_decode(actual, false));
            }
            Some(_) => return None,
            None if expected == actual => {}
            None => return None,
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_static_is_named_after_its_function() {
        let upper = |name: &str| name.to_uppercase().replace('-', "_");
        for route in ROUTES {
            assert_eq!(route.ident, upper(route.name));
        }
        for job in JOBS {
            assert_eq!(job.ident, upper(job.name));
        }
        assert_eq!(SPECS.len(), ROUTES.len());
    }

    #[test]
    fn names_and_method_path_pairs_are_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} and {}",
                    a.name,
                    b.name
                );
            }
        }
    }

    #[test]
    fn templates_match_concrete_paths() {
        let params = match_path(
            "/v1/workspaces/{workspaceId}/billing/accounts/{billingAccountId}",
            "/v1/workspaces/ws_1/billing/accounts/ba_2",
        )
        .unwrap();
        assert_eq!(params["workspaceId"], "ws_1");
        assert_eq!(params["billingAccountId"], "ba_2");
        assert!(match_path("/v1/workspaces/{workspaceId}", "/v1/workspaces/").is_none());
        assert!(match_path("/v1/users", "/v1/users/x").is_none());
    }

    #[test]
    fn a_literal_segment_is_not_taken_for_a_parameter() {
        match resolve(&Method::POST, "/v1/workspaces/ws_1/billing/accounts/link") {
            Resolved::Route(route, _) => assert_eq!(route.name, "workspace-accounts-link"),
            _ => panic!("no route"),
        }
        assert!(matches!(
            resolve(&Method::PUT, "/v1/users"),
            Resolved::MethodNotAllowed
        ));
        assert!(matches!(
            resolve(&Method::GET, "/v2/nothing"),
            Resolved::NotFound
        ));
    }
}
