//! Calendar months and days, in UTC: spend and caps count per month, usage per day. Each is
//! `YYYY-MM` or `YYYY-MM-DD` in text (the store, events, keys) and orders as the calendar does.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::{Date, OffsetDateTime};

/// A calendar month (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    // Field order is the order: year first.
    year: i32,
    month: u8,
}

/// A calendar day (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(Date);

impl Month {
    /// The month `at` is in.
    pub fn of(at: OffsetDateTime) -> Self {
        Day::of(at).month()
    }

    /// The month an RFC 3339 time (or a `YYYY-MM-DD` date) written by this service is in.
    pub fn of_timestamp(text: &str) -> Option<Self> {
        Self::parse(text.get(..7)?)
    }

    /// A strict `YYYY-MM`.
    pub fn parse(text: &str) -> Option<Self> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let month: u8 = month.parse().ok()?;
        (1..=12).contains(&month).then_some(Self { year, month })
    }

    /// Its first day.
    pub fn first_day(self) -> Day {
        let month = time::Month::try_from(self.month).expect("a Month holds 1 to 12");
        Day(Date::from_calendar_date(self.year, month, 1).expect("every month has a 1st"))
    }
}

impl Day {
    /// The day `at` is in.
    pub fn of(at: OffsetDateTime) -> Self {
        Self(at.to_offset(time::UtcOffset::UTC).date())
    }

    /// The day an RFC 3339 time written by this service is in.
    pub fn of_timestamp(text: &str) -> Option<Self> {
        Self::parse(text.get(..10)?)
    }

    /// A strict `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Self> {
        super::usage::parse_date(text).map(Self)
    }

    pub fn month(self) -> Month {
        Month {
            year: self.0.year(),
            month: u8::from(self.0.month()),
        }
    }

    pub fn date(self) -> Date {
        self.0
    }
}

impl From<Date> for Day {
    fn from(date: Date) -> Self {
        Self(date)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::usage::format_date(self.0))
    }
}

macro_rules! as_text {
    ($type:ty, $what:literal, $pattern:literal) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("`{text}` is not a {}", $what))
                })
            }
        }

        impl JsonSchema for $type {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($type).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "description": $what,
                    "pattern": $pattern,
                })
            }
        }
    };
}

as_text!(
    Month,
    "calendar month (UTC), YYYY-MM",
    "^[0-9]{4}-[0-9]{2}$"
);
as_text!(
    Day,
    "calendar day (UTC), YYYY-MM-DD",
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn months_and_days_read_and_write_their_text_and_order_as_the_calendar() {
        let march = Month::parse("2026-03").unwrap();
        assert_eq!(march.to_string(), "2026-03");
        assert!(Month::parse("2025-12").unwrap() < march);
        assert!(march < Month::parse("2026-10").unwrap());
        for bad in ["2026-13", "2026-00", "2026-3", "26-03", "2026-03-01", ""] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Month::of_timestamp("2026-03-31T23:59:59Z"),
            Some(march),
            "a timestamp's month"
        );
        let day = Day::of(datetime!(2026-03-31 23:59:59 -01:00));
        assert_eq!(day.to_string(), "2026-04-01", "days are UTC");
        assert_eq!(day.month().to_string(), "2026-04");
        assert_eq!(march.first_day().to_string(), "2026-03-01");
        assert_eq!(
            serde_json::to_string(&march).unwrap(),
            "\"2026-03\"",
            "serialized as its text"
        );
        assert_eq!(
            serde_json::from_str::<Day>("\"2026-02-30\"").ok(),
            None,
            "no such day"
        );
    }
}
