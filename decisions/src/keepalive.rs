//! Keep-alive policies: how long an idle instance of a function stays warm, and when to start one
//! ahead of a predicted call.
//!
//! A policy is fed a function's calls (`on_call_start`, `on_call_end`) and answers, for an
//! instance that went idle at some time, a [`KeepAliveDecision`]: the window during which an
//! instance should be warm. Two policies:
//!
//! - [`Fixed`]: warm for a fixed time after the last call (what AWS Lambda, Azure Functions and
//!   the design's "scale to zero after 5 min idle" do).
//! - [`HybridHistogram`]: the per-function idle-time histogram of Shahrad et al., "Serverless in
//!   the Wild" (USENIX ATC 2020). Idle times go into 1-minute buckets up to 4 hours. When the
//!   histogram is representative, the instance is unloaded at once and started again at the 5th
//!   percentile of idle times (less a 10% margin), and kept until the 99th percentile (plus 10%);
//!   a function called every 30 minutes then holds memory for minutes around each call instead
//!   of for the fixed idle time after it. Otherwise (too few samples, idle times spread over the
//!   whole range, or too many beyond it) the policy keeps a fixed idle time.
//!
//! Pure: no clock, no I/O. Time is passed in as milliseconds on any monotonic scale, so the agent
//! and the routing simulator drive the same code.

/// The window during which an instance of the function should be warm, for an instance that went
/// idle at `idle_since_ms`: from `prewarm_at_ms` (or, when `None`, from `idle_since_ms` on: keep
/// the instance) until `unload_at_ms`.
///
/// When `prewarm_at_ms` is set the idle instance is unloaded at once, and one instance is started
/// at `prewarm_at_ms` and unloaded at `unload_at_ms` if no call came. An `unload_at_ms` at or
/// before `idle_since_ms` means: unload at once, no prewarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAliveDecision {
    pub unload_at_ms: u64,
    pub prewarm_at_ms: Option<u64>,
}

/// A keep-alive policy for one function. One value per function: the calls of one function only.
pub trait KeepAlivePolicy {
    /// A call of the function started at `now_ms`.
    fn on_call_start(&mut self, now_ms: u64);
    /// A call of the function ended at `now_ms`.
    fn on_call_end(&mut self, now_ms: u64);
    /// What to do with an instance that went idle at `idle_since_ms` (usually: now, as a call
    /// just ended on it).
    fn decision(&self, idle_since_ms: u64) -> KeepAliveDecision;
}

/// Keep an instance warm for `idle_ms` after its last call; never prewarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    pub idle_ms: u64,
}

impl KeepAlivePolicy for Fixed {
    fn on_call_start(&mut self, _now_ms: u64) {}
    fn on_call_end(&mut self, _now_ms: u64) {}
    fn decision(&self, idle_since_ms: u64) -> KeepAliveDecision {
        KeepAliveDecision {
            unload_at_ms: idle_since_ms.saturating_add(self.idle_ms),
            prewarm_at_ms: None,
        }
    }
}

/// Settings of [`HybridHistogram`]. The defaults are the paper's, except `fallback_idle_ms` (the
/// design's scale-to-zero default) and `min_samples`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramConfig {
    /// Width of one bucket.
    pub bucket_ms: u64,
    /// Number of buckets; idle times of `bucket_ms × buckets` or more are out of range.
    pub buckets: usize,
    /// The percentile of idle times at which to prewarm (the histogram's head).
    pub prewarm_percentile: f64,
    /// The percentile of idle times until which to keep warm (the histogram's tail).
    pub keep_alive_percentile: f64,
    /// The prewarm time is lowered, and the keep-alive time raised, by this fraction.
    pub margin: f64,
    /// Below this many idle times the histogram says nothing yet.
    pub min_samples: u64,
    /// The histogram is representative when the coefficient of variation of its bucket counts is
    /// at least this: idle times concentrated in a few buckets give a high one, idle times spread
    /// evenly over the range a low one.
    pub min_bucket_cv: f64,
    /// When more than this fraction of idle times is out of range, the histogram is not used.
    pub max_out_of_range_fraction: f64,
    /// The idle time kept when the histogram is not used.
    pub fallback_idle_ms: u64,
}

impl Default for HistogramConfig {
    fn default() -> Self {
        Self {
            bucket_ms: 60_000,
            buckets: 240,
            prewarm_percentile: 0.05,
            keep_alive_percentile: 0.99,
            margin: 0.10,
            min_samples: 5,
            min_bucket_cv: 2.0,
            max_out_of_range_fraction: 0.5,
            fallback_idle_ms: 300_000,
        }
    }
}

