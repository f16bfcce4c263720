//! Plumbing every Fjord daemon shares: logging set-up, the shutdown signal, the HTTP serve loop
//! and its JSON errors, and [`sys`], the only module with `unsafe`. The domain types
//! (`fjord-core`) and the leader's decisions (`fjord-decisions`) carry no I/O; this crate is where
//! the daemons' common I/O lives.

pub mod flags;
pub mod sys;

use std::future::Future;

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

/// Starts logging to stderr, filtered by `RUST_LOG` (default `info`). Safe to call twice.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

/// Boxed errors and bodies, shared by the HTTP daemons (agent and lb).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type HttpBody = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;

/// A complete body from bytes.
pub fn full_body(bytes: impl Into<bytes::Bytes>) -> HttpBody {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Serves HTTP/1.1 on `listener`, with the service `make_service` builds for each connection's
/// peer address, until `shutdown` resolves, then stops accepting
/// and gives open connections up to `drain` to finish their requests. A client that has not sent
/// a whole request head within `header_read_timeout` is disconnected (slowloris).
pub async fn serve_http<M, S, F>(
    listener: tokio::net::TcpListener,
    make_service: M,
    shutdown: F,
    drain: std::time::Duration,
    header_read_timeout: std::time::Duration,
) where
    M: Fn(std::net::SocketAddr) -> S,
    S: hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = hyper::Response<HttpBody>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(256 * 1024);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), make_service(peer));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
}

/// Headers that describe one hop and are never forwarded (RFC 9110, section 7.6.1).
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, and the headers that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    let named: Vec<String> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in HOP_BY_HOP.iter().copied().chain(named.iter().map(String::as_str)) {
        headers.remove(name);
    }
}

/// A JSON error answer: `{"error": message, "function": name}`.
pub fn error_response(status: hyper::StatusCode, message: &str, function: Option<&str>) -> hyper::Response<HttpBody> {
    json_body_error(status, serde_json::json!({ "error": message, "function": function }))
}

/// A JSON error answer with a stable machine-readable code: `{"error", "code", "function"}`.
pub fn json_error(
    status: hyper::StatusCode,
    code: &str,
    message: &str,
    function: Option<&str>,
) -> hyper::Response<HttpBody> {
    json_body_error(
        status,
        serde_json::json!({ "error": message, "code": code, "function": function }),
    )
}

fn json_body_error(status: hyper::StatusCode, body: serde_json::Value) -> hyper::Response<HttpBody> {
    let mut response = hyper::Response::new(full_body(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The token a node agent or lb presents: from `token_file`, else the `FJORD_TOKEN` variable.
pub fn load_client_token(token_file: Option<&std::path::Path>) -> Result<String, String> {
    let token = match token_file {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("reading token file {}: {e}", path.display()))?
        }
        None => {
            std::env::var("FJORD_TOKEN").map_err(|_| "no token: pass --token-file or set FJORD_TOKEN".to_string())?
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    Ok(token)
}

/// A body that holds `guard` until it is finished or dropped: a lease, an in-flight count. Used
/// to end per-request accounting when the response has been streamed, not when its head is sent.
pub struct GuardedBody<B, G> {
    inner: B,
    _guard: G,
}

impl<B, G> GuardedBody<B, G> {
    pub fn new(inner: B, guard: G) -> Self {
        GuardedBody { inner, _guard: guard }
    }
}

impl<B: hyper::body::Body + Unpin, G: Unpin> hyper::body::Body for GuardedBody<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A listening address that could not be had (in use, not ours, malformed).
#[derive(Debug, thiserror::Error)]
#[error("binding {addr}: {source}")]
pub struct BindError {
    pub addr: String,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` for a daemon; the error names the address.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| BindError {
        addr: addr.to_string(),
        source,
    })
}
