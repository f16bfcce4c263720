//! The agent's HTTP endpoint, called by the lb and the control plane, on the paths and headers
//! of `fjord_core::agent_http`:
//!
//! - an invocation (any method, the function's name, then the tail) leases an instance and
//!   proxies the request to it with the tail as its path, streaming the response back; the
//!   lease ends when the response body does.
//! - `GET /v1/logs/{function}?tail=N` returns the function's captured log lines (JSON).
//! - `GET /v1/images/resolve?image=<reference>` pins an image reference to the digest its
//!   registry serves now, with this node's registry credentials: 200 `{"image", "digest",
//!   "pinned", "status"}`, 422 `{"error"}` with the registry's reason, 400 without `image`, 501 on
//!   a runtime that runs no images. After a resolve the node starts pulling the pinned image, so
//!   the first cold start does not wait for it; `status` is where this node stands with the
//!   pinned image (`null` before its first pull or check), so asking again follows the pull.
//! - `GET /healthz`.
//!
//! A "busy" answer (503 with the busy header) is given before the request body is read, so the
//! lb may safely send the request to another node.

use crate::pool::{AcquireError, InstancePool};
use crate::runtime::{ImageStatus, ResolvedImage};
use fjord_core::agent_http;
use fjord_daemon::{error_response, full_body, strip_hop_by_hop, GuardedBody, HttpBody};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a failed call waits to learn whether, and why, its instance died.
const EXIT_REASON_WAIT: Duration = Duration::from_secs(3);

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
        let response = if let Some((function, tail)) = agent_http::parse_invoke_path(&path) {
            let (function, tail) = (function.into_owned(), tail.to_string());
            self.invoke(&function, &tail, request).await
        } else if let Some(function) = agent_http::parse_logs_path(&path) {
            let tail = agent_http::logs_tail(request.uri().query());
            json_response(&self.pool.logs.tail(&function, tail))
        } else if path == agent_http::RESOLVE_IMAGE_PATH {
            if request.method() == http::Method::GET {
                self.resolve_image(request.uri().query()).await
            } else {
                error_response(StatusCode::METHOD_NOT_ALLOWED, &agent_http::resolve_image_usage(), None)
            }
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

    /// Resolves `?image=` to a digest through the runtime, then has the runtime pull the
    /// pinned image in the background.
    async fn resolve_image(&self, query: Option<&str>) -> Response<HttpBody> {
        let Some(image) = agent_http::resolve_image_param(query) else {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("the image parameter is missing: {}", agent_http::resolve_image_usage()),
                None,
            );
        };
        let runtime = self.pool.runtime();
        match runtime.resolve_image(&image).await {
            Ok(Some(resolved)) => {
                runtime.prefetch_image(&resolved.pinned);
                let status = runtime.image_status(&resolved.pinned);
                json_response(&ResolveAnswer { resolved, status })
            }
            Ok(None) => error_response(
                StatusCode::NOT_IMPLEMENTED,
                &format!(
                    "this node runs the {} runtime, which runs the spec's command, not an image: \
                     there is no digest to resolve {image:?} to",
                    runtime.name()
                ),
                None,
            ),
            Err(reason) => error_response(StatusCode::UNPROCESSABLE_ENTITY, &reason, None),
        }
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
                // The instance may have died mid-request: give the runtime a moment to learn
                // why (the engine reports a container's exit a little after the connection
                // breaks, later still on a busy node), so the caller is told the reason.
                let reason = match tokio::time::timeout(EXIT_REASON_WAIT, instance.wait_exit()).await {
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
        agent_http::mark_served_by(response.headers_mut(), &self.node_id, instance.id(), cold);
        response
    }

    fn acquire_error(&self, function: &str, error: AcquireError) -> Response<HttpBody> {
        let message = error.to_string();
        match error {
            AcquireError::UnknownFunction(_) => error_response(StatusCode::NOT_FOUND, &message, Some(function)),
            AcquireError::Busy(_) => {
                let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, &message, Some(function));
                agent_http::mark_busy(response.headers_mut());
                response
            }
            AcquireError::Timeout { .. } => error_response(StatusCode::GATEWAY_TIMEOUT, &message, Some(function)),
            AcquireError::StartFailed(_) => error_response(StatusCode::BAD_GATEWAY, &message, Some(function)),
        }
    }
}

/// The answer of `GET /v1/images/resolve`.
#[derive(serde::Serialize)]
struct ResolveAnswer {
    #[serde(flatten)]
    resolved: ResolvedImage,
    status: Option<ImageStatus>,
}

fn json_response(value: &impl serde::Serialize) -> Response<HttpBody> {
    let mut response = Response::new(full_body(serde_json::to_vec(value).unwrap_or_default()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
