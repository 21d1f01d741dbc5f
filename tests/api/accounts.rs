use billing_tests::app::spawn_app;
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn an_owner_reads_its_account_and_balance() {
    let app = spawn_app().await;
    let (user, account, key) = app.user_with_key("amy").await;
    let fetched = app
        .get(&format!("/v1/billing-accounts/{account}"), &key)
        .await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body["owner_user_id"], user.as_str());
    assert_eq!(fetched.body["has_payment_method"], false);
    assert_eq!(fetched.body["settings"]["hard_cap_cents"], json!(null));
    assert_eq!(fetched.body["settings"]["auto_recharge"]["enabled"], false);

    let balance = app
        .get(&format!("/v1/billing-accounts/{account}/balance"), &key)
        .await;
    assert_eq!(
        balance.body,
        json!({"billing_account_id": account, "balance_cents": 1000, "held_cents": 0, "available_cents": 1000, "currency": "usd"})
    );

    let mine = app.get("/v1/billing-accounts", &key).await;
    assert_eq!(mine.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(mine.body["has_more"], false);
    assert_eq!(mine.body["next_cursor"], json!(null));
}

#[tokio::test]
async fn settings_change_and_are_validated_as_a_whole() {
    let app = spawn_app().await;
    let (_, account, key) = app.user_with_key("ben").await;
    let path = format!("/v1/billing-accounts/{account}");
    let changed = app
        .patch(&path, &key, json!({
            "name": "Ops",
            "billing_email": "ops@example.com",
            "soft_cap_cents": 500,
            "hard_cap_cents": 800,
            "auto_recharge": {"enabled": true, "threshold_cents": 100, "amount_cents": 1500, "monthly_limit_cents": 6000}
        }))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(changed.body["name"], "Ops");
    assert_eq!(changed.body["settings"]["hard_cap_cents"], 800);
    assert_eq!(
        changed.body["settings"]["auto_recharge"]["amount_cents"],
        1500
    );

    for (bad, field) in [
        (json!({"soft_cap_cents": 900}), "soft_cap_cents"),
        (json!({"hard_cap_cents": 100}), "hard_cap_cents"),
        (
            json!({"auto_recharge": {"amount_cents": 0}}),
            "amount_cents",
        ),
        (
            json!({"auto_recharge": {"threshold_cents": -5}}),
            "threshold_cents",
        ),
        (json!({"billing_email": "not-an-email"}), "billing_email"),
        (json!({"soft_cap_cents": "many"}), "soft_cap_cents"),
        (json!({"overdraft": true}), "overdraft"),
        (json!({"auto_recharge": {"enabld": true}}), "enabld"),
    ] {
        let refused = app.patch(&path, &key, bad.clone()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(refused.error_code(), "invalid_request");
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{bad}: {message}");
    }

    let unchanged = app.get(&path, &key).await;
    assert_eq!(unchanged.body["settings"], changed.body["settings"]);

    let cleared = app
        .patch(
            &path,
            &key,
            json!({"soft_cap_cents": null, "hard_cap_cents": null}),
        )
        .await;
    assert_eq!(cleared.body["settings"]["hard_cap_cents"], json!(null));
    assert_eq!(cleared.body["settings"]["billing_email"], "ops@example.com");
}

#[tokio::test]
async fn concurrent_patches_of_different_fields_both_land() {
    let app = spawn_app().await;
    let (_, account, key) = app.user_with_key("cat").await;
    let path = format!("/v1/billing-accounts/{account}");
    let (a, b) = tokio::join!(
        app.patch(&path, &key, json!({"name": "Renamed"})),
        app.patch(&path, &key, json!({"hard_cap_cents": 700})),
    );
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    let after = app.get(&path, &key).await;
    assert_eq!(after.body["name"], "Renamed");
    assert_eq!(after.body["settings"]["hard_cap_cents"], 700);
}

#[tokio::test]
async fn lists_page_with_cursors_that_cannot_be_forged_or_moved() {
    let app = spawn_app().await;
    let (user, _, key) = app.user_with_key("dora").await;
    let workspace = app.create_workspace(&key, "Lab").await;
    for i in 0..4 {
        let made = app
            .post(
                &format!("/v1/workspaces/{workspace}/billing/accounts"),
                &key,
                json!({"name": format!("Extra {i}")}),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/billing-accounts?limit=2&cursor={c}"),
            None => "/v1/billing-accounts?limit=2".to_owned(),
        };
        let page = app.get(&path, &key).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        for account in page.body["data"].as_array().unwrap() {
            seen.push(account["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(page.body["has_more"], true);
                cursor = Some(next.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut newest_first = seen.clone();
    newest_first.sort();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "lists are newest first");

    let first = app.get("/v1/billing-accounts?limit=2", &key).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let mut tampered = cursor.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    for bad in [
        String::from_utf8(tampered).unwrap(),
        cursor[..cursor.len() - 3].to_owned(),
        "garbage".to_owned(),
    ] {
        let refused = app
            .get(&format!("/v1/billing-accounts?cursor={bad}"), &key)
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.error_code(), "invalid_cursor");
    }
    // A cursor of this list, used on another list.
    let elsewhere = app
        .get(
            &format!("/v1/workspaces/{workspace}/billing/accounts?cursor={cursor}"),
            &key,
        )
        .await;
    assert_eq!(elsewhere.error_code(), "invalid_cursor");
    let as_service = app
        .get(
            &format!("/v1/billing-accounts?owner_user_id={user}&limit=2&cursor={cursor}"),
            &app.service_key,
        )
        .await;
    assert_eq!(
        as_service.status,
        StatusCode::OK,
        "same list, other caller: {:?}",
        as_service.body
    );

    for bad_limit in ["0", "101", "ten"] {
        let refused = app
            .get(&format!("/v1/billing-accounts?limit={bad_limit}"), &key)
            .await;
        assert_eq!(refused.error_code(), "invalid_request");
    }
}

#[tokio::test]
async fn transactions_filter_by_type_and_refuse_unknown_filters() {
    let app = spawn_app().await;
    let (_, account, key) = app.user_with_key("eve").await;
    let base = format!("/v1/billing-accounts/{account}/transactions");
    let grants = app.get(&format!("{base}?type=grant"), &key).await;
    assert_eq!(grants.body["data"].as_array().unwrap().len(), 1);
    let usage = app.get(&format!("{base}?type=usage"), &key).await;
    assert_eq!(usage.body["data"].as_array().unwrap().len(), 0);
    let bad_type = app.get(&format!("{base}?type=bonus"), &key).await;
    assert_eq!(bad_type.error_code(), "invalid_request");
    let unknown = app.get(&format!("{base}?colour=red"), &key).await;
    assert_eq!(unknown.error_code(), "invalid_request");
    assert!(unknown.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
}
