use billing_tests::app::spawn_app;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_keys_are_401() {
    let app = spawn_app().await;
    let (_, account, key) = app.user_with_key("lou").await;
    let path = format!("/v1/billing-accounts/{account}");
    let no_key = app.call(Method::GET, &path).send().await;
    let malformed = app
        .call(Method::GET, &path)
        .header("authorization", "Token abc")
        .send()
        .await;
    let unknown = app
        .get(&path, "bk_thisKeyWasNeverIssued0000000000000000000")
        .await;
    let not_ours = app.get(&path, "sk_live_something").await;
    for response in [&no_key, &malformed, &unknown, &not_ours] {
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
        assert_eq!(response.error_code(), "unauthorized");
    }
    let keys = app.get("/v1/api-keys", &key).await;
    let key_id = keys.body["data"][0]["id"].as_str().unwrap();
    app.delete(&format!("/v1/api-keys/{key_id}"), &app.service_key)
        .await;
    assert_eq!(app.get(&path, &key).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_users_account_workspace_and_key_answer_404() {
    let app = spawn_app().await;
    let (_, max_account, max) = app.user_with_key("max").await;
    let (_, _, nia) = app.user_with_key("nia").await;
    let max_workspace = app.create_workspace(&max, "Private").await;
    let max_key_id = app.get("/v1/api-keys", &max).await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        format!("/v1/billing-accounts/{max_account}"),
        format!("/v1/billing-accounts/{max_account}/balance"),
        format!("/v1/billing-accounts/{max_account}/transactions"),
        format!("/v1/workspaces/{max_workspace}"),
        format!("/v1/workspaces/{max_workspace}/billing/accounts"),
    ] {
        let response = app.get(&path, &nia).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.error_code(), "not_found");
    }
    let patch = app
        .patch(
            &format!("/v1/billing-accounts/{max_account}"),
            &nia,
            json!({"name": "mine"}),
        )
        .await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    let link = app
        .post(
            &format!("/v1/workspaces/{max_workspace}/billing/accounts"),
            &nia,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(link.status, StatusCode::NOT_FOUND);
    let revoke = app
        .delete(&format!("/v1/api-keys/{max_key_id}"), &nia)
        .await;
    assert_eq!(revoke.status, StatusCode::NOT_FOUND);
    // Max's key still works: nothing was changed by the refused calls.
    assert_eq!(
        app.get(&format!("/v1/billing-accounts/{max_account}"), &max)
            .await
            .body["name"],
        "Default"
    );
}

#[tokio::test]
async fn a_read_key_may_read_but_any_post_is_403() {
    let app = spawn_app().await;
    let (_, _, key) = app.user_with_key("ola").await;
    let workspace = app.create_workspace(&key, "Observed").await;
    let read = app
        .create_key(json!({"type": "workspace", "id": workspace, "role": "read"}))
        .await;
    assert_eq!(
        app.get(&format!("/v1/workspaces/{workspace}"), &read)
            .await
            .status,
        StatusCode::OK
    );
    for (path, body) in [
        (
            format!("/v1/workspaces/{workspace}/billing/accounts"),
            json!({"name": "x"}),
        ),
        (
            "/v1/api-keys".to_owned(),
            json!({"owner": {"type": "workspace", "id": workspace, "role": "read"}}),
        ),
        ("/v1/workspaces".to_owned(), json!({"name": "y"})),
    ] {
        let refused = app.post(&path, &read, body).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(refused.error_code(), "forbidden");
    }
    let accounts = app
        .get(
            &format!("/v1/workspaces/{workspace}/billing/accounts"),
            &read,
        )
        .await;
    assert_eq!(
        accounts.body["data"].as_array().unwrap().len(),
        1,
        "the refused POST created nothing"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_errors_repeat_it() {
    let app = spawn_app().await;
    let ok = app.call(Method::GET, "/v1/health").send().await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body, json!({"status": "ok"}));
    assert!(ok.headers["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let refused = app.call(Method::GET, "/v1/billing-accounts").send().await;
    assert_eq!(
        refused.body["error"]["request_id"].as_str().unwrap(),
        refused.headers["x-request-id"].to_str().unwrap()
    );
    let missing = app.call(Method::GET, "/v1/nowhere").send().await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_problem_and_change_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            b"{\"external_id\": \"x\", \"admin\": true}".to_vec(),
            "admin",
        ),
        (b"{\"external_id\": 42}".to_vec(), "external_id"),
        (b"{\"email\": \"a@b.co\"}".to_vec(), "external_id"),
        (b"{\"external_id\": ".to_vec(), "JSON"),
        (b"[1, 2]".to_vec(), "invalid"),
        (
            format!("{{\"external_id\": \"{}\"}}", "x".repeat(70 * 1024)).into_bytes(),
            "limit",
        ),
        (b"{\"external_id\": \"\"}".to_vec(), "external_id"),
        (
            b"{\"external_id\": \"ok\", \"email\": \"nope\"}".to_vec(),
            "email",
        ),
    ];
    for (body, mention) in cases {
        let refused = app
            .call(Method::POST, "/v1/users")
            .key(&app.service_key)
            .raw_body(body.clone())
            .send()
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert_eq!(refused.error_code(), "invalid_request");
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(mention),
            "{message} should mention {mention}"
        );
    }
    // None of those created a user.
    let accounts = app
        .get(
            "/v1/billing-accounts?owner_user_id=usr_00000000000000000000000000",
            &app.service_key,
        )
        .await;
    assert_eq!(accounts.status, StatusCode::OK);
    let ok = app
        .post("/v1/users", &app.service_key, json!({"external_id": "ok"}))
        .await;
    assert_eq!(
        ok.status,
        StatusCode::CREATED,
        "the external id `ok` was never taken"
    );
}

#[tokio::test]
async fn unknown_query_parameters_are_400_on_every_route() {
    let app = spawn_app().await;
    let (_, account, key) = app.user_with_key("quincy").await;
    for path in [
        format!("/v1/billing-accounts/{account}?expand=owner"),
        format!("/v1/billing-accounts/{account}/balance?currency=eur"),
        "/v1/pricing?tier=basic".to_owned(),
    ] {
        let refused = app.get(&path, &key).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{path}");
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("unknown query parameter"),
            "{path}: {message}"
        );
    }
}

