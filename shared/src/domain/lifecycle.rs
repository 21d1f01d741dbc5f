//! The plan lifecycle as a state machine: a workspace's plan status, the dates that move it, and
//! the triggers (time, usage, payment events) that do. Pure: the store applies a transition as
//! one conditional write, and whoever fires a trigger first wins.
//!
//! | from | to | trigger |
//! |---|---|---|
//! | trial | promo | a payment method is attached (a period starts) |
//! | trial | readonly | the trial's days pass, or its actions are used up |
//! | promo | active | the promo ends (a period starts; the first charge is at the plan price) |
//! | active | suspended | a payment fails |
//! | suspended, readonly | active | a payment succeeds (readonly: a period starts) |
//! | active, promo, suspended | deleted | the period ends after a cancellation |
//! | readonly | deleted | the grace passes without a payment method |
//!
//! Besides status changes, three triggers change only dates: the end of an uncanceled period
//! starts the next one (period rollover), a cancellation marks the period's end as the last, and
//! withdrawing it renews again.

use super::workspace::PlanStatus;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// The lifecycle's durations, from the catalog (or shortened by configuration, locally).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durations {
    pub trial: Duration,
    pub trial_actions: u64,
    pub promo_months: u32,
    pub grace: Duration,
    /// Months in one billing period.
    pub period_months: u32,
}

/// What moves a workspace's plan status (or its dates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    PaymentMethodAttached,
    TrialEnded,
    TrialActionsUsed,
    PromoEnded,
    PaymentFailed,
    PaymentSucceeded,
    /// The subscription is canceled: it stays as it is until the period ends.
    CanceledAtPeriodEnd,
    /// The cancellation is withdrawn before the period ends: the subscription renews again.
    CancellationWithdrawn,
    PeriodEnded,
    GraceEnded,
}

