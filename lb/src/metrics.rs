//! The lb's counters, exposed at `/metrics` in the Prometheus text format.
//!
//! Per-function series are keyed by deployed function names only: requests for unknown names
//! are counted under `_unknown`, so a scan of random names cannot grow the tables.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// One function's series: atomics only, so recording takes no lock.
struct FunctionSeries {
    /// Count per status code, indexed by `status - 100` (100..=599).
    statuses: Vec<AtomicU64>,
    buckets: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Default for FunctionSeries {
    fn default() -> Self {
        FunctionSeries {
            statuses: (100..600).map(|_| AtomicU64::new(0)).collect(),
            buckets: BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

/// What happened to asynchronous calls, per function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncEvent {
    Enqueued,
    /// An attempt answered below 400.
    Delivered,
    /// An attempt answered with a status that is not retried.
    Failed,
    Retried,
    DeadLettered,
    CallbackFailed,
    /// A delivery of a call already finished (a redelivery after a lost acknowledgement),
    /// dropped unrun.
    Duplicate,
}

impl AsyncEvent {
    const ALL: [(AsyncEvent, &'static str, &'static str); 7] = [
        (
            AsyncEvent::Enqueued,
            "fjord_lb_async_enqueued_total",
            "Asynchronous calls stored in the queue.",
        ),
        (
            AsyncEvent::Delivered,
            "fjord_lb_async_delivered_total",
            "Attempts that succeeded (status below 400).",
        ),
        (
            AsyncEvent::Failed,
            "fjord_lb_async_failed_total",
            "Calls that ended with a status that is not retried.",
        ),
        (
            AsyncEvent::Retried,
            "fjord_lb_async_retried_total",
            "Attempts that failed and were scheduled again.",
        ),
        (
            AsyncEvent::DeadLettered,
            "fjord_lb_async_dead_lettered_total",
            "Calls moved to the dead letters.",
        ),
        (
            AsyncEvent::CallbackFailed,
            "fjord_lb_async_callback_failures_total",
            "Callbacks given up.",
        ),
        (
            AsyncEvent::Duplicate,
            "fjord_lb_async_duplicates_total",
            "Redeliveries of finished calls, dropped unrun.",
        ),
    ];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Default)]
pub struct Metrics {
    asynchronous: RwLock<BTreeMap<String, Arc<[AtomicU64; 7]>>>,
    series: RwLock<BTreeMap<String, Arc<FunctionSeries>>>,
    pub in_flight: AtomicU64,
    pub retries: AtomicU64,
    pub spills: AtomicU64,
    pub queue_waits: AtomicU64,
    pub cold_starts: AtomicU64,
    pub ejections: AtomicU64,
}

impl Metrics {
    fn series(&self, label: &str) -> Arc<FunctionSeries> {
        if let Some(series) = self.series.read().expect("metrics lock poisoned").get(label) {
            return series.clone();
        }
        self.series
            .write()
            .expect("metrics lock poisoned")
            .entry(label.to_string())
            .or_default()
            .clone()
    }

    /// Counts an event of an asynchronous call of a deployed function.
    pub fn count_async(&self, function: &str, event: AsyncEvent) {
        let existing = self
            .asynchronous
            .read()
            .expect("metrics lock poisoned")
            .get(function)
            .cloned();
        let counters = existing.unwrap_or_else(|| {
            self.asynchronous
                .write()
                .expect("metrics lock poisoned")
                .entry(function.to_string())
                .or_default()
                .clone()
        });
        counters[event.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of one event for one function (for tests and logs).
    pub fn async_count(&self, function: &str, event: AsyncEvent) -> u64 {
        self.asynchronous
            .read()
            .expect("metrics lock poisoned")
            .get(function)
            .map_or(0, |c| c[event.index()].load(Ordering::Relaxed))
    }

    /// Requests of a deployed function this lb has answered, whatever their status.
    pub fn requests_of(&self, function: &str) -> u64 {
        self.series
            .read()
            .expect("metrics lock poisoned")
            .get(function)
            .map_or(0, |s| s.count.load(Ordering::Relaxed))
    }

    /// Counts a finished request (status and time to the response head).
    pub fn record(&self, function: Option<&str>, status: u16, elapsed: Duration) {
        let series = self.series(function.unwrap_or("_unknown"));
        let index = usize::from(status.clamp(100, 599) - 100);
        series.statuses[index].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in series.buckets.iter().zip(BUCKETS) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        series
            .sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        series.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let series: Vec<(String, Arc<FunctionSeries>)> = self
            .series
            .read()
            .expect("metrics lock poisoned")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = String::new();
        out.push_str("# HELP fjord_lb_requests_total Requests answered, by function and status.\n");
        out.push_str("# TYPE fjord_lb_requests_total counter\n");
        for (function, s) in &series {
            for (i, count) in s.statuses.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "fjord_lb_requests_total{{function=\"{function}\",status=\"{}\"}} {count}",
                        i + 100
                    );
                }
            }
        }
        out.push_str("# HELP fjord_lb_request_seconds Time to the response head, by function.\n");
        out.push_str("# TYPE fjord_lb_request_seconds histogram\n");
        for (function, s) in &series {
            for (bound, count) in BUCKETS.iter().zip(&s.buckets) {
                let count = count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "fjord_lb_request_seconds_bucket{{function=\"{function}\",le=\"{bound}\"}} {count}"
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let sum = s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "fjord_lb_request_seconds_bucket{{function=\"{function}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "fjord_lb_request_seconds_sum{{function=\"{function}\"}} {sum}");
            let _ = writeln!(out, "fjord_lb_request_seconds_count{{function=\"{function}\"}} {count}");
        }
        let gauges: [(&str, &str, &str, &AtomicU64); 6] = [
            (
                "fjord_lb_in_flight",
                "gauge",
                "Requests being served now.",
                &self.in_flight,
            ),
            (
                "fjord_lb_retries_total",
                "counter",
                "Attempts on another node after a busy or unreachable one.",
                &self.retries,
            ),
            (
                "fjord_lb_spills_total",
                "counter",
                "Requests served by a node other than the function's first choice.",
                &self.spills,
            ),
            (
                "fjord_lb_queue_waits_total",
                "counter",
                "Requests that waited in a function's queue because every node was busy.",
                &self.queue_waits,
            ),
            (
                "fjord_lb_cold_starts_total",
                "counter",
                "Responses that came from an instance started for them.",
                &self.cold_starts,
            ),
            (
                "fjord_lb_ejections_total",
                "counter",
                "Nodes taken out of rotation after failing connections.",
                &self.ejections,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let asynchronous = self.asynchronous.read().expect("metrics lock poisoned");
        if !asynchronous.is_empty() {
            for (event, name, help) in AsyncEvent::ALL {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (function, counters) in asynchronous.iter() {
                    let value = counters[event.index()].load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name}{{function=\"{function}\"}} {value}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.record(Some("echo"), 200, Duration::from_millis(3));
        m.record(Some("echo"), 200, Duration::from_millis(300));
        m.record(None, 404, Duration::from_micros(10));
        let text = m.render();
        assert!(
            text.contains("fjord_lb_requests_total{function=\"echo\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("fjord_lb_requests_total{function=\"_unknown\",status=\"404\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fjord_lb_request_seconds_bucket{function=\"echo\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fjord_lb_request_seconds_bucket{function=\"echo\",le=\"0.5\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("fjord_lb_request_seconds_count{function=\"echo\"} 2"),
            "{text}"
        );
        assert!(!text.contains("async"), "no asynchronous series before a call: {text}");
        m.count_async("echo", AsyncEvent::Enqueued);
        m.count_async("echo", AsyncEvent::Enqueued);
        m.count_async("echo", AsyncEvent::DeadLettered);
        let text = m.render();
        assert!(
            text.lines()
                .any(|l| l == "fjord_lb_async_enqueued_total{function=\"echo\"} 2"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l == "fjord_lb_async_dead_lettered_total{function=\"echo\"} 1"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l == "fjord_lb_async_retried_total{function=\"echo\"} 0"),
            "{text}"
        );
        assert_eq!(m.async_count("echo", AsyncEvent::Enqueued), 2);
    }
}
