//! Scheduled capacity: cron expressions and the windows of a node group that keep a floor of
//! nodes at known busy hours ("at least 6 nodes on weekdays from 08:00 for 10 hours").
//!
//! A [`Cron`] is the classic 5-field expression, `minute hour day-of-month month day-of-week`,
//! read in UTC (there is no daylight saving to skip or repeat). Each field is `*`, a number, a
//! range `a-b`, a step `*/n` or `a-b/n`, or a comma-separated list of those. Day-of-week runs
//! 0-7, both 0 and 7 being Sunday. Names (`MON`, `JAN`) are not accepted; the shorthands
//! `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly` are. The two day fields follow the rule of Vixie cron (cronie, crontab(5)): when both
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
//! A scheduled function's triggers ([`trigger`]) say which tick is due now ([`due_tick`]): the
//! latest since the last one fired, so ticks missed while nobody was watching fire once, not
//! once each.
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

const MS_PER_MINUTE: u64 = 60_000;
const MINUTES_PER_DAY: u64 = 1_440;
/// The Gregorian calendar, weekdays included, repeats every 400 years.
const CALENDAR_CYCLE_YEARS: i64 = 400;
/// The shortest window: the cron's own granularity.
pub const MIN_WINDOW_MS: u64 = MS_PER_MINUTE;
/// The longest window: a year and a day. A floor that always holds is `min_nodes`.
pub const MAX_WINDOW_MS: u64 = 366 * MINUTES_PER_DAY * MS_PER_MINUTE;

mod calendar;
mod cron;
#[cfg(test)]
pub(crate) mod tests;
mod trigger;
mod window;

pub use calendar::format_utc_minute;
pub use cron::{Cron, CronError, CronField};
pub use trigger::{due_tick, next_tick};
pub use window::{active_min, next_start, ActiveWindow, Window};
