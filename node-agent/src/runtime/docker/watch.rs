//! Watching a running instance: its output streamed line by line into the [`LogStore`], its
//! exit read from the engine (out of memory or exit code), and the engine's `oom` events for this
//! node's containers, which can arrive after the exit they explain. It must not stop or start
//! containers, only remove one that died on its own once its last output is captured.

use super::container::remove_container_quietly;
use crate::logs::LogStore;
use crate::runtime::{ExitReason, ExitState, LABEL_NODE};
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::{LogsOptions, WaitContainerOptions};
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The engine's `oom` events for this node's containers. The engine can learn of an OOM kill
/// after the container's exit (containerd delivers the two events separately), and then
/// `State.OOMKilled` stays false; the event still comes. An exit by SIGKILL the agent did not
/// cause waits briefly for it here before being reported as a plain exit.
#[derive(Default)]
pub(super) struct OomEvents {
    seen: Mutex<HashMap<String, Instant>>,
    arrived: tokio::sync::Notify,
}

/// How long an exit by SIGKILL waits for the engine's late `oom` event.
const OOM_EVENT_GRACE: Duration = Duration::from_secs(2);

impl OomEvents {
    fn record(&self, container: String) {
        let mut seen = self.seen.lock().expect("oom events lock poisoned");
        // Bounded: entries older than a minute have been read or never will be.
        seen.retain(|_, at| at.elapsed() < Duration::from_secs(60));
        seen.insert(container, Instant::now());
        drop(seen);
        self.arrived.notify_waiters();
    }

    /// Whether an `oom` event for `container` arrives (or has arrived) within `within`.
    async fn wait_for(&self, container: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self
                .seen
                .lock()
                .expect("oom events lock poisoned")
                .contains_key(container)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return false;
            }
        }
    }
}

/// Follows the engine's `oom` events for containers labelled for `node_id`, reconnecting with a
/// backoff (asking for the events since the last one seen, so a reconnect misses none); ends
/// with the runtime.
pub(super) fn follow_oom_events(docker: Docker, node_id: String, ooms: std::sync::Weak<OomEvents>) {
    tokio::spawn(async move {
        let mut since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut backoff = Duration::from_millis(100);
        loop {
            let filters = HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("event".to_string(), vec!["oom".to_string()]),
                ("label".to_string(), vec![format!("{LABEL_NODE}={node_id}")]),
            ]);
            let options = bollard::query_parameters::EventsOptions {
                since: Some(since.to_string()),
                until: None,
                filters: Some(filters),
            };
            let mut events = docker.events(Some(options));
            while let Some(event) = events.next().await {
                let Some(ooms) = ooms.upgrade() else { return };
                match event {
                    Ok(event) => {
                        backoff = Duration::from_millis(100);
                        if let Some(time) = event.time {
                            since = since.max(time as u64);
                        }
                        if let Some(id) = event.actor.and_then(|a| a.id) {
                            ooms.record(id);
                        }
                    }
                    Err(e) => {
                        tracing::debug!("the engine's event stream broke: {e}");
                        break;
                    }
                }
            }
            if ooms.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

/// Streams the container's stdout and stderr, line by line, into the log store until it ends.
pub(super) fn capture_logs(
    docker: Docker,
    container: String,
    logs: Arc<LogStore>,
    function: String,
    instance: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut output = docker.logs(
            &container,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        while let Some(Ok(chunk)) = output.next().await {
            let (stream, message) = match chunk {
                LogOutput::StdOut { message } | LogOutput::Console { message } => ("stdout", message),
                LogOutput::StdErr { message } => ("stderr", message),
                LogOutput::StdIn { .. } => continue,
            };
            for line in String::from_utf8_lossy(&message).lines() {
                logs.push(&function, &instance, stream, line);
            }
        }
    })
}

/// Waits for the container to stop running and publishes why. The engine's wait call is the
/// signal; the container's state (read after it) is the truth, so a wait that breaks off (the
/// engine restarting) is retried with a backoff rather than taken as an exit. A container that
/// died on its own (not stopped by the agent) is removed once its last output is captured: no
/// stopped container outlives its instance.
pub(super) fn watch_exit(
    docker: Docker,
    container: String,
    exit: Arc<ExitState>,
    log_capture: tokio::task::JoinHandle<()>,
    ooms: Arc<OomEvents>,
) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            let _ = docker
                .wait_container(&container, Some(WaitContainerOptions::default()))
                .next()
                .await;
            let reason = match docker.inspect_container(&container, None).await {
                Ok(inspect) => inspect.state.and_then(|state| {
                    let running = state.running.unwrap_or(false)
                        || matches!(
                            state.status,
                            Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::RESTARTING)
                        );
                    match (running, state.oom_killed) {
                        (true, _) => None,
                        (false, Some(true)) => Some(ExitReason::OutOfMemory),
                        (false, _) => Some(ExitReason::Exited(state.exit_code.unwrap_or(-1) as i32)),
                    }
                }),
                // Removed under us: by the agent's stop, or by an operator.
                Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Some(ExitReason::Stopped),
                Err(_) => None,
            };
            if let Some(mut reason) = reason {
                // Killed by SIGKILL, not by the agent: perhaps an OOM kill the engine has not
                // heard of yet.
                if reason == ExitReason::Exited(137)
                    && !exit.is_stopping()
                    && ooms.wait_for(&container, OOM_EVENT_GRACE).await
                {
                    reason = ExitReason::OutOfMemory;
                }
                let died = reason != ExitReason::Stopped;
                let first = exit.record(reason);
                // The agent's own stop removes the container itself, after the engine's stop.
                if died && first && !exit.is_stopping() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), log_capture).await;
                    remove_container_quietly(&docker, &container).await;
                }
                return;
            }
            if exit.has_ended() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_oom_event_is_waited_for_briefly_whether_it_came_before_or_after() {
        let ooms = std::sync::Arc::new(super::OomEvents::default());
        ooms.record("early".into());
        assert!(
            ooms.wait_for("early", std::time::Duration::ZERO).await,
            "one that came before"
        );
        let late = {
            let ooms = ooms.clone();
            tokio::spawn(async move { ooms.wait_for("late", std::time::Duration::from_secs(10)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        ooms.record("late".into());
        assert!(late.await.unwrap(), "one that comes while waiting");
        assert!(
            !ooms.wait_for("never", std::time::Duration::from_millis(30)).await,
            "none within the grace: a plain exit"
        );
    }
}
