use billing_tests::app::spawn_app;
use futures::future::join_all;
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_new_user_gets_a_default_account_holding_the_introductory_grant() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/v1/users",
            &app.service_key,
            json!({"external_id": "alice", "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let user = &created.body["user"];
    let account = &created.body["default_billing_account"];
    assert!(user["id"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(account["owner_user_id"], user["id"]);
    assert_eq!(account["is_user_default"], true);
    assert_eq!(account["balance_cents"], 1000);
    assert_eq!(account["available_cents"], 1000);
    assert_eq!(account["currency"], "usd");

    let path = format!(
        "/v1/billing-accounts/{}/transactions",
        account["id"].as_str().unwrap()
    );
    let ledger = app.get(&path, &app.service_key).await;
    assert_eq!(ledger.status, StatusCode::OK);
    let entries = ledger.body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["type"], "grant");
    assert_eq!(entries[0]["amount_cents"], 1000);
    assert_eq!(entries[0]["balance_after_cents"], 1000);
    assert_eq!(entries[0]["description"], "introductory credit");
}

#[tokio::test]
async fn the_same_external_id_returns_the_existing_user_and_grants_nothing_twice() {
    let app = spawn_app().await;
    let first = app
        .post("/v1/users", &app.service_key, json!({"external_id": "bob"}))
        .await;
    let again = app
        .post("/v1/users", &app.service_key, json!({"external_id": "bob"}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(first.body["user"]["id"], again.body["user"]["id"]);
    assert_eq!(again.body["default_billing_account"]["balance_cents"], 1000);
}

#[tokio::test]
async fn concurrent_creations_of_one_external_id_make_one_user_and_one_grant() {
    let app = spawn_app().await;
    let attempts = join_all((0..12).map(|_| {
        app.post(
            "/v1/users",
            &app.service_key,
            json!({"external_id": "carol"}),
        )
    }))
    .await;
    let created = attempts
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{attempts:?}");
    assert!(attempts.iter().all(|r| r.status.is_success()));
    let user_ids: std::collections::HashSet<_> = attempts
        .iter()
        .map(|r| r.body["user"]["id"].clone())
        .collect();
    assert_eq!(user_ids.len(), 1);

    let user = attempts[0].body["user"]["id"].as_str().unwrap();
    let accounts = app
        .get(
            &format!("/v1/billing-accounts?owner_user_id={user}"),
            &app.service_key,
        )
        .await;
    assert_eq!(accounts.body["data"].as_array().unwrap().len(), 1);
    let account = accounts.body["data"][0]["id"].as_str().unwrap();
    let ledger = app
        .get(
            &format!("/v1/billing-accounts/{account}/transactions"),
            &app.service_key,
        )
        .await;
    assert_eq!(ledger.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_introductory_credit_is_configurable() {
    let app = billing_tests::app::spawn_app_with(|c| c.intro_credit_cents = 250).await;
    let created = app
        .post("/v1/users", &app.service_key, json!({"external_id": "dan"}))
        .await;
    assert_eq!(
        created.body["default_billing_account"]["balance_cents"],
        250
    );
}

#[tokio::test]
async fn only_the_service_creates_users() {
    let app = spawn_app().await;
    let (_, _, key) = app.user_with_key("erin").await;
    let refused = app
        .post("/v1/users", &key, json!({"external_id": "mallory"}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.error_code(), "forbidden");
}

#[tokio::test]
async fn a_key_is_shown_once_and_listed_without_its_plaintext() {
    let app = spawn_app().await;
    let (user, _) = app.create_user("frank").await;
    let created = app
        .post(
            "/v1/api-keys",
            &app.service_key,
            json!({"owner": {"type": "user", "id": user}, "name": "laptop"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let key = created.body["key"].as_str().unwrap();
    assert!(key.starts_with("bk_"));
    assert!(key.starts_with(created.body["prefix"].as_str().unwrap()));
    assert!(created.body["id"].as_str().unwrap().starts_with("key_"));

    let listed = app.get("/v1/api-keys", key).await;
    assert_eq!(listed.status, StatusCode::OK);
    let keys = listed.body["data"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "laptop");
    assert!(
        !listed.body.to_string().contains(key),
        "plaintext leaked into the list"
    );
}

#[tokio::test]
async fn a_revoked_key_answers_401_from_then_on() {
    let app = spawn_app().await;
    let (_, account, key) = app.user_with_key("grace").await;
    let path = format!("/v1/billing-accounts/{account}");
    assert_eq!(app.get(&path, &key).await.status, StatusCode::OK);
    let listed = app.get("/v1/api-keys", &key).await;
    let key_id = listed.body["data"][0]["id"].as_str().unwrap();

    let revoked = app.delete(&format!("/v1/api-keys/{key_id}"), &key).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    let after = app.get(&path, &key).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.error_code(), "unauthorized");
}

#[tokio::test]
async fn a_workspace_admin_mints_read_keys_but_not_admin_keys() {
    let app = spawn_app().await;
    let (_, _, user_key) = app.user_with_key("heidi").await;
    let workspace = app.create_workspace(&user_key, "Research").await;
    let admin = app
        .create_key(json!({"type": "workspace", "id": workspace, "role": "admin"}))
        .await;
    let read = app
        .post(
            "/v1/api-keys",
            &admin,
            json!({"owner": {"type": "workspace", "id": workspace, "role": "read"}}),
        )
        .await;
    assert_eq!(read.status, StatusCode::CREATED);
    let another_admin = app
        .post(
            "/v1/api-keys",
            &admin,
            json!({"owner": {"type": "workspace", "id": workspace, "role": "admin"}}),
        )
        .await;
    assert_eq!(another_admin.status, StatusCode::FORBIDDEN);

    let read_key = read.body["key"].as_str().unwrap();
    let workspace_view = app
        .get(&format!("/v1/workspaces/{workspace}"), read_key)
        .await;
    assert_eq!(workspace_view.status, StatusCode::OK);
    let keys = app.get("/v1/api-keys", &admin).await;
    assert_eq!(keys.body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_user_mints_keys_for_its_workspaces_but_not_for_others() {
    let app = spawn_app().await;
    let (_, _, ivan) = app.user_with_key("ivan").await;
    let (judy_id, _, judy) = app.user_with_key("judy").await;
    let ivans_workspace = app.create_workspace(&ivan, "Ivan's").await;
    let own = app
        .post(
            "/v1/api-keys",
            &ivan,
            json!({"owner": {"type": "workspace", "id": ivans_workspace, "role": "admin"}}),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED);
    for owner in [
        json!({"type": "workspace", "id": ivans_workspace, "role": "read"}),
        json!({"type": "user", "id": "usr_nosuchuser00000000000"}),
    ] {
        let refused = app
            .post("/v1/api-keys", &judy, json!({"owner": owner}))
            .await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{:?}", refused.body);
    }
    let for_judy = app
        .post(
            "/v1/api-keys",
            &ivan,
            json!({"owner": {"type": "user", "id": judy_id}}),
        )
        .await;
    assert_eq!(for_judy.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_replayed_key_creation_answers_the_same_key_with_its_plaintext_null() {
    let app = spawn_app().await;
    let (user, _) = app.create_user("rhea").await;
    let body = json!({"owner": {"type": "user", "id": user}, "name": "ci"});
    let send = || {
        app.call(http::Method::POST, "/v1/api-keys")
            .key(&app.service_key)
            .header("idempotency-key", "mint-ci-key")
            .json(body.clone())
            .send()
    };
    let first = send().await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let plaintext = first.body["key"].as_str().unwrap().to_owned();
    assert!(plaintext.starts_with("bk_"));

    let replay = send().await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["key"], json!(null));
    for field in ["id", "prefix", "owner", "name", "created_at"] {
        assert_eq!(replay.body[field], first.body[field], "{field}");
    }
    // What is kept at rest for replays never held the plaintext.
    let kept = app
        .app
        .store
        .claim_idempotency_key(
            &billing_core::domain::api_key::Principal::Service.scope(),
            "mint-ci-key",
            &billing_core::http::idempotency::fingerprint(
                "POST",
                "/v1/api-keys",
                body.to_string().as_bytes(),
                None,
            ),
            "a-later-request",
            app.clock_now(),
            &billing_core::store::idempotency::Lifetimes {
                lease_secs: 60,
                retain_secs: 3600,
            },
        )
        .await
        .unwrap();
    match kept {
        billing_core::store::idempotency::Claim::Replay { body, .. } => {
            assert!(!body.contains(&plaintext), "{body}")
        }
        other => panic!("expected the stored response, got {other:?}"),
    }
    // The key itself still works: only its copy was blanked.
    assert_eq!(
        app.get("/v1/billing-accounts", &plaintext).await.status,
        StatusCode::OK
    );
}
