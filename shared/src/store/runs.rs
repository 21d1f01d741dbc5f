//! Agent runs: the hold at authorization, usage captured against it (extending it when credit
//! allows), and one settlement, whoever triggers it (completion or the expiry sweep).

use super::counters::Counted;
use super::ledger::{Snapshot, MOVE_ATTEMPTS};
use super::movement::{Decision, Ended, Guard, Guarded, StartFrom, Target};
use super::{keys, Store, StoreError};
use crate::domain::calendar::{Day, Month};
use crate::domain::ids::{RunId, TransactionId};
use crate::domain::ledger::{affordable, hold, open_run, settle, Refusal};
use crate::domain::pricing::Category;
use crate::domain::pricing::Tier;
use crate::domain::run::{allocate_cents, Run, RunStatus, RunUsage, Settlement};
use crate::domain::transaction::{Transaction, TransactionType};
use crate::domain::usage::{UsageCount, UsageLine};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct RunItem {
    pk: String,
    sk: String,
    /// Present while the run is open, so the sweep finds it by expiry.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gsi1pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    gsi1sk: Option<String>,
    expires_epoch: i64,
    version: i64,
    /// What its settlement adds to the usage counters (see [`super::counters`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    usage_count: Option<UsageCount>,
    #[serde(flatten)]
    run: Run,
}

pub enum RunOutcome {
    /// The run as it is now.
    Done(Box<Run>),
    /// Refused for credit or caps; nothing changed.
    Refused(Refusal),
    NotFound,
}

/// Where a settlement comes from.
pub struct SettleAt<'a> {
    pub status: RunStatus,
    pub final_usage: Option<&'a RunUsage>,
    /// The day the usage counts on.
    pub day: Day,
    pub settled_at: &'a str,
    pub millis: u64,
}

impl Store {
    pub async fn get_run(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        Ok(self.get_run_versioned(id).await?.map(|(run, _)| run))
    }

    async fn get_run_versioned(&self, id: &RunId) -> Result<Option<(Run, i64)>, StoreError> {
        let item: Option<RunItem> = self.get(keys::run(id.as_str()), keys::RUN_SK).await?;
        Ok(item.map(|i| (i.run, i.version)))
    }

    /// The run written over `version` (`None`: a new run).
    fn run_put(
        &self,
        run: &Run,
        expires_epoch: i64,
        version: Option<i64>,
    ) -> Result<TransactWriteItem, StoreError> {
        self.counted_run_put(run, expires_epoch, version, None)
    }

    /// [`Store::run_put`] of a settled run, with what its settlement counts.
    fn counted_run_put(
        &self,
        run: &Run,
        expires_epoch: i64,
        version: Option<i64>,
        usage_count: Option<UsageCount>,
    ) -> Result<TransactWriteItem, StoreError> {
        let open = run.status == RunStatus::Authorized;
        let item = RunItem {
            pk: keys::run(run.run_id.as_str()),
            sk: keys::RUN_SK.to_owned(),
            gsi1pk: open.then(|| keys::DueIndex::OpenRuns.partition(run.run_id.as_str())),
            gsi1sk: open.then(|| format!("{expires_epoch:012}#{}", run.run_id)),
            expires_epoch,
            version: version.map_or(1, |v| v + 1),
            usage_count,
            run: run.clone(),
        };
        self.versioned_put(&item, version)
    }

    /// Holds the run's `hold_cents` and records the run, unless the workspace already has
    /// `max_open_runs` open. A run id that exists already (a retry under the same idempotency
    /// key) returns that run and holds nothing more.
    pub async fn authorize_run(
        &self,
        run: &Run,
        max_open_runs: Option<u32>,
        expires_epoch: i64,
        month: Month,
        created_at: &str,
        millis: u64,
    ) -> Result<RunOutcome, StoreError> {
        let ended = self
            .move_money(run_target(run, month, StartFrom::Remembered), |snapshot| {
                let moved = match open_run(
                    &snapshot.account,
                    &snapshot.budget,
                    run.hold_cents,
                    max_open_runs,
                ) {
                    Ok(moved) => moved,
                    Err(refusal) => return Ok(Decision::Refused(refusal)),
                };
                let mut items = vec![Guarded::new(
                    Guard::Claim,
                    self.run_put(run, expires_epoch, None)?,
                )];
                items.extend(self.crossing_events(snapshot, &moved, created_at, millis)?);
                Ok(Decision::Write {
                    moved,
                    items,
                    answer: (),
                })
            })
            .await?;
        Ok(match ended {
            Ended::Committed(()) | Ended::Done(()) => RunOutcome::Done(Box::new(run.clone())),
            // Authorized before (a retry), or refused now.
            Ended::Refused(refusal) => match self.get_run(&run.run_id).await? {
                Some(existing) => RunOutcome::Done(Box::new(existing)),
                None => RunOutcome::Refused(refusal),
            },
            Ended::Guarded(_) => self
                .get_run(&run.run_id)
                .await?
                .map_or(RunOutcome::NotFound, |r| RunOutcome::Done(Box::new(r))),
        })
    }

