//! The ledger's rules, as pure functions over the money state of one account and one workspace
//! budget: what a debit, a hold, a capture or a release does, and when it is refused. The store
//! writes the result with one conditional transaction; these rules decide what to write.

use super::account::AutoRecharge;
use super::bounds::{add_kept, OutOfRange};
use super::calendar::Month;

/// An account's money. `available = balance - held` is never negative.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountMoney {
    pub balance_cents: i64,
    pub held_cents: i64,
    /// The month `spent_cents` and `credited_cents` count (`None` before money first moved).
    pub month: Option<Month>,
    pub spent_cents: i64,
    pub credited_cents: i64,
    pub soft_cap_cents: Option<i64>,
    pub hard_cap_cents: Option<i64>,
    /// Paid in (purchases, top-ups, auto-recharges) over the account's lifetime: it raises the
    /// rate-limit tier.
    pub paid_cents: i64,
    /// The owner's auto-recharge, when enabled.
    pub auto_recharge: Option<AutoRecharge>,
    /// An auto-recharge charge is under way: no second one starts for the same shortfall.
    pub recharge_pending: bool,
    /// Auto-recharges started this month (reserved when started, released if they fail),
    /// against `monthly_limit_cents`.
    pub recharged_cents: i64,
    /// Names the recharge under way (the ledger version that started it).
    pub recharge_marker: i64,
    /// What is left of each paid period's included plan credit in this account, oldest first:
    /// debits (of any of its workspaces) spend it before other credit, and a period's end
    /// expires only its own grant's rest, never purchased credit.
    pub included: Vec<IncludedGrant>,
    /// The auto-recharge threshold, whether or not auto-recharge is on: available credit
    /// falling below it is a `credits.low` of scope `balance`.
    pub recharge_threshold_cents: i64,
}

/// One paid period's included plan credit, and what is left of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncludedGrant {
    /// The workspace and period it was granted for: [`IncludedGrant::key`].
    pub grant: String,
    pub cents: i64,
}

impl IncludedGrant {
    /// Names one workspace's grant for the period starting at `period_start` (RFC 3339).
    pub fn key(workspace_id: &str, period_start: &str) -> String {
        format!("{workspace_id}#{period_start}")
    }

    pub fn is_for(&self, workspace_id: &str) -> bool {
        self.grant
            .split_once('#')
            .is_some_and(|(workspace, _)| workspace == workspace_id)
    }
}

/// A workspace's budget inside its account: its own caps, spend and holds, and what the plan
/// lifecycle and the rate limits count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkspaceBudget {
    /// As [`AccountMoney::month`].
    pub month: Option<Month>,
    pub spent_cents: i64,
    pub credited_cents: i64,
    pub held_cents: i64,
    pub soft_cap_cents: Option<i64>,
    pub hard_cap_cents: Option<i64>,
    /// Whose authority `hard_cap_cents` carries (`None` while there is no cap).
    pub hard_cap_set_by: Option<CapSetter>,
    /// Runs authorized and not yet settled.
    pub open_runs: i64,
    /// Actions used over the workspace's lifetime (the trial ends at the catalog's limit).
    pub actions_used: i64,
}

/// Who set a workspace's hard cap: the workspace's owner (a user key, or the service acting for
/// it), or the workspace's own key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapSetter {
    Owner,
    Workspace,
}

/// A workspace key tried to widen the spending authority its owner gave it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the workspace's hard cap of {cap_cents} cents was set by its owner: a workspace key may only lower it")]
pub struct OwnerCapProtected {
    pub cap_cents: i64,
}

/// Why money can't move.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not enough credit: {available_cents} cents available, {needed_cents} needed")]
    InsufficientCredits {
        available_cents: i64,
        needed_cents: i64,
    },
    #[error("the {scope} hard cap of {cap_cents} cents this month would be crossed ({committed_cents} spent or held, {needed_cents} more needed)")]
    HardCap {
        scope: CapScope,
        cap_cents: i64,
        committed_cents: i64,
        needed_cents: i64,
    },
    #[error("{open} runs are open, the rate-limit tier allows {limit} at once")]
    ConcurrentRuns { open: i64, limit: u32 },
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapScope {
    Account,
    Workspace,
}

impl std::fmt::Display for CapScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CapScope::Account => "account",
            CapScope::Workspace => "workspace",
        })
    }
}

/// Caps crossed by a change, to record as billing events in the same write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Crossings {
    pub soft: Vec<CapScope>,
    pub hard: Vec<CapScope>,
    /// Available credit fell below the account's recharge threshold (from at or above it).
    pub balance_low: bool,
}

