//! The request path: `/function/{name}[/{rest}]` -> the function's nodes in hashing order ->
//! the first agent that takes it -> the response, streamed back.
//!
//! The request body is read once, up to the body limit, so a request refused by a busy or
//! unreachable node can go to the next one; a request that reached a function is never sent
//! twice. The response is streamed, never buffered.

use crate::metrics::Metrics;
use bytes::Bytes;
use fjord_core::daemon::{error_response, full_body, strip_hop_by_hop, HttpBody};
use fjord_core::{RouteTable, RoutedFunction};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Added to a function's own timeout for the lb's bound: room for a cold start and the hops.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(10);
/// How long a request for a function the lb does not know waits for a newer routing table
/// (a deploy that has committed but not yet reached this lb).
const UNKNOWN_FUNCTION_GRACE: Duration = Duration::from_millis(500);

pub struct Proxy {
    pub routes: watch::Receiver<Arc<RouteTable>>,
    pub metrics: Metrics,
    pub body_limit_bytes: usize,
    client: Client<HttpConnector, Full<Bytes>>,
    request_ids: AtomicU64,
    id_prefix: u32,
}

/// What one attempt on one node came to.
enum Attempt {
    Answered(Response<Incoming>),
    /// The node refused before reading the request (busy), or could not be reached.
    TryNext(String),
    /// The request may have reached the function; it must not be sent again.
    Failed(String),
}

