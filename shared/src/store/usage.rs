//! Usage events: priced, debited once per `event_id`, counted for the views.

use super::accounts::TransactionItem;
use super::counters::Counted;
use super::movement::{Decision, Ended, Guard, Guarded, StartFrom, Target};
use super::{keys, Store, StoreError, NEW_ITEM};
use crate::domain::calendar::Day;
use crate::domain::ids::{BillingAccountId, TransactionId, WorkspaceId};
use crate::domain::ledger::{debit, Refusal};
use crate::domain::pricing::Category;
use crate::domain::transaction::{Transaction, TransactionType};
use crate::domain::usage::{UsageCount, UsageLine};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A priced usage event, ready to charge.
pub struct UsageCharge {
    pub workspace_id: WorkspaceId,
    pub account_id: BillingAccountId,
    pub event_id: String,
    /// What makes a repeated `event_id` "the same event".
    pub fingerprint: String,
    pub category: Category,
    pub quantity: u64,
    pub agent_id: Option<String>,
    pub cost_cents: i64,
    /// The day the usage counts on (when it occurred).
    pub day: Day,
    pub created_at: String,
    pub millis: u64,
}

/// What charging an event answered; a retry of the event gets exactly this again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageResult {
    pub event_id: String,
    pub cost_cents: i64,
    pub balance_after_cents: i64,
    pub soft_cap_reached: bool,
}

pub enum UsageOutcome {
    /// Charged, and the workspace's lifetime action count after it.
    Charged(UsageResult, i64),
    /// This event was charged before: its first result.
    Repeated(UsageResult),
    /// The event id was used for a different event.
    Mismatch,
    Refused(Refusal),
}

/// An event's claim on its id, forever: its fingerprint and first result.
#[derive(Serialize, Deserialize)]
struct UsageClaim {
    pk: String,
    sk: String,
    fingerprint: String,
    #[serde(flatten)]
    result: UsageResult,
    transaction_id: Option<TransactionId>,
    created_at: String,
    /// What the event counts (see [`super::counters`]; absent on claims from before the counters
    /// moved off the debit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage_count: Option<UsageCount>,
}

