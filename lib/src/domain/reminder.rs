//! Reminder recurrence: the next occurrence keeps the local wall-clock time in the reminder's
//! time zone, across daylight saving time changes.

use chrono::{DateTime, Days, LocalResult, Months, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// How a reminder repeats (`reminders.recurrence`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recurrence {
    None,
    Daily,
    Weekly,
    Monthly,
}

impl Recurrence {
    /// The first occurrence after `now` that follows `due` in `zone`, at the same local time;
    /// `None` for a one-off reminder. Occurrences missed while nothing ran are skipped (a late
    /// run sends one reminder, not one per missed day). A local time that does not exist that
    /// day (the hour skipped when clocks go forward) moves forward by that hour; one that exists
    /// twice (clocks go back) is the first.
    pub fn next_after(
        self,
        due: DateTime<Utc>,
        zone: Tz,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let local = due.with_timezone(&zone).naive_local();
        let mut step = 1u32;
        loop {
            let next = resolve(zone, self.advance(local, step)?)?;
            if next > now {
                return Some(next);
            }
            step = step.checked_add(1)?;
        }
    }

    /// `local` moved forward by `steps` periods, in local calendar terms (monthly keeps the day
    /// of the month, or the month's last day when it is shorter).
    fn advance(self, local: NaiveDateTime, steps: u32) -> Option<NaiveDateTime> {
        match self {
            Self::None => None,
            Self::Daily => local.checked_add_days(Days::new(u64::from(steps))),
            Self::Weekly => local.checked_add_days(Days::new(7 * u64::from(steps))),
            Self::Monthly => local.checked_add_months(Months::new(steps)),
        }
    }
}

/// The instant of a local time in `zone`.
fn resolve(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.with_timezone(&Utc)),
        LocalResult::None => zone
            .from_local_datetime(&(local + TimeDelta::hours(1)))
            .earliest()
            .map(|at| at.with_timezone(&Utc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("RFC 3339")
    }

    const NEW_YORK: Tz = chrono_tz::America::New_York;

    #[test]
    fn a_daily_reminder_keeps_its_local_time_across_spring_forward() {
        // 09:00 EST (UTC-5) the day before clocks go forward on 2026-03-08.
        let due = utc("2026-03-07T14:00:00Z");
        let next = Recurrence::Daily
            .next_after(due, NEW_YORK, due)
            .expect("next");
        assert_eq!(next, utc("2026-03-08T13:00:00Z"), "09:00 EDT (UTC-4)");
    }

    #[test]
    fn a_weekly_reminder_keeps_its_local_time_across_fall_back() {
        // 18:30 EDT on 2026-10-31; clocks go back on 2026-11-01.
        let due = utc("2026-10-31T22:30:00Z");
        let next = Recurrence::Weekly
            .next_after(due, NEW_YORK, due)
            .expect("next");
        assert_eq!(next, utc("2026-11-07T23:30:00Z"), "18:30 EST (UTC-5)");
    }

    #[test]
    fn skipped_and_repeated_local_times_resolve_forward_and_first() {
        // 02:30 does not exist on 2026-03-08 in New York: 03:30 EDT.
        let due = utc("2026-03-07T07:30:00Z");
        let next = Recurrence::Daily
            .next_after(due, NEW_YORK, due)
            .expect("next");
        assert_eq!(next, utc("2026-03-08T07:30:00Z"));
        // 01:30 happens twice on 2026-11-01: the first (EDT).
        let due = utc("2026-10-31T05:30:00Z");
        let next = Recurrence::Daily
            .next_after(due, NEW_YORK, due)
            .expect("next");
        assert_eq!(next, utc("2026-11-01T05:30:00Z"));
    }

    #[test]
    fn missed_occurrences_are_skipped_and_months_end_on_their_last_day() {
        let due = utc("2026-01-05T09:00:00Z");
        let now = utc("2026-01-09T10:00:00Z");
        let next = Recurrence::Daily.next_after(due, chrono_tz::UTC, now);
        assert_eq!(next, Some(utc("2026-01-10T09:00:00Z")));
        let due = utc("2026-01-31T09:00:00Z");
        let next = Recurrence::Monthly.next_after(due, chrono_tz::UTC, due);
        assert_eq!(next, Some(utc("2026-02-28T09:00:00Z")));
        assert_eq!(Recurrence::None.next_after(due, chrono_tz::UTC, due), None);
    }
}
