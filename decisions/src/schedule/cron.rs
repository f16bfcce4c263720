//! Cron expressions: parsing each field into a set of values, and the searches (the latest
//! match in a span, the first match after a time) walking the calendar by fields.

use super::calendar::{longest_month, Moment};
use super::{CALENDAR_CYCLE_YEARS, MS_PER_MINUTE};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

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
    #[error(
        "cron expression {text:?} is not a known shorthand; use @yearly, @annually, @monthly, @weekly, \
         @daily, @midnight or @hourly, or 5 fields"
    )]
    Shorthand { text: String },
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
            CronError::FieldCount { .. } | CronError::Shorthand { .. } => None,
        }
    }
}

/// The five fields a shorthand stands for.
fn shorthand(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

/// The values one field allows, as bits (bit `v` for value `v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Values(pub(super) u64);

impl Values {
    pub(super) fn contains(self, v: u32) -> bool {
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
    pub(super) minutes: Values,
    pub(super) hours: Values,
    pub(super) days_of_month: Values,
    pub(super) months: Values,
    /// 0 (Sunday) to 6; a 7 in the text is stored as 0.
    pub(super) days_of_week: Values,
    /// Both day fields are restricted: a day matches when either does.
    either_day: bool,
}

impl Cron {
    /// Parses `minute hour day-of-month month day-of-week`, fields separated by white space,
    /// or one of the shorthands of Vixie cron (`@daily` is `0 0 * * *`), kept as written.
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let trimmed = text.trim();
        if trimmed.starts_with('@') {
            let fields = shorthand(trimmed).ok_or_else(|| CronError::Shorthand { text: text.to_string() })?;
            let mut cron = Cron::parse(fields)?;
            cron.text = trimmed.to_string();
            return Ok(cron);
        }
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
    pub fn latest_between(&self, not_before_ms: u64, at_ms: u64) -> Option<u64> {
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
    pub fn first_after(&self, after_ms: u64) -> Option<u64> {
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
