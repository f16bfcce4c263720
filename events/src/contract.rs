//! The wire contract of asynchronous calls: what is stored in JetStream under which name, and
//! the headers of the HTTP API.

/// The stream of queued calls, one subject per function (`fjord.calls.{function}`); a message
/// leaves it when a worker acknowledges it (work-queue retention).
pub const CALLS_STREAM: &str = "FJORD_CALLS";
/// Calls that ran out of attempts or age, kept 7 days (`fjord.dead.{function}`).
pub const DEAD_STREAM: &str = "FJORD_DEAD";
/// Call records, the last one per call (`fjord.record.{function}.{call id}`), kept 7 days.
/// (A plain stream rather than a JetStream key-value bucket: the client's bucket API needs a
/// newer server than Debian's 2.9.)
pub const RECORDS_STREAM: &str = "FJORD_CALL_RECORDS";

pub fn call_subject(function: &str) -> String {
    format!("fjord.calls.{function}")
}

pub fn dead_subject(function: &str) -> String {
    format!("fjord.dead.{function}")
}

/// The durable consumer that delivers one function's calls; its `max_ack_pending` is the
/// function's `async.concurrency`, over every lb.
pub fn consumer_name(function: &str) -> String {
    format!("fn_{function}")
}

pub fn record_subject(function: &str, call_id: &str) -> String {
    format!("fjord.record.{function}.{call_id}")
}

/// The deduplication id of an enqueue: a second enqueue with the same call id for the same
/// function within the stream's duplicate window is stored once.
pub fn dedup_id(function: &str, call_id: &str) -> String {
    format!("{function}.{call_id}")
}

/// Headers of a queued message (NATS headers, not HTTP ones).
pub mod message {
    pub const CALL_ID: &str = "Fjord-Call-Id";
    pub const METHOD: &str = "Fjord-Method";
    /// The path after the function's name, with the query: `/resize?w=200`.
    pub const PATH: &str = "Fjord-Path";
    pub const CALLBACK_URL: &str = "Fjord-Callback-Url";
    pub const ENQUEUED_MS: &str = "Fjord-Enqueued-Ms";
    pub const TRIGGER: &str = "Fjord-Trigger";
    /// On a dead letter: the attempts made, the last status and error.
    pub const ATTEMPTS: &str = "Fjord-Attempts";
    pub const LAST_STATUS: &str = "Fjord-Last-Status";
    pub const LAST_ERROR: &str = "Fjord-Last-Error";
    /// Each header of the caller's request travels as `H-{name}`.
    pub const REQUEST_HEADER_PREFIX: &str = "H-";
}

/// Headers of the HTTP API (lowercase, as `http` spells them).
pub mod http_headers {
    /// Sent by a caller to make an enqueue idempotent; answered on every 202.
    pub const CALL_ID: &str = "x-call-id";
    pub const CALLBACK_URL: &str = "x-callback-url";
    /// On the callback, and to the function: which attempt this is, of how many.
    pub const ATTEMPT: &str = "x-attempt";
    pub const MAX_ATTEMPTS: &str = "x-max-attempts";
    pub const FUNCTION_NAME: &str = "x-function-name";
    pub const FUNCTION_STATUS: &str = "x-function-status";
    pub const DURATION_SECONDS: &str = "x-duration-seconds";
    /// `cron` on a call a schedule fired, `http` otherwise.
    pub const TRIGGER: &str = "x-fjord-trigger";
}

/// How a call was made.
pub const TRIGGER_HTTP: &str = "http";
pub const TRIGGER_CRON: &str = "cron";

pub const MAX_CALL_ID_LEN: usize = 64;

/// A caller's call id is kept when it is 1 to 64 letters, digits, `-` or `_` (it becomes part
/// of a subject and a key); otherwise the enqueue is refused, naming the rule.
pub fn check_call_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_CALL_ID_LEN {
        return Err(format!("must be 1 to {MAX_CALL_ID_LEN} characters (got {})", id.len()));
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("may hold only letters, digits, '-' and '_'".into());
    }
    Ok(())
}

/// A fresh call id: 128 random bits in hex.
pub fn new_call_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_checked_and_fresh_ones_pass_and_differ() {
        assert!(check_call_id("order-42_a").is_ok());
        assert!(check_call_id("").is_err());
        assert!(check_call_id("a.b").is_err());
        assert!(check_call_id("a*").is_err());
        assert!(check_call_id(&"x".repeat(65)).is_err());
        assert!(check_call_id(&"x".repeat(64)).is_ok());
        let (a, b) = (new_call_id(), new_call_id());
        assert_eq!(a.len(), 32);
        assert!(check_call_id(&a).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn names_follow_the_function() {
        assert_eq!(call_subject("resize"), "fjord.calls.resize");
        assert_eq!(dead_subject("resize"), "fjord.dead.resize");
        assert_eq!(consumer_name("resize"), "fn_resize");
        assert_eq!(record_subject("resize", "abc"), "fjord.record.resize.abc");
    }
}
