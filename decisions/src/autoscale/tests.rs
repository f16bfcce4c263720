use super::*;
use fjord_core::spec::{FunctionSpec, KeepAlive};
use std::time::Duration;

fn spec(concurrency: u32, utilization: f64, min: u32, max: u32) -> FunctionSpec {
    let mut spec = FunctionSpec::with_command("echo", vec!["echo".into()]);
    spec.concurrency = concurrency;
    spec.target_utilization = utilization;
    spec.min = min;
    spec.max = max;
    spec
}

/// A function under a paused clock: one heartbeat sample and one evaluation per second, and
/// instances that become ready at once.
struct Sim {
    autoscaler: FunctionAutoscaler,
    spec: FunctionSpec,
    now_ms: u64,
    ready: u32,
}

impl Sim {
    fn new(spec: FunctionSpec, ready: u32) -> Self {
        Sim {
            autoscaler: FunctionAutoscaler::new(AutoscalerConfig::default()),
            spec,
            now_ms: 1_000_000,
            ready,
        }
    }

    /// One second with `in_flight` requests running: sample, decide, apply.
    fn step(&mut self, in_flight: u32) -> ScaleDecision {
        self.now_ms += 1_000;
        self.autoscaler.observe(self.now_ms, in_flight);
        let decision = self.autoscaler.decide(self.now_ms, &self.spec, self.ready);
        self.ready = decision.desired;
        decision
    }

    fn steps(&mut self, seconds: u32, in_flight: u32) -> Vec<ScaleDecision> {
        (0..seconds).map(|_| self.step(in_flight)).collect()
    }
}

/// `ceil(load / (concurrency × percent / 100))` in integers, independent of the float code.
fn expected(load: u64, concurrency: u64, utilization_percent: u64) -> u32 {
    (load * 100).div_ceil(concurrency * utilization_percent) as u32
}

