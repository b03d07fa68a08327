//! Time expressions inside a reminder ("tomorrow at 9", "el viernes", "in 10 minutes",
//! "every monday at 8am", "el 25 de diciembre a las 21:30") and their resolution to an instant
//! in the contact's time zone.
//!
//! Rules (documented in the README): a day without a time is at 09:00 (or the part of the day
//! named: morning 09:00, afternoon 15:00, evening 19:00, night 21:00); a time without a day is
//! the next one (today, else tomorrow); hours without am/pm are read on a 24-hour clock unless
//! a part of the day says otherwise; a weekday is its next occurrence (today if the time is
//! still ahead); a date without a year is its next occurrence. Anything vague, contradictory,
//! impossible or past is refused with what is wrong.
//!
//! Nothing here panics on what a message says: counts are range-checked before a duration is
//! built ([`MAX_COUNT`]), dates are built with checked constructors and checked arithmetic,
//! and written years must lie in [`YEARS`]; anything outside is
//! [`Unclear::InvalidDateOrTime`] (or [`Unclear::InThePast`] for a year already gone).

use std::ops::RangeInclusive;

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use super::Unclear;
use crate::assistant::time;
use crate::domain::Recurrence;

/// The largest count of a relative time: "in 1000 minutes" / hours / days / weeks.
pub const MAX_COUNT: i64 = 1000;

/// The years a written date may name; later ones are refused as invalid, earlier ones as past.
pub const YEARS: RangeInclusive<i32> = 2000..=2100;

/// The time expressions found in a message's words.
#[derive(Debug, Default)]
pub struct Found {
    /// Indices of the words they took.
    pub consumed: Vec<usize>,
    pub spec: Spec,
}

