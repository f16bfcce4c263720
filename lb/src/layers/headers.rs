//! Header hygiene at the front door: every request gets an `X-Request-Id` (kept if the client
//! sent a sane one) that the agent and the function see and the response carries back;
//! `X-Forwarded-For` gains the client's address; hop-by-hop headers are dropped both ways.

use super::LayerFuture;
use fjord_daemon::{strip_hop_by_hop, HttpBody};
use http::{HeaderValue, Request, Response};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};

/// The client's address, put in the request's extensions by the connection.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The request id chosen for this request, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

#[derive(Clone)]
pub struct HeadersLayer {
    next_id: Arc<AtomicU64>,
    prefix: u32,
}

impl Default for HeadersLayer {
    fn default() -> Self {
        HeadersLayer {
            next_id: Arc::new(AtomicU64::new(1)),
            prefix: rand::random(),
        }
    }
}

impl<S> Layer<S> for HeadersLayer {
    type Service = Headers<S>;
    fn layer(&self, inner: S) -> Headers<S> {
        Headers {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Headers<S> {
    inner: S,
    layer: HeadersLayer,
}

/// A client-chosen request id is kept when it is short and plain.
fn sane_id(value: &HeaderValue) -> bool {
    value.len() <= 128
        && value
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

impl<S, B> Service<Request<B>> for Headers<S>
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

    fn call(&mut self, mut request: Request<B>) -> LayerFuture {
        strip_hop_by_hop(request.headers_mut());
        let id = match request.headers().get("x-request-id").filter(|v| sane_id(v)) {
            Some(id) => id.clone(),
            None => {
                let n = self.layer.next_id.fetch_add(1, Ordering::Relaxed);
                let id = HeaderValue::from_str(&format!("{:08x}{n:012x}", self.layer.prefix))
                    .expect("hex is a valid header");
                request.headers_mut().insert("x-request-id", id.clone());
                id
            }
        };
        let client = request
            .extensions()
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let forwarded = match request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {client}"),
            None => client.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded) {
            request.headers_mut().insert("x-forwarded-for", value);
        }
        request.extensions_mut().insert(RequestId(id.clone()));
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut response = inner.oneshot(request).await?;
            strip_hop_by_hop(response.headers_mut());
            response.headers_mut().insert("x-request-id", id);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_daemon::full_body;

    #[tokio::test]
    async fn ids_forwarding_and_hop_by_hop_hygiene() {
        let seen = Arc::new(std::sync::Mutex::new(None));
        let s = seen.clone();
        let inner = tower::service_fn(move |request: Request<()>| {
            *s.lock().unwrap() = Some(request.headers().clone());
            Box::pin(async {
                let mut response = Response::new(full_body("ok"));
                response
                    .headers_mut()
                    .insert("connection", HeaderValue::from_static("x-secret"));
                response.headers_mut().insert("x-secret", HeaderValue::from_static("1"));
                Ok::<_, Infallible>(response)
            }) as LayerFuture
        });
        let service = HeadersLayer::default().layer(inner);
        let mut request = Request::builder()
            .uri("/function/f")
            .header("connection", "keep-alive, x-drop-me")
            .header("x-drop-me", "1")
            .header("keep-alive", "timeout=5")
            .header("x-forwarded-for", "10.0.0.1")
            .body(())
            .unwrap();
        request
            .extensions_mut()
            .insert(ClientAddr("192.0.2.7:4000".parse().unwrap()));
        let response = service.clone().oneshot(request).await.unwrap();
        let forwarded = seen.lock().unwrap().clone().unwrap();
        assert!(forwarded.get("connection").is_none() && forwarded.get("keep-alive").is_none());
        assert!(
            forwarded.get("x-drop-me").is_none(),
            "a header named by Connection went through"
        );
        assert_eq!(forwarded["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        let id = forwarded["x-request-id"].clone();
        assert_eq!(response.headers()["x-request-id"], id);
        assert!(response.headers().get("x-secret").is_none());

        // A sane client id is kept; an unreasonable one is replaced.
        let request = Request::builder()
            .uri("/")
            .header("x-request-id", "abc-123")
            .body(())
            .unwrap();
        assert_eq!(
            service.clone().oneshot(request).await.unwrap().headers()["x-request-id"],
            "abc-123"
        );
        let request = Request::builder()
            .uri("/")
            .header("x-request-id", "a b\"<script>")
            .body(())
            .unwrap();
        assert_ne!(
            service.clone().oneshot(request).await.unwrap().headers()["x-request-id"],
            "a b\"<script>"
        );
    }
}
