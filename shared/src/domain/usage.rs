//! Usage views: periods of whole UTC days, and the sums the views build from the usage counters
//! (per workspace × day × category × agent, and per month × category).

use super::calendar::{Day, Month};
use super::ids::{BillingAccountId, WorkspaceId};
use super::pricing::Category;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime};

/// The longest period a usage query may cover, in days.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// An inclusive range of UTC days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: Date,
    pub end: Date,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeriodError {
    #[error("`period_start` must not be after `period_end`")]
    Reversed,
    #[error("the period may cover at most {MAX_PERIOD_DAYS} days")]
    TooLong,
}

impl Period {
    /// A period from `start` to `end`, both included: at most [`MAX_PERIOD_DAYS`] days.
    pub fn new(start: Date, end: Date) -> Result<Self, PeriodError> {
        if start > end {
            return Err(PeriodError::Reversed);
        }
        let period = Self { start, end };
        if period.days() > MAX_PERIOD_DAYS {
            return Err(PeriodError::TooLong);
        }
        Ok(period)
    }

    /// The calendar month `day` is in.
    pub fn month_of(day: Date) -> Self {
        let start = day.replace_day(1).expect("every month has a 1st");
        let end = start
            .replace_day(day.month().length(day.year()))
            .expect("a month's length is one of its days");
        Self { start, end }
    }

    /// The `days` days that end with `last`.
    pub fn ending(last: Date, days: u32) -> Self {
        let start = last - Duration::days(i64::from(days.max(1)) - 1);
        Self { start, end: last }
    }

    /// How many days it covers.
    pub fn days(&self) -> i64 {
        (self.end - self.start).whole_days() + 1
    }

    /// Its days, newest first.
    pub fn days_newest_first(&self) -> impl Iterator<Item = Date> + '_ {
        (0..self.days()).map(|back| self.end - Duration::days(back))
    }

    /// Days left until it ends, counting the day `now` is in while any of it remains: 31 at
    /// the first instant of a 31-day month, 1 during its last day, 0 once it is over.
    pub fn days_remaining(&self, now: OffsetDateTime) -> i64 {
        let ends = (self.end + Duration::days(1)).midnight().assume_utc();
        let seconds = (ends - now).whole_seconds().max(0);
        (seconds + 86_399) / 86_400
    }

    /// The months of its first and last day.
    pub fn months(&self) -> (Month, Month) {
        (Day::from(self.start).month(), Day::from(self.end).month())
    }
}

/// `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .expect("a date always formats")
}

/// A strict `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Option<Date> {
    if text.len() != 10 {
        return None;
    }
    Date::parse(text, format_description!("[year]-[month]-[day]")).ok()
}

/// How much of a category, and what it cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct UsageTotals {
    pub quantity: i64,
    pub cost_cents: i64,
}

impl UsageTotals {
    pub fn add(&mut self, quantity: i64, cost_cents: i64) {
        self.quantity = self.quantity.saturating_add(quantity);
        self.cost_cents = self.cost_cents.saturating_add(cost_cents);
    }
}

/// What one debit adds to the usage counters. It is recorded on the debit's own item (a usage
/// event's claim, a settled run) and applied to the counters after the debit, off its write:
/// counters on the debit would be three more items in every debit's transaction, and a hot
/// workspace's day counter one more item every debit of it conflicts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCount {
    pub workspace_id: WorkspaceId,
    pub account_id: BillingAccountId,
    pub agent_id: Option<String>,
    /// The day the usage occurred: daily counters count it then.
    pub day: Day,
    /// The month it was charged in: monthly counters count it then, as the month's spend does.
    pub month: Month,
    pub lines: Vec<UsageLine>,
}

/// One category of a [`UsageCount`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLine {
    pub category: Category,
    pub quantity: i64,
    pub cost_cents: i64,
}

/// One daily counter: a workspace's usage of a category on a day, by one agent (or none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyCounter {
    pub day: Day,
    pub category: Category,
    pub agent_id: Option<String>,
    pub quantity: i64,
    pub cost_cents: i64,
}

/// One monthly counter: a workspace's or an account's usage of a category in a month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthlyCounter {
    pub month: Month,
    pub category: Category,
    pub quantity: i64,
    pub cost_cents: i64,
}

