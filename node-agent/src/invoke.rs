//! The agent's HTTP endpoint, called by the lb:
//!
//! - `ANY /invoke/{function}[/{rest}]` leases an instance and proxies the request to it as
//!   `/{rest}`, streaming the response back; the lease ends when the response body does.
//! - `GET /v1/logs/{function}?tail=N` returns the function's captured log lines (JSON).
//! - `GET /healthz`.
//!
//! A "busy" answer (503 with `x-fjord-busy: 1`) is given before the request body is read, so
//! the lb may safely send the request to another node.

use crate::pool::{AcquireError, InstancePool};
use fjord_core::daemon::{error_response, full_body, strip_hop_by_hop, GuardedBody, HttpBody};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct InvokeService {
    pub pool: Arc<InstancePool>,
    pub node_id: String,
    client: Client<HttpConnector, Incoming>,
}

impl InvokeService {
    pub fn new(pool: Arc<InstancePool>, node_id: String) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector);
        Arc::new(InvokeService { pool, node_id, client })
    }
}

impl InvokeService {
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<HttpBody>, std::convert::Infallible> {
        let path = request.uri().path().to_string();
        let response = if let Some(rest) = path.strip_prefix("/invoke/") {
            let (function, tail) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let function = function.to_string();
            let tail = tail.to_string();
            self.invoke(&function, &tail, request).await
        } else if let Some(function) = path.strip_prefix("/v1/logs/") {
            let tail = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("tail=")))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(100);
            let lines = self.pool.logs.tail(function, tail);
            let mut response = Response::new(full_body(serde_json::to_vec(&lines).unwrap_or_default()));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        } else if path == "/healthz" {
            Response::new(full_body("ok\n"))
        } else {
            error_response(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint {path:?} on the node agent"),
                None,
            )
        };
        Ok(response)
    }

    async fn invoke(&self, function: &str, tail: &str, request: Request<Incoming>) -> Response<HttpBody> {
        let Some(record) = self.pool.record(function) else {
            // Perhaps deployed a moment ago: acquire waits briefly for the assignment.
            return self
                .invoke_after_acquire(function, tail, request, Duration::from_secs(60))
                .await;
        };
        self.invoke_after_acquire(function, tail, request, record.spec.timeout)
            .await
    }

    async fn invoke_after_acquire(
        &self,
        function: &str,
        tail: &str,
        request: Request<Incoming>,
        timeout: Duration,
    ) -> Response<HttpBody> {
        let deadline = Instant::now() + timeout;
        let lease = match self.pool.acquire(function, deadline).await {
            Ok(lease) => lease,
            Err(e) => return self.acquire_error(function, e),
        };
        let timeout = lease.record.spec.timeout;
        let cold = lease.cold;
        let instance = lease.instance().clone();
        let (mut parts, body) = request.into_parts();
        let target = match parts.uri.query() {
            Some(q) => format!("http://{}{tail}?{q}", instance.addr()),
            None => format!("http://{}{tail}", instance.addr()),
        };
        parts.uri = match target.parse() {
            Ok(uri) => uri,
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid path {tail:?}"),
                    Some(function),
                )
            }
        };
        strip_hop_by_hop(&mut parts.headers);
        let upstream = Request::from_parts(parts, body);
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let result = tokio::time::timeout(remaining, self.client.request(upstream)).await;
        let mut response = match result {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, GuardedBody::new(body, lease).map_err(Into::into).boxed())
            }
            Ok(Err(e)) => {
                // The instance may have died mid-request: give its exit a moment to be reaped.
                let reason = match tokio::time::timeout(Duration::from_millis(500), instance.wait_exit()).await {
                    Ok(reason) => format!("the instance {} {reason}", instance.id()),
                    Err(_) => format!("the connection to instance {} failed: {e}", instance.id()),
                };
                drop(lease);
                return error_response(
                    StatusCode::BAD_GATEWAY,
                    &format!("function {function:?} failed: {reason}"),
                    Some(function),
                );
            }
            Err(_) => {
                drop(lease);
                return error_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!(
                        "function {function:?} did not answer within its timeout of {}",
                        fjord_core::duration::format_duration(timeout)
                    ),
                    Some(function),
                );
            }
        };
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(instance.id()) {
            headers.insert("x-fjord-instance", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.node_id) {
            headers.insert("x-fjord-node", v);
        }
        if cold {
            headers.insert("x-fjord-cold-start", HeaderValue::from_static("1"));
        }
        response
    }

    fn acquire_error(&self, function: &str, error: AcquireError) -> Response<HttpBody> {
        let message = error.to_string();
        match error {
            AcquireError::UnknownFunction(_) => error_response(StatusCode::NOT_FOUND, &message, Some(function)),
            AcquireError::Busy(_) => {
                let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, &message, Some(function));
                response
                    .headers_mut()
                    .insert("x-fjord-busy", HeaderValue::from_static("1"));
                response
            }
            AcquireError::Timeout { .. } => error_response(StatusCode::GATEWAY_TIMEOUT, &message, Some(function)),
            AcquireError::StartFailed(_) => error_response(StatusCode::BAD_GATEWAY, &message, Some(function)),
        }
    }
}
