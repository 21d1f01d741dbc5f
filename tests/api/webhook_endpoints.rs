//! The webhook-endpoint routes: create (secret shown once), list, delete, the delivery log's
//! access, and the rules on `url` and `events`.

use billing_core::config::Stage;
use billing_tests::app::{spawn_app, spawn_app_with, TestApp};
use http::{Method, StatusCode};
use serde_json::{json, Value};

fn endpoints(ws: &str) -> String {
    format!("/v1/workspaces/{ws}/webhook-endpoints")
}

async fn owner_workspace(app: &TestApp) -> (String, String) {
    let (_, _, key) = app.user_with_key("owner").await;
    let ws = app.create_workspace(&key, "Hooks").await;
    (key, ws)
}

#[tokio::test]
async fn creating_an_endpoint_shows_its_secret_once_and_a_replay_answers_null() {
    let app = spawn_app().await;
    let (key, ws) = owner_workspace(&app).await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["credits.low", "credits.low", "invoice.paid"], "description": "ops"});
    let created = app
        .call(Method::POST, endpoints(&ws))
        .key(&key)
        .header("idempotency-key", "make-hook-1")
        .json(body.clone())
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let secret = created.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    // Duplicates collapse; listed in the contract's order of types.
    assert_eq!(
        created.body["events"],
        json!(["invoice.paid", "credits.low"])
    );
    assert_eq!(created.body["status"], "enabled");
    assert_eq!(created.body["disabled_reason"], Value::Null);
    assert_eq!(created.body["workspace_id"], ws.as_str());
    assert!(created.body["id"].as_str().unwrap().starts_with("whe_"));

    let replay = app
        .call(Method::POST, endpoints(&ws))
        .key(&key)
        .header("idempotency-key", "make-hook-1")
        .json(body)
        .send()
        .await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.body["id"], created.body["id"]);
    assert_eq!(replay.body["secret"], Value::Null);

    let listed = app.get(&endpoints(&ws), &key).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert!(listed.body["data"][0].get("secret").is_none());
}

#[tokio::test]
async fn events_are_named_types_or_the_wildcard_and_duplicates_collapse() {
    let app = spawn_app().await;
    let (key, ws) = owner_workspace(&app).await;
    let make = |events: Value| {
        let app = &app;
        let key = &key;
        let ws = &ws;
        async move {
            app.post(
                &endpoints(ws),
                key,
                json!({"url": "http://127.0.0.1:9/hook", "events": events}),
            )
            .await
        }
    };
    let duplicated = make(json!(["credits.low", "credits.low"])).await;
    assert_eq!(duplicated.body["events"], json!(["credits.low"]));
    let all = make(json!(["*"])).await;
    assert_eq!(all.body["events"], json!(["*"]));
    let unknown = make(json!(["credits.purchased", "credits.stolen"])).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credits.stolen"),
        "{:?}",
        unknown.body
    );
    assert_eq!(make(json!([])).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_url_must_be_absolute_without_userinfo_or_fragment() {
    let app = spawn_app().await;
    let (key, ws) = owner_workspace(&app).await;
    for url in [
        "/relative",
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
        "https://example.com/x#frag",
    ] {
        let refused = app
            .post(&endpoints(&ws), &key, json!({"url": url, "events": ["*"]}))
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(refused.error_code(), "invalid_request");
    }
}

#[tokio::test]
async fn a_deployed_stage_refuses_http_and_private_hosts() {
    let app = spawn_app_with(|c| c.stage = Stage::Deployed("test".into())).await;
    let (key, ws) = owner_workspace(&app).await;
    let plain = app
        .post(
            &endpoints(&ws),
            &key,
            json!({"url": "http://example.com/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST);
    for url in [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.8/hook",
        "https://[::ffff:192.168.0.1]/hook",
        "https://[64:ff9b::a9fe:a9fe]/hook",
    ] {
        let private = app
            .post(&endpoints(&ws), &key, json!({"url": url, "events": ["*"]}))
            .await;
        assert_eq!(private.status, StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(
            private.body["error"]["message"], "url resolves to a private address",
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_workspace_has_at_most_twenty_endpoints() {
    let app = spawn_app().await;
    let (key, ws) = owner_workspace(&app).await;
    for _ in 0..20 {
        let created = app
            .post(
                &endpoints(&ws),
                &key,
                json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let one_more = app
        .post(
            &endpoints(&ws),
            &key,
            json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(one_more.status, StatusCode::CONFLICT);
    assert_eq!(one_more.error_code(), "conflict");
    // Deleting one makes room again.
    let first = app.get(&endpoints(&ws), &key).await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = app
        .delete(&format!("{}/{first}", endpoints(&ws)), &key)
        .await;
    assert_eq!(deleted.body, json!({"id": first, "deleted": true}));
    let again = app
        .post(
            &endpoints(&ws),
            &key,
            json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
}

#[tokio::test]
async fn endpoints_list_newest_first_and_paginate() {
    let app = spawn_app().await;
    let (key, ws) = owner_workspace(&app).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let created = app
            .post(
                &endpoints(&ws),
                &key,
                json!({"url": format!("http://127.0.0.1:9/{i}"), "events": ["*"]}),
            )
            .await;
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let first = app.get(&format!("{}?limit=2", endpoints(&ws)), &key).await;
    assert_eq!(first.body["has_more"], true);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!("{}?limit=2&cursor={cursor}", endpoints(&ws)), &key)
        .await;
    let listed: Vec<&str> = first.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["data"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids);
}

#[tokio::test]
async fn read_keys_list_but_do_not_create_and_other_tenants_see_nothing() {
    let app = spawn_app().await;
    let (key, ws) = owner_workspace(&app).await;
    let read = app
        .create_key(json!({"type": "workspace", "id": ws, "role": "read"}))
        .await;
    let admin = app
        .create_key(json!({"type": "workspace", "id": ws, "role": "admin"}))
        .await;
    let by_admin = app
        .post(
            &endpoints(&ws),
            &admin,
            json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(by_admin.status, StatusCode::CREATED);
    let id = by_admin.body["id"].as_str().unwrap();
    assert_eq!(app.get(&endpoints(&ws), &read).await.status, StatusCode::OK);
    let deliveries = format!("{}/{id}/deliveries", endpoints(&ws));
    assert_eq!(app.get(&deliveries, &read).await.status, StatusCode::OK);
    let by_read = app
        .post(
            &endpoints(&ws),
            &read,
            json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(by_read.status, StatusCode::FORBIDDEN);

    let (_, _, stranger) = app.user_with_key("stranger").await;
    assert_eq!(
        app.get(&endpoints(&ws), &stranger).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("{}/{id}", endpoints(&ws)), &stranger)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let deleted = app.delete(&format!("{}/{id}", endpoints(&ws)), &key).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let again = app.delete(&format!("{}/{id}", endpoints(&ws)), &key).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&deliveries, &key).await.status,
        StatusCode::NOT_FOUND
    );
}
