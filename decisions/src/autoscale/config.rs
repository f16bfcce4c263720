//! The autoscaler's settings (the `autoscaler:` section of the cluster policy), their defaults
//! and their validation naming the setting.

use serde::{Deserialize, Serialize};

pub const DEFAULT_STABLE_WINDOW_MS: u64 = 60_000;
pub const DEFAULT_PANIC_WINDOW_MS: u64 = 6_000;
pub const DEFAULT_BUCKET_MS: u64 = 1_000;
pub const DEFAULT_PANIC_THRESHOLD: f64 = 2.0;
pub const DEFAULT_MAX_SCALE_UP_RATE: f64 = 10.0;
pub const DEFAULT_MAX_SCALE_DOWN_RATE: f64 = 2.0;
pub const DEFAULT_KEEP_ALIVE_BUCKET_MS: u64 = 60_000;
pub const DEFAULT_KEEP_ALIVE_MIN_SAMPLES: u64 = 5;

/// The autoscaler's settings, the same for every function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoscalerConfig {
    /// The window whose mean concurrency sets the desire outside panic mode.
    pub stable_window_ms: u64,
    /// The short window that detects surges.
    pub panic_window_ms: u64,
    /// Samples falling into the same bucket are merged; windows are whole buckets.
    pub bucket_ms: u64,
    /// Panic when the panic-window desire reaches this many times the ready instances.
    pub panic_threshold: f64,
    /// At most this many times the ready instances (at least one more) per evaluation.
    pub max_scale_up_rate: f64,
    /// At least the ready instances divided by this per evaluation.
    pub max_scale_down_rate: f64,
    /// Adaptive keep-alive: the width of one bucket of the idle-time histogram (240 buckets).
    pub keep_alive_bucket_ms: u64,
    /// Adaptive keep-alive: idle times needed before the histogram is used.
    pub keep_alive_min_samples: u64,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            stable_window_ms: DEFAULT_STABLE_WINDOW_MS,
            panic_window_ms: DEFAULT_PANIC_WINDOW_MS,
            bucket_ms: DEFAULT_BUCKET_MS,
            panic_threshold: DEFAULT_PANIC_THRESHOLD,
            max_scale_up_rate: DEFAULT_MAX_SCALE_UP_RATE,
            max_scale_down_rate: DEFAULT_MAX_SCALE_DOWN_RATE,
            keep_alive_bucket_ms: DEFAULT_KEEP_ALIVE_BUCKET_MS,
            keep_alive_min_samples: DEFAULT_KEEP_ALIVE_MIN_SAMPLES,
        }
    }
}

/// An autoscaler setting out of bounds, naming the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid autoscaler setting `{field}`: {reason}")]
pub struct AutoscalerConfigError {
    pub field: &'static str,
    pub reason: String,
}

impl AutoscalerConfig {
    /// Checks every bound; the first field at fault is reported.
    pub fn validate(&self) -> Result<(), AutoscalerConfigError> {
        let fail = |field, reason: String| Err(AutoscalerConfigError { field, reason });
        if self.bucket_ms == 0 {
            return fail("bucket_ms", "must be at least 1".into());
        }
        if self.panic_window_ms < self.bucket_ms {
            return fail(
                "panic_window_ms",
                format!(
                    "is {} but must be at least bucket_ms ({})",
                    self.panic_window_ms, self.bucket_ms
                ),
            );
        }
        if self.stable_window_ms < self.panic_window_ms {
            return fail(
                "stable_window_ms",
                format!(
                    "is {} but must be at least panic_window_ms ({})",
                    self.stable_window_ms, self.panic_window_ms
                ),
            );
        }
        if !(self.panic_threshold.is_finite() && self.panic_threshold >= 1.0) {
            return fail(
                "panic_threshold",
                format!("must be a number of at least 1 (got {})", self.panic_threshold),
            );
        }
        if !(self.max_scale_up_rate.is_finite() && self.max_scale_up_rate > 1.0) {
            return fail(
                "max_scale_up_rate",
                format!("must be a number above 1 (got {})", self.max_scale_up_rate),
            );
        }
        if !(self.max_scale_down_rate.is_finite() && self.max_scale_down_rate > 1.0) {
            return fail(
                "max_scale_down_rate",
                format!("must be a number above 1 (got {})", self.max_scale_down_rate),
            );
        }
        if self.keep_alive_bucket_ms < 100 {
            return fail(
                "keep_alive_bucket_ms",
                format!("must be at least 100 (got {})", self.keep_alive_bucket_ms),
            );
        }
        if self.keep_alive_min_samples == 0 {
            return fail("keep_alive_min_samples", "must be at least 1".into());
        }
        Ok(())
    }

    /// How many buckets a window of `window_ms` spans (at least one).
    pub(super) fn buckets_in(&self, window_ms: u64) -> u64 {
        window_ms.div_ceil(self.bucket_ms.max(1)).max(1)
    }
}
