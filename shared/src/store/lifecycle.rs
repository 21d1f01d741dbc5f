//! The plan lifecycle's state on the workspace item: dates, a version every transition is
//! conditional on, and the next deadline, indexed (`gsi2`) so the sweep finds overdue workspaces.
//! A transition is one transaction: the workspace's new state (on the version it was decided on),
//! its `plan_status.changed` event and, when a period starts, the included credit's expiry and
//! grant. Whoever fires a trigger first wins; the others find the version moved.

use super::movement::{Decision, Ended, Guard, Guarded, StartFrom, Target};
use super::workspaces::WorkspaceItem;
use super::{keys, n, s, Store, StoreError, Transacted};
use crate::clock::{rfc3339, unix_millis};
use crate::domain::events::{EventPayload, PlanStatusData};
use crate::domain::ids::{BillingAccountId, TransactionId, WorkspaceId};
use crate::domain::ledger::{expire_included, grant_included, IncludedGrant, Moved};
use crate::domain::lifecycle::{next_deadline, Lifecycle, LifecycleDates, Transition, Trigger};
use crate::domain::transaction::{Transaction, TransactionType};
use crate::domain::workspace::Workspace;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The lifecycle attributes of a workspace item.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct LifecycleFields {
    #[serde(default)]
    pub(crate) lifecycle: LifecycleDates,
    #[serde(default)]
    pub(crate) lifecycle_version: i64,
    /// In the `DEADLINES` index while the workspace waits for a date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit_tier: Option<String>,
    /// Where the workspace's last included credit was granted, so its rest expires from there
    /// even after the workspace's default account changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) included_grant: Option<GrantRef>,
}

/// An included-credit grant: the account it is in and its key there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRef {
    pub account: BillingAccountId,
    pub key: String,
}

impl LifecycleFields {
    pub(crate) fn new(
        workspace: &Workspace,
        dates: &LifecycleDates,
        version: i64,
        rate_limit_tier: Option<String>,
    ) -> Self {
        let mut fields = Self {
            lifecycle: dates.clone(),
            lifecycle_version: version,
            gsi2pk: None,
            gsi2sk: None,
            rate_limit_tier,
            included_grant: None,
        };
        let lifecycle = Lifecycle {
            status: workspace.plan_status,
            dates: dates.clone(),
        };
        if let Some(due) = deadline_index_key(&lifecycle, &workspace.id) {
            fields.gsi2pk = Some(keys::DueIndex::Deadlines.partition(workspace.id.as_str()));
            fields.gsi2sk = Some(due);
        }
        fields
    }
}

/// The workspace's sort key in the deadline index while it waits for a date.
fn deadline_index_key(lifecycle: &Lifecycle, workspace: &WorkspaceId) -> Option<String> {
    next_deadline(lifecycle)
        .map(|(at, _)| keys::deadline_sk(at.unix_timestamp(), workspace.as_str()))
}

/// A workspace with its lifecycle, as read.
#[derive(Clone, Debug)]
pub struct WorkspaceState {
    pub workspace: Workspace,
    pub lifecycle: Lifecycle,
    /// What a transition of this state is conditional on.
    pub version: i64,
    /// Set by the last refresh; `None` until then (the plan's tier applies).
    pub rate_limit_tier: Option<String>,
    pub included_grant: Option<GrantRef>,
}

/// How writing a transition ended.
#[derive(Debug, PartialEq, Eq)]
pub enum TransitionWritten {
    Committed,
    /// The workspace moved since it was read: decide again.
    Stale,
    /// One of the caller's items refused (index into `TransitionWrite::extra`).
    Refused {
        index: usize,
    },
}

