//! The queue client: one connection to NATS, the streams created if missing, and every
//! operation on calls the lb and the control plane make.

use crate::call::{CallRecord, CallState};
use crate::contract::{self, message};
use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Calls waiting at most, over all functions; an enqueue beyond it is refused (503), never
/// stored in part.
pub const MAX_QUEUED_CALLS: i64 = 1_000_000;
pub const MAX_QUEUED_BYTES: i64 = 4 * 1024 * 1024 * 1024;
/// A second enqueue with the same call id within this window is stored once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// How long dead letters and call records are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 86_400);
/// A JetStream request (a publish's acknowledgement, a lookup) waits at most this long: an
/// unreachable queue is reported in seconds, not at the caller's timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot reach the queue (NATS at {urls}): {reason}")]
    Unreachable { urls: String, reason: String },
    #[error("the queue refused the call: {0}")]
    Refused(String),
    #[error("the queue did not answer: {0}")]
    Failed(String),
    #[error("no call {id:?} is known (records are kept 7 days)")]
    NoSuchCall { id: String },
    #[error("call {id} is {state}; {what}")]
    WrongState { id: String, state: CallState, what: String },
    #[error("{0}")]
    Config(String),
}

fn failed(e: impl std::fmt::Display) -> QueueError {
    QueueError::Failed(e.to_string())
}

/// How to reach the queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub urls: Vec<String>,
    pub token: Option<String>,
    /// Replicas of the streams this client creates.
    pub replicas: usize,
}

impl QueueConfig {
    /// From the daemons' `--nats-*` flags; `None` when no URL is given (the queue is off).
    pub fn from_flags(
        urls: &[String],
        token_file: Option<&Path>,
        replicas: u8,
    ) -> Result<Option<QueueConfig>, QueueError> {
        if urls.is_empty() {
            return Ok(None);
        }
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| QueueError::Config(format!("reading --nats-token-file {}: {e}", path.display())))?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    return Err(QueueError::Config(format!(
                        "--nats-token-file {} is empty",
                        path.display()
                    )));
                }
                Some(token)
            }
            None => None,
        };
        Ok(Some(QueueConfig {
            urls: urls.to_vec(),
            token,
            replicas: usize::from(replicas.max(1)),
        }))
    }
}

/// A stored call: `duplicate` when the same call id was enqueued within the window before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub sequence: u64,
    pub duplicate: bool,
}

/// A queued call: what the lb stores at enqueue and a worker receives.
#[derive(Debug, Clone)]
pub struct QueuedCall {
    pub function: String,
    pub call_id: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub callback_url: Option<String>,
    pub trigger: String,
    pub enqueued_ms: u64,
}

impl QueuedCall {
    /// Reads a stored message; `None` if it lacks Fjord's headers (not written by Fjord).
    pub fn from_message(function: &str, headers: Option<&HeaderMap>, body: Bytes) -> Option<QueuedCall> {
        let headers = headers?;
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
        let mut passed = Vec::new();
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            if let Some(original) = name.strip_prefix(message::REQUEST_HEADER_PREFIX) {
                for value in values {
                    passed.push((original.to_string(), value.as_str().to_string()));
                }
            }
        }
        Some(QueuedCall {
            function: function.to_string(),
            call_id: get(message::CALL_ID)?,
            method: get(message::METHOD).unwrap_or_else(|| "POST".into()),
            path: get(message::PATH).unwrap_or_else(|| "/".into()),
            headers: passed,
            body,
            callback_url: get(message::CALLBACK_URL).filter(|u| !u.is_empty()),
            trigger: get(message::TRIGGER).unwrap_or_else(|| contract::TRIGGER_HTTP.into()),
            enqueued_ms: get(message::ENQUEUED_MS).and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }

    fn to_headers(&self, dedup: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", dedup);
        headers.insert(message::CALL_ID, self.call_id.as_str());
        headers.insert(message::METHOD, self.method.as_str());
        headers.insert(message::PATH, self.path.as_str());
        headers.insert(message::TRIGGER, self.trigger.as_str());
        headers.insert(message::ENQUEUED_MS, self.enqueued_ms.to_string().as_str());
        if let Some(url) = &self.callback_url {
            headers.insert(message::CALLBACK_URL, url.as_str());
        }
        for (name, value) in &self.headers {
            headers.append(
                format!("{}{name}", message::REQUEST_HEADER_PREFIX).as_str(),
                value.as_str(),
            );
        }
        headers
    }
}

/// A call's record as stored, with its stream sequence (what a conditional write names).
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub record: CallRecord,
    pub sequence: u64,
}

