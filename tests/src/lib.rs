//! Fixtures for Fjord's end-to-end tests: the real binaries started as processes on loopback
//! ports, an HTTP client, the CLI, and `eventually` for waiting on a condition with a deadline.
//!
//! The binaries come from the workspace's target directory (`cargo build --workspace --bins`,
//! which the test command runs first).

pub mod docker;
mod http_client;
mod load;
mod members;
mod nats;
mod platform;
mod process;

pub use http_client::*;
pub use load::*;
pub use members::*;
pub use nats::*;
pub use platform::*;
pub use process::*;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Path of a workspace binary, next to the test executable's `deps/` directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The value of one series (its name with its labels, as written, e.g.
/// `fjord_node_group_nodes{group="vps"}`) in a Prometheus text exposition; `None` when the
/// series is absent or its value does not parse as `T`. Compare numbers, never substrings of the
/// text: `x_total 1` is also the start of `x_total 12`.
pub fn metric_value<T: std::str::FromStr>(exposition: &str, series: &str) -> Option<T> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        // A sample may carry a timestamp after its value.
        value.split_whitespace().next()?.parse().ok()
    })
}

/// How long one test may wait in all. nextest kills a test after 300 s (.config/nextest.toml:
/// slow after 60 s, killed after 5 periods) and its diagnostics die with it, so every wait here
/// ends by this budget, counted from the test's first fixture call, and fails with its own
/// message first. nextest runs each test in its own process, so the clock is per test.
pub const TEST_BUDGET: Duration = Duration::from_secs(240);

pub(crate) fn test_started() -> Instant {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// When a wait of `within` from now must end: `within` from now, or the end of the test's
/// [`TEST_BUDGET`] if that comes first (`true` then).
pub fn deadline_within(within: Duration) -> (Instant, bool) {
    let budget_end = test_started() + TEST_BUDGET;
    let wanted = Instant::now() + within;
    if wanted > budget_end {
        (budget_end, true)
    } else {
        (wanted, false)
    }
}

/// Why a wait ended at its deadline, for failure messages.
pub(crate) fn timed_out(within: Duration, by_budget: bool) -> String {
    if by_budget {
        format!(
            "the test's {TEST_BUDGET:?} budget ran out (kept under nextest's 300 s kill so these diagnostics survive; \
             this wait asked for {within:?})"
        )
    } else {
        format!("timed out after {within:?}")
    }
}

/// Waits until `check` returns `Some`, polling every 25 ms, failing the test after `within`
/// (or when the test's [`TEST_BUDGET`] runs out).
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_or(what, within, check, String::new).await
}

/// [`eventually`] whose failure adds `explain()`: what the system looked like at the deadline.
pub async fn eventually_or<T, F, Fut>(what: &str, within: Duration, mut check: F, explain: impl FnOnce() -> String) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let (deadline, by_budget) = deadline_within(within);
    loop {
        // A check that hangs is cut at the budget's end, not at `within`: a slow check that
        // answers within the budget keeps working as before.
        let budget_end = test_started() + TEST_BUDGET;
        if let Ok(Some(value)) = tokio::time::timeout_at(budget_end.into(), check()).await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("{} waiting for {what}\n{}", timed_out(within, by_budget), explain());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
