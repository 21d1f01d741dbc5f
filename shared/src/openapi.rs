//! The OpenAPI 3.1 document, generated from the route table and the request and response types,
//! so it cannot drift from what the handlers accept and return. It states every constraint the
//! server checks on a single value (ranges, lengths, patterns, enums, required fields), so
//! `make test` can run schemathesis against it: a request the document allows is one the server
//! takes, and a response is one the document describes.

use crate::catalog::Catalog;
use crate::config::PurchaseLimits;
use crate::domain::ids::{
    ApiKeyId, BillingAccountId, EventId, RunId, UserId, WebhookEndpointId, WorkspaceId,
};
use crate::domain::invoice::InvoiceStatus;
use crate::domain::pricing::Category;
use crate::domain::transaction::TransactionType;
use crate::domain::webhooks::AttemptStatus;
use crate::http::pagination::MAX_LIMIT;
use crate::routes::{spec, Access, Idempotency, RouteSpec, SPECS};
use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// Built once per process, on first request.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let mut paths = Map::new();
    for route in SPECS {
        let mut parameters: Vec<Value> = path_params(route.path)
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": path_param_schema(&mut generator, name)})
            })
            .collect();
        parameters.extend(route.query.iter().map(|(name, description)| {
            json!({
                "name": name, "in": "query", "description": description,
                "required": REQUIRED_QUERY.contains(&(route.name, *name)),
                "schema": query_param_schema(&mut generator, route, name),
            })
        }));
        if route.method == http::Method::POST
            && route.access != Access::Public
            && route.options.idempotency != Idempotency::Ignored
        {
            parameters.push(json!({
                "name": "Idempotency-Key", "in": "header", "required": false,
                "description": "1–255 characters. The first response is replayed for 48 h for a retry with the same body; another body answers 400 `idempotency_key_reused`, a retry while the first runs 409 `idempotency_key_in_use`.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }));
        }
        if route.name == spec::WORKSPACE_BILLING_CHECKOUT_X402.name {
            parameters.extend([
                json!({
                    "name": "PAYMENT-SIGNATURE", "in": "header", "required": false,
                    "description": "x402 v2: base64 of JSON `{x402Version: 2, resource?, accepted: <the requirement>, payload: {signature, authorization: {from, to, value, validAfter, validBefore, nonce}}}`. Read before `X-PAYMENT`; not base64 of a payment payload: 400 `invalid_request`.",
                    "schema": {"type": "string"},
                }),
                json!({
                    "name": "X-PAYMENT", "in": "header", "required": false,
                    "description": "x402 v1: base64 of JSON `{x402Version: 1, scheme: \"exact\", network: <v1 name>, payload: {signature, authorization}}`.",
                    "schema": {"type": "string"},
                }),
            ]);
        }
        if route.name == spec::STRIPE_WEBHOOK.name {
            parameters.push(json!({
                "name": "Stripe-Signature", "in": "header", "required": true,
                "description": "Stripe's signature over the raw body with the endpoint's secret (`t=…,v1=…`); a missing or wrong one answers 400.",
                "schema": {"type": "string"},
            }));
        }
        let mut operation = json!({
            "operationId": route.name,
            "summary": route.summary,
            "parameters": parameters,
            "responses": responses(&mut generator, route),
        });
        if let Some(request) = route.request {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": request(&mut generator)}},
            });
        }
        if route.access == Access::Public {
            operation["security"] = json!([]);
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_lowercase()] = operation;
    }
    add_links(&mut paths);
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Error".into(), error_schema());
    schemas.insert("JsonRpcRequest".into(), json_rpc_request_schema());
    schemas.insert("JsonRpcResponse".into(), json_rpc_response_schema());
    schemas.insert("X402PaymentRequired".into(), x402_payment_required_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Billing API",
            "version": "1.0.0",
            "description": "Prepaid credits, agent runs, plans and payments for AI-agent platforms. Money is integer US cents; every list is paginated newest first with opaque cursors; every POST accepts an Idempotency-Key. Choices the contract leaves open are written in the operation summaries.",
        },
        "servers": [{"url": "http://127.0.0.1:3000", "description": "make dev"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A `bk_…` API key, or the service key."}},
        },
    })
}