    /// Captures incremental usage. A `sequence` not above the last applied one is a retry and
    /// changes nothing; usage beyond the hold extends it if credit and caps allow, else the
    /// report is refused and nothing is captured.
    pub async fn capture_run_usage(
        &self,
        id: &RunId,
        sequence: i64,
        usage: &RunUsage,
        tier: &Tier,
        at: &str,
        millis: u64,
    ) -> Result<RunOutcome, StoreError> {
        let month = super::month_of(at)?;
        for _ in 0..MOVE_ATTEMPTS {
            let Some((run, version)) = self.get_run_versioned(id).await? else {
                return Ok(RunOutcome::NotFound);
            };
            if run.status != RunStatus::Authorized || sequence <= run.last_sequence {
                return Ok(RunOutcome::Done(Box::new(run)));
            }
            let mut next = match run.with_usage(tier, usage) {
                Ok(next) => next,
                Err(out_of_range) => return Ok(RunOutcome::Refused(out_of_range.into())),
            };
            next.last_sequence = sequence;
            let expires_epoch = epoch_of(&run.expires_at);
            let extension = next.captured_cost_cents - run.hold_cents;
            if extension <= 0 {
                // Within the hold: only the run changes, no money moves.
                let put = self.run_put(&next, expires_epoch, Some(version))?;
                match self.transact(vec![put]).await? {
                    super::Transacted::Committed => return Ok(RunOutcome::Done(Box::new(next))),
                    super::Transacted::Refused(_) => continue,
                }
            }
            next.hold_cents += extension;
            let ended = self
                .move_money(run_target(&run, month, StartFrom::Remembered), |snapshot| {
                    let moved = match hold(&snapshot.account, &snapshot.budget, extension) {
                        Ok(moved) => moved,
                        Err(refusal) => return Ok(Decision::Refused(refusal)),
                    };
                    let mut items = vec![Guarded::new(
                        Guard::RunVersion,
                        self.run_put(&next, expires_epoch, Some(version))?,
                    )];
                    items.extend(self.crossing_events(snapshot, &moved, at, millis)?);
                    Ok(Decision::Write {
                        moved,
                        items,
                        answer: (),
                    })
                })
                .await?;
            match ended {
                Ended::Committed(()) | Ended::Done(()) => {
                    return Ok(RunOutcome::Done(Box::new(next)))
                }
                Ended::Refused(refusal) => return Ok(RunOutcome::Refused(refusal)),
                // The run changed meanwhile (another report, its settlement): read it again.
                Ended::Guarded(_) => {}
            }
        }
        Err(StoreError::Contention)
    }

    /// Settles the run once: debits its captured cost (never beyond its hold plus what is still
    /// affordable), releases the rest of the hold, counts the usage. Settling a settled run
    /// returns it unchanged.
    pub async fn settle_run(
        &self,
        id: &RunId,
        tier: &Tier,
        at: SettleAt<'_>,
    ) -> Result<RunOutcome, StoreError> {
        let month = at.day.month();
        for _ in 0..MOVE_ATTEMPTS {
            let Some(item) = self
                .get::<RunItem>(keys::run(id.as_str()), keys::RUN_SK)
                .await?
            else {
                return Ok(RunOutcome::NotFound);
            };
            let (run, version) = (item.run, item.version);
            if run.settlement.is_some() {
                // Counted again: an earlier settlement may have committed with its answer lost,
                // before it was counted (the marker keeps it to once).
                self.count_usage(item.usage_count.map(|count| Counted {
                    source: item.pk,
                    count,
                }))
                .await;
                return Ok(RunOutcome::Done(Box::new(run)));
            }
            let next = match at.final_usage.map(|usage| run.with_usage(tier, usage)) {
                Some(Ok(next)) => next,
                Some(Err(out_of_range)) => return Ok(RunOutcome::Refused(out_of_range.into())),
                None => run.clone(),
            };
            // Settling can't be refused, but what is affordable beyond the hold must be fresh.
            let ended = self
                .move_money(run_target(&run, month, StartFrom::Fresh), |snapshot| {
                    self.settlement(snapshot, &run, version, next.clone(), tier, &at, month)
                })
                .await?;
            match ended {
                Ended::Committed((settled, count)) | Ended::Done((settled, count)) => {
                    self.count_usage(count.map(|count| Counted {
                        source: keys::run(settled.run_id.as_str()),
                        count,
                    }))
                    .await;
                    return Ok(RunOutcome::Done(Box::new(settled)));
                }
                Ended::Refused(refusal) => return Ok(RunOutcome::Refused(refusal)),
                // The run changed meanwhile (settled by someone else, a report): read it again.
                Ended::Guarded(_) => {}
            }
        }
        Err(StoreError::Contention)
    }

