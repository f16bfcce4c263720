//! The replay: calls from a trace arrive at simulated nodes, in the order a routing policy gives,
//! and instances start, serve, idle, get evicted and expire as the keep-alive policy says.
//!
//! The model, deliberately small:
//! - A node has a memory capacity. Every instance (busy or idle) holds its function's memory.
//! - An instance serves one call at a time (concurrency 1). A call landing on a node with an idle
//!   instance of its function reuses the most recently idle one: a warm hit. Otherwise it starts
//!   a new instance there (a cold start), evicting idle instances least recently used first if
//!   memory is short. A node that cannot make room even so passes the call to the next node in
//!   the policy's order; when no node can, the call is dropped.
//! - When a call ends, the function's keep-alive policy decides how long its instance stays
//!   idle, or unloads it and prewarms one on the same node later (using free memory only).
//!   `adaptive` asks the histogram at every call end, as the paper's policy does per instance;
//!   `adaptive-idle` asks it only when the function's last call in flight ends, and then
//!   unloads every idle instance of the function, as Fjord's autoscaler does (other instances
//!   keep the fixed idle time).
//! - The first instance a node ever starts for a function counts as an image pull.
//! - Cold starts take no extra time: durations are the trace's.
//!
//! Everything is integer milliseconds and seeded, so a replay is deterministic.

use crate::routing::{function_hash, Router, RoutingPolicy};
use crate::trace::{Call, Trace};
use fjord_decisions::keepalive::{Fixed, HistogramConfig, HybridHistogram, KeepAlivePolicy};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

/// Which keep-alive policy instances follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveKind {
    /// Idle for a fixed time after each call.
    Fixed,
    /// The hybrid histogram policy at every call end; the fixed time is its fallback.
    Adaptive,
    /// The hybrid histogram policy when the function goes idle (no call in flight), applied to
    /// all its instances; fixed otherwise. What Fjord's autoscaler does.
    AdaptiveIdle,
}

impl KeepAliveKind {
    pub fn name(&self) -> &'static str {
        match self {
            KeepAliveKind::Fixed => "fixed",
            KeepAliveKind::Adaptive => "adaptive",
            KeepAliveKind::AdaptiveIdle => "adaptive-idle",
        }
    }
}

/// One replay's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub nodes: usize,
    pub node_memory_mib: u32,
    pub routing: RoutingPolicy,
    pub keep_alive: KeepAliveKind,
    /// The fixed idle time (for `Adaptive`: its fallback).
    pub keep_alive_ms: u64,
    /// Seeds the random routing policy.
    pub seed: u64,
}

/// What a replay counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    pub calls: u64,
    pub warm_hits: u64,
    pub cold_starts: u64,
    pub dropped: u64,
    /// Calls served by a node other than the first in the policy's order.
    pub spilled: u64,
    pub image_pulls: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub prewarms: u64,
    /// Highest number of calls in flight at once, per node.
    pub peak_in_flight: Vec<u32>,
    /// Memory held by instances, integrated over time.
    pub reserved_mib_ms: u64,
    /// The replay's length: until the last call ends.
    pub horizon_ms: u64,
}

impl SimReport {
    fn ratio(part: u64, whole: u64) -> f64 {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    }

    /// Cold starts per call.
    pub fn cold_start_rate(&self) -> f64 {
        Self::ratio(self.cold_starts, self.calls)
    }

    /// Warm hits per call.
    pub fn warm_hit_ratio(&self) -> f64 {
        Self::ratio(self.warm_hits, self.calls)
    }

    /// Peak in-flight calls: the busiest node's over the mean of all nodes' (1 is perfectly even).
    pub fn peak_load_imbalance(&self) -> f64 {
        let max = self.peak_in_flight.iter().copied().max().unwrap_or(0);
        let sum: u64 = self.peak_in_flight.iter().map(|&p| u64::from(p)).sum();
        if sum == 0 {
            return 0.0;
        }
        f64::from(max) * self.peak_in_flight.len() as f64 / sum as f64
    }