fn path_params(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// A path parameter is always one kind of id; a malformed one answers 404 like an unknown one.
fn path_param_schema(generator: &mut SchemaGenerator, name: &str) -> Schema {
    match name {
        "workspaceId" => generator.subschema_for::<WorkspaceId>(),
        "billingAccountId" => generator.subschema_for::<BillingAccountId>(),
        "runId" => generator.subschema_for::<RunId>(),
        "keyId" => generator.subschema_for::<ApiKeyId>(),
        "endpointId" => generator.subschema_for::<WebhookEndpointId>(),
        other => panic!("path parameter `{other}` has no schema in openapi.rs"),
    }
}

/// Query parameters the service must give. `owner_user_id` is the service's only (a user or
/// workspace key that gives it is refused), but the document describes the service's calls: the
/// other keys see only their own.
const REQUIRED_QUERY: &[(&str, &str)] = &[
    (spec::WORKSPACE_BILLING_USAGE.name, "category"),
    (spec::BILLING_ACCOUNTS_LIST.name, "owner_user_id"),
];

/// A query parameter means the same on every route that takes it, so its schema is by name.
fn query_param_schema(generator: &mut SchemaGenerator, route: &RouteSpec, name: &str) -> Schema {
    match name {
        "event_id" => generator.subschema_for::<EventId>(),
        "status" if route.name == spec::WEBHOOK_ENDPOINTS_DELIVERIES.name => {
            generator.subschema_for::<AttemptStatus>()
        }
        "limit" => schemars::json_schema!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
        // Opaque: only a cursor the server issued is accepted (400 `invalid_cursor` otherwise).
        "cursor" => schemars::json_schema!({"type": "string"}),
        "user_id" | "owner_user_id" => generator.subschema_for::<UserId>(),
        "workspace_id" => generator.subschema_for::<WorkspaceId>(),
        "type" => generator.subschema_for::<TransactionType>(),
        "category" => generator.subschema_for::<Category>(),
        "period_start" | "period_end" => {
            schemars::json_schema!({"type": "string", "format": "date"})
        }
        "group_by" => schemars::json_schema!({"type": "string", "enum": ["day", "agent"]}),
        "days" => {
            schemars::json_schema!({"type": "integer", "minimum": 1, "maximum": crate::api::views::MAX_DAYS})
        }
        // Drafts are never listed.
        "status" => {
            let listed: Vec<_> = InvoiceStatus::ALL
                .into_iter()
                .filter(|s| *s != InvoiceStatus::Draft)
                .collect();
            schemars::json_schema!({"type": "string", "enum": listed})
        }
        other => panic!("query parameter `{other}` has no schema in openapi.rs"),
    }
}

/// Routes that answer a second success status besides the route's own: the replay of a
/// creation that names its object (the same `external_id`, the same `event_id`).
const REPLAYED_AS_OK: &[&str] = &[spec::USERS_CREATE.name, spec::USAGE_EVENTS_CREATE.name];

fn responses(generator: &mut SchemaGenerator, route: &RouteSpec) -> Value {
    if route.name == spec::MCP.name {
        return mcp_responses();
    }
    let body = json!({"application/json": {"schema": (route.response)(generator)}});
    let mut responses = json!({
        route.status.to_string(): {"description": "Success.", "content": body},
    });
    if REPLAYED_AS_OK.contains(&route.name) && route.status != 200 {
        responses["200"] = json!({"description": "The object already existed: the first result, nothing done twice.", "content": body});
    }
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        })
    };
    if route.access != Access::Public {
        responses["400"] = error("`invalid_request` (the message names the field), `invalid_cursor`, `idempotency_key_reused`.");
        responses["401"] = error("`unauthorized`: missing, malformed, unknown or revoked key.");
        responses["403"] = error("`forbidden` (a read key on a writing route, or a role that may not), `plan_readonly`, `plan_suspended`.");
        responses["404"] = error("`not_found`: no such object, or one the caller may not see.");
    }
    responses["default"] =
        error("An error in the contract's format (402, 409, 429, 5xx: see the codes).");
    if route.name == spec::WORKSPACE_BILLING_CHECKOUT_X402.name {
        let base64_json = |description: &str| json!({"description": description, "schema": {"type": "string", "contentEncoding": "base64"}});
        responses["200"]["headers"] = json!({
            "PAYMENT-RESPONSE": base64_json("v2 payment: base64 JSON `{success: true, transaction, network, payer, amount}`."),
            "X-PAYMENT-RESPONSE": base64_json("v1 payment: the same, `network` by its v1 name."),
        });
        responses["402"] = json!({
            "description": "Payment required (outside the error envelope): no payment header, a refused payment (`error` is the reason: payment_requirements_mismatch, invalid_exact_evm_payload_recipient_mismatch, invalid_exact_evm_payload_authorization_value_mismatch, invalid_exact_evm_payload_authorization_valid_before, invalid_exact_evm_payload_authorization_valid_after, invalid_exact_evm_payload_signature, invalid_exact_evm_nonce_already_used, or the facilitator's reason), or a failed settlement.",
            "headers": {
                "PAYMENT-REQUIRED": base64_json("base64 JSON `{x402Version: 2, error, resource: {url, description, mimeType}, accepts: [{scheme: \"exact\", network, amount, asset, payTo, maxTimeoutSeconds, extra: {name, version}}]}`."),
                "PAYMENT-RESPONSE": base64_json("Only when settlement failed: base64 JSON `{success: false, errorReason, transaction: \"\", network, payer}` (`X-PAYMENT-RESPONSE` for a v1 payment)."),
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/X402PaymentRequired"}}},
        });
    }
    responses
}

