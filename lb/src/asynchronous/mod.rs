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

use fjord_events::queue::{Queue, QueueConfig};
use std::time::Duration;
use tokio::sync::watch;

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

/// The queue, once connected; `configured` is false when no `--nats-url` was given.
#[derive(Clone)]
pub struct QueueHandle {
    configured: bool,
    queue: watch::Receiver<Option<Queue>>,
}

impl QueueHandle {
    pub fn configured(&self) -> bool {
        self.configured
    }

    pub fn get(&self) -> Option<Queue> {
        self.queue.borrow().clone()
    }

    /// Waits until the queue is connected.
    pub async fn connected(&self) -> Queue {
        let mut queue = self.queue.clone();
        loop {
            if let Some(q) = queue.borrow_and_update().clone() {
                return q;
            }
            if queue.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Connects in the background, retrying every few seconds; without a config, never.
    pub fn start(config: Option<QueueConfig>) -> (QueueHandle, Option<tokio::task::JoinHandle<()>>) {
        let (tx, rx) = watch::channel(None);
        let Some(config) = config else {
            return (
                QueueHandle {
                    configured: false,
                    queue: rx,
                },
                None,
            );
        };
        let task = tokio::spawn(async move {
            let mut wait = Duration::from_millis(200);
            loop {
                match Queue::connect(&config).await {
                    Ok(queue) => {
                        tracing::info!(nats = %config.urls.join(","), "connected to the queue of asynchronous calls");
                        let _ = tx.send(Some(queue));
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?wait, "the queue of asynchronous calls is not reachable yet");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        (
            QueueHandle {
                configured: true,
                queue: rx,
            },
            Some(task),
        )
    }
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
