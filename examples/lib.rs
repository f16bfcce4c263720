//! A tiny HTTP server for the example functions, following Fjord's function contract: serve HTTP
//! on `$PORT` (default 8080), answer `GET /_/health` when ready. It binds `$HOST`, default
//! 127.0.0.1 (a container runtime sets 0.0.0.0).

#[path = "echo/function.rs"]
pub mod echo;
#[path = "env/function.rs"]
pub mod env;
#[path = "jobs/function.rs"]
pub mod jobs;
#[path = "sleep/function.rs"]
pub mod sleep;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

pub type Reply = Response<Full<Bytes>>;

/// A response with a status and a body.
pub fn reply(status: u16, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

/// The value of `key` in the request's query string.
pub fn query_param(request: &Request<Incoming>, key: &str) -> Option<String> {
    request.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| v.to_string())
    })
}

/// Serves `handler` until the process is killed. `/_/health` is answered here.
pub fn serve<H, F>(handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
        let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
        let addr: SocketAddr = format!("{host}:{port}").parse().expect("HOST and PORT form an address");
        let listener = tokio::net::TcpListener::bind(addr).await.expect("binding $PORT");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        if request.uri().path() == "/_/health" {
                            return Ok::<_, Infallible>(reply(200, "ok"));
                        }
                        Ok(handler(request).await)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
}
