//! The queue, reached in the background: a daemon starts and does its other work whether NATS
//! is up or not, and uses the queue once [`QueueHandle::start`]'s task has connected.

use crate::queue::{Queue, QueueConfig};
use std::time::Duration;
use tokio::sync::watch;

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
