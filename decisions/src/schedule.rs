//! Scheduled capacity: cron expressions and the windows of a node group that keep a floor of
//! nodes at known busy hours ("at least 6 nodes on weekdays from 08:00 for 10 hours").
//!
//! A [`Cron`] is the classic 5-field expression, `minute hour day-of-month month day-of-week`,
//! read in UTC (there is no daylight saving to skip or repeat). Each field is `*`, a number, a
//! range `a-b`, a step `*/n` or `a-b/n`, or a comma-separated list of those. Day-of-week runs
//! 0-7, both 0 and 7 being Sunday. Names (`MON`, `JAN`) and the `@daily` shorthands are not
//! accepted. The two day fields follow the rule of Vixie cron (cronie, crontab(5)): when both
//! are restricted, a day matches if **either** does (`0 0 13 * 5` is every 13th and every
//! Friday); a field that starts with `*` (`*` or `*/n`) counts as unrestricted, and then a day
//! must match **both** (`0 0 */2 * 1` is the odd-numbered days that are Mondays). An expression
//! that can never match (`0 0 30 2 *`) is refused when parsed. Errors name the field and the
//! token at fault ([`CronError`]).
//!
//! A [`Window`] is active from each time its cron matches, for `duration_ms`; [`active_min`]
//! gives the largest `min_nodes` among the windows active at a moment, and [`next_start`] when
//! a cron next matches, for display.
//!
//! **Cost.** Searches walk the calendar by fields, not by minutes: a month the expression does
//! not allow is skipped in one step, a day it does not allow in one step, and the hour and
//! minute are found with bit operations. Looking back over a window's duration takes at most
//! about 33 steps per calendar month of lookback (about 400 for a year, the longest window
//! allowed, [`MAX_WINDOW_MS`]), whatever the duration in minutes; looking forward stops after
//! 400 years, the Gregorian calendar's cycle (its 146,097 days are whole weeks, so an expression
//! that matches at all matches within any 400 years; parsing refuses those that never do).
//!
//! Pure: no clock, no I/O. Times are Unix milliseconds, UTC; a match is the first millisecond
//! of its minute.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

const MS_PER_MINUTE: u64 = 60_000;
const MINUTES_PER_DAY: u64 = 1_440;
/// The Gregorian calendar, weekdays included, repeats every 400 years.
const CALENDAR_CYCLE_YEARS: i64 = 400;
/// The shortest window: the cron's own granularity.
pub const MIN_WINDOW_MS: u64 = MS_PER_MINUTE;
/// The longest window: a year and a day. A floor that always holds is `min_nodes`.
pub const MAX_WINDOW_MS: u64 = 366 * MINUTES_PER_DAY * MS_PER_MINUTE;

/// One of the five fields of a cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl CronField {
    const ALL: [CronField; 5] = [
        CronField::Minute,
        CronField::Hour,
        CronField::DayOfMonth,
        CronField::Month,
        CronField::DayOfWeek,
    ];

    /// The values a token may name (day-of-week's 7 is Sunday again).
    fn bounds(self) -> (u32, u32) {
        match self {
            CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (0, 7),
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        })
    }
}

/// A cron expression that cannot be used, saying where and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error(
        "cron expression {text:?} has {found} fields; write 5: minute hour day-of-month month day-of-week \
         (for example \"0 8 * * 1-5\")"
    )]
    FieldCount { text: String, found: usize },
    #[error("cron field {field}: bad token {token:?}: {reason}")]
    Token {
        field: CronField,
        token: String,
        reason: String,
    },
}

impl CronError {
    /// The field at fault, when it is one field.
    pub fn field(&self) -> Option<CronField> {
        match self {
            CronError::Token { field, .. } => Some(*field),
            CronError::FieldCount { .. } => None,
        }
    }
}

/// The values one field allows, as bits (bit `v` for value `v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Values(u64);

impl Values {
    fn contains(self, v: u32) -> bool {
        v < 64 && self.0 & (1 << v) != 0
    }

    /// The largest allowed value not above `v`.
    fn at_or_below(self, v: u32) -> Option<u32> {
        let mask = if v >= 63 { u64::MAX } else { (1u64 << (v + 1)) - 1 };
        let bits = self.0 & mask;
        (bits != 0).then(|| 63 - bits.leading_zeros())
    }

    /// The smallest allowed value not below `v`.
    fn at_or_above(self, v: u32) -> Option<u32> {
        let bits = if v >= 64 { 0 } else { self.0 & (u64::MAX << v) };
        (bits != 0).then(|| bits.trailing_zeros())
    }
}

/// A parsed 5-field cron expression, in UTC. Serialized as its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cron {
    /// The fields as written, separated by single spaces.
    text: String,
    minutes: Values,
    hours: Values,
    days_of_month: Values,
    months: Values,
    /// 0 (Sunday) to 6; a 7 in the text is stored as 0.
    days_of_week: Values,
    /// Both day fields are restricted: a day matches when either does.
    either_day: bool,
}

