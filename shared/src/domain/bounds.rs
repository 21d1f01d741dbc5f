//! The ranges of the integers a request may carry and of the sums the server keeps. A request
//! integer is a [`Bounded`]: parsing refuses a value outside its range (a 400 naming the field),
//! and its schema states the range, so the OpenAPI document and the check cannot disagree. A
//! kept sum grows only through [`add_kept`], which refuses instead of wrapping.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// The largest money amount a request may name: $100,000,000, far above any one payment,
/// credit or cap, and far below what the kept sums can hold.
pub const MAX_MONEY_CENTS: i64 = 10_000_000_000;
/// The largest quantity of one usage event, and of each count in one run report.
pub const MAX_QUANTITY: i64 = 1_000_000_000_000;
/// The largest `sequence` of a run's usage report: one a millisecond for 30 years.
pub const MAX_REPORT_SEQUENCE: i64 = 1_000_000_000_000;
/// The largest hold one run may ask for ($1,000,000).
pub const MAX_HOLD_CENTS: i64 = 100_000_000;
/// Every sum the server keeps (balances, holds, spend, usage counters, a run's totals) stays
/// within 0 to this: what the store decodes and the views answer as integers.
pub const MAX_KEPT: i64 = i64::MAX;

/// An integer from `MIN` to `MAX`, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<const MIN: i64, const MAX: i64>(i64);

/// A money amount that may be 0 (a cap, a threshold).
pub type AmountCents = Bounded<0, MAX_MONEY_CENTS>;
/// A money amount of at least one cent (a payment, a recharge).
pub type PositiveCents = Bounded<1, MAX_MONEY_CENTS>;
/// A money amount either way (an adjustment).
pub type SignedCents = Bounded<{ -MAX_MONEY_CENTS }, MAX_MONEY_CENTS>;
/// A usage event's quantity.
pub type Quantity = Bounded<1, MAX_QUANTITY>;
/// One count of a run report (tokens, actions).
pub type ReportedCount = Bounded<0, MAX_QUANTITY>;
/// A run report's `sequence`.
pub type ReportSequence = Bounded<1, MAX_REPORT_SEQUENCE>;
/// A run's hold.
pub type HoldCents = Bounded<1, MAX_HOLD_CENTS>;

impl<const MIN: i64, const MAX: i64> Bounded<MIN, MAX> {
    pub fn new(value: i64) -> Option<Self> {
        (MIN..=MAX).contains(&value).then_some(Self(value))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// The value as a count, for ranges that start at 0 or above.
    pub fn unsigned(self) -> u64 {
        u64::try_from(self.0).unwrap_or(0)
    }
}

/// 0, or the range's bound nearest to it: what an absent count means.
impl<const MIN: i64, const MAX: i64> Default for Bounded<MIN, MAX> {
    fn default() -> Self {
        Self(0_i64.clamp(MIN, MAX))
    }
}

/// Takes any JSON number that is a whole number in range: JSON Schema's `integer` (what the
/// schema says) includes `5.0`, so a client's serializer that writes one is not refused.
impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BoundedVisitor::<MIN, MAX>)
    }
}

struct BoundedVisitor<const MIN: i64, const MAX: i64>;

impl<const MIN: i64, const MAX: i64> BoundedVisitor<MIN, MAX> {
    fn out_of_range<E: serde::de::Error>(value: impl std::fmt::Display) -> E {
        E::custom(format!("{value} is out of range: must be {MIN} to {MAX}"))
    }
}

impl<'de, const MIN: i64, const MAX: i64> serde::de::Visitor<'de> for BoundedVisitor<MIN, MAX> {
    type Value = Bounded<MIN, MAX>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a whole number from {MIN} to {MAX}")
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Bounded::new(value).ok_or_else(|| Self::out_of_range(value))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        i64::try_from(value)
            .ok()
            .and_then(Bounded::new)
            .ok_or_else(|| Self::out_of_range(value))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
        if value.fract() != 0.0 || !value.is_finite() {
            return Err(E::invalid_type(serde::de::Unexpected::Float(value), &self));
        }
        // Every bound is far below 2^53, so a whole float in range converts exactly.
        if value < MIN as f64 || value > MAX as f64 {
            return Err(Self::out_of_range(value));
        }
        Ok(Bounded(value as i64))
    }
}

impl<const MIN: i64, const MAX: i64> Serialize for Bounded<MIN, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<const MIN: i64, const MAX: i64> JsonSchema for Bounded<MIN, MAX> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Integer_{MIN}_to_{MAX}").into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "format": "int64",
            "minimum": MIN,
            "maximum": MAX,
        })
    }
}

/// A write would take a kept sum out of 0..=[`MAX_KEPT`]: it is refused, never wrapped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` would leave its range (0 to {MAX_KEPT}); the write is refused")]
pub struct OutOfRange(pub &'static str);

/// The kept sum `name` after adding `amount` (which may be negative), if it stays in range.
pub fn add_kept(name: &'static str, sum: i64, amount: i64) -> Result<i64, OutOfRange> {
    sum.checked_add(amount)
        .filter(|next| (0..=MAX_KEPT).contains(next))
        .ok_or(OutOfRange(name))
}

/// [`add_kept`] for a count of units.
pub fn add_kept_count(name: &'static str, sum: u64, amount: u64) -> Result<u64, OutOfRange> {
    sum.checked_add(amount)
        .filter(|next| i64::try_from(*next).is_ok_and(|n| (0..=MAX_KEPT).contains(&n)))
        .ok_or(OutOfRange(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_outside_its_range_does_not_parse() {
        assert_eq!(serde_json::from_str::<Quantity>("1").unwrap().get(), 1);
        assert_eq!(
            serde_json::from_str::<Quantity>("1000000000000")
                .unwrap()
                .get(),
            MAX_QUANTITY
        );
        assert_eq!(serde_json::from_str::<Quantity>("5.0").unwrap().get(), 5);
        assert_eq!(serde_json::from_str::<Quantity>("1e3").unwrap().get(), 1000);
        for bad in [
            "0",
            "1000000000001",
            "-1",
            "18446744073709551615",
            "1.5",
            "0.0",
            "1e13",
            "\"1\"",
        ] {
            assert!(serde_json::from_str::<Quantity>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<SignedCents>("-10000000000").is_ok());
        assert!(serde_json::from_str::<SignedCents>("-10000000001").is_err());
        assert_eq!(ReportedCount::default().get(), 0);
        assert_eq!(Quantity::default().get(), 1);
    }

    #[test]
    fn the_schema_states_the_range() {
        let schema = schemars::schema_for!(AmountCents);
        assert_eq!(schema.get("minimum"), Some(&serde_json::json!(0)));
        assert_eq!(
            schema.get("maximum"),
            Some(&serde_json::json!(MAX_MONEY_CENTS))
        );
    }

    #[test]
    fn a_kept_sum_refuses_to_leave_its_range() {
        assert_eq!(add_kept("balance", 5, -5), Ok(0));
        assert_eq!(add_kept("balance", 5, -6), Err(OutOfRange("balance")));
        assert_eq!(add_kept("balance", MAX_KEPT, 0), Ok(MAX_KEPT));
        assert_eq!(add_kept("balance", MAX_KEPT, 1), Err(OutOfRange("balance")));
        assert_eq!(
            add_kept_count("actions", u64::try_from(MAX_KEPT).unwrap(), 1),
            Err(OutOfRange("actions"))
        );
        assert_eq!(add_kept_count("actions", 1, 2), Ok(3));
    }
}
