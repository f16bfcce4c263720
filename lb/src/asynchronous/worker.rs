//! The workers: for each deployed function, one task pulling its calls from its own durable
//! consumer (so a flood of one function never waits in front of another's calls), delivering
//! at most `async.concurrency` at once (the consumer's `max_ack_pending`, over every lb, and a
//! semaphore here), each through [`Proxy::call`].
//!
//! One delivery: look the record up (a cancelled call, or a redelivery of one already
//! finished, is acknowledged unrun) -> record `running` -> call the function, signalling
//! progress to JetStream while it runs -> [`fjord_events::retry::decide`]: retry later (a
//! negative acknowledgement with the backoff as its delay), or finish: dead letter if out of
//! attempts or age, callback, final record, acknowledgement. The acknowledgement comes last,
//! so a worker that dies at any point leaves the call to be delivered again (at least once).

use super::callback::{self, Callbacks};
use super::{AsyncSettings, QueueHandle};
use crate::metrics::AsyncEvent;
use crate::proxy::Proxy;
use bytes::Bytes;
use fjord_core::spec::AsyncPolicy;
use fjord_events::async_nats::jetstream::{self, AckKind};
use fjord_events::contract::http_headers as h;
use fjord_events::queue::{now_ms, Queue, QueuedCall};
use fjord_events::retry::{self, AttemptResult, Outcome};
use fjord_events::{CallRecord, CallState};
use futures::StreamExt;
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The largest response body passed on to a callback.
const CALLBACK_BODY_LIMIT: usize = 6 * 1024 * 1024;

struct Shared {
    proxy: Arc<Proxy>,
    queue: Queue,
    settings: AsyncSettings,
    callbacks: Callbacks,
}

/// Runs the workers until the task is aborted: waits for the queue, then keeps one worker per
/// function in the routing table, restarted when its delivery settings change.
pub async fn run(proxy: Arc<Proxy>, queue: QueueHandle, settings: AsyncSettings) {
    let queue = queue.connected().await;
    let shared = Arc::new(Shared {
        callbacks: Callbacks::new(settings.allow_link_local_callbacks),
        proxy,
        queue,
        settings,
    });
    let mut routes = shared.proxy.routes.clone();
    let mut workers: HashMap<String, ((AsyncPolicy, Duration), JoinHandle<()>)> = HashMap::new();
    loop {
        let wanted: HashMap<String, (AsyncPolicy, Duration)> = routes
            .borrow_and_update()
            .functions
            .values()
            .map(|f| (f.name.clone(), (f.async_policy, f.timeout)))
            .collect();
        workers.retain(|name, (settings, task)| {
            let keep = wanted.get(name) == Some(settings);
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, settings) in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = workers.entry(name) {
                let task = tokio::spawn(function_worker(
                    shared.clone(),
                    slot.key().clone(),
                    settings.0,
                    settings.1,
                ));
                slot.insert((settings, task));
            }
        }
        if routes.changed().await.is_err() {
            break;
        }
    }
    for (_, (_, task)) in workers {
        task.abort();
    }
}

