//! Asynchronous calls: `POST|PUT /async-function/{name}[/{rest}]` stores a call in the queue
//! (NATS JetStream) and answers 202 with its id ([`front`]); `GET|DELETE /async-calls/{id}`
//! looks a call up or cancels it; the workers ([`worker`]) deliver queued calls through this
//! lb's own routing ([`crate::proxy::Proxy::call`]), so warm affinity, bounded loads, the hold
//! queue and the metrics apply to them as to any call, and post the result to the caller's
//! callback ([`callback`]).
//!
//! The queue is reached in the background: an lb starts, and serves synchronous calls, whether
//! NATS is up or not; asynchronous routes answer 503 until it is.

pub mod callback;
pub mod front;
pub mod worker;

pub use fjord_events::connection::QueueHandle;
use std::time::Duration;

/// Lambda's limit for an asynchronous call's payload.
pub const DEFAULT_ASYNC_BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// The settings of the asynchronous routes and workers.
#[derive(Debug, Clone)]
pub struct AsyncSettings {
    pub body_limit_bytes: usize,
    /// How long a delivered call may go without a sign of life from its worker before JetStream
    /// delivers it again (the worker signals progress at a third of it while it works).
    pub ack_wait: Duration,
    pub allow_link_local_callbacks: bool,
    /// Whether this lb delivers calls (an lb may only enqueue).
    pub workers: bool,
}

/// The headers a queued call carries from its enqueue to its function: the caller's, minus
/// those of the hop, the ones Fjord sets itself, and values that are not visible ASCII.
pub fn passed_headers(headers: &http::HeaderMap) -> Vec<(String, String)> {
    const DROPPED: &[&str] = &[
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "expect",
    ];
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !DROPPED.contains(&name)
                && !name.starts_with("x-fjord-")
                && name != fjord_events::contract::http_headers::CALL_ID
                && name != fjord_events::contract::http_headers::CALLBACK_URL
        })
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            value
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b))
                .then(|| (name.as_str().to_string(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_headers_and_fjords_own_do_not_travel_with_a_call() {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("x-user", "ann".parse().unwrap());
        headers.insert("connection", "close".parse().unwrap());
        headers.insert("x-call-id", "c1".parse().unwrap());
        headers.insert("x-callback-url", "http://a/".parse().unwrap());
        headers.insert("x-fjord-trigger", "cron".parse().unwrap());
        headers.insert("x-bin", http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        let mut passed = passed_headers(&headers);
        passed.sort();
        assert_eq!(
            passed,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("x-user".to_string(), "ann".to_string())
            ]
        );
    }
}
