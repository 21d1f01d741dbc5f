//! Service credits and adjustments: money in (or, for a negative adjustment, out) outside usage.

use super::ledger::{Written, MOVE_ATTEMPTS};
use super::{keys, Store, StoreError, NEW_ITEM};
use crate::domain::bounds::add_kept;
use crate::domain::ledger::{credit, Refusal};
use crate::domain::transaction::{Transaction, TransactionType};
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde::{Deserialize, Serialize};

pub enum CreditOutcome {
    Credited(Transaction),
    /// Applied before under the same idempotency key: that transaction.
    Repeated(Transaction),
    /// One of the caller's own items (e.g. a webhook event's claim) refused: nothing changed.
    NotApplied,
    Refused(Refusal),
}

/// Binds an idempotency key to the transaction it created, in the same write, so a retry that
/// outlives the key's response record still can't credit twice.
#[derive(Serialize, Deserialize)]
struct CreditClaim {
    pk: String,
    sk: String,
    transaction: Transaction,
}

impl Store {
    /// Applies `transaction.amount_cents` to its account (and its workspace's credited total),
    /// writing the transaction with the balance after. `claim` is the caller's idempotency scope
    /// and key, if any; `extra` items go in the same transaction.
    pub async fn apply_credit(
        &self,
        transaction: &Transaction,
        claim: Option<&str>,
        extra: Vec<TransactWriteItem>,
    ) -> Result<CreditOutcome, StoreError> {
        self.apply_recharge_credit(transaction, claim, extra, None)
            .await
    }

    /// [`Store::apply_credit`] for an auto-recharge's money: it ends the recharge `marker` (when
    /// that is the one under way; a late payment of an earlier one ends nothing).
    pub async fn apply_recharge_credit(
        &self,
        transaction: &Transaction,
        claim: Option<&str>,
        extra: Vec<TransactWriteItem>,
        marker: Option<i64>,
    ) -> Result<CreditOutcome, StoreError> {
        let claim_pk = claim.map(|c| format!("CREDIT#{c}"));
        if let Some(pk) = &claim_pk {
            if let Some(found) = self
                .get::<CreditClaim>(pk.clone(), keys::CREDIT_CLAIM_SK)
                .await?
            {
                return Ok(CreditOutcome::Repeated(found.transaction));
            }
        }
        let month = super::month_of(&transaction.created_at).to_owned();
        let account = &transaction.billing_account_id;
        let workspace = transaction.workspace_id.as_ref();
        let _turn = self.account_turn(account).await;
        let mut snapshot = self.current_snapshot(account, workspace, &month).await?;
        for _ in 0..MOVE_ATTEMPTS {
            let mut moved = match credit(
                &snapshot.account,
                &snapshot.budget,
                transaction.amount_cents,
            ) {
                Ok(moved) => moved,
                Err(_) if !snapshot.fresh => {
                    snapshot = self.reread(&snapshot).await?;
                    continue;
                }
                Err(refusal) => return Ok(CreditOutcome::Refused(refusal)),
            };
            if transaction.kind.is_payment() {
                match add_kept(
                    "lifetime_paid_cents",
                    moved.account.paid_cents,
                    transaction.amount_cents,
                ) {
                    Ok(paid) => moved.account.paid_cents = paid,
                    Err(out_of_range) => return Ok(CreditOutcome::Refused(out_of_range.into())),
                }
            }
            // A payment refunded to the card no longer counts as paid.
            if transaction.kind == TransactionType::Refund && transaction.amount_cents < 0 {
                moved.account.paid_cents = moved
                    .account
                    .paid_cents
                    .saturating_add(transaction.amount_cents)
                    .max(0);
            }
            if marker.is_some_and(|m| m == moved.account.recharge_marker) {
                // Its money arrived: that recharge is over.
                moved.account.end_recharge(0);
            }
            let written = Transaction {
                balance_after_cents: moved.account.balance_cents,
                ..transaction.clone()
            };
            let mut items = vec![self.transaction_put(&written)?];
            if let Some(pk) = &claim_pk {
                items.push(self.put(
                    CreditClaim {
                        pk: pk.clone(),
                        sk: keys::CREDIT_CLAIM_SK.to_owned(),
                        transaction: written.clone(),
                    },
                    Some(NEW_ITEM),
                )?);
            }
            let own = items.len();
            items.extend(extra.iter().cloned());
            match self.write_movement(&snapshot, &moved, items).await? {
                Written::Committed => return Ok(CreditOutcome::Credited(written)),
                Written::Stale(fresh) => snapshot = *fresh,
                Written::Refused { index } if index >= own => return Ok(CreditOutcome::NotApplied),
                Written::Refused { index: 1 } => {
                    let pk = claim_pk.clone().unwrap_or_default();
                    let found: CreditClaim = self
                        .get(pk, keys::CREDIT_CLAIM_SK)
                        .await?
                        .ok_or_else(|| StoreError::Corrupt("a credit claim vanished".into()))?;
                    return Ok(CreditOutcome::Repeated(found.transaction));
                }
                Written::Refused { .. } => {
                    return Err(StoreError::Corrupt(
                        "a fresh transaction id already exists".into(),
                    ))
                }
            }
        }
        Err(StoreError::Contention)
    }
}
