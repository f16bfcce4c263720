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
use crate::secrets::SecretFiles;
use fjord_core::node::{FunctionLoad, ImageState};
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
    /// Requests the instances now starting will take besides the ones that started them: a
    /// request-started instance adds `concurrency - 1`, a prewarm `concurrency`. A request that
    /// finds no free instance waits for these before it starts another.
    start_capacity: u32,
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
    /// The secret files of the functions started here.
    secrets: Arc<SecretFiles>,
}

enum Next {
    Start(Box<FunctionRecord>),
    Wait,
}

impl InstancePool {
    pub fn new(runtime: Arc<dyn Runtime>, node_id: &str, memory_capacity_mib: u32) -> Arc<Self> {
        let secrets = Arc::new(SecretFiles::new(crate::secrets::default_dir(node_id), node_id));
        Self::with_secrets(runtime, node_id, memory_capacity_mib, secrets)
    }

    pub fn with_secrets(
        runtime: Arc<dyn Runtime>,
        node_id: &str,
        memory_capacity_mib: u32,
        secrets: Arc<SecretFiles>,
    ) -> Arc<Self> {
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
            secrets,
        })
    }

    /// The secret files of the functions started here.
    pub fn secrets(&self) -> &Arc<SecretFiles> {
        &self.secrets
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
                    self.secrets.forget(name);
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
        // Whether this request waited on an instance another start was bringing up: it is a
        // cold start for the caller all the same.
        let mut waited_for_start = false;
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
                        cold: waited_for_start,
                    });
                }
                let live =
                    state.instances.iter().filter(|s| s.revision == record.revision).count() as u32 + state.starting;
                // The requests already waiting come first for the instances now starting.
                let ahead = state.waiting - u32::from(counted_waiting);
                let a_start_will_serve = ahead < state.start_capacity;
                if !a_start_will_serve && live < record.spec.max && self.reserve_memory(record.spec.memory_mib) {
                    state.starting += 1;
                    state.start_capacity += concurrency - 1;
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
                    waited_for_start |= a_start_will_serve;
                    Next::Wait
                }
            };
            match next {
                Next::Start(record) => {
                    let lease = self.start_instance(&function, *record, true).await?;
                    return Ok(lease.expect("a start for a request returns its lease"));
                }
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

    /// Starts an instance of `record`; `for_request` leases it to the caller (`Some`), otherwise
    /// (a prewarm) it joins the pool free. The caller counted it in `starting` and
    /// `start_capacity`; this takes it out of both.
    async fn start_instance(
        self: &Arc<Self>,
        function: &Arc<FunctionPool>,
        record: FunctionRecord,
        for_request: bool,
    ) -> Result<Option<Lease>, AcquireError> {
        let n = self.next_instance.fetch_add(1, Ordering::Relaxed);
        let instance_id = format!("{}-{}-{n}", record.spec.name, self.node_id);
        self.logs.push(
            &record.spec.name,
            &instance_id,
            "platform",
            &format!("starting instance (revision {})", record.revision),
        );
        let started = Instant::now();
        let result = match self.secrets.prepare(&record.spec, self.runtime.mounts_files()).await {
            Ok(secrets_dir) => {
                self.runtime
                    .start(StartRequest {
                        spec: &record.spec,
                        instance_id: instance_id.clone(),
                        logs: self.logs.clone(),
                        ready_within: record.spec.timeout.max(Duration::from_secs(10)),
                        secrets_dir,
                    })
                    .await
            }
            Err(reason) => Err(RuntimeError::Secrets {
                function: record.spec.name.clone(),
                reason,
            }),
        };
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
        state.start_capacity -= record.spec.concurrency - u32::from(for_request);
        match result {
            Ok(instance) => {
                let served_by = instance.id().to_string();
                let slot = Arc::new(Slot {
                    instance,
                    revision: record.revision,
                    memory_mib: record.spec.memory_mib,
                    in_flight: AtomicU32::new(u32::from(for_request)),
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
                Ok(for_request.then(|| Lease {
                    slot,
                    function: function.clone(),
                    pool: self.clone(),
                    record,
                    cold: true,
                }))
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
                        state.start_capacity += record.spec.concurrency;
                        record
                    };
                    let _ = pool.start_instance(&function, record, false).await;
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
                        f.image_state = ImageState::Pulling;
                        f.pulled_bytes = done_bytes;
                        f.image_bytes = total_bytes;
                    }
                    Some(ImageStatus::Ready) => f.image_state = ImageState::Ready,
                    Some(ImageStatus::Failed { reason }) => {
                        f.image_state = ImageState::Failed;
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;
    use futures::FutureExt;
    use tokio::sync::Semaphore;

    /// A runtime whose starts wait for the test to let them finish, each with a permit.
    struct GatedRuntime {
        starts: AtomicU32,
        finish: Semaphore,
        fail: AtomicBool,
    }

    impl Default for GatedRuntime {
        fn default() -> Self {
            GatedRuntime {
                starts: AtomicU32::new(0),
                finish: Semaphore::new(0),
                fail: AtomicBool::new(false),
            }
        }
    }

    struct FakeInstance {
        id: String,
        stopped: watch::Sender<bool>,
    }

    impl Instance for FakeInstance {
        fn id(&self) -> &str {
            &self.id
        }
        fn addr(&self) -> std::net::SocketAddr {
            ([127, 0, 0, 1], 9).into()
        }
        fn exit_reason(&self) -> Option<ExitReason> {
            (*self.stopped.borrow()).then_some(ExitReason::Stopped)
        }
        fn wait_exit(&self) -> BoxFuture<'_, ExitReason> {
            let mut stopped = self.stopped.subscribe();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
                ExitReason::Stopped
            }
            .boxed()
        }
        fn stop(&self, _grace: Duration) -> BoxFuture<'_, ()> {
            self.stopped.send_replace(true);
            async {}.boxed()
        }
    }

    impl Runtime for GatedRuntime {
        fn name(&self) -> &'static str {
            "gated"
        }
        fn start<'a>(&'a self, request: StartRequest<'a>) -> BoxFuture<'a, Result<Arc<dyn Instance>, RuntimeError>> {
            async move {
                self.starts.fetch_add(1, Ordering::SeqCst);
                self.finish.acquire().await.expect("semaphore open").forget();
                if self.fail.load(Ordering::SeqCst) {
                    return Err(RuntimeError::Other("refused by the test".into()));
                }
                let instance: Arc<dyn Instance> = Arc::new(FakeInstance {
                    id: request.instance_id,
                    stopped: watch::channel(false).0,
                });
                Ok(instance)
            }
            .boxed()
        }
    }

    fn record(concurrency: u32) -> FunctionRecord {
        let yaml = format!("name: f\ncommand: [f]\nconcurrency: {concurrency}\nmax: 10\nmemory_mib: 64\n");
        FunctionRecord {
            spec: fjord_core::FunctionSpec::from_yaml(&yaml).unwrap(),
            revision: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
            image_ref: String::new(),
        }
    }

    fn pool_with(runtime: &Arc<GatedRuntime>, record: FunctionRecord, placed: u32) -> Arc<InstancePool> {
        let pool = InstancePool::new(runtime.clone(), "n1", 4096);
        pool.set_assignments(vec![record], &HashMap::from([("f".to_string(), placed)]), false);
        pool
    }

    async fn starts_reach(runtime: &GatedRuntime, n: u32) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while runtime.starts.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the starts were asked for");
    }

    /// Waits until `n` requests wait in the pool (for a start in flight).
    async fn waiting_reaches(pool: &InstancePool, n: u32) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while pool.load().functions.get("f").map_or(0, |f| f.waiting) < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the calls reached the pool");
    }

    fn acquire_in_background(pool: &Arc<InstancePool>) -> tokio::task::JoinHandle<Result<Lease, AcquireError>> {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire("f", Instant::now() + Duration::from_secs(10)).await })
    }

    #[tokio::test]
    async fn a_cold_burst_within_one_instances_concurrency_starts_one_instance() {
        let runtime = Arc::new(GatedRuntime::default());
        let pool = pool_with(&runtime, record(4), 0);
        let calls: Vec<_> = (0..4).map(|_| acquire_in_background(&pool)).collect();
        starts_reach(&runtime, 1).await;
        waiting_reaches(&pool, 3).await;
        runtime.finish.add_permits(10);
        let mut instances = std::collections::HashSet::new();
        for call in calls {
            let lease = call.await.unwrap().expect("every call is served");
            assert!(lease.cold, "each call waited for the cold start");
            instances.insert(lease.instance().id().to_string());
        }
        assert_eq!(
            runtime.starts.load(Ordering::SeqCst),
            1,
            "one start serves four calls of concurrency 4"
        );
        assert_eq!(instances.len(), 1);
    }

    #[tokio::test]
    async fn a_call_beyond_what_the_starting_instances_take_starts_another() {
        let runtime = Arc::new(GatedRuntime::default());
        let pool = pool_with(&runtime, record(2), 0);
        let calls: Vec<_> = (0..3).map(|_| acquire_in_background(&pool)).collect();
        starts_reach(&runtime, 2).await;
        runtime.finish.add_permits(10);
        for call in calls {
            call.await.unwrap().expect("every call is served");
        }
        assert_eq!(
            runtime.starts.load(Ordering::SeqCst),
            2,
            "3 calls of concurrency 2 need 2 instances"
        );
    }

    #[tokio::test]
    async fn a_call_during_a_prewarm_takes_the_prewarmed_instance() {
        let runtime = Arc::new(GatedRuntime::default());
        let pool = pool_with(&runtime, record(1), 1);
        pool.reap_and_prewarm();
        starts_reach(&runtime, 1).await;
        let call = acquire_in_background(&pool);
        waiting_reaches(&pool, 1).await;
        runtime.finish.add_permits(10);
        let lease = call.await.unwrap().expect("the call is served");
        assert!(lease.cold, "it waited for a start");
        drop(lease);
        assert_eq!(
            runtime.starts.load(Ordering::SeqCst),
            1,
            "the prewarm's instance served the call"
        );
        assert_eq!(pool.load().functions["f"].ready, 1);
    }

    #[tokio::test]
    async fn callers_waiting_on_a_start_that_fails_start_their_own() {
        let runtime = Arc::new(GatedRuntime::default());
        let pool = pool_with(&runtime, record(4), 0);
        let calls: Vec<_> = (0..3).map(|_| acquire_in_background(&pool)).collect();
        starts_reach(&runtime, 1).await;
        waiting_reaches(&pool, 2).await;
        runtime.fail.store(true, Ordering::SeqCst);
        runtime.finish.add_permits(1);
        // The waiters start again; that start succeeds and serves both of them.
        starts_reach(&runtime, 2).await;
        runtime.fail.store(false, Ordering::SeqCst);
        runtime.finish.add_permits(10);
        let results: Vec<_> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            results.iter().filter(|r| r.is_err()).count(),
            1,
            "only the starter sees the failure"
        );
        assert_eq!(runtime.starts.load(Ordering::SeqCst), 2);
    }
}