impl Proxy {
    pub fn new(routes: watch::Receiver<Arc<RouteTable>>, body_limit_bytes: usize) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Arc::new(Proxy {
            routes,
            metrics: Metrics::default(),
            body_limit_bytes,
            client,
            request_ids: AtomicU64::new(1),
            id_prefix: rand::random(),
        })
    }

    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        request: Request<Incoming>,
    ) -> Result<Response<HttpBody>, std::convert::Infallible> {
        let path = request.uri().path();
        if let Some(rest) = path.strip_prefix("/function/") {
            let (name, tail) = match rest.find('/') {
                Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
                None => (rest.to_string(), "/".to_string()),
            };
            self.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
            let (response, known) = self.invoke(peer, &name, &tail, request).await;
            self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.metrics
                .record(known.then_some(name.as_str()), response.status().as_u16());
            return Ok(response);
        }
        let response = match path {
            "/healthz" => Response::new(full_body("ok\n")),
            "/metrics" => {
                let mut response = Response::new(full_body(self.metrics.render()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            }
            _ => error_response(
                StatusCode::NOT_FOUND,
                &format!("no such path {path:?}: functions are called at /function/{{name}}"),
                None,
            ),
        };
        Ok(response)
    }

    async fn lookup(&self, name: &str) -> Option<(Arc<RouteTable>, RoutedFunction)> {
        let mut routes = self.routes.clone();
        let found = |table: &Arc<RouteTable>| table.functions.get(name).cloned().map(|f| (table.clone(), f));
        if let Some(hit) = found(&routes.borrow_and_update()) {
            return Some(hit);
        }
        let deadline = tokio::time::Instant::now() + UNKNOWN_FUNCTION_GRACE;
        while tokio::time::timeout_at(deadline, routes.changed())
            .await
            .is_ok_and(|r| r.is_ok())
        {
            if let Some(hit) = found(&routes.borrow_and_update()) {
                return Some(hit);
            }
        }
        None
    }

    /// Returns the response and whether the function was known (for metric labels).
    async fn invoke(
        &self,
        peer: SocketAddr,
        name: &str,
        tail: &str,
        request: Request<Incoming>,
    ) -> (Response<HttpBody>, bool) {
        if fjord_core::name::check_dns_label(name).is_err() {
            let message = format!("{name:?} is not a function name (a DNS label: lowercase letters, digits, '-')");
            return (error_response(StatusCode::NOT_FOUND, &message, None), false);
        }
        let Some((table, function)) = self.lookup(name).await else {
            let message = format!("function {name:?} is not deployed");
            return (error_response(StatusCode::NOT_FOUND, &message, Some(name)), false);
        };
        let response = match tokio::time::timeout(
            function.timeout + TIMEOUT_MARGIN,
            self.forward(peer, &table, &function, tail, request),
        )
        .await
        {
            Ok(response) => response,
            Err(_) => error_response(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "function {name:?} did not answer within {} (its timeout plus the platform's margin)",
                    fjord_core::duration::format_duration(function.timeout + TIMEOUT_MARGIN)
                ),
                Some(name),
            ),
        };
        (response, true)
    }

    async fn forward(
        &self,
        peer: SocketAddr,
        table: &RouteTable,
        function: &RoutedFunction,
        tail: &str,
        request: Request<Incoming>,
    ) -> Response<HttpBody> {
        let name = function.name.as_str();
        let (mut parts, body) = request.into_parts();
        let too_large = || {
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the request body is larger than the limit of {} bytes",
                    self.body_limit_bytes
                ),
                Some(name),
            )
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.body_limit_bytes as u64) {
            return too_large();
        }
        let body = match Limited::new(body, self.body_limit_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return too_large(),
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("reading the request body failed: {e}"),
                    Some(name),
                )
            }
        };

        strip_hop_by_hop(&mut parts.headers);
        let request_id = match parts.headers.get("x-request-id").cloned() {
            Some(id) => id,
            None => {
                let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
                let id =
                    HeaderValue::from_str(&format!("{:08x}{n:012x}", self.id_prefix)).expect("hex is a valid header");
                parts.headers.insert("x-request-id", id.clone());
                id
            }
        };
        let forwarded_for = match parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
            parts.headers.insert("x-forwarded-for", v);
        }
        let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();

        let candidates = table.candidates(function);
        if candidates.is_empty() {
            return with_retry_after(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("no node is ready to run function {name:?}"),
                Some(name),
            ));
        }
        let mut refusals = Vec::new();
        for (attempt, node) in candidates.iter().enumerate() {
            if attempt > 0 {
                self.metrics.retries.fetch_add(1, Ordering::Relaxed);
            }
            let uri = format!("http://{}/invoke/{name}{tail}{query}", node.invoke_addr);
            let mut upstream = Request::builder().method(parts.method.clone()).uri(uri);
            if let Some(headers) = upstream.headers_mut() {
                *headers = parts.headers.clone();
            }
            let upstream = match upstream.body(Full::new(body.clone())) {
                Ok(r) => r,
                Err(e) => return error_response(StatusCode::BAD_REQUEST, &format!("invalid request: {e}"), Some(name)),
            };
            match self.attempt(upstream).await {
                Attempt::Answered(response) => {
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    parts.headers.insert("x-request-id", request_id.clone());
                    return Response::from_parts(parts, body.map_err(Into::into).boxed());
                }
                Attempt::TryNext(reason) => refusals.push(format!("{}: {reason}", node.id)),
                Attempt::Failed(reason) => {
                    return error_response(
                        StatusCode::BAD_GATEWAY,
                        &format!("node {} failed while serving function {name:?}: {reason}", node.id),
                        Some(name),
                    )
                }
            }
        }
        with_retry_after(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("no node could take function {name:?} now ({})", refusals.join("; ")),
            Some(name),
        ))
    }

    async fn attempt(&self, request: Request<Full<Bytes>>) -> Attempt {
        match self.client.request(request).await {
            Ok(response) if response.headers().contains_key("x-fjord-busy") => Attempt::TryNext("busy".into()),
            Ok(response) => Attempt::Answered(response),
            // Only failures before the request was written are retried: a connect error.
            Err(e) if e.is_connect() => Attempt::TryNext(format!("unreachable ({e})")),
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }
}

fn with_retry_after(mut response: Response<HttpBody>) -> Response<HttpBody> {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
