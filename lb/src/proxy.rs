//! The routing service: `/function/{name}[/{rest}]` -> the function's nodes in bounded-load
//! hashing order (warm ones first) -> the first agent that takes it -> the response, streamed.
//!
//! - The request body is read once, up to the limit, so a request refused by a busy or
//!   unreachable node can go to the next one. A request that reached a function is never sent
//!   twice.
//! - Loads are this lb's own count of requests in flight per node; the order comes from the
//!   shared routing table, so every lb routes a function the same way when loads are alike.
//! - A node whose connections fail three times in a row is ejected for 5 s (doubling per repeat,
//!   at most 60 s), then tried again.
//! - When every node is busy, the request waits in its function's bounded queue until a request
//!   of that function finishes here or a short tick passes, then tries again; past the bound:
//!   429 with `Retry-After`.

use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::path::parse_function_path;
use bytes::Bytes;
use fjord_core::agent_http;
use fjord_core::{RouteTable, RoutedFunction};
use fjord_daemon::{full_body, GuardedBody, HttpBody};
use http::{header, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// How long a request for a function the lb does not know waits for a newer routing table
/// (a deploy that has committed but not yet reached this lb).
const UNKNOWN_FUNCTION_GRACE: Duration = Duration::from_millis(500);
/// While queued, a request retries at least this often.
const QUEUE_TICK: Duration = Duration::from_millis(50);
const EJECT_AFTER_FAILURES: u32 = 3;
const EJECT_BASE: Duration = Duration::from_secs(5);
const EJECT_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub body_limit_bytes: usize,
    pub load_bound_c: f64,
    pub queue_per_function: u32,
}

#[derive(Default)]
struct NodeHealth {
    consecutive_failures: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

#[derive(Default)]
struct FunctionQueue {
    waiting: AtomicU32,
    freed: Notify,
}

pub struct Proxy {
    pub routes: watch::Receiver<Arc<RouteTable>>,
    pub metrics: Metrics,
    config: ProxyConfig,
    client: Client<HttpConnector, Full<Bytes>>,
    in_flight: RwLock<HashMap<String, Arc<AtomicU32>>>,
    health: Mutex<HashMap<String, NodeHealth>>,
    /// Whether any node has failures or an ejection on record: lets the hot path skip the lock.
    unhealthy: AtomicBool,
    queues: RwLock<HashMap<String, Arc<FunctionQueue>>>,
}

/// What one attempt on one node came to.
enum Attempt {
    Answered(Response<Incoming>),
    Busy,
    Unreachable(String),
    /// The request may have reached the function; it must not be sent again.
    Failed(String),
}

/// Holds a node's in-flight count (and wakes the function's queue) until the response body ends.
struct InFlight {
    count: Arc<AtomicU32>,
    queue: Arc<FunctionQueue>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.queue.freed.notify_waiters();
    }
}

