//! The record of one asynchronous call, as `GET /async-calls/{id}` shows it.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    /// Waiting in the queue (for its first attempt, or for the next one after a failure).
    Queued,
    /// An attempt is in progress.
    Running,
    /// The function answered below 400.
    Succeeded,
    /// The function answered with a status that is not retried (400, 404, ...).
    Failed,
    /// Out of attempts or age; the call is in the dead letters and can be retried.
    Dead,
    /// Cancelled before it ran.
    Cancelled,
}

impl CallState {
    pub fn is_final(self) -> bool {
        !matches!(self, CallState::Queued | CallState::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Queued => "queued",
            CallState::Running => "running",
            CallState::Succeeded => "succeeded",
            CallState::Failed => "failed",
            CallState::Dead => "dead",
            CallState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for CallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CallState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "queued" => CallState::Queued,
            "running" => CallState::Running,
            "succeeded" => CallState::Succeeded,
            "failed" => CallState::Failed,
            "dead" => CallState::Dead,
            "cancelled" => CallState::Cancelled,
            other => {
                return Err(format!(
                    "unknown state {other:?}: use queued, running, succeeded, failed, dead or cancelled"
                ))
            }
        })
    }
}

/// What is known of a call. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: String,
    pub function: String,
    pub state: CallState,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// `http` or `cron`.
    pub trigger: String,
    pub enqueued_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// When a queued call that failed will be tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<u64>,
    /// The last attempt's HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The last attempt's error, when it got no answer (or the platform's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// How the callback went: `delivered (200)` or the reason it was given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
    /// The call's sequence in the dead-letter stream, while it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_sequence: Option<u64>,
}

impl CallRecord {
    pub fn queued(id: &str, function: &str, max_attempts: u32, trigger: &str, enqueued_ms: u64) -> Self {
        CallRecord {
            id: id.to_string(),
            function: function.to_string(),
            state: CallState::Queued,
            attempts: 0,
            max_attempts,
            trigger: trigger.to_string(),
            enqueued_ms,
            started_ms: None,
            finished_ms: None,
            next_attempt_ms: None,
            status: None,
            error: None,
            callback_url: None,
            callback: None,
            dead_sequence: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_and_print_alike_and_records_round_trip() {
        for state in [
            CallState::Queued,
            CallState::Running,
            CallState::Succeeded,
            CallState::Failed,
            CallState::Dead,
            CallState::Cancelled,
        ] {
            assert_eq!(state.as_str().parse::<CallState>(), Ok(state));
        }
        assert!("done".parse::<CallState>().unwrap_err().contains("succeeded"));
        assert!(!CallState::Queued.is_final() && CallState::Dead.is_final());
        let mut record = CallRecord::queued("c1", "echo", 3, "http", 5);
        record.status = Some(503);
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("\"state\":\"queued\""), "{json}");
        assert_eq!(serde_json::from_str::<CallRecord>(&json).unwrap(), record);
    }
}
