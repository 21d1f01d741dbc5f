//! The usage counters, applied after the debit rather than in it. A debit records what it adds
//! ([`UsageCount`]) on its own item, under [`USAGE_COUNT`]; the counters are then raised from
//! it once: deployed, by the `usage-counters` function from the table's stream; on the local
//! stage, in-process right after the debit commits. Each source item's count is applied in the
//! same write as a marker named after that item, so a retried batch, a replayed stream record
//! or a second attempt after a lost answer finds the marker and adds nothing.

use super::{keys, n, Store, StoreError, Transacted, NEW_ITEM};
use crate::domain::usage::UsageCount;
use aws_sdk_dynamodb::types::TransactWriteItem;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// The attribute a debit's item (a usage event's claim, a settled run) records its
/// [`UsageCount`] under: each item's `usage_count` field.
pub const USAGE_COUNT: &str = "usage_count";

/// How long a marker is kept: far longer than the stream keeps a record (24 hours).
const MARKER_DAYS: i64 = 7;

/// DynamoDB takes at most 100 items in a transaction.
const TRANSACTION_ITEMS: usize = 100;

/// Where this handle's debits get their counters applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counting {
    /// Right after each debit commits, by the process that made it (the local stage).
    InProcess,
    /// By the `usage-counters` function, from the table's stream (deployed).
    Stream,
}

/// One debit's count and the key of the item it was recorded on.
#[derive(Clone, Debug)]
pub struct Counted {
    pub source: String,
    pub count: UsageCount,
}

impl Store {
    /// Applies each count once: together where they fit in one transaction, one marker per
    /// source. Counts applied before (their marker exists) are left out and the rest written.
    pub async fn apply_usage(&self, counted: &[Counted]) -> Result<(), StoreError> {
        // A source twice in one batch (a stream may deliver a record twice) is one count, and
        // one transaction may not write its marker twice.
        let mut sources = std::collections::HashSet::new();
        let mut pending: Vec<&Counted> = counted
            .iter()
            .filter(|c| sources.insert(c.source.as_str()))
            .collect();
        while !pending.is_empty() {
            let (batch, items) = self.counter_batch(&pending)?;
            match self.transact(items).await? {
                Transacted::Committed => {
                    pending.drain(..batch);
                }
                Transacted::Refused(reasons) => {
                    // Markers come first: a refused one was applied before.
                    let applied: Vec<usize> = reasons
                        .iter()
                        .take(batch)
                        .enumerate()
                        .filter(|(_, reason)| reason.failed)
                        .map(|(index, _)| index)
                        .collect();
                    if applied.is_empty() {
                        return Err(StoreError::Corrupt(
                            "a usage counter write was refused by no marker".into(),
                        ));
                    }
                    for index in applied.into_iter().rev() {
                        pending.remove(index);
                    }
                }
            }
        }
        Ok(())
    }

    /// The first counts of `pending` that fit in one transaction: their markers, then each
    /// counter they raise, summed.
    fn counter_batch(
        &self,
        pending: &[&Counted],
    ) -> Result<(usize, Vec<TransactWriteItem>), StoreError> {
        let expires = self.clock.now().unix_timestamp() + MARKER_DAYS * 86_400;
        let mut sums: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
        let mut batch = 0;
        for counted in pending {
            let targets = targets(&counted.count);
            let new: std::collections::HashSet<&(String, String)> = targets
                .iter()
                .map(|(target, _, _)| target)
                .filter(|target| !sums.contains_key(*target))
                .collect();
            // Its marker and the counters it adds must fit beside what is in already.
            if batch > 0 && batch + 1 + sums.len() + new.len() > TRANSACTION_ITEMS {
                break;
            }
            for (target, quantity, cost) in targets {
                let sum = sums.entry(target).or_default();
                sum.0 = sum.0.saturating_add(quantity);
                sum.1 = sum.1.saturating_add(cost);
            }
            batch += 1;
        }
        let mut items = Vec::with_capacity(batch + sums.len());
        for counted in &pending[..batch] {
            items.push(self.put(
                Marker {
                    pk: keys::usage_counted(&counted.source),
                    sk: keys::USAGE_COUNTED_SK,
                    expires_at_epoch: expires,
                },
                Some(NEW_ITEM),
            )?);
        }
        for ((pk, sk), (quantity, cost)) in sums {
            items.push(self.update(
                pk,
                &sk,
                "ADD quantity :quantity, cost_cents :cost",
                None,
                &[(":quantity", n(quantity)), (":cost", n(cost))],
            )?);
        }
        Ok((batch, items))
    }

    /// After a debit committed with `counted` on its item: applies it before returning when
    /// this handle counts in-process; deployed, the stream does. Concurrent debits of a process
    /// take turns and whoever has the turn applies every count waiting, in one write: counts
    /// applied one by one would all raise the same few counters at once and conflict. A failure
    /// here loses no money and is logged: the debit stands, and its count is on its item.
    pub(crate) async fn count_usage(&self, counted: Option<Counted>) {
        let Some(counted) = counted else { return };
        if self.counting != Counting::InProcess {
            return;
        }
        self.counts
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(counted);
        // Whoever had the turn before took (and applied) what was waiting then, ours included
        // if it was there; what is waiting now is ours to apply.
        let _turn = self.counts.turn.lock().await;
        let batch = std::mem::take(
            &mut *self
                .counts
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if batch.is_empty() {
            return;
        }
        for attempt in 0..5u32 {
            match self.apply_usage(&batch).await {
                Ok(()) => return,
                Err(error) if attempt == 4 => {
                    tracing::error!(counts = batch.len(), %error, "usage counters not applied");
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await,
            }
        }
    }
}

/// Counts this process's debits made and has not applied yet, and the turn at applying them.
#[derive(Default)]
pub struct InProcessCounts {
    waiting: Mutex<Vec<Counted>>,
    turn: tokio::sync::Mutex<()>,
}

/// That a source's count was applied (kept a week: the stream keeps a record a day).
#[derive(serde::Serialize)]
struct Marker {
    pk: String,
    sk: &'static str,
    /// The table's TTL attribute ([`keys::TTL_ATTRIBUTE`]).
    expires_at_epoch: i64,
}

/// The counters a count raises: the workspace's day × category × agent, the workspace's and the
/// account's month × category.
fn targets(count: &UsageCount) -> Vec<((String, String), i64, i64)> {
    let agent = count.agent_id.as_deref().unwrap_or(keys::NO_AGENT);
    let mut targets = Vec::new();
    for line in &count.lines {
        let category = line.category.as_str();
        for key in [
            (
                keys::workspace_usage(count.workspace_id.as_str()),
                keys::daily_usage_sk(count.day, category, agent),
            ),
            (
                keys::workspace_usage(count.workspace_id.as_str()),
                keys::monthly_usage_sk(count.month, category),
            ),
            (
                keys::account_usage(count.account_id.as_str()),
                keys::monthly_usage_sk(count.month, category),
            ),
        ] {
            targets.push((key, line.quantity, line.cost_cents));
        }
    }
    targets
}
