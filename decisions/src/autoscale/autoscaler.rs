//! One function's autoscaler: its samples merged into buckets, the stable and panic windows over
//! them, the panic state, the idle times learned for the adaptive keep-alive, and
//! [`FunctionAutoscaler::decide`], which turns them into a [`ScaleDecision`] step by step.

use super::config::AutoscalerConfig;
use super::reason::{ScaleDecision, ScaleReason};
use crate::keepalive::{HistogramConfig, HybridHistogram, KeepAlivePolicy};
use fjord_core::spec::{FunctionSpec, KeepAlive};
use std::collections::VecDeque;

/// Buckets of the adaptive keep-alive histogram: with 1-minute buckets, idle times up to 4 hours.
const KEEP_ALIVE_BUCKETS: usize = 240;
/// Samples merged into one bucket.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    index: u64,
    sum: u64,
    count: u64,
}

/// One function's autoscaler: its samples and its panic state.
#[derive(Debug, Clone)]
pub struct FunctionAutoscaler {
    config: AutoscalerConfig,
    /// Oldest first; indexes strictly increasing.
    pub(super) buckets: VecDeque<Bucket>,
    latest_ms: u64,
    /// Since when no sample has shown a request in flight; `None` while one is in flight or
    /// before any sample.
    idle_since_ms: Option<u64>,
    /// The last time the panic condition held, while in panic mode.
    panic_triggered_ms: Option<u64>,
    /// The highest count asked for during the current panic.
    panic_floor: u32,
    /// The function's call counter at the previous sample, when samples carry one.
    last_calls: Option<u64>,
    /// Whether the previous sample showed activity.
    was_active: bool,
    /// The function's idle times, for the adaptive keep-alive.
    idle_times: HybridHistogram,
}

impl FunctionAutoscaler {
    /// An autoscaler with no samples. `config` should have passed [`AutoscalerConfig::validate`];
    /// a zero `bucket_ms` is treated as 1.
    pub fn new(config: AutoscalerConfig) -> Self {
        FunctionAutoscaler {
            config: AutoscalerConfig {
                bucket_ms: config.bucket_ms.max(1),
                ..config
            },
            buckets: VecDeque::new(),
            latest_ms: 0,
            idle_since_ms: None,
            panic_triggered_ms: None,
            panic_floor: 0,
            last_calls: None,
            was_active: false,
            idle_times: HybridHistogram::new(HistogramConfig {
                bucket_ms: config.keep_alive_bucket_ms.max(1),
                buckets: KEEP_ALIVE_BUCKETS,
                min_samples: config.keep_alive_min_samples.max(1),
                ..HistogramConfig::default()
            }),
        }
    }

    /// The idle times learned for the adaptive keep-alive.
    pub fn idle_times(&self) -> &HybridHistogram {
        &self.idle_times
    }

    /// Like [`observe`](Self::observe), with the function's call counter (the sum of the nodes'
    /// counters of admitted requests): a counter that moved since the previous sample counts as
    /// activity even with nothing in flight now.
    pub fn observe_calls(&mut self, now_ms: u64, in_flight: u32, calls: u64) {
        let called = self.last_calls.is_some_and(|previous| previous != calls);
        self.last_calls = Some(calls);
        self.record(now_ms, in_flight, in_flight > 0 || called);
    }

    pub fn config(&self) -> &AutoscalerConfig {
        &self.config
    }

    /// Records that `in_flight` requests of the function were running over all nodes at `now_ms`.
    pub fn observe(&mut self, now_ms: u64, in_flight: u32) {
        self.record(now_ms, in_flight, in_flight > 0);
    }

    fn record(&mut self, now_ms: u64, in_flight: u32, active: bool) {
        let now = now_ms.max(self.latest_ms);
        self.latest_ms = now;
        let index = now / self.config.bucket_ms;
        match self.buckets.back_mut() {
            Some(bucket) if bucket.index == index => {
                bucket.sum += u64::from(in_flight);
                bucket.count += 1;
            }
            _ => self.buckets.push_back(Bucket {
                index,
                sum: u64::from(in_flight),
                count: 1,
            }),
        }
        if active {
            if !self.was_active {
                // The end of an idle time (if one was under way since activity).
                self.idle_times.on_call_start(now);
            }
            self.idle_since_ms = None;
        } else if self.idle_since_ms.is_none() {
            self.idle_since_ms = Some(now);
            if self.was_active {
                self.idle_times.on_call_end(now);
            }
        }
        self.was_active = active;
        self.drop_old_buckets(index);
    }