#[test]
fn defaults_are_valid_and_each_bad_setting_is_named() {
    assert_eq!(AutoscalerConfig::default().validate(), Ok(()));
    let bad = [
        (
            AutoscalerConfig {
                bucket_ms: 0,
                ..Default::default()
            },
            "bucket_ms",
        ),
        (
            AutoscalerConfig {
                panic_window_ms: 120_000,
                ..Default::default()
            },
            "stable_window_ms",
        ),
        (
            AutoscalerConfig {
                panic_threshold: f64::NAN,
                ..Default::default()
            },
            "panic_threshold",
        ),
        (
            AutoscalerConfig {
                max_scale_up_rate: 1.0,
                ..Default::default()
            },
            "max_scale_up_rate",
        ),
        (
            AutoscalerConfig {
                max_scale_down_rate: 0.5,
                ..Default::default()
            },
            "max_scale_down_rate",
        ),
        (
            AutoscalerConfig {
                keep_alive_bucket_ms: 10,
                ..Default::default()
            },
            "keep_alive_bucket_ms",
        ),
        (
            AutoscalerConfig {
                keep_alive_min_samples: 0,
                ..Default::default()
            },
            "keep_alive_min_samples",
        ),
    ];
    for (config, field) in bad {
        let err = config.validate().unwrap_err();
        assert_eq!(err.field, field);
        assert!(err.to_string().contains(field), "{err}");
    }
    let parsed: AutoscalerConfig = serde_json::from_str(r#"{"panic_window_ms": 10000}"#).unwrap();
    assert_eq!(parsed.panic_window_ms, 10_000);
    assert_eq!(parsed.stable_window_ms, DEFAULT_STABLE_WINDOW_MS);
}

#[test]
fn steady_load_settles_at_the_target_count_and_stays() {
    for (load, concurrency, percent) in [
        (10u32, 1u32, 70u64),
        (30, 4, 50),
        (21, 3, 70),
        (18, 3, 60),
        (3, 10, 100),
        (200, 3, 80),
    ] {
        let want = expected(u64::from(load), u64::from(concurrency), percent);
        let mut sim = Sim::new(spec(concurrency, percent as f64 / 100.0, 0, 1000), 1);
        sim.steps(120, load);
        let settled = sim.steps(120, load);
        for d in &settled {
            assert_eq!(
                d.desired, want,
                "load {load}, concurrency {concurrency}, {percent}%: {d:?}"
            );
        }
        let last = settled.last().unwrap();
        assert!(!last.panicking);
        assert_eq!(last.reason, ScaleReason::Stable);
        assert!((last.stable_concurrency - f64::from(load)).abs() < 1e-9);
    }
}

#[test]
fn a_surge_panics_and_reaches_the_target_within_the_panic_window() {
    let want = expected(50, 1, 70);
    assert_eq!(want, 72);
    let mut sim = Sim::new(spec(1, 0.7, 0, 100), 2);
    sim.steps(120, 1);
    assert_eq!(sim.ready, expected(1, 1, 70));
    let surge = sim.steps(6, 50);
    assert!(surge[0].panicking, "{:?}", surge[0]);
    assert!(
        surge[0].desired > 2,
        "scales up at the first evaluation: {:?}",
        surge[0]
    );
    assert_eq!(surge.last().unwrap().desired, want, "{surge:?}");
    // Counts only grow during the surge.
    assert!(surge.windows(2).all(|w| w[0].desired <= w[1].desired), "{surge:?}");
    for d in sim.steps(30, 50) {
        assert_eq!(d.desired, want);
    }

    // The same surge with max 60 stops at max.
    let mut sim = Sim::new(spec(1, 0.7, 0, 60), 2);
    sim.steps(120, 1);
    let surge = sim.steps(6, 50);
    let last = surge.last().unwrap();
    assert_eq!((last.desired, last.reason), (60, ScaleReason::Max));
    assert!(surge.iter().all(|d| d.desired <= 60));
}

#[test]
fn no_scale_down_while_panicking_and_gradual_after() {
    let mut sim = Sim::new(spec(1, 0.7, 0, 100), 2);
    sim.steps(120, 1);
    sim.steps(10, 50);
    assert_eq!(sim.ready, 72);
    // Load falls back at once; the last trigger was within the surge.
    let after = sim.steps(80, 1);
    let first_calm = after.iter().position(|d| !d.panicking).expect("panic ends");
    // Panic lasts one stable window (60 s) after the last trigger, then ends.
    assert!((45..=60).contains(&first_calm), "panic ended after {first_calm} s");
    for d in &after[..first_calm] {
        assert_eq!(d.desired, 72, "no scale-down while panicking: {d:?}");
    }
    assert!(after[first_calm].desired < 72, "{:?}", after[first_calm]);
    // After the panic, each step at least halves at most.
    let mut prev = 72;
    for d in &after[first_calm..] {
        assert!(d.desired >= prev / 2, "{prev} -> {d:?}");
        prev = d.desired;
    }
}

#[test]
fn scale_down_is_limited_to_half_per_evaluation() {
    let mut autoscaler = FunctionAutoscaler::new(AutoscalerConfig::default());
    let spec = spec(1, 0.5, 0, 1000);
    for s in 0..60 {
        autoscaler.observe(s * 1000, 1);
    }
    // The windows ask for ceil(1 / 0.5) = 2.
    let mut ready = 40;
    let mut seen = Vec::new();
    while ready != 2 {
        let d = autoscaler.decide(59_000, &spec, ready);
        assert!(!d.panicking);
        seen.push((d.desired, d.reason));
        ready = d.desired;
    }
    assert_eq!(
        seen,
        vec![
            (20, ScaleReason::RateLimitedDown),
            (10, ScaleReason::RateLimitedDown),
            (5, ScaleReason::RateLimitedDown),
            (2, ScaleReason::Stable),
        ]
    );
}

#[test]
fn scale_up_is_limited_per_evaluation_but_always_by_at_least_one() {
    let mut autoscaler = FunctionAutoscaler::new(AutoscalerConfig::default());
    let spec = spec(1, 1.0, 0, 1000);
    autoscaler.observe(0, 900);
    let mut ready = 0;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let d = autoscaler.decide(0, &spec, ready);
        seen.push((d.desired, d.reason));
        ready = d.desired;
    }
    assert_eq!(
        seen,
        vec![
            (10, ScaleReason::RateLimitedUp),
            (100, ScaleReason::RateLimitedUp),
            (900, ScaleReason::Panic),
            (900, ScaleReason::Panic),
        ]
    );
    // With a rate of 1.01, 3 ready may still grow by one.
    let mut slow = FunctionAutoscaler::new(AutoscalerConfig {
        max_scale_up_rate: 1.01,
        ..Default::default()
    });
    slow.observe(0, 900);
    assert_eq!(slow.decide(0, &spec, 3).desired, 4);
}

