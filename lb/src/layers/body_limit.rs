//! Body limit, early: a request whose `Content-Length` is over the limit gets 413 before a byte
//! of its body is read. Bodies without a declared length are limited while they are read
//! (the proxy reads through `http_body_util::Limited` with the same limit).

use super::LayerFuture;
use crate::error::ProxyError;
use fjord_daemon::HttpBody;
use http::{header, Request, Response};
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};

#[derive(Clone)]
pub struct BodyLimitLayer {
    limit_bytes: usize,
}

impl BodyLimitLayer {
    pub fn new(limit_bytes: usize) -> Self {
        BodyLimitLayer { limit_bytes }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;
    fn layer(&self, inner: S) -> BodyLimit<S> {
        BodyLimit {
            inner,
            limit_bytes: self.limit_bytes,
        }
    }
}

#[derive(Clone)]
pub struct BodyLimit<S> {
    inner: S,
    limit_bytes: usize,
}

impl<S, B> Service<Request<B>> for BodyLimit<S>
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
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.limit_bytes as u64) {
            let response = ProxyError::BodyTooLarge {
                function: super::function_of(&request).map(str::to_string),
                limit_bytes: self.limit_bytes,
            }
            .into_response();
            return Box::pin(async { Ok(response) });
        }
        let inner = self.inner.clone();
        Box::pin(inner.oneshot(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_support::counting_ok;
    use http::{header, StatusCode};
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn a_declared_body_over_the_limit_is_refused_before_the_inner_service() {
        let (ok, calls) = counting_ok();
        let service = BodyLimitLayer::new(10).layer(ok);
        let request = |len: &str| {
            Request::builder()
                .uri("/function/f")
                .header(header::CONTENT_LENGTH, len)
                .body(())
                .unwrap()
        };
        assert_eq!(
            service.clone().oneshot(request("11")).await.unwrap().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(
            service.clone().oneshot(request("10")).await.unwrap().status(),
            StatusCode::OK
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