impl AccountMoney {
    pub fn available_cents(&self) -> i64 {
        self.balance_cents - self.held_cents
    }

    /// This state as of `month`: a new month starts with nothing spent or credited. A month
    /// older than the state's own changes nothing (months never go back).
    pub fn in_month(mut self, month: Month) -> Self {
        if Some(month) > self.month {
            self.recharged_cents = 0;
        }
        start_month(
            &mut self.month,
            &mut self.spent_cents,
            &mut self.credited_cents,
            month,
        );
        self
    }

    pub fn soft_cap_reached(&self) -> bool {
        reached(self.soft_cap_cents, self.spent_cents)
    }

    pub fn hard_cap_reached(&self) -> bool {
        reached(
            self.hard_cap_cents,
            self.spent_cents.saturating_add(self.held_cents),
        )
    }

    /// The auto-recharge this state calls for: on, none under way, `available_cents` under
    /// the threshold, and the month's limit not crossed by one more.
    pub fn recharge_due(&self) -> Option<i64> {
        let settings = self.auto_recharge.as_ref().filter(|r| r.enabled)?;
        let within_limit = settings.monthly_limit_cents.is_none_or(|limit| {
            self.recharged_cents
                .checked_add(settings.amount_cents)
                .is_some_and(|total| total <= limit)
        });
        (!self.recharge_pending
            && self.available_cents() < settings.threshold_cents
            && settings.amount_cents > 0
            && within_limit)
            .then_some(settings.amount_cents)
    }

    /// Starts the recharge [`AccountMoney::recharge_due`] calls for when this state is the one
    /// that went under the threshold from `before` (one shortfall, one attempt: a declined card
    /// isn't charged again on every later debit), marks it under way and reserves it against
    /// the month's limit.
    pub fn start_recharge(&mut self, before: &AccountMoney) -> Option<i64> {
        let threshold = self.auto_recharge.as_ref()?.threshold_cents;
        if before.available_cents() < threshold {
            return None;
        }
        let amount = self.recharge_due()?;
        self.recharged_cents =
            add_kept("recharged_month_cents", self.recharged_cents, amount).ok()?;
        self.recharge_pending = true;
        Some(amount)
    }

    /// Ends the recharge under way; a failed one (`released`) no longer counts against the limit.
    pub fn end_recharge(&mut self, released_cents: i64) {
        self.recharge_pending = false;
        self.recharged_cents = (self.recharged_cents - released_cents).max(0);
    }

    /// The money of auto-recharge `marker` arrived: the recharge under way ends with its
    /// reservation kept. One that was given up meanwhile (its reservation released) is reserved
    /// again: the card was charged, so it counts against `monthly_limit_cents` all the same.
    pub fn recharge_paid(&mut self, marker: i64, amount_cents: i64) {
        if self.recharge_pending && marker == self.recharge_marker {
            self.end_recharge(0);
        } else {
            self.recharged_cents = self.recharged_cents.saturating_add(amount_cents.max(0));
        }
    }
}

impl WorkspaceBudget {
    /// Who the hard cap is set by after `by` sets it to `next`, or the refusal. A workspace key
    /// may set, lower or remove a cap of its own, but only lower one its owner set (removing
    /// or raising it is refused). A cap the workspace lowered from its owner's keeps the
    /// owner's authority, so lowering it and then raising it again can't get past the owner.
    pub fn hard_cap_change(
        &self,
        next: Option<i64>,
        by: CapSetter,
    ) -> Result<Option<CapSetter>, OwnerCapProtected> {
        // A cap recorded before its setter was kept is taken to be the owner's: the safe side.
        let owner_cap = self
            .hard_cap_cents
            .filter(|_| self.hard_cap_set_by != Some(CapSetter::Workspace));
        let Some(next) = next else {
            return match (by, owner_cap) {
                (CapSetter::Workspace, Some(cap_cents)) => Err(OwnerCapProtected { cap_cents }),
                _ => Ok(None),
            };
        };
        match (by, owner_cap) {
            (CapSetter::Workspace, Some(cap_cents)) if next > cap_cents => {
                Err(OwnerCapProtected { cap_cents })
            }
            (CapSetter::Workspace, Some(_)) => Ok(Some(CapSetter::Owner)),
            (by, _) => Ok(Some(by)),
        }
    }

