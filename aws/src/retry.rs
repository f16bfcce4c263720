//! Retrying provider calls that failed for a passing reason (throttling, a 5xx, a timeout), with
//! exponential backoff and a bounded number of attempts. Permanent errors return at once.
//!
//! The Auto Scaling clients run with the SDK's own retries off, so this policy is the only one in
//! force and its worst case is easy to state: `attempts` calls, separated by `base`, `2 × base`,
//! `4 × base`... each capped at `max_delay`.

use fjord_decisions::capacity::ProviderError;
use std::future::Future;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included; at least 1.
    pub attempts: u32,
    /// Wait before the second call; each later wait doubles.
    pub base_delay: Duration,
    /// No wait is longer than this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 calls, waiting 200 ms, 400 ms and 800 ms between them.
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed call number `failed` (1 for the first call).
    pub fn delay_after(&self, failed: u32) -> Duration {
        let factor = 1u32.checked_shl(failed.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Calls `call` until it succeeds, fails with a permanent error, or `policy.attempts` calls have
/// failed; returns the last result. Waits with tokio's clock, so tests can pause it.
pub async fn retry<T, F, Fut>(policy: RetryPolicy, mut call: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let attempts = policy.attempts.max(1);
    let mut failed = 0;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(err) => {
                failed += 1;
                if !err.retryable() || failed >= attempts {
                    return Err(err);
                }
                let delay = policy.delay_after(failed);
                tracing::debug!(%err, attempt = failed, delay_ms = delay.as_millis() as u64, "retrying provider call");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::time::Instant;

    fn throttled() -> ProviderError {
        ProviderError::Throttled {
            message: "Rate exceeded".into(),
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
        };
        let delays: Vec<_> = (1..=5).map(|n| p.delay_after(n).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay_after(200), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_with_backoff_then_succeeds() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let result = retry(RetryPolicy::default(), || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(throttled())
            } else {
                Ok("done")
            }
        })
        .await;
        assert_eq!(result, Ok("done"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(start.elapsed(), Duration::from_millis(200 + 400));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_last_attempt() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let result: Result<(), _> = retry(RetryPolicy::default(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(throttled())
        })
        .await;
        assert_eq!(result, Err(throttled()));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(start.elapsed(), Duration::from_millis(200 + 400 + 800));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_return_at_once() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let denied = ProviderError::AccessDenied { message: "no".into() };
        let result: Result<(), _> = retry(RetryPolicy::default(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(denied.clone())
        })
        .await;
        assert_eq!(result, Err(denied));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_attempts_still_calls_once() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy {
            attempts: 0,
            ..RetryPolicy::default()
        };
        let result: Result<(), _> = retry(policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(throttled())
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