    /// Average memory held by instances over the replay (MiB·s per s).
    pub fn mean_reserved_mib(&self) -> f64 {
        Self::ratio(self.reserved_mib_ms, self.horizon_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Busy,
    Idle,
    Gone,
}

#[derive(Debug, Clone)]
struct Instance {
    node: u32,
    function: u32,
    memory_mib: u32,
    created_ms: u64,
    idle_since_ms: u64,
    state: State,
    /// Bumped on every change of state (and kept across reuse of the slot), so an expiry
    /// scheduled for an earlier idle spell is recognised as stale.
    epoch: u32,
}

#[derive(Debug, Default)]
struct Node {
    memory_mib: u32,
    used_mib: u32,
    idle_mib: u32,
    peak_in_flight: u32,
    /// Idle instances, least recently used first: (idle since, instance).
    idle_lru: BTreeSet<(u64, u32)>,
}

impl Node {
    fn free_mib(&self) -> u32 {
        self.memory_mib - self.used_mib
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    CallEnd { instance: u32 },
    Expire { instance: u32, epoch: u32 },
    Prewarm { node: u32, function: u32, until_ms: u64 },
}

struct Sim<'t> {
    trace: &'t Trace,
    function_hashes: Vec<u64>,
    function_memory: Vec<u32>,
    router: Router,
    policies: Vec<Box<dyn KeepAlivePolicy>>,
    keep_alive: KeepAliveKind,
    keep_alive_ms: u64,
    /// Calls in flight per function, over all nodes.
    function_in_flight: Vec<u32>,
    nodes: Vec<Node>,
    in_flight: Vec<u32>,
    instances: Vec<Instance>,
    free_slots: Vec<u32>,
    /// Idle instances per (node, function), most recently idle last.
    idle: Vec<Vec<u32>>,
    pulled: Vec<bool>,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    next_seq: u64,
    order: Vec<usize>,
    report: SimReport,
}

/// Replays `trace` under `config`.
pub fn simulate(trace: &Trace, config: &SimConfig) -> SimReport {
    let functions = trace.functions.len();
    let node_ids: Vec<String> = (0..config.nodes).map(|i| format!("node-{i}")).collect();
    let policies = (0..functions)
        .map(|_| -> Box<dyn KeepAlivePolicy> {
            match config.keep_alive {
                KeepAliveKind::Fixed => Box::new(Fixed {
                    idle_ms: config.keep_alive_ms,
                }),
                KeepAliveKind::Adaptive | KeepAliveKind::AdaptiveIdle => {
                    Box::new(HybridHistogram::new(HistogramConfig {
                        fallback_idle_ms: config.keep_alive_ms,
                        ..HistogramConfig::default()
                    }))
                }
            }
        })
        .collect();
    let mut sim = Sim {
        trace,
        function_hashes: trace.functions.iter().map(|f| function_hash(f)).collect(),
        function_memory: vec![0; functions],
        router: Router::new(config.routing, node_ids, config.seed),
        policies,
        keep_alive: config.keep_alive,
        keep_alive_ms: config.keep_alive_ms,
        function_in_flight: vec![0; functions],
        nodes: (0..config.nodes)
            .map(|_| Node {
                memory_mib: config.node_memory_mib,
                ..Node::default()
            })
            .collect(),
        in_flight: vec![0; config.nodes],
        instances: Vec::new(),
        free_slots: Vec::new(),
        idle: vec![Vec::new(); config.nodes * functions],
        pulled: vec![false; config.nodes * functions],
        events: BinaryHeap::new(),
        next_seq: 0,
        order: Vec::with_capacity(config.nodes),
        report: SimReport::default(),
    };
    sim.run();
    sim.report.peak_in_flight = sim.nodes.iter().map(|n| n.peak_in_flight).collect();
    sim.report
}

impl Sim<'_> {
    fn run(&mut self) {
        let horizon = self.trace.end_ms();
        for call in &self.trace.calls {
            self.advance_to(call.arrival_ms);
            self.arrive(call);
        }
        self.advance_to(horizon);
        // Instances still up are charged until the end.
        for i in 0..self.instances.len() {
            if self.instances[i].state != State::Gone {
                let inst = &self.instances[i];
                self.report.reserved_mib_ms += u64::from(inst.memory_mib) * horizon.saturating_sub(inst.created_ms);
            }
        }
        self.report.horizon_ms = horizon;
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.events.push(Reverse((at_ms, self.next_seq, event)));
        self.next_seq += 1;
    }

    /// Handles every event due at or before `now_ms`, in time order.
    fn advance_to(&mut self, now_ms: u64) {
        while let Some(&Reverse((at_ms, _, event))) = self.events.peek() {
            if at_ms > now_ms {
                break;
            }
            self.events.pop();
            match event {
                Event::CallEnd { instance } => self.call_end(at_ms, instance),
                Event::Expire { instance, epoch } => {
                    let inst = &self.instances[instance as usize];
                    if inst.state == State::Idle && inst.epoch == epoch {
                        self.destroy(instance, at_ms);
                        self.report.expirations += 1;
                    }
                }
                Event::Prewarm {
                    node,
                    function,
                    until_ms,
                } => self.prewarm(at_ms, node, function, until_ms),
            }
        }
    }

    fn arrive(&mut self, call: &Call) {
        let t = call.arrival_ms;
        let f = call.function;
        self.report.calls += 1;
        self.function_memory[f as usize] = call.memory_mib;
        self.policies[f as usize].on_call_start(t);
        let mut order = std::mem::take(&mut self.order);
        let (idle, functions) = (&self.idle, self.trace.functions.len());
        self.router.order(
            &self.trace.functions[f as usize],
            self.function_hashes[f as usize],
            &self.in_flight,
            |node| !idle[node * functions + f as usize].is_empty(),
            &mut order,
        );
        let mut served = false;
        for (rank, &node) in order.iter().enumerate() {
            let instance = if let Some(instance) = self.take_idle(node, f) {
                self.report.warm_hits += 1;
                instance
            } else if self.make_room(node, call.memory_mib, t) {
                self.report.cold_starts += 1;
                self.create(node, f, call.memory_mib, t, State::Busy)
            } else {
                continue;
            };
            self.report.spilled += u64::from(rank > 0);
            self.in_flight[node] += 1;
            self.function_in_flight[f as usize] += 1;
            let n = &mut self.nodes[node];
            n.peak_in_flight = n.peak_in_flight.max(self.in_flight[node]);
            self.schedule(t + u64::from(call.duration_ms), Event::CallEnd { instance });
            served = true;
            break;
        }
        self.order = order;
        if !served {
            self.report.dropped += 1;
        }
    }

    fn call_end(&mut self, now_ms: u64, instance: u32) {
        let (node, function) = {
            let inst = &self.instances[instance as usize];
            (inst.node as usize, inst.function as usize)
        };
        self.in_flight[node] -= 1;
        self.function_in_flight[function] -= 1;
        let function_idle = self.function_in_flight[function] == 0;
        if self.keep_alive == KeepAliveKind::AdaptiveIdle && !function_idle {
            // Other calls still run: a pool instance, under the fixed rule.
            self.make_idle(instance, now_ms);
            let epoch = self.instances[instance as usize].epoch;
            self.schedule(now_ms + self.keep_alive_ms, Event::Expire { instance, epoch });
            return;
        }
        let policy = &mut self.policies[function];
        policy.on_call_end(now_ms);
        let decision = policy.decision(now_ms);
        let whole_function = self.keep_alive == KeepAliveKind::AdaptiveIdle;
        match decision.prewarm_at_ms {
            Some(prewarm_at) if prewarm_at > now_ms => {
                self.destroy(instance, now_ms);
                if whole_function {
                    self.destroy_idle_of(function as u32, now_ms);
                }
                self.schedule(
                    prewarm_at,
                    Event::Prewarm {
                        node: node as u32,
                        function: function as u32,
                        until_ms: decision.unload_at_ms,
                    },
                );
            }
            _ if decision.unload_at_ms <= now_ms => {
                self.destroy(instance, now_ms);
                if whole_function {
                    self.destroy_idle_of(function as u32, now_ms);
                }
            }
            _ => {
                self.make_idle(instance, now_ms);
                let epoch = self.instances[instance as usize].epoch;
                self.schedule(decision.unload_at_ms, Event::Expire { instance, epoch });
            }
        }
    }

    fn prewarm(&mut self, now_ms: u64, node: u32, function: u32, until_ms: u64) {
        let (n, f) = (node as usize, function as usize);
        let memory_mib = self.function_memory[f];
        if until_ms <= now_ms || !self.idle[self.slot(n, function)].is_empty() || self.nodes[n].free_mib() < memory_mib
        {
            return;
        }
        let instance = self.create(n, function, memory_mib, now_ms, State::Idle);
        self.make_idle(instance, now_ms);
        let epoch = self.instances[instance as usize].epoch;
        self.schedule(until_ms, Event::Expire { instance, epoch });
        self.report.prewarms += 1;
    }

    /// Unloads every idle instance of `function`, on every node.
    fn destroy_idle_of(&mut self, function: u32, now_ms: u64) {
        for node in 0..self.nodes.len() {
            while let Some(&instance) = self.idle[self.slot(node, function)].last() {
                self.destroy(instance, now_ms);
            }
        }
    }

    fn slot(&self, node: usize, function: u32) -> usize {
        node * self.trace.functions.len() + function as usize
    }

    /// Frees `memory_mib` on `node` by evicting idle instances, least recently used first, if
    /// that can be enough; says whether the node now has the room.
    fn make_room(&mut self, node: usize, memory_mib: u32, now_ms: u64) -> bool {
        let n = &self.nodes[node];
        if n.free_mib() + n.idle_mib < memory_mib {
            return false;
        }
        while self.nodes[node].free_mib() < memory_mib {
            let (_, victim) = *self.nodes[node]
                .idle_lru
                .first()
                .expect("idle memory implies idle instances");
            self.destroy(victim, now_ms);
            self.report.evictions += 1;
        }
        true
    }

    fn create(&mut self, node: usize, function: u32, memory_mib: u32, now_ms: u64, state: State) -> u32 {
        let slot = self.slot(node, function);
        if !self.pulled[slot] {
            self.pulled[slot] = true;
            self.report.image_pulls += 1;
        }
        self.nodes[node].used_mib += memory_mib;
        let fresh = Instance {
            node: node as u32,
            function,
            memory_mib,
            created_ms: now_ms,
            idle_since_ms: now_ms,
            state,
            epoch: 0,
        };
        match self.free_slots.pop() {
            Some(id) => {
                let epoch = self.instances[id as usize].epoch + 1;
                self.instances[id as usize] = Instance { epoch, ..fresh };
                id
            }
            None => {
                self.instances.push(fresh);
                (self.instances.len() - 1) as u32
            }
        }
    }

    fn make_idle(&mut self, instance: u32, now_ms: u64) {
        let inst = &mut self.instances[instance as usize];
        inst.state = State::Idle;
        inst.idle_since_ms = now_ms;
        inst.epoch += 1;
        let (node, function, memory_mib) = (inst.node as usize, inst.function, inst.memory_mib);
        let slot = self.slot(node, function);
        self.idle[slot].push(instance);
        let n = &mut self.nodes[node];
        n.idle_lru.insert((now_ms, instance));
        n.idle_mib += memory_mib;
    }

    /// The most recently idle instance of `function` on `node`, now busy.
    fn take_idle(&mut self, node: usize, function: u32) -> Option<u32> {
        let slot = self.slot(node, function);
        let instance = self.idle[slot].pop()?;
        let inst = &mut self.instances[instance as usize];
        inst.state = State::Busy;
        inst.epoch += 1;
        let n = &mut self.nodes[node];
        n.idle_lru.remove(&(inst.idle_since_ms, instance));
        n.idle_mib -= inst.memory_mib;
        Some(instance)
    }

    fn destroy(&mut self, instance: u32, now_ms: u64) {
        let inst = self.instances[instance as usize].clone();
        let node = inst.node as usize;
        if inst.state == State::Idle {
            let slot = self.slot(node, inst.function);
            let idle = &mut self.idle[slot];
            let at = idle
                .iter()
                .position(|&i| i == instance)
                .expect("idle instances are listed");
            idle.remove(at);
            let n = &mut self.nodes[node];
            n.idle_lru.remove(&(inst.idle_since_ms, instance));
            n.idle_mib -= inst.memory_mib;
        }
        self.nodes[node].used_mib -= inst.memory_mib;
        self.report.reserved_mib_ms += u64::from(inst.memory_mib) * (now_ms - inst.created_ms);
        let gone = &mut self.instances[instance as usize];
        gone.state = State::Gone;
        gone.epoch += 1;
        self.free_slots.push(instance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_core::hashing::preference_order;

    const MIN: u64 = 60_000;

    fn config(nodes: usize, node_memory_mib: u32, routing: RoutingPolicy) -> SimConfig {
        SimConfig {
            nodes,
            node_memory_mib,
            routing,
            keep_alive: KeepAliveKind::Fixed,
            keep_alive_ms: 5 * MIN,
            seed: 1,
        }
    }

    const FJORD: RoutingPolicy = RoutingPolicy::Fjord { c: 1.25 };

    fn node_ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn two_calls_within_keep_alive_are_one_cold_start_and_one_warm_hit() {
        let trace = Trace::from_rows([(0, "echo", 100, 128), (60_000, "echo", 100, 128)]);
        let r = simulate(&trace, &config(4, 1024, FJORD));
        assert_eq!((r.calls, r.cold_starts, r.warm_hits, r.dropped), (2, 1, 1, 0));
        assert_eq!(r.image_pulls, 1);
        // Both calls on echo's home node.
        let home = preference_order("echo", &node_ids(4))[0];
        assert_eq!(r.peak_in_flight.iter().filter(|&&p| p > 0).count(), 1);
        assert_eq!(r.peak_in_flight[home], 1);
        // One instance of 128 MiB, up from 0 until the end at 60.1 s.
        assert_eq!(r.reserved_mib_ms, 128 * 60_100);
        assert_eq!(r.horizon_ms, 60_100);
    }

    #[test]
    fn round_robin_cold_starts_on_every_node_where_fjord_stays_home() {
        let rows: Vec<(u64, &str, u32, u32)> = (0..12).map(|i| (i * 1_000, "api", 10, 256)).collect();
        let trace = Trace::from_rows(rows);
        let fjord = simulate(&trace, &config(4, 4096, FJORD));
        let rr = simulate(&trace, &config(4, 4096, RoutingPolicy::RoundRobin));
        assert_eq!((fjord.cold_starts, fjord.warm_hits, fjord.image_pulls), (1, 11, 1));
        assert_eq!((rr.cold_starts, rr.warm_hits, rr.image_pulls), (4, 8, 4));
        assert!(rr.mean_reserved_mib() > 3.0 * fjord.mean_reserved_mib());
    }

    #[test]
    fn a_node_full_of_busy_instances_spills_then_drops() {
        // Two nodes that hold one 256 MiB instance each; three overlapping calls.
        let trace = Trace::from_rows([(0, "f", 1_000, 256), (10, "f", 1_000, 256), (20, "f", 1_000, 256)]);
        for routing in [FJORD, RoutingPolicy::OpenWhisk, RoutingPolicy::LeastLoaded] {
            let r = simulate(&trace, &config(2, 256, routing));
            assert_eq!((r.cold_starts, r.warm_hits, r.dropped), (2, 0, 1), "{routing:?}");
            assert_eq!(r.peak_in_flight, vec![1, 1], "{routing:?}");
            assert_eq!(r.image_pulls, 2);
        }
        // Under fjord the second call tried the home first (it was within its bound) and spilled.
        let r = simulate(&trace, &config(2, 256, FJORD));
        assert_eq!(r.spilled, 1);
    }

    #[test]
    fn eviction_frees_memory_least_recently_used_first() {
        // One node of 1 GiB: a and b go idle (a first); c needs room and evicts a, not b, so b
        // is still warm when it is called again.
        let trace = Trace::from_rows([
            (0, "a", 100, 512),
            (1_000, "b", 100, 512),
            (2_000, "c", 100, 512),
            (3_000, "b", 100, 512),
        ]);
        let r = simulate(&trace, &config(1, 1024, FJORD));
        assert_eq!((r.cold_starts, r.warm_hits, r.dropped), (3, 1, 0));
        assert_eq!(r.evictions, 1);
        assert_eq!(r.image_pulls, 3);
        // a's instance lived 0 .. 2 s; b's from 1 s and c's from 2 s to the end at 3.1 s.
        assert_eq!(r.reserved_mib_ms, 512 * (2_000 + 2_100 + 1_100));
        // A busy instance is never evicted: c cannot start while a and b both run.
        let busy = Trace::from_rows([(0, "a", 10_000, 512), (10, "b", 10_000, 512), (20, "c", 100, 512)]);
        let r = simulate(&busy, &config(1, 1024, FJORD));
        assert_eq!((r.cold_starts, r.dropped, r.evictions), (2, 1, 0));
    }

    #[test]
    fn an_expired_instance_is_gone_and_its_memory_charged_until_expiry() {
        // Keep-alive 5 min: the second call, 10 min later, is cold.
        let trace = Trace::from_rows([(0, "f", 1_000, 128), (11 * MIN, "f", 1_000, 128)]);
        let r = simulate(&trace, &config(1, 1024, FJORD));
        assert_eq!((r.cold_starts, r.warm_hits, r.expirations), (2, 0, 1));
        // First instance: 0 .. 1 s + 5 min; second: 11 min .. 11 min + 1 s (the end).
        assert_eq!(r.reserved_mib_ms, 128 * ((1_000 + 5 * MIN) + 1_000));
        assert_eq!(r.horizon_ms, 11 * MIN + 1_000);
        assert_eq!(r.image_pulls, 1);
    }

    #[test]
    fn adaptive_keep_alive_prewarms_a_timer_that_fixed_keep_alive_misses() {
        // Every 30 min for 1 s: past a fixed 5 min keep-alive every time.
        let rows: Vec<(u64, &str, u32, u32)> = (0..10).map(|i| (i * 30 * MIN, "cron", 1_000, 256)).collect();
        let trace = Trace::from_rows(rows);
        let fixed = simulate(&trace, &config(2, 1024, FJORD));
        assert_eq!((fixed.cold_starts, fixed.warm_hits), (10, 0));
        let adaptive = simulate(
            &trace,
            &SimConfig {
                keep_alive: KeepAliveKind::Adaptive,
                ..config(2, 1024, FJORD)
            },
        );
        // The histogram is representative from the 5th idle time on (after the 6th call):
        // calls 7 to 10 find a prewarmed instance.
        assert_eq!((adaptive.cold_starts, adaptive.warm_hits, adaptive.prewarms), (6, 4, 4));
        assert!(adaptive.mean_reserved_mib() < fixed.mean_reserved_mib());
    }

    #[test]
    fn adaptive_idle_unloads_every_idle_instance_when_the_function_goes_idle() {
        // Every 30 min, two overlapping 1 s calls: a pool of two instances per burst.
        let rows: Vec<(u64, &str, u32, u32)> = (0..10)
            .flat_map(|i| {
                [
                    (i * 30 * MIN, "batch", 1_000, 256),
                    (i * 30 * MIN + 100, "batch", 1_000, 256),
                ]
            })
            .collect();
        let trace = Trace::from_rows(rows);
        let run = |keep_alive| {
            simulate(
                &trace,
                &SimConfig {
                    keep_alive,
                    ..config(1, 1024, FJORD)
                },
            )
        };
        let fixed = run(KeepAliveKind::Fixed);
        assert_eq!((fixed.cold_starts, fixed.warm_hits), (20, 0));
        let idle = run(KeepAliveKind::AdaptiveIdle);
        // Idle times are counted only between bursts (the second call's end to the next
        // burst), so the histogram is representative after the 6th burst, as for a timer: the
        // 7th to 10th bursts find one prewarmed instance each and start a second.
        assert_eq!((idle.cold_starts, idle.warm_hits, idle.prewarms), (16, 4, 4));
        // From the 7th burst on, the first call's instance (idle while the second runs) goes
        // with the function when the second ends, and one instance is held from the prewarm
        // (26.1 min into the gap) to the next burst, instead of two for 5 minutes after it.
        let (idle_mib, fixed_mib) = (idle.mean_reserved_mib(), fixed.mean_reserved_mib());
        assert!(idle_mib < 0.8 * fixed_mib, "{idle_mib} MiB against {fixed_mib} MiB");
    }

    #[test]
    fn replays_are_deterministic_and_account_for_every_call() {
        let trace = crate::generate::generate(&crate::generate::TraceSpec {
            functions: 40,
            duration_s: 600,
            seed: 3,
            calls_per_s: 12.0,
        });
        for routing in [
            FJORD,
            RoutingPolicy::FjordWarm { c: 1.25 },
            RoutingPolicy::RoundRobin,
            RoutingPolicy::Random,
            RoutingPolicy::LeastLoaded,
            RoutingPolicy::OpenWhisk,
        ] {
            for keep_alive in [
                KeepAliveKind::Fixed,
                KeepAliveKind::Adaptive,
                KeepAliveKind::AdaptiveIdle,
            ] {
                let c = SimConfig {
                    keep_alive,
                    ..config(4, 4096, routing)
                };
                let a = simulate(&trace, &c);
                assert_eq!(a, simulate(&trace, &c));
                assert_eq!(a.calls, trace.calls.len() as u64);
                assert_eq!(a.cold_starts + a.warm_hits + a.dropped, a.calls);
                assert!(a.image_pulls <= a.cold_starts + a.prewarms);
            }
        }
    }
}
