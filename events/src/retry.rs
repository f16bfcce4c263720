//! What the end of one attempt comes to: done, tried again after a backoff, or dead.
//!
//! Retried: 408, 429, 500, 502, 503, 504 and answers that never came (connection failures,
//! timeouts). The wait before attempt `n + 1` is `min_backoff * 2^(n-1)`, capped at
//! `max_backoff`, with "equal jitter" (half fixed, half random) so a burst of failures does not
//! come back at once; a `Retry-After` in seconds from the function is honoured when longer. A
//! call whose next attempt would start past `max_age` (from its enqueue) is dead instead.

use fjord_core::spec::AsyncPolicy;
use std::time::Duration;

pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The function (or the platform on its behalf) answered with this status.
    Answered { status: u16, retry_after: Option<Duration> },
    /// No answer: the connection failed or the call timed out.
    NoAnswer { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        status: u16,
    },
    /// A status that is not retried.
    Failed {
        status: u16,
    },
    Retry {
        after: Duration,
    },
    Dead {
        reason: String,
    },
}

/// The wait after `attempts_done` failed attempts; `jitter` in [0, 1).
pub fn backoff(policy: &AsyncPolicy, attempts_done: u32, jitter: f64) -> Duration {
    let exponent = attempts_done.saturating_sub(1).min(30);
    let full = policy
        .min_backoff
        .saturating_mul(1u32 << exponent)
        .min(policy.max_backoff);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by functions and is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Decides what follows an attempt: `attempts_done` counts it; times in Unix milliseconds.
pub fn decide(
    policy: &AsyncPolicy,
    attempts_done: u32,
    enqueued_ms: u64,
    now_ms: u64,
    result: &AttemptResult,
    jitter: f64,
) -> Outcome {
    let (retry_after, what) = match result {
        AttemptResult::Answered { status, .. } if *status < 400 => return Outcome::Succeeded { status: *status },
        AttemptResult::Answered { status, .. } if !is_retryable_status(*status) => {
            return Outcome::Failed { status: *status }
        }
        AttemptResult::Answered { status, retry_after } => (*retry_after, format!("status {status}")),
        AttemptResult::NoAnswer { error } => (None, error.clone()),
    };
    if attempts_done >= policy.max_attempts {
        return Outcome::Dead {
            reason: format!(
                "{what} on attempt {attempts_done} of {} (async.max_attempts)",
                policy.max_attempts
            ),
        };
    }
    let mut after = backoff(policy, attempts_done, jitter);
    if let Some(asked) = retry_after {
        after = after.max(asked.min(policy.max_backoff));
    }
    let next_ms = now_ms.saturating_add(after.as_millis() as u64);
    let deadline_ms = enqueued_ms.saturating_add(policy.max_age.as_millis() as u64);
    if next_ms > deadline_ms {
        return Outcome::Dead {
            reason: format!(
                "{what} on attempt {attempts_done}, and the next attempt would start after the call's \
                 max age of {} (async.max_age)",
                fjord_core::duration::format_duration(policy.max_age)
            ),
        };
    }
    Outcome::Retry { after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AsyncPolicy {
        AsyncPolicy {
            concurrency: 1,
            max_attempts: 3,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
        }
    }

    fn answered(status: u16) -> AttemptResult {
        AttemptResult::Answered {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn exactly_the_listed_statuses_are_retried() {
        let retried: Vec<u16> = (100..600).filter(|&s| is_retryable_status(s)).collect();
        assert_eq!(retried, vec![408, 429, 500, 502, 503, 504]);
        assert_eq!(
            decide(&policy(), 1, 0, 0, &answered(200), 0.5),
            Outcome::Succeeded { status: 200 }
        );
        assert_eq!(
            decide(&policy(), 1, 0, 0, &answered(404), 0.5),
            Outcome::Failed { status: 404 }
        );
        assert!(matches!(
            decide(&policy(), 1, 0, 0, &answered(503), 0.5),
            Outcome::Retry { .. }
        ));
        let no_answer = AttemptResult::NoAnswer {
            error: "connection refused".into(),
        };
        assert!(matches!(
            decide(&policy(), 1, 0, 0, &no_answer, 0.5),
            Outcome::Retry { .. }
        ));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let p = policy();
        assert_eq!(backoff(&p, 1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(&p, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&p, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&p, 3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(&p, 20, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(&p, u32::MAX, 1.0), Duration::from_secs(10));
    }

    #[test]
    fn the_last_attempt_or_the_age_makes_a_call_dead_naming_why() {
        let p = policy();
        match decide(&p, 3, 0, 0, &answered(500), 0.5) {
            Outcome::Dead { reason } => assert!(reason.contains("attempt 3 of 3"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // Enqueued an hour ago: a retry in 1 s would pass the max age.
        match decide(&p, 1, 0, 3_600_000 - 100, &answered(500), 1.0) {
            Outcome::Dead { reason } => assert!(reason.contains("max age of 1h"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_is_honoured_when_longer_and_capped_by_max_backoff() {
        let p = policy();
        let asked = |secs| AttemptResult::Answered {
            status: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            decide(&p, 1, 0, 0, &asked(7), 0.0),
            Outcome::Retry {
                after: Duration::from_secs(7)
            }
        );
        assert_eq!(
            decide(&p, 1, 0, 0, &asked(99), 0.0),
            Outcome::Retry {
                after: Duration::from_secs(10)
            }
        );
        assert_eq!(parse_retry_after(" 5 "), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