#[test]
fn min_and_max_bound_every_decision() {
    let mut sim = Sim::new(spec(1, 1.0, 3, 5), 0);
    let d = sim.step(0);
    assert_eq!((d.desired, d.reason), (3, ScaleReason::Min));
    for d in sim.steps(400, 0) {
        assert_eq!(d.desired, 3, "min 3 never scales to zero: {d:?}");
    }
    let d = sim.steps(10, 500).pop().unwrap();
    assert_eq!((d.desired, d.reason), (5, ScaleReason::Max));
    // Without samples the ready count is held, still within bounds.
    let mut fresh = FunctionAutoscaler::new(AutoscalerConfig::default());
    let spec = spec(1, 1.0, 3, 5);
    assert_eq!(fresh.decide(0, &spec, 4).desired, 4);
    assert_eq!(fresh.decide(0, &spec, 4).reason, ScaleReason::NoData);
    assert_eq!(fresh.decide(0, &spec, 9).desired, 5);
    assert_eq!(fresh.decide(0, &spec, 0).desired, 3);
}

#[test]
fn scale_to_zero_exactly_after_the_idle_period() {
    let mut s = spec(1, 0.7, 0, 100);
    s.scale_to_zero_after = Duration::from_secs(300);
    let mut autoscaler = FunctionAutoscaler::new(AutoscalerConfig::default());
    let mut ready = 1;
    for t in 0..=10u64 {
        autoscaler.observe(t * 1000, 1);
        ready = autoscaler.decide(t * 1000, &s, ready).desired;
    }
    // The first sample with nothing in flight: the idle clock starts at 11 s.
    let idle_from = 11_000;
    let zero_at = idle_from + 300_000;
    let mut t = idle_from;
    while t < zero_at {
        autoscaler.observe(t, 0);
        let d = autoscaler.decide(t, &s, ready);
        assert!(d.desired >= 1, "at {t} ms: {d:?}");
        ready = d.desired;
        t += 1000;
    }
    let d = autoscaler.decide(zero_at - 1, &s, ready);
    assert_eq!((d.desired, d.reason), (1, ScaleReason::IdleKeptWarm), "one ms before");
    let d = autoscaler.decide(zero_at, &s, ready);
    assert_eq!((d.desired, d.reason), (0, ScaleReason::ScaledToZero));
    assert!(d.reason.to_string().contains("scale_to_zero_after"));

    // A request arriving restarts the idle clock: one instance for it, kept until its idle
    // period has passed in full, with heartbeats sampling every second meanwhile.
    autoscaler.observe(zero_at + 500, 1);
    assert_eq!(autoscaler.decide(zero_at + 500, &s, 0).desired, 1);
    let idle_from = zero_at + 1000;
    let mut t = idle_from;
    while t < idle_from + 300_000 {
        autoscaler.observe(t, 0);
        t += 1000;
    }
    assert_eq!(autoscaler.decide(idle_from + 299_999, &s, 1).desired, 1);
    assert_eq!(autoscaler.decide(idle_from + 300_000, &s, 1).desired, 0);
}

#[test]
fn never_scales_to_zero_while_a_request_is_in_flight() {
    let mut s = spec(1, 0.7, 0, 100);
    s.scale_to_zero_after = Duration::from_secs(1);
    let mut sim = Sim::new(s, 1);
    // One long request, seen by every heartbeat for ten minutes.
    for d in sim.steps(600, 1) {
        assert!(d.desired >= 1, "{d:?}");
    }
    // Ended: the first idle sample starts the clock; one second later it is zero.
    assert_eq!(sim.step(0).desired, 2, "still inside the scale-to-zero window");
    assert_eq!(sim.step(0).desired, 0);
}

