//! Money movements. Each is one DynamoDB transaction that writes the account's new money state
//! (conditional on its ledger version), the workspace budget's (conditional on its version), the
//! immutable ledger transaction, and what else the movement records: the usage event's claim, the
//! run, billing events (the usage counters are applied after it: see [`super::counters`]). A
//! stale version means someone else moved money first: the refusal carries the current items, so
//! the movement is re-decided and retried without another read; [`super::movement`] is the loop
//! that does so for every movement.

use super::accounts::TransactionItem;
use super::movement::{Decision, Ended, Guard, Guarded, StartFrom, Target};
use super::{keys, n, s, Cancelled, Item, Store, StoreError, Transacted, NEW_ITEM};
use crate::domain::account::AccountSettings;
use crate::domain::calendar::Month;
use crate::domain::events::{EventPayload, LimitData, LimitScope};
use crate::domain::ids::{BillingAccountId, WorkspaceId};
use crate::domain::ledger::{
    AccountMoney, CapScope, CapSetter, Crossings, IncludedGrant, Moved, WorkspaceBudget,
};
use crate::domain::transaction::Transaction;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The money fields of an account item.
#[derive(Deserialize)]
struct AccountMoneyItem {
    balance_cents: i64,
    held_cents: i64,
    #[serde(default, deserialize_with = "super::stored_month")]
    spend_month: Option<Month>,
    #[serde(default)]
    spent_month_cents: i64,
    #[serde(default)]
    credited_month_cents: i64,
    settings: AccountSettings,
    #[serde(default)]
    ledger_version: i64,
    #[serde(default)]
    lifetime_paid_cents: i64,
    #[serde(default)]
    recharge_pending: bool,
    #[serde(default)]
    recharged_month_cents: i64,
    #[serde(default)]
    recharge_marker: i64,
    #[serde(default)]
    included: Vec<IncludedGrant>,
}

/// A workspace's budget inside its account: caps it set, its spend and holds this month.
#[derive(Serialize, Deserialize)]
pub(crate) struct BudgetItem {
    pk: String,
    sk: String,
    workspace_id: WorkspaceId,
    #[serde(default)]
    soft_cap_cents: Option<i64>,
    #[serde(default)]
    hard_cap_cents: Option<i64>,
    #[serde(default)]
    hard_cap_set_by: Option<CapSetter>,
    // A budget item may exist with only caps (set before any money moved).
    #[serde(
        default,
        deserialize_with = "super::stored_month",
        skip_serializing_if = "Option::is_none"
    )]
    spend_month: Option<Month>,
    #[serde(default)]
    spent_month_cents: i64,
    #[serde(default)]
    credited_month_cents: i64,
    #[serde(default)]
    held_cents: i64,
    #[serde(default)]
    open_runs: i64,
    #[serde(default)]
    actions_used: i64,
    version: i64,
}

/// The money state a movement is decided on, with the versions its write is conditional on.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Read from the store (or returned by it) just now, rather than remembered: only a fresh
    /// snapshot may refuse a movement.
    pub fresh: bool,
    pub account_id: BillingAccountId,
    /// The month it is decided in: the month-to-date figures count this month.
    pub month: Month,
    pub account: AccountMoney,
    account_version: i64,
    pub workspace_id: Option<WorkspaceId>,
    pub budget: WorkspaceBudget,
    /// `None` while the workspace has no budget item yet.
    budget_version: Option<i64>,
}

/// An auto-recharge started by a committed movement, for this process to charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RechargeRequest {
    pub account_id: BillingAccountId,
    /// The workspace whose movement started it: its saved method is charged.
    pub workspace_id: Option<WorkspaceId>,
    pub amount_cents: i64,
    /// The ledger version that started it: names the charge, so retrying it charges once.
    pub marker: i64,
}

/// Recharges started in this process and not yet charged.
#[derive(Default)]
pub struct RechargeQueue(Mutex<Vec<RechargeRequest>>);