    /// A run's settlement on `snapshot`: its spend, the released rest of the hold, the ledger
    /// transaction and the usage counted.
    #[allow(clippy::too_many_arguments)]
    fn settlement(
        &self,
        snapshot: &Snapshot,
        run: &Run,
        version: i64,
        mut next: Run,
        tier: &Tier,
        at: &SettleAt<'_>,
        month: Month,
    ) -> Result<Decision<(Run, Option<UsageCount>)>, StoreError> {
        let spend = next.captured_cost_cents.min(affordable(
            &snapshot.account,
            &snapshot.budget,
            run.hold_cents,
        ));
        let reported_actions = next.usage.get(&Category::Actions).copied().unwrap_or(0);
        let settled = settle(&snapshot.account, &snapshot.budget, run.hold_cents, spend).and_then(
            |mut moved| {
                moved.budget.count_actions(reported_actions)?;
                Ok(moved)
            },
        );
        let moved = match settled {
            Ok(moved) => moved,
            Err(refusal) => return Ok(Decision::Refused(refusal)),
        };
        let transaction = (spend > 0).then(|| Transaction {
            id: TransactionId::generate(at.millis),
            billing_account_id: run.billing_account_id.clone(),
            workspace_id: Some(run.workspace_id.clone()),
            kind: TransactionType::Usage,
            amount_cents: -spend,
            balance_after_cents: moved.account.balance_cents,
            description: format!("agent run {}", run.run_id),
            category: None,
            agent_id: Some(run.agent_id.clone()),
            run_id: Some(run.run_id.to_string()),
            reference: None,
            created_at: at.settled_at.to_owned(),
        });
        next.status = at.status;
        next.settlement = Some(Settlement {
            cost_cents: spend,
            released_cents: (run.hold_cents - spend).max(0),
            balance_after_cents: moved.account.balance_cents,
            transaction_id: transaction.as_ref().map(|t| t.id.clone()),
            settled_at: at.settled_at.to_owned(),
        });
        let split = allocate_cents(spend, &next.cost_micros_by_category(tier));
        let lines: Vec<UsageLine> = split
            .into_iter()
            .map(|(category, cost_cents)| UsageLine {
                category,
                quantity: i64::try_from(next.usage.get(&category).copied().unwrap_or(0))
                    .unwrap_or(i64::MAX),
                cost_cents,
            })
            .filter(|line| line.quantity > 0)
            .collect();
        let count = (!lines.is_empty()).then(|| UsageCount {
            workspace_id: run.workspace_id.clone(),
            account_id: run.billing_account_id.clone(),
            agent_id: Some(run.agent_id.clone()),
            day: at.day,
            month,
            lines,
        });
        let mut items = vec![Guarded::new(
            Guard::RunVersion,
            self.counted_run_put(
                &next,
                epoch_of(&run.expires_at),
                Some(version),
                count.clone(),
            )?,
        )];
        if let Some(transaction) = &transaction {
            items.push(Guarded::new(
                Guard::FreshId,
                self.transaction_put(transaction)?,
            ));
        }
        items.extend(self.crossing_events(snapshot, &moved, at.settled_at, at.millis)?);
        Ok(Decision::Write {
            moved,
            items,
            answer: (next, count),
        })
    }

    /// Open runs whose hold expired by `now_epoch`, oldest first.
    pub async fn overdue_runs(
        &self,
        now_epoch: i64,
        limit: usize,
    ) -> Result<Vec<RunId>, StoreError> {
        let due = self
            .due_items(keys::DueIndex::OpenRuns, now_epoch, limit)
            .await?;
        Ok(due
            .into_iter()
            .filter_map(|item| match item.get("run_id") {
                Some(AttributeValue::S(id)) => RunId::parse(id),
                _ => None,
            })
            .collect())
    }
}

/// The money a run's movements are on: its account and its workspace's budget.
fn run_target(run: &Run, month: Month, start: StartFrom) -> Target<'_> {
    Target {
        account: &run.billing_account_id,
        workspace: Some(&run.workspace_id),
        month,
        start,
    }
}

fn epoch_of(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}
