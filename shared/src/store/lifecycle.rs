//! The plan lifecycle's state on the workspace item: dates, a version every transition is
//! conditional on, and the next deadline, indexed (`gsi2`) so the sweep finds overdue workspaces.
//! A transition is one transaction: the workspace's new state (on the version it was decided on),
//! its `plan_status.changed` event and, when a period starts, the included credit's expiry and
//! grant. Whoever fires a trigger first wins; the others find the version moved.

use super::ledger::{Written, MOVE_ATTEMPTS};
use super::workspaces::WorkspaceItem;
use super::{keys, n, s, Store, StoreError, Transacted};
use crate::clock::{rfc3339, unix_millis};
use crate::domain::ids::{TransactionId, WorkspaceId};
use crate::domain::ledger::roll_period;
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
    /// `DEADLINES` while the workspace waits for a date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit_tier: Option<String>,
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
        };
        let lifecycle = Lifecycle {
            status: workspace.plan_status,
            dates: dates.clone(),
        };
        if let Some(due) = deadline_index_key(&lifecycle, &workspace.id) {
            fields.gsi2pk = Some(keys::DEADLINES.to_owned());
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
        }))
    }

    /// Writes `write.transition` over `current` if no one else moved it first (`false`: the
    /// version moved; read again and decide again).
    pub async fn apply_transition(
        &self,
        current: &WorkspaceState,
        write: &TransitionWrite<'_>,
    ) -> Result<bool, StoreError> {
        let millis = unix_millis(write.at);
        let created_at = rfc3339(write.at);
        let mut items = vec![self.workspace_transition(current, write, &created_at)?];
        let transition = write.transition;
        if transition.status_changed() {
            let workspace = &current.workspace;
            items.push(self.outbox_put(
                "plan_status.changed",
                Some(&workspace.id),
                &workspace.default_billing_account_id,
                serde_json::json!({
                    "workspace_id": workspace.id,
                    "from": transition.from,
                    "to": transition.to.status,
                    "trigger": write.trigger,
                    "changed_at": created_at,
                }),
                &created_at,
                millis,
            )?);
        }
        match transition.period_started {
            None => Ok(matches!(self.transact(items).await?, Transacted::Committed)),
            Some(started) => {
                self.roll_period(current, write, started, items, &created_at, millis)
                    .await
            }
        }
    }

    /// The period's credit movements, in one transaction with the transition (`items`).
    async fn roll_period(
        &self,
        current: &WorkspaceState,
        write: &TransitionWrite<'_>,
        started: OffsetDateTime,
        items: Vec<TransactWriteItem>,
        created_at: &str,
        millis: u64,
    ) -> Result<bool, StoreError> {
        let workspace = &current.workspace;
        let account = &workspace.default_billing_account_id;
        let month = &created_at[..7];
        let _turn = self.account_turn(account).await;
        let mut snapshot = self
            .current_snapshot(account, Some(&workspace.id), month)
            .await?;
        let period = rfc3339(started);
        for _ in 0..MOVE_ATTEMPTS {
            let (moved, expired) = roll_period(
                &snapshot.account,
                &snapshot.budget,
                write.included_credits_cents,
            )
            // Only an account already holding ~2^63 cents gets here: nothing to retry.
            .map_err(|out_of_range| StoreError::Corrupt(out_of_range.to_string()))?;
            let mut extra = items.clone();
            let mut balance = snapshot.account.balance_cents;
            for (kind, amount, what) in [
                (
                    TransactionType::Expiry,
                    -expired,
                    "unused included credit expired",
                ),
                (
                    TransactionType::PlanCredit,
                    write.included_credits_cents,
                    "included credit for the period",
                ),
            ] {
                if amount == 0 {
                    continue;
                }
                balance += amount;
                extra.push(self.transaction_put(&Transaction {
                    id: TransactionId::generate(millis),
                    billing_account_id: account.clone(),
                    workspace_id: Some(workspace.id.clone()),
                    kind,
                    amount_cents: amount,
                    balance_after_cents: balance,
                    description: format!("{what} (period from {period})"),
                    category: None,
                    agent_id: None,
                    run_id: None,
                    reference: Some(format!("period:{period}")),
                    created_at: created_at.to_owned(),
                })?);
            }
            match self.write_movement(&snapshot, &moved, extra).await? {
                Written::Committed => return Ok(true),
                Written::Stale(fresh) => snapshot = *fresh,
                // The workspace moved: someone else applied this (or another) transition.
                Written::Refused { .. } => return Ok(false),
            }
        }
        Err(StoreError::Contention)
    }

    fn workspace_transition(
        &self,
        current: &WorkspaceState,
        write: &TransitionWrite<'_>,
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
        match deadline_index_key(to, &current.workspace.id) {
            Some(due) => {
                expression.push_str(", gsi2pk = :deadlines, gsi2sk = :due");
                values.push((":deadlines", s(keys::DEADLINES)));
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
            .due_items(keys::GSI2, keys::DEADLINES, now.unix_timestamp(), limit)
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

    /// Moves the workspace to another plan of the catalog (a subscription checkout completed).
    pub async fn set_plan(&self, workspace: &WorkspaceId, plan_id: &str) -> Result<(), StoreError> {
        self.set_workspace_attribute(workspace, "plan_id", plan_id)
            .await
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
