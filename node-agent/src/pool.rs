//! The instance pool: per function, the instances on this node and who is using them.
//!
//! A request *leases* an instance: a ready instance of the function's current revision with
//! fewer requests in flight than the spec's `concurrency`. With none free, the pool starts one if
//! the function is under `max` and the node has memory for it; the request that caused the start
//! gets it first. Otherwise the request waits, bounded in count and time, for a lease to come
//! back. A node with no instance of the function and no room answers busy at once, so the lb
//! tries the next node.
//!
//! Locks are per function; nothing on the invoke path takes a lock shared across functions
//! except the brief memory reservation when an instance starts or stops.

use crate::logs::LogStore;
use crate::runtime::{ExitReason, ImageStatus, Instance, Runtime, RuntimeError, StartRequest};
use fjord_core::node::FunctionLoad;
use fjord_core::spec::KeepAlive;
use fjord_core::{FunctionRecord, NodeLoad};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Requests that may wait per function on one node before it answers busy.
pub const MAX_WAITING_PER_FUNCTION: u32 = 1_000;
/// How long an unknown function is waited for (a deploy the lb saw before this agent did).
const UNKNOWN_FUNCTION_GRACE: Duration = Duration::from_secs(3);
/// How long a stopping instance gets between the polite and the forced signal.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long an agent that is stopping waits for the instance starts in flight to end.
const STARTS_SETTLE_WITHIN: Duration = Duration::from_secs(20);
/// How long an instance of a `keep_alive: adaptive` function stays idle on a node where none is
/// placed: the leader's keep-alive gives the function back by placing none, and this only covers
/// the time its decision takes to reach the node.
pub const ADAPTIVE_UNPLACED_IDLE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error("function {0:?} is not deployed on this node")]
    UnknownFunction(String),
    #[error("node is busy: {0}")]
    Busy(String),
    #[error("no instance of function {function:?} became free within {waited:?}")]
    Timeout { function: String, waited: Duration },
    #[error("could not start an instance: {0}")]
    StartFailed(#[from] RuntimeError),
}

struct Slot {
    instance: Arc<dyn Instance>,
    revision: u64,
    memory_mib: u32,
    in_flight: AtomicU32,
    last_used: Mutex<Instant>,
    retired: AtomicBool,
}

#[derive(Default)]
struct FunctionState {
    record: Option<FunctionRecord>,
    /// Instances the scheduler placed on this node: kept warm, started ahead of traffic.
    placed: u32,
    instances: Vec<Arc<Slot>>,
    starting: u32,
    waiting: u32,
}

struct FunctionPool {
    name: String,
    /// Requests admitted (each `acquire`), reported in heartbeats.
    calls: AtomicU64,
    state: Mutex<FunctionState>,
    changed: Notify,
}

/// A request's hold on an instance; dropping it gives the instance back.
pub struct Lease {
    slot: Arc<Slot>,
    function: Arc<FunctionPool>,
    pool: Arc<InstancePool>,
    pub record: FunctionRecord,
    /// Whether the instance was started for this request (a cold start).
    pub cold: bool,
}

impl Lease {
    pub fn instance(&self) -> &Arc<dyn Instance> {
        &self.slot.instance
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        *self.slot.last_used.lock().expect("slot lock poisoned") = Instant::now();
        let left = self.slot.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 {
            let outdated = {
                let state = self.function.state.lock().expect("function lock poisoned");
                state.record.as_ref().is_none_or(|r| r.revision != self.slot.revision)
            };
            if outdated {
                self.pool
                    .retire(&self.function, &self.slot, "its function was redeployed or removed");
            }
        }
        self.function.changed.notify_waiters();
    }
}

pub struct InstancePool {
    runtime: Arc<dyn Runtime>,
    pub logs: Arc<LogStore>,
    memory_capacity_mib: u32,
    memory_reserved_mib: Mutex<u32>,
    functions: RwLock<HashMap<String, Arc<FunctionPool>>>,
    assignments: watch::Sender<u64>,
    next_instance: AtomicU64,
    node_id: String,
    /// The node is draining: idle instances beyond the placed ones stop at once.
    draining: AtomicBool,
    /// The agent is stopping: no instance starts, and one that finishes starting is stopped.
    closing: AtomicBool,
}

enum Next {
    Start(Box<FunctionRecord>),
    Wait,
}