#[test]
fn a_short_spike_counts_by_its_share_of_the_window() {
    // A 1-second spike to 6 over a steady 4 (ready 6, target 1 at 100%) moves the panic
    // window's mean to (5 × 4 + 6) / 6 and does not panic.
    let mut sim = Sim::new(spec(1, 1.0, 0, 100), 4);
    sim.steps(120, 4);
    let d = sim.step(6);
    assert!(!d.panicking);
    assert!((d.panic_concurrency - 26.0 / 6.0).abs() < 1e-9, "{d:?}");
    assert!((d.stable_concurrency - (59.0 * 4.0 + 6.0) / 60.0).abs() < 1e-9, "{d:?}");
    assert_eq!(d.desired, 5, "ceil of the stable mean 4.03");
    assert_eq!(sim.step(4).desired, 5);

    // A 1-second spike to 60 over a steady 4: the panic mean (5 × 4 + 60) / 6 = 13.3 asks for
    // 14 ≥ 2 × 4 ready, so it panics for one stable window, then scales back.
    let mut sim = Sim::new(spec(1, 1.0, 0, 100), 4);
    sim.steps(120, 4);
    let d = sim.step(60);
    assert!(d.panicking);
    assert_eq!(d.desired, 14, "{d:?}");
    let after = sim.steps(59, 4);
    assert!(
        after.iter().all(|d| d.panicking && d.desired == 14),
        "held during the panic"
    );
    let calm = sim.steps(30, 4);
    assert!(!calm[0].panicking);
    assert_eq!(calm[0].desired, 7, "halved at most");
    assert_eq!(calm.last().unwrap().desired, 4, "back to the steady count");
}

#[test]
fn panic_needs_the_threshold_of_ready_instances() {
    // Panic desire 19 with 10 ready is below 2 × 10; 20 is not.
    for (load, panics) in [(19u32, false), (20, true)] {
        let mut autoscaler = FunctionAutoscaler::new(AutoscalerConfig::default());
        let spec = spec(1, 1.0, 0, 100);
        autoscaler.observe(0, load);
        let d = autoscaler.decide(0, &spec, 10);
        assert_eq!(d.panicking, panics, "load {load}: {d:?}");
        assert_eq!(d.desired, load);
    }
}

#[test]
fn memory_stays_bounded_under_many_samples() {
    let mut autoscaler = FunctionAutoscaler::new(AutoscalerConfig::default());
    let spec = spec(1, 1.0, 0, 1000);
    let limit = (DEFAULT_STABLE_WINDOW_MS / DEFAULT_BUCKET_MS + 1) as usize;
    for t in 0..600_000u64 {
        autoscaler.observe(t, (t % 7) as u32);
        assert!(autoscaler.buckets.len() <= limit);
    }
    assert_eq!(autoscaler.buckets.len(), limit - 1);
    // Each bucket's mean is 3 (0..7 repeating, 1000 samples per bucket, near enough).
    let d = autoscaler.decide(599_999, &spec, 3);
    assert!((d.stable_concurrency - 3.0).abs() < 0.01, "{d:?}");
    // Old samples are gone: after a quiet minute the mean is exactly 0.
    for t in 600_000..660_000u64 {
        autoscaler.observe(t, 0);
    }
    assert_eq!(autoscaler.decide(660_000, &spec, 3).stable_concurrency, 0.0);
}

#[test]
fn a_clock_going_backwards_counts_as_the_latest_time() {
    let mut autoscaler = FunctionAutoscaler::new(AutoscalerConfig::default());
    let spec = spec(1, 1.0, 0, 100);
    autoscaler.observe(100_000, 5);
    autoscaler.observe(40_000, 5);
    assert_eq!(autoscaler.buckets.len(), 1);
    let d = autoscaler.decide(10_000, &spec, 5);
    assert_eq!(d.desired, 5);
}

