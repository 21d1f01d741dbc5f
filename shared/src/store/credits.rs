//! Credits outside usage: grants and adjustments (a negative one takes money out), payments
//! (with the refunds Stripe reported before they landed) and refunds.

use super::ledger::{Snapshot, MOVE_ATTEMPTS};
use super::movement::{Decision, Ended, Guard, Guarded, StartFrom, Target};
use super::payments::EarlyRefund;
use super::{keys, Store, StoreError, NEW_ITEM};
use crate::domain::bounds::add_kept;
use crate::domain::ids::TransactionId;
use crate::domain::ledger::{credit, refund, Refusal};
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

/// A Stripe payment a credit is for.
pub struct PaidBy<'a> {
    pub payment_intent_id: &'a str,
    /// The auto-recharge whose money it is, if it is one.
    pub recharge_marker: Option<i64>,
}

/// What a credit moves besides its own amount.
enum Effects<'a> {
    /// Only the amount (a grant, an adjustment).
    None,
    /// A payment: it counts as paid, it is recorded as crediting its account, a refund Stripe
    /// reported before it landed is taken back with it, and an auto-recharge's money ends it.
    Payment(PaidBy<'a>),
    /// A refund of `refunded_cents` of charge `charge_id`: what is still available of it is
    /// taken back (the transaction's amount is decided here), lifetime paid drops by all of it.
    Refund {
        charge_id: &'a str,
        refunded_cents: i64,
    },
}

/// The description of a refund that took `taken` of `refunded` cents back.
fn refund_description(charge_id: &str, refunded: i64, taken: i64) -> String {
    if taken < refunded {
        format!(
            "refund of charge {charge_id}: {refunded} cents refunded, {taken} were still available"
        )
    } else {
        format!("refund of charge {charge_id}")
    }
}

/// `at` (RFC 3339) in Unix milliseconds; ids generated in one process sort after earlier ones
/// whatever time they are given.
fn millis_of(at: &str) -> u64 {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map(crate::clock::unix_millis)
        .unwrap_or(0)
}

/// Everything a credit is decided from, besides the money state.
struct CreditMovement<'a> {
    transaction: &'a Transaction,
    claim_pk: Option<&'a str>,
    extra: &'a [TransactWriteItem],
    effects: &'a Effects<'a>,
    remembered: Option<&'a Remembered>,
}