impl Trigger {
    pub const ALL: [Trigger; 10] = [
        Trigger::PaymentMethodAttached,
        Trigger::TrialEnded,
        Trigger::TrialActionsUsed,
        Trigger::PromoEnded,
        Trigger::PaymentFailed,
        Trigger::PaymentSucceeded,
        Trigger::CanceledAtPeriodEnd,
        Trigger::CancellationWithdrawn,
        Trigger::PeriodEnded,
        Trigger::GraceEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::PaymentMethodAttached => "payment_method_attached",
            Trigger::TrialEnded => "trial_ended",
            Trigger::TrialActionsUsed => "trial_actions_used",
            Trigger::PromoEnded => "promo_ended",
            Trigger::PaymentFailed => "payment_failed",
            Trigger::PaymentSucceeded => "payment_succeeded",
            Trigger::CanceledAtPeriodEnd => "canceled_at_period_end",
            Trigger::CancellationWithdrawn => "cancellation_withdrawn",
            Trigger::PeriodEnded => "period_ended",
            Trigger::GraceEnded => "grace_ended",
        }
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
    /// A billing period started at this time: grant the plan's included credits and expire
    /// what is left of the previous period's.
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

/// Applies `trigger` at `now`.
pub fn apply(
    current: &Lifecycle,
    trigger: Trigger,
    now: OffsetDateTime,
    durations: &Durations,
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
    let mut start_period = |dates: &mut LifecycleDates, at: OffsetDateTime| {
        dates.current_period_start = Some(at);
        dates.current_period_end = Some(add_months(at, durations.period_months));
        period_started = Some(at);
    };
    let status = match (from, trigger) {
        (Trial, PaymentMethodAttached) => {
            dates.has_payment_method = true;
            dates.trial_ends_at = None;
            dates.promo_ends_at = Some(add_months(now, durations.promo_months));
            start_period(&mut dates, now);
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
        (Promo, PromoEnded) => {
            due(dates.promo_ends_at)?;
            let at = dates.promo_ends_at.unwrap_or(now);
            dates.promo_ends_at = None;
            if dates.cancel_at_period_end {
                Deleted
            } else {
                // Month arithmetic can end the last promo period a day or two before the promo
                // (Jan 31 + 1 month = Feb 28): a period that already started runs on, so no
                // second one (and no second included credit) starts for the same days.
                if dates.current_period_end.is_none_or(|end| end <= at) {
                    start_period(&mut dates, at);
                }
                Active
            }
        }
        (Active, PaymentFailed) => Suspended,
        (Suspended, PaymentSucceeded) => Active,
        (Readonly, PaymentSucceeded) => {
            dates.grace_ends_at = None;
            dates.has_payment_method = true;
            start_period(&mut dates, now);
            Active
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
        (Promo | Active | Suspended, PeriodEnded) => {
            due(dates.current_period_end)?;
            let end = dates.current_period_end.unwrap_or(now);
            if dates.cancel_at_period_end {
                dates.promo_ends_at = None;
                Deleted
            } else if from == Suspended {
                // No new period (and no new included credit) until the open invoice is paid.
                return not_allowed;
            } else {
                start_period(&mut dates, end);
                from
            }
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

/// The next time-triggered step: the earliest date the workspace waits for, and its trigger.
pub fn next_deadline(lifecycle: &Lifecycle) -> Option<(OffsetDateTime, Trigger)> {
    let dates = &lifecycle.dates;
    let candidates: &[(Option<OffsetDateTime>, Trigger)] = match lifecycle.status {
        PlanStatus::Trial => &[(dates.trial_ends_at, Trigger::TrialEnded)],
        PlanStatus::Promo => &[
            (dates.promo_ends_at, Trigger::PromoEnded),
            (dates.current_period_end, Trigger::PeriodEnded),
        ],
        PlanStatus::Active => &[(dates.current_period_end, Trigger::PeriodEnded)],
        PlanStatus::Suspended if dates.cancel_at_period_end => {
            &[(dates.current_period_end, Trigger::PeriodEnded)]
        }
        PlanStatus::Readonly => &[(dates.grace_ends_at, Trigger::GraceEnded)],
        PlanStatus::Suspended | PlanStatus::Deleted => &[],
    };
    candidates
        .iter()
        .filter_map(|(at, trigger)| at.map(|at| (at, *trigger)))
        // The promo's end comes before a period end at the same moment: it starts the period.
        .min_by_key(|(at, trigger)| (*at, *trigger != Trigger::PromoEnded))
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
            promo_months: 3,
            grace: Duration::days(30),
            period_months: 1,
        }
    }

    /// A workspace in `status` whose every date has passed, so time triggers are due.
    fn in_status(status: PlanStatus) -> Lifecycle {
        let past = Some(NOW - Duration::days(1));
        let mut dates = LifecycleDates::default();
        match status {
            Trial => dates.trial_ends_at = past,
            Promo => {
                dates.has_payment_method = true;
                dates.promo_ends_at = past;
                dates.current_period_start = Some(NOW - Duration::days(32));
                dates.current_period_end = past;
            }
            Active | Suspended => {
                dates.has_payment_method = true;
                dates.current_period_start = Some(NOW - Duration::days(32));
                dates.current_period_end = past;
            }
            Readonly => dates.grace_ends_at = past,
            Deleted => {}
        }
        Lifecycle { status, dates }
    }

    const STATUSES: [PlanStatus; 6] = [Trial, Promo, Active, Readonly, Suspended, Deleted];

    /// The whole table: what every trigger does in every status (`None`: illegal).
    fn expected(status: PlanStatus, trigger: Trigger) -> Option<PlanStatus> {
        match (status, trigger) {
            (Trial, PaymentMethodAttached) => Some(Promo),
            (Promo | Active | Suspended | Readonly, PaymentMethodAttached) => Some(status),
            (Trial, TrialEnded | TrialActionsUsed) => Some(Readonly),
            (Promo, PromoEnded) => Some(Active),
            (Active, PaymentFailed) => Some(Suspended),
            (Suspended | Readonly, PaymentSucceeded) => Some(Active),
            (Promo | Active | Suspended, CanceledAtPeriodEnd) => Some(status),
            // Only a canceled subscription can withdraw its cancellation.
            (_, CancellationWithdrawn) => None,
            (Promo | Active, PeriodEnded) => Some(status),
            (Readonly, GraceEnded) => Some(Deleted),
            _ => None,
        }
    }

    #[test]
    fn every_status_and_trigger_pair() {
        for status in STATUSES {
            for trigger in Trigger::ALL {
                let result = apply(&in_status(status), trigger, NOW, &durations());
                match expected(status, trigger) {
                    Some(to) => assert_eq!(
                        result.as_ref().map(|t| t.to.status),
                        Ok(to),
                        "{status:?} + {trigger:?}"
                    ),
                    None => assert_eq!(
                        result,
                        Err(IllegalTransition::NotAllowed { status, trigger }),
                        "{status:?} + {trigger:?} must be refused"
                    ),
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
        ] {
            let early = NOW - Duration::days(2);
            assert_eq!(
                apply(&in_status(status), trigger, early, &durations()),
                Err(IllegalTransition::NotDue { trigger }),
                "{status:?}"
            );
        }
        // The action limit needs no date.
        assert!(apply(
            &in_status(Trial),
            TrialActionsUsed,
            NOW - Duration::days(2),
            &durations()
        )
        .is_ok());
    }

    #[test]
    fn a_trial_runs_to_readonly_then_deleted() {
        let trial = start_trial(NOW, &durations());
        assert_eq!(
            next_deadline(&trial),
            Some((datetime!(2026-03-02 12:00 UTC), TrialEnded))
        );
        let at = datetime!(2026-03-02 12:00 UTC);
        let readonly = apply(&trial, TrialEnded, at, &durations()).unwrap();
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
        );
        assert_eq!(deleted.unwrap().to.status, Deleted);
    }

    #[test]
    fn a_payment_method_starts_the_promo_and_its_first_period() {
        let promo = apply(
            &start_trial(NOW, &durations()),
            PaymentMethodAttached,
            NOW,
            &durations(),
        )
        .unwrap();
        assert_eq!(promo.period_started, Some(NOW));
        // Month arithmetic clamps to the month's end: Jan 31 + 1 month = Feb 28.
        assert_eq!(
            promo.to.dates.current_period_end,
            Some(datetime!(2026-02-28 12:00 UTC))
        );
        assert_eq!(
            promo.to.dates.promo_ends_at,
            Some(datetime!(2026-04-30 12:00 UTC))
        );
        assert_eq!(
            next_deadline(&promo.to),
            Some((datetime!(2026-02-28 12:00 UTC), PeriodEnded))
        );
    }

    #[test]
    fn period_ends_roll_over_once_and_end_a_canceled_subscription() {
        let active = in_status(Active);
        let end = active.dates.current_period_end.unwrap();
        let rolled = apply(&active, PeriodEnded, NOW, &durations()).unwrap();
        assert_eq!(rolled.period_started, Some(end));
        assert_eq!(rolled.to.status, Active);
        // The next period isn't due yet: the same trigger again is refused, not applied twice.
        assert_eq!(
            apply(&rolled.to, PeriodEnded, NOW, &durations()),
            Err(IllegalTransition::NotDue {
                trigger: PeriodEnded
            })
        );
        let canceled = apply(&active, CanceledAtPeriodEnd, NOW, &durations()).unwrap();
        assert_eq!(canceled.to.status, Active, "active until the period ends");
        assert!(canceled.to.dates.cancel_at_period_end);
        let ended = apply(&canceled.to, PeriodEnded, NOW, &durations()).unwrap();
        assert_eq!(ended.to.status, Deleted);
        assert_eq!(ended.period_started, None);
        let withdrawn = apply(&canceled.to, CancellationWithdrawn, NOW, &durations()).unwrap();
        assert!(!withdrawn.to.dates.cancel_at_period_end);
        assert_eq!(withdrawn.to.dates.canceled_at, None);
        let renewed = apply(&withdrawn.to, PeriodEnded, NOW, &durations()).unwrap();
        assert_eq!(
            (renewed.to.status, renewed.period_started),
            (Active, Some(end))
        );
    }

    #[test]
    fn a_promo_ending_after_a_clamped_period_start_grants_no_second_period() {
        // Started Jan 31: periods end Feb 28, Mar 28, Apr 28; the promo ends Apr 30.
        let promo = apply(
            &start_trial(datetime!(2026-01-31 12:00 UTC), &durations()),
            PaymentMethodAttached,
            datetime!(2026-01-31 12:00 UTC),
            &durations(),
        )
        .unwrap()
        .to;
        let mut state = promo;
        let mut periods = 1;
        let mut at = datetime!(2026-01-31 12:00 UTC);
        while let Some((due, trigger)) = next_deadline(&state) {
            if due > datetime!(2026-06-01 00:00 UTC) {
                break;
            }
            at = at.max(due);
            let step = apply(&state, trigger, at, &durations()).unwrap();
            periods += usize::from(step.period_started.is_some());
            state = step.to;
        }
        assert_eq!(state.status, Active);
        // Feb 28, Mar 28, Apr 28, May 28 rollovers: five periods in all, none twice.
        assert_eq!(periods, 5);
    }

    #[test]
    fn readonly_with_a_payment_method_waits_instead_of_being_deleted() {
        let readonly = in_status(Readonly);
        let attached = apply(&readonly, PaymentMethodAttached, NOW, &durations()).unwrap();
        assert_eq!(attached.to.status, Readonly);
        assert_eq!(next_deadline(&attached.to), None);
        assert_eq!(
            apply(&attached.to, GraceEnded, NOW, &durations()),
            Err(IllegalTransition::NotDue {
                trigger: GraceEnded
            })
        );
    }

    #[test]
    fn the_promo_end_starts_the_paid_period() {
        let promo = in_status(Promo);
        assert_eq!(next_deadline(&promo).map(|d| d.1), Some(PromoEnded));
        let active = apply(&promo, PromoEnded, NOW, &durations()).unwrap();
        assert_eq!(active.to.status, Active);
        assert_eq!(active.period_started, promo.dates.promo_ends_at);
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