impl Proxy {
    pub fn new(routes: watch::Receiver<Arc<RouteTable>>, config: ProxyConfig) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Arc::new(Proxy {
            routes,
            metrics: Metrics::default(),
            config,
            client,
            in_flight: RwLock::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            unhealthy: AtomicBool::new(false),
            queues: RwLock::new(HashMap::new()),
        })
    }

    /// The function's timeout, for the timeout layer.
    pub fn function_timeout(&self, name: &str) -> Option<Duration> {
        self.routes.borrow().functions.get(name).map(|f| f.timeout)
    }

    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<HttpBody> {
        let path = request.uri().path();
        if let Some((name, tail)) = parse_function_path(path) {
            let (name, tail) = (name.to_string(), tail.to_string());
            let started = Instant::now();
            self.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
            let (response, known) = self.invoke(&name, &tail, request).await;
            self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.metrics.record(
                known.then_some(name.as_str()),
                response.status().as_u16(),
                started.elapsed(),
            );
            return response;
        }
        match path {
            "/healthz" => Response::new(full_body("ok\n")),
            "/metrics" => {
                let mut response = Response::new(full_body(self.metrics.render()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            }
            _ => ProxyError::NoSuchPath { path: path.to_string() }.into_response(),
        }
    }

    /// The routing table holding `name`, waiting briefly for a newer table if this one lacks it.
    async fn lookup(&self, name: &str) -> Option<Arc<RouteTable>> {
        let mut routes = self.routes.clone();
        let table = routes.borrow_and_update().clone();
        if table.functions.contains_key(name) {
            return Some(table);
        }
        let deadline = tokio::time::Instant::now() + UNKNOWN_FUNCTION_GRACE;
        while tokio::time::timeout_at(deadline, routes.changed())
            .await
            .is_ok_and(|r| r.is_ok())
        {
            let table = routes.borrow_and_update().clone();
            if table.functions.contains_key(name) {
                return Some(table);
            }
        }
        None
    }

    fn node_count(&self, node: &str) -> Arc<AtomicU32> {
        if let Some(count) = self.in_flight.read().expect("in-flight lock poisoned").get(node) {
            return count.clone();
        }
        self.in_flight
            .write()
            .expect("in-flight lock poisoned")
            .entry(node.to_string())
            .or_default()
            .clone()
    }

    fn queue(&self, function: &str) -> Arc<FunctionQueue> {
        if let Some(queue) = self.queues.read().expect("queue lock poisoned").get(function) {
            return queue.clone();
        }
        self.queues
            .write()
            .expect("queue lock poisoned")
            .entry(function.to_string())
            .or_default()
            .clone()
    }

    fn ejected(&self, node: &str, now: Instant) -> bool {
        if !self.unhealthy.load(Ordering::Acquire) {
            return false;
        }
        let health = self.health.lock().expect("health lock poisoned");
        health
            .get(node)
            .and_then(|h| h.ejected_until)
            .is_some_and(|until| until > now)
    }

    fn record_connect_failure(&self, node: &str) {
        let mut health = self.health.lock().expect("health lock poisoned");
        self.unhealthy.store(true, Ordering::Release);
        let h = health.entry(node.to_string()).or_default();
        h.consecutive_failures += 1;
        if h.consecutive_failures >= EJECT_AFTER_FAILURES {
            let period = EJECT_BASE.saturating_mul(1 << h.ejections.min(4)).min(EJECT_MAX);
            h.ejected_until = Some(Instant::now() + period);
            h.ejections += 1;
            h.consecutive_failures = 0;
            self.metrics.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(node, eject_for = ?period, "node ejected after failing connections");
        }
    }

    fn record_success(&self, node: &str) {
        if !self.unhealthy.load(Ordering::Acquire) {
            return;
        }
        let mut health = self.health.lock().expect("health lock poisoned");
        if let Some(h) = health.get_mut(node) {
            if h.consecutive_failures > 0 || h.ejections > 0 {
                *h = NodeHealth::default();
            }
        }
        if health
            .values()
            .all(|h| h.consecutive_failures == 0 && h.ejected_until.is_none())
        {
            self.unhealthy.store(false, Ordering::Release);
        }
    }

    /// Returns the response and whether the function was known (for metric labels).
    async fn invoke(&self, name: &str, tail: &str, request: Request<Incoming>) -> (Response<HttpBody>, bool) {
        if fjord_core::name::check_dns_label(name).is_err() {
            let error = ProxyError::BadFunctionName { name: name.to_string() };
            return (error.into_response(), false);
        }
        let Some(table) = self.lookup(name).await else {
            let error = ProxyError::FunctionNotFound {
                function: name.to_string(),
            };
            return (error.into_response(), false);
        };
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, self.config.body_limit_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                let error = ProxyError::BodyTooLarge {
                    function: Some(name.to_string()),
                    limit_bytes: self.config.body_limit_bytes,
                };
                return (error.into_response(), true);
            }
            Err(e) => {
                let error = ProxyError::BodyUnreadable {
                    function: name.to_string(),
                    reason: e.to_string(),
                };
                return (error.into_response(), true);
            }
        };
        let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let response = self
            .route(name, table, &parts, &body, &tail_and_query(tail, &query))
            .await;
        (response, true)
    }

    /// Calls a function with a request already read (an asynchronous call a worker delivers):
    /// the same routing, bounds, retries and hold queue as `/function/{name}`, counted in the
    /// same metrics. `path` is the part after the name, with its query.
    pub async fn call(&self, name: &str, parts: &http::request::Parts, body: &Bytes, path: &str) -> Response<HttpBody> {
        let started = Instant::now();
        let Some(table) = self.lookup(name).await else {
            return ProxyError::FunctionNotFound {
                function: name.to_string(),
            }
            .into_response();
        };
        self.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let response = self.route(name, table, parts, body, path).await;
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .record(Some(name), response.status().as_u16(), started.elapsed());
        response
    }

    /// Whether the routing table holds `name` (waiting briefly for a newer table if not).
    pub async fn knows(&self, name: &str) -> bool {
        self.lookup(name).await.is_some()
    }

    async fn route(
        &self,
        name: &str,
        mut table: Arc<RouteTable>,
        parts: &http::request::Parts,
        body: &Bytes,
        tail: &str,
    ) -> Response<HttpBody> {
        let queue = self.queue(name);
        let mut queued = false;
        let response = loop {
            let Some(function) = table.functions.get(name) else {
                break ProxyError::FunctionRemoved {
                    function: name.to_string(),
                }
                .into_response();
            };
            match self.try_nodes(&table, function, parts, body, tail, &queue).await {
                Ok(response) => break response,
                Err(TryError::NoNodes) => {
                    break ProxyError::NoCapacity {
                        function: name.to_string(),
                    }
                    .into_response()
                }
                Err(TryError::AllRefused(reasons)) => {
                    if !queued {
                        let waiting = queue.waiting.fetch_add(1, Ordering::AcqRel);
                        if waiting >= self.config.queue_per_function {
                            queue.waiting.fetch_sub(1, Ordering::AcqRel);
                            break ProxyError::QueueFull {
                                function: name.to_string(),
                                refusals: reasons,
                                waiting,
                            }
                            .into_response();
                        }
                        queued = true;
                        self.metrics.queue_waits.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = tokio::time::timeout(QUEUE_TICK, queue.freed.notified()).await;
                    // A fresh table for the next round: nodes may have come or gone.
                    table = self.routes.borrow().clone();
                }
            }
        };
        if queued {
            queue.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        response
    }

    async fn try_nodes(
        &self,
        table: &RouteTable,
        function: &RoutedFunction,
        parts: &http::request::Parts,
        body: &Bytes,
        tail: &str,
        queue: &Arc<FunctionQueue>,
    ) -> Result<Response<HttpBody>, TryError> {
        let name = function.name.as_str();
        if table.nodes.is_empty() {
            return Err(TryError::NoNodes);
        }
        let counts: Vec<Arc<AtomicU32>> = table.nodes.iter().map(|n| self.node_count(&n.id)).collect();
        let loads: Vec<u32> = counts.iter().map(|c| c.load(Ordering::Acquire)).collect();
        let order = table.candidates(function, &loads, self.config.load_bound_c);
        let now = Instant::now();
        let mut live: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| !self.ejected(&table.nodes[i].id, now))
            .collect();
        if live.is_empty() {
            // Every node is ejected: try them anyway rather than fail outright.
            live = order.clone();
        }
        let home = order.first().copied();
        let mut reasons = Vec::new();
        for (attempt, &i) in live.iter().enumerate() {
            let node = &table.nodes[i];
            if attempt > 0 {
                self.metrics.retries.fetch_add(1, Ordering::Relaxed);
            }
            let mut upstream = Request::builder()
                .method(parts.method.clone())
                .uri(agent_http::agent_url(
                    &node.invoke_addr,
                    &agent_http::invoke_path(name, tail),
                ));
            if let Some(headers) = upstream.headers_mut() {
                *headers = parts.headers.clone();
            }
            let upstream = match upstream.body(Full::new(body.clone())) {
                Ok(r) => r,
                Err(e) => {
                    let error = ProxyError::InvalidRequest {
                        function: name.to_string(),
                        reason: e.to_string(),
                    };
                    return Ok(error.into_response());
                }
            };
            counts[i].fetch_add(1, Ordering::AcqRel);
            let in_flight = InFlight {
                count: counts[i].clone(),
                queue: queue.clone(),
            };
            match self.attempt(upstream).await {
                Attempt::Answered(response) => {
                    self.record_success(&node.id);
                    if Some(i) != home {
                        self.metrics.spills.fetch_add(1, Ordering::Relaxed);
                    }
                    if agent_http::is_cold_start(response.headers()) {
                        self.metrics.cold_starts.fetch_add(1, Ordering::Relaxed);
                    }
                    let (parts, body) = response.into_parts();
                    let body = GuardedBody::new(body, in_flight);
                    return Ok(Response::from_parts(parts, body.map_err(Into::into).boxed()));
                }
                Attempt::Busy => {
                    self.record_success(&node.id);
                    reasons.push(format!("{}: busy", node.id));
                }
                Attempt::Unreachable(reason) => {
                    self.record_connect_failure(&node.id);
                    reasons.push(format!("{}: unreachable ({reason})", node.id));
                }
                Attempt::Failed(reason) => {
                    let error = ProxyError::NodeFailed {
                        function: name.to_string(),
                        node: node.id.clone(),
                        reason,
                    };
                    return Ok(error.into_response());
                }
            }
        }
        Err(TryError::AllRefused(reasons))
    }

    async fn attempt(&self, request: Request<Full<Bytes>>) -> Attempt {
        match self.client.request(request).await {
            Ok(response) if agent_http::is_busy(response.headers()) => Attempt::Busy,
            Ok(response) => Attempt::Answered(response),
            // Only failures before the request was written are retried: a connect error.
            Err(e) if e.is_connect() => Attempt::Unreachable(e.to_string()),
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }
}

enum TryError {
    NoNodes,
    AllRefused(Vec<String>),
}

fn tail_and_query(tail: &str, query: &str) -> String {
    format!("{tail}{query}")
}