    /// Counts `actions` more against the lifetime total (what the trial's action limit reads).
    pub fn count_actions(&mut self, actions: u64) -> Result<(), OutOfRange> {
        let actions = i64::try_from(actions).map_err(|_| OutOfRange("actions_used"))?;
        self.actions_used = add_kept("actions_used", self.actions_used, actions)?;
        Ok(())
    }

    /// As [`AccountMoney::in_month`].
    pub fn in_month(mut self, month: Month) -> Self {
        start_month(
            &mut self.month,
            &mut self.spent_cents,
            &mut self.credited_cents,
            month,
        );
        self
    }

    pub fn soft_cap_reached(&self) -> bool {
        reached(self.soft_cap_cents, self.spent_cents)
    }

    pub fn hard_cap_reached(&self) -> bool {
        reached(
            self.hard_cap_cents,
            self.spent_cents.saturating_add(self.held_cents),
        )
    }
}

/// Moves month-to-date figures to `month` if it is later: a new month starts with nothing
/// spent or credited, and months never go back.
fn start_month(current: &mut Option<Month>, spent: &mut i64, credited: &mut i64, month: Month) {
    if Some(month) > *current {
        *current = Some(month);
        *spent = 0;
        *credited = 0;
    }
}

fn reached(cap: Option<i64>, amount: i64) -> bool {
    cap.is_some_and(|cap| amount >= cap)
}

/// Whether `needed` more cents may be committed (spent or held): enough available credit, and
/// neither hard cap crossed by spend plus holds.
pub fn may_commit(
    account: &AccountMoney,
    budget: &WorkspaceBudget,
    needed: i64,
) -> Result<(), Refusal> {
    if needed <= 0 {
        return Ok(());
    }
    if needed > account.available_cents() {
        return Err(Refusal::InsufficientCredits {
            available_cents: account.available_cents(),
            needed_cents: needed,
        });
    }
    let checks = [
        (
            CapScope::Account,
            account.hard_cap_cents,
            account.spent_cents.saturating_add(account.held_cents),
        ),
        (
            CapScope::Workspace,
            budget.hard_cap_cents,
            budget.spent_cents.saturating_add(budget.held_cents),
        ),
    ];
    for (scope, cap, committed) in checks {
        if let Some(cap) = cap {
            if committed.saturating_add(needed) > cap {
                return Err(Refusal::HardCap {
                    scope,
                    cap_cents: cap,
                    committed_cents: committed,
                    needed_cents: needed,
                });
            }
        }
    }
    Ok(())
}

/// The state after a change, and the caps it crossed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    /// Spending (usage, a run's hold, capture or settlement) may start an auto-recharge; money
    /// taken back (a refund, an expiry, a negative adjustment) never does: a charge on the card
    /// seconds after a refund is what nobody expects.
    pub starts_recharge: bool,
    pub account: AccountMoney,
    pub budget: WorkspaceBudget,
    pub crossings: Crossings,
}

impl Moved {
    /// [`AccountMoney::start_recharge`] for this movement over `before`: only spending starts one.
    pub fn start_recharge(&mut self, before: &AccountMoney) -> Option<i64> {
        if !self.starts_recharge {
            return None;
        }
        self.account.start_recharge(before)
    }
}

fn crossings(
    before: (&AccountMoney, &WorkspaceBudget),
    after: (&AccountMoney, &WorkspaceBudget),
) -> Crossings {
    let mut crossed = Crossings::default();
    if !before.0.soft_cap_reached() && after.0.soft_cap_reached() {
        crossed.soft.push(CapScope::Account);
    }
    if !before.1.soft_cap_reached() && after.1.soft_cap_reached() {
        crossed.soft.push(CapScope::Workspace);
    }
    if !before.0.hard_cap_reached() && after.0.hard_cap_reached() {
        crossed.hard.push(CapScope::Account);
    }
    if !before.1.hard_cap_reached() && after.1.hard_cap_reached() {
        crossed.hard.push(CapScope::Workspace);
    }
    let threshold = after.0.recharge_threshold_cents;
    crossed.balance_low =
        before.0.available_cents() >= threshold && after.0.available_cents() < threshold;
    crossed
}

