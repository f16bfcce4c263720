//! The function autoscaler's arithmetic: from a function's concurrency samples, how many
//! instances it should have.
//!
//! Knative's model. The leader feeds one [`FunctionAutoscaler`] per function with the function's
//! total requests in flight over all nodes, as heartbeats report them ([`FunctionAutoscaler::observe`]),
//! and asks it at each evaluation for a [`ScaleDecision`] ([`FunctionAutoscaler::decide`]):
//!
//! - **Desired instances** = `ceil(concurrency / (spec.concurrency × spec.target_utilization))`,
//!   computed over two windows of samples: the *stable* window (default 60 s) and the *panic*
//!   window (default 6 s). A window's value is the mean of its samples, each 1-second bucket
//!   weighing the same however many samples it holds.
//! - **Panic mode** starts when the panic-window desire is at least `panic_threshold` (default 2)
//!   times the ready instances (counting 0 ready as 1): the load has doubled past what the
//!   instances are sized for. While panicking the autoscaler follows the larger of the two desires
//!   and never goes below what it asked for earlier in the same panic. Panic ends once a whole
//!   stable window has passed since the last trigger; by then the surge is in the stable value.
//! - **Rate limits** per evaluation, relative to the ready instances `r`: up to
//!   `max(r + 1, ceil(max(r, 1) × max_scale_up_rate))` (default ×10; from zero, 10 at once), down
//!   to no fewer than `floor(r / max_scale_down_rate)` (default ÷2).
//! - **Bounds**: the result is clamped to the spec's `[min, max]`, which win over the rate limits.
//! - **Scale to zero**: with `min = 0`, once no sample has shown a request in flight for
//!   `scale_to_zero_after`, the desire is 0 (this bypasses the scale-down rate, and ends a panic).
//!   Until then a function with ready instances keeps at least one, even when the windows say
//!   zero. The idle time is counted from the first sample showing nothing in flight, the latest
//!   moment the last request can have been running, so the autoscaler never scales to zero early.
//! - **Adaptive keep-alive** (`keep_alive: adaptive`, `min: 0`): the autoscaler learns the
//!   function's idle times in a [`HybridHistogram`] (from the end of activity to the next call,
//!   as the samples show them). Once the histogram is representative, an idle function is given
//!   0 instances at once, 1 from the histogram's prewarm time until its keep-alive time, and 0
//!   after; until then, and whenever the idle times are not predictable, the fixed rule above
//!   holds. A sample counts as activity when it shows a request in flight or when the function's
//!   call counter moved since the previous sample, so calls shorter than the sampling interval
//!   are seen too.
//! - **No data**: with no sample in the stable window (a new leader that has heard no heartbeat
//!   yet), the autoscaler holds the ready count instead of reading silence as "idle".
//!
//! Pure: no clock, no I/O. Times are milliseconds on any monotonic scale, passed in; a time
//! earlier than one already seen counts as the latest seen. Memory is bounded: samples are merged
//! into buckets of `bucket_ms`, and buckets older than the stable window are dropped, so one
//! autoscaler holds at most `ceil(stable_window_ms / bucket_ms) + 1` buckets.

mod autoscaler;
mod config;
mod reason;
#[cfg(test)]
mod tests;

pub use autoscaler::FunctionAutoscaler;
pub use config::{
    AutoscalerConfig, AutoscalerConfigError, DEFAULT_BUCKET_MS, DEFAULT_KEEP_ALIVE_BUCKET_MS,
    DEFAULT_KEEP_ALIVE_MIN_SAMPLES, DEFAULT_MAX_SCALE_DOWN_RATE, DEFAULT_MAX_SCALE_UP_RATE, DEFAULT_PANIC_THRESHOLD,
    DEFAULT_PANIC_WINDOW_MS, DEFAULT_STABLE_WINDOW_MS,
};
pub use reason::{ScaleDecision, ScaleReason};
