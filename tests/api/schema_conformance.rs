//! Requests the OpenAPI document allows that the server refused, found by schemathesis
//! (`make test` runs it against the dev server): each is now taken, and its neighbour outside
//! the document's bounds is still refused.

use billing_tests::app::spawn_app;
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_an_integer() {
    // JSON Schema's `integer` includes `10.0`; serializers that write every number as a float
    // send it so.
    let app = spawn_app().await;
    let (_, _, key) = app.user_with_key("floats").await;
    let workspace = app.create_workspace(&key, "Agents").await;
    let event = app
        .post(
            &format!("/v1/workspaces/{workspace}/usage-events"),
            &key,
            json!({"event_id": "e1", "category": "actions", "quantity": 10.0, "agent_tier": "basic"}),
        )
        .await;
    assert_eq!(event.status, StatusCode::CREATED, "{:?}", event.body);
    assert_eq!(event.body["cost_cents"], 1);
    let run = app
        .post(
            &format!("/v1/workspaces/{workspace}/runs"),
            &key,
            json!({"agent_id": "a1", "agent_tier": "basic", "max_cost_cents": 1e2}),
        )
        .await;
    assert_eq!(run.status, StatusCode::CREATED, "{:?}", run.body);
    assert_eq!(run.body["hold_cents"], 100);
    for quantity in [json!(10.5), json!(0.0), json!(1e13)] {
        let refused = app
            .post(
                &format!("/v1/workspaces/{workspace}/usage-events"),
                &key,
                json!({"event_id": "e2", "category": "actions", "quantity": quantity}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{quantity}");
        assert_eq!(refused.error_code(), "invalid_request");
    }
}

#[tokio::test]
async fn text_limits_count_characters_as_the_schema_does() {
    // `maxLength` counts characters; the checks counted UTF-8 bytes, so 255 `é` (510 bytes)
    // were refused.
    let app = spawn_app().await;
    let long = "é".repeat(255);
    let user = app
        .post("/v1/users", &app.service_key, json!({"external_id": long}))
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{:?}", user.body);
    let too_long = app
        .post(
            "/v1/users",
            &app.service_key,
            json!({"external_id": "é".repeat(256)}),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);

    let (_, _, key) = app.user_with_key("texts").await;
    let workspace = app.create_workspace(&key, "Agents").await;
    let event = app
        .post(
            &format!("/v1/workspaces/{workspace}/usage-events"),
            &key,
            json!({"event_id": long, "agent_id": long, "category": "actions", "quantity": 1}),
        )
        .await;
    assert_eq!(event.status, StatusCode::CREATED, "{:?}", event.body);
    let credit = app
        .post(
            &format!("/v1/workspaces/{workspace}/billing/credits"),
            &app.service_key,
            json!({"amount_cents": 5, "type": "grant", "reason": "é".repeat(500)}),
        )
        .await;
    assert_eq!(credit.status, StatusCode::CREATED, "{:?}", credit.body);
}

#[tokio::test]
async fn names_and_e_mails_keep_to_the_documented_lengths_and_patterns() {
    let app = spawn_app().await;
    let (_, _, key) = app.user_with_key("names").await;
    // A name's 200 characters are counted as given, as `maxLength` counts them.
    let padded = format!(" {} ", "n".repeat(199));
    let workspace = app
        .post("/v1/workspaces", &key, json!({"name": padded}))
        .await;
    assert_eq!(workspace.status, StatusCode::BAD_REQUEST);
    let workspace = app
        .post(
            "/v1/workspaces",
            &key,
            json!({"name": format!(" {} ", "n".repeat(198))}),
        )
        .await;
    assert_eq!(
        workspace.status,
        StatusCode::CREATED,
        "{:?}",
        workspace.body
    );
    assert_eq!(workspace.body["name"], "n".repeat(198));
    // The e-mail pattern has no white space anywhere, around it included.
    let spaced = app
        .post(
            "/v1/users",
            &app.service_key,
            json!({"external_id": "spaced", "email": " a@example.com"}),
        )
        .await;
    assert_eq!(spaced.status, StatusCode::BAD_REQUEST);
    assert_eq!(spaced.error_code(), "invalid_request");
}
