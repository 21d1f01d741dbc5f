//! The plan lifecycle as a state machine: a workspace's plan status, the dates that move it, and
//! the triggers (time, usage, invoices, the subscription) that do. Pure: the store applies a
//! transition as one conditional write, and whoever fires a trigger first wins.
//!
//! | from | to | trigger |
//! |---|---|---|
//! | trial | promo | a payment method is attached (the subscription starts, its free period is the promo) |
//! | trial | readonly | the trial's days pass, or its actions are used up |
//! | promo | active | the promo's end is invoiced at the plan price and the invoice is paid (a period starts) |
//! | promo, active | suspended | an invoice's payment fails |
//! | suspended, readonly | active | an invoice is paid (a period starts) |
//! | promo, active, suspended | deleted | the period ends after a cancellation, or the subscription is canceled |
//! | suspended | deleted | the grace passes unpaid (where this backend bills: Stripe cancels instead) |
//! | readonly | deleted | the grace passes without a payment method |
//!
//! A workspace whose plan has no price has no subscription: its periods roll over by date. A
//! subscribed one is renewed only by paid invoices: Stripe's, or (offline) the ones the lifecycle
//! job makes at each due time ([`Trigger::InvoiceDue`]). Included credit is granted per paid
//! period ([`Transition::period_started`]), once.

use super::workspace::PlanStatus;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// A length of time in calendar months, or (shortened by local configuration) in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    Months(u32),
    Seconds(i64),
}

impl Span {
    pub fn after(self, at: OffsetDateTime) -> OffsetDateTime {
        match self {
            Span::Months(months) => add_months(at, months),
            Span::Seconds(seconds) => at + Duration::seconds(seconds),
        }
    }
}

/// The lifecycle's durations, from the catalog (or shortened by configuration, locally).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durations {
    pub trial: Duration,
    pub trial_actions: u64,
    pub promo: Span,
    pub grace: Duration,
    /// One billing period.
    pub period: Span,
}

/// Who invoices a workspace's subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Billing {
    /// Stripe invoices it and reports by webhook; Stripe's retries end an unpaid one.
    Stripe,
    /// The offline gateway: the lifecycle job invoices each due period itself.
    Local,
}

/// The service period an invoice is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BilledPeriod {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

/// What moves a workspace's plan status (or its dates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    PaymentMethodAttached,
    TrialEnded,
    TrialActionsUsed,
    /// The promo of a workspace without a subscription ends: its first period starts.
    PromoEnded,
    /// A subscribed workspace billed offline reaches the end of its promo or period: the job
    /// invoices the next period (not a transition itself: the invoice's outcome is).
    InvoiceDue,
    /// The invoice for a period is paid.
    InvoicePaid(BilledPeriod),
    /// The invoice for a period could not be paid.
    InvoiceFailed(BilledPeriod),
    /// The subscription is canceled: it stays as it is until the period ends.
    CanceledAtPeriodEnd,
    /// The cancellation is withdrawn before the period ends: the subscription renews again.
    CancellationWithdrawn,
    /// The subscription is over (Stripe deleted it: canceled, or its retries gave up unpaid).
    SubscriptionEnded,
    PeriodEnded,
    GraceEnded,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::PaymentMethodAttached => "payment_method_attached",
            Trigger::TrialEnded => "trial_ended",
            Trigger::TrialActionsUsed => "trial_actions_used",
            Trigger::PromoEnded => "promo_ended",
            Trigger::InvoiceDue => "invoice_due",
            Trigger::InvoicePaid(_) => "invoice_paid",
            Trigger::InvoiceFailed(_) => "invoice_failed",
            Trigger::CanceledAtPeriodEnd => "canceled_at_period_end",
            Trigger::CancellationWithdrawn => "cancellation_withdrawn",
            Trigger::SubscriptionEnded => "subscription_ended",
            Trigger::PeriodEnded => "period_ended",
            Trigger::GraceEnded => "grace_ended",
        }
    }

    /// Whether a deadline fires it (so a one-time schedule may carry it).
    pub fn is_deadline(self) -> bool {
        matches!(
            self,
            Trigger::TrialEnded
                | Trigger::PromoEnded
                | Trigger::InvoiceDue
                | Trigger::PeriodEnded
                | Trigger::GraceEnded
        )
    }
}