/// A refund remembered before its payment was credited, and what of it is left to take.
struct Remembered {
    early: EarlyRefund,
    taken_before: i64,
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
        self.move_credit(transaction, claim, extra, Effects::None)
            .await
    }

    /// [`Store::apply_credit`] for a Stripe payment's money: it raises lifetime paid, records
    /// the account it credited, takes back (never below 0 available) what Stripe reported
    /// refunded before it landed, and, for an auto-recharge, ends the recharge under way (a
    /// late payment of one given up is counted against the month's limit again).
    pub async fn apply_payment_credit(
        &self,
        transaction: &Transaction,
        claim: Option<&str>,
        extra: Vec<TransactWriteItem>,
        paid_by: PaidBy<'_>,
    ) -> Result<CreditOutcome, StoreError> {
        self.move_credit(transaction, claim, extra, Effects::Payment(paid_by))
            .await
    }

    /// Takes back `refunded_cents` of charge `charge_id`'s payment from `transaction`'s account:
    /// what is still available of it (the transaction's amount and description are decided
    /// here, on the state the write is conditional on), lowering lifetime paid by all of it.
    pub async fn apply_refund(
        &self,
        transaction: &Transaction,
        charge_id: &str,
        refunded_cents: i64,
        claim: Option<&str>,
        extra: Vec<TransactWriteItem>,
    ) -> Result<CreditOutcome, StoreError> {
        self.move_credit(
            transaction,
            claim,
            extra,
            Effects::Refund {
                charge_id,
                refunded_cents,
            },
        )
        .await
    }

    /// The remembered refund of a payment about to be credited, with what was taken of it.
    async fn remembered_refund(
        &self,
        effects: &Effects<'_>,
    ) -> Result<Option<Remembered>, StoreError> {
        let Effects::Payment(paid_by) = effects else {
            return Ok(None);
        };
        let Some(early) = self
            .payment_record(paid_by.payment_intent_id)
            .await?
            .early_refund
        else {
            return Ok(None);
        };
        let taken_before = self.refunded_so_far(&early.charge_id).await?;
        Ok(Some(Remembered {
            early,
            taken_before,
        }))
    }

    async fn move_credit(
        &self,
        transaction: &Transaction,
        claim: Option<&str>,
        extra: Vec<TransactWriteItem>,
        effects: Effects<'_>,
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
        let month = super::month_of(&transaction.created_at)?;
        let mut start = StartFrom::Remembered;
        for _ in 0..MOVE_ATTEMPTS {
            let remembered = self.remembered_refund(&effects).await?;
            let target = Target {
                account: &transaction.billing_account_id,
                workspace: transaction.workspace_id.as_ref(),
                month,
                start,
            };
            let ended = self
                .move_money(target, |snapshot| {
                    let movement = CreditMovement {
                        transaction,
                        claim_pk: claim_pk.as_deref(),
                        extra: &extra,
                        effects: &effects,
                        remembered: remembered.as_ref(),
                    };
                    self.credit_decision(snapshot, &movement)
                })
                .await?;
            match ended {
                Ended::Committed(written) | Ended::Done(written) => {
                    return Ok(CreditOutcome::Credited(written))
                }
                Ended::Refused(refusal) => return Ok(CreditOutcome::Refused(refusal)),
                Ended::Guarded(Guard::Caller(_)) => return Ok(CreditOutcome::NotApplied),
                // A refund was remembered (or taken) meanwhile: decide again with it.
                Ended::Guarded(Guard::PaymentRecord) => start = StartFrom::Fresh,
                Ended::Guarded(Guard::Claim) => {
                    let pk = claim_pk.clone().unwrap_or_default();
                    let found: CreditClaim = self
                        .get(pk, keys::CREDIT_CLAIM_SK)
                        .await?
                        .ok_or_else(|| StoreError::Corrupt("a credit claim vanished".into()))?;
                    return Ok(CreditOutcome::Repeated(found.transaction));
                }
                Ended::Guarded(guard) => {
                    return Err(StoreError::Corrupt(format!(
                        "a credit was refused by {guard:?}"
                    )))
                }
            }
        }
        Err(StoreError::Contention)
    }

    /// A credit, payment or refund decided on `snapshot`.
    fn credit_decision(
        &self,
        snapshot: &Snapshot,
        movement: &CreditMovement<'_>,
    ) -> Result<Decision<Transaction>, StoreError> {
        let CreditMovement {
            transaction,
            claim_pk,
            extra,
            effects,
            remembered,
        } = movement;
        let decided = match effects {
            Effects::Refund { refunded_cents, .. } => {
                refund(&snapshot.account, &snapshot.budget, *refunded_cents)
                    .map(|(moved, taken)| (moved, -taken))
            }
            _ => credit(
                &snapshot.account,
                &snapshot.budget,
                transaction.amount_cents,
            )
            .map(|moved| (moved, transaction.amount_cents)),
        };
        let (mut moved, amount_cents) = match decided {
            Ok(decided) => decided,
            Err(refusal) => return Ok(Decision::Refused(refusal)),
        };
        let mut written = Transaction {
            amount_cents,
            balance_after_cents: moved.account.balance_cents,
            ..(*transaction).clone()
        };
        if let Effects::Refund {
            charge_id,
            refunded_cents,
        } = effects
        {
            written.description = refund_description(charge_id, *refunded_cents, -amount_cents);
        }
        // The refund Stripe reported before this payment landed: taken back in this write.
        let mut late_refund = None;
        let refunding = matches!(effects, Effects::Refund { .. });
        if transaction.kind.is_payment() && !refunding {
            match add_kept(
                "lifetime_paid_cents",
                moved.account.paid_cents,
                transaction.amount_cents,
            ) {
                Ok(paid) => moved.account.paid_cents = paid,
                Err(out_of_range) => return Ok(Decision::Refused(out_of_range.into())),
            }
        }
        if let Effects::Payment(paid_by) = effects {
            if let Some(marker) = paid_by.recharge_marker {
                moved
                    .account
                    .recharge_paid(marker, transaction.amount_cents);
            }
            if let Some(Remembered {
                early,
                taken_before,
            }) = remembered
            {
                let refunded = early.refunded_cents - taken_before;
                if refunded > 0 {
                    let (after, taken) = match refund(&moved.account, &moved.budget, refunded) {
                        Ok(after) => after,
                        Err(refusal) => return Ok(Decision::Refused(refusal)),
                    };
                    moved.account = after.account;
                    moved.budget = after.budget;
                    late_refund = Some(Transaction {
                        id: TransactionId::generate(millis_of(&transaction.created_at)),
                        kind: TransactionType::Refund,
                        amount_cents: -taken,
                        balance_after_cents: moved.account.balance_cents,
                        description: refund_description(&early.charge_id, refunded, taken),
                        reference: Some(early.charge_id.clone()),
                        ..(*transaction).clone()
                    });
                }
            }
        }
        let mut items = vec![Guarded::new(
            Guard::FreshId,
            self.transaction_put(&written)?,
        )];
        if let Some(pk) = claim_pk {
            items.push(Guarded::new(
                Guard::Claim,
                self.put(
                    CreditClaim {
                        pk: (*pk).to_owned(),
                        sk: keys::CREDIT_CLAIM_SK.to_owned(),
                        transaction: written.clone(),
                    },
                    Some(NEW_ITEM),
                )?,
            ));
        }
        if let Effects::Payment(paid_by) = effects {
            let early = remembered.map(|r| &r.early);
            items.push(Guarded::new(
                Guard::PaymentRecord,
                self.payment_account(
                    paid_by.payment_intent_id,
                    &transaction.billing_account_id,
                    early,
                )?,
            ));
            if let (
                Some(refund),
                Some(Remembered {
                    early,
                    taken_before,
                }),
            ) = (&late_refund, remembered)
            {
                items.push(Guarded::new(Guard::FreshId, self.transaction_put(refund)?));
                items.push(Guarded::new(
                    Guard::PaymentRecord,
                    self.refund_progress(&early.charge_id, *taken_before, early.refunded_cents)?,
                ));
            }
        }
        items.extend(Guarded::callers(extra.iter().cloned()));
        Ok(Decision::Write {
            moved,
            items,
            answer: written,
        })
    }
}