/// What the time expressions say, combined.
#[derive(Debug, Default)]
pub struct Spec {
    day: Option<Day>,
    clock: Option<Clock>,
    part: Option<Part>,
    after: Option<Duration>,
    in_days: Option<i64>,
    pub recurrence: Recurrence,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Day {
    Today,
    Tomorrow,
    AfterTomorrow,
    Weekday(Weekday),
    Date {
        month: u32,
        day: u32,
        year: Option<i32>,
    },
    OfTheMonth(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Clock {
    hour: u32,
    minute: u32,
    meridiem: Option<Meridiem>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Meridiem {
    Am,
    Pm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Morning,
    Afternoon,
    Evening,
    Night,
}

#[derive(Clone, Copy, Debug)]
enum Piece {
    Day(Day),
    Clock(Clock),
    Part(Part),
    After(Duration),
    InDays(i64),
    Repeat(Recurrence),
}

type Match = Option<Result<(usize, Vec<Piece>), Unclear>>;

/// Phrases (normalised words) and what each means.
type Phrases<T> = &'static [(&'static [&'static str], T)];

/// Finds every time expression in `words`.
pub fn find(words: &[&str]) -> Result<Found, Unclear> {
    let matchers: [fn(&[&str]) -> Match; 5] = [repeat, relative, day, clock, part];
    let mut found = Found::default();
    let mut i = 0;
    while i < words.len() {
        let rest = &words[i..];
        match matchers.iter().find_map(|m| m(rest)) {
            Some(Ok((len, pieces))) => {
                for piece in pieces {
                    found.spec.add(piece)?;
                }
                found.consumed.extend(i..i + len);
                i += len;
            }
            Some(Err(what)) => return Err(what),
            None => i += 1,
        }
    }
    Ok(found)
}

/// Whether words left in a reminder's text name a time too vague to use.
pub fn has_vague_time(words: &[&str]) -> bool {
    const VAGUE: &[&[&str]] = &[
        &["later"],
        &["soon"],
        &["sometime"],
        &["someday"],
        &["eventually"],
        &["next", "week"],
        &["next", "month"],
        &["next", "year"],
        &["weekend"],
        &["yesterday"],
        &["every"],
        &["each"],
        &["luego"],
        &["pronto"],
        &["ayer"],
        &["mas", "tarde"],
        &["algun", "dia"],
        &["semana", "que", "viene"],
        &["proxima", "semana"],
        &["mes", "que", "viene"],
        &["proximo", "mes"],
        &["fin", "de", "semana"],
        &["cada"],
        &["todos", "los"],
        &["un", "rato"],
        &["a", "while"],
    ];
    (0..words.len()).any(|i| VAGUE.iter().any(|v| words[i..].starts_with(v)))
}

impl Spec {
    fn add(&mut self, piece: Piece) -> Result<(), Unclear> {
        fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), Unclear> {
            match slot.replace(value) {
                None => Ok(()),
                Some(_) => Err(Unclear::ReminderNeedsTime),
            }
        }
        match piece {
            Piece::Day(day) => set(&mut self.day, day),
            Piece::Clock(clock) => set(&mut self.clock, clock),
            Piece::Part(part) => set(&mut self.part, part),
            Piece::After(after) => set(&mut self.after, after),
            Piece::InDays(days) => set(&mut self.in_days, days),
            Piece::Repeat(recurrence) if self.recurrence == Recurrence::None => {
                self.recurrence = recurrence;
                Ok(())
            }
            Piece::Repeat(_) => Err(Unclear::ReminderNeedsTime),
        }
    }

    /// The instant this names, after `now`, in `tz`.
    pub fn resolve(&self, now: DateTime<Utc>, tz: Tz) -> Result<DateTime<Utc>, Unclear> {
        if let Some(after) = self.after {
            if self.day.is_some() || self.clock.is_some() || self.in_days.is_some() {
                return Err(Unclear::ReminderNeedsTime);
            }
            return now
                .checked_add_signed(after)
                .ok_or(Unclear::InvalidDateOrTime);
        }
        let local_now = time::local(tz, now);
        let today = local_now.date();
        let clock = self.time_of_day()?;
        let at = |date: NaiveDate, t: NaiveTime| time::resolve(tz, date.and_time(t));
        let plus = |date: NaiveDate, days: u64| {
            date.checked_add_days(Days::new(days))
                .ok_or(Unclear::InvalidDateOrTime)
        };
        let future = |due: DateTime<Utc>| {
            if due > now {
                Ok(due)
            } else {
                Err(Unclear::InThePast)
            }
        };
        let default_time = clock.unwrap_or_else(|| self.part_time());

        if let Some(days) = self.in_days {
            if self.day.is_some() {
                return Err(Unclear::ReminderNeedsTime);
            }
            let days = u64::try_from(days).map_err(|_| Unclear::InvalidDateOrTime)?;
            let date = plus(today, days)?;
            return future(at(date, clock.unwrap_or(local_now.time())));
        }
        let Some(day) = self.day else {
            if clock.is_none() && self.part.is_none() && self.recurrence == Recurrence::None {
                return Err(Unclear::ReminderNeedsTime);
            }
            let due = at(today, default_time);
            return Ok(if due > now {
                due
            } else {
                at(plus(today, 1)?, default_time)
            });
        };
        match day {
            Day::Today => future(at(today, default_time)),
            Day::Tomorrow => future(at(plus(today, 1)?, default_time)),
            Day::AfterTomorrow => future(at(plus(today, 2)?, default_time)),
            Day::Weekday(weekday) => {
                let date = time::next_weekday(today, weekday);
                let due = at(date, default_time);
                future(if due > now {
                    due
                } else {
                    at(plus(date, 7)?, default_time)
                })
            }
            Day::Date { month, day, year } => {
                match year {
                    Some(year) if year < *YEARS.start() => return Err(Unclear::InThePast),
                    Some(year) if !YEARS.contains(&year) => return Err(Unclear::InvalidDateOrTime),
                    _ => {}
                }
                let date_in = |y: i32| {
                    NaiveDate::from_ymd_opt(y, month, day).ok_or(Unclear::InvalidDateOrTime)
                };
                let due = at(date_in(year.unwrap_or(today.year()))?, default_time);
                match (due > now, year) {
                    (true, _) => Ok(due),
                    (false, Some(_)) => Err(Unclear::InThePast),
                    (false, None) => {
                        let next = today
                            .year()
                            .checked_add(1)
                            .ok_or(Unclear::InvalidDateOrTime)?;
                        future(at(date_in(next)?, default_time))
                    }
                }
            }
            Day::OfTheMonth(day) => (0..3)
                .filter_map(|ahead| {
                    let month = time::add_months(today.with_day(1)?, ahead);
                    let date = month.with_day(day)?;
                    Some(at(date, default_time)).filter(|due| *due > now)
                })
                .next()
                .ok_or(Unclear::InvalidDateOrTime),
        }
    }

    /// The clock time with am/pm or the part of the day applied; `None` without a clock.
    fn time_of_day(&self) -> Result<Option<NaiveTime>, Unclear> {
        let Some(Clock {
            hour,
            minute,
            meridiem,
        }) = self.clock
        else {
            return Ok(None);
        };
        let hour = match (meridiem, self.part) {
            (Some(_), _) if !(1..=12).contains(&hour) => return Err(Unclear::InvalidDateOrTime),
            (Some(Meridiem::Am), _) => hour % 12,
            (Some(Meridiem::Pm), _) => hour % 12 + 12,
            (None, Some(Part::Afternoon | Part::Evening)) if hour < 12 => hour + 12,
            (None, Some(Part::Night)) if (5..12).contains(&hour) => hour + 12,
            (None, Some(Part::Night)) if hour == 12 => 0,
            _ => hour,
        };
        NaiveTime::from_hms_opt(hour, minute, 0)
            .map(Some)
            .ok_or(Unclear::InvalidDateOrTime)
    }

    fn part_time(&self) -> NaiveTime {
        let hour = match self.part {
            Some(Part::Afternoon) => 15,
            Some(Part::Evening) => 19,
            Some(Part::Night) => 21,
            Some(Part::Morning) | None => 9,
        };
        NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN)
    }
}

// ---------------------------------------------------------------------------------------------
// Matchers: each looks at the words from one position and returns how many it takes.
// ---------------------------------------------------------------------------------------------

fn one(len: usize, piece: Piece) -> Match {
    Some(Ok((len, vec![piece])))
}

/// The longest of `phrases` that `words` starts with.
fn longest<'p, T: Copy>(words: &[&str], phrases: &'p [(&'p [&'p str], T)]) -> Option<(usize, T)> {
    phrases
        .iter()
        .filter(|(phrase, _)| words.starts_with(phrase))
        .max_by_key(|(phrase, _)| phrase.len())
        .map(|(phrase, value)| (phrase.len(), *value))
}

fn repeat(words: &[&str]) -> Match {
    use Recurrence::{Daily, Monthly, Weekly};
    const PHRASES: &[(&[&str], Recurrence)] = &[
        (&["every", "day"], Daily),
        (&["everyday"], Daily),
        (&["each", "day"], Daily),
        (&["every", "single", "day"], Daily),
        (&["daily"], Daily),
        (&["todos", "los", "dias"], Daily),
        (&["cada", "dia"], Daily),
        (&["diariamente"], Daily),
        (&["a", "diario"], Daily),
        (&["every", "week"], Weekly),
        (&["each", "week"], Weekly),
        (&["weekly"], Weekly),
        (&["cada", "semana"], Weekly),
        (&["todas", "las", "semanas"], Weekly),
        (&["semanalmente"], Weekly),
        (&["every", "month"], Monthly),
        (&["each", "month"], Monthly),
        (&["monthly"], Monthly),
        (&["cada", "mes"], Monthly),
        (&["todos", "los", "meses"], Monthly),
        (&["mensualmente"], Monthly),
    ];
    if let Some((len, recurrence)) = longest(words, PHRASES) {
        return one(len, Piece::Repeat(recurrence));
    }
    let (len, weekday) = match words {
        [every, day, ..] if ["every", "each", "cada"].contains(every) => (2, weekday(day)?),
        ["todos", "los", day, ..] => (3, weekday(day)?),
        ["on", day, ..] if day.ends_with('s') => (2, weekday(day.trim_end_matches('s'))?),
        _ => return None,
    };
    Some(Ok((
        len,
        vec![Piece::Repeat(Weekly), Piece::Day(Day::Weekday(weekday))],
    )))
}

fn relative(words: &[&str]) -> Match {
    let lead = match words {
        ["in" | "en" | "within", ..] => 1,
        ["dentro", "de", ..] => 2,
        _ => return None,
    };
    let rest = &words[lead..];
    if rest.starts_with(&["half", "an", "hour"]) || rest.starts_with(&["media", "hora"]) {
        let len = if rest[0] == "half" { 3 } else { 2 };
        return one(lead + len, Piece::After(Duration::try_minutes(30)?));
    }
    let (count, unit, used) = match rest.first().and_then(|w| compact_quantity(w)) {
        Some((count, unit)) => (count, unit, 1),
        None => {
            let (count, used) = quantity(rest)?;
            (count, *rest.get(used)?, used + 1)
        }
    };
    let unit = match unit {
        "minute" | "minutes" | "min" | "mins" | "minuto" | "minutos" => Unit::Minutes,
        "hour" | "hours" | "hr" | "hrs" | "h" | "hora" | "horas" => Unit::Hours,
        "day" | "days" | "dia" | "dias" => Unit::Days,
        "week" | "weeks" | "semana" | "semanas" => Unit::Weeks,
        _ => return None,
    };
    // Checked before anything is built from it: the count is whatever the message says.
    if !(1..=MAX_COUNT).contains(&count) {
        return Some(Err(Unclear::InvalidDateOrTime));
    }
    let piece = match unit {
        Unit::Minutes => Duration::try_minutes(count).map(Piece::After),
        Unit::Hours => Duration::try_hours(count).map(Piece::After),
        Unit::Days => Some(Piece::InDays(count)),
        Unit::Weeks => count.checked_mul(7).map(Piece::InDays),
    };
    match piece {
        Some(piece) => one(lead + used, piece),
        None => Some(Err(Unclear::InvalidDateOrTime)),
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Minutes,
    Hours,
    Days,
    Weeks,
}

/// Digits as a count; a count too large for `i64` saturates (and is refused by the caller's
/// range check rather than read as no count at all).
fn count(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(i64::MAX))
}

/// A count in words or digits, and how many words it took.
fn quantity(words: &[&str]) -> Option<(i64, usize)> {
    const PHRASES: &[(&[&str], i64)] = &[(&["a", "couple", "of"], 2), (&["un", "par", "de"], 2)];
    if let Some((len, n)) = longest(words, PHRASES) {
        return Some((n, len));
    }
    let n = match *words.first()? {
        "a" | "an" | "one" | "un" | "una" | "uno" => 1,
        "two" | "dos" => 2,
        "three" | "tres" => 3,
        "four" | "cuatro" => 4,
        "five" | "cinco" => 5,
        "ten" | "diez" => 10,
        "fifteen" | "quince" => 15,
        "twenty" | "veinte" => 20,
        "thirty" | "treinta" => 30,
        digits => count(digits)?,
    };
    Some((n, 1))
}

/// `10min`, `2h`: a count and its unit in one word.
fn compact_quantity(word: &str) -> Option<(i64, &str)> {
    let split = word.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = word.split_at_checked(split)?;
    if !["min", "mins", "h", "hr", "hrs"].contains(&unit) {
        return None;
    }
    Some((count(digits)?, unit))
}

fn day(words: &[&str]) -> Match {
    const PHRASES: Phrases<(Day, Option<Part>)> = &[
        (&["today"], (Day::Today, None)),
        (&["hoy"], (Day::Today, None)),
        (&["tonight"], (Day::Today, Some(Part::Night))),
        (&["this", "morning"], (Day::Today, Some(Part::Morning))),
        (&["this", "afternoon"], (Day::Today, Some(Part::Afternoon))),
        (&["this", "evening"], (Day::Today, Some(Part::Evening))),
        (&["esta", "manana"], (Day::Today, Some(Part::Morning))),
        (&["esta", "tarde"], (Day::Today, Some(Part::Afternoon))),
        (&["esta", "noche"], (Day::Today, Some(Part::Night))),
        (&["tomorrow"], (Day::Tomorrow, None)),
        (&["manana"], (Day::Tomorrow, None)),
        (&["day", "after", "tomorrow"], (Day::AfterTomorrow, None)),
        (
            &["the", "day", "after", "tomorrow"],
            (Day::AfterTomorrow, None),
        ),
        (&["pasado", "manana"], (Day::AfterTomorrow, None)),
    ];
    if let Some((len, (day, part))) = longest(words, PHRASES) {
        return with_part(words, len, day, part);
    }
    const LEADS: &[(&[&str], ())] = &[
        (&["on"], ()),
        (&["on", "the"], ()),
        (&["this"], ()),
        (&["next"], ()),
        (&["this", "coming"], ()),
        (&["coming"], ()),
        (&["el"], ()),
        (&["este"], ()),
        (&["proximo"], ()),
        (&["el", "proximo"], ()),
        (&["the"], ()),
    ];
    let lead = longest(words, LEADS).map(|(len, ())| len).unwrap_or(0);
    let rest = &words[lead..];
    if let Some(weekday) = rest.first().and_then(|w| weekday(w)) {
        return with_part(words, lead + 1, Day::Weekday(weekday), None);
    }
    let after_el = lead > 0 && words[lead - 1] == "el";
    if let Some(found) = date(rest, after_el) {
        return Some(found.map(|(len, pieces)| (lead + len, pieces)));
    }
    None
}

/// A day, with the English part of the day that may follow it ("friday morning").
fn with_part(words: &[&str], len: usize, day: Day, part: Option<Part>) -> Match {
    let following = match words.get(len).copied() {
        Some("morning") => Some(Part::Morning),
        Some("afternoon") => Some(Part::Afternoon),
        Some("evening") => Some(Part::Evening),
        Some("night") => Some(Part::Night),
        _ => None,
    };
    let mut pieces = vec![Piece::Day(day)];
    pieces.extend(part.or(following).map(Piece::Part));
    Some(Ok((
        len + usize::from(part.is_none() && following.is_some()),
        pieces,
    )))
}

/// A date; `after_el`: a bare day number is a day of the month ("el 25").
fn date(words: &[&str], after_el: bool) -> Match {
    let first = *words.first()?;
    if let Ok(date) = NaiveDate::parse_from_str(first, "%Y-%m-%d") {
        let day = Day::Date {
            month: date.month(),
            day: date.day(),
            year: Some(date.year()),
        };
        return one(1, Piece::Day(day));
    }
    if first.contains('/') {
        return slash_date(first).map(|r| r.map(|day| (1, vec![Piece::Day(day)])));
    }
    let year_at = |i: usize, lead: &str| -> (Option<i32>, usize) {
        let (skip, word) = match (lead, words.get(i), words.get(i + 1)) {
            ("de", Some(&"de"), Some(w)) => (2, *w),
            (_, Some(w), _) if lead.is_empty() => (1, *w),
            _ => return (None, 0),
        };
        match word.parse::<i32>() {
            Ok(year) if (2000..=2100).contains(&year) => (Some(year), skip),
            _ => (None, 0),
        }
    };
    let dated = |len: usize, month: u32, day: u32, year: Option<i32>| {
        one(len, Piece::Day(Day::Date { month, day, year }))
    };
    match words {
        // 25 de diciembre [de 2026]
        [d, "de", m, ..] if ordinal(d).is_some() && month(m).is_some() => {
            let (year, skip) = year_at(3, "de");
            dated(3 + skip, month(m)?, ordinal(d)?, year)
        }
        // 25 december, 25th of december
        [d, "of", m, ..] if ordinal(d).is_some() && month(m).is_some() => {
            let (year, skip) = year_at(3, "");
            dated(3 + skip, month(m)?, ordinal(d)?, year)
        }
        [d, m, ..] if ordinal(d).is_some() && month(m).is_some() => {
            let (year, skip) = year_at(2, "");
            dated(2 + skip, month(m)?, ordinal(d)?, year)
        }
        // december 25[th] [2026]
        [m, d, ..] if month(m).is_some() && ordinal(d).is_some() => {
            let (year, skip) = year_at(2, "");
            dated(2 + skip, month(m)?, ordinal(d)?, year)
        }
        // the 25th, el 25
        [d, ..] if (after_el || d.bytes().any(|b| !b.is_ascii_digit())) && ordinal(d).is_some() => {
            one(1, Piece::Day(Day::OfTheMonth(ordinal(d)?)))
        }
        _ => None,
    }
}

/// `12/25`, `25/12`, `25/12/2026`: the order is clear only when one part is above 12.
fn slash_date(word: &str) -> Option<Result<Day, Unclear>> {
    let parts: Vec<&str> = word.split('/').collect();
    let number = |s: &str| s.parse::<u32>().ok();
    let (a, b) = (number(parts.first()?)?, number(parts.get(1)?)?);
    let year = match parts.get(2) {
        Some(y) => Some(
            y.parse::<i32>()
                .ok()
                .map(|y| if y < 100 { 2000 + y } else { y })?,
        ),
        None => None,
    };
    if parts.len() > 3 {
        return None;
    }
    let (month, day) = match (a, b) {
        (a, b) if a > 12 && b <= 12 => (b, a),
        (a, b) if b > 12 && a <= 12 => (a, b),
        (a, b) if a == b => (a, b),
        (a, b) if a > 12 && b > 12 => return Some(Err(Unclear::InvalidDateOrTime)),
        _ => return Some(Err(Unclear::AmbiguousDate)),
    };
    Some(Ok(Day::Date { month, day, year }))
}

/// `25`, `25th`, `1st`, `2nd`, `3rd`, `1º` as a day of the month (1 to 31).
fn ordinal(word: &str) -> Option<u32> {
    let digits = ["st", "nd", "rd", "th", "º", "o"]
        .iter()
        .find_map(|suffix| word.strip_suffix(suffix))
        .unwrap_or(word);
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

fn month(word: &str) -> Option<u32> {
    const MONTHS: [&[&str]; 12] = [
        &["january", "jan", "enero"],
        &["february", "feb", "febrero"],
        &["march", "mar", "marzo"],
        &["april", "apr", "abril"],
        &["may", "mayo"],
        &["june", "jun", "junio"],
        &["july", "jul", "julio"],
        &["august", "aug", "agosto"],
        &["september", "sep", "sept", "septiembre", "setiembre"],
        &["october", "oct", "octubre"],
        &["november", "nov", "noviembre"],
        &["december", "dec", "diciembre"],
    ];
    MONTHS
        .iter()
        .position(|names| names.contains(&word))
        .map(|i| i as u32 + 1)
}

fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "lunes" => Weekday::Mon,
        "tuesday" | "martes" => Weekday::Tue,
        "wednesday" | "miercoles" => Weekday::Wed,
        "thursday" | "jueves" => Weekday::Thu,
        "friday" | "viernes" => Weekday::Fri,
        "saturday" | "sabado" | "sabados" => Weekday::Sat,
        "sunday" | "domingo" | "domingos" => Weekday::Sun,
        _ => return None,
    })
}

