//! The one movement engine: every operation that moves money (a usage debit, a run's
//! authorization, capture and settlement, a credit or refund, a plan period's grant and expiry,
//! the end of an auto-recharge) is a decision over the account's and budget's money state, and
//! this loop is what turns it into a committed write.
//!
//! In this process's turn on the account, the engine decides the movement on the state it
//! remembers (or reads), writes it conditional on the versions it decided on, and on a stale
//! version decides again on the state the refusal returned. A refusal is only ever final on
//! state read from the store just now. The movement's own items carry the [`Guard`] their
//! condition stands for, so a refused write says by name what refused it.

use super::ledger::{Written, MOVE_ATTEMPTS};
use super::{Store, StoreError};
use crate::domain::calendar::Month;
use crate::domain::ids::{BillingAccountId, WorkspaceId};
use crate::domain::ledger::{Moved, Refusal};
use aws_sdk_dynamodb::types::TransactWriteItem;

/// What the condition on one of a movement's own items stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Guard {
    /// An id that may be used once (a usage event's, a credit's claim): someone used it first.
    Claim,
    /// A new ledger transaction or billing event under a fresh id: it can only refuse if the
    /// store holds an item it never wrote.
    FreshId,
    /// The run at the version the movement read: it changed meanwhile.
    RunVersion,
    /// A payment's or a refund's record as the movement read it: it changed meanwhile.
    PaymentRecord,
    /// The caller's own item at this index of what it passed in (a lifecycle transition, a
    /// checkout's session).
    Caller(usize),
}

/// One of a movement's own items and what its condition guards.
pub(crate) struct Guarded {
    pub guard: Guard,
    pub item: TransactWriteItem,
}

impl Guarded {
    pub fn new(guard: Guard, item: TransactWriteItem) -> Self {
        Self { guard, item }
    }

    /// The caller's items, each guarded by its own index.
    pub fn callers(items: impl IntoIterator<Item = TransactWriteItem>) -> Vec<Self> {
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| Self::new(Guard::Caller(index), item))
            .collect()
    }
}

/// What a movement decided on one snapshot of the money state.
// One lives per attempt, on the stack, and is consumed at once: boxing would only add a copy.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decision<T> {
    /// Write `moved` with the movement's own `items`; once committed, answer `answer`.
    Write {
        moved: Moved,
        items: Vec<Guarded>,
        answer: T,
    },
    /// Nothing to move: answer this.
    Done(T),
    /// The state refuses it (final only on fresh state: the engine reads and decides again).
    Refused(Refusal),
}

/// How a movement ended.
pub(crate) enum Ended<T> {
    /// Written.
    Committed(T),
    /// Nothing needed writing.
    Done(T),
    /// Refused on state read just now.
    Refused(Refusal),
    /// One of the movement's own items refused the write; nothing was written.
    Guarded(Guard),
}

/// The state a movement is first decided on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartFrom {
    /// What this process remembers, if anything (one round trip fewer).
    Remembered,
    /// Read just now: for a movement whose every outcome (not only a refusal) depends on the
    /// latest state, such as a settlement's affordable spend.
    Fresh,
}

/// The money a movement is on.
pub(crate) struct Target<'a> {
    pub account: &'a BillingAccountId,
    pub workspace: Option<&'a WorkspaceId>,
    pub month: Month,
    pub start: StartFrom,
}

impl Store {
    /// Decides `decide` on the target's money state and writes it (see the module's comment).
    pub(crate) async fn move_money<T>(
        &self,
        target: Target<'_>,
        mut decide: impl FnMut(&super::ledger::Snapshot) -> Result<Decision<T>, StoreError>,
    ) -> Result<Ended<T>, StoreError> {
        let _turn = self.account_turn(target.account).await;
        let mut snapshot = match target.start {
            StartFrom::Remembered => {
                self.current_snapshot(target.account, target.workspace, target.month)
                    .await?
            }
            StartFrom::Fresh => {
                self.ledger_snapshot(target.account, target.workspace, target.month)
                    .await?
            }
        };
        for _ in 0..MOVE_ATTEMPTS {
            let (moved, items, answer) = match decide(&snapshot)? {
                Decision::Done(answer) => return Ok(Ended::Done(answer)),
                Decision::Refused(_) if !snapshot.fresh => {
                    snapshot = self.reread(&snapshot).await?;
                    continue;
                }
                Decision::Refused(refusal) => return Ok(Ended::Refused(refusal)),
                Decision::Write {
                    moved,
                    items,
                    answer,
                } => (moved, items, answer),
            };
            let (guards, items): (Vec<Guard>, Vec<TransactWriteItem>) =
                items.into_iter().map(|g| (g.guard, g.item)).unzip();
            match self.write_movement(&snapshot, &moved, items).await? {
                Written::Committed => return Ok(Ended::Committed(answer)),
                Written::Stale(fresh) => snapshot = *fresh,
                Written::Refused { index } => {
                    let guard = guards.get(index).copied().ok_or_else(|| {
                        StoreError::Corrupt("a refused movement named no item of its own".into())
                    })?;
                    return Ok(Ended::Guarded(guard));
                }
            }
        }
        Err(StoreError::Contention)
    }
}