/// Totals per category, every category present (zero when unused).
pub fn by_category(
    counters: impl IntoIterator<Item = (Category, i64, i64)>,
) -> BTreeMap<Category, UsageTotals> {
    let mut totals: BTreeMap<Category, UsageTotals> = Category::ALL
        .into_iter()
        .map(|c| (c, UsageTotals::default()))
        .collect();
    for (category, quantity, cost) in counters {
        totals.entry(category).or_default().add(quantity, cost);
    }
    totals
}

/// The sum of all the counters given.
pub fn total<'a>(counters: impl IntoIterator<Item = &'a DailyCounter>) -> UsageTotals {
    let mut sum = UsageTotals::default();
    for counter in counters {
        sum.add(counter.quantity, counter.cost_cents);
    }
    sum
}

/// Totals per day that has usage, newest first.
pub fn group_by_day<'a>(
    counters: impl IntoIterator<Item = &'a DailyCounter>,
) -> Vec<(String, UsageTotals)> {
    let mut days: BTreeMap<Day, UsageTotals> = BTreeMap::new();
    for counter in counters {
        days.entry(counter.day)
            .or_default()
            .add(counter.quantity, counter.cost_cents);
    }
    days.into_iter()
        .rev()
        .map(|(day, totals)| (day.to_string(), totals))
        .collect()
}

/// Totals per agent (`None`: usage that named no agent), most expensive first; ties by
/// quantity, then by agent id.
pub fn group_by_agent<'a>(
    counters: impl IntoIterator<Item = &'a DailyCounter>,
) -> Vec<(Option<String>, UsageTotals)> {
    let mut agents: HashMap<Option<&str>, UsageTotals> = HashMap::new();
    for counter in counters {
        agents
            .entry(counter.agent_id.as_deref())
            .or_default()
            .add(counter.quantity, counter.cost_cents);
    }
    let mut grouped: Vec<(Option<String>, UsageTotals)> = agents
        .into_iter()
        .map(|(agent, totals)| (agent.map(str::to_owned), totals))
        .collect();
    grouped.sort_by(|(a, x), (b, y)| {
        y.cost_cents
            .cmp(&x.cost_cents)
            .then(y.quantity.cmp(&x.quantity))
            .then(a.is_none().cmp(&b.is_none()))
            .then(a.cmp(b))
    });
    grouped
}

/// Every day of `period`, newest first, with its totals (zero on days without usage).
pub fn daily_series<'a>(
    period: &Period,
    counters: impl IntoIterator<Item = &'a DailyCounter>,
) -> Vec<(String, UsageTotals)> {
    let mut days: HashMap<Day, UsageTotals> = HashMap::new();
    for counter in counters {
        days.entry(counter.day)
            .or_default()
            .add(counter.quantity, counter.cost_cents);
    }
    period
        .days_newest_first()
        .map(|day| {
            let totals = days.get(&Day::from(day)).copied().unwrap_or_default();
            (format_date(day), totals)
        })
        .collect()
}

