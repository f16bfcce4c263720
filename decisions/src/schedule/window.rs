//! Windows of scheduled capacity: when each is active, and the floor the active ones set.

use super::cron::Cron;
use super::{MAX_WINDOW_MS, MIN_WINDOW_MS};
use serde::{Deserialize, Serialize};

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