fn clock(words: &[&str]) -> Match {
    const FIXED: Phrases<u32> = &[
        (&["noon"], 12),
        (&["at", "noon"], 12),
        (&["midday"], 12),
        (&["mediodia"], 12),
        (&["al", "mediodia"], 12),
        (&["a", "mediodia"], 12),
        (&["midnight"], 0),
        (&["at", "midnight"], 0),
        (&["medianoche"], 0),
        (&["a", "medianoche"], 0),
    ];
    if let Some((len, hour)) = longest(words, FIXED) {
        let clock = Clock {
            hour,
            minute: 0,
            meridiem: None,
        };
        return one(len, Piece::Clock(clock));
    }
    let lead = match words {
        ["at" | "@" | "around" | "by", ..] => 1,
        ["a" | "sobre" | "hacia", "las" | "la", ..] => 2,
        _ => 0,
    };
    let word = *words.get(lead)?;
    let explicit = lead > 0;
    let (hour, minute, meridiem) = match clock_word(word, explicit)? {
        Ok(parsed) => parsed,
        Err(what) => return Some(Err(what)),
    };
    let mut len = lead + 1;
    let mut pieces = Vec::new();
    let (qualifier_len, qualifier) = qualifier(&words[len..]);
    len += qualifier_len;
    let meridiem = match qualifier {
        Some(Qualifier::Meridiem(m)) => Some(m),
        Some(Qualifier::Part(part)) => {
            pieces.push(Piece::Part(part));
            meridiem
        }
        None if meridiem.is_none() && !explicit && !word.contains([':', 'h']) => return None,
        None => meridiem,
    };
    pieces.insert(
        0,
        Piece::Clock(Clock {
            hour,
            minute,
            meridiem,
        }),
    );
    Some(Ok((len, pieces)))
}