impl InstancePool {
    pub fn new(runtime: Arc<dyn Runtime>, node_id: &str, memory_capacity_mib: u32) -> Arc<Self> {
        Arc::new(InstancePool {
            runtime,
            logs: Arc::new(LogStore::default()),
            memory_capacity_mib,
            memory_reserved_mib: Mutex::new(0),
            functions: RwLock::new(HashMap::new()),
            assignments: watch::channel(0).0,
            next_instance: AtomicU64::new(1),
            node_id: node_id.to_string(),
            draining: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        })
    }

    /// The runtime instances start in (for image resolution and pull status).
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    pub fn runtime_name(&self) -> &'static str {
        self.runtime.name()
    }

    fn all_functions(&self) -> Vec<Arc<FunctionPool>> {
        self.functions
            .read()
            .expect("pool lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    fn function(&self, name: &str) -> Option<Arc<FunctionPool>> {
        self.functions.read().expect("pool lock poisoned").get(name).cloned()
    }

    fn reserve_memory(&self, mib: u32) -> bool {
        let mut reserved = self.memory_reserved_mib.lock().expect("memory lock poisoned");
        if *reserved + mib > self.memory_capacity_mib {
            return false;
        }
        *reserved += mib;
        true
    }

    fn release_memory(&self, mib: u32) {
        let mut reserved = self.memory_reserved_mib.lock().expect("memory lock poisoned");
        *reserved = reserved.saturating_sub(mib);
    }

    /// The current record of `name`, if this node knows the function.
    pub fn record(&self, name: &str) -> Option<FunctionRecord> {
        self.function(name)?
            .state
            .lock()
            .expect("function lock poisoned")
            .record
            .clone()
    }

    /// Replaces the set of functions this node may run, with the instances placed here per
    /// function. Instances of removed functions and of older revisions stop once their
    /// in-flight requests finish.
    pub fn set_assignments(
        self: &Arc<Self>,
        records: Vec<FunctionRecord>,
        placed: &HashMap<String, u32>,
        draining: bool,
    ) {
        self.draining.store(draining, Ordering::Release);
        let mut functions = self.functions.write().expect("pool lock poisoned");
        let mut seen = std::collections::HashSet::new();
        for record in records {
            seen.insert(record.spec.name.clone());
            let pool = functions
                .entry(record.spec.name.clone())
                .or_insert_with(|| {
                    Arc::new(FunctionPool {
                        name: record.spec.name.clone(),
                        calls: AtomicU64::new(0),
                        state: Default::default(),
                        changed: Notify::new(),
                    })
                })
                .clone();
            {
                let mut state = pool.state.lock().expect("function lock poisoned");
                state.placed = placed.get(&record.spec.name).copied().unwrap_or(0);
                let (name, revision) = (record.spec.name.clone(), record.revision);
                if state
                    .record
                    .replace(record)
                    .is_some_and(|previous| previous.revision != revision)
                {
                    // A redeploy: containers prepared for the old revision are of no use.
                    self.runtime.function_changed(&name);
                }
            }
            self.retire_outdated(&pool);
            pool.changed.notify_waiters();
        }
        for (name, pool) in functions.iter() {
            if !seen.contains(name) {
                let mut state = pool.state.lock().expect("function lock poisoned");
                let removed = state.record.take().is_some();
                state.placed = 0;
                drop(state);
                if removed {
                    self.runtime.function_changed(name);
                }
                self.retire_outdated(pool);
                pool.changed.notify_waiters();
            }
        }
        drop(functions);
        self.assignments.send_modify(|v| *v += 1);
    }

    fn retire_outdated(self: &Arc<Self>, function: &Arc<FunctionPool>) {
        let idle_outdated: Vec<Arc<Slot>> = {
            let state = function.state.lock().expect("function lock poisoned");
            let current = state.record.as_ref().map(|r| r.revision);
            state
                .instances
                .iter()
                .filter(|s| Some(s.revision) != current && s.in_flight.load(Ordering::Acquire) == 0)
                .cloned()
                .collect()
        };
        for slot in idle_outdated {
            self.retire(function, &slot, "its function was redeployed or removed");
        }
    }

    /// Takes `slot` out of service and stops it in the background.
    fn retire(self: &Arc<Self>, function: &Arc<FunctionPool>, slot: &Arc<Slot>, why: &str) {
        if slot.retired.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let mut state = function.state.lock().expect("function lock poisoned");
            state.instances.retain(|s| !Arc::ptr_eq(s, slot));
        }
        self.release_memory(slot.memory_mib);
        self.logs.push(
            &function.name,
            slot.instance.id(),
            "platform",
            &format!("instance stopping: {why}"),
        );
        let slot = slot.clone();
        tokio::spawn(async move { slot.instance.stop(STOP_GRACE).await });
    }

    /// Leases an instance of `name`, starting one if needed, waiting at most until `deadline`.
    pub async fn acquire(self: &Arc<Self>, name: &str, deadline: Instant) -> Result<Lease, AcquireError> {
        let function = match self.function(name) {
            Some(f) => f,
            None => self.wait_for_function(name, deadline).await?,
        };
        if self.closing.load(Ordering::Acquire) {
            return Err(AcquireError::Busy("the agent is stopping".into()));
        }
        function.calls.fetch_add(1, Ordering::Relaxed);
        let mut counted_waiting = false;
        loop {
            let notified = function.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let mut state = function.state.lock().expect("function lock poisoned");
                let Some(record) = state.record.clone() else {
                    if counted_waiting {
                        state.waiting -= 1;
                    }
                    return Err(AcquireError::UnknownFunction(name.to_string()));
                };
                let concurrency = record.spec.concurrency;
                // Most recently used first: keeps a few instances hot and lets the rest go idle.
                // An instance that died a moment ago is skipped: its watcher is about to remove it.
                let free = state
                    .instances
                    .iter()
                    .filter(|s| {
                        s.revision == record.revision
                            && s.in_flight.load(Ordering::Acquire) < concurrency
                            && s.instance.exit_reason().is_none()
                    })
                    .max_by_key(|s| *s.last_used.lock().expect("slot lock poisoned"))
                    .cloned();
                if let Some(slot) = free {
                    slot.in_flight.fetch_add(1, Ordering::AcqRel);
                    if counted_waiting {
                        state.waiting -= 1;
                    }
                    drop(state);
                    return Ok(Lease {
                        slot,
                        function: function.clone(),
                        pool: self.clone(),
                        record,
                        cold: false,
                    });
                }
                let live =
                    state.instances.iter().filter(|s| s.revision == record.revision).count() as u32 + state.starting;
                if live < record.spec.max && self.reserve_memory(record.spec.memory_mib) {
                    state.starting += 1;
                    if counted_waiting {
                        state.waiting -= 1;
                        counted_waiting = false;
                    }
                    Next::Start(Box::new(record))
                } else if live == 0 {
                    if counted_waiting {
                        state.waiting -= 1;
                    }
                    return Err(AcquireError::Busy(format!(
                        "no memory for an instance of {name:?} ({} MiB needed)",
                        record.spec.memory_mib
                    )));
                } else {
                    if !counted_waiting {
                        if state.waiting >= MAX_WAITING_PER_FUNCTION {
                            return Err(AcquireError::Busy(format!(
                                "{} requests already wait for {name:?}",
                                state.waiting
                            )));
                        }
                        state.waiting += 1;
                        counted_waiting = true;
                    }
                    Next::Wait
                }
            };
            match next {
                Next::Start(record) => return self.start_instance(&function, *record).await,
                Next::Wait => {
                    if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                        let mut state = function.state.lock().expect("function lock poisoned");
                        state.waiting -= 1;
                        return Err(AcquireError::Timeout {
                            function: name.to_string(),
                            waited: deadline.saturating_duration_since(Instant::now()),
                        });
                    }
                }
            }
        }
    }

    async fn wait_for_function(&self, name: &str, deadline: Instant) -> Result<Arc<FunctionPool>, AcquireError> {
        let until = deadline.min(Instant::now() + UNKNOWN_FUNCTION_GRACE);
        let mut assignments = self.assignments.subscribe();
        loop {
            if let Some(f) = self.function(name) {
                return Ok(f);
            }
            if tokio::time::timeout_at(until.into(), assignments.changed())
                .await
                .is_err()
            {
                return Err(AcquireError::UnknownFunction(name.to_string()));
            }
        }
    }

    async fn start_instance(
        self: &Arc<Self>,
        function: &Arc<FunctionPool>,
        record: FunctionRecord,
    ) -> Result<Lease, AcquireError> {
        let n = self.next_instance.fetch_add(1, Ordering::Relaxed);
        let instance_id = format!("{}-{}-{n}", record.spec.name, self.node_id);
        self.logs.push(
            &record.spec.name,
            &instance_id,
            "platform",
            &format!("starting instance (revision {})", record.revision),
        );
        let started = Instant::now();
        let result = self
            .runtime
            .start(StartRequest {
                spec: &record.spec,
                instance_id: instance_id.clone(),
                logs: self.logs.clone(),
                ready_within: record.spec.timeout.max(Duration::from_secs(10)),
            })
            .await;
        let result = match result {
            Ok(instance) if self.closing.load(Ordering::Acquire) => {
                instance.stop(STOP_GRACE).await;
                Err(AcquireError::Busy("the agent is stopping".into()))
            }
            Ok(instance) => Ok(instance),
            Err(e) => Err(e.into()),
        };
        if let Ok(instance) = &result {
            // A runtime may serve the start with an instance it prepared under its own id.
            self.logs
                .rename_instance(&record.spec.name, &instance_id, instance.id());
        }
        let mut state = function.state.lock().expect("function lock poisoned");
        state.starting -= 1;
        match result {
            Ok(instance) => {
                let served_by = instance.id().to_string();
                let slot = Arc::new(Slot {
                    instance,
                    revision: record.revision,
                    memory_mib: record.spec.memory_mib,
                    in_flight: AtomicU32::new(1),
                    last_used: Mutex::new(Instant::now()),
                    retired: AtomicBool::new(false),
                });
                state.instances.push(slot.clone());
                drop(state);
                self.logs.push(
                    &record.spec.name,
                    &served_by,
                    "platform",
                    &format!("instance ready in {} ms", started.elapsed().as_millis()),
                );
                self.watch_exit(function.clone(), slot.clone());
                function.changed.notify_waiters();
                Ok(Lease {
                    slot,
                    function: function.clone(),
                    pool: self.clone(),
                    record,
                    cold: true,
                })
            }
            Err(e) => {
                drop(state);
                self.release_memory(record.spec.memory_mib);
                self.logs.push(
                    &record.spec.name,
                    &instance_id,
                    "platform",
                    &format!("instance failed to start: {e}"),
                );
                self.logs.instance_ended(&record.spec.name, &instance_id);
                function.changed.notify_waiters();
                Err(e)
            }
        }
    }

    /// Removes an instance from the pool the moment it dies, whatever killed it.
    fn watch_exit(self: &Arc<Self>, function: Arc<FunctionPool>, slot: Arc<Slot>) {
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let reason = slot.instance.wait_exit().await;
            let Some(pool) = pool.upgrade() else { return };
            if reason != ExitReason::Stopped {
                pool.logs.push(
                    &function.name,
                    slot.instance.id(),
                    "platform",
                    &format!("instance {reason}"),
                );
                if !slot.retired.swap(true, Ordering::AcqRel) {
                    function
                        .state
                        .lock()
                        .expect("function lock poisoned")
                        .instances
                        .retain(|s| !Arc::ptr_eq(s, &slot));
                    pool.release_memory(slot.memory_mib);
                }
                function.changed.notify_waiters();
            }
            pool.logs.instance_ended(&function.name, slot.instance.id());
        });
    }

    /// Stops instances idle past their function's `scale_to_zero_after` (at once on a
    /// draining node; after [`ADAPTIVE_UNPLACED_IDLE`] for a `keep_alive: adaptive` function
    /// with no instance placed here), keeping the placed ones, and starts instances up to the
    /// placed count (prewarm).
    pub fn reap_and_prewarm(self: &Arc<Self>) {
        self.forget_removed_functions();
        let draining = self.draining.load(Ordering::Acquire);
        let functions = self.all_functions();
        for function in functions {
            let (idle, missing) = {
                let state = function.state.lock().expect("function lock poisoned");
                let Some(record) = state.record.as_ref() else { continue };
                let current: Vec<&Arc<Slot>> = state
                    .instances
                    .iter()
                    .filter(|s| s.revision == record.revision)
                    .collect();
                // An adaptive function with nothing placed here was given back by the leader's
                // keep-alive (or lives elsewhere): its idle instances go soon. Otherwise the
                // instances beyond the placed ones wait out scale_to_zero_after, whatever the
                // policy, so bursts above the placements find them warm.
                let idle_limit = match record.spec.keep_alive {
                    KeepAlive::Adaptive if state.placed == 0 => {
                        record.spec.scale_to_zero_after.min(ADAPTIVE_UNPLACED_IDLE)
                    }
                    _ => record.spec.scale_to_zero_after,
                };
                let mut idle: Vec<Arc<Slot>> = current
                    .iter()
                    .filter(|s| {
                        s.in_flight.load(Ordering::Acquire) == 0
                            && (draining || s.last_used.lock().expect("slot lock poisoned").elapsed() >= idle_limit)
                    })
                    .map(|s| (*s).clone())
                    .collect();
                let keep = state.placed as usize;
                let removable = current.len().saturating_sub(keep);
                idle.truncate(removable);
                let live = current.len() as u32 + state.starting;
                (idle, state.placed.saturating_sub(live))
            };
            for slot in idle {
                self.retire(&function, &slot, "idle and not placed here");
            }
            for _ in 0..missing {
                let pool = self.clone();
                let function = function.clone();
                tokio::spawn(async move {
                    let record = {
                        let mut state = function.state.lock().expect("function lock poisoned");
                        let Some(record) = state.record.clone() else { return };
                        if !pool.reserve_memory(record.spec.memory_mib) {
                            return;
                        }
                        state.starting += 1;
                        record
                    };
                    // The lease is dropped at once: the instance stays warm and free.
                    let _ = pool.start_instance(&function, record).await;
                });
            }
        }
    }

    /// Drops the functions that were removed and have nothing left on this node (no instance,
    /// no start, no waiting request), with their logs.
    fn forget_removed_functions(&self) {
        let mut functions = self.functions.write().expect("pool lock poisoned");
        let gone: Vec<String> = functions
            .iter()
            .filter(|(_, pool)| {
                let state = pool.state.lock().expect("function lock poisoned");
                state.record.is_none() && state.instances.is_empty() && state.starting == 0 && state.waiting == 0
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            functions.remove(&name);
            self.logs.forget(&name);
        }
    }

    /// What this node reports in its heartbeat.
    pub fn load(&self) -> NodeLoad {
        let functions = self.all_functions();
        let mut load = NodeLoad {
            reserved_memory_mib: *self.memory_reserved_mib.lock().expect("memory lock poisoned"),
            ..Default::default()
        };
        for function in functions {
            let state = function.state.lock().expect("function lock poisoned");
            let Some(record) = state.record.as_ref() else { continue };
            let mut f = FunctionLoad {
                revision: record.revision,
                starting: state.starting,
                waiting: state.waiting,
                calls: function.calls.load(Ordering::Relaxed),
                ..Default::default()
            };
            if !record.spec.image.is_empty() {
                match self.runtime.image_status(&record.spec.image) {
                    Some(ImageStatus::Pulling {
                        done_bytes,
                        total_bytes,
                    }) => {
                        f.image_state = "pulling".into();
                        f.pulled_bytes = done_bytes;
                        f.image_bytes = total_bytes;
                    }
                    Some(ImageStatus::Ready) => f.image_state = "ready".into(),
                    Some(ImageStatus::Failed { reason }) => {
                        f.image_state = "failed".into();
                        f.image_error = reason;
                    }
                    None => {}
                }
            }
            for slot in state.instances.iter().filter(|s| s.revision == record.revision) {
                let in_flight = slot.in_flight.load(Ordering::Acquire);
                f.ready += 1;
                f.in_flight += in_flight;
                if in_flight > 0 {
                    f.busy += 1;
                }
            }
            load.in_flight += f.in_flight;
            load.functions.insert(function.name.clone(), f);
        }
        load
    }

    /// Stops every instance (agent shutdown): no new start begins, the starts in flight end
    /// (each stops the instance it made, waited for at most [`STARTS_SETTLE_WITHIN`]), then every
    /// instance is stopped and the runtime releases the rest.
    pub async fn stop_all(&self) {
        self.closing.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + STARTS_SETTLE_WITHIN;
        for function in self.all_functions() {
            loop {
                let notified = function.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if function.state.lock().expect("function lock poisoned").starting == 0 {
                    break;
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break;
                }
            }
        }
        let functions = self.all_functions();
        let mut stops = Vec::new();
        for function in functions {
            let slots: Vec<Arc<Slot>> =
                std::mem::take(&mut function.state.lock().expect("function lock poisoned").instances);
            for slot in slots {
                slot.retired.store(true, Ordering::Release);
                stops.push(async move { slot.instance.stop(STOP_GRACE).await });
            }
        }
        futures::future::join_all(stops).await;
        self.runtime.shutdown().await;
    }
}