/// What a transition writes besides the workspace.
pub struct TransitionWrite<'a> {
    pub trigger: Trigger,
    pub transition: &'a Transition,
    /// The plan's included credit for a period that starts.
    pub included_credits_cents: i64,
    /// The tier the new status gets.
    pub rate_limit_tier: &'a str,
    pub at: OffsetDateTime,
    /// What the cause writes in the same transaction (an invoice's mirror, a Stripe event's
    /// claim, its billing events): the transition commits with them or not at all.
    pub extra: Vec<TransactWriteItem>,
}

/// An expiry or grant of included credit, as a ledger entry.
#[allow(clippy::too_many_arguments)]
fn included_transaction(
    account: &BillingAccountId,
    workspace: &Workspace,
    kind: TransactionType,
    amount: i64,
    balance_after: i64,
    period: &str,
    created_at: &str,
    millis: u64,
) -> Transaction {
    let what = match kind {
        TransactionType::Expiry => "unused included credit expired",
        _ => "included credit for the period",
    };
    Transaction {
        id: TransactionId::generate(millis),
        billing_account_id: account.clone(),
        workspace_id: Some(workspace.id.clone()),
        kind,
        amount_cents: amount,
        balance_after_cents: balance_after,
        description: format!("{what} (period from {period})"),
        category: None,
        agent_id: None,
        run_id: None,
        reference: Some(format!("period:{period}")),
        created_at: created_at.to_owned(),
    }
}

impl Store {
    pub async fn get_workspace_state(
        &self,
        id: &WorkspaceId,
    ) -> Result<Option<WorkspaceState>, StoreError> {
        let item: Option<WorkspaceItem> = self
            .get(keys::workspace(id.as_str()), keys::WORKSPACE_SK)
            .await?;
        Ok(item.map(|item| WorkspaceState {
            lifecycle: Lifecycle {
                status: item.workspace.plan_status,
                dates: item.lifecycle.lifecycle,
            },
            workspace: item.workspace,
            version: item.lifecycle.lifecycle_version,
            rate_limit_tier: item.lifecycle.rate_limit_tier,
            included_grant: item.lifecycle.included_grant,
        }))
    }

    /// Writes `write.transition` over `current`, with `write.extra`, if no one else moved it
    /// first.
    pub async fn apply_transition(
        &self,
        current: &WorkspaceState,
        write: &TransitionWrite<'_>,
    ) -> Result<TransitionWritten, StoreError> {
        let millis = unix_millis(write.at);
        let created_at = rfc3339(write.at);
        let workspace = &current.workspace;
        let grant = write.transition.period_started.map(|started| GrantRef {
            account: workspace.default_billing_account_id.clone(),
            key: IncludedGrant::key(workspace.id.as_str(), &rfc3339(started)),
        });
        let mut items =
            vec![self.workspace_transition(current, write, grant.as_ref(), &created_at)?];
        items.extend(write.extra.iter().cloned());
        let transition = write.transition;
        if transition.status_changed() {
            items.push(self.outbox_put(
                EventPayload::PlanStatusChanged(PlanStatusData {
                    from: transition.from,
                    to: transition.to.status,
                    trigger: write.trigger.as_str().to_owned(),
                    changed_at: created_at.clone(),
                }),
                Some(&workspace.id),
                &workspace.default_billing_account_id,
                &created_at,
                millis,
            )?);
        }
        let refused = |index: usize| match index {
            0 => TransitionWritten::Stale,
            index if index <= write.extra.len() => TransitionWritten::Refused { index: index - 1 },
            _ => TransitionWritten::Stale,
        };
        match (transition.period_started, grant) {
            (Some(started), Some(grant)) => {
                if let Some(previous) = &current.included_grant {
                    if previous.account != grant.account {
                        self.expire_grant(previous, workspace, &created_at, millis)
                            .await?;
                    }
                }
                self.roll_period(current, write, started, &grant, items, &created_at, millis)
                    .await
                    .map(|ended| match ended {
                        Ended::Committed(()) | Ended::Done(()) => TransitionWritten::Committed,
                        Ended::Guarded(Guard::Caller(index)) => refused(index),
                        // The workspace moved (someone else applied this or another transition).
                        Ended::Guarded(_) | Ended::Refused(_) => TransitionWritten::Stale,
                    })
            }
            _ => Ok(match self.transact(items).await? {
                Transacted::Committed => TransitionWritten::Committed,
                Transacted::Refused(reasons) => reasons
                    .iter()
                    .position(|reason| reason.failed)
                    .map_or(TransitionWritten::Stale, refused),
            }),
        }
    }