impl Cron {
    /// Parses `minute hour day-of-month month day-of-week`, fields separated by white space.
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != CronField::ALL.len() {
            return Err(CronError::FieldCount {
                text: text.to_string(),
                found: fields.len(),
            });
        }
        let mut values = [Values(0); 5];
        for ((slot, field), token) in values.iter_mut().zip(CronField::ALL).zip(&fields) {
            *slot = parse_field(field, token)?;
        }
        let [minutes, hours, days_of_month, months, mut days_of_week] = values;
        if days_of_week.contains(7) {
            days_of_week = Values((days_of_week.0 & !(1 << 7)) | 1);
        }
        let dom_restricted = !fields[2].starts_with('*');
        let dow_restricted = !fields[4].starts_with('*');
        let cron = Cron {
            text: fields.join(" "),
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            either_day: dom_restricted && dow_restricted,
        };
        // With the day-of-week unrestricted, a day-of-month no allowed month has never comes.
        // (Any other expression matches: every date falls on every weekday within 400 years.)
        if dom_restricted && !cron.either_day {
            let possible = (1..=12).any(|month| {
                cron.months.contains(month) && cron.days_of_month.at_or_below(longest_month(month)).is_some()
            });
            if !possible {
                return Err(CronError::Token {
                    field: CronField::DayOfMonth,
                    token: fields[2].to_string(),
                    reason: format!(
                        "no month allowed by {:?} has such a day, so the expression never matches",
                        fields[3]
                    ),
                });
            }
        }
        Ok(cron)
    }

    /// The expression as written, fields separated by single spaces.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the minute holding `at_ms` matches.
    pub fn matches(&self, at_ms: u64) -> bool {
        let at = Moment::from_minutes(at_ms / MS_PER_MINUTE);
        self.months.contains(at.month)
            && self.day_matches(&at)
            && self.hours.contains(at.hour)
            && self.minutes.contains(at.minute)
    }

    fn day_matches(&self, at: &Moment) -> bool {
        let dom = self.days_of_month.contains(at.day);
        let dow = self.days_of_week.contains(at.weekday());
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The latest match `t` with `not_before_ms <= t <= at_ms`, if any.
    fn latest_between(&self, not_before_ms: u64, at_ms: u64) -> Option<u64> {
        let floor = not_before_ms.div_ceil(MS_PER_MINUTE);
        let at = at_ms / MS_PER_MINUTE;
        if floor > at {
            return None;
        }
        let floor_date = Moment::from_minutes(floor).date();
        let mut c = Moment::from_minutes(at);
        loop {
            if c.date() < floor_date {
                return None;
            }
            if !self.months.contains(c.month) {
                c.end_of_previous_month();
                continue;
            }
            if !self.day_matches(&c) {
                c.end_of_previous_day();
                continue;
            }
            let Some(hour) = self.hours.at_or_below(c.hour) else {
                c.end_of_previous_day();
                continue;
            };
            if hour < c.hour {
                (c.hour, c.minute) = (hour, 59);
            }
            let Some(minute) = self.minutes.at_or_below(c.minute) else {
                if c.hour == 0 {
                    c.end_of_previous_day();
                } else {
                    (c.hour, c.minute) = (c.hour - 1, 59);
                }
                continue;
            };
            c.minute = minute;
            let t = c.to_minutes()?;
            return (t >= floor).then_some(t * MS_PER_MINUTE);
        }
    }

    /// The first match strictly after `after_ms`, within the next 400 years.
    fn first_after(&self, after_ms: u64) -> Option<u64> {
        let mut c = Moment::from_minutes(after_ms / MS_PER_MINUTE + 1);
        let last_year = c.year + CALENDAR_CYCLE_YEARS;
        loop {
            if c.year > last_year {
                return None;
            }
            if !self.months.contains(c.month) {
                c.start_of_next_month();
                continue;
            }
            if !self.day_matches(&c) {
                c.start_of_next_day();
                continue;
            }
            let Some(hour) = self.hours.at_or_above(c.hour) else {
                c.start_of_next_day();
                continue;
            };
            if hour > c.hour {
                (c.hour, c.minute) = (hour, 0);
            }
            let Some(minute) = self.minutes.at_or_above(c.minute) else {
                if c.hour == 23 {
                    c.start_of_next_day();
                } else {
                    (c.hour, c.minute) = (c.hour + 1, 0);
                }
                continue;
            };
            c.minute = minute;
            return c.to_minutes()?.checked_mul(MS_PER_MINUTE);
        }
    }
}

impl FromStr for Cron {
    type Err = CronError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Cron::parse(text)
    }
}

impl TryFrom<String> for Cron {
    type Error = CronError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Cron::parse(&text)
    }
}