/// Which rule a [`HybridHistogram`] follows at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramState {
    /// Fewer than `min_samples` idle times: fixed idle time.
    Learning,
    /// Too many idle times beyond the histogram's range: fixed idle time.
    OutOfRange,
    /// Idle times spread too evenly to predict (bucket counts' CV below the threshold): fixed.
    Spread,
    /// Prewarm and keep-alive windows from the percentiles.
    Representative,
}

/// The hybrid histogram policy for one function; see the module documentation.
#[derive(Debug, Clone)]
pub struct HybridHistogram {
    config: HistogramConfig,
    counts: Vec<u64>,
    /// Idle times inside the range: the sum of `counts`.
    in_range: u64,
    /// Sum of the squares of `counts`, kept to compute their variance in O(1).
    sum_of_squares: u64,
    out_of_range: u64,
    /// End of the most recent call not yet followed by a call start.
    idle_since_ms: Option<u64>,
}

impl HybridHistogram {
    pub fn new(config: HistogramConfig) -> Self {
        let buckets = config.buckets.max(1);
        Self {
            counts: vec![0; buckets],
            config,
            in_range: 0,
            sum_of_squares: 0,
            out_of_range: 0,
            idle_since_ms: None,
        }
    }

    pub fn config(&self) -> &HistogramConfig {
        &self.config
    }

    /// Records one idle time. `on_call_start` does this; exposed to seed a policy from history.
    pub fn record_idle(&mut self, idle_ms: u64) {
        let bucket = idle_ms / self.config.bucket_ms.max(1);
        match usize::try_from(bucket).ok().filter(|&b| b < self.counts.len()) {
            Some(b) => {
                // (k + 1)² − k² = 2k + 1
                self.sum_of_squares += 2 * self.counts[b] + 1;
                self.counts[b] += 1;
                self.in_range += 1;
            }
            None => self.out_of_range += 1,
        }
    }

    /// Idle times recorded so far, in range and out of it.
    pub fn samples(&self) -> u64 {
        self.in_range + self.out_of_range
    }

    /// The coefficient of variation (standard deviation over mean) of the bucket counts; 0 when
    /// empty.
    pub fn bucket_cv(&self) -> f64 {
        if self.in_range == 0 {
            return 0.0;
        }
        let n = self.counts.len() as f64;
        let mean = self.in_range as f64 / n;
        let variance = (self.sum_of_squares as f64 / n - mean * mean).max(0.0);
        variance.sqrt() / mean
    }

    pub fn state(&self) -> HistogramState {
        let samples = self.samples();
        if samples < self.config.min_samples.max(1) {
            HistogramState::Learning
        } else if self.out_of_range as f64 > self.config.max_out_of_range_fraction * samples as f64 {
            HistogramState::OutOfRange
        } else if self.bucket_cv() < self.config.min_bucket_cv {
            HistogramState::Spread
        } else {
            HistogramState::Representative
        }
    }

    /// The first bucket at which the cumulative count reaches `fraction` of the in-range idle
    /// times.
    fn percentile_bucket(&self, fraction: f64) -> u64 {
        let target = fraction * self.in_range as f64;
        let mut cumulative = 0u64;
        for (bucket, &count) in self.counts.iter().enumerate() {
            cumulative += count;
            if cumulative > 0 && cumulative as f64 >= target {
                return bucket as u64;
            }
        }
        self.counts.len() as u64 - 1
    }

    /// The windows as durations from the start of idleness, `(prewarm_after_ms, unload_after_ms)`,
    /// when the histogram is representative; `None` otherwise.
    pub fn windows_ms(&self) -> Option<(u64, u64)> {
        if self.state() != HistogramState::Representative {
            return None;
        }
        let bucket_ms = self.config.bucket_ms.max(1) as f64;
        let head = self.percentile_bucket(self.config.prewarm_percentile) as f64;
        let tail = self.percentile_bucket(self.config.keep_alive_percentile) as f64;
        // The head bucket's start, lowered; the tail bucket's end, raised.
        let prewarm_after = (head * bucket_ms * (1.0 - self.config.margin)).round().max(0.0) as u64;
        let unload_after = ((tail + 1.0) * bucket_ms * (1.0 + self.config.margin)).round() as u64;
        Some((prewarm_after, unload_after.max(prewarm_after)))
    }
}

