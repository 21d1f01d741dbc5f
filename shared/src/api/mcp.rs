//! `POST /v1/mcp`: one JSON-RPC message in, one JSON answer (or a bare 202) out. The dispatch
//! has already answered other methods (405), checked `Origin` and the key; this reads the
//! message, applies the revision's rules and answers `initialize`, `ping`, `server/discover`,
//! `tools/list` and `tools/call`. The tools answer with the billing views' own code and the run
//! authorization's decision, so they cannot disagree with the HTTP API.

use super::access::visible_workspace_state;
use super::budget;
use super::views::{self, UsageQuery};
use crate::domain::api_key::Principal;
use crate::domain::calendar::Month;
use crate::domain::ids::WorkspaceId;
use crate::http::{ApiError, Ctx, Reply};
use crate::mcp::protocol::{self, ErrorCode, Message, RpcError};
use crate::mcp::tools::{Call, Tool};
use crate::mcp::version::{check_stateless_headers, Revision, SERVER_INFO_META};
use crate::mcp::{INSTRUCTIONS, SERVER_NAME, SERVER_VERSION, TTL_MS};
use http::StatusCode;
use serde::Serialize;
use serde_json::{json, Map, Value};

pub async fn handle(cx: Ctx<'_>) -> Result<Reply, ApiError> {
    let (id, method, params) = match protocol::parse(&cx.req.body) {
        Ok(Message::Request { id, method, params }) => (id, method, params),
        Ok(Message::Notification | Message::Response) => {
            return Ok(Reply::empty(StatusCode::ACCEPTED))
        }
        Err(error) => return Ok(rpc_error(&Value::Null, &error, false)),
    };
    if method == "initialize" {
        return Ok(rpc_result(&id, initialize(params.as_ref()), false));
    }
    let revision = match Revision::of_request(&cx.req.headers) {
        Ok(revision) => revision,
        Err(error) => return Ok(rpc_error(&id, &error, false)),
    };
    let stateless = revision.is_stateless();
    if stateless {
        if let Err(error) =
            check_stateless_headers(&cx.req.headers, revision, &method, params.as_ref())
        {
            return Ok(rpc_error(&id, &error, true));
        }
    }
    let result = match method.as_str() {
        "ping" if !stateless => Ok(Map::new()),
        "server/discover" => Ok(discover()),
        "tools/list" => Ok(tools_list()),
        "tools/call" => call_tool(&cx, params.as_ref()).await?,
        other => Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!("Method not found: {other}"),
        )),
    };
    Ok(match result {
        Ok(result) => rpc_result(&id, result, stateless),
        Err(error) => rpc_error(&id, &error, stateless),
    })
}

fn server_info() -> Value {
    json!({"name": SERVER_NAME, "version": SERVER_VERSION})
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A result; under the stateless revision it also says it is complete and who answered.
fn rpc_result(id: &Value, mut result: Map<String, Value>, stateless: bool) -> Reply {
    if stateless {
        result.insert("resultType".into(), json!("complete"));
        result
            .entry("_meta")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|meta| meta.insert(SERVER_INFO_META.into(), server_info()));
    }
    Reply::json(StatusCode::OK, protocol::result(id, result))
}

fn rpc_error(id: &Value, error: &RpcError, stateless: bool) -> Reply {
    Reply::json(error.code.status(stateless), protocol::error(id, error))
}

fn initialize(params: Option<&Value>) -> Map<String, Value> {
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    object(json!({
        "protocolVersion": Revision::negotiate(requested).as_str(),
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    }))
}

fn discover() -> Map<String, Value> {
    object(json!({
        "supportedVersions": Revision::ALL.map(Revision::as_str),
        "capabilities": {"tools": {}},
        "_meta": {SERVER_INFO_META: server_info()},
        "instructions": INSTRUCTIONS,
        "ttlMs": TTL_MS,
        "cacheScope": "public",
    }))
}