impl From<Cron> for String {
    fn from(cron: Cron) -> String {
        cron.text
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One field: a comma-separated list of items.
fn parse_field(field: CronField, text: &str) -> Result<Values, CronError> {
    text.split(',')
        .try_fold(0u64, |bits, item| Ok(bits | parse_item(field, item)?))
        .map(Values)
}

/// `*`, `n`, `a-b`, `*/s` or `a-b/s`.
fn parse_item(field: CronField, item: &str) -> Result<u64, CronError> {
    let bad = |reason: String| CronError::Token {
        field,
        token: item.to_string(),
        reason,
    };
    let (lo, hi) = field.bounds();
    let value = |text: &str| -> Result<u32, CronError> {
        match whole_number(text) {
            Some(v) if (u64::from(lo)..=u64::from(hi)).contains(&v) => Ok(v as u32),
            Some(v) => Err(bad(format!("{v} is outside {lo}-{hi}"))),
            None if text.is_empty() => Err(bad("a number is missing".into())),
            None => Err(bad(format!("{text:?} is not a number"))),
        }
    };
    if item.is_empty() {
        return Err(bad("an empty list item; remove the extra comma".into()));
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => match whole_number(step) {
            Some(0) => return Err(bad("a step must be at least 1".into())),
            Some(step) => (range, Some(step)),
            None => return Err(bad(format!("the step {step:?} is not a whole number"))),
        },
        None => (item, None),
    };
    let (first, last) = if range == "*" {
        (lo, hi)
    } else if let Some((a, b)) = range.split_once('-') {
        let (a, b) = (value(a)?, value(b)?);
        if a > b {
            return Err(bad(format!(
                "the range {a}-{b} runs backwards; write the smaller value first"
            )));
        }
        (a, b)
    } else {
        let v = value(range)?;
        if let Some(step) = step {
            return Err(bad(format!(
                "a step follows `*` or a range; write {v}-{hi}/{step} for every {step} from {v}"
            )));
        }
        (v, v)
    };
    let step = usize::try_from(step.unwrap_or(1)).unwrap_or(usize::MAX);
    let (first, last) = (first as usize, last as usize);
    Ok((first..=last).step_by(step).fold(0u64, |bits, v| bits | 1 << v))
}

/// Digits only (no sign, no space); too many of them read as `u64::MAX`.
fn whole_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// A window of scheduled capacity: from each time `cron` matches, for `duration_ms`, the group
/// keeps at least `min_nodes` nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub cron: Cron,
    pub duration_ms: u64,
    pub min_nodes: u32,
}

impl Window {
    /// Checks the duration; returns the field at fault and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&self.duration_ms) {
            return Err((
                "duration_ms",
                format!(
                    "is {} but must be from {MIN_WINDOW_MS} (a minute) to {MAX_WINDOW_MS} (366 days)",
                    self.duration_ms
                ),
            ));
        }
        Ok(())
    }

    /// The start of the occurrence active at `now_ms`, if one is: the latest match `s` with
    /// `s <= now_ms < s + duration_ms`.
    pub fn active_start(&self, now_ms: u64) -> Option<u64> {
        let duration = self.duration_ms.min(MAX_WINDOW_MS);
        if duration == 0 {
            return None;
        }
        self.cron.latest_between(now_ms.saturating_sub(duration - 1), now_ms)
    }
}

/// The window that sets a group's scheduled floor at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveWindow {
    /// Its position in the policy's list.
    pub index: usize,
    pub min_nodes: u32,
    /// When the active occurrence started and ends (exclusive).
    pub start_ms: u64,
    pub end_ms: u64,
}

/// The active window with the largest `min_nodes` at `now_ms` (the first in the list among
/// equals), or `None` when no window is active.
pub fn active_min(windows: &[Window], now_ms: u64) -> Option<ActiveWindow> {
    let mut best: Option<ActiveWindow> = None;
    for (index, window) in windows.iter().enumerate() {
        let Some(start_ms) = window.active_start(now_ms) else {
            continue;
        };
        if best.is_none_or(|b| window.min_nodes > b.min_nodes) {
            best = Some(ActiveWindow {
                index,
                min_nodes: window.min_nodes,
                start_ms,
                end_ms: start_ms.saturating_add(window.duration_ms),
            });
        }
    }
    best
}

/// When `cron` next matches strictly after `after_ms` ("next window at ..."); `None` only past
/// the year 584 million, where milliseconds no longer fit in a `u64`.
pub fn next_start(cron: &Cron, after_ms: u64) -> Option<u64> {
    cron.first_after(after_ms)
}

/// `2024-02-29 08:00 UTC`: the minute holding `at_ms`.
pub fn format_utc_minute(at_ms: u64) -> String {
    let at = Moment::from_minutes(at_ms / MS_PER_MINUTE);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year, at.month, at.day, at.hour, at.minute
    )
}

/// A minute of the UTC calendar; the cursor of the searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Moment {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
}