    /// Whether the last decision left the function in panic mode.
    pub fn panicking(&self) -> bool {
        self.panic_triggered_ms.is_some()
    }

    /// How many instances `spec`'s function should have at `now_ms`, given `ready_instances`
    /// serving now. Updates the panic state, so call it once per evaluation.
    ///
    /// The steps, in order: hold without data; the idle rules (adaptive keep-alive, scale to
    /// zero), which end a panic; the windows' desire, panic or stable; the rate limits and the
    /// panic hold; one instance kept warm while any is ready; the spec's bounds.
    pub fn decide(&mut self, now_ms: u64, spec: &FunctionSpec, ready_instances: u32) -> ScaleDecision {
        let now = now_ms.max(self.latest_ms);
        let now_index = now / self.config.bucket_ms;
        self.drop_old_buckets(now_index);
        let ready = ready_instances;

        let Some(stable) = self.window_mean(now_index, self.config.stable_window_ms) else {
            // Silence is not idleness: hold what runs, within the spec's bounds.
            self.end_panic();
            let (desired, reason) = clamp_to_spec(ready, ScaleReason::NoData, spec);
            return Concurrency::default().decision(desired, reason, false);
        };
        let seen = Concurrency {
            stable,
            panic: self.window_mean(now_index, self.config.panic_window_ms).unwrap_or(0.0),
        };

        if let Some((desired, reason)) = self.idle_rule(now, spec) {
            self.end_panic();
            return seen.decision(desired, reason, false);
        }

        let (stable_want, panic_want) = seen.instances_wanted(spec);
        let panicking = self.update_panic(now, panic_want, ready);
        let (desired, reason) = if panicking {
            (stable_want.max(panic_want), ScaleReason::Panic)
        } else {
            (stable_want, ScaleReason::Stable)
        };
        let (desired, reason) = self.rate_limited(desired, reason, ready, panicking);
        let (desired, reason) = if desired == 0 && ready > 0 {
            (1, ScaleReason::IdleKeptWarm)
        } else {
            (desired, reason)
        };
        let (desired, reason) = clamp_to_spec(desired, reason, spec);
        if panicking {
            self.panic_floor = self.panic_floor.max(desired);
        }
        seen.decision(desired, reason, panicking)
    }

    /// Leaves panic mode: no trigger, no floor.
    fn end_panic(&mut self) {
        self.panic_triggered_ms = None;
        self.panic_floor = 0;
    }

    /// The decision of the idle rules for a function idle at `now`, if one applies: with `min:
    /// 0`, the learned keep-alive windows of an adaptive function, else scale to zero once idle
    /// for `scale_to_zero_after`.
    fn idle_rule(&self, now: u64, spec: &FunctionSpec) -> Option<(u32, ScaleReason)> {
        let idle_for = now.saturating_sub(self.idle_since_ms?);
        if spec.min != 0 {
            return None;
        }
        if spec.keep_alive == KeepAlive::Adaptive {
            if let Some((prewarm_after, unload_after)) = self.idle_times.windows_ms() {
                return Some(if idle_for >= unload_after {
                    (0, ScaleReason::KeepAliveExpired)
                } else if idle_for < prewarm_after {
                    (0, ScaleReason::KeepAliveUnloaded)
                } else {
                    (1, ScaleReason::KeepAliveWarm)
                });
            }
        }
        let scale_to_zero_after_ms = u64::try_from(spec.scale_to_zero_after.as_millis()).unwrap_or(u64::MAX);
        (idle_for >= scale_to_zero_after_ms).then_some((0, ScaleReason::ScaledToZero))
    }