fn tools_list() -> Map<String, Value> {
    object(json!({
        "tools": Tool::ALL.map(Tool::definition),
        "ttlMs": TTL_MS,
        "cacheScope": "public",
    }))
}

/// A tool's answer: its structured content (and the same as text), or a tool error. A
/// JSON-RPC error for a call that names no tool; a server failure stays a server failure (500).
async fn call_tool(
    cx: &Ctx<'_>,
    params: Option<&Value>,
) -> Result<Result<Map<String, Value>, RpcError>, ApiError> {
    let invalid_params = |message: &str| Ok(Err(RpcError::new(ErrorCode::InvalidParams, message)));
    let Some(params) = params.filter(|p| p.is_object()) else {
        return invalid_params("`params` must be an object");
    };
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return invalid_params("`params.name` must name a tool");
    };
    let Some(tool) = Tool::parse(name) else {
        return invalid_params(&format!("Unknown tool: {name}"));
    };
    let outcome = match tool.arguments(params.get("arguments")) {
        Ok(call) => run(cx, call).await,
        Err(bad) => Err(ApiError::InvalidRequest(bad.0)),
    };
    Ok(Ok(match outcome {
        Ok(content) => tool_result(content, false),
        Err(error) if is_tool_error(&error) => tool_result(
            json!({"error": {"code": error.code(), "message": error.public_message()}}),
            true,
        ),
        Err(error) => return Err(error),
    }))
}

/// A refusal the caller can act on is the tool's answer; rate limits and server failures are
/// the route's (the contract's envelope).
fn is_tool_error(error: &ApiError) -> bool {
    error.status().is_client_error() && error.status() != StatusCode::TOO_MANY_REQUESTS
}

fn tool_result(content: Value, is_error: bool) -> Map<String, Value> {
    object(json!({
        "content": [{"type": "text", "text": content.to_string()}],
        "structuredContent": content,
        "isError": is_error,
    }))
}

fn to_value(body: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(body).map_err(|e| ApiError::Internal(e.to_string()))
}

async fn run(cx: &Ctx<'_>, call: Call) -> Result<Value, ApiError> {
    match call {
        Call::BillingStatus { workspace_id } => {
            let id = workspace_of(cx, workspace_id.as_deref())?;
            to_value(&views::billing_status(cx, &id).await?)
        }
        Call::Usage {
            workspace_id,
            category,
            period_start,
            period_end,
            group_by,
        } => {
            let id = workspace_of(cx, workspace_id.as_deref())?;
            let query = UsageQuery {
                category: Some(&category),
                period_start: period_start.as_deref(),
                period_end: period_end.as_deref(),
                group_by: group_by.as_deref(),
            };
            to_value(&views::usage_report(cx, &id, query).await?)
        }
        Call::CheckBudget {
            workspace_id,
            amount_cents,
            agent_id,
        } => {
            let id = workspace_of(cx, workspace_id.as_deref())?;
            if crate::domain::bounds::HoldCents::new(amount_cents.max(1)).is_none() {
                return Err(ApiError::InvalidRequest(
                    "`amount_cents` is beyond the largest hold a run may have".into(),
                ));
            }
            let state = visible_workspace_state(cx, &id).await?;
            let month = Month::of(cx.now());
            to_value(
                &budget::check(
                    cx.app,
                    &state.workspace,
                    agent_id.as_deref(),
                    amount_cents,
                    month,
                )
                .await?,
            )
        }
    }
}

/// The workspace a tool reads: the one named, or a workspace key's own. A malformed id names
/// no workspace (`not_found`, as on the routes).
fn workspace_of(cx: &Ctx<'_>, named: Option<&str>) -> Result<WorkspaceId, ApiError> {
    match (named, cx.caller()?) {
        (Some(text), _) => WorkspaceId::parse(text).ok_or_else(|| ApiError::not_found("workspace")),
        (None, Principal::Workspace { id, .. }) => Ok(id.clone()),
        (None, _) => Err(ApiError::InvalidRequest(
            "`workspace_id` is required with a user or service key".into(),
        )),
    }
}