type ClockWord = (u32, u32, Option<Meridiem>);

/// `9`, `9:30`, `21:00`, `9am`, `9:30pm`, `21h`, `una`. A bare number is a time only after
/// "at" / "a las" (`explicit`) or before am/pm (checked by the caller).
fn clock_word(word: &str, explicit: bool) -> Option<Result<ClockWord, Unclear>> {
    if word == "una" && explicit {
        return Some(Ok((1, 0, None)));
    }
    let (body, meridiem) = [
        ("am", Meridiem::Am),
        ("a.m", Meridiem::Am),
        ("pm", Meridiem::Pm),
        ("p.m", Meridiem::Pm),
    ]
    .iter()
    .find_map(|(suffix, m)| word.strip_suffix(suffix).map(|b| (b, Some(*m))))
    .unwrap_or((word, None));
    let body = body.strip_suffix('h').unwrap_or(body);
    let (hour, minute) = match body.split_once([':', '.']) {
        Some((h, m)) if m.len() == 2 => (h, m),
        Some(_) => return None,
        None => (body, "0"),
    };
    let numeric = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !numeric(hour) || !numeric(minute) {
        return None;
    }
    let (hour, minute): (u32, u32) = (hour.parse().ok()?, minute.parse().ok()?);
    if hour > 23 || minute > 59 {
        return Some(Err(Unclear::InvalidDateOrTime));
    }
    Some(Ok((hour, minute, meridiem)))
}