#[test]
fn every_reason_reads_as_a_sentence() {
    let reasons = [
        ScaleReason::Stable,
        ScaleReason::Panic,
        ScaleReason::PanicHold,
        ScaleReason::RateLimitedUp,
        ScaleReason::RateLimitedDown,
        ScaleReason::Min,
        ScaleReason::Max,
        ScaleReason::ScaledToZero,
        ScaleReason::IdleKeptWarm,
        ScaleReason::NoData,
        ScaleReason::KeepAliveUnloaded,
        ScaleReason::KeepAliveWarm,
        ScaleReason::KeepAliveExpired,
    ];
    let texts: std::collections::BTreeSet<String> = reasons.iter().map(|r| r.to_string()).collect();
    assert_eq!(texts.len(), reasons.len());
}

/// One-second histogram buckets and three idle times to learn, so a test learns in minutes
/// of simulated time.
fn keep_alive_config() -> AutoscalerConfig {
    AutoscalerConfig {
        keep_alive_bucket_ms: 1_000,
        keep_alive_min_samples: 3,
        ..Default::default()
    }
}

fn keep_alive_spec(keep_alive: KeepAlive, min: u32) -> FunctionSpec {
    let mut s = spec(1, 1.0, min, 10);
    s.keep_alive = keep_alive;
    s.scale_to_zero_after = Duration::from_secs(300);
    s
}

/// Samples every 500 ms from `from` until `until` (exclusive); a call (shorter than the
/// sampling interval, so never seen in flight) at each time in `calls`, seen through the
/// counter. Returns the counter.
fn sample_calls(autoscaler: &mut FunctionAutoscaler, from: u64, until: u64, calls: &[u64], mut counter: u64) -> u64 {
    let mut t = from;
    while t < until {
        counter += calls.iter().filter(|&&c| c > t.saturating_sub(500) && c <= t).count() as u64;
        autoscaler.observe_calls(t, 0, counter);
        t += 500;
    }
    counter
}

#[test]
fn adaptive_keep_alive_unloads_a_periodic_function_at_once_and_prewarms_before_its_next_call() {
    // A call every 20 s: the samples see each call through the counter, then 19.5 s of idle.
    let mut autoscaler = FunctionAutoscaler::new(keep_alive_config());
    let adaptive = keep_alive_spec(KeepAlive::Adaptive, 0);
    let calls = [1_000, 21_000, 41_000, 61_000];
    let counter = sample_calls(&mut autoscaler, 0, 61_500, &calls, 0);
    assert_eq!(autoscaler.idle_times().samples(), 3);
    assert_eq!(
        autoscaler.idle_times().state(),
        crate::keepalive::HistogramState::Representative
    );
    // Idle since 61.5 s. Idle times of 19.5 s fall in bucket 19: prewarm after 19 s × 0.9,
    // unload after 20 s × 1.1.
    let idle_since = 61_500;
    let counter = sample_calls(&mut autoscaler, 61_500, 62_000, &[], counter);
    let d = autoscaler.decide(62_000, &adaptive, 1);
    assert_eq!((d.desired, d.reason), (0, ScaleReason::KeepAliveUnloaded));
    let counter = sample_calls(&mut autoscaler, 62_000, idle_since + 17_100, &[], counter);
    let d = autoscaler.decide(idle_since + 17_099, &adaptive, 0);
    assert_eq!((d.desired, d.reason), (0, ScaleReason::KeepAliveUnloaded));
    let counter = sample_calls(&mut autoscaler, idle_since + 17_100, idle_since + 17_600, &[], counter);
    let d = autoscaler.decide(idle_since + 17_500, &adaptive, 0);
    assert_eq!((d.desired, d.reason), (1, ScaleReason::KeepAliveWarm));
    // The call that was expected never comes: the instance goes at the end of the window.
    let counter = sample_calls(&mut autoscaler, idle_since + 17_600, idle_since + 22_500, &[], counter);
    let d = autoscaler.decide(idle_since + 22_000, &adaptive, 1);
    assert_eq!((d.desired, d.reason), (0, ScaleReason::KeepAliveExpired));
    // A call brings back the ordinary rules (one instance for it) and a fresh idle time.
    sample_calls(
        &mut autoscaler,
        idle_since + 22_500,
        idle_since + 30_000,
        &[idle_since + 25_000],
        counter,
    );
    assert_eq!(autoscaler.idle_times().samples(), 4);
}

