//! Per-request timeout: each request may take its function's timeout plus a margin (room for a
//! cold start and the hops); past it the client gets 504 naming the function and the limit,
//! never a hanging connection.

use super::LayerFuture;
use crate::error::ProxyError;
use fjord_daemon::HttpBody;
use http::{Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};

/// Gives a request's time limit; `None` for no limit (health and metrics endpoints).
pub type LimitFor = Arc<dyn Fn(&str) -> Option<Duration> + Send + Sync>;

#[derive(Clone)]
pub struct TimeoutLayer {
    limit_for: LimitFor,
}

impl TimeoutLayer {
    /// `limit_for` maps a function name to its limit.
    pub fn new(limit_for: LimitFor) -> Self {
        TimeoutLayer { limit_for }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            limit_for: self.limit_for.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    limit_for: LimitFor,
}

impl<S, B> Service<Request<B>> for Timeout<S>
where
    S: Service<Request<B>, Response = Response<HttpBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<HttpBody>;
    type Error = Infallible;
    type Future = LayerFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> LayerFuture {
        let function = super::function_of(&request).map(str::to_string);
        let limit = function.as_deref().and_then(|f| (self.limit_for)(f));
        let inner = self.inner.clone();
        Box::pin(async move {
            let Some(limit) = limit else {
                return inner.oneshot(request).await;
            };
            match tokio::time::timeout(limit, inner.oneshot(request)).await {
                Ok(response) => response,
                Err(_) => Ok(ProxyError::Timeout { function, limit }.into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_support::get;
    use fjord_daemon::full_body;
    use http::StatusCode;

    #[tokio::test(start_paused = true)]
    async fn a_request_past_its_limit_gets_504_and_others_pass() {
        let slow = tower::service_fn(|request: Request<()>| {
            let wait = if request.uri().path().ends_with("/slow") { 10 } else { 1 };
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(wait)).await;
                Ok::<_, Infallible>(Response::new(full_body("done")))
            }) as LayerFuture
        });
        let service = TimeoutLayer::new(Arc::new(|f: &str| (f == "f").then(|| Duration::from_secs(5)))).layer(slow);
        let timed_out = service.clone().oneshot(get("/function/f/slow")).await.unwrap();
        assert_eq!(timed_out.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            service
                .clone()
                .oneshot(get("/function/f/quick"))
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        // A function without a limit is not cut.
        assert_eq!(
            service.clone().oneshot(get("/function/g/slow")).await.unwrap().status(),
            StatusCode::OK
        );
    }
}
