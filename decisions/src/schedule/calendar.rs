//! Calendar arithmetic in UTC: a minute as year, month, day, hour and minute, the steps the cron
//! searches take, and the civil-date conversions.

use super::{MINUTES_PER_DAY, MS_PER_MINUTE};
pub(super) use fjord_core::civil::{civil_from_days, days_from_civil};

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
pub(super) struct Moment {
    pub(super) year: i64,
    pub(super) month: u32,
    pub(super) day: u32,
    pub(super) hour: u32,
    pub(super) minute: u32,
}

impl Moment {
    pub(super) fn from_minutes(minutes: u64) -> Moment {
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
    pub(super) fn to_minutes(self) -> Option<u64> {
        let days = u64::try_from(days_from_civil(self.year, self.month, self.day)).ok()?;
        days.checked_mul(MINUTES_PER_DAY)?
            .checked_add(u64::from(self.hour * 60 + self.minute))
    }

    pub(super) fn date(&self) -> (i64, u32, u32) {
        (self.year, self.month, self.day)
    }

    /// 0 is Sunday.
    pub(super) fn weekday(&self) -> u32 {
        // 1970-01-01 was a Thursday.
        (days_from_civil(self.year, self.month, self.day) + 4).rem_euclid(7) as u32
    }

    pub(super) fn end_of_previous_day(&mut self) {
        if self.day == 1 {
            self.end_of_previous_month();
        } else {
            (self.day, self.hour, self.minute) = (self.day - 1, 23, 59);
        }
    }

    pub(super) fn end_of_previous_month(&mut self) {
        if self.month == 1 {
            (self.year, self.month) = (self.year - 1, 12);
        } else {
            self.month -= 1;
        }
        (self.day, self.hour, self.minute) = (days_in_month(self.year, self.month), 23, 59);
    }

    pub(super) fn start_of_next_day(&mut self) {
        if self.day == days_in_month(self.year, self.month) {
            self.start_of_next_month();
        } else {
            (self.day, self.hour, self.minute) = (self.day + 1, 0, 0);
        }
    }

    pub(super) fn start_of_next_month(&mut self) {
        if self.month == 12 {
            (self.year, self.month) = (self.year + 1, 1);
        } else {
            self.month += 1;
        }
        (self.day, self.hour, self.minute) = (1, 0, 0);
    }
}

pub(super) fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(super) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The most days `month` ever has (February: 29).
pub(super) fn longest_month(month: u32) -> u32 {
    days_in_month(2000, month)
}
