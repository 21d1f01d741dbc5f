//! Ledger histories out of the account's partition: each transaction is its own item (a usage
//! event's is its claim), listed through an index spread over 16 partitions per account and per
//! workspace, and still read newest first with cursors, entries written before the spread
//! included.

use aws_sdk_dynamodb::types::AttributeValue;
use billing_core::store::keys::{self, History};
use billing_tests::app::{scan_table, spawn_app_with, text, Item, TestApp};
use serde_json::{json, Value};
use std::collections::HashSet;

/// Every page of `path` at `limit` per page: the entries' ids, in the order listed.
async fn listed(app: &TestApp, path: &str, key: &str, limit: usize) -> Vec<String> {
    let (mut ids, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let page_path = match &cursor {
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
            None => format!("{path}?limit={limit}"),
        };
        let page = app.get(&page_path, key).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let data = page.body["data"].as_array().unwrap();
        assert!(data.len() <= limit);
        ids.extend(data.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(page.body["has_more"], true);
                assert_eq!(data.len(), limit, "only a full page has a next one");
                cursor = Some(next.to_owned());
            }
            None => return ids,
        }
    }
}

/// The table's ledger transactions of `account` (and `workspace`, if given), newest first.
fn stored_transactions(items: &[Item], account: &str, workspace: Option<&str>) -> Vec<String> {
    let mut ids: Vec<String> = items
        .iter()
        .filter(|item| text(item, "id").starts_with("txn_"))
        .filter(|item| text(item, "billing_account_id") == account)
        .filter(|item| workspace.is_none_or(|w| text(item, "workspace_id") == w))
        .map(|item| text(item, "id").to_owned())
        .collect();
    ids.sort_by(|a, b| b.cmp(a));
    ids
}

/// Rewrites transaction `item` as it was stored before histories were spread: in its account's
/// partition, under the workspace's single index partition, not in the account index.
async fn move_to_account_partition(app: &TestApp, item: &Item) {
    let store = &app.app.store;
    let id = text(item, "id");
    let mut legacy = item.clone();
    legacy.insert(
        keys::PK.into(),
        AttributeValue::S(keys::account(text(item, "billing_account_id"))),
    );
    legacy.insert(keys::SK.into(), AttributeValue::S(keys::transaction_sk(id)));
    legacy.remove(keys::GSI3_PK);
    legacy.remove(keys::GSI3_SK);
    if let Some(AttributeValue::S(workspace)) = item.get("workspace_id") {
        legacy.insert(
            keys::GSI1_PK.into(),
            AttributeValue::S(format!("WS_TXN#{workspace}")),
        );
    }
    store
        .dynamodb()
        .delete_item()
        .table_name(store.table_name())
        .key(keys::PK, item[keys::PK].clone())
        .key(keys::SK, item[keys::SK].clone())
        .send()
        .await
        .expect("delete the spread entry");
    store
        .dynamodb()
        .put_item()
        .table_name(store.table_name())
        .set_item(Some(legacy))
        .send()
        .await
        .expect("write the entry where it used to be");
}