async fn function_worker(shared: Arc<Shared>, name: String, policy: AsyncPolicy, timeout: Duration) {
    let permits = Arc::new(Semaphore::new(policy.concurrency as usize));
    loop {
        let consumer = match shared
            .queue
            .consumer(&name, policy.concurrency, shared.settings.ack_wait)
            .await
        {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(function = %name, error = %e, "cannot open the function's queue; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(policy.concurrency.clamp(1, 256) as usize)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(function = %name, error = %e, "cannot pull the function's calls; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::debug!(function = %name, error = %e, "pulling calls");
                    continue;
                }
            };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let shared = shared.clone();
            let name = name.clone();
            tokio::spawn(async move {
                deliver(shared, name, policy, timeout, message).await;
                drop(permit);
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn deliver(
    shared: Arc<Shared>,
    name: String,
    policy: AsyncPolicy,
    timeout: Duration,
    message: jetstream::Message,
) {
    let (shared, name) = (shared.as_ref(), name.as_str());
    let attempt = message.info().map(|i| i.delivered.max(1) as u32).unwrap_or(1);
    let Some(call) = QueuedCall::from_message(name, message.headers.as_ref(), message.payload.clone()) else {
        tracing::warn!(
            function = name,
            "a message without Fjord's headers in the queue; dropped"
        );
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    let queue = &shared.queue;
    let mut record = match claim(shared, name, &call, &policy, attempt, &message).await {
        Some(record) => record,
        None => return,
    };
    let message = Arc::new(message);
    let ticker = {
        let message = message.clone();
        let every = (shared.settings.ack_wait / 3).max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let _ = message.ack_with(AckKind::Progress).await;
            }
        })
    };
    let started = Instant::now();
    let answer = invoke(shared, name, &call, attempt, policy, timeout).await;
    let duration = started.elapsed();
    let (result, headers, body) = match answer {
        Ok((status, headers, body)) => {
            let retry_after = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(retry::parse_retry_after);
            (AttemptResult::Answered { status, retry_after }, headers, body)
        }
        Err(error) => (AttemptResult::NoAnswer { error }, http::HeaderMap::new(), Bytes::new()),
    };
    let (status, error) = match &result {
        AttemptResult::Answered { status, .. } => (Some(*status), None),
        AttemptResult::NoAnswer { error } => (None, Some(error.clone())),
    };
    record.status = status;
    record.error = error;
    let outcome = retry::decide(
        &policy,
        attempt,
        call.enqueued_ms,
        now_ms(),
        &result,
        rand::random::<f64>(),
    );
    let finished = |record: &mut CallRecord, state| {
        record.state = state;
        record.finished_ms = Some(now_ms());
    };
    match outcome {
        Outcome::Retry { after } => {
            ticker.abort();
            record.state = CallState::Queued;
            record.next_attempt_ms = Some(now_ms() + after.as_millis() as u64);
            let _ = queue.put_record(&record).await;
            shared.proxy.metrics.count_async(name, AsyncEvent::Retried);
            let _ = message.ack_with(AckKind::Nak(Some(after))).await;
            return;
        }
        Outcome::Succeeded { .. } => {
            shared.proxy.metrics.count_async(name, AsyncEvent::Delivered);
            finished(&mut record, CallState::Succeeded);
        }
        Outcome::Failed { .. } => {
            shared.proxy.metrics.count_async(name, AsyncEvent::Failed);
            finished(&mut record, CallState::Failed);
        }
        Outcome::Dead { reason } => {
            record.error = Some(match record.error.take() {
                Some(error) => format!("{error}; {reason}"),
                None => reason,
            });
            let answer = Some((headers, body, duration));
            finish_dead(shared, name, &call, record, &message, answer).await;
            ticker.abort();
            return;
        }
    }
    post_callback(shared, name, &call, &mut record, &headers, body, duration).await;
    ticker.abort();
    if let Err(e) = queue.put_record(&record).await {
        tracing::warn!(call = %call.call_id, error = %e, "the call's final record was not written");
    }
    let _ = message.ack().await;
}

/// Reads the call's record and marks this attempt running, the write naming the record read: a
/// cancel (or any writer) that came between makes it look again, so a call reported cancelled
/// never runs. `None` when the message is settled here (cancelled, finished before, dead, or to
/// be looked at later).
async fn claim(
    shared: &Shared,
    name: &str,
    call: &QueuedCall,
    policy: &AsyncPolicy,
    attempt: u32,
    message: &jetstream::Message,
) -> Option<CallRecord> {
    let queue = &shared.queue;
    let fresh = || {
        CallRecord::queued(
            &call.call_id,
            name,
            policy.max_attempts,
            &call.trigger,
            call.enqueued_ms,
        )
    };
    for _ in 0..3 {
        let (mut record, sequence) = match queue.stored_record(name, &call.call_id).await {
            // A record of an earlier call with the same id (older than the duplicate window, or
            // before a retry of a dead call) is not this call's.
            Ok(Some(stored)) if stored.record.enqueued_ms != call.enqueued_ms => (fresh(), stored.sequence),
            Ok(Some(stored)) => (stored.record, stored.sequence),
            Ok(None) => (fresh(), 0),
            Err(e) => {
                tracing::warn!(function = name, call = %call.call_id, error = %e, "cannot read the call's record; later");
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                return None;
            }
        };
        match record.state {
            CallState::Cancelled => {
                let _ = message.ack().await;
                return None;
            }
            state if state.is_final() => {
                // Finished before, but its acknowledgement was lost: at least once, not twice.
                shared.proxy.metrics.count_async(name, AsyncEvent::Duplicate);
                let _ = message.ack().await;
                return None;
            }
            _ => {}
        }
        record.max_attempts = policy.max_attempts;
        record.callback_url = call.callback_url.clone();
        let expired = now_ms() > call.enqueued_ms.saturating_add(policy.max_age.as_millis() as u64);
        if expired || attempt > policy.max_attempts {
            let reason = if expired {
                format!(
                    "the call passed its max age of {} (async.max_age) before attempt {attempt}",
                    fjord_core::duration::format_duration(policy.max_age)
                )
            } else {
                format!(
                    "delivered {attempt} times without an answer recorded (async.max_attempts is {})",
                    policy.max_attempts
                )
            };
            record.error = Some(reason);
            finish_dead(shared, name, call, record, message, None).await;
            return None;
        }
        record.state = CallState::Running;
        record.attempts = attempt;
        record.started_ms = Some(now_ms());
        record.next_attempt_ms = None;
        match queue.put_record_if(&record, sequence).await {
            Ok(true) => return Some(record),
            // Someone wrote first (a cancel): look again.
            Ok(false) => continue,
            Err(e) => {
                tracing::debug!(call = %call.call_id, error = %e, "recording the attempt");
                return Some(record);
            }
        }
    }
    let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
    None
}

/// Moves a call to the dead letters, posts the callback, records it dead, acknowledges. If the
/// dead letter cannot be written, the call is left in the queue (a negative acknowledgement)
/// rather than lost.
async fn finish_dead(
    shared: &Shared,
    name: &str,
    call: &QueuedCall,
    mut record: CallRecord,
    message: &jetstream::Message,
    answer: Option<(http::HeaderMap, Bytes, Duration)>,
) {
    match shared.queue.dead_letter(call, &record).await {
        Ok(sequence) => record.dead_sequence = Some(sequence),
        Err(e) => {
            tracing::warn!(call = %call.call_id, error = %e, "cannot write the dead letter; the call stays queued");
            let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
            return;
        }
    }
    record.state = CallState::Dead;
    record.finished_ms = Some(now_ms());
    shared.proxy.metrics.count_async(name, AsyncEvent::DeadLettered);
    let (headers, body, duration) = answer.unwrap_or_default();
    post_callback(shared, name, call, &mut record, &headers, body, duration).await;
    if let Err(e) = shared.queue.put_record(&record).await {
        tracing::warn!(call = %call.call_id, error = %e, "the dead call's record was not written");
    }
    let _ = message.ack().await;
}

/// Posts the call's result to its callback, if it has one, and notes how that went in its record.
async fn post_callback(
    shared: &Shared,
    name: &str,
    call: &QueuedCall,
    record: &mut CallRecord,
    headers: &http::HeaderMap,
    body: Bytes,
    duration: Duration,
) {
    let Some(url) = &call.callback_url else { return };
    let outcome = callback::Result {
        call_id: &call.call_id,
        function: name,
        status: record.status.unwrap_or(502),
        headers,
        body,
        duration,
        attempt: record.attempts,
        max_attempts: record.max_attempts,
    };
    let (how, delivered) = shared.callbacks.deliver(url, &outcome).await;
    if !delivered {
        shared.proxy.metrics.count_async(name, AsyncEvent::CallbackFailed);
        tracing::warn!(function = name, call = %call.call_id, callback = %how, "callback given up");
    }
    record.callback = Some(how);
}

/// One attempt: the status, headers and (bounded) body, or why there was no answer.
async fn invoke(
    shared: &Shared,
    name: &str,
    call: &QueuedCall,
    attempt: u32,
    policy: AsyncPolicy,
    timeout: Duration,
) -> Result<(u16, http::HeaderMap, Bytes), String> {
    let mut request = http::Request::builder()
        .method(call.method.as_str())
        .uri(format!("/function/{name}{}", call.path));
    if let Some(headers) = request.headers_mut() {
        for (key, value) in &call.headers {
            if let (Ok(key), Ok(value)) = (
                http::HeaderName::from_bytes(key.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                headers.append(key, value);
            }
        }
        let mut set = |key: &'static str, value: String| {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(key, value);
            }
        };
        set(h::CALL_ID, call.call_id.clone());
        set(h::ATTEMPT, attempt.to_string());
        set(h::MAX_ATTEMPTS, policy.max_attempts.to_string());
        set(h::TRIGGER, call.trigger.clone());
    }
    let (parts, ()) = request
        .body(())
        .map_err(|e| format!("the stored call is not a valid request: {e}"))?
        .into_parts();
    let bound = timeout + crate::TIMEOUT_MARGIN;
    let work = async {
        let response = shared.proxy.call(name, &parts, &call.body, &call.path).await;
        let (head, body) = response.into_parts();
        (head.status.as_u16(), head.headers, read_bounded(body).await)
    };
    tokio::time::timeout(bound, work).await.map_err(|_| {
        format!(
            "no answer within {} (the function's timeout plus the platform's margin)",
            fjord_core::duration::format_duration(bound)
        )
    })
}

/// The response body, up to [`CALLBACK_BODY_LIMIT`] (empty if longer or broken). Read frame by
/// frame: the combinators over a boxed error make a spawned future's lifetimes unprovable.
async fn read_bounded(mut body: fjord_daemon::HttpBody) -> Bytes {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Bytes::new();
        };
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > CALLBACK_BODY_LIMIT {
                return Bytes::new();
            }
            out.extend_from_slice(&data);
        }
    }
    out.freeze()
}