impl RechargeQueue {
    fn queue(&self, request: RechargeRequest) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }

    /// Whether a recharge is queued and not yet taken.
    pub fn pending(&self) -> bool {
        !self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Takes every queued recharge (each is taken once).
    pub fn take(&self) -> Vec<RechargeRequest> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A month as the account item stores it: empty before money first moved.
fn stored_month_text(month: Option<Month>) -> String {
    month.map(|m| m.to_string()).unwrap_or_default()
}

/// The outcome of trying to write a movement on a snapshot.
pub(crate) enum Written {
    Committed,
    /// The account or budget changed since the snapshot: decide again on this one.
    Stale(Box<Snapshot>),
    /// One of the movement's own conditions failed (index into its extra items).
    Refused {
        index: usize,
    },
}

/// How often a movement is re-decided after finding the state changed under it. Each retry
/// follows a commit by someone else, so this bounds only pathological contention.
pub(crate) const MOVE_ATTEMPTS: usize = 100;

/// What this process knows of accounts it moved money on: the last state it saw, and a lock per
/// account, so concurrent requests in one process take turns instead of failing each other's
/// conditional writes. Both only save work: every write is still conditional on the versions,
/// and a refusal is only ever decided on fresh state.
#[derive(Default)]
pub struct LedgerCache {
    snapshots: Mutex<HashMap<(BillingAccountId, Option<WorkspaceId>), Snapshot>>,
    locks: Mutex<HashMap<BillingAccountId, Arc<tokio::sync::Mutex<()>>>>,
}

impl LedgerCache {
    fn lock_for(&self, account: &BillingAccountId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if locks.len() > 10_000 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(account.clone()).or_default().clone()
    }

    fn get(&self, account: &BillingAccountId, workspace: Option<&WorkspaceId>) -> Option<Snapshot> {
        let snapshots = self
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        snapshots
            .get(&(account.clone(), workspace.cloned()))
            .cloned()
    }

    fn remember(&self, snapshot: &Snapshot) {
        let mut snapshots = self
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if snapshots.len() > 10_000 {
            snapshots.clear();
        }
        let mut remembered = snapshot.clone();
        remembered.fresh = false;
        snapshots.insert(
            (snapshot.account_id.clone(), snapshot.workspace_id.clone()),
            remembered,
        );
    }
}

pub(crate) fn budget_key(workspace: &WorkspaceId) -> (String, &'static str) {
    (keys::workspace(workspace.as_str()), keys::BUDGET_SK)
}

impl Store {
    /// The account's and (if any) the workspace budget's current money state, in one read.
    pub async fn ledger_snapshot(
        &self,
        account: &BillingAccountId,
        workspace: Option<&WorkspaceId>,
        month: Month,
    ) -> Result<Snapshot, StoreError> {
        Ok(self
            .ledger_snapshot_with(account, workspace, month, None)
            .await?
            .0)
    }

    /// A workspace's money: its default account's and its own budget's.
    pub async fn workspace_snapshot(
        &self,
        workspace: &crate::domain::workspace::Workspace,
        month: Month,
    ) -> Result<Snapshot, StoreError> {
        self.ledger_snapshot(
            &workspace.default_billing_account_id,
            Some(&workspace.id),
            month,
        )
        .await
    }

    /// [`Store::ledger_snapshot`], reading one more item (`also`) in the same request.
    pub(crate) async fn ledger_snapshot_with(
        &self,
        account: &BillingAccountId,
        workspace: Option<&WorkspaceId>,
        month: Month,
        also: Option<(String, &str)>,
    ) -> Result<(Snapshot, Option<Item>), StoreError> {
        let account_pk = keys::account(account.as_str());
        let budget_pk = workspace.map(|w| budget_key(w).0);
        let mut wanted = vec![(account_pk.clone(), keys::ACCOUNT_SK.to_owned())];
        if let Some(pk) = &budget_pk {
            wanted.push((pk.clone(), keys::BUDGET_SK.to_owned()));
        }
        if let Some((pk, sk)) = &also {
            wanted.push((pk.clone(), (*sk).to_owned()));
        }
        let (mut account_item, mut budget_item, mut other) = (None, None, None);
        for item in self.get_many_raw(wanted).await? {
            let key = |name: &str| match item.get(name) {
                Some(AttributeValue::S(value)) => value.clone(),
                _ => String::new(),
            };
            let (pk, sk) = (key(keys::PK), key(keys::SK));
            if pk == account_pk && sk == keys::ACCOUNT_SK {
                account_item = Some(item);
            } else if Some(&pk) == budget_pk.as_ref() && sk == keys::BUDGET_SK {
                budget_item = Some(item);
            } else {
                other = Some(item);
            }
        }
        let account_item = account_item
            .ok_or_else(|| StoreError::Corrupt(format!("billing account {account} is missing")))?;
        let mut snapshot = Snapshot {
            fresh: true,
            account_id: account.clone(),
            month,
            account: AccountMoney::default(),
            account_version: 0,
            workspace_id: workspace.cloned(),
            budget: WorkspaceBudget::default(),
            budget_version: None,
        };
        snapshot.refresh_account(account_item)?;
        if let Some(item) = budget_item {
            snapshot.refresh_budget(item)?;
        }
        Ok((snapshot.in_month(month), other))
    }

    /// Writes `moved` over `snapshot`, with `extra` items in the same transaction. Spending
    /// that leaves the account short starts its auto-recharge in the same write (the marker
    /// that keeps it to one), and queues the charge for this process to make.
    pub(crate) async fn write_movement(
        &self,
        snapshot: &Snapshot,
        moved: &Moved,
        extra: Vec<TransactWriteItem>,
    ) -> Result<Written, StoreError> {
        let mut moved = moved.clone();
        let recharge = moved.start_recharge(&snapshot.account);
        if recharge.is_some() {
            moved.account.recharge_marker = snapshot.account_version + 1;
        }
        let moved = &moved;
        let mut items = vec![self.account_money_update(snapshot, &moved.account, recharge)?];
        if snapshot.workspace_id.is_some() {
            items.push(self.budget_put(snapshot, &moved.budget)?);
        }
        let own = items.len();
        items.extend(extra);
        match self.transact(items).await? {
            Transacted::Committed => {
                self.ledger_cache.remember(&snapshot.after(moved));
                if let Some(amount_cents) = recharge {
                    self.recharges.queue(RechargeRequest {
                        account_id: snapshot.account_id.clone(),
                        workspace_id: snapshot.workspace_id.clone(),
                        amount_cents,
                        marker: snapshot.account_version + 1,
                    });
                }
                Ok(Written::Committed)
            }
            Transacted::Refused(reasons) => {
                let mut fresh = snapshot.clone();
                let mut stale = false;
                for (index, Cancelled { failed, item }) in reasons.into_iter().enumerate() {
                    if !failed {
                        continue;
                    }
                    if index >= own {
                        return Ok(Written::Refused { index: index - own });
                    }
                    stale = true;
                    match (index, item) {
                        (0, Some(item)) => fresh.refresh_account(item)?,
                        (1, Some(item)) => fresh.refresh_budget(item)?,
                        (_, None) => fresh = self.reread(snapshot).await?,
                        _ => {}
                    }
                }
                if !stale {
                    return Err(StoreError::Corrupt(
                        "a refused movement named no condition".into(),
                    ));
                }
                self.stats
                    .stale_retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                fresh.fresh = true;
                let fresh = fresh.in_month(snapshot.month);
                self.ledger_cache.remember(&fresh);
                Ok(Written::Stale(Box::new(fresh)))
            }
        }
    }

    /// This process's turn at moving money on `account`; hold it across decide-and-write.
    pub(crate) async fn account_turn(
        &self,
        account: &BillingAccountId,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        self.ledger_cache.lock_for(account).lock_owned().await
    }

    /// The state to decide on: remembered if this process has it (one round trip fewer), else read.
    pub(crate) async fn current_snapshot(
        &self,
        account: &BillingAccountId,
        workspace: Option<&WorkspaceId>,
        month: Month,
    ) -> Result<Snapshot, StoreError> {
        match self.ledger_cache.get(account, workspace) {
            Some(remembered) => Ok(remembered.in_month(month)),
            None => self.ledger_snapshot(account, workspace, month).await,
        }
    }

    /// The same state, read from the store: what a refusal must be decided on.
    pub(crate) async fn reread(&self, snapshot: &Snapshot) -> Result<Snapshot, StoreError> {
        self.ledger_snapshot(
            &snapshot.account_id,
            snapshot.workspace_id.as_ref(),
            snapshot.month,
        )
        .await
    }

    /// The account's new money state. A recharge this write starts is recorded with what a
    /// retry needs (its marker, amount, workspace) and indexed (`gsi2`, `RECHARGES`, by start
    /// time) until it ends, so one a process never charged is found and charged later.
    fn account_money_update(
        &self,
        snapshot: &Snapshot,
        next: &AccountMoney,
        started: Option<i64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut expression = "SET balance_cents = :balance, held_cents = :held, \
             spend_month = :month, spent_month_cents = :spent, credited_month_cents = :credited, \
             lifetime_paid_cents = :paid, recharge_pending = :pending, \
             recharged_month_cents = :recharged, included = :included, ledger_version = :next"
            .to_owned();
        let mut update = Update::builder();
        match started {
            Some(amount) => {
                let started_epoch = self.clock.now().unix_timestamp();
                expression.push_str(
                    ", recharge_marker = :next, recharge_amount_cents = :recharge_amount, \
                     recharge_workspace_id = :recharge_workspace, gsi2pk = :recharges, \
                     gsi2sk = :recharge_since",
                );
                update = update
                    .expression_attribute_values(":recharge_amount", n(amount))
                    .expression_attribute_values(
                        ":recharge_workspace",
                        snapshot
                            .workspace_id
                            .as_ref()
                            .map_or(AttributeValue::Null(true), |w| s(w.to_string())),
                    )
                    .expression_attribute_values(
                        ":recharges",
                        s(keys::DueIndex::Recharges.partition(snapshot.account_id.as_str())),
                    )
                    .expression_attribute_values(
                        ":recharge_since",
                        s(keys::deadline_sk(
                            started_epoch,
                            snapshot.account_id.as_str(),
                        )),
                    );
            }
            None if !next.recharge_pending => expression.push_str(" REMOVE gsi2pk, gsi2sk"),
            None => {}
        }
        let update = update
            .table_name(&self.table)
            .key(keys::PK, s(keys::account(snapshot.account_id.as_str())))
            .key(keys::SK, s(keys::ACCOUNT_SK))
            .update_expression(expression)
            .condition_expression("ledger_version = :version")
            .expression_attribute_values(":balance", n(next.balance_cents))
            .expression_attribute_values(":held", n(next.held_cents))
            .expression_attribute_values(":month", s(stored_month_text(next.month)))
            .expression_attribute_values(":spent", n(next.spent_cents))
            .expression_attribute_values(":credited", n(next.credited_cents))
            .expression_attribute_values(":paid", n(next.paid_cents))
            .expression_attribute_values(":pending", AttributeValue::Bool(next.recharge_pending))
            .expression_attribute_values(":recharged", n(next.recharged_cents))
            .expression_attribute_values(
                ":included",
                serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(&next.included)
                    .map_err(StoreError::codec)?,
            )
            .expression_attribute_values(":version", n(snapshot.account_version))
            .expression_attribute_values(":next", n(snapshot.account_version + 1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(StoreError::build)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn budget_put(
        &self,
        snapshot: &Snapshot,
        next: &WorkspaceBudget,
    ) -> Result<TransactWriteItem, StoreError> {
        let workspace = snapshot
            .workspace_id
            .clone()
            .ok_or_else(|| StoreError::Corrupt("a budget without a workspace".into()))?;
        let (pk, sk) = budget_key(&workspace);
        let item = BudgetItem {
            pk,
            sk: sk.to_owned(),
            workspace_id: workspace,
            soft_cap_cents: next.soft_cap_cents,
            hard_cap_cents: next.hard_cap_cents,
            hard_cap_set_by: next.hard_cap_set_by,
            spend_month: next.month,
            spent_month_cents: next.spent_cents,
            credited_month_cents: next.credited_cents,
            held_cents: next.held_cents,
            open_runs: next.open_runs,
            actions_used: next.actions_used,
            version: snapshot.budget_version.map_or(1, |v| v + 1),
        };
        self.versioned_put(&item, snapshot.budget_version)
    }

    /// The ledger entry, indexed under its workspace when it has one.
    pub(crate) fn transaction_put(
        &self,
        transaction: &Transaction,
    ) -> Result<TransactWriteItem, StoreError> {
        self.put(TransactionItem::new(transaction), Some(NEW_ITEM))
    }

    /// Billing events for the caps (and the recharge threshold) a movement crossed.
    pub(crate) fn crossing_events(
        &self,
        snapshot: &Snapshot,
        moved: &Moved,
        created_at: &str,
        millis: u64,
    ) -> Result<Vec<Guarded>, StoreError> {
        let Crossings {
            soft,
            hard,
            balance_low,
        } = &moved.crossings;
        let (account, budget) = (&moved.account, &moved.budget);
        let limit = |scope: LimitScope, cap_cents: Option<i64>, spent_cents: i64| LimitData {
            scope,
            cap_cents: cap_cents.unwrap_or_default(),
            spent_cents,
            available_cents: account.available_cents(),
            month: snapshot.month,
        };
        let cap = |scope: &CapScope, soft: bool| match (scope, soft) {
            (CapScope::Account, true) => limit(
                LimitScope::Account,
                account.soft_cap_cents,
                account.spent_cents,
            ),
            (CapScope::Account, false) => limit(
                LimitScope::Account,
                account.hard_cap_cents,
                account.spent_cents,
            ),
            (CapScope::Workspace, true) => limit(
                LimitScope::Workspace,
                budget.soft_cap_cents,
                budget.spent_cents,
            ),
            (CapScope::Workspace, false) => limit(
                LimitScope::Workspace,
                budget.hard_cap_cents,
                budget.spent_cents,
            ),
        };
        let mut payloads: Vec<EventPayload> = Vec::new();
        payloads.extend(soft.iter().map(|s| EventPayload::CreditsLow(cap(s, true))));
        payloads.extend(
            hard.iter()
                .map(|s| EventPayload::CreditsHardCapReached(cap(s, false))),
        );
        if *balance_low {
            payloads.push(EventPayload::CreditsLow(limit(
                LimitScope::Balance,
                Some(account.recharge_threshold_cents),
                account.spent_cents,
            )));
        }
        payloads
            .into_iter()
            .map(|payload| {
                self.outbox_put(
                    payload,
                    snapshot.workspace_id.as_ref(),
                    &snapshot.account_id,
                    created_at,
                    millis,
                )
                .map(|item| Guarded::new(Guard::FreshId, item))
            })
            .collect()
    }

    /// Recharges started at or before `before_epoch` and still under way: ones whose process
    /// may never have charged them.
    /// Each with the time it started (epoch seconds).
    pub async fn stale_recharges(
        &self,
        before_epoch: i64,
        limit: usize,
    ) -> Result<Vec<(i64, RechargeRequest)>, StoreError> {
        #[derive(Deserialize)]
        struct Pending {
            #[serde(default)]
            recharge_pending: bool,
            #[serde(default)]
            recharge_marker: i64,
            #[serde(default)]
            recharge_amount_cents: i64,
            #[serde(default)]
            recharge_workspace_id: Option<WorkspaceId>,
        }
        let due = self
            .due_items(keys::DueIndex::Recharges, before_epoch, limit)
            .await?;
        let mut stale = Vec::new();
        for item in due {
            let Some(AttributeValue::S(since)) = item.get("gsi2sk") else {
                continue;
            };
            let Some((started, account)) = since.split_once('#').and_then(|(epoch, id)| {
                Some((epoch.parse::<i64>().ok()?, BillingAccountId::parse(id)?))
            }) else {
                continue;
            };
            let pending: Option<Pending> = self
                .get(keys::account(account.as_str()), keys::ACCOUNT_SK)
                .await?;
            if let Some(pending) = pending.filter(|p| p.recharge_pending) {
                stale.push((
                    started,
                    RechargeRequest {
                        account_id: account,
                        workspace_id: pending.recharge_workspace_id,
                        amount_cents: pending.recharge_amount_cents,
                        marker: pending.recharge_marker,
                    },
                ));
            }
        }
        Ok(stale)
    }

    /// Ends the auto-recharge `marker` under way without money (the charge failed or never
    /// started), releasing `released_cents` of the month's reservation.
    pub async fn end_recharge(
        &self,
        account: &BillingAccountId,
        marker: i64,
        released_cents: i64,
        extra: Vec<TransactWriteItem>,
        month: Month,
    ) -> Result<bool, StoreError> {
        let target = Target {
            account,
            workspace: None,
            month,
            start: StartFrom::Fresh,
        };
        let ended = self
            .move_money(target, |snapshot| {
                // Only the recharge it is about: a late answer about an earlier one ends nothing.
                if !snapshot.account.recharge_pending || snapshot.account.recharge_marker != marker
                {
                    return Ok(Decision::Done(false));
                }
                let mut moved = Moved {
                    starts_recharge: false,
                    account: snapshot.account.clone(),
                    budget: snapshot.budget.clone(),
                    crossings: Default::default(),
                };
                moved.account.end_recharge(released_cents);
                Ok(Decision::Write {
                    moved,
                    items: Guarded::callers(extra.iter().cloned()),
                    answer: true,
                })
            })
            .await?;
        Ok(match ended {
            Ended::Committed(ended) | Ended::Done(ended) => ended,
            // The caller's claim was taken: whoever took it ended this recharge in that write.
            Ended::Guarded(_) | Ended::Refused(_) => false,
        })
    }

    /// Sets a workspace's monthly caps if its budget is still at the version `snapshot` read
    /// (`false`: it changed; read again). The version moves, so a movement decided on the old
    /// caps is decided again on the new ones.
    pub async fn set_workspace_caps(
        &self,
        snapshot: &Snapshot,
        soft_cap_cents: Option<i64>,
        hard_cap_cents: Option<i64>,
        hard_cap_set_by: Option<CapSetter>,
    ) -> Result<bool, StoreError> {
        let workspace = snapshot
            .workspace_id
            .as_ref()
            .ok_or_else(|| StoreError::Corrupt("caps without a workspace".into()))?;
        let (pk, sk) = budget_key(workspace);
        let cap = |value: Option<i64>| value.map_or(AttributeValue::Null(true), n);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression(
                "SET workspace_id = :workspace, soft_cap_cents = :soft, hard_cap_cents = :hard, \
                 hard_cap_set_by = :set_by, version = if_not_exists(version, :zero) + :one",
            )
            .expression_attribute_values(":workspace", s(workspace.to_string()))
            .expression_attribute_values(":soft", cap(soft_cap_cents))
            .expression_attribute_values(":hard", cap(hard_cap_cents))
            .expression_attribute_values(
                ":set_by",
                serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(hard_cap_set_by)
                    .map_err(StoreError::codec)?,
            )
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1));
        update = match snapshot.budget_version {
            None => update.condition_expression(NEW_ITEM),
            Some(version) => update
                .condition_expression("version = :version")
                .expression_attribute_values(":version", n(version)),
        };
        super::update_applied(update.send().await)
    }
}

impl Snapshot {
    fn refresh_account(&mut self, item: Item) -> Result<(), StoreError> {
        let money: AccountMoneyItem =
            serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(StoreError::codec)?;
        let recharge_threshold_cents = money.settings.auto_recharge.threshold_cents;
        self.account = AccountMoney {
            recharge_threshold_cents,
            balance_cents: money.balance_cents,
            held_cents: money.held_cents,
            month: money.spend_month,
            spent_cents: money.spent_month_cents,
            credited_cents: money.credited_month_cents,
            soft_cap_cents: money.settings.soft_cap_cents,
            hard_cap_cents: money.settings.hard_cap_cents,
            paid_cents: money.lifetime_paid_cents,
            auto_recharge: Some(money.settings.auto_recharge).filter(|r| r.enabled),
            recharge_pending: money.recharge_pending,
            recharged_cents: money.recharged_month_cents,
            recharge_marker: money.recharge_marker,
            included: money.included,
        };
        self.account_version = money.ledger_version;
        Ok(())
    }

    fn refresh_budget(&mut self, item: Item) -> Result<(), StoreError> {
        let budget: BudgetItem =
            serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(StoreError::codec)?;
        self.budget = WorkspaceBudget {
            month: budget.spend_month,
            spent_cents: budget.spent_month_cents,
            credited_cents: budget.credited_month_cents,
            held_cents: budget.held_cents,
            soft_cap_cents: budget.soft_cap_cents,
            hard_cap_cents: budget.hard_cap_cents,
            hard_cap_set_by: budget.hard_cap_set_by,
            open_runs: budget.open_runs,
            actions_used: budget.actions_used,
        };
        self.budget_version = Some(budget.version);
        Ok(())
    }

    /// The snapshot as it is after `moved` was written over it.
    fn after(&self, moved: &Moved) -> Snapshot {
        Snapshot {
            fresh: false,
            account_id: self.account_id.clone(),
            month: self.month,
            account: moved.account.clone(),
            account_version: self.account_version + 1,
            workspace_id: self.workspace_id.clone(),
            budget: moved.budget.clone(),
            budget_version: self
                .workspace_id
                .as_ref()
                .map(|_| self.budget_version.map_or(1, |v| v + 1)),
        }
    }

    fn in_month(mut self, month: Month) -> Self {
        self.month = month;
        self.account = self.account.in_month(month);
        self.budget = self.budget.in_month(month);
        self
    }
}