impl Store {
    /// Debits the event's cost, records its claim, transaction and counters in one transaction;
    /// or answers as the first time for a repeated event; or refuses, changing nothing.
    pub async fn record_usage(&self, charge: &UsageCharge) -> Result<UsageOutcome, StoreError> {
        let claim_pk = keys::usage_event(charge.workspace_id.as_str(), &charge.event_id);
        // Spend counts in the month it is debited (now), whatever day the usage occurred on:
        // deciding on an earlier month would start that month's spend afresh and overwrite this
        // month's, and the caps would no longer hold.
        let month = super::month_of(&charge.created_at)?;
        // A repeated event is caught by its claim's condition in the write (or read before a
        // refusal), so the common case is one round trip on remembered state.
        let target = Target {
            account: &charge.account_id,
            workspace: Some(&charge.workspace_id),
            month,
            start: StartFrom::Remembered,
        };
        let ended = self
            .move_money(target, |snapshot| {
                let mut moved = match debit(&snapshot.account, &snapshot.budget, charge.cost_cents)
                {
                    Ok(moved) => moved,
                    Err(refusal) => return Ok(Decision::Refused(refusal)),
                };
                if charge.category == Category::Actions {
                    if let Err(out_of_range) = moved.budget.count_actions(charge.quantity) {
                        return Ok(Decision::Refused(out_of_range.into()));
                    }
                }
                let result = UsageResult {
                    event_id: charge.event_id.clone(),
                    cost_cents: charge.cost_cents,
                    balance_after_cents: moved.account.balance_cents,
                    soft_cap_reached: moved.account.soft_cap_reached()
                        || moved.budget.soft_cap_reached(),
                };
                let transaction = (charge.cost_cents > 0).then(|| Transaction {
                    id: TransactionId::generate(charge.millis),
                    billing_account_id: charge.account_id.clone(),
                    workspace_id: Some(charge.workspace_id.clone()),
                    kind: TransactionType::Usage,
                    amount_cents: -charge.cost_cents,
                    balance_after_cents: moved.account.balance_cents,
                    description: format!("{} {}", charge.quantity, charge.category.as_str()),
                    category: Some(charge.category.as_str().to_owned()),
                    agent_id: charge.agent_id.clone(),
                    run_id: None,
                    reference: Some(charge.event_id.clone()),
                    created_at: charge.created_at.clone(),
                });
                let count = UsageCount {
                    workspace_id: charge.workspace_id.clone(),
                    account_id: charge.account_id.clone(),
                    agent_id: charge.agent_id.clone(),
                    day: charge.day,
                    month,
                    lines: vec![UsageLine {
                        category: charge.category,
                        quantity: i64::try_from(charge.quantity).unwrap_or(i64::MAX),
                        cost_cents: charge.cost_cents,
                    }],
                };
                // The claim is also the transaction's item (when it cost anything): one item
                // written, and the event's id guards both.
                let claim = UsageClaim {
                    pk: claim_pk.clone(),
                    sk: keys::USAGE_EVENT_SK.to_owned(),
                    fingerprint: charge.fingerprint.clone(),
                    result: result.clone(),
                    transaction_id: transaction.as_ref().map(|t| t.id.clone()),
                    created_at: charge.created_at.clone(),
                    usage_count: Some(count.clone()),
                };
                let mut claim_item = super::to_item(&claim)?;
                if let Some(transaction) = &transaction {
                    claim_item.extend(super::to_item(&TransactionItem::at(
                        claim.pk.clone(),
                        claim.sk.clone(),
                        transaction,
                    ))?);
                }
                let mut items = vec![Guarded::new(
                    Guard::Claim,
                    self.put_item(claim_item, Some(NEW_ITEM))?,
                )];
                items.extend(self.crossing_events(
                    snapshot,
                    &moved,
                    &charge.created_at,
                    charge.millis,
                )?);
                let actions_used = moved.budget.actions_used;
                Ok(Decision::Write {
                    moved,
                    items,
                    answer: (result, actions_used, count),
                })
            })
            .await?;
        Ok(match ended {
            Ended::Committed((result, actions_used, count))
            | Ended::Done((result, actions_used, count)) => {
                self.count_usage(Some(Counted {
                    source: claim_pk.clone(),
                    count,
                }))
                .await;
                UsageOutcome::Charged(result, actions_used)
            }
            // Charged before, or refused now.
            Ended::Refused(refusal) => match self.usage_claim(&claim_pk).await? {
                Some(claim) => self.answer_again(claim, &charge.fingerprint).await,
                None => UsageOutcome::Refused(refusal),
            },
            // Another delivery of this event won the race: answer as it did.
            Ended::Guarded(Guard::Claim) => {
                let claim = self
                    .usage_claim(&claim_pk)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("an event claim vanished".into()))?;
                self.answer_again(claim, &charge.fingerprint).await
            }
            Ended::Guarded(guard) => {
                return Err(StoreError::Corrupt(format!(
                    "a usage debit was refused by {guard:?}"
                )))
            }
        })
    }

    /// The first answer to a repeated event, or its mismatch. Its count is applied again: the
    /// first delivery's write may have committed with its answer lost, before it was counted
    /// (the marker keeps it to once).
    async fn answer_again(&self, claim: UsageClaim, fingerprint: &str) -> UsageOutcome {
        if claim.fingerprint != fingerprint {
            return UsageOutcome::Mismatch;
        }
        self.count_usage(claim.usage_count.map(|count| Counted {
            source: claim.pk,
            count,
        }))
        .await;
        UsageOutcome::Repeated(claim.result)
    }

    async fn usage_claim(&self, claim_pk: &str) -> Result<Option<UsageClaim>, StoreError> {
        self.get(claim_pk.to_owned(), keys::USAGE_EVENT_SK).await
    }
}