#[tokio::test]
async fn a_read_key_is_refused_every_route_that_writes() {
    use billing_core::routes::{Access, ROUTES};
    let app = spawn_app().await;
    let (_, account, key) = app.user_with_key("pia").await;
    let workspace = app.create_workspace(&key, "Watched").await;
    let read = app
        .create_key(json!({"type": "workspace", "id": workspace, "role": "read"}))
        .await;
    let key_id = app.get("/v1/api-keys", &key).await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run_id = "run_00000000000000000000000000";
    let writes = ROUTES.iter().filter(|route| {
        route.method != Method::GET
            // Public routes take no key; `POST /v1/mcp` is for read keys too.
            && route.access == Access::Key
    });
    let mut checked = 0;
    for route in writes {
        let path = route
            .path
            .replace("{workspaceId}", &workspace)
            .replace("{billingAccountId}", &account)
            .replace("{keyId}", &key_id)
            .replace("{runId}", run_id)
            .replace("{endpointId}", "whe_00000000000000000000000000");
        assert!(!path.contains('{'), "{}: fill in {path}", route.name);
        let refused = app
            .call(route.method.clone(), &path)
            .key(&read)
            .json(json!({}))
            .send()
            .await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{} {} {}",
            route.method,
            route.path,
            route.name
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} routes write?");
    // Nothing the read key tried took effect: the user's key still works, the account is as it was.
    assert_eq!(
        app.get(&format!("/v1/billing-accounts/{account}"), &key)
            .await
            .body["name"],
        "Default"
    );
}

/// Every integer any request body may carry, by its path in the OpenAPI document.
fn request_integers(
    document: &serde_json::Value,
    schema: &serde_json::Value,
    at: String,
    found: &mut Vec<(String, serde_json::Value)>,
) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return request_integers(
            document,
            &document["components"]["schemas"][name],
            at,
            found,
        );
    }
    let is_integer = schema["type"] == "integer"
        || schema["type"]
            .as_array()
            .is_some_and(|types| types.iter().any(|t| t == "integer"));
    if is_integer {
        found.push((at.clone(), schema.clone()));
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        request_integers(document, property, format!("{at}.{name}"), found);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for variant in schema[key].as_array().into_iter().flatten() {
            request_integers(document, variant, at.clone(), found);
        }
    }
    if schema["items"].is_object() {
        request_integers(document, &schema["items"], format!("{at}[]"), found);
    }
}

#[test]
fn every_integer_a_request_may_carry_has_a_stated_range() {
    let document = billing_core::openapi::document();
    let mut integers = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let body = &operation["requestBody"]["content"]["application/json"]["schema"];
            if body.is_object() {
                request_integers(document, body, format!("{method} {path}"), &mut integers);
            }
        }
    }
    assert!(integers.len() >= 15, "{integers:?}");
    for (at, schema) in &integers {
        assert!(
            schema["minimum"].is_i64() && schema["maximum"].is_i64(),
            "{at} has no stated range: {schema}"
        );
    }
    let quantity = integers
        .iter()
        .find(|(at, _)| at.ends_with("usage-events.quantity"))
        .map(|(_, schema)| schema)
        .unwrap();
    assert_eq!(
        (&quantity["minimum"], &quantity["maximum"]),
        (&json!(1), &json!(1_000_000_000_000_i64))
    );
}