#[test]
fn fixed_keep_alive_on_the_same_calls_keeps_one_instance_for_scale_to_zero_after() {
    let mut autoscaler = FunctionAutoscaler::new(keep_alive_config());
    let fixed = keep_alive_spec(KeepAlive::Fixed, 0);
    let counter = sample_calls(&mut autoscaler, 0, 62_000, &[1_000, 21_000, 41_000, 61_000], 0);
    let d = autoscaler.decide(62_000, &fixed, 1);
    assert_eq!((d.desired, d.reason), (1, ScaleReason::IdleKeptWarm));
    sample_calls(&mut autoscaler, 62_000, 361_500, &[], counter);
    assert_eq!(autoscaler.decide(361_499, &fixed, 1).desired, 1);
    assert_eq!(autoscaler.decide(361_500, &fixed, 1).reason, ScaleReason::ScaledToZero);
}

#[test]
fn adaptive_keep_alive_follows_the_fixed_rule_while_learning_and_with_min_instances() {
    let mut autoscaler = FunctionAutoscaler::new(keep_alive_config());
    // Two idle times: still learning.
    let counter = sample_calls(&mut autoscaler, 0, 42_000, &[1_000, 21_000, 41_000], 0);
    assert_eq!(autoscaler.idle_times().samples(), 2);
    let adaptive = keep_alive_spec(KeepAlive::Adaptive, 0);
    let d = autoscaler.decide(42_000, &adaptive, 1);
    assert_eq!((d.desired, d.reason), (1, ScaleReason::IdleKeptWarm));
    // Learned, but min is 1: min wins, the keep-alive only governs going to zero.
    sample_calls(&mut autoscaler, 42_000, 62_000, &[61_000], counter);
    let with_min = keep_alive_spec(KeepAlive::Adaptive, 2);
    let d = autoscaler.decide(62_000, &with_min, 2);
    assert_eq!((d.desired, d.reason), (2, ScaleReason::Min));
}

#[test]
fn adaptive_keep_alive_falls_back_to_fixed_when_idle_times_are_spread() {
    // Idle times spread evenly over the histogram's range are no prediction.
    let mut autoscaler = FunctionAutoscaler::new(keep_alive_config());
    let mut calls = Vec::new();
    let mut t = 1_000;
    for i in 0..60u64 {
        t += 1_000 + (i * 37 % 230) * 1_000;
        calls.push(t);
    }
    let end = t + 500;
    sample_calls(&mut autoscaler, 0, end, &calls, 0);
    assert_eq!(
        autoscaler.idle_times().state(),
        crate::keepalive::HistogramState::Spread
    );
    let adaptive = keep_alive_spec(KeepAlive::Adaptive, 0);
    let d = autoscaler.decide(end, &adaptive, 1);
    assert_eq!((d.desired, d.reason), (1, ScaleReason::IdleKeptWarm));
}

#[test]
fn calls_between_samples_keep_the_function_from_scaling_to_zero() {
    // A 10 ms call every 5 s is never in flight when sampled. Without the counter the
    // function looks idle and goes to zero after 10 s; with it, it stays.
    let mut s = keep_alive_spec(KeepAlive::Fixed, 0);
    s.scale_to_zero_after = Duration::from_secs(10);
    let calls: Vec<u64> = (0..12).map(|i| 1_000 + i * 5_000).collect();
    let mut with_counter = FunctionAutoscaler::new(AutoscalerConfig::default());
    sample_calls(&mut with_counter, 0, 60_000, &calls, 0);
    assert_eq!(with_counter.decide(60_000, &s, 1).desired, 1);
    let mut in_flight_only = FunctionAutoscaler::new(AutoscalerConfig::default());
    let mut t = 0;
    while t < 60_000 {
        in_flight_only.observe(t, 0);
        t += 500;
    }
    assert_eq!(in_flight_only.decide(60_000, &s, 1).reason, ScaleReason::ScaledToZero);
}