impl Default for HybridHistogram {
    fn default() -> Self {
        Self::new(HistogramConfig::default())
    }
}

impl KeepAlivePolicy for HybridHistogram {
    /// An idle time is the time from the end of the most recent call to the start of the next:
    /// for calls one after another, the function's idle time; for overlapping calls, how soon an
    /// instance freed by the last call would have been used again.
    fn on_call_start(&mut self, now_ms: u64) {
        if let Some(since) = self.idle_since_ms.take() {
            self.record_idle(now_ms.saturating_sub(since));
        }
    }

    fn on_call_end(&mut self, now_ms: u64) {
        self.idle_since_ms = Some(self.idle_since_ms.map_or(now_ms, |t| t.max(now_ms)));
    }

    fn decision(&self, idle_since_ms: u64) -> KeepAliveDecision {
        match self.windows_ms() {
            None => Fixed {
                idle_ms: self.config.fallback_idle_ms,
            }
            .decision(idle_since_ms),
            Some((prewarm_after, unload_after)) => KeepAliveDecision {
                unload_at_ms: idle_since_ms.saturating_add(unload_after),
                prewarm_at_ms: (prewarm_after > 0).then(|| idle_since_ms.saturating_add(prewarm_after)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    /// Drives `policy` through calls of `duration_ms` starting at each of `starts`.
    fn drive(policy: &mut (impl KeepAlivePolicy + ?Sized), starts: &[u64], duration_ms: u64) {
        for &start in starts {
            policy.on_call_start(start);
            policy.on_call_end(start + duration_ms);
        }
    }

    #[test]
    fn fixed_keeps_warm_for_its_idle_time_and_never_prewarms() {
        let mut policy = Fixed { idle_ms: 5 * MIN };
        drive(&mut policy, &[0, 10 * MIN, 20 * MIN], 1_000);
        assert_eq!(
            policy.decision(20 * MIN + 1_000),
            KeepAliveDecision {
                unload_at_ms: 25 * MIN + 1_000,
                prewarm_at_ms: None
            }
        );
        assert_eq!(policy.decision(u64::MAX - 1).unload_at_ms, u64::MAX);
    }

    #[test]
    fn a_periodic_function_is_unloaded_and_prewarmed_before_its_next_call() {
        // Called every 30 minutes for 1 s: idle times of 29 min 59 s, bucket 29.
        let mut policy = HybridHistogram::default();
        let starts: Vec<u64> = (0..20).map(|i| i * 30 * MIN).collect();
        drive(&mut policy, &starts, 1_000);
        assert_eq!(policy.state(), HistogramState::Representative);
        let idle_since = 19 * 30 * MIN + 1_000;
        let d = policy.decision(idle_since);
        // Head and tail are both bucket 29: prewarm at 29 min × 0.9, unload at 30 min × 1.1.
        assert_eq!(d.prewarm_at_ms, Some(idle_since + 29 * MIN * 9 / 10));
        assert_eq!(d.unload_at_ms, idle_since + 30 * MIN * 11 / 10);
        // The next call (at 29 min 59 s of idleness) falls inside the warm window.
        let next_call = 20 * 30 * MIN;
        assert!(d.prewarm_at_ms.unwrap() <= next_call && next_call < d.unload_at_ms);
    }

    #[test]
    fn calls_in_quick_succession_keep_the_instance_without_prewarm() {
        // Idle times of 10 s to 2 min: head bucket 0, tail bucket 1.
        let mut policy = HybridHistogram::default();
        let mut t = 0;
        for i in 0..100u64 {
            policy.on_call_start(t);
            policy.on_call_end(t + 500);
            t += 500 + if i % 10 == 0 { 2 * MIN - 1 } else { 10_000 };
        }
        assert_eq!(policy.state(), HistogramState::Representative);
        let d = policy.decision(1_000_000);
        assert_eq!(d.prewarm_at_ms, None);
        assert_eq!(d.unload_at_ms, 1_000_000 + 2 * MIN * 11 / 10);
    }

    #[test]
    fn percentiles_follow_the_head_and_tail_of_the_idle_times() {
        let mut policy = HybridHistogram::default();
        // 1 idle time in bucket 2, 97 in bucket 10, 2 in bucket 50: the 5th percentile is bucket
        // 10 (cumulative 1 < 5, then 98), the 99th is bucket 50 (98 < 99).
        policy.record_idle(2 * MIN + 5);
        for _ in 0..97 {
            policy.record_idle(10 * MIN + 30_000);
        }
        policy.record_idle(50 * MIN);
        policy.record_idle(51 * MIN - 1);
        assert_eq!(policy.windows_ms(), Some((10 * MIN * 9 / 10, 51 * MIN * 11 / 10)));
    }

    #[test]
    fn too_few_samples_fall_back_to_the_fixed_idle_time() {
        let config = HistogramConfig {
            fallback_idle_ms: 7 * MIN,
            ..HistogramConfig::default()
        };
        let mut policy = HybridHistogram::new(config);
        drive(&mut policy, &[0, 30 * MIN, 60 * MIN, 90 * MIN, 120 * MIN], 1_000);
        assert_eq!(policy.samples(), 4);
        assert_eq!(policy.state(), HistogramState::Learning);
        let d = policy.decision(1_000);
        assert_eq!(
            d,
            KeepAliveDecision {
                unload_at_ms: 1_000 + 7 * MIN,
                prewarm_at_ms: None
            }
        );
        policy.on_call_start(150 * MIN);
        assert_eq!(policy.state(), HistogramState::Representative);
    }

    #[test]
    fn idle_times_beyond_the_range_fall_back_to_the_fixed_idle_time() {
        let mut policy = HybridHistogram::default();
        // Calls 5 hours apart: every idle time is out of the 4-hour range.
        drive(&mut policy, &(0..10).map(|i| i * 300 * MIN).collect::<Vec<_>>(), 1_000);
        assert_eq!(policy.state(), HistogramState::OutOfRange);
        assert_eq!(policy.decision(0).unload_at_ms, 5 * MIN);
        // One in range among 10 out of range is still too few.
        policy.record_idle(MIN);
        assert_eq!(policy.state(), HistogramState::OutOfRange);
    }

    #[test]
    fn idle_times_spread_over_the_range_fall_back_to_the_fixed_idle_time() {
        let mut policy = HybridHistogram::default();
        // One idle time in each of the 240 buckets: all counts equal, CV 0.
        for bucket in 0..240 {
            policy.record_idle(bucket * MIN + 1);
        }
        assert!(policy.bucket_cv() < 1e-9, "cv {}", policy.bucket_cv());
        assert_eq!(policy.state(), HistogramState::Spread);
        assert_eq!(policy.decision(0).unload_at_ms, 5 * MIN);
        assert_eq!(policy.windows_ms(), None);
    }

    #[test]
    fn bucket_cv_matches_a_direct_computation() {
        let mut policy = HybridHistogram::default();
        let idle = [
            0,
            1,
            1,
            3 * MIN,
            3 * MIN + 7,
            100 * MIN,
            239 * MIN,
            240 * MIN,
            10_000 * MIN,
        ];
        for &t in &idle {
            policy.record_idle(t);
        }
        let mut counts = vec![0f64; 240];
        for &t in &idle {
            if t < 240 * MIN {
                counts[(t / MIN) as usize] += 1.0;
            }
        }
        let mean = counts.iter().sum::<f64>() / 240.0;
        let var = counts.iter().map(|c| (c - mean) * (c - mean)).sum::<f64>() / 240.0;
        assert!((policy.bucket_cv() - var.sqrt() / mean).abs() < 1e-9);
        assert_eq!(policy.samples(), 9);
    }

    #[test]
    fn overlapping_calls_measure_idleness_from_the_latest_end() {
        let mut policy = HybridHistogram::default();
        policy.on_call_start(0);
        policy.on_call_start(100);
        policy.on_call_end(5_000);
        policy.on_call_end(2_000); // an earlier-started call reported late
        policy.on_call_start(5_000 + 4 * MIN - 1_000);
        assert_eq!(policy.samples(), 1);
        // 3 min 59 s since the latest end: bucket 3, not bucket 4 (4 min 2 s since 2_000).
        for _ in 0..4 {
            policy.record_idle(3 * MIN);
        }
        assert_eq!(policy.windows_ms(), Some((3 * MIN * 9 / 10, 4 * MIN * 11 / 10)));
    }

    #[test]
    fn policies_can_be_driven_through_the_trait() {
        let mut policies: Vec<Box<dyn KeepAlivePolicy>> =
            vec![Box::new(Fixed { idle_ms: MIN }), Box::new(HybridHistogram::default())];
        for policy in &mut policies {
            drive(policy.as_mut(), &[0, 10 * MIN], 10);
            assert_eq!(policy.decision(10 * MIN + 10).prewarm_at_ms, None);
        }
    }
}
