//! Reads behind the billing views: the usage counters (strongly consistent queries of one
//! partition, paged through to the end) and the workspaces linked to an account (the `gsi1`
//! index, which like every global secondary index is eventually consistent).

use super::workspaces::LinkItem;
use super::{keys, s, Item, Store, StoreError};
use crate::domain::calendar::{Day, Month};
use crate::domain::ids::{BillingAccountId, WorkspaceId};
use crate::domain::pricing::Category;
use crate::domain::usage::{format_date, DailyCounter, MonthlyCounter, Period};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;

/// Whose monthly counters to read.
#[derive(Clone, Copy)]
pub enum UsageOwner<'a> {
    Workspace(&'a WorkspaceId),
    Account(&'a BillingAccountId),
}

/// A counter item: `ADD`ed to by every usage event and run settlement.
#[derive(Deserialize)]
struct CounterItem {
    sk: String,
    #[serde(default)]
    quantity: i64,
    #[serde(default)]
    cost_cents: i64,
}

/// One query's key condition and values, on the table or on `gsi1`.
struct Lookup {
    index: Option<&'static str>,
    key_condition: &'static str,
    values: Vec<(&'static str, AttributeValue)>,
    newest_first: bool,
}

impl Store {
    /// The workspace's daily counters on every day of `period`: every category and agent, in
    /// one query (`sk BETWEEN "D#<start>" AND "D#<end>#~"`).
    pub async fn daily_usage(
        &self,
        workspace: &WorkspaceId,
        period: &Period,
    ) -> Result<Vec<DailyCounter>, StoreError> {
        let items = self
            .query_all(Lookup {
                index: None,
                key_condition: "pk = :pk AND sk BETWEEN :from AND :to",
                values: vec![
                    (":pk", s(keys::workspace_usage(workspace.as_str()))),
                    (":from", s(format!("D#{}", format_date(period.start)))),
                    (":to", s(format!("D#{}#~", format_date(period.end)))),
                ],
                newest_first: false,
            })
            .await?;
        items.into_iter().map(daily_counter).collect()
    }

    /// Monthly counters of a workspace or an account, for the months `from` to `to` (both
    /// included), every category.
    pub async fn monthly_usage(
        &self,
        owner: UsageOwner<'_>,
        from: Month,
        to: Month,
    ) -> Result<Vec<MonthlyCounter>, StoreError> {
        let pk = match owner {
            UsageOwner::Workspace(workspace) => keys::workspace_usage(workspace.as_str()),
            UsageOwner::Account(account) => keys::account_usage(account.as_str()),
        };
        let items = self
            .query_all(Lookup {
                index: None,
                key_condition: "pk = :pk AND sk BETWEEN :from AND :to",
                values: vec![
                    (":pk", s(pk)),
                    (":from", s(format!("M#{from}"))),
                    (":to", s(format!("M#{to}#~"))),
                ],
                newest_first: false,
            })
            .await?;
        items.into_iter().map(monthly_counter).collect()
    }

    /// The workspaces linked to an account, newest first (the links index,
    /// `gsi1pk = ACCOUNT_LINKS#ba`).
    pub async fn linked_workspace_ids(
        &self,
        account: &BillingAccountId,
    ) -> Result<Vec<WorkspaceId>, StoreError> {
        let items = self
            .query_all(Lookup {
                index: Some(keys::GSI1),
                key_condition: "gsi1pk = :pk",
                values: vec![(":pk", s(keys::account_links(account.as_str())))],
                newest_first: true,
            })
            .await?;
        items
            .into_iter()
            .map(|item| {
                serde_dynamo::aws_sdk_dynamodb_1::from_item::<LinkItem>(item)
                    .map(|link| link.workspace_id)
                    .map_err(StoreError::codec)
            })
            .collect()
    }

    /// Every item a query finds, following `LastEvaluatedKey` to the end. Strongly consistent
    /// on the table (an index can't be).
    async fn query_all(&self, lookup: Lookup) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(lookup.key_condition)
                .scan_index_forward(!lookup.newest_first)
                .set_exclusive_start_key(start.take());
            for (name, value) in &lookup.values {
                request = request.expression_attribute_values(*name, value.clone());
            }
            request = match lookup.index {
                Some(index) => request.index_name(index),
                None => request.consistent_read(true),
            };
            let output = request.send().await.map_err(StoreError::sdk)?;
            found.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(found),
            }
        }
    }
}

fn counter_item(item: Item) -> Result<CounterItem, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(StoreError::codec)
}

fn category(sk: &str, text: &str) -> Result<Category, StoreError> {
    Category::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("usage counter `{sk}` has an unknown category")))
}

/// `D#<date>#<category>#<agent>`; the agent id may itself contain `#`.
fn daily_counter(item: Item) -> Result<DailyCounter, StoreError> {
    let counter = counter_item(item)?;
    let mut parts = counter.sk.splitn(4, '#');
    let (Some("D"), Some(day), Some(kind), Some(agent)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(StoreError::Corrupt(format!(
            "`{}` is not a daily usage counter key",
            counter.sk
        )));
    };
    Ok(DailyCounter {
        day: Day::parse(day)
            .ok_or_else(|| StoreError::Corrupt(format!("`{}` names no day", counter.sk)))?,
        category: category(&counter.sk, kind)?,
        agent_id: (agent != keys::NO_AGENT).then(|| agent.to_owned()),
        quantity: counter.quantity,
        cost_cents: counter.cost_cents,
    })
}

/// `M#<month>#<category>`.
fn monthly_counter(item: Item) -> Result<MonthlyCounter, StoreError> {
    let counter = counter_item(item)?;
    let mut parts = counter.sk.splitn(3, '#');
    let (Some("M"), Some(month), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(StoreError::Corrupt(format!(
            "`{}` is not a monthly usage counter key",
            counter.sk
        )));
    };
    Ok(MonthlyCounter {
        month: Month::parse(month)
            .ok_or_else(|| StoreError::Corrupt(format!("`{}` names no month", counter.sk)))?,
        category: category(&counter.sk, kind)?,
        quantity: counter.quantity,
        cost_cents: counter.cost_cents,
    })
}
