//! Optional per-function rate limits: a token bucket per function (`--rate-limit echo=100`),
//! refilled continuously, with a burst of one second's worth. Over the limit: 429 with
//! `Retry-After`. Functions without a limit pass untouched, with no lock taken.

use super::LayerFuture;
use crate::error::ProxyError;
use fjord_daemon::HttpBody;
use http::{Request, Response};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service, ServiceExt};

struct Bucket {
    per_second: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second.max(1.0));
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone, Default)]
pub struct RateLimitLayer {
    buckets: Arc<HashMap<String, Mutex<Bucket>>>,
}

impl RateLimitLayer {
    /// `limits`: function name -> requests per second.
    pub fn new(limits: &HashMap<String, f64>) -> Self {
        let now = Instant::now();
        let buckets = limits
            .iter()
            .map(|(name, &per_second)| {
                (
                    name.clone(),
                    Mutex::new(Bucket {
                        per_second,
                        tokens: per_second.max(1.0),
                        refilled: now,
                    }),
                )
            })
            .collect();
        RateLimitLayer {
            buckets: Arc::new(buckets),
        }
    }

    /// Parses `name=rps` pairs.
    pub fn parse(pairs: &[String]) -> Result<HashMap<String, f64>, String> {
        pairs
            .iter()
            .map(|pair| {
                let (name, rate) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--rate-limit {pair:?} is not name=requests_per_second"))?;
                fjord_core::name::check_dns_label(name).map_err(|r| format!("--rate-limit: function name {r}"))?;
                let rate: f64 = rate
                    .parse()
                    .map_err(|_| format!("--rate-limit {pair:?}: {rate:?} is not a number"))?;
                if !(rate > 0.0 && rate.is_finite()) {
                    return Err(format!("--rate-limit {pair:?}: the rate must be above 0"));
                }
                Ok((name.to_string(), rate))
            })
            .collect()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S, B> Service<Request<B>> for RateLimit<S>
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
        if let Some(function) = super::function_of(&request) {
            if let Some(bucket) = self.layer.buckets.get(function) {
                let mut bucket = bucket.lock().expect("bucket lock poisoned");
                if !bucket.take(Instant::now()) {
                    let response = ProxyError::RateLimited {
                        function: function.to_string(),
                        per_second: bucket.per_second,
                    }
                    .into_response();
                    return Box::pin(async { Ok(response) });
                }
            }
        }
        let inner = self.inner.clone();
        Box::pin(inner.oneshot(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::test_support::{counting_ok, get};
    use http::StatusCode;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn a_limited_function_gets_429_past_its_burst_and_others_pass() {
        let (ok, calls) = counting_ok();
        let limits = RateLimitLayer::parse(&["slow=3".to_string()]).unwrap();
        let service = RateLimitLayer::new(&limits).layer(ok);
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(
                service
                    .clone()
                    .oneshot(get("/function/slow/x"))
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        // A burst of 3 within the same instant, then refusals (refill is 3 per second).
        assert_eq!(&statuses[..3], &[200, 200, 200]);
        assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
        for _ in 0..10 {
            assert_eq!(
                service.clone().oneshot(get("/function/free")).await.unwrap().status(),
                StatusCode::OK
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 13);
    }

    #[test]
    fn bad_limits_are_refused_naming_what() {
        assert!(RateLimitLayer::parse(&["echo".into()])
            .unwrap_err()
            .contains("name=requests_per_second"));
        assert!(RateLimitLayer::parse(&["echo=fast".into()])
            .unwrap_err()
            .contains("not a number"));
        assert!(RateLimitLayer::parse(&["echo=0".into()])
            .unwrap_err()
            .contains("above 0"));
        assert!(RateLimitLayer::parse(&["Bad=1".into()])
            .unwrap_err()
            .contains("function name"));
    }

    #[test]
    fn the_bucket_refills_with_time() {
        let start = Instant::now();
        let mut bucket = Bucket {
            per_second: 2.0,
            tokens: 0.0,
            refilled: start,
        };
        assert!(!bucket.take(start));
        assert!(bucket.take(start + std::time::Duration::from_millis(500)));
        assert!(!bucket.take(start + std::time::Duration::from_millis(600)));
    }
}
