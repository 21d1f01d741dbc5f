use billing_tests::app::spawn_app;
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_workspace_binds_the_owners_default_account_and_starts_on_trial() {
    let app = spawn_app().await;
    let (user, account, key) = app.user_with_key("fay").await;
    let created = app
        .post("/v1/workspaces", &key, json!({"name": "Agents"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["owner_user_id"], user.as_str());
    assert_eq!(created.body["default_billing_account_id"], account.as_str());
    assert_eq!(created.body["plan_status"], "trial");
    let id = created.body["id"].as_str().unwrap();
    assert!(id.starts_with("ws_"));
    assert_eq!(
        app.get(&format!("/v1/workspaces/{id}"), &key).await.body,
        created.body
    );

    let linked = app
        .get(&format!("/v1/workspaces/{id}/billing/accounts"), &key)
        .await;
    let data = linked.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], account.as_str());
    assert_eq!(data[0]["is_default"], true);
    assert_eq!(data[0]["balance_cents"], 1000);
}

#[tokio::test]
async fn the_service_creates_workspaces_for_a_named_owner_with_a_given_account() {
    let app = spawn_app().await;
    let (user, _, key) = app.user_with_key("gus").await;
    let first = app.create_workspace(&key, "First").await;
    let extra = app
        .post(
            &format!("/v1/workspaces/{first}/billing/accounts"),
            &key,
            json!({"name": "Side"}),
        )
        .await;
    let extra_id = extra.body["id"].as_str().unwrap();
    let created = app
        .post(
            "/v1/workspaces",
            &app.service_key,
            json!({"name": "Second", "owner_user_id": user, "billing_account_id": extra_id}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["default_billing_account_id"], extra_id);

    let missing_owner = app
        .post(
            "/v1/workspaces",
            &app.service_key,
            json!({"name": "Orphan"}),
        )
        .await;
    assert_eq!(missing_owner.error_code(), "invalid_request");
}

#[tokio::test]
async fn an_account_of_someone_else_cannot_be_bound_or_linked() {
    let app = spawn_app().await;
    let (_, _, hal) = app.user_with_key("hal").await;
    let (_, ida_account, _) = app.user_with_key("ida").await;
    let bound = app
        .post(
            "/v1/workspaces",
            &hal,
            json!({"name": "Heist", "billing_account_id": ida_account}),
        )
        .await;
    assert_eq!(bound.status, StatusCode::NOT_FOUND);

    let workspace = app.create_workspace(&hal, "Honest").await;
    let linked = app
        .post(
            &format!("/v1/workspaces/{workspace}/billing/accounts/link"),
            &hal,
            json!({"billing_account_id": ida_account}),
        )
        .await;
    assert_eq!(linked.status, StatusCode::NOT_FOUND);
    let accounts = app
        .get(
            &format!("/v1/workspaces/{workspace}/billing/accounts"),
            &hal,
        )
        .await;
    assert_eq!(accounts.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn accounts_link_become_default_and_unlink_but_the_default_stays() {
    let app = spawn_app().await;
    let (_, default_account, key) = app.user_with_key("jo").await;
    let workspace = app.create_workspace(&key, "Main").await;
    let other = app.create_workspace(&key, "Other").await;
    let base = format!("/v1/workspaces/{workspace}/billing/accounts");

    // An account created through another workspace, then linked here: twice is a no-op.
    let second = app
        .post(
            &format!("/v1/workspaces/{other}/billing/accounts"),
            &key,
            json!({"name": "Second"}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body["is_default"], false);
    assert_eq!(second.body["balance_cents"], 0);
    let second_id = second.body["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let linked = app
            .post(
                &format!("{base}/link"),
                &key,
                json!({"billing_account_id": second_id}),
            )
            .await;
        assert_eq!(linked.status, StatusCode::OK, "{:?}", linked.body);
        assert_eq!(linked.body["is_default"], false);
    }
    assert_eq!(
        app.get(&base, &key).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let refused = app.delete(&format!("{base}/{default_account}"), &key).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error_code(), "default_account_unlink");

    let switched = app
        .post(&format!("{base}/{second_id}/default"), &key, json!({}))
        .await;
    assert_eq!(switched.status, StatusCode::OK);
    assert_eq!(
        switched.body["default_billing_account_id"],
        second_id.as_str()
    );
    let fetched = app.get(&format!("/v1/workspaces/{workspace}"), &key).await;
    assert_eq!(
        fetched.body["default_billing_account_id"],
        second_id.as_str()
    );

    let unlinked = app.delete(&format!("{base}/{default_account}"), &key).await;
    assert_eq!(unlinked.status, StatusCode::OK, "{:?}", unlinked.body);
    let remaining = app.get(&base, &key).await;
    let data = remaining.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], second_id.as_str());
    assert_eq!(data[0]["is_default"], true);

    let again = app.delete(&format!("{base}/{default_account}"), &key).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let not_linked = app
        .post(
            &format!("{base}/{default_account}/default"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(not_linked.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_workspace_key_sees_only_its_workspace_and_linked_accounts() {
    let app = spawn_app().await;
    let (_, account, key) = app.user_with_key("kim").await;
    let workspace = app.create_workspace(&key, "Scoped").await;
    let other = app.create_workspace(&key, "Elsewhere").await;
    let admin = app
        .create_key(json!({"type": "workspace", "id": workspace, "role": "admin"}))
        .await;
    assert_eq!(
        app.get(&format!("/v1/workspaces/{other}"), &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/v1/billing-accounts/{account}"), &admin)
            .await
            .status,
        StatusCode::OK
    );
    let accounts = app.get("/v1/billing-accounts", &admin).await;
    assert_eq!(accounts.body["data"].as_array().unwrap().len(), 1);
    let patch = app
        .patch(
            &format!("/v1/billing-accounts/{account}"),
            &admin,
            json!({"name": "Mine now"}),
        )
        .await;
    assert_eq!(patch.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_workspace_key_cannot_move_the_workspaces_spending_authority() {
    let app = spawn_app().await;
    let (_, default_account, key) = app.user_with_key("lee").await;
    let workspace = app.create_workspace(&key, "Guarded").await;
    let other = app.create_workspace(&key, "Elsewhere").await;
    // Another account of the same owner, known by id but not linked here.
    let reserve = app
        .post(
            &format!("/v1/workspaces/{other}/billing/accounts"),
            &key,
            json!({"name": "Reserve"}),
        )
        .await;
    assert_eq!(reserve.status, StatusCode::CREATED);
    let reserve = reserve.body["id"].as_str().unwrap().to_owned();
    let admin = app
        .create_key(json!({"type": "workspace", "id": workspace, "role": "admin"}))
        .await;
    let base = format!("/v1/workspaces/{workspace}/billing/accounts");
    let refused = [
        app.post(&base, &admin, json!({"name": "Mine"})).await,
        app.post(
            &format!("{base}/link"),
            &admin,
            json!({"billing_account_id": reserve}),
        )
        .await,
        app.post(
            &format!("{base}/{default_account}/default"),
            &admin,
            json!({}),
        )
        .await,
        app.delete(&format!("{base}/{default_account}"), &admin)
            .await,
    ];
    for response in &refused {
        assert_eq!(
            (response.status, response.error_code()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{:?}",
            response.body
        );
    }
    let linked = app.get(&base, &key).await;
    let data = linked.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "nothing was created or linked");
    assert_eq!(data[0]["id"], default_account.as_str());
    // The owner may do all of it.
    let by_owner = app
        .post(
            &format!("{base}/link"),
            &key,
            json!({"billing_account_id": reserve}),
        )
        .await;
    assert_eq!(by_owner.status, StatusCode::OK, "{:?}", by_owner.body);
    let made_default = app
        .post(&format!("{base}/{reserve}/default"), &key, json!({}))
        .await;
    assert_eq!(made_default.status, StatusCode::OK);
    // Once the owner linked it, the workspace key still cannot choose it or drop the other.
    let switch_back = app
        .post(
            &format!("{base}/{default_account}/default"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(switch_back.status, StatusCode::FORBIDDEN);
}