/// MCP answers JSON-RPC, not the error envelope, except before the message is read (401,
/// 403, 405, and 400 for a body over the limit).
fn mcp_responses() -> Value {
    let rpc =
        json!({"application/json": {"schema": {"$ref": "#/components/schemas/JsonRpcResponse"}}});
    let envelope = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
    json!({
        "200": {"description": "A JSON-RPC response: a result, or an error other than the ones below.", "content": rpc},
        "202": {"description": "A notification or a client's response: accepted, no body."},
        "400": {"description": "JSON-RPC -32700 (not JSON), -32600 (not one message), -32022 (unsupported MCP-Protocol-Version, with `data.supported`), -32020 (a 2026-07-28 header that does not match the body); or the error envelope (`invalid_request`) for a body over the size limit.", "content": {"application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/JsonRpcResponse"}, {"$ref": "#/components/schemas/Error"}]}}}},
        "401": {"description": "`unauthorized` (envelope).", "content": envelope},
        "403": {"description": "`forbidden` (envelope): an Origin that is not allowed.", "content": envelope},
        "404": {"description": "JSON-RPC -32601 for a 2026-07-28 request.", "content": rpc},
        "405": {"description": "Another method than POST (`Allow: POST`, envelope `method_not_allowed`).", "content": envelope},
        "default": {"description": "An error in the contract's format (429, 5xx).", "content": envelope},
    })
}

fn json_rpc_request_schema() -> Value {
    json!({
        "type": "object",
        "description": "One JSON-RPC 2.0 message (a batch is refused). With `id`: a request, answered with one JSON response; without: a notification, answered 202. Methods: initialize, ping, server/discover, tools/list, tools/call (anything else: -32601).",
        "required": ["jsonrpc", "method"],
        "properties": {
            "jsonrpc": {"const": "2.0"},
            "id": {"type": ["string", "number"]},
            "method": {"type": "string"},
            "params": {"description": "The method's parameters (an object for every MCP method)."},
        },
    })
}

fn json_rpc_response_schema() -> Value {
    json!({
        "type": "object",
        "required": ["jsonrpc", "id"],
        "properties": {
            "jsonrpc": {"const": "2.0"},
            "id": {"type": ["string", "number", "null"]},
            "result": {"type": "object"},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {}},
            },
        },
    })
}