#[tokio::test]
async fn histories_page_newest_first_across_their_shards_and_entries_written_before() {
    let app = spawn_app_with(|c| c.intro_credit_cents = 1000).await;
    let (_, account, key) = app.user_with_key("payer").await;
    let workspace = app.create_workspace(&key, "Agents").await;
    let other = app.create_workspace(&key, "Other agents").await;
    for i in 0..24 {
        let target = if i % 3 == 0 { &other } else { &workspace };
        let charged = app
            .post(
                &format!("/v1/workspaces/{target}/usage-events"),
                &key,
                json!({"event_id": format!("e{i}"), "category": "actions", "quantity": 10, "agent_tier": "basic"}),
            )
            .await;
        assert_eq!(charged.status, 201, "{:?}", charged.body);
        if i % 8 == 0 {
            app.clock.advance(time::Duration::seconds(1));
        }
    }
    let items = scan_table(&app.app.store).await;
    // New entries: spread over the account's partitions, none in the account's own.
    let partitions: HashSet<&str> = items
        .iter()
        .filter(|item| text(item, "billing_account_id") == account.as_str())
        .map(|item| text(item, keys::GSI3_PK))
        .filter(|pk| !pk.is_empty())
        .collect();
    assert!(partitions.len() >= 6, "25 entries in {partitions:?}");
    assert!(partitions.iter().all(|pk| History::Account(&account)
        .partitions()
        .iter()
        .any(|(_, p)| p == pk)));
    assert!(!items
        .iter()
        .any(|item| text(item, keys::PK) == keys::account(&account)
            && text(item, keys::SK).starts_with(keys::TRANSACTION_SK_PREFIX)));
    // Two entries as they were stored before the spread: the intro grant, one debit.
    let intro = items
        .iter()
        .find(|item| {
            text(item, "id").starts_with("txn_")
                && text(item, "billing_account_id") == account
                && text(item, "type") != "usage"
        })
        .expect("the intro credit");
    let debit = items
        .iter()
        .find(|item| text(item, keys::PK).ends_with("#e4"))
        .expect("event e4's claim");
    for moved in [intro, debit] {
        move_to_account_partition(&app, moved).await;
    }

    let items = scan_table(&app.app.store).await;
    let expected = stored_transactions(&items, &account, None);
    assert_eq!(expected.len(), 25, "the intro credit and 24 debits");
    let account_path = format!("/v1/billing-accounts/{account}/transactions");
    for limit in [7, 25, 100] {
        assert_eq!(
            listed(&app, &account_path, &key, limit).await,
            expected,
            "the account's history at {limit} a page"
        );
    }
    let expected_workspace = stored_transactions(&items, &account, Some(&workspace));
    assert_eq!(expected_workspace.len(), 16);
    assert_eq!(
        listed(
            &app,
            &format!("/v1/workspaces/{workspace}/billing/transactions"),
            &key,
            5
        )
        .await,
        expected_workspace,
        "the workspace's history, the moved debit included"
    );
    // Filters apply across every partition.
    let only_workspace = app
        .get(
            &format!("{account_path}?workspace_id={other}&limit=100"),
            &key,
        )
        .await;
    assert_eq!(only_workspace.body["data"].as_array().unwrap().len(), 8);
    let sum: i64 = app
        .get(&format!("{account_path}?limit=100"), &key)
        .await
        .body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount_cents"].as_i64().unwrap())
        .sum();
    let balance: Value = app
        .get(&format!("/v1/billing-accounts/{account}/balance"), &key)
        .await
        .body;
    assert_eq!(sum, balance["balance_cents"].as_i64().unwrap());
}

#[tokio::test]
async fn a_usage_debit_writes_one_item_that_is_its_claim_and_its_transaction() {
    let app = spawn_app_with(|c| c.intro_credit_cents = 1000).await;
    let (_, account, key) = app.user_with_key("payer").await;
    let workspace = app.create_workspace(&key, "Agents").await;
    let event = json!({"event_id": "only-once", "category": "actions", "quantity": 10, "agent_tier": "basic"});
    let path = format!("/v1/workspaces/{workspace}/usage-events");
    let first = app.post(&path, &key, event.clone()).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let items = scan_table(&app.app.store).await;
    let holding: Vec<&Item> = items
        .iter()
        .filter(|item| {
            text(item, "reference") == "only-once" || text(item, "event_id") == "only-once"
        })
        .collect();
    assert_eq!(holding.len(), 1, "one item for the event: {holding:?}");
    let item = holding[0];
    assert_eq!(
        text(item, keys::PK),
        keys::usage_event(&workspace, "only-once"),
        "keyed by the event, so a second delivery is refused by the same write"
    );
    assert_eq!(text(item, "type"), "usage");
    assert_eq!(text(item, "billing_account_id"), account);
    assert!(text(item, keys::GSI3_PK).starts_with(&format!("TXNS#{account}#")));
    assert!(text(item, keys::GSI1_PK).starts_with(&format!("WS_TXN#{workspace}#")));

    let again = app.post(&path, &key, event).await;
    assert_eq!(again.status, 200, "a replay answers as the first time");
    assert_eq!(again.body, first.body);
    let transactions = app
        .get(
            &format!("/v1/billing-accounts/{account}/transactions?type=usage"),
            &key,
        )
        .await;
    assert_eq!(transactions.body["data"].as_array().unwrap().len(), 1);
}