/// Spends `amount` now (a usage event).
pub fn debit(
    account: &AccountMoney,
    budget: &WorkspaceBudget,
    amount: i64,
) -> Result<Moved, Refusal> {
    may_commit(account, budget, amount)?;
    let mut next_account = account.clone();
    let mut next_budget = budget.clone();
    next_account.balance_cents = add_kept("balance_cents", account.balance_cents, -amount)?;
    next_account.spent_cents = add_kept("spent_cents", account.spent_cents, amount)?;
    next_budget.spent_cents = add_kept("spent_cents", budget.spent_cents, amount)?;
    spend_included(&mut next_account.included, amount);
    Ok(Moved {
        starts_recharge: true,
        crossings: crossings((account, budget), (&next_account, &next_budget)),
        account: next_account,
        budget: next_budget,
    })
}

/// Sets `amount` aside for a run: unavailable to anything else until settled.
pub fn hold(
    account: &AccountMoney,
    budget: &WorkspaceBudget,
    amount: i64,
) -> Result<Moved, Refusal> {
    may_commit(account, budget, amount)?;
    let mut next_account = account.clone();
    let mut next_budget = budget.clone();
    next_account.held_cents = add_kept("held_cents", account.held_cents, amount)?;
    next_budget.held_cents = add_kept("held_cents", budget.held_cents, amount)?;
    Ok(Moved {
        // A hold is how a run's spend is captured.
        starts_recharge: true,
        crossings: crossings((account, budget), (&next_account, &next_budget)),
        account: next_account,
        budget: next_budget,
    })
}

/// Settles a hold of `held`: spends `spend` of it and releases the rest. `spend` may exceed
/// the hold only by what could still be committed; the caller caps it with [`affordable`].
/// A run's hold, refused when the workspace already has `max_open_runs` runs open.
pub fn open_run(
    account: &AccountMoney,
    budget: &WorkspaceBudget,
    amount: i64,
    max_open_runs: Option<u32>,
) -> Result<Moved, Refusal> {
    if let Some(limit) = max_open_runs {
        if budget.open_runs >= i64::from(limit) {
            return Err(Refusal::ConcurrentRuns {
                open: budget.open_runs,
                limit,
            });
        }
    }
    let mut moved = hold(account, budget, amount)?;
    moved.budget.open_runs = add_kept("open_runs", budget.open_runs, 1)?;
    Ok(moved)
}

/// Ends a run: releases its hold, spends `spend`, closes it.
pub fn settle(
    account: &AccountMoney,
    budget: &WorkspaceBudget,
    held: i64,
    spend: i64,
) -> Result<Moved, Refusal> {
    let mut next_account = account.clone();
    let mut next_budget = budget.clone();
    // Releasing and spending only shrink what they touch: nothing to overflow.
    next_account.held_cents = account.held_cents.saturating_sub(held);
    next_budget.held_cents = budget.held_cents.saturating_sub(held);
    next_account.balance_cents = account.balance_cents.saturating_sub(spend);
    next_account.spent_cents = add_kept("spent_cents", account.spent_cents, spend)?;
    next_budget.spent_cents = add_kept("spent_cents", budget.spent_cents, spend)?;
    spend_included(&mut next_account.included, spend);
    next_budget.open_runs = (budget.open_runs - 1).max(0);
    Ok(Moved {
        starts_recharge: true,
        crossings: crossings((account, budget), (&next_account, &next_budget)),
        account: next_account,
        budget: next_budget,
    })
}

/// The most a run holding `held` may spend at settlement: its hold plus what could still be
/// committed beyond it (credit and caps).
pub fn affordable(account: &AccountMoney, budget: &WorkspaceBudget, held: i64) -> i64 {
    let mut room = account.available_cents();
    for (cap, committed) in [
        (
            account.hard_cap_cents,
            account.spent_cents.saturating_add(account.held_cents),
        ),
        (
            budget.hard_cap_cents,
            budget.spent_cents.saturating_add(budget.held_cents),
        ),
    ] {
        if let Some(cap) = cap {
            room = room.min(cap.saturating_sub(committed));
        }
    }
    held.saturating_add(room.max(0))
}

/// Adds credit (grant, purchase, refund…) or, for a negative `amount`, removes it without ever
/// taking `available` below zero.
pub fn credit(
    account: &AccountMoney,
    budget: &WorkspaceBudget,
    amount: i64,
) -> Result<Moved, Refusal> {
    if amount < 0 && -amount > account.available_cents() {
        return Err(Refusal::InsufficientCredits {
            available_cents: account.available_cents(),
            needed_cents: -amount,
        });
    }
    let mut next_account = account.clone();
    let mut next_budget = budget.clone();
    next_account.balance_cents = add_kept("balance_cents", account.balance_cents, amount)?;
    if amount > 0 {
        next_account.credited_cents = add_kept("credited_cents", account.credited_cents, amount)?;
        next_budget.credited_cents = add_kept("credited_cents", budget.credited_cents, amount)?;
    }
    Ok(Moved {
        starts_recharge: false,
        crossings: Crossings::default(),
        account: next_account,
        budget: next_budget,
    })
}

