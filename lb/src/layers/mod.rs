//! The lb's front-door protections, one concern per tower layer, each tested alone:
//!
//! | layer | refuses with |
//! |---|---|
//! | [`headers`]: request id, `X-Forwarded-For`, hop-by-hop hygiene | — |
//! | [`shed`]: a global limit on requests in progress | 503 + Retry-After |
//! | [`body_limit`]: a declared body over the limit | 413 |
//! | [`rate_limit`]: optional requests per second per function | 429 + Retry-After |
//! | [`timeout`]: the function's timeout plus a margin | 504 |
//!
//! Every layer wraps a service that answers `Response<HttpBody>` and never fails, and is one
//! itself, so the stack composes in any order.

pub mod body_limit;
pub mod headers;
pub mod rate_limit;
pub mod shed;
pub mod timeout;

use fjord_daemon::HttpBody;
use futures::future::BoxFuture;
use http::{Request, Response};
use std::convert::Infallible;

/// The future every layer returns.
pub type LayerFuture = BoxFuture<'static, Result<Response<HttpBody>, Infallible>>;

/// The function name in `/function/{name}[/...]`, if the path has that shape.
pub fn function_of<B>(request: &Request<B>) -> Option<&str> {
    crate::path::parse_function_path(request.uri().path()).map(|(name, _)| name)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use fjord_daemon::full_body;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An inner service that answers 200 and counts its calls.
    pub fn counting_ok() -> (
        impl tower::Service<Request<()>, Response = Response<HttpBody>, Error = Infallible, Future = LayerFuture> + Clone,
        Arc<AtomicUsize>,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let service = tower::service_fn(move |_request: Request<()>| {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok::<_, Infallible>(Response::new(full_body("ok"))) }) as LayerFuture
        });
        (service, calls)
    }

    pub fn get(path: &str) -> Request<()> {
        Request::builder().uri(path).body(()).unwrap()
    }
}