    /// The rest of a grant in an account the workspace no longer uses by default expires
    /// there, on its own: the grant's key names it, so a second expiry finds nothing left.
    async fn expire_grant(
        &self,
        grant: &GrantRef,
        workspace: &Workspace,
        created_at: &str,
        millis: u64,
    ) -> Result<(), StoreError> {
        let month = super::month_of(created_at)?;
        let target = Target {
            account: &grant.account,
            workspace: None,
            month,
            start: StartFrom::Remembered,
        };
        let ended = self
            .move_money(target, |snapshot| {
                let (moved, expired) =
                    expire_included(&snapshot.account, &snapshot.budget, &grant.key);
                if expired == 0 && moved.account.included == snapshot.account.included {
                    return Ok(Decision::Done(()));
                }
                let mut items = Vec::new();
                if expired > 0 {
                    items.push(Guarded::new(
                        Guard::FreshId,
                        self.transaction_put(&included_transaction(
                            &grant.account,
                            workspace,
                            TransactionType::Expiry,
                            -expired,
                            snapshot.account.balance_cents - expired,
                            &grant.key,
                            created_at,
                            millis,
                        ))?,
                    ));
                }
                Ok(Decision::Write {
                    moved,
                    items,
                    answer: (),
                })
            })
            .await?;
        match ended {
            Ended::Committed(()) | Ended::Done(()) => Ok(()),
            // An expiry takes back at most what is left: nothing refuses it.
            Ended::Refused(_) | Ended::Guarded(_) => Err(StoreError::Contention),
        }
    }

    /// The period's credit movements (the last grant's rest expires, the new one is granted),
    /// in one transaction with the transition (`items`).
    #[allow(clippy::too_many_arguments)]
    async fn roll_period(
        &self,
        current: &WorkspaceState,
        write: &TransitionWrite<'_>,
        started: OffsetDateTime,
        grant: &GrantRef,
        items: Vec<TransactWriteItem>,
        created_at: &str,
        millis: u64,
    ) -> Result<Ended<()>, StoreError> {
        let workspace = &current.workspace;
        let account = &grant.account;
        let month = super::month_of(created_at)?;
        let period = rfc3339(started);
        let expiring = current
            .included_grant
            .as_ref()
            .filter(|previous| &previous.account == account);
        let target = Target {
            account,
            workspace: Some(&workspace.id),
            month,
            start: StartFrom::Remembered,
        };
        self.move_money(target, |snapshot| {
            let (expired_state, expired) = match expiring {
                Some(previous) => {
                    expire_included(&snapshot.account, &snapshot.budget, &previous.key)
                }
                None => (
                    Moved {
                        starts_recharge: false,
                        account: snapshot.account.clone(),
                        budget: snapshot.budget.clone(),
                        crossings: Default::default(),
                    },
                    0,
                ),
            };
            let moved = grant_included(
                &expired_state.account,
                &expired_state.budget,
                &grant.key,
                write.included_credits_cents,
            )
            // Only an account already holding ~2^63 cents gets here: nothing to retry.
            .map_err(|out_of_range| StoreError::Corrupt(out_of_range.to_string()))?;
            let mut extra = Guarded::callers(items.iter().cloned());
            let mut balance = snapshot.account.balance_cents;
            for (kind, amount) in [
                (TransactionType::Expiry, -expired),
                (TransactionType::PlanCredit, write.included_credits_cents),
            ] {
                if amount == 0 {
                    continue;
                }
                balance += amount;
                extra.push(Guarded::new(
                    Guard::FreshId,
                    self.transaction_put(&included_transaction(
                        account, workspace, kind, amount, balance, &period, created_at, millis,
                    ))?,
                ));
            }
            Ok(Decision::Write {
                moved,
                items: extra,
                answer: (),
            })
        })
        .await
    }