fn x402_payment_required_schema() -> Value {
    json!({
        "type": "object",
        "description": "x402 v1's 402 body (the v2 form is in the PAYMENT-REQUIRED header).",
        "required": ["x402Version", "error", "accepts"],
        "properties": {
            "x402Version": {"const": 1},
            "error": {"type": "string", "description": "`X-PAYMENT header is required`, or why the payment was refused."},
            "accepts": {"type": "array", "items": {
                "type": "object",
                "required": ["scheme", "network", "maxAmountRequired", "resource", "description", "mimeType", "payTo", "maxTimeoutSeconds", "asset", "outputSchema", "extra"],
                "properties": {
                    "scheme": {"const": "exact"},
                    "network": {"type": "string", "description": "The v1 network name (`base`, `base-sepolia`)."},
                    "maxAmountRequired": {"type": "string", "description": "Atomic units: amount_cents × 10⁴ for USDC."},
                    "resource": {"type": "string"},
                    "description": {"type": "string"},
                    "mimeType": {"const": "application/json"},
                    "payTo": {"type": "string"},
                    "maxTimeoutSeconds": {"type": "integer"},
                    "asset": {"type": "string"},
                    "outputSchema": {"type": "null"},
                    "extra": {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"}}},
                },
            }},
        },
    })
}

/// The routes that create an object, and the path parameters their answer fills in (a
/// runtime expression each): the links from them let a client, and schemathesis's stateful
/// phase, call every route that takes those ids with real ones.
fn link_sources() -> Vec<(&'static RouteSpec, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            &spec::USERS_CREATE,
            vec![(
                "billingAccountId",
                "$response.body#/default_billing_account/id",
            )],
        ),
        (
            &spec::WORKSPACES_CREATE,
            vec![
                ("workspaceId", "$response.body#/id"),
                (
                    "billingAccountId",
                    "$response.body#/default_billing_account_id",
                ),
            ],
        ),
        (
            &spec::WORKSPACE_ACCOUNTS_CREATE,
            vec![
                ("workspaceId", "$request.path.workspaceId"),
                ("billingAccountId", "$response.body#/id"),
            ],
        ),
        (
            &spec::RUNS_CREATE,
            vec![
                ("workspaceId", "$request.path.workspaceId"),
                ("runId", "$response.body#/run_id"),
            ],
        ),
        (
            &spec::API_KEYS_CREATE,
            vec![("keyId", "$response.body#/id")],
        ),
    ]
}

/// Links that carry a new id into a query or a body rather than a path.
fn other_links() -> Vec<(&'static RouteSpec, &'static RouteSpec, Value)> {
    let user = "$response.body#/user/id";
    let workspace = "$response.body#/id";
    vec![
        (
            &spec::USERS_CREATE,
            &spec::WORKSPACES_CREATE,
            json!({"requestBody": {"owner_user_id": user, "billing_account_id": "$response.body#/default_billing_account/id"}}),
        ),
        (
            &spec::USERS_CREATE,
            &spec::BILLING_ACCOUNTS_LIST,
            json!({"parameters": {"query.owner_user_id": user}}),
        ),
        (
            &spec::USERS_CREATE,
            &spec::API_KEYS_LIST,
            json!({"parameters": {"query.user_id": user}}),
        ),
        (
            &spec::USERS_CREATE,
            &spec::API_KEYS_CREATE,
            json!({"requestBody": {"owner": {"type": "user", "id": user}}}),
        ),
        (
            &spec::WORKSPACES_CREATE,
            &spec::API_KEYS_LIST,
            json!({"parameters": {"query.workspace_id": workspace}}),
        ),
        (
            &spec::WORKSPACES_CREATE,
            &spec::API_KEYS_CREATE,
            json!({"requestBody": {"owner": {"type": "workspace", "id": workspace, "role": "admin"}}}),
        ),
        // Linking the workspace's own default account again: a no-op 200.
        (
            &spec::WORKSPACES_CREATE,
            &spec::WORKSPACE_ACCOUNTS_LINK,
            json!({"parameters": {"path.workspaceId": workspace}, "requestBody": {"billing_account_id": "$response.body#/default_billing_account_id"}}),
        ),
        // The local stage completes an offline checkout by its session id.
        (
            &spec::WORKSPACE_BILLING_CHECKOUT,
            &spec::WORKSPACE_BILLING_COMPLETE_LOCAL,
            json!({"parameters": {"path.workspaceId": "$request.path.workspaceId"}, "requestBody": {"checkout_session_id": "$response.body#/checkout_session_id"}}),
        ),
        // A new workspace's account holds the introductory credit: a run it can afford.
        (
            &spec::WORKSPACES_CREATE,
            &spec::RUNS_CREATE,
            json!({"parameters": {"path.workspaceId": workspace}, "requestBody": {"max_cost_cents": 100}}),
        ),
    ]
}

