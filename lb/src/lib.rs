//! Fjord's load balancer: the HTTP front door. It routes `/function/{name}` to the node agents
//! that can run the function, in the function's consistent-hashing order, so the same function
//! lands on the same node and its instances stay warm ([`proxy`]). Its routing table comes from
//! the control plane's Routes stream and survives the control plane's absence ([`route_watch`]).
//!
//! It must not keep per-function state that only it knows: several lbs route identically from
//! the same table.

pub mod metrics;
pub mod proxy;
pub mod route_watch;

use clap::Parser;
use fjord_core::daemon::LogFormat;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Default request body limit: 6 MiB, as AWS Lambda's synchronous invocations.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 6 * 1024 * 1024;

/// Flags of `fjord-lb` (and of `fjord lb`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "fjord-lb",
    about = "Run Fjord's HTTP front door: routes /function/{name} to the node agents."
)]
pub struct Args {
    /// Address to serve HTTP on.
    #[arg(long, env = "FJORD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Control-plane members to watch routes from, comma-separated.
    #[arg(
        long,
        env = "FJORD_CONTROL_PLANE",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7400"
    )]
    pub control_plane: Vec<String>,
    /// File holding the cluster's bearer token (default: the FJORD_TOKEN variable).
    #[arg(long, env = "FJORD_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "FJORD_BODY_LIMIT_BYTES", default_value_t = DEFAULT_BODY_LIMIT_BYTES)]
    pub body_limit_bytes: usize,
    /// Log format: text or json.
    #[arg(long, env = "FJORD_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("binding {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
}

/// Serves on an already-bound listener until `shutdown` resolves, then drains for up to 10 s.
pub async fn run(
    args: Args,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let token = fjord_core::daemon::load_client_token(args.token_file.as_deref()).map_err(StartError::Config)?;
    if args.control_plane.is_empty() {
        return Err(StartError::Config("--control-plane needs at least one address".into()));
    }
    if args.body_limit_bytes == 0 {
        return Err(StartError::Config("--body-limit-bytes must be above 0".into()));
    }
    let (table_tx, table_rx) = watch::channel(Arc::new(fjord_core::RouteTable::default()));
    let watcher = route_watch::RouteWatch {
        endpoints: args.control_plane.clone(),
        token,
        table: table_tx,
    };
    let watcher = tokio::spawn(watcher.run());
    let proxy = proxy::Proxy::new(table_rx, args.body_limit_bytes);
    let local = listener.local_addr().map_err(|source| StartError::Bind {
        addr: args.listen.clone(),
        source,
    })?;
    tracing::info!(listen = %local, "lb serving");
    let make_service = move |peer| {
        let proxy = proxy.clone();
        hyper::service::service_fn(move |request| proxy.clone().handle(peer, request))
    };
    fjord_core::daemon::serve_http(listener, make_service, shutdown, Duration::from_secs(10)).await;
    watcher.abort();
    Ok(())
}

pub async fn main_with(args: Args) -> Result<(), StartError> {
    fjord_core::daemon::init_logging(args.log_format);
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: args.listen.clone(),
            source,
        })?;
    run(args, listener, fjord_core::daemon::shutdown_signal()).await
}