impl Moment {
    fn from_minutes(minutes: u64) -> Moment {
        let days = (minutes / MINUTES_PER_DAY) as i64;
        let of_day = (minutes % MINUTES_PER_DAY) as u32;
        let (year, month, day) = civil_from_days(days);
        Moment {
            year,
            month,
            day,
            hour: of_day / 60,
            minute: of_day % 60,
        }
    }

    /// Minutes since the Unix epoch; `None` before it.
    fn to_minutes(self) -> Option<u64> {
        let days = u64::try_from(days_from_civil(self.year, self.month, self.day)).ok()?;
        days.checked_mul(MINUTES_PER_DAY)?
            .checked_add(u64::from(self.hour * 60 + self.minute))
    }

    fn date(&self) -> (i64, u32, u32) {
        (self.year, self.month, self.day)
    }

    /// 0 is Sunday.
    fn weekday(&self) -> u32 {
        // 1970-01-01 was a Thursday.
        (days_from_civil(self.year, self.month, self.day) + 4).rem_euclid(7) as u32
    }

    fn end_of_previous_day(&mut self) {
        if self.day == 1 {
            self.end_of_previous_month();
        } else {
            (self.day, self.hour, self.minute) = (self.day - 1, 23, 59);
        }
    }

    fn end_of_previous_month(&mut self) {
        if self.month == 1 {
            (self.year, self.month) = (self.year - 1, 12);
        } else {
            self.month -= 1;
        }
        (self.day, self.hour, self.minute) = (days_in_month(self.year, self.month), 23, 59);
    }

    fn start_of_next_day(&mut self) {
        if self.day == days_in_month(self.year, self.month) {
            self.start_of_next_month();
        } else {
            (self.day, self.hour, self.minute) = (self.day + 1, 0, 0);
        }
    }

    fn start_of_next_month(&mut self) {
        if self.month == 12 {
            (self.year, self.month) = (self.year + 1, 1);
        } else {
            self.month += 1;
        }
        (self.day, self.hour, self.minute) = (1, 0, 0);
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The most days `month` ever has (February: 29).
fn longest_month(month: u32) -> u32 {
    days_in_month(2000, month)
}

/// Days since 1970-01-01 of a proleptic Gregorian date. Counts years from March, so the leap
/// day ends a year, in eras of 400 years (146,097 days).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719,468 days from 0000-03-01 to 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Unix milliseconds of a UTC minute (the calendar code is anchored by `the_calendar_matches_known_dates`).
    fn utc(year: i64, month: u32, day: u32, hour: u32, minute: u32) -> u64 {
        let moment = Moment {
            year,
            month,
            day,
            hour,
            minute,
        };
        moment.to_minutes().expect("after 1970") * MS_PER_MINUTE
    }

    fn cron(text: &str) -> Cron {
        Cron::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn values(bits: Values) -> Vec<u32> {
        (0..64).filter(|&v| bits.contains(v)).collect()
    }

    fn window(text: &str, duration_ms: u64, min_nodes: u32) -> Window {
        Window {
            cron: cron(text),
            duration_ms,
            min_nodes,
        }
    }

    const HOUR_MS: u64 = 3_600_000;
    const DAY_MS: u64 = 24 * HOUR_MS;

    /// A small deterministic generator (xorshift64) for randomized checks; the node autoscaler's
    /// tests use it too.
    pub(crate) struct TestRng(pub(crate) u64);

    impl TestRng {
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
            options[self.below(options.len() as u64) as usize]
        }
    }

    #[test]
    fn the_calendar_matches_known_dates() {
        assert_eq!(utc(1970, 1, 1, 0, 0), 0);
        assert_eq!(utc(2000, 3, 1, 0, 0), 951_868_800_000);
        assert_eq!(utc(2024, 1, 1, 0, 0), 1_704_067_200_000);
        assert_eq!(utc(2024, 2, 29, 0, 0), 1_709_164_800_000);
        assert_eq!(utc(2100, 3, 1, 0, 0), 4_107_542_400_000);
        assert_eq!(utc(2104, 2, 29, 0, 0), 4_233_686_400_000);
        let weekday = |ms: u64| Moment::from_minutes(ms / MS_PER_MINUTE).weekday();
        assert_eq!(weekday(0), 4, "1970-01-01 was a Thursday");
        assert_eq!(weekday(utc(2000, 1, 1, 12, 0)), 6, "a Saturday");
        assert_eq!(weekday(utc(2024, 1, 1, 23, 59)), 1, "a Monday");
        // Every day from 1970 into the 2500s converts both ways and is a real date.
        let mut previous = (1969, 12, 31);
        for days in 0..200_000 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
            assert!((1..=days_in_month(year, month)).contains(&day));
            assert!((year, month, day) > previous);
            previous = (year, month, day);
        }
        assert!(is_leap_year(2000) && is_leap_year(2024) && !is_leap_year(2100) && !is_leap_year(2023));
    }

