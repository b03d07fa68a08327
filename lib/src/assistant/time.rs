//! Wall-clock times in a contact's time zone, resolved to instants DST-correctly.
//!
//! Date arithmetic here is checked: a date from a message or a tool call never reaches
//! chrono's panicking operators (dates from tool calls must lie in [`TOOL_YEARS`]).

use std::ops::RangeInclusive;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A time zone by its IANA name; UTC when the name is unknown.
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

/// The instant at which the wall clock in a zone shows a local time, DST-correct (shared with
/// reminder recurrence).
pub use crate::domain::resolve_local as resolve;

/// What the wall clock in `tz` shows at `now`.
pub fn local(tz: Tz, now: DateTime<Utc>) -> NaiveDateTime {
    now.with_timezone(&tz).naive_local()
}

/// Midnight of `date` in `tz`.
pub fn day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    resolve(tz, date.and_time(NaiveTime::MIN))
}

/// The next `weekday` on or after `from`.
pub fn next_weekday(from: NaiveDate, weekday: Weekday) -> NaiveDate {
    let ahead = (7 + weekday.num_days_from_monday() - from.weekday().num_days_from_monday()) % 7;
    from.checked_add_days(Days::new(u64::from(ahead)))
        .unwrap_or(from)
}

/// The years a date in a tool call may name: chrono parses `%Y` up to ±262143, where
/// converting between zones overflows (and panics); the model has no business there.
pub const TOOL_YEARS: RangeInclusive<i32> = 1970..=9999;

/// A due time given by a tool call: RFC 3339 with an offset (an instant), or a local
/// `YYYY-MM-DDTHH:MM[:SS]` (or with a space) read in `tz`, or a date alone (09:00 local).
/// `None` for anything else, including years outside [`TOOL_YEARS`].
pub fn parse_local_or_instant(tz: Tz, value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(value) {
        return TOOL_YEARS
            .contains(&instant.year())
            .then(|| instant.with_timezone(&Utc));
    }
    let value = value.replacen(' ', "T", 1);
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(&value, format).ok())
        .or_else(|| parse_date(&value).and_then(|d| d.and_hms_opt(9, 0, 0)))
        .filter(|local| TOOL_YEARS.contains(&local.year()))
        .map(|local| resolve(tz, local))
}

/// A `YYYY-MM-DD` date from a tool call, in [`TOOL_YEARS`].
pub fn parse_date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .ok()
        .filter(|date| TOOL_YEARS.contains(&date.year()))
}

/// A named span of days for summaries, in the contact's calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Today,
    Yesterday,
    ThisWeek,
    LastWeek,
    ThisMonth,
    LastMonth,
    ThisYear,
}

impl Period {
    pub const ALL: [Period; 7] = [
        Period::Today,
        Period::Yesterday,
        Period::ThisWeek,
        Period::LastWeek,
        Period::ThisMonth,
        Period::LastMonth,
        Period::ThisYear,
    ];

    /// The snake_case name used in tool calls.
    pub fn name(self) -> &'static str {
        match self {
            Self::Today => "today",
            Self::Yesterday => "yesterday",
            Self::ThisWeek => "this_week",
            Self::LastWeek => "last_week",
            Self::ThisMonth => "this_month",
            Self::LastMonth => "last_month",
            Self::ThisYear => "this_year",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `[from, to)` in `tz` around `now` (weeks start on Monday).
    pub fn range(self, tz: Tz, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let today = local(tz, now).date();
        let month_start = today.with_day(1).unwrap_or(today);
        // `now` is the clock's, far from chrono's limits; saturate rather than panic anyway.
        let plus =
            |date: NaiveDate, days: u64| date.checked_add_days(Days::new(days)).unwrap_or(date);
        let minus =
            |date: NaiveDate, days: u64| date.checked_sub_days(Days::new(days)).unwrap_or(date);
        let week_start = minus(today, u64::from(today.weekday().num_days_from_monday()));
        let (from, to) = match self {
            Self::Today => (today, plus(today, 1)),
            Self::Yesterday => (minus(today, 1), today),
            Self::ThisWeek => (week_start, plus(week_start, 7)),
            Self::LastWeek => (minus(week_start, 7), week_start),
            Self::ThisMonth => (month_start, add_months(month_start, 1)),
            Self::LastMonth => (add_months(month_start, -1), month_start),
            Self::ThisYear => {
                let start = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
                (start, add_months(start, 12))
            }
        };
        (day_start(tz, from), day_start(tz, to))
    }
}

/// `date` moved by `months`, on the same day or the month's last one (`date` itself when
/// that is beyond the calendar's range).
pub fn add_months(date: NaiveDate, months: i32) -> NaiveDate {
    let month0 = i32::try_from(date.month0()).unwrap_or(0);
    let Some(total) = date
        .year()
        .checked_mul(12)
        .and_then(|m| m.checked_add(month0))
        .and_then(|m| m.checked_add(months))
    else {
        return date;
    };
    let year = total.div_euclid(12);
    let month = total.rem_euclid(12).unsigned_abs() + 1;
    (1..=date.day())
        .rev()
        .find_map(|day| NaiveDate::from_ymd_opt(year, month, day))
        .unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("time")
    }

    #[test]
    fn local_times_resolve_across_daylight_saving_changes() {
        let ny: Tz = "America/New_York".parse().expect("tz");
        // Before and after the 2026-03-08 spring change: 09:00 is 14:00Z, then 13:00Z.
        assert_eq!(
            resolve(ny, at("2026-03-07 09:00")).to_rfc3339(),
            "2026-03-07T14:00:00+00:00"
        );
        assert_eq!(
            resolve(ny, at("2026-03-08 09:00")).to_rfc3339(),
            "2026-03-08T13:00:00+00:00"
        );
        // 02:30 does not exist that day: shifted past the gap to 03:30 EDT.
        assert_eq!(
            resolve(ny, at("2026-03-08 02:30")).to_rfc3339(),
            "2026-03-08T07:30:00+00:00"
        );
        // 01:30 happens twice on 2026-11-01: the first one (EDT).
        assert_eq!(
            resolve(ny, at("2026-11-01 01:30")).to_rfc3339(),
            "2026-11-01T05:30:00+00:00"
        );
    }

    #[test]
    fn periods_follow_the_local_calendar() {
        let madrid: Tz = "Europe/Madrid".parse().expect("tz");
        let now = "2026-03-31T22:30:00Z".parse().expect("now"); // 1 April, 00:30 in Madrid
        let (from, to) = Period::ThisMonth.range(madrid, now);
        assert_eq!(from.to_rfc3339(), "2026-03-31T22:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-04-30T22:00:00+00:00");
        let (from, _) = Period::LastMonth.range(madrid, now);
        assert_eq!(from.to_rfc3339(), "2026-02-28T23:00:00+00:00");
        assert_eq!(
            add_months(NaiveDate::from_ymd_opt(2026, 1, 31).expect("d"), 1),
            NaiveDate::from_ymd_opt(2026, 2, 28).expect("d")
        );
    }

    #[test]
    fn tool_times_are_local_unless_they_carry_an_offset() {
        let madrid: Tz = "Europe/Madrid".parse().expect("tz");
        let local = parse_local_or_instant(madrid, "2026-07-01T09:00").expect("local");
        assert_eq!(local.to_rfc3339(), "2026-07-01T07:00:00+00:00");
        let instant = parse_local_or_instant(madrid, "2026-07-01T09:00:00Z").expect("utc");
        assert_eq!(instant.to_rfc3339(), "2026-07-01T09:00:00+00:00");
        assert!(parse_local_or_instant(madrid, "next friday").is_none());
    }
}