/// The month-end spend if the rest of the month goes as it went so far:
/// `spent × days_in_month ÷ days_elapsed`, where `days_elapsed` counts today (1 on the 1st),
/// rounded up to a whole cent. On the last day it is what was spent.
pub fn project_month_end(spent_cents: i64, days_elapsed: u8, days_in_month: u8) -> i64 {
    let elapsed = i128::from(days_elapsed.clamp(1, days_in_month.max(1)));
    let scaled = i128::from(spent_cents.max(0)) * i128::from(days_in_month);
    let projected = (scaled + elapsed - 1) / elapsed;
    i64::try_from(projected).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn counter(day: &str, category: Category, agent: Option<&str>, q: i64, c: i64) -> DailyCounter {
        DailyCounter {
            day: Day::parse(day).unwrap(),
            category,
            agent_id: agent.map(str::to_owned),
            quantity: q,
            cost_cents: c,
        }
    }

    #[test]
    fn a_month_runs_from_its_first_to_its_last_day() {
        let february = Period::month_of(date!(2028 - 02 - 17));
        assert_eq!(february.start, date!(2028 - 02 - 01));
        assert_eq!(february.end, date!(2028 - 02 - 29));
        assert_eq!(february.days(), 29);
        assert_eq!(
            february.months(),
            (
                Month::parse("2028-02").unwrap(),
                Month::parse("2028-02").unwrap()
            )
        );
    }

    #[test]
    fn days_remaining_count_the_current_day() {
        let march = Period::month_of(date!(2026 - 03 - 15));
        assert_eq!(march.days_remaining(datetime!(2026-03-01 00:00 UTC)), 31);
        assert_eq!(march.days_remaining(datetime!(2026-03-30 23:00 UTC)), 2);
        assert_eq!(march.days_remaining(datetime!(2026-03-31 23:59 UTC)), 1);
        assert_eq!(march.days_remaining(datetime!(2026-04-02 00:00 UTC)), 0);
    }

    #[test]
    fn periods_are_ordered_and_at_most_366_days() {
        let start = date!(2026 - 01 - 01);
        assert!(Period::new(start, start).is_ok());
        assert!(Period::new(start, start + Duration::days(365)).is_ok());
        assert_eq!(
            Period::new(start, start + Duration::days(366)),
            Err(PeriodError::TooLong)
        );
        assert_eq!(
            Period::new(start, start - Duration::days(1)),
            Err(PeriodError::Reversed)
        );
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(parse_date("2026-03-09"), Some(date!(2026 - 03 - 09)));
        for bad in [
            "2026-3-9",
            "2026-02-30",
            "20260309",
            "2026-03-09T00:00:00Z",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(format_date(date!(2026 - 03 - 09)), "2026-03-09");
    }

    #[test]
    fn a_daily_series_is_zero_filled_and_newest_first() {
        let period = Period::ending(date!(2026 - 03 - 02), 3);
        let counters = [
            counter("2026-03-02", Category::Actions, Some("a"), 2, 3),
            counter("2026-03-02", Category::Actions, None, 1, 1),
            counter("2026-02-28", Category::Actions, Some("b"), 5, 7),
        ];
        let series = daily_series(&period, &counters);
        let days: Vec<&str> = series.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(days, ["2026-03-02", "2026-03-01", "2026-02-28"]);
        assert_eq!(
            series[0].1,
            UsageTotals {
                quantity: 3,
                cost_cents: 4
            }
        );
        assert_eq!(series[1].1, UsageTotals::default());
        assert_eq!(series[2].1.cost_cents, 7);
    }

    #[test]
    fn agents_are_ranked_by_cost_and_no_agent_comes_last_on_a_tie() {
        let counters = [
            counter("2026-03-01", Category::Actions, Some("cheap"), 9, 1),
            counter("2026-03-01", Category::Actions, Some("dear"), 1, 5),
            counter("2026-03-02", Category::Actions, Some("cheap"), 1, 1),
            counter("2026-03-02", Category::Actions, None, 10, 2),
        ];
        let grouped = group_by_agent(&counters);
        let keys: Vec<Option<&str>> = grouped.iter().map(|(k, _)| k.as_deref()).collect();
        assert_eq!(keys, [Some("dear"), Some("cheap"), None]);
        assert_eq!(grouped[1].1.quantity, 10);
        assert_eq!(group_by_day(&counters)[0].0, "2026-03-02");
    }

    #[test]
    fn every_category_is_present() {
        let totals = by_category([(Category::Actions, 3, 4), (Category::Actions, 1, 1)]);
        assert_eq!(totals.len(), Category::ALL.len());
        assert_eq!(totals[&Category::Actions].cost_cents, 5);
        assert_eq!(totals[&Category::ApiCalls], UsageTotals::default());
    }

    #[test]
    fn the_projection_scales_spend_so_far_to_the_whole_month() {
        // 100 cents in 10 of 31 days: 310.
        assert_eq!(project_month_end(100, 10, 31), 310);
        // 10 cents in 3 of 31 days: 103.33… rounds up.
        assert_eq!(project_month_end(10, 3, 31), 104);
        assert_eq!(project_month_end(77, 30, 30), 77);
        assert_eq!(project_month_end(0, 1, 28), 0);
        assert_eq!(project_month_end(i64::MAX, 1, 31), i64::MAX);
    }
}