/// Work waiting for one function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Not yet delivered (first attempts and retries waiting for their time).
    pub queued: u64,
    /// Delivered to a worker and not yet acknowledged.
    pub in_flight: u64,
    /// Age of the oldest call not yet acknowledged.
    pub oldest_age: Option<Duration>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct Queue {
    js: jetstream::Context,
    calls: stream::Stream,
    dead: stream::Stream,
    records: stream::Stream,
    replicas: usize,
}

impl Queue {
    /// Connects and creates the streams and the record bucket if they do not exist.
    pub async fn connect(config: &QueueConfig) -> Result<Queue, QueueError> {
        let urls = config.urls.join(",");
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(REQUEST_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .name("fjord");
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        let client = options
            .connect(config.urls.as_slice())
            .await
            .map_err(|e| QueueError::Unreachable {
                urls: urls.clone(),
                reason: e.to_string(),
            })?;
        let mut js = jetstream::new(client);
        js.set_timeout(REQUEST_TIMEOUT);
        let unreachable = |e: &dyn std::fmt::Display| QueueError::Unreachable {
            urls: urls.clone(),
            reason: e.to_string(),
        };
        let calls_config = stream::Config {
            name: contract::CALLS_STREAM.into(),
            subjects: vec![contract::call_subject("*")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            max_messages: MAX_QUEUED_CALLS,
            max_bytes: MAX_QUEUED_BYTES,
            discard: stream::DiscardPolicy::New,
            duplicate_window: DUPLICATE_WINDOW,
            // The oldest call's age is read with a direct get.
            allow_direct: true,
            ..Default::default()
        };
        let mut calls = js
            .get_or_create_stream(calls_config.clone())
            .await
            .map_err(|e| unreachable(&e))?;
        if !calls.cached_info().config.allow_direct {
            // Made by an earlier version: the one setting it lacks is added in place.
            js.update_stream(&calls_config).await.map_err(|e| unreachable(&e))?;
            calls = js
                .get_stream(contract::CALLS_STREAM)
                .await
                .map_err(|e| unreachable(&e))?;
        }
        let dead = js
            .get_or_create_stream(stream::Config {
                name: contract::DEAD_STREAM.into(),
                subjects: vec![contract::dead_subject("*")],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                num_replicas: config.replicas,
                max_age: RETENTION,
                max_bytes: MAX_QUEUED_BYTES,
                discard: stream::DiscardPolicy::Old,
                ..Default::default()
            })
            .await
            .map_err(|e| unreachable(&e))?;
        let records = js
            .get_or_create_stream(stream::Config {
                name: contract::RECORDS_STREAM.into(),
                subjects: vec![contract::record_subject("*", "*")],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                num_replicas: config.replicas,
                max_messages_per_subject: 1,
                max_age: RETENTION,
                max_bytes: 1024 * 1024 * 1024,
                discard: stream::DiscardPolicy::Old,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| unreachable(&e))?;
        Ok(Queue {
            js,
            calls,
            dead,
            records,
            replicas: config.replicas,
        })
    }

    /// Stores a call (its `enqueued_ms` set now) and its record. `Ok` means JetStream
    /// acknowledged the call: it is on disk and will be delivered.
    ///
    /// The record is written first, and only where the id has none: a worker that takes the call
    /// the moment it is stored finds it queued (never a record the enqueue then overwrites), and a
    /// duplicate never overwrites the first call's record.
    pub async fn enqueue(&self, mut call: QueuedCall, max_attempts: u32) -> Result<Enqueued, QueueError> {
        call.enqueued_ms = now_ms();
        let mut record = CallRecord::queued(
            &call.call_id,
            &call.function,
            max_attempts,
            &call.trigger,
            call.enqueued_ms,
        );
        record.callback_url = call.callback_url.clone();
        let created = self.put_record_if(&record, 0).await?;
        let headers = call.to_headers(&contract::dedup_id(&call.function, &call.call_id));
        let ack = match self
            .publish(contract::call_subject(&call.function), headers, call.body.clone())
            .await
        {
            Ok(ack) => ack,
            Err(e) => {
                if created {
                    // No call behind it. Were the call stored after all (its acknowledgement
                    // lost), its worker writes the record afresh.
                    let _ = self
                        .records
                        .purge()
                        .filter(contract::record_subject(&call.function, &call.call_id))
                        .await;
                }
                return Err(e);
            }
        };
        if !ack.duplicate && !created {
            // The id was used before, longer ago than the duplicate window: that call's record
            // gives way to this one's, unless this call's worker has written it already.
            if let Ok(Some(stored)) = self.stored_record(&call.function, &call.call_id).await {
                if stored.record.enqueued_ms != call.enqueued_ms {
                    let _ = self.put_record_if(&record, stored.sequence).await;
                }
            }
        }
        Ok(Enqueued {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Publishes to a stream and waits for its acknowledgement; a stream at its limits is
    /// reported as `Refused` (the queue is full), anything else as `Failed`.
    async fn publish(
        &self,
        subject: String,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<jetstream::publish::PublishAck, QueueError> {
        self.js
            .publish_with_headers(subject, headers, body)
            .await
            .map_err(failed)?
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("maximum") || text.contains("resource limits") || text.contains("insufficient") {
                    QueueError::Refused(format!("the queue is full ({text})"))
                } else {
                    QueueError::Failed(text)
                }
            })
    }

    pub async fn put_record(&self, record: &CallRecord) -> Result<(), QueueError> {
        let value = serde_json::to_vec(record).expect("a record serializes");
        self.js
            .publish(contract::record_subject(&record.function, &record.id), value.into())
            .await
            .map_err(failed)?
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// Writes `record` only if the last record stored for its call is still the one at stream
    /// sequence `expected` (0: none yet). `Ok(false)` when another writer came first.
    pub async fn put_record_if(&self, record: &CallRecord, expected: u64) -> Result<bool, QueueError> {
        use async_nats::jetstream::context::PublishErrorKind;
        let value = serde_json::to_vec(record).expect("a record serializes");
        let message = jetstream::message::PublishMessage::build()
            .payload(value.into())
            .expected_last_subject_sequence(expected);
        let ack = self
            .js
            .send_publish(contract::record_subject(&record.function, &record.id), message)
            .await
            .map_err(failed)?;
        match ack.await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
            Err(e) => Err(failed(e)),
        }
    }

    async fn last_record(&self, subject: &str) -> Result<Option<StoredRecord>, QueueError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match self.records.get_last_raw_message_by_subject(subject).await {
            Ok(message) => Ok(serde_json::from_slice(&message.payload)
                .ok()
                .map(|record| StoredRecord {
                    record,
                    sequence: message.sequence,
                })),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    /// The record of a call, by function and id.
    pub async fn record(&self, function: &str, id: &str) -> Result<Option<CallRecord>, QueueError> {
        Ok(self.stored_record(function, id).await?.map(|s| s.record))
    }

    /// The record of a call with its place in the stream, for [`Queue::put_record_if`].
    pub async fn stored_record(&self, function: &str, id: &str) -> Result<Option<StoredRecord>, QueueError> {
        self.last_record(&contract::record_subject(function, id)).await
    }

    /// The record of a call by its id alone (the function it belongs to is found by subject).
    pub async fn find(&self, id: &str) -> Result<CallRecord, QueueError> {
        Ok(self.find_stored(id).await?.record)
    }

    async fn find_stored(&self, id: &str) -> Result<StoredRecord, QueueError> {
        let not_found = || QueueError::NoSuchCall { id: id.to_string() };
        if contract::check_call_id(id).is_err() {
            return Err(not_found());
        }
        self.last_record(&contract::record_subject("*", id))
            .await?
            .ok_or_else(not_found)
    }

    /// The most recent calls of a function (newest first), at most `limit`, optionally in one
    /// state.
    pub async fn list(
        &self,
        function: &str,
        state: Option<CallState>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, QueueError> {
        let mut consumer: consumer::PullConsumer = self
            .records
            .create_consumer(consumer::pull::Config {
                filter_subject: contract::record_subject(function, "*"),
                deliver_policy: consumer::DeliverPolicy::LastPerSubject,
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(failed)?;
        let mut remaining = consumer.info().await.map_err(failed)?.num_pending;
        let mut records = Vec::new();
        if remaining > 0 {
            let mut messages = consumer.messages().await.map_err(failed)?;
            while remaining > 0 {
                let Ok(Some(message)) = tokio::time::timeout(REQUEST_TIMEOUT, messages.next()).await else {
                    break;
                };
                let message = message.map_err(failed)?;
                remaining = message.info().map(|i| i.pending).unwrap_or(0);
                if let Ok(record) = serde_json::from_slice::<CallRecord>(&message.payload) {
                    if state.is_none_or(|s| s == record.state) {
                        records.push(record);
                    }
                }
            }
        }
        let name = consumer.cached_info().name.clone();
        let _ = self.records.delete_consumer(&name).await;
        records.sort_by(|a, b| b.enqueued_ms.cmp(&a.enqueued_ms).then_with(|| a.id.cmp(&b.id)));
        records.truncate(limit);
        Ok(records)
    }

    /// The consumer delivering `function`'s calls: created, or updated when its concurrency or
    /// acknowledgement wait changed.
    pub async fn consumer(
        &self,
        function: &str,
        concurrency: u32,
        ack_wait: Duration,
    ) -> Result<consumer::PullConsumer, QueueError> {
        let config = consumer::pull::Config {
            durable_name: Some(contract::consumer_name(function)),
            filter_subject: contract::call_subject(function),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait,
            max_deliver: -1,
            max_ack_pending: i64::from(concurrency.max(1)),
            num_replicas: self.replicas,
            ..Default::default()
        };
        self.calls.create_consumer(config).await.map_err(failed)
    }

    /// Moves a call to the dead letters, returning its sequence there.
    pub async fn dead_letter(&self, call: &QueuedCall, record: &CallRecord) -> Result<u64, QueueError> {
        let mut headers = call.to_headers(&format!("dead.{}.{}.{}", call.function, call.call_id, now_ms()));
        headers.insert(message::ATTEMPTS, record.attempts.to_string().as_str());
        if let Some(status) = record.status {
            headers.insert(message::LAST_STATUS, status.to_string().as_str());
        }
        if let Some(error) = &record.error {
            let clean: String = error.chars().filter(|c| !c.is_control()).take(1000).collect();
            headers.insert(message::LAST_ERROR, clean.as_str());
        }
        let ack = self
            .publish(contract::dead_subject(&call.function), headers, call.body.clone())
            .await?;
        Ok(ack.sequence)
    }

    /// Enqueues a dead call again as a new first attempt; its record says queued. The record is
    /// written before the call, so the worker that takes it finds it queued.
    pub async fn redrive(&self, id: &str) -> Result<CallRecord, QueueError> {
        let stored = self.find_stored(id).await?;
        let mut record = stored.record.clone();
        let Some(sequence) = record.dead_sequence.filter(|_| record.state == CallState::Dead) else {
            return Err(QueueError::WrongState {
                id: id.to_string(),
                state: record.state,
                what: "only a dead call can be retried".into(),
            });
        };
        let message = self.dead.get_raw_message(sequence).await.map_err(|e| {
            QueueError::Failed(format!("the dead letter of call {id} is gone ({e}); it is kept 7 days"))
        })?;
        let mut call = QueuedCall::from_message(&record.function, Some(&message.headers), message.payload)
            .ok_or_else(|| QueueError::Failed(format!("the dead letter of call {id} is not readable")))?;
        call.enqueued_ms = now_ms();
        record.state = CallState::Queued;
        record.attempts = 0;
        record.enqueued_ms = call.enqueued_ms;
        record.started_ms = None;
        record.finished_ms = None;
        record.next_attempt_ms = None;
        record.status = None;
        record.error = None;
        record.dead_sequence = None;
        record.callback = None;
        if !self.put_record_if(&record, stored.sequence).await? {
            return Err(QueueError::Failed(format!(
                "call {id} changed while it was being retried; look at it again (fjord calls show {id})"
            )));
        }
        let headers = call.to_headers(&format!("{}.{}.redrive.{}", call.function, id, now_ms()));
        if let Err(e) = self
            .publish(contract::call_subject(&call.function), headers, call.body.clone())
            .await
        {
            // Not enqueued: the record says dead again, its dead letter untouched.
            let _ = self.put_record(&stored.record).await;
            return Err(e);
        }
        let _ = self.dead.delete_message(sequence).await;
        Ok(record)
    }

    /// Cancels a call that has not started: its worker drops it unrun. The write names the
    /// record it read, so a call whose worker has just started it is never reported cancelled.
    pub async fn cancel(&self, id: &str) -> Result<CallRecord, QueueError> {
        for _ in 0..3 {
            let stored = self.find_stored(id).await?;
            let mut record = stored.record;
            if record.state != CallState::Queued {
                return Err(QueueError::WrongState {
                    id: id.to_string(),
                    state: record.state,
                    what: "only a queued call can be cancelled".into(),
                });
            }
            record.state = CallState::Cancelled;
            record.finished_ms = Some(now_ms());
            if self.put_record_if(&record, stored.sequence).await? {
                return Ok(record);
            }
        }
        Err(QueueError::Failed(format!(
            "call {id} kept changing while it was being cancelled; look at it again (fjord calls show {id})"
        )))
    }

    /// Queued and in-flight calls of a function, and the age of the oldest.
    pub async fn depth(&self, function: &str) -> Result<Depth, QueueError> {
        let mut consumer: consumer::PullConsumer =
            match self.calls.get_consumer(&contract::consumer_name(function)).await {
                Ok(consumer) => consumer,
                Err(_) => return self.depth_without_consumer(function).await,
            };
        let info = consumer.info().await.map_err(failed)?;
        let (queued, in_flight) = (info.num_pending, info.num_ack_pending as u64);
        let oldest_age = if queued + in_flight == 0 {
            None
        } else {
            self.oldest_age(function, info.ack_floor.stream_sequence + 1).await
        };
        Ok(Depth {
            queued,
            in_flight,
            oldest_age,
        })
    }

    async fn depth_without_consumer(&self, function: &str) -> Result<Depth, QueueError> {
        let count = self
            .calls
            .info_with_subjects(contract::call_subject(function))
            .await
            .map_err(failed)?
            .next()
            .await
            .and_then(|r| r.ok())
            .map(|(_, n)| n as u64)
            .unwrap_or(0);
        let oldest_age = if count == 0 {
            None
        } else {
            self.oldest_age(function, 1).await
        };
        Ok(Depth {
            queued: count,
            in_flight: 0,
            oldest_age,
        })
    }

    async fn oldest_age(&self, function: &str, from_sequence: u64) -> Option<Duration> {
        let message = self
            .calls
            .direct_get_next_for_subject(contract::call_subject(function), Some(from_sequence))
            .await
            .ok()?;
        let enqueued = message
            .headers
            .get(message::ENQUEUED_MS)
            .and_then(|v| v.as_str().parse::<u64>().ok())?;
        Some(Duration::from_millis(now_ms().saturating_sub(enqueued)))
    }
}
