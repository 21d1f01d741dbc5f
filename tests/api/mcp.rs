//! `POST /v1/mcp`: the official MCP Python SDK lists and calls the three tools over both its
//! handshake `ClientSession` and its default (2026-07-28) client; the transport, version and
//! error rules over plain HTTP; `check_budget` against what authorizing a run decides.

use billing_tests::app::{spawn_app, TestApp};
use billing_tests::python;
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// A user's workspace and a read key of it.
async fn workspace_with_read_key(app: &TestApp) -> (String, String, String) {
    let (_, _, user_key) = app.user_with_key("agent-owner").await;
    let workspace = app.create_workspace(&user_key, "Agents").await;
    let read_key = app
        .create_key(json!({"type": "workspace", "id": workspace, "role": "read"}))
        .await;
    (user_key, workspace, read_key)
}

async fn rpc(
    app: &TestApp,
    key: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> billing_tests::app::TestResponse {
    let mut call = app.call(Method::POST, "/v1/mcp").key(key).json(body);
    for (name, value) in headers {
        call = call.header(name, value);
    }
    call.send().await
}

fn stateless(method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

#[tokio::test]
async fn the_official_client_lists_and_calls_the_three_tools_over_both_revisions() {
    let app = spawn_app().await;
    let (_, workspace, read_key) = workspace_with_read_key(&app).await;
    let out = python::run(
        "mcp_tools.py",
        &[&format!("{}/v1/mcp", app.base_url), &read_key, &workspace],
    )
    .await;
    let status = app
        .get(&format!("/v1/workspaces/{workspace}/billing"), &read_key)
        .await
        .body;
    let usage = app
        .get(
            &format!("/v1/workspaces/{workspace}/billing/usage?category=actions&group_by=day"),
            &read_key,
        )
        .await
        .body;
    for (client, version) in [("handshake", "2025-11-25"), ("default", "2026-07-28")] {
        let run = &out[client];
        assert_eq!(run["protocol_version"], version, "{client}: {run}");
        assert_eq!(
            run["tools"],
            json!(["get_billing_status", "get_usage", "check_budget"])
        );
        let results = &run["results"];
        // The tools answer what the HTTP views answer.
        assert_eq!(results["get_billing_status"]["is_error"], false);
        assert_eq!(
            results["get_billing_status"]["structured"], status,
            "{client}"
        );
        assert_eq!(results["get_usage"]["structured"], usage, "{client}");
        let budget = &results["check_budget"]["structured"];
        assert_eq!(budget["allowed"], true, "{client}: {budget}");
        assert_eq!(budget["reason"], Value::Null);
        assert_eq!(budget["available_cents"], status["available_cents"]);
        assert_eq!(budget["spendable_cents"], status["available_cents"]);
        assert_eq!(budget["plan_status"], "trial");
        // A workspace the key cannot see reveals nothing.
        assert_eq!(run["not_found"]["is_error"], true);
        assert_eq!(run["not_found"]["structured"]["error"]["code"], "not_found");
    }
    assert_eq!(out["handshake"]["server"], "billing");
}

#[tokio::test]
async fn check_budget_answers_what_authorizing_the_run_would() {
    let app = spawn_app().await;
    let (user_key, workspace, read_key) = workspace_with_read_key(&app).await;
    let check = |amount: i64| {
        let app = &app;
        let read_key = read_key.clone();
        let workspace = workspace.clone();
        async move {
            let answer = rpc(
                app,
                &read_key,
                &[],
                json!({"jsonrpc": "2.0", "id": "c", "method": "tools/call", "params": {
                    "name": "check_budget", "arguments": {"amount_cents": amount, "agent_id": "a1"}}}),
            )
            .await;
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
            let _ = workspace;
            answer.body["result"]["structuredContent"].clone()
        }
    };
    let authorize = |amount: i64| {
        let app = &app;
        let user_key = user_key.clone();
        let workspace = workspace.clone();
        async move {
            app.post(
                &format!("/v1/workspaces/{workspace}/runs"),
                &user_key,
                json!({"agent_id": "a1", "agent_tier": "basic", "max_cost_cents": amount}),
            )
            .await
        }
    };
    // 1000 cents of introductory credit: more is refused for credit.
    let over = check(1001).await;
    assert_eq!(over["allowed"], false);
    assert_eq!(over["reason"], "insufficient_credits");
    assert_eq!(authorize(1001).await.error_code(), "insufficient_credits");
    // A workspace budget of 300: a run of 400 would cross it.
    let capped = app
        .patch(
            &format!("/v1/workspaces/{workspace}/billing"),
            &user_key,
            json!({"hard_cap_cents": 300}),
        )
        .await;
    assert_eq!(capped.status, StatusCode::OK, "{:?}", capped.body);
    let over_cap = check(400).await;
    assert_eq!(over_cap["reason"], "hard_cap_reached");
    assert_eq!(over_cap["hard_cap_cents"], 300);
    assert_eq!(over_cap["spendable_cents"], 300);
    assert_eq!(authorize(400).await.error_code(), "hard_cap_reached");
    // Within both: allowed, and the run is authorized; its hold then counts.
    assert_eq!(check(200).await["allowed"], true);
    assert_eq!(authorize(200).await.status, StatusCode::CREATED);
    let after = check(200).await;
    assert_eq!(after["reason"], "hard_cap_reached");
    assert_eq!(after["spendable_cents"], 100);
    assert_eq!(after["available_cents"], 800);
    assert_eq!(authorize(200).await.error_code(), "hard_cap_reached");
}

#[tokio::test]
async fn transport_rules_versions_and_error_codes_follow_the_contract() {
    let app = spawn_app().await;
    let (user_key, workspace, read_key) = workspace_with_read_key(&app).await;
    // Other methods: 405 with Allow, before anything else.
    for method in [Method::GET, Method::DELETE, Method::PUT] {
        let answer = app.call(method.clone(), "/v1/mcp").send().await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(answer.headers["allow"], "POST");
    }
    // Origin before the key; no Origin and loopback origins are fine.
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let foreign = app
        .call(Method::POST, "/v1/mcp")
        .header("origin", "https://evil.example")
        .json(ping.clone())
        .send()
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert_eq!(foreign.error_code(), "forbidden");
    let local_no_key = app
        .call(Method::POST, "/v1/mcp")
        .header("origin", "http://127.0.0.1:5173")
        .json(ping.clone())
        .send()
        .await;
    assert_eq!(local_no_key.status, StatusCode::UNAUTHORIZED);
    let local = rpc(
        &app,
        &read_key,
        &[("origin", "http://localhost:8080")],
        ping.clone(),
    )
    .await;
    assert_eq!(local.status, StatusCode::OK);
    assert_eq!(local.body, json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
    // Not JSON, not one message.
    let garbage = app
        .call(Method::POST, "/v1/mcp")
        .key(&read_key)
        .raw_body("{")
        .send()
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbage.body["error"]["code"], -32700);
    assert_eq!(garbage.body["id"], Value::Null);
    let batch = rpc(&app, &read_key, &[], json!([ping])).await;
    assert_eq!(batch.status, StatusCode::BAD_REQUEST);
    assert_eq!(batch.body["error"]["code"], -32600);
    // Notifications and client responses: 202, no body.
    let note = rpc(
        &app,
        &read_key,
        &[],
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(note.status, StatusCode::ACCEPTED);
    assert_eq!(note.body, Value::Null);
    assert!(note.headers.get("mcp-session-id").is_none());
    // initialize echoes a handshake revision, answers the latest otherwise.
    for (asked, answered) in [("2025-06-18", "2025-06-18"), ("2030-01-01", "2025-11-25")] {
        let init = rpc(&app, &user_key, &[], json!({"jsonrpc": "2.0", "id": 2, "method": "initialize",
            "params": {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).await;
        assert_eq!(init.status, StatusCode::OK);
        assert_eq!(init.body["result"]["protocolVersion"], answered);
        assert_eq!(
            init.body["result"]["capabilities"],
            json!({"tools": {"listChanged": false}})
        );
        assert_eq!(init.body["result"]["serverInfo"]["name"], "billing");
    }
    // An unknown revision: 400, -32022, what is supported.
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let unknown = rpc(
        &app,
        &read_key,
        &[("mcp-protocol-version", "2024-01-01")],
        list.clone(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.body["error"]["code"], -32022);
    assert_eq!(
        unknown.body["error"]["data"],
        json!({"supported": ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"], "requested": "2024-01-01"})
    );
    // No header: 2025-03-26, no stateless fields required.
    let plain = rpc(&app, &read_key, &[], list.clone()).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.body["result"]["tools"].as_array().unwrap().len(), 3);
    assert_eq!(plain.body["result"]["ttlMs"], 300000);
    assert!(plain.body["result"]["nextCursor"].is_null());
    // Stateless: headers must match the body.
    let v = ("mcp-protocol-version", "2026-07-28");
    let no_meta = rpc(
        &app,
        &read_key,
        &[v, ("mcp-method", "tools/list")],
        list.clone(),
    )
    .await;
    assert_eq!(no_meta.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_meta.body["error"]["code"], -32020);
    let wrong_method = rpc(
        &app,
        &read_key,
        &[v, ("mcp-method", "tools/call")],
        stateless("tools/list", json!({})),
    )
    .await;
    assert_eq!(wrong_method.body["error"]["code"], -32020);
    assert!(wrong_method.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Mcp-Method"));
    let call = stateless(
        "tools/call",
        json!({"name": "get_billing_status", "arguments": {}}),
    );
    let wrong_name = rpc(
        &app,
        &read_key,
        &[v, ("mcp-method", "tools/call"), ("mcp-name", "get_usage")],
        call.clone(),
    )
    .await;
    assert_eq!(wrong_name.status, StatusCode::BAD_REQUEST);
    assert!(wrong_name.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Mcp-Name"));
    let called = rpc(
        &app,
        &read_key,
        &[
            v,
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?Z2V0X2JpbGxpbmdfc3RhdHVz?="),
        ],
        call,
    )
    .await;
    assert_eq!(called.status, StatusCode::OK, "{:?}", called.body);
    let result = &called.body["result"];
    assert_eq!(result["resultType"], "complete");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "billing"
    );
    assert_eq!(result["isError"], false);
    assert_eq!(result["structuredContent"]["workspace_id"], workspace);
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text, result["structuredContent"]);
    let discover = rpc(
        &app,
        &read_key,
        &[v, ("mcp-method", "server/discover")],
        stateless("server/discover", json!({})),
    )
    .await;
    assert_eq!(
        discover.body["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(discover.body["result"]["cacheScope"], "public");
    // Unknown methods: 404 under 2026-07-28 (ping is a handshake method), 200 otherwise.
    let ping_stateless = rpc(
        &app,
        &read_key,
        &[v, ("mcp-method", "ping")],
        stateless("ping", json!({})),
    )
    .await;
    assert_eq!(ping_stateless.status, StatusCode::NOT_FOUND);
    assert_eq!(ping_stateless.body["error"]["code"], -32601);
    let unknown_method = rpc(
        &app,
        &read_key,
        &[],
        json!({"jsonrpc": "2.0", "id": 9, "method": "resources/list"}),
    )
    .await;
    assert_eq!(unknown_method.status, StatusCode::OK);
    assert_eq!(unknown_method.body["error"]["code"], -32601);
    // An unknown tool is a JSON-RPC error; a bad argument a tool error.
    let no_tool = rpc(
        &app,
        &read_key,
        &[],
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "nope"}}),
    )
    .await;
    assert_eq!(no_tool.body["error"]["code"], -32602);
    let bad = rpc(
        &app,
        &read_key,
        &[],
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "get_usage", "arguments": {"category": "colours"}}}),
    )
    .await;
    assert_eq!(bad.body["result"]["isError"], true);
    assert_eq!(
        bad.body["result"]["structuredContent"]["error"]["code"],
        "invalid_request"
    );
    // A user key must name the workspace.
    let unnamed = rpc(
        &app,
        &user_key,
        &[],
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
        "params": {"name": "get_billing_status"}}),
    )
    .await;
    assert_eq!(
        unnamed.body["result"]["structuredContent"]["error"]["code"],
        "invalid_request"
    );
    // Idempotency-Key is ignored: another body under the same key is answered afresh.
    for id in [10, 11] {
        let answer = rpc(
            &app,
            &read_key,
            &[("idempotency-key", "same")],
            json!({"jsonrpc": "2.0", "id": id, "method": "ping"}),
        )
        .await;
        assert_eq!(answer.body["id"], id);
    }
}