/// A refund of `refunded` cents of a payment: takes back what is still available of it (never
/// below 0) and lowers lifetime paid by all of it (never below 0), so a refunded purchase no
/// longer counts towards the rate-limit tier, spent or not. Returns the state and what was taken.
pub fn refund(
    account: &AccountMoney,
    budget: &WorkspaceBudget,
    refunded: i64,
) -> Result<(Moved, i64), Refusal> {
    let refunded = refunded.max(0);
    let taken = refunded.min(account.available_cents()).max(0);
    let mut moved = credit(account, budget, -taken)?;
    moved.account.paid_cents = account.paid_cents.saturating_sub(refunded).max(0);
    Ok((moved, taken))
}

/// Spends included credit first, oldest grant first.
fn spend_included(grants: &mut Vec<IncludedGrant>, amount: i64) {
    let mut left = amount.max(0);
    for grant in grants.iter_mut() {
        let spent = grant.cents.min(left);
        grant.cents -= spent;
        left -= spent;
    }
    grants.retain(|grant| grant.cents > 0);
}

/// What is left of `workspace_id`'s included credit in this account.
pub fn included_left(account: &AccountMoney, workspace_id: &str) -> i64 {
    account
        .included
        .iter()
        .filter(|grant| grant.is_for(workspace_id))
        .map(|grant| grant.cents)
        .sum()
}

/// A period's end: what is left of the grant `key` expires (never taking `available_cents`
/// below 0, and never more than that grant's rest: other credit is not touched). Returns the
/// state and the amount expired.
pub fn expire_included(
    account: &AccountMoney,
    budget: &WorkspaceBudget,
    key: &str,
) -> (Moved, i64) {
    let mut next_account = account.clone();
    let left: i64 = account
        .included
        .iter()
        .filter(|grant| grant.grant == key)
        .map(|grant| grant.cents)
        .sum();
    let expired = left.min(account.available_cents()).max(0);
    next_account.included.retain(|grant| grant.grant != key);
    next_account.balance_cents -= expired;
    (
        Moved {
            starts_recharge: false,
            crossings: Crossings::default(),
            account: next_account,
            budget: budget.clone(),
        },
        expired,
    )
}