/// Every route behind a key, with its path filled by these ids.
fn keyed_routes_filled(
    workspace: &str,
    account: &str,
    key_id: &str,
    run: &str,
) -> Vec<(&'static billing_core::routes::Route, String)> {
    use billing_core::routes::{Access, ROUTES};
    ROUTES
        .iter()
        .copied()
        .filter(|route| route.access == Access::Key)
        .map(|route| {
            let path = route
                .path
                .replace("{workspaceId}", workspace)
                .replace("{billingAccountId}", account)
                .replace("{keyId}", key_id)
                .replace("{runId}", run)
                // No endpoint is made: its 404 reads as any other id that does not exist.
                .replace("{endpointId}", "whe_00000000000000000000000000");
            assert!(!path.contains('{'), "{}: fill in {path}", route.name);
            (route, path)
        })
        .collect()
}

#[tokio::test]
async fn every_keyed_route_answers_401_to_no_key_a_bad_key_and_a_revoked_key() {
    let app = spawn_app().await;
    let (_, account, key) = app.user_with_key("ros").await;
    let workspace = app.create_workspace(&key, "Locked").await;
    let revoked = app
        .create_key(json!({"type": "workspace", "id": workspace, "role": "admin"}))
        .await;
    let revoked_id = app
        .get(
            &format!("/v1/api-keys?workspace_id={workspace}"),
            &app.service_key,
        )
        .await
        .body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = app
        .delete(&format!("/v1/api-keys/{revoked_id}"), &app.service_key)
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    let run = "run_00000000000000000000000000";
    let routes = keyed_routes_filled(&workspace, &account, &revoked_id, run);
    assert!(routes.len() >= 45, "{} keyed routes?", routes.len());
    for (route, path) in routes {
        let body =
            (route.method != Method::GET && route.method != Method::DELETE).then(|| json!({}));
        for (what, authorization) in [
            ("no key", None),
            ("a malformed key", Some("Token abc".to_owned())),
            (
                "an unknown key",
                Some("Bearer bk_thisKeyWasNeverIssued0000000000000000000".to_owned()),
            ),
            ("a revoked key", Some(format!("Bearer {revoked}"))),
        ] {
            let mut call = app.call(route.method.clone(), &path);
            if let Some(authorization) = &authorization {
                call = call.header("authorization", authorization);
            }
            if let Some(body) = &body {
                call = call.json(body.clone());
            }
            let response = call.send().await;
            assert_eq!(
                (response.status, response.error_code()),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{} {} with {what}",
                route.method,
                route.path
            );
        }
    }
}

#[tokio::test]
async fn another_tenants_ids_answer_on_every_route_as_ids_that_do_not_exist() {
    let app = spawn_app().await;
    let (_, account, owner) = app.user_with_key("sol").await;
    let workspace = app.create_workspace(&owner, "Theirs").await;
    let key_id = app.get("/v1/api-keys", &owner).await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = app
        .post(
            &format!("/v1/workspaces/{workspace}/runs"),
            &owner,
            json!({"agent_id": "probe", "agent_tier": "basic", "max_cost_cents": 10}),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{:?}", run.body);
    let run = run.body["run_id"].as_str().unwrap().to_owned();
    let (_, _, stranger) = app.user_with_key("tam").await;
    let theirs = keyed_routes_filled(&workspace, &account, &key_id, &run);
    let nobodys = keyed_routes_filled(
        "ws_00000000000000000000000000",
        "ba_00000000000000000000000000",
        "key_00000000000000000000000000",
        "run_00000000000000000000000000",
    );
    let mut probed = 0;
    for ((route, real), (_, missing)) in theirs.into_iter().zip(nobodys) {
        if real == missing {
            continue; // no id in the path
        }
        let body =
            (route.method != Method::GET && route.method != Method::DELETE).then(|| json!({}));
        let send = |path: String| {
            let mut call = app.call(route.method.clone(), path).key(&stranger);
            if let Some(body) = &body {
                call = call.json(body.clone());
            }
            call.send()
        };
        let (real, missing) = (send(real).await, send(missing).await);
        assert!(
            real.status.is_client_error(),
            "{} {}: {}",
            route.method,
            route.path,
            real.status
        );
        // The same answer as for an id nobody has: an id cannot be probed.
        assert_eq!(
            (real.status, real.error_code()),
            (missing.status, missing.error_code()),
            "{} {}",
            route.method,
            route.path
        );
        probed += 1;
    }
    assert!(probed >= 40, "only {probed} routes take an id?");
    // Nothing the stranger tried took effect.
    let balance = app
        .get(&format!("/v1/billing-accounts/{account}/balance"), &owner)
        .await;
    assert_eq!(balance.body["held_cents"], 10);
    assert_eq!(
        app.get(&format!("/v1/billing-accounts/{account}"), &owner)
            .await
            .body["name"],
        "Default"
    );
}
