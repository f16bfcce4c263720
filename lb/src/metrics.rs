//! The lb's counters, exposed at `/metrics` in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub in_flight: AtomicU64,
    pub retries: AtomicU64,
}

impl Metrics {
    /// Counts a finished request. Unknown functions are counted under one label, so a scan of
    /// random names cannot grow the table.
    pub fn record(&self, function: Option<&str>, status: u16) {
        let label = function.unwrap_or("_unknown").to_string();
        *self
            .requests
            .lock()
            .expect("metrics lock poisoned")
            .entry((label, status))
            .or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP fjord_lb_requests_total Requests answered, by function and status.\n");
        out.push_str("# TYPE fjord_lb_requests_total counter\n");
        for ((function, status), count) in self.requests.lock().expect("metrics lock poisoned").iter() {
            let _ = writeln!(
                out,
                "fjord_lb_requests_total{{function=\"{function}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP fjord_lb_in_flight Requests being served now.\n# TYPE fjord_lb_in_flight gauge\n");
        let _ = writeln!(out, "fjord_lb_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        out.push_str("# HELP fjord_lb_retries_total Requests sent to another node after a busy or unreachable one.\n");
        out.push_str("# TYPE fjord_lb_retries_total counter\n");
        let _ = writeln!(out, "fjord_lb_retries_total {}", self.retries.load(Ordering::Relaxed));
        out
    }
}
