//! When a scheduled function fires: the tick due now, and the next one.
//!
//! A function's schedule is a list of crons; a tick is the first millisecond of a minute any of
//! them matches. The leader fires at most one tick per function per look, the latest due:
//! a tick missed while no leader was watching (the whole control plane down, say) fires once on
//! return, and the ticks before it are not fired at all.

use super::cron::Cron;
use super::MS_PER_MINUTE;

/// The tick to fire at `now_ms`: the latest match of any of `crons` at or before `now_ms` that
/// is later than `last_fired_ms`, and not before `since_ms` (when the schedule was deployed, so
/// a new schedule never fires for a time before it existed). `None` when nothing is due.
pub fn due_tick(crons: &[Cron], since_ms: u64, last_fired_ms: Option<u64>, now_ms: u64) -> Option<u64> {
    let not_before = match last_fired_ms {
        Some(fired) => since_ms.max(fired.saturating_add(MS_PER_MINUTE)),
        None => since_ms,
    };
    crons.iter().filter_map(|c| c.latest_between(not_before, now_ms)).max()
}

/// The first tick strictly after `after_ms`, over all of `crons`.
pub fn next_tick(crons: &[Cron], after_ms: u64) -> Option<u64> {
    crons.iter().filter_map(|c| c.first_after(after_ms)).min()
}