    #[test]
    fn each_syntax_gives_its_values() {
        let c = cron("0-30/10 8-18/5 */10 */3 1-5");
        assert_eq!(values(c.minutes), [0, 10, 20, 30]);
        assert_eq!(values(c.hours), [8, 13, 18]);
        assert_eq!(values(c.days_of_month), [1, 11, 21, 31]);
        assert_eq!(values(c.months), [1, 4, 7, 10]);
        assert_eq!(values(c.days_of_week), [1, 2, 3, 4, 5]);
        let c = cron("5,10-12,59 * * * *");
        assert_eq!(values(c.minutes), [5, 10, 11, 12, 59]);
        assert_eq!(values(c.hours), (0..24).collect::<Vec<_>>());
        assert_eq!(values(c.days_of_month), (1..32).collect::<Vec<_>>());
        assert_eq!(values(c.months), (1..13).collect::<Vec<_>>());
        assert_eq!(values(c.days_of_week), (0..7).collect::<Vec<_>>());
        // A step larger than the range keeps its first value.
        assert_eq!(values(cron("*/90 */24 * * *").minutes), [0]);
        assert_eq!(values(cron("*/90 */24 * * *").hours), [0]);
        // Day-of-week: 7 is Sunday, like 0.
        assert_eq!(values(cron("* * * * 7").days_of_week), [0]);
        assert_eq!(values(cron("* * * * 5-7").days_of_week), [0, 5, 6]);
        assert_eq!(values(cron("* * * * 0,7").days_of_week), [0]);
        assert_eq!(values(cron("* * * * */2").days_of_week), [0, 2, 4, 6]);
    }