    fn workspace_transition(
        &self,
        current: &WorkspaceState,
        write: &TransitionWrite<'_>,
        grant: Option<&GrantRef>,
        changed_at: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let to = &write.transition.to;
        let dates = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(&to.dates)
            .map_err(StoreError::codec)?;
        let status = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(to.status)
            .map_err(StoreError::codec)?;
        let mut values: Vec<(&str, AttributeValue)> = vec![
            (":status", status),
            (":dates", dates),
            (":next", n(current.version + 1)),
            (":tier", s(write.rate_limit_tier)),
            (":changed", s(changed_at)),
        ];
        let mut expression = "SET plan_status = :status, lifecycle = :dates, \
             lifecycle_version = :next, rate_limit_tier = :tier, status_changed_at = :changed"
            .to_owned();
        if let Some(grant) = grant {
            expression.push_str(", included_grant = :grant");
            values.push((
                ":grant",
                serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(grant)
                    .map_err(StoreError::codec)?,
            ));
        }
        match deadline_index_key(to, &current.workspace.id) {
            Some(due) => {
                expression.push_str(", gsi2pk = :deadlines, gsi2sk = :due");
                values.push((
                    ":deadlines",
                    s(keys::DueIndex::Deadlines.partition(current.workspace.id.as_str())),
                ));
                values.push((":due", s(due)));
            }
            None => expression.push_str(" REMOVE gsi2pk, gsi2sk"),
        }
        let condition = if current.version == 0 {
            "attribute_exists(pk) AND attribute_not_exists(lifecycle_version)"
        } else {
            values.push((":version", n(current.version)));
            "lifecycle_version = :version"
        };
        self.update(
            keys::workspace(current.workspace.id.as_str()),
            keys::WORKSPACE_SK,
            &expression,
            Some(condition),
            &values,
        )
    }

    /// Workspaces whose next deadline is at or before `now`, earliest first.
    pub async fn due_workspaces(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<WorkspaceId>, StoreError> {
        let due = self
            .due_items(keys::DueIndex::Deadlines, now.unix_timestamp(), limit)
            .await?;
        Ok(due
            .into_iter()
            // The index holds keys only: the workspace id ends the sort key.
            .filter_map(|item| match item.get("gsi2sk") {
                Some(AttributeValue::S(due)) => due
                    .split_once('#')
                    .and_then(|(_, id)| WorkspaceId::parse(id)),
                _ => None,
            })
            .collect())
    }

    /// Moves the workspace to another plan, for a transaction (with the subscription's mirror).
    pub fn plan_update(
        &self,
        workspace: &WorkspaceId,
        plan_id: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        self.update(
            keys::workspace(workspace.as_str()),
            keys::WORKSPACE_SK,
            "SET plan_id = :plan",
            Some("attribute_exists(pk)"),
            &[(":plan", s(plan_id))],
        )
    }

    /// Records a recomputed rate-limit tier (no version: the tier is derived, and the last
    /// computation wins).
    pub async fn set_rate_limit_tier(
        &self,
        workspace: &WorkspaceId,
        tier: &str,
    ) -> Result<(), StoreError> {
        self.set_workspace_attribute(workspace, "rate_limit_tier", tier)
            .await
    }

    async fn set_workspace_attribute(
        &self,
        workspace: &WorkspaceId,
        attribute: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::workspace(workspace.as_str())))
            .key(keys::SK, s(keys::WORKSPACE_SK))
            .update_expression("SET #attribute = :value")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#attribute", attribute)
            .expression_attribute_values(":value", s(value));
        super::update_applied(update.send().await).map(|_| ())
    }
}