/// The dates and flags of a workspace's lifecycle (its status is kept beside them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleDates {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub trial_ends_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub promo_ends_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub grace_ends_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub current_period_start: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub current_period_end: Option<OffsetDateTime>,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub canceled_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub has_payment_method: bool,
    /// Who invoices the subscription; `None`: no subscription (a free plan, or none started).
    #[serde(default)]
    pub billing: Option<Billing>,
    /// The start of the last period whose invoice was paid (its included credit is granted):
    /// an invoice for it or an earlier one moves nothing again.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub paid_period_start: Option<OffsetDateTime>,
}

/// A workspace's place in the lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    pub status: PlanStatus,
    pub dates: LifecycleDates,
}

/// The result of a trigger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: PlanStatus,
    pub to: Lifecycle,
    /// A paid billing period started at this time: grant the plan's included credits and
    /// expire what is left of the previous period's.
    pub period_started: Option<OffsetDateTime>,
}

impl Transition {
    pub fn status_changed(&self) -> bool {
        self.from != self.to.status
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IllegalTransition {
    #[error("a workspace in `{status:?}` can't take `{}`", trigger.as_str())]
    NotAllowed {
        status: PlanStatus,
        trigger: Trigger,
    },
    /// A time trigger fired before its date (or for a date the workspace no longer has).
    #[error("`{}` is not due yet", trigger.as_str())]
    NotDue { trigger: Trigger },
}

/// A new workspace: on trial until `now + trial`.
pub fn start_trial(now: OffsetDateTime, durations: &Durations) -> Lifecycle {
    let now = whole_seconds(now);
    Lifecycle {
        status: PlanStatus::Trial,
        dates: LifecycleDates {
            trial_ends_at: Some(now + durations.trial),
            ..Default::default()
        },
    }
}

/// Applies `trigger` at `now`. `billing`: who would invoice a subscription that starts now
/// (`None` for a plan without a price), recorded when a method starts one or an invoice
/// shows there is one.
pub fn apply(
    current: &Lifecycle,
    trigger: Trigger,
    now: OffsetDateTime,
    durations: &Durations,
    billing: Option<Billing>,
) -> Result<Transition, IllegalTransition> {
    use PlanStatus::*;
    use Trigger::*;
    let now = whole_seconds(now);
    let from = current.status;
    let mut dates = current.dates.clone();
    let due = |at: Option<OffsetDateTime>| -> Result<(), IllegalTransition> {
        match at {
            Some(at) if at <= now => Ok(()),
            _ => Err(IllegalTransition::NotDue { trigger }),
        }
    };
    let not_allowed = Err(IllegalTransition::NotAllowed {
        status: from,
        trigger,
    });
    let mut period_started = None;
    let status = match (from, trigger) {
        (Trial, PaymentMethodAttached) => {
            let promo_ends = durations.promo.after(now);
            dates.has_payment_method = true;
            dates.trial_ends_at = None;
            dates.promo_ends_at = Some(promo_ends);
            // The promo is the subscription's free period: no invoice, no included credit.
            dates.current_period_start = Some(now);
            dates.current_period_end = Some(promo_ends);
            dates.billing = billing;
            Promo
        }
        // Elsewhere (but deleted) only the method changes; on readonly it also stops the grace
        // clock, since the grace only runs out "without a payment method".
        (Promo | Active | Suspended | Readonly, PaymentMethodAttached) => {
            dates.has_payment_method = true;
            if from == Readonly {
                dates.grace_ends_at = None;
            }
            from
        }
        (Trial, TrialEnded | TrialActionsUsed) => {
            if trigger == TrialEnded {
                due(dates.trial_ends_at)?;
            }
            dates.trial_ends_at = None;
            dates.grace_ends_at = Some(now + durations.grace);
            Readonly
        }
        (Promo, PromoEnded) if dates.billing.is_none() => {
            due(dates.promo_ends_at)?;
            let at = dates.promo_ends_at.unwrap_or(now);
            dates.promo_ends_at = None;
            if dates.cancel_at_period_end {
                Deleted
            } else {
                start_period(&mut dates, at, durations.period.after(at));
                period_started = Some(at);
                Active
            }
        }
        (Promo | Active | Suspended | Readonly, InvoicePaid(period)) => {
            if dates
                .paid_period_start
                .is_some_and(|paid| paid >= period.start)
            {
                return not_allowed;
            }
            if from == Readonly {
                dates.has_payment_method = true;
            }
            // An invoice is a subscription's: from now on its invoices renew it.
            dates.billing = dates.billing.or(billing);
            dates.promo_ends_at = None;
            dates.grace_ends_at = None;
            if dates
                .current_period_start
                .is_none_or(|start| start <= period.start)
            {
                start_period(&mut dates, period.start, period.end);
            }
            dates.paid_period_start = Some(period.start);
            period_started = Some(period.start);
            Active
        }
        (Promo | Active, InvoiceFailed(period)) => {
            if dates
                .paid_period_start
                .is_some_and(|paid| paid >= period.start)
            {
                return not_allowed;
            }
            dates.billing = dates.billing.or(billing);
            dates.promo_ends_at = None;
            if dates
                .current_period_start
                .is_none_or(|start| start <= period.start)
            {
                start_period(&mut dates, period.start, period.end);
            }
            dates.grace_ends_at = Some(now + durations.grace);
            Suspended
        }
        (Promo | Active | Suspended, CanceledAtPeriodEnd) => {
            if dates.cancel_at_period_end {
                return not_allowed;
            }
            dates.cancel_at_period_end = true;
            dates.canceled_at = Some(now);
            from
        }
        (Promo | Active | Suspended, CancellationWithdrawn) => {
            if !dates.cancel_at_period_end {
                return not_allowed;
            }
            dates.cancel_at_period_end = false;
            dates.canceled_at = None;
            from
        }
        (Promo | Active | Suspended, SubscriptionEnded) => {
            dates.canceled_at.get_or_insert(now);
            end_subscription(&mut dates);
            Deleted
        }
        (Promo | Active | Suspended, PeriodEnded) => {
            due(dates.current_period_end)?;
            let end = dates.current_period_end.unwrap_or(now);
            if dates.cancel_at_period_end {
                end_subscription(&mut dates);
                Deleted
            } else if from == Suspended || dates.billing.is_some() {
                // A subscribed period is renewed by its paid invoice, not by the date; a
                // suspended one not until the open invoice is paid.
                return not_allowed;
            } else {
                start_period(&mut dates, end, durations.period.after(end));
                period_started = Some(end);
                from
            }
        }
        (Suspended, GraceEnded) if dates.billing != Some(Billing::Stripe) => {
            due(dates.grace_ends_at)?;
            end_subscription(&mut dates);
            Deleted
        }
        (Readonly, GraceEnded) => {
            due(dates.grace_ends_at)?;
            dates.grace_ends_at = None;
            Deleted
        }
        _ => return not_allowed,
    };
    Ok(Transition {
        from,
        to: Lifecycle { status, dates },
        period_started,
    })
}

fn start_period(dates: &mut LifecycleDates, start: OffsetDateTime, end: OffsetDateTime) {
    dates.current_period_start = Some(start);
    dates.current_period_end = Some(end);
}

fn end_subscription(dates: &mut LifecycleDates) {
    dates.promo_ends_at = None;
    dates.grace_ends_at = None;
}

/// The next time-triggered step: the earliest date the workspace waits for, and its trigger.
pub fn next_deadline(lifecycle: &Lifecycle) -> Option<(OffsetDateTime, Trigger)> {
    let dates = &lifecycle.dates;
    let canceled = dates.cancel_at_period_end;
    // What the end of the promo or of a period asks for when the subscription goes on.
    let renewal = match dates.billing {
        None => Some(Trigger::PeriodEnded),
        Some(Billing::Local) => Some(Trigger::InvoiceDue),
        // Stripe invoices, and its webhooks move the workspace.
        Some(Billing::Stripe) => None,
    };
    let mut candidates: Vec<(Option<OffsetDateTime>, Trigger)> = Vec::new();
    match lifecycle.status {
        PlanStatus::Trial => candidates.push((dates.trial_ends_at, Trigger::TrialEnded)),
        PlanStatus::Promo | PlanStatus::Active | PlanStatus::Suspended if canceled => {
            candidates.push((dates.current_period_end, Trigger::PeriodEnded));
        }
        PlanStatus::Promo => match renewal {
            Some(Trigger::PeriodEnded) => {
                candidates.push((dates.promo_ends_at, Trigger::PromoEnded));
            }
            Some(trigger) => candidates.push((dates.promo_ends_at, trigger)),
            None => {}
        },
        PlanStatus::Active => {
            if let Some(trigger) = renewal {
                candidates.push((dates.current_period_end, trigger));
            }
        }
        PlanStatus::Suspended if dates.billing != Some(Billing::Stripe) => {
            candidates.push((dates.grace_ends_at, Trigger::GraceEnded));
        }
        PlanStatus::Readonly => candidates.push((dates.grace_ends_at, Trigger::GraceEnded)),
        PlanStatus::Suspended | PlanStatus::Deleted => {}
    }
    candidates
        .into_iter()
        .filter_map(|(at, trigger)| at.map(|at| (at, trigger)))
        .min_by_key(|(at, _)| *at)
}

/// The period the next invoice of a subscription billed offline is for: from the promo's end, or
/// from the current period's end.
pub fn next_invoice_period(lifecycle: &Lifecycle, durations: &Durations) -> Option<BilledPeriod> {
    let start = match lifecycle.status {
        PlanStatus::Promo => lifecycle.dates.promo_ends_at?,
        PlanStatus::Active => lifecycle.dates.current_period_end?,
        _ => return None,
    };
    Some(BilledPeriod {
        start,
        end: durations.period.after(start),
    })
}

/// `at` plus whole calendar months; a day past the target month's end becomes its last day.
pub fn add_months(at: OffsetDateTime, months: u32) -> OffsetDateTime {
    let total = i64::from(at.month() as u8) - 1 + i64::from(months);
    let year = at.year() + i32::try_from(total / 12).unwrap_or(0);
    let month = time::Month::try_from(u8::try_from(total % 12 + 1).unwrap_or(1))
        .unwrap_or(time::Month::January);
    let last_day = month.length(year);
    let date =
        time::Date::from_calendar_date(year, month, at.day().min(last_day)).unwrap_or(at.date());
    at.replace_date(date)
}

fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use PlanStatus::*;
    use Trigger::*;

    const NOW: OffsetDateTime = datetime!(2026-01-31 12:00 UTC);

    fn durations() -> Durations {
        Durations {
            trial: Duration::days(30),
            trial_actions: 1000,
            promo: Span::Months(3),
            grace: Duration::days(30),
            period: Span::Months(1),
        }
    }

    fn next_period() -> BilledPeriod {
        BilledPeriod {
            start: NOW - Duration::days(1),
            end: NOW + Duration::days(29),
        }
    }

    /// A workspace in `status` whose every date has passed, so time triggers are due.
    fn in_status(status: PlanStatus, billing: Option<Billing>) -> Lifecycle {
        let past = Some(NOW - Duration::days(1));
        let mut dates = LifecycleDates {
            billing,
            ..Default::default()
        };
        match status {
            Trial => dates.trial_ends_at = past,
            Promo => {
                dates.has_payment_method = true;
                dates.promo_ends_at = past;
                dates.current_period_start = Some(NOW - Duration::days(92));
                dates.current_period_end = past;
            }
            Active | Suspended => {
                dates.has_payment_method = true;
                dates.current_period_start = Some(NOW - Duration::days(32));
                dates.current_period_end = past;
                dates.paid_period_start = dates.current_period_start;
                if status == Suspended {
                    dates.grace_ends_at = past;
                }
            }
            Readonly => dates.grace_ends_at = past,
            Deleted => {}
        }
        Lifecycle { status, dates }
    }

    const STATUSES: [PlanStatus; 6] = [Trial, Promo, Active, Readonly, Suspended, Deleted];

    fn triggers() -> [Trigger; 12] {
        [
            PaymentMethodAttached,
            TrialEnded,
            TrialActionsUsed,
            PromoEnded,
            InvoiceDue,
            InvoicePaid(next_period()),
            InvoiceFailed(next_period()),
            CanceledAtPeriodEnd,
            CancellationWithdrawn,
            SubscriptionEnded,
            PeriodEnded,
            GraceEnded,
        ]
    }

    /// The whole table for a subscribed workspace (`billing`), or one without a subscription
    /// (`None`): what every trigger does in every status (`None`: illegal).
    fn expected(
        status: PlanStatus,
        trigger: Trigger,
        billing: Option<Billing>,
    ) -> Option<PlanStatus> {
        match (status, trigger) {
            (Trial, PaymentMethodAttached) => Some(Promo),
            (Promo | Active | Suspended | Readonly, PaymentMethodAttached) => Some(status),
            (Trial, TrialEnded | TrialActionsUsed) => Some(Readonly),
            (Promo, PromoEnded) if billing.is_none() => Some(Active),
            (Promo | Active | Suspended | Readonly, InvoicePaid(_)) => Some(Active),
            (Promo | Active, InvoiceFailed(_)) => Some(Suspended),
            (Promo | Active | Suspended, CanceledAtPeriodEnd) => Some(status),
            // Only a canceled subscription can withdraw its cancellation.
            (_, CancellationWithdrawn) => None,
            (Promo | Active | Suspended, SubscriptionEnded) => Some(Deleted),
            (Promo | Active, PeriodEnded) if billing.is_none() => Some(status),
            (Suspended, GraceEnded) if billing != Some(Billing::Stripe) => Some(Deleted),
            (Readonly, GraceEnded) => Some(Deleted),
            _ => None,
        }
    }

    #[test]
    fn every_status_and_trigger_pair() {
        for billing in [None, Some(Billing::Stripe), Some(Billing::Local)] {
            for status in STATUSES {
                for trigger in triggers() {
                    let result = apply(
                        &in_status(status, billing),
                        trigger,
                        NOW,
                        &durations(),
                        billing,
                    );
                    match expected(status, trigger, billing) {
                        Some(to) => assert_eq!(
                            result.as_ref().map(|t| t.to.status),
                            Ok(to),
                            "{status:?} + {trigger:?} ({billing:?})"
                        ),
                        None => assert_eq!(
                            result,
                            Err(IllegalTransition::NotAllowed { status, trigger }),
                            "{status:?} + {trigger:?} ({billing:?}) must be refused"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn time_triggers_wait_for_their_date() {
        for (status, trigger) in [
            (Trial, TrialEnded),
            (Promo, PromoEnded),
            (Active, PeriodEnded),
            (Readonly, GraceEnded),
            (Suspended, GraceEnded),
        ] {
            let early = NOW - Duration::days(2);
            assert_eq!(
                apply(&in_status(status, None), trigger, early, &durations(), None),
                Err(IllegalTransition::NotDue { trigger }),
                "{status:?}"
            );
        }
    }

    #[test]
    fn a_trial_runs_to_readonly_then_deleted() {
        let trial = start_trial(NOW, &durations());
        assert_eq!(
            next_deadline(&trial),
            Some((datetime!(2026-03-02 12:00 UTC), TrialEnded))
        );
        let at = datetime!(2026-03-02 12:00 UTC);
        let readonly = apply(&trial, TrialEnded, at, &durations(), None).unwrap();
        assert_eq!(readonly.to.status, Readonly);
        assert_eq!(
            next_deadline(&readonly.to),
            Some((at + Duration::days(30), GraceEnded))
        );
        let deleted = apply(
            &readonly.to,
            GraceEnded,
            at + Duration::days(30),
            &durations(),
            None,
        );
        assert_eq!(deleted.unwrap().to.status, Deleted);
    }

    #[test]
    fn a_payment_method_starts_the_promo_without_included_credit() {
        for billing in [Billing::Stripe, Billing::Local] {
            let promo = apply(
                &start_trial(NOW, &durations()),
                PaymentMethodAttached,
                NOW,
                &durations(),
                Some(billing),
            )
            .unwrap();
            assert_eq!(promo.period_started, None, "the promo grants nothing");
            assert_eq!(promo.to.dates.billing, Some(billing));
            assert_eq!(
                promo.to.dates.promo_ends_at,
                Some(datetime!(2026-04-30 12:00 UTC))
            );
            let expected = match billing {
                Billing::Local => Some((datetime!(2026-04-30 12:00 UTC), InvoiceDue)),
                Billing::Stripe => None,
            };
            assert_eq!(next_deadline(&promo.to), expected);
        }
    }

    /// A trial that attached its first card now, billed offline.
    fn locally_billed_promo() -> Lifecycle {
        apply(
            &start_trial(NOW, &durations()),
            PaymentMethodAttached,
            NOW,
            &durations(),
            Some(Billing::Local),
        )
        .unwrap()
        .to
    }

    #[test]
    fn each_paid_invoice_starts_its_period_once_and_a_late_failure_changes_nothing() {
        let promo = locally_billed_promo();
        let first = next_invoice_period(&promo, &durations()).unwrap();
        assert_eq!(first.start, datetime!(2026-04-30 12:00 UTC));
        assert_eq!(first.end, datetime!(2026-05-30 12:00 UTC));
        let paid = apply(&promo, InvoicePaid(first), first.start, &durations(), None).unwrap();
        assert_eq!(paid.to.status, Active);
        assert_eq!(paid.period_started, Some(first.start));
        assert_eq!(next_deadline(&paid.to), Some((first.end, InvoiceDue)));
        // The same invoice again, or its failure delivered late: refused.
        for late in [InvoicePaid(first), InvoiceFailed(first)] {
            assert!(apply(&paid.to, late, first.start, &durations(), None).is_err());
        }
        let second = next_invoice_period(&paid.to, &durations()).unwrap();
        assert_eq!(second.start, first.end);
        let failed = apply(
            &paid.to,
            InvoiceFailed(second),
            second.start,
            &durations(),
            None,
        )
        .unwrap();
        assert_eq!(failed.to.status, Suspended);
        assert_eq!(failed.period_started, None);
        let recovered = apply(
            &failed.to,
            InvoicePaid(second),
            second.start,
            &durations(),
            None,
        )
        .unwrap();
        assert_eq!(
            (recovered.to.status, recovered.period_started),
            (Active, Some(second.start))
        );
        assert_eq!(recovered.to.dates.grace_ends_at, None);
    }

    #[test]
    fn a_suspended_workspace_is_deleted_when_the_grace_passes_unless_stripe_decides() {
        let promo = locally_billed_promo();
        let period = next_invoice_period(&promo, &durations()).unwrap();
        let suspended = apply(
            &promo,
            InvoiceFailed(period),
            period.start,
            &durations(),
            None,
        )
        .unwrap()
        .to;
        let grace_end = period.start + Duration::days(30);
        assert_eq!(next_deadline(&suspended), Some((grace_end, GraceEnded)));
        let deleted = apply(&suspended, GraceEnded, grace_end, &durations(), None).unwrap();
        assert_eq!(deleted.to.status, Deleted);
        let mut stripe = suspended.clone();
        stripe.dates.billing = Some(Billing::Stripe);
        assert_eq!(next_deadline(&stripe), None, "Stripe's retries decide");
        assert_eq!(
            apply(&stripe, SubscriptionEnded, grace_end, &durations(), None)
                .unwrap()
                .to
                .status,
            Deleted
        );
    }

    #[test]
    fn period_ends_roll_over_unsubscribed_workspaces_once_and_end_a_canceled_subscription() {
        let active = in_status(Active, None);
        let end = active.dates.current_period_end.unwrap();
        let rolled = apply(&active, PeriodEnded, NOW, &durations(), None).unwrap();
        assert_eq!(rolled.period_started, Some(end));
        assert_eq!(
            apply(&rolled.to, PeriodEnded, NOW, &durations(), None),
            Err(IllegalTransition::NotDue {
                trigger: PeriodEnded
            })
        );
        for billing in [None, Some(Billing::Stripe), Some(Billing::Local)] {
            let active = in_status(Active, billing);
            let canceled = apply(&active, CanceledAtPeriodEnd, NOW, &durations(), None).unwrap();
            assert_eq!(canceled.to.status, Active, "active until the period ends");
            assert_eq!(next_deadline(&canceled.to), Some((end, PeriodEnded)));
            let ended = apply(&canceled.to, PeriodEnded, NOW, &durations(), None).unwrap();
            assert_eq!((ended.to.status, ended.period_started), (Deleted, None));
            let withdrawn =
                apply(&canceled.to, CancellationWithdrawn, NOW, &durations(), None).unwrap();
            assert!(!withdrawn.to.dates.cancel_at_period_end);
        }
    }

    #[test]
    fn readonly_with_a_payment_method_waits_instead_of_being_deleted() {
        let readonly = in_status(Readonly, None);
        let attached = apply(&readonly, PaymentMethodAttached, NOW, &durations(), None).unwrap();
        assert_eq!(attached.to.status, Readonly);
        assert_eq!(next_deadline(&attached.to), None);
    }

    #[test]
    fn spans_add_months_or_seconds() {
        assert_eq!(Span::Seconds(45).after(NOW), NOW + Duration::seconds(45));
        assert_eq!(Span::Months(1).after(NOW), datetime!(2026-02-28 12:00 UTC));
    }

    #[test]
    fn months_add_by_the_calendar() {
        assert_eq!(
            add_months(datetime!(2026-11-30 08:00 UTC), 3),
            datetime!(2027-02-28 08:00 UTC)
        );
        assert_eq!(
            add_months(datetime!(2028-01-31 00:00 UTC), 1),
            datetime!(2028-02-29 00:00 UTC)
        );
        assert_eq!(
            add_months(datetime!(2026-12-15 00:00 UTC), 12),
            datetime!(2027-12-15 00:00 UTC)
        );
    }
}