    #[test]
    fn text_is_kept_with_single_spaces_and_round_trips() {
        let c = cron("  0   8 *\t* 1-5 ");
        assert_eq!(c.as_str(), "0 8 * * 1-5");
        assert_eq!(c.to_string(), "0 8 * * 1-5");
        assert_eq!("0 8 * * 1-5".parse::<Cron>().unwrap(), c);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"0 8 * * 1-5\"");
        assert_eq!(serde_json::from_str::<Cron>(&json).unwrap(), c);
        let err = serde_json::from_str::<Cron>("\"0 25 * * *\"").unwrap_err().to_string();
        assert!(err.contains("cron field hour: bad token \"25\""), "{err}");
    }

    #[test]
    fn wrong_field_counts_are_refused() {
        for (text, found) in [("", 0), ("0 8 * *", 4), ("0 8 * * 1 2", 6), ("@daily", 1)] {
            let err = Cron::parse(text).unwrap_err();
            assert_eq!(
                err,
                CronError::FieldCount {
                    text: text.into(),
                    found
                }
            );
            assert_eq!(err.field(), None);
            assert!(err.to_string().contains("minute hour day-of-month month day-of-week"));
        }
    }

    #[test]
    fn bad_tokens_are_named_with_their_field() {
        use CronField::*;
        let cases = [
            ("60 * * * *", Minute, "60", "60 is outside 0-59"),
            ("99999999999 * * * *", Minute, "99999999999", "outside 0-59"),
            ("* 24 * * *", Hour, "24", "24 is outside 0-23"),
            ("* * 0 * *", DayOfMonth, "0", "0 is outside 1-31"),
            ("* * 32 * *", DayOfMonth, "32", "outside 1-31"),
            ("* * * 0 *", Month, "0", "outside 1-12"),
            ("* * * 13 *", Month, "13", "outside 1-12"),
            ("* * * * 8", DayOfWeek, "8", "outside 0-7"),
            ("* * * * mon", DayOfWeek, "mon", "\"mon\" is not a number"),
            ("a * * * *", Minute, "a", "not a number"),
            ("+5 * * * *", Minute, "+5", "not a number"),
            ("1- * * * *", Minute, "1-", "a number is missing"),
            ("-1 * * * *", Minute, "-1", "a number is missing"),
            ("1-2-3 * * * *", Minute, "1-2-3", "\"2-3\" is not a number"),
            ("*/0 * * * *", Minute, "*/0", "at least 1"),
            ("* */x * * *", Hour, "*/x", "the step \"x\" is not a whole number"),
            ("* */ * * *", Hour, "*/", "not a whole number"),
            ("5/15 * * * *", Minute, "5/15", "write 5-59/15"),
            ("10-5 * * * *", Minute, "10-5", "runs backwards"),
            ("1,,2 * * * *", Minute, "", "empty list item"),
            ("0 0 1, * *", DayOfMonth, "", "empty list item"),
            ("0 0 30 2 *", DayOfMonth, "30", "never matches"),
            ("0 0 31 4,6,9,11 *", DayOfMonth, "31", "never matches"),
            ("0 0 31 2 */2", DayOfMonth, "31", "never matches"),
        ];
        for (text, field, token, reason) in cases {
            let err = Cron::parse(text).unwrap_err();
            let CronError::Token {
                field: f,
                token: t,
                reason: r,
            } = &err
            else {
                panic!("{text}: {err}");
            };
            assert_eq!((*f, t.as_str()), (field, token), "{text}: {err}");
            assert!(r.contains(reason), "{text}: {err}");
            assert_eq!(err.field(), Some(field));
            assert!(
                err.to_string().starts_with(&format!("cron field {field}: bad token")),
                "{err}"
            );
        }
        // Possible in some month or by the other day field: accepted.
        for text in ["0 0 29 2 *", "0 0 30 2 1", "0 0 31 1-2 *", "0 0 30,31 2,4 *"] {
            cron(text);
        }
    }

    #[test]
    fn the_day_fields_follow_vixie_cron() {
        // Both restricted: either matches. 2024-01-05 is a Friday, 2024-09-13 a Friday the 13th.
        let c = cron("0 0 13 * 5");
        assert!(c.matches(utc(2024, 9, 13, 0, 0)));
        assert!(c.matches(utc(2024, 1, 13, 0, 0)), "a Saturday the 13th");
        assert!(c.matches(utc(2024, 1, 5, 0, 0)), "a Friday the 5th");
        assert!(!c.matches(utc(2024, 1, 6, 0, 0)));
        // A day field starting with `*` is unrestricted: both must match.
        let c = cron("0 0 */2 * 1");
        assert!(c.matches(utc(2024, 1, 1, 0, 0)), "Monday the 1st");
        assert!(c.matches(utc(2024, 1, 15, 0, 0)), "Monday the 15th");
        assert!(!c.matches(utc(2024, 1, 8, 0, 0)), "Monday the 8th");
        assert!(!c.matches(utc(2024, 1, 3, 0, 0)), "Wednesday the 3rd");
        let c = cron("0 0 1 * *");
        assert!(c.matches(utc(2024, 2, 1, 0, 0)) && !c.matches(utc(2024, 2, 2, 0, 0)));
        // 0 and 7 are both Sunday (2024-01-07).
        for text in ["30 6 * * 0", "30 6 * * 7"] {
            let c = cron(text);
            assert!(c.matches(utc(2024, 1, 7, 6, 30)), "{text}");
            assert!(c.matches(utc(2024, 1, 7, 6, 30) + 59_999), "{text}: the whole minute");
            assert!(!c.matches(utc(2024, 1, 7, 6, 31)), "{text}");
            assert!(!c.matches(utc(2024, 1, 6, 6, 30)), "{text}");
        }
    }

    #[test]
    fn next_start_is_strictly_after() {
        let weekdays = cron("0 8 * * 1-5");
        // Friday 2024-01-05 08:00 exactly: the next is Monday's.
        assert_eq!(
            next_start(&weekdays, utc(2024, 1, 5, 8, 0)),
            Some(utc(2024, 1, 8, 8, 0))
        );
        assert_eq!(
            next_start(&weekdays, utc(2024, 1, 5, 8, 0) - 1),
            Some(utc(2024, 1, 5, 8, 0))
        );
        assert_eq!(next_start(&cron("* * * * *"), 0), Some(MS_PER_MINUTE));
        assert_eq!(next_start(&cron("* * * * *"), 59_999), Some(MS_PER_MINUTE));
        assert_eq!(next_start(&cron("* * * * *"), u64::MAX - 1), None);
    }

    #[test]
    fn next_start_across_month_and_year_ends_and_leap_days() {
        let cases = [
            // The 31st skips the shorter months.
            ("0 0 31 * *", utc(2024, 1, 31, 0, 0), utc(2024, 3, 31, 0, 0)),
            ("0 0 31 * *", utc(2024, 4, 1, 0, 0), utc(2024, 5, 31, 0, 0)),
            ("0 0 30 * *", utc(2023, 1, 31, 0, 0), utc(2023, 3, 30, 0, 0)),
            // The leap day: every four years, but not in 2100.
            ("0 12 29 2 *", utc(2023, 3, 1, 0, 0), utc(2024, 2, 29, 12, 0)),
            ("0 12 29 2 *", utc(2024, 2, 29, 12, 0), utc(2028, 2, 29, 12, 0)),
            ("0 12 29 2 *", utc(2096, 3, 1, 0, 0), utc(2104, 2, 29, 12, 0)),
            ("0 0 28-31 2 *", utc(2023, 2, 28, 0, 0), utc(2024, 2, 28, 0, 0)),
            ("0 0 28-31 2 *", utc(2024, 2, 28, 0, 0), utc(2024, 2, 29, 0, 0)),
            // The last minute of the year, and the year after.
            ("59 23 31 12 *", utc(2024, 6, 1, 0, 0), utc(2024, 12, 31, 23, 59)),
            ("59 23 31 12 *", utc(2024, 12, 31, 23, 59), utc(2025, 12, 31, 23, 59)),
            ("0 0 1 1 *", utc(2024, 12, 31, 23, 59), utc(2025, 1, 1, 0, 0)),
            // Steps and ranges together.
            ("0-30/10 8-18/5 * * *", utc(2024, 1, 1, 8, 0), utc(2024, 1, 1, 8, 10)),
            ("0-30/10 8-18/5 * * *", utc(2024, 1, 1, 8, 30), utc(2024, 1, 1, 13, 0)),
            ("0-30/10 8-18/5 * * *", utc(2024, 1, 1, 18, 30), utc(2024, 1, 2, 8, 0)),
            // Both day fields restricted: either; one starting with `*`: both.
            ("15 */6 1-7 * 1", utc(2024, 1, 1, 18, 15), utc(2024, 1, 2, 0, 15)),
            ("15 */6 1-7 * 1", utc(2024, 1, 7, 18, 15), utc(2024, 1, 8, 0, 15)),
            ("15 */6 */7 * 1", utc(2024, 1, 1, 18, 15), utc(2024, 1, 8, 0, 15)),
            ("15 */6 */7 * 1", utc(2024, 1, 29, 18, 15), utc(2024, 4, 1, 0, 15)),
            ("0 0 1 */3 *", utc(2024, 1, 1, 0, 0), utc(2024, 4, 1, 0, 0)),
            // A Friday the 13th or any 13th or any Friday.
            ("0 9 13 * 5", utc(2024, 1, 5, 9, 0), utc(2024, 1, 12, 9, 0)),
        ];
        for (text, after, expected) in cases {
            let got = next_start(&cron(text), after);
            assert_eq!(
                got.map(format_utc_minute),
                Some(format_utc_minute(expected)),
                "{text} after {}",
                format_utc_minute(after)
            );
            assert_eq!(got, Some(expected));
        }
    }

    #[test]
    fn searches_agree_with_a_minute_by_minute_walk() {
        let minutes = ["*", "0", "59", "*/15", "10-20", "5,35", "0-30/10", "*/7"];
        let hours = ["*", "0", "23", "8-18", "*/6", "9,17", "1-22/3"];
        let days_of_month = ["*", "1", "31", "15", "1-7", "*/2", "28-31", "29", "30"];
        let months = ["*", "2", "1-6", "*/3", "12", "2,3"];
        let days_of_week = ["*", "0", "7", "1-5", "6,0", "*/2", "5"];
        let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
        let span_minutes = 3 * MINUTES_PER_DAY;
        let (from, to) = (utc(2023, 1, 1, 0, 0), utc(2026, 1, 1, 0, 0));
        let mut checked = 0;
        while checked < 150 {
            let text = format!(
                "{} {} {} {} {}",
                rng.pick(&minutes),
                rng.pick(&hours),
                rng.pick(&days_of_month),
                rng.pick(&months),
                rng.pick(&days_of_week)
            );
            let Ok(c) = Cron::parse(&text) else {
                continue;
            };
            checked += 1;
            let at = from + rng.below(to - from);
            let floor = at.saturating_sub(span_minutes * MS_PER_MINUTE);
            let walked_back = (0..=span_minutes)
                .map(|i| (at / MS_PER_MINUTE - i) * MS_PER_MINUTE)
                .find(|&t| t >= floor && c.matches(t));
            assert_eq!(c.latest_between(floor, at), walked_back, "{text} at {at}");
            let walked_forward = (1..=span_minutes)
                .map(|i| (at / MS_PER_MINUTE + i) * MS_PER_MINUTE)
                .find(|&t| c.matches(t));
            match walked_forward {
                Some(t) => assert_eq!(next_start(&c, at), Some(t), "{text} after {at}"),
                None => {
                    let next = next_start(&c, at).expect("a parsed expression matches again");
                    assert!(next > at + span_minutes * MS_PER_MINUTE && c.matches(next), "{text}");
                }
            }
        }
    }

    #[test]
    fn a_window_is_active_from_its_start_for_its_duration() {
        let w = window("0 8 * * 1-5", 10 * HOUR_MS, 6);
        let windows = [w.clone()];
        // Monday 2024-01-01.
        assert_eq!(active_min(&windows, utc(2024, 1, 1, 8, 0) - 1), None);
        let active = active_min(&windows, utc(2024, 1, 1, 8, 0)).expect("active at its start");
        assert_eq!(
            active,
            ActiveWindow {
                index: 0,
                min_nodes: 6,
                start_ms: utc(2024, 1, 1, 8, 0),
                end_ms: utc(2024, 1, 1, 18, 0),
            }
        );
        assert_eq!(active_min(&windows, utc(2024, 1, 1, 18, 0) - 1), Some(active));
        assert_eq!(
            active_min(&windows, utc(2024, 1, 1, 18, 0)),
            None,
            "the end is exclusive"
        );
        assert_eq!(active_min(&windows, utc(2024, 1, 6, 9, 0)), None, "a Saturday");
        assert_eq!(active_min(&[], utc(2024, 1, 1, 9, 0)), None);
    }

    #[test]
    fn the_largest_active_floor_wins_and_the_first_among_equals() {
        let windows = [
            window("0 8 * * *", 10 * HOUR_MS, 4),
            window("0 12 * * *", 2 * HOUR_MS, 8),
            window("30 11 * * *", 3 * HOUR_MS, 8),
        ];
        let at = |h, m| active_min(&windows, utc(2024, 1, 1, h, m)).map(|a| (a.index, a.min_nodes));
        assert_eq!(at(7, 59), None);
        assert_eq!(at(9, 0), Some((0, 4)));
        assert_eq!(at(11, 30), Some((2, 8)));
        assert_eq!(at(12, 30), Some((1, 8)), "equal floors: the first listed");
        assert_eq!(at(14, 0), Some((2, 8)));
        assert_eq!(at(14, 30), Some((0, 4)));
        assert_eq!(at(18, 0), None);
    }

    #[test]
    fn windows_cross_midnight_month_and_year_ends() {
        let new_year = [window("0 22 31 12 *", 4 * HOUR_MS, 3)];
        assert!(active_min(&new_year, utc(2025, 1, 1, 1, 59)).is_some());
        assert!(active_min(&new_year, utc(2025, 1, 1, 2, 0)).is_none());
        // Two days from Feb 28 20:00: to Mar 1 in a leap year, to Mar 2 otherwise.
        let february = [window("0 20 28 2 *", 2 * DAY_MS, 5)];
        assert!(active_min(&february, utc(2024, 3, 1, 19, 59)).is_some());
        assert!(active_min(&february, utc(2024, 3, 1, 20, 0)).is_none());
        assert!(active_min(&february, utc(2023, 3, 2, 19, 59)).is_some());
        assert!(active_min(&february, utc(2023, 3, 2, 20, 0)).is_none());
    }

    #[test]
    fn long_windows_and_windows_longer_than_their_period() {
        // Yearly, for 300 days: 2024-01-01 + 300 days is 2024-10-27.
        let season = [window("0 0 1 1 *", 300 * DAY_MS, 7)];
        let a = active_min(&season, utc(2024, 10, 26, 23, 59)).expect("active");
        assert_eq!(a.start_ms, utc(2024, 1, 1, 0, 0));
        assert!(active_min(&season, utc(2024, 10, 27, 0, 0)).is_none());
        // The leap day, for the longest duration: one year and a day later it ends.
        let leap = [window("0 0 29 2 *", MAX_WINDOW_MS, 2)];
        assert!(active_min(&leap, utc(2025, 2, 28, 23, 59)).is_some());
        assert!(active_min(&leap, utc(2025, 3, 1, 0, 0)).is_none());
        assert!(active_min(&leap, utc(2027, 6, 1, 0, 0)).is_none());
        // Hourly for two hours: always active, from the latest start.
        let overlapping = [window("0 * * * *", 2 * HOUR_MS, 1)];
        let a = active_min(&overlapping, utc(2024, 5, 5, 5, 5)).expect("active");
        assert_eq!(a.start_ms, utc(2024, 5, 5, 5, 0));
        // Near the epoch there is no earlier day to look at.
        assert!(active_min(&[window("0 0 * * *", HOUR_MS, 1)], 10).is_some());
        assert!(active_min(&[window("0 1 * * *", HOUR_MS, 1)], 10).is_none());
    }

    #[test]
    fn window_durations_are_checked_and_a_zero_duration_is_never_active() {
        for bad in [0, MIN_WINDOW_MS - 1, MAX_WINDOW_MS + 1] {
            let (field, reason) = window("* * * * *", bad, 1).validate().unwrap_err();
            assert_eq!(field, "duration_ms");
            assert!(reason.contains(&bad.to_string()), "{reason}");
        }
        for good in [MIN_WINDOW_MS, MAX_WINDOW_MS] {
            assert_eq!(window("* * * * *", good, 1).validate(), Ok(()));
        }
        assert_eq!(window("* * * * *", 0, 1).active_start(utc(2024, 1, 1, 0, 0)), None);
    }

    #[test]
    fn windows_read_from_yaml() {
        let w: Window =
            serde_yaml_ng::from_str("cron: \"0 8 * * 1-5\"\nduration_ms: 36000000\nmin_nodes: 6\n").unwrap();
        assert_eq!(w, window("0 8 * * 1-5", 10 * HOUR_MS, 6));
        let err = serde_yaml_ng::from_str::<Window>("cron: \"0 25 * * *\"\nduration_ms: 60000\nmin_nodes: 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cron field hour: bad token \"25\": 25 is outside 0-23"),
            "{err}"
        );
        let err = serde_yaml_ng::from_str::<Window>("cron: \"* * * * *\"\nduration_ms: 60000\nmin_nodes: 1\nmax: 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `max`"), "{err}");
    }

    #[test]
    fn formats_a_minute_in_utc() {
        assert_eq!(
            format_utc_minute(utc(2024, 2, 29, 8, 5) + 59_999),
            "2024-02-29 08:05 UTC"
        );
        assert_eq!(format_utc_minute(0), "1970-01-01 00:00 UTC");
    }
}
