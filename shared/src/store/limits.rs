//! What the rate limits and the readonly status count: usage events per workspace and minute
//! (a window item per minute, counted with a conditional add, gone by TTL), and the agents a
//! workspace has run (readonly lets only those run).

use super::{keys, n, s, Store, StoreError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use time::OffsetDateTime;

/// Agents this process already recorded, so the steady state writes nothing.
#[derive(Default)]
pub struct KnownAgents(Mutex<HashSet<(String, String)>>);

/// A request over the workspace's per-minute limit.
#[derive(Debug, PartialEq, Eq)]
pub struct OverLimit {
    /// Seconds until the next minute's window opens.
    pub retry_after_secs: u64,
}

fn minute_of(now: OffsetDateTime) -> i64 {
    now.unix_timestamp().div_euclid(60) * 60
}

impl Store {
    /// Counts one request in the workspace's current minute, unless `limit` are counted already.
    pub async fn count_request(
        &self,
        workspace: &str,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Result<(), OverLimit>, StoreError> {
        let minute = minute_of(now);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::rate_window(workspace)))
            .key(keys::SK, s(minute.to_string()))
            .update_expression("ADD requests :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(requests) OR requests < :limit")
            .expression_attribute_names("#ttl", keys::TTL_ATTRIBUTE)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(i64::from(limit)))
            .expression_attribute_values(":ttl", n(minute + 120))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                let retry_after_secs = u64::try_from(minute + 60 - now.unix_timestamp())
                    .unwrap_or(1)
                    .max(1);
                Ok(Err(OverLimit { retry_after_secs }))
            }
            Err(error) => Err(StoreError::sdk(error)),
        }
    }

    /// Requests counted in the workspace's current minute.
    pub async fn requests_this_minute(
        &self,
        workspace: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::rate_window(workspace)))
            .key(keys::SK, s(minute_of(now).to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(
            match output.item.as_ref().and_then(|item| item.get("requests")) {
                Some(AttributeValue::N(count)) => count.parse().unwrap_or(0),
                _ => 0,
            },
        )
    }

    /// Records that `agent` ran in the workspace (once; later calls are free in this process).
    pub async fn remember_agent(
        &self,
        workspace: &str,
        agent: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        let key = (workspace.to_owned(), agent.to_owned());
        let known = |agents: &KnownAgents| {
            agents
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&key)
        };
        if known(&self.known_agents) {
            return Ok(());
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(keys::PK, s(keys::workspace(workspace)))
            .item(keys::SK, s(keys::agent_sk(agent)))
            .item("agent_id", s(agent))
            .item("first_seen_at", s(at))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(error) => return Err(StoreError::sdk(error)),
        }
        let mut agents = self
            .known_agents
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if agents.len() > 100_000 {
            agents.clear();
        }
        agents.insert(key);
        Ok(())
    }

    /// Whether `agent` has run in the workspace before.
    pub async fn agent_known(&self, workspace: &str, agent: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::workspace(workspace)))
            .key(keys::SK, s(keys::agent_sk(agent)))
            .consistent_read(true)
            .projection_expression("pk")
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(output.item.is_some())
    }
}
