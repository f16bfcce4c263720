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
use crate::runtime::{ImageStatus, ResolvedImage, RuntimeError};
use fjord_core::agent_http;
use fjord_daemon::{full_body, strip_hop_by_hop, GuardedBody, HttpBody};
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
                InvokeError::MethodNotAllowed.into_response()
            }
        } else if path == "/healthz" {
            Response::new(full_body("ok\n"))
        } else {
            InvokeError::NoSuchEndpoint { path }.into_response()
        };
        Ok(response)
    }

    /// Resolves `?image=` to a digest through the runtime, then has the runtime pull the
    /// pinned image in the background.
    async fn resolve_image(&self, query: Option<&str>) -> Response<HttpBody> {
        let Some(image) = agent_http::resolve_image_param(query) else {
            return InvokeError::ImageMissing.into_response();
        };
        let runtime = self.pool.runtime();
        match runtime.resolve_image(&image).await {
            Ok(Some(resolved)) => {
                runtime.prefetch_image(&resolved.pinned);
                let status = runtime.image_status(&resolved.pinned);
                json_response(&ResolveAnswer { resolved, status })
            }
            Ok(None) => InvokeError::NoImages {
                runtime: runtime.name(),
                image,
            }
            .into_response(),
            Err(reason) => InvokeError::ImageUnresolvable(reason).into_response(),
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
            Err(source) => {
                let function = function.to_string();
                return InvokeError::Acquire { function, source }.into_response();
            }
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
                let (function, tail) = (function.to_string(), tail.to_string());
                return InvokeError::InvalidPath { function, tail }.into_response();
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
                let function = function.to_string();
                return InvokeError::FunctionFailed { function, reason }.into_response();
            }
            Err(_) => {
                drop(lease);
                let function = function.to_string();
                return InvokeError::Timeout { function, timeout }.into_response();
            }
        };
        agent_http::mark_served_by(response.headers_mut(), &self.node_id, instance.id(), cold);
        response
    }
}

/// Every refusal the agent answers itself, mapped to HTTP in one place
/// ([`InvokeError::into_response`]): status, the busy header where another node may take the
/// request, and a JSON body `{"error", "code", "function"}` with a stable `code`.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("no such endpoint {path:?} on the node agent")]
    NoSuchEndpoint { path: String },
    #[error("{}", agent_http::resolve_image_usage())]
    MethodNotAllowed,
    #[error("the image parameter is missing: {}", agent_http::resolve_image_usage())]
    ImageMissing,
    #[error(
        "this node runs the {runtime} runtime, which runs the spec's command, not an image: \
         there is no digest to resolve {image:?} to"
    )]
    NoImages { runtime: &'static str, image: String },
    /// The registry's reason.
    #[error("{0}")]
    ImageUnresolvable(String),
    #[error("invalid path {tail:?}")]
    InvalidPath { function: String, tail: String },
    #[error("{source}{}", start_hint(function, source))]
    Acquire { function: String, source: AcquireError },
    #[error("function {function:?} failed: {reason}")]
    FunctionFailed { function: String, reason: String },
    #[error(
        "function {function:?} did not answer within its timeout of {}",
        fjord_core::duration::format_duration(*timeout)
    )]
    Timeout { function: String, timeout: Duration },
}

/// What to do about an instance that would not start: read its output, and for one that died
/// or stayed silent, make it listen where the platform looks.
fn start_hint(function: &str, error: &AcquireError) -> String {
    match error {
        AcquireError::StartFailed(RuntimeError::DiedStarting { .. } | RuntimeError::NotReady { .. }) => format!(
            ". A function must serve HTTP on the port given in its PORT environment variable ($PORT); \
             its output: `fjord logs {function}`"
        ),
        AcquireError::StartFailed(_) => format!("; its output: `fjord logs {function}`"),
        _ => String::new(),
    }
}

impl InvokeError {
    pub fn status(&self) -> StatusCode {
        match self {
            InvokeError::NoSuchEndpoint { .. } => StatusCode::NOT_FOUND,
            InvokeError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            InvokeError::ImageMissing | InvokeError::InvalidPath { .. } => StatusCode::BAD_REQUEST,
            InvokeError::NoImages { .. } => StatusCode::NOT_IMPLEMENTED,
            InvokeError::ImageUnresolvable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            InvokeError::Acquire { source, .. } => match source {
                AcquireError::UnknownFunction(_) => StatusCode::NOT_FOUND,
                AcquireError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                AcquireError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                AcquireError::StartFailed(_) => StatusCode::BAD_GATEWAY,
            },
            InvokeError::FunctionFailed { .. } => StatusCode::BAD_GATEWAY,
            InvokeError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The stable, machine-readable name of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            InvokeError::NoSuchEndpoint { .. } => "no_such_path",
            InvokeError::MethodNotAllowed => "method_not_allowed",
            InvokeError::ImageMissing | InvokeError::InvalidPath { .. } => "bad_request",
            InvokeError::NoImages { .. } => "no_images",
            InvokeError::ImageUnresolvable(_) => "image_unresolvable",
            InvokeError::Acquire { source, .. } => match source {
                AcquireError::UnknownFunction(_) => "function_not_found",
                AcquireError::Busy(_) => "busy",
                AcquireError::Timeout { .. } => "timeout",
                AcquireError::StartFailed(_) => "start_failed",
            },
            InvokeError::FunctionFailed { .. } => "function_failed",
            InvokeError::Timeout { .. } => "timeout",
        }
    }

    fn function(&self) -> Option<&str> {
        match self {
            InvokeError::InvalidPath { function, .. }
            | InvokeError::Acquire { function, .. }
            | InvokeError::FunctionFailed { function, .. }
            | InvokeError::Timeout { function, .. } => Some(function),
            _ => None,
        }
    }

    /// The answer the caller gets; a busy one is marked so the lb tries another node.
    pub fn into_response(self) -> Response<HttpBody> {
        let mut response = fjord_daemon::json_error(self.status(), self.code(), &self.to_string(), self.function());
        if matches!(
            self,
            InvokeError::Acquire {
                source: AcquireError::Busy(_),
                ..
            }
        ) {
            agent_http::mark_busy(response.headers_mut());
        }
        response
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_function_that_never_listens_is_pointed_to_its_logs_and_port() {
        let source = AcquireError::StartFailed(RuntimeError::NotReady {
            function: "quiet".into(),
            waited: Duration::from_secs(10),
        });
        let response = InvokeError::Acquire {
            function: "quiet".into(),
            source,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert!(!agent_http::is_busy(response.headers()));
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["code"], "start_failed");
        assert_eq!(body["function"], "quiet");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("not ready after"), "{message}");
        assert!(message.contains("fjord logs quiet"), "{message}");
        assert!(message.contains("$PORT"), "{message}");
    }

    #[test]
    fn a_busy_refusal_is_marked_for_the_lb() {
        let source = AcquireError::Busy("no memory".into());
        let error = InvokeError::Acquire {
            function: "f".into(),
            source,
        };
        assert_eq!(error.code(), "busy");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(agent_http::is_busy(response.headers()));
    }
}