/// Routes whose body names another object that only one route makes: a link that fills only
/// their path would be answered 404 for the body's id, which reads as the linked object
/// missing. Only [`other_links`] lead to them.
const BODY_NAMES_AN_ID: &[&str] = &[spec::WORKSPACE_BILLING_COMPLETE_LOCAL.name];

/// Adds to each creating route's success responses a link to every route whose path ids it
/// can fill and that takes at least one id it made (not only the ones it was called with).
fn add_links(paths: &mut Map<String, Value>) {
    let mut links: Vec<(&RouteSpec, &RouteSpec, Value)> = Vec::new();
    for (source, fills) in link_sources() {
        for target in SPECS {
            let params: Vec<&str> = path_params(target.path).collect();
            let fillable = params
                .iter()
                .all(|p| fills.iter().any(|(name, _)| name == p));
            let takes_new_id = params.iter().any(|p| {
                fills
                    .iter()
                    .any(|(name, expr)| name == p && expr.starts_with("$response"))
            });
            if fillable
                && takes_new_id
                && target.name != source.name
                && !BODY_NAMES_AN_ID.contains(&target.name)
            {
                let parameters: Map<String, Value> = fills
                    .iter()
                    .filter(|(name, _)| params.contains(name))
                    .map(|(name, expr)| (format!("path.{name}"), json!(expr)))
                    .collect();
                links.push((source, target, json!({"parameters": parameters})));
            }
        }
    }
    // Last, so that one of these replaces a path-only link between the same two routes.
    links.extend(other_links());
    for (source, target, mut link) in links {
        link["operationId"] = json!(target.name);
        let operation = &mut paths[source.path][source.method.as_str().to_lowercase()];
        let statuses: Vec<String> = operation["responses"]
            .as_object()
            .expect("responses is an object")
            .keys()
            .filter(|status| status.starts_with('2'))
            .cloned()
            .collect();
        for status in statuses {
            operation["responses"][&status]["links"][target.name] = link.clone();
        }
    }
}

/// The schema of an agent tier: one of the catalog's (an unknown tier answers 400).
pub fn agent_tier(_: &mut SchemaGenerator) -> Schema {
    let tiers: Vec<String> = catalog()
        .pricing
        .tiers
        .iter()
        .map(|t| t.id.clone())
        .collect();
    schemars::json_schema!({"type": "string", "enum": tiers})
}

/// [`agent_tier`], or `null` for the catalog's default tier.
pub fn optional_agent_tier(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = agent_tier(generator);
    schema.insert("type".into(), json!(["string", "null"]));
    if let Some(Value::Array(tiers)) = schema.get_mut("enum") {
        tiers.push(Value::Null);
    }
    schema
}

/// The plans sold through checkout: those with a Stripe price (free and custom plans are not).
pub fn sold_plan(_: &mut SchemaGenerator) -> Schema {
    let plans: Vec<String> = catalog()
        .plans
        .iter()
        .filter(|p| p.stripe_price_id.is_some())
        .map(|p| p.id.clone())
        .collect();
    schemars::json_schema!({"type": "string", "enum": plans})
}

/// A credit purchase, within the default purchase limits (a deployment may narrow them with
/// `PURCHASE_MIN_CENTS` / `PURCHASE_MAX_CENTS`).
pub fn purchase_cents(_: &mut SchemaGenerator) -> Schema {
    let limits = PurchaseLimits::default();
    schemars::json_schema!({
        "type": "integer", "format": "int64",
        "minimum": limits.min_cents, "maximum": limits.max_cents,
    })
}

/// The compiled-in catalog the server runs with: its tiers and plans are the enums above.
fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::builtin().expect("the built-in catalog is valid"))
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string", "description": "invalid_request, invalid_cursor, idempotency_key_reused (400); unauthorized (401); insufficient_credits, hard_cap_reached, payment_required, requires_action, plan_inactive (402); forbidden, plan_readonly, plan_suspended (403); not_found, no_subscription (404); conflict, idempotency_key_in_use, default_account_unlink, subscription_canceled (409); rate_limited (429, with Retry-After); internal (500); portal_error, payment_provider_error (502); unavailable (503, health only)."},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
            },
        }},
    })
}
