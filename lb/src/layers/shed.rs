//! Load shedding: at most `limit` requests in progress through the lb; one more is refused at
//! once with 503 and `Retry-After`, instead of queueing without bound.

use super::LayerFuture;
use crate::error::ProxyError;
use fjord_daemon::HttpBody;
use http::{Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt};

#[derive(Clone)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
}

impl ShedLayer {
    pub fn new(limit: usize) -> Self {
        ShedLayer {
            permits: Arc::new(Semaphore::new(limit)),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;
    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S, B> Service<Request<B>> for Shed<S>
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
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let response = ProxyError::Overloaded {
                function: super::function_of(&request).map(str::to_string),
            }
            .into_response();
            return Box::pin(async { Ok(response) });
        };
        let inner = self.inner.clone();
        Box::pin(async move {
            let response = inner.oneshot(request).await;
            drop(permit);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_support::get;
    use fjord_daemon::full_body;
    use http::{header, StatusCode};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn requests_beyond_the_limit_are_shed_with_503() {
        let release = Arc::new(tokio::sync::Notify::new());
        let entered = Arc::new(AtomicUsize::new(0));
        let (r, e) = (release.clone(), entered.clone());
        let slow = tower::service_fn(move |_: Request<()>| {
            let (r, e) = (r.clone(), e.clone());
            Box::pin(async move {
                e.fetch_add(1, Ordering::SeqCst);
                r.notified().await;
                Ok::<_, Infallible>(Response::new(full_body("done")))
            }) as LayerFuture
        });
        let service = ShedLayer::new(2).layer(slow);
        let a = tokio::spawn(service.clone().oneshot(get("/function/a")));
        let b = tokio::spawn(service.clone().oneshot(get("/function/a")));
        while entered.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let shed = service.clone().oneshot(get("/function/a")).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
        release.notify_waiters();
        assert_eq!(a.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(b.await.unwrap().unwrap().status(), StatusCode::OK);
        // Permits came back.
        let (ok, calls) = crate::layers::test_support::counting_ok();
        let service = ShedLayer::new(1).layer(ok);
        for _ in 0..3 {
            assert_eq!(
                service.clone().oneshot(get("/x")).await.unwrap().status(),
                StatusCode::OK
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