enum Qualifier {
    Meridiem(Meridiem),
    Part(Part),
}

/// What may follow a clock: am/pm, "in the evening", "de la tarde", "o'clock".
fn qualifier(words: &[&str]) -> (usize, Option<Qualifier>) {
    const PHRASES: &[(&[&str], Option<Meridiem>, Option<Part>)] = &[
        (&["am"], Some(Meridiem::Am), None),
        (&["a.m"], Some(Meridiem::Am), None),
        (&["pm"], Some(Meridiem::Pm), None),
        (&["p.m"], Some(Meridiem::Pm), None),
        (&["in", "the", "morning"], None, Some(Part::Morning)),
        (&["in", "the", "afternoon"], None, Some(Part::Afternoon)),
        (&["in", "the", "evening"], None, Some(Part::Evening)),
        (&["at", "night"], None, Some(Part::Night)),
        (&["de", "la", "manana"], None, Some(Part::Morning)),
        (&["por", "la", "manana"], None, Some(Part::Morning)),
        (&["de", "la", "madrugada"], Some(Meridiem::Am), None),
        (&["de", "la", "tarde"], None, Some(Part::Afternoon)),
        (&["por", "la", "tarde"], None, Some(Part::Afternoon)),
        (&["de", "la", "noche"], None, Some(Part::Night)),
        (&["por", "la", "noche"], None, Some(Part::Night)),
        (&["o'clock"], None, None),
        (&["en", "punto"], None, None),
    ];
    let best = PHRASES
        .iter()
        .filter(|(phrase, _, _)| words.starts_with(phrase))
        .max_by_key(|(phrase, _, _)| phrase.len());
    match best {
        Some((phrase, Some(m), _)) => (phrase.len(), Some(Qualifier::Meridiem(*m))),
        Some((phrase, None, Some(p))) => (phrase.len(), Some(Qualifier::Part(*p))),
        Some((phrase, None, None)) => (phrase.len(), None),
        None => (0, None),
    }
}

fn part(words: &[&str]) -> Match {
    const PHRASES: &[(&[&str], Part)] = &[
        (&["in", "the", "morning"], Part::Morning),
        (&["in", "the", "afternoon"], Part::Afternoon),
        (&["in", "the", "evening"], Part::Evening),
        (&["at", "night"], Part::Night),
        (&["por", "la", "manana"], Part::Morning),
        (&["de", "la", "manana"], Part::Morning),
        (&["por", "la", "tarde"], Part::Afternoon),
        (&["de", "la", "tarde"], Part::Afternoon),
        (&["por", "la", "noche"], Part::Night),
        (&["de", "la", "noche"], Part::Night),
    ];
    longest(words, PHRASES).and_then(|(len, part)| one(len, Piece::Part(part)))
}