    /// Panic state at `now`: (re)triggered when the panic window wants `panic_threshold` times
    /// the ready instances (0 ready counting as 1), ended once a whole stable window has passed
    /// since the last trigger. Whether the function is panicking.
    fn update_panic(&mut self, now: u64, panic_want: u32, ready: u32) -> bool {
        if f64::from(panic_want) >= self.config.panic_threshold * f64::from(ready.max(1)) {
            self.panic_triggered_ms = Some(now);
        } else if let Some(triggered) = self.panic_triggered_ms {
            if now.saturating_sub(triggered) >= self.config.stable_window_ms {
                self.end_panic();
            }
        }
        self.panic_triggered_ms.is_some()
    }

    /// `desired` within the rate limits relative to the `ready` instances, and, while
    /// panicking, never below what this panic asked for before.
    fn rate_limited(&self, desired: u32, reason: ScaleReason, ready: u32, panicking: bool) -> (u32, ScaleReason) {
        let up_limit = saturating_u32((f64::from(ready.max(1)) * self.config.max_scale_up_rate).ceil())
            .max(ready.saturating_add(1));
        let down_limit = saturating_u32((f64::from(ready) / self.config.max_scale_down_rate).floor());
        let (desired, reason) = if desired > up_limit {
            (up_limit, ScaleReason::RateLimitedUp)
        } else if desired < down_limit {
            (down_limit, ScaleReason::RateLimitedDown)
        } else {
            (desired, reason)
        };
        if panicking && desired < self.panic_floor {
            (self.panic_floor, ScaleReason::PanicHold)
        } else {
            (desired, reason)
        }
    }

    /// Drops the buckets that have left the stable window as of the bucket `now_index`.
    fn drop_old_buckets(&mut self, now_index: u64) {
        let span = self.config.buckets_in(self.config.stable_window_ms);
        while self
            .buckets
            .front()
            .is_some_and(|oldest| oldest.index.saturating_add(span) <= now_index)
        {
            self.buckets.pop_front();
        }
    }

    /// The mean over the buckets of the last `window_ms` up to the bucket `now_index` (each
    /// bucket's mean weighing the same), or `None` when none holds a sample.
    fn window_mean(&self, now_index: u64, window_ms: u64) -> Option<f64> {
        let span = self.config.buckets_in(window_ms);
        let (total, buckets) = self
            .buckets
            .iter()
            .rev()
            .take_while(|b| b.index.saturating_add(span) > now_index)
            .fold((0.0, 0u32), |(total, n), b| {
                (total + b.sum as f64 / b.count as f64, n + 1)
            });
        (buckets > 0).then(|| total / f64::from(buckets))
    }
}

/// The mean concurrency over the two windows at one evaluation.
#[derive(Debug, Clone, Copy, Default)]
struct Concurrency {
    stable: f64,
    panic: f64,
}

impl Concurrency {
    /// The instances each window wants: `ceil(concurrency / (spec.concurrency ×
    /// spec.target_utilization))`, a utilization of 0 counting as 1.
    fn instances_wanted(&self, spec: &FunctionSpec) -> (u32, u32) {
        let per_instance = f64::from(spec.concurrency.max(1)) * spec.target_utilization;
        let per_instance = if per_instance > 0.0 {
            per_instance
        } else {
            f64::from(spec.concurrency.max(1))
        };
        (
            instances_for(self.stable / per_instance),
            instances_for(self.panic / per_instance),
        )
    }

    fn decision(self, desired: u32, reason: ScaleReason, panicking: bool) -> ScaleDecision {
        ScaleDecision {
            desired,
            reason,
            stable_concurrency: self.stable,
            panic_concurrency: self.panic,
            panicking,
        }
    }
}

/// `ceil(x)` instances for a load of `x` instances' worth, tolerating the float error of the
/// division (21 / (3 × 0.7) is 10.000000000000002 and must ask for 10, not 11).
fn instances_for(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        return 0;
    }
    saturating_u32((x * (1.0 - 1e-9)).ceil())
}

fn saturating_u32(x: f64) -> u32 {
    // `as` saturates, and NaN becomes 0.
    x as u32
}

fn clamp_to_spec(desired: u32, reason: ScaleReason, spec: &FunctionSpec) -> (u32, ScaleReason) {
    if desired > spec.max {
        (spec.max, ScaleReason::Max)
    } else if desired < spec.min {
        (spec.min, ScaleReason::Min)
    } else {
        (desired, reason)
    }
}