/// A paid period's start: its included credit `grant` (for the grant `key`) is credited and
/// spent before other credit.
pub fn grant_included(
    account: &AccountMoney,
    budget: &WorkspaceBudget,
    key: &str,
    grant: i64,
) -> Result<Moved, OutOfRange> {
    let mut next_account = account.clone();
    let mut next_budget = budget.clone();
    next_account.balance_cents = add_kept("balance_cents", account.balance_cents, grant)?;
    next_account.credited_cents = add_kept("credited_cents", account.credited_cents, grant)?;
    next_budget.credited_cents = add_kept("credited_cents", budget.credited_cents, grant)?;
    if grant > 0 && !account.included.iter().any(|g| g.grant == key) {
        next_account.included.push(IncludedGrant {
            grant: key.to_owned(),
            cents: grant,
        });
    }
    Ok(Moved {
        starts_recharge: false,
        crossings: Crossings::default(),
        account: next_account,
        budget: next_budget,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(text: &str) -> Month {
        Month::parse(text).unwrap()
    }

    fn account(balance: i64) -> AccountMoney {
        AccountMoney {
            balance_cents: balance,
            month: Month::parse("2026-03"),
            ..Default::default()
        }
    }

    fn budget() -> WorkspaceBudget {
        WorkspaceBudget {
            month: Month::parse("2026-03"),
            ..Default::default()
        }
    }

    #[test]
    fn a_workspace_key_may_only_lower_a_hard_cap_its_owner_set() {
        let capped = |cap: i64, by: CapSetter| WorkspaceBudget {
            hard_cap_cents: Some(cap),
            hard_cap_set_by: Some(by),
            ..budget()
        };
        let owners = capped(1000, CapSetter::Owner);
        let refused = Err(OwnerCapProtected { cap_cents: 1000 });
        assert_eq!(owners.hard_cap_change(None, CapSetter::Workspace), refused);
        assert_eq!(
            owners.hard_cap_change(Some(1001), CapSetter::Workspace),
            refused
        );
        assert_eq!(
            owners.hard_cap_change(Some(1000), CapSetter::Workspace),
            Ok(Some(CapSetter::Owner)),
            "lowered (or kept), it is still the owner's"
        );
        assert_eq!(
            owners.hard_cap_change(None, CapSetter::Owner),
            Ok(None),
            "the owner may remove it"
        );
        assert_eq!(
            owners.hard_cap_change(Some(5000), CapSetter::Owner),
            Ok(Some(CapSetter::Owner))
        );
        let own = capped(1000, CapSetter::Workspace);
        assert_eq!(
            own.hard_cap_change(Some(5000), CapSetter::Workspace),
            Ok(Some(CapSetter::Workspace))
        );
        assert_eq!(own.hard_cap_change(None, CapSetter::Workspace), Ok(None));
        assert_eq!(
            budget().hard_cap_change(Some(10), CapSetter::Workspace),
            Ok(Some(CapSetter::Workspace))
        );
        let unrecorded = WorkspaceBudget {
            hard_cap_cents: Some(1000),
            ..budget()
        };
        assert_eq!(
            unrecorded.hard_cap_change(None, CapSetter::Workspace),
            refused
        );
    }

    #[test]
    fn a_movement_that_would_take_a_kept_sum_out_of_range_is_refused() {
        use crate::domain::bounds::MAX_KEPT;
        let full = account(MAX_KEPT - 5);
        assert!(credit(&full, &budget(), 5).is_ok());
        assert_eq!(
            credit(&full, &budget(), 6),
            Err(Refusal::OutOfRange(OutOfRange("balance_cents")))
        );
        let mut spent = account(100);
        spent.spent_cents = MAX_KEPT;
        assert_eq!(
            debit(&spent, &budget(), 1),
            Err(Refusal::OutOfRange(OutOfRange("spent_cents")))
        );
        let held = hold(&account(100), &budget(), 10).unwrap();
        let mut ws = held.budget.clone();
        ws.spent_cents = MAX_KEPT - 3;
        assert!(settle(&held.account, &ws, 10, 3).is_ok());
        assert_eq!(
            settle(&held.account, &ws, 10, 4),
            Err(Refusal::OutOfRange(OutOfRange("spent_cents")))
        );
        assert!(grant_included(&full, &budget(), "ws#p", 6).is_err());
        let mut busy = budget();
        busy.open_runs = MAX_KEPT;
        assert_eq!(
            open_run(&account(100), &busy, 1, None),
            Err(Refusal::OutOfRange(OutOfRange("open_runs")))
        );
    }

    #[test]
    fn a_debit_never_overdraws() {
        assert!(debit(&account(5), &budget(), 5).is_ok());
        assert_eq!(
            debit(&account(5), &budget(), 6),
            Err(Refusal::InsufficientCredits {
                available_cents: 5,
                needed_cents: 6
            })
        );
        let held = hold(&account(5), &budget(), 3).unwrap();
        assert!(
            debit(&held.account, &held.budget, 3).is_err(),
            "holds are unavailable"
        );
    }

    #[test]
    fn the_hard_cap_counts_holds_at_the_boundary() {
        let mut capped = account(1000);
        capped.hard_cap_cents = Some(100);
        capped.spent_cents = 60;
        capped.held_cents = 20;
        assert!(debit(&capped, &budget(), 19).is_ok(), "one under");
        assert!(debit(&capped, &budget(), 20).is_ok(), "at");
        assert!(
            matches!(
                debit(&capped, &budget(), 21),
                Err(Refusal::HardCap {
                    scope: CapScope::Account,
                    ..
                })
            ),
            "one over"
        );
        let mut ws = budget();
        ws.hard_cap_cents = Some(10);
        assert!(matches!(
            hold(&account(1000), &ws, 11),
            Err(Refusal::HardCap {
                scope: CapScope::Workspace,
                ..
            })
        ));
    }

    #[test]
    fn crossing_the_soft_cap_is_reported_once() {
        let mut soft = account(1000);
        soft.soft_cap_cents = Some(50);
        let first = debit(&soft, &budget(), 50).unwrap();
        assert_eq!(first.crossings.soft, vec![CapScope::Account]);
        assert!(first.account.soft_cap_reached());
        let second = debit(&first.account, &first.budget, 1).unwrap();
        assert!(second.crossings.soft.is_empty());
    }

    #[test]
    fn falling_below_the_recharge_threshold_is_reported_once_from_above() {
        let mut low = account(600);
        low.recharge_threshold_cents = 500;
        let above = debit(&low, &budget(), 100).unwrap();
        assert!(!above.crossings.balance_low, "600 → 500 is not below");
        let below = debit(&above.account, &above.budget, 1).unwrap();
        assert!(below.crossings.balance_low);
        let further = debit(&below.account, &below.budget, 1).unwrap();
        assert!(!further.crossings.balance_low);
    }

    #[test]
    fn settling_spends_part_of_a_hold_and_releases_the_rest() {
        let held = hold(&account(100), &budget(), 40).unwrap();
        let settled = settle(&held.account, &held.budget, 40, 25).unwrap();
        assert_eq!(settled.account.balance_cents, 75);
        assert_eq!(settled.account.held_cents, 0);
        assert_eq!(settled.account.spent_cents, 25);
        assert_eq!(settled.budget.held_cents, 0);
    }

    #[test]
    fn a_run_may_spend_its_hold_plus_what_is_still_affordable() {
        let held = hold(&account(100), &budget(), 40).unwrap();
        assert_eq!(affordable(&held.account, &held.budget, 40), 100);
        let mut capped = held.account.clone();
        capped.hard_cap_cents = Some(50);
        assert_eq!(affordable(&capped, &held.budget, 40), 50);
    }

    #[test]
    fn a_new_month_starts_with_nothing_spent() {
        let mut spent = account(100);
        spent.spent_cents = 70;
        assert_eq!(spent.clone().in_month(month("2026-03")).spent_cents, 70);
        assert_eq!(spent.clone().in_month(month("2026-04")).spent_cents, 0);
        assert_eq!(
            spent.in_month(month("2026-02")).spent_cents,
            70,
            "months never go back"
        );
    }

    #[test]
    fn a_negative_adjustment_never_takes_available_below_zero() {
        let held = hold(&account(100), &budget(), 60).unwrap();
        assert!(credit(&held.account, &held.budget, -40).is_ok());
        assert!(credit(&held.account, &held.budget, -41).is_err());
    }

    #[test]
    fn included_credit_is_spent_first_and_its_rest_expires_at_the_period_end() {
        let granted = grant_included(&account(100), &budget(), "ws_a#p1", 500).unwrap();
        assert_eq!(granted.account.balance_cents, 600);
        assert_eq!(included_left(&granted.account, "ws_a"), 500);
        assert!(!granted.starts_recharge);
        let spent = debit(&granted.account, &granted.budget, 200).unwrap();
        assert_eq!(included_left(&spent.account, "ws_a"), 300);
        let (expired_state, expired) = expire_included(&spent.account, &spent.budget, "ws_a#p1");
        assert_eq!(expired, 300);
        assert_eq!(
            expired_state.account.balance_cents, 100,
            "purchased credit stays"
        );
        assert!(!expired_state.starts_recharge);
        // Held money never expires: only what is available.
        let held = hold(&spent.account, &spent.budget, 350).unwrap();
        let (_, expired) = expire_included(&held.account, &held.budget, "ws_a#p1");
        assert_eq!(expired, 50);
        // A grant expires once.
        let (again, expired) = expire_included(&expired_state.account, &spent.budget, "ws_a#p1");
        assert_eq!((again.account.balance_cents, expired), (100, 0));
    }

    #[test]
    fn workspaces_sharing_an_account_spend_grants_oldest_first_and_expire_only_what_is_left() {
        // Purchased 1000; two workspaces' grants of 500 each.
        let a = grant_included(&account(1000), &budget(), "ws_a#p1", 500).unwrap();
        let both = grant_included(&a.account, &budget(), "ws_b#p1", 500).unwrap();
        // Workspace b spends 300: it comes out of the oldest grant (a's).
        let spent = debit(&both.account, &budget(), 300).unwrap();
        assert_eq!(included_left(&spent.account, "ws_a"), 200);
        assert_eq!(included_left(&spent.account, "ws_b"), 500);
        let (after_a, expired_a) = expire_included(&spent.account, &budget(), "ws_a#p1");
        let (after_b, expired_b) = expire_included(&after_a.account, &budget(), "ws_b#p1");
        assert_eq!(expired_a + expired_b, 700, "only the unspent grants expire");
        assert_eq!(
            after_b.account.balance_cents, 1000,
            "never purchased credit"
        );
    }

    #[test]
    fn open_runs_are_limited_and_settling_closes_them() {
        let first = open_run(&account(100), &budget(), 10, Some(1)).unwrap();
        assert_eq!(first.budget.open_runs, 1);
        assert_eq!(
            open_run(&first.account, &first.budget, 10, Some(1)),
            Err(Refusal::ConcurrentRuns { open: 1, limit: 1 })
        );
        let settled = settle(&first.account, &first.budget, 10, 4).unwrap();
        assert_eq!(settled.budget.open_runs, 0);
        assert!(open_run(&settled.account, &settled.budget, 10, Some(1)).is_ok());
    }

    #[test]
    fn only_spending_starts_a_recharge() {
        let mut money = account(600);
        money.paid_cents = 5000;
        money.auto_recharge = Some(AutoRecharge {
            enabled: true,
            threshold_cents: 500,
            amount_cents: 2000,
            monthly_limit_cents: None,
        });
        let mut taken_back = credit(&money, &budget(), -200).unwrap();
        assert_eq!(taken_back.start_recharge(&money), None, "an adjustment");
        let (mut refunded, taken) = refund(&money, &budget(), 5000).unwrap();
        assert_eq!((taken, refunded.account.available_cents()), (600, 0));
        assert_eq!(refunded.account.paid_cents, 0, "all of it refunded");
        assert_eq!(refunded.start_recharge(&money), None, "a refund");
        let granted = grant_included(&money, &budget(), "ws_a#p1", 200).unwrap();
        let (mut expired, _) = expire_included(&granted.account, &budget(), "ws_a#p1");
        assert_eq!(expired.start_recharge(&granted.account), None, "an expiry");
        let mut spent = debit(&money, &budget(), 200).unwrap();
        assert_eq!(spent.start_recharge(&money), Some(2000));
        let mut held = hold(&money, &budget(), 200).unwrap();
        assert_eq!(held.start_recharge(&money), Some(2000));
        let mut settled = settle(&money, &budget(), 0, 200).unwrap();
        assert_eq!(settled.start_recharge(&money), Some(2000));
    }

    #[test]
    fn a_recharge_paid_after_it_was_given_up_still_counts_against_the_limit() {
        let mut money = account(600);
        money.auto_recharge = Some(AutoRecharge {
            enabled: true,
            threshold_cents: 500,
            amount_cents: 2000,
            monthly_limit_cents: Some(3000),
        });
        let mut low = debit(&money, &budget(), 200).unwrap();
        assert_eq!(low.start_recharge(&money), Some(2000));
        low.account.recharge_marker = 7;
        let mut given_up = low.account.clone();
        given_up.end_recharge(2000);
        assert_eq!(given_up.recharged_cents, 0);
        given_up.recharge_paid(7, 2000);
        assert_eq!(given_up.recharged_cents, 2000, "reserved again");
        let mut on_time = low.account.clone();
        on_time.recharge_paid(7, 2000);
        assert_eq!(
            (on_time.recharged_cents, on_time.recharge_pending),
            (2000, false)
        );
    }

    #[test]
    fn one_recharge_per_shortfall_within_the_monthly_limit() {
        let mut money = account(600);
        money.auto_recharge = Some(AutoRecharge {
            enabled: true,
            threshold_cents: 500,
            amount_cents: 2000,
            monthly_limit_cents: Some(3000),
        });
        assert_eq!(money.recharge_due(), None, "600 is not under 500");
        let mut low = debit(&money, &budget(), 200).unwrap().account;
        assert_eq!(low.start_recharge(&money), Some(2000));
        assert_eq!(low.recharge_due(), None, "one under way");
        let mut lower = debit(&low, &budget(), 100).unwrap().account;
        assert_eq!(lower.start_recharge(&low), None);
        // It failed: released, but a debit that stays under the threshold is the same
        // shortfall: no second attempt.
        lower.end_recharge(2000);
        let mut still_low = debit(&lower, &budget(), 10).unwrap().account;
        assert_eq!(still_low.start_recharge(&lower), None);
        // Back over the threshold and under again: a new shortfall.
        let refilled = credit(&still_low, &budget(), 500).unwrap().account;
        let mut short_again = debit(&refilled, &budget(), 300).unwrap().account;
        assert_eq!(short_again.start_recharge(&refilled), Some(2000));
        // A second full recharge in the month would cross the 3000 limit.
        short_again.end_recharge(0);
        assert_eq!(short_again.recharge_due(), None);
        assert_eq!(
            short_again
                .clone()
                .in_month(month("2026-04"))
                .recharge_due(),
            Some(2000),
            "a new month"
        );
    }
}
