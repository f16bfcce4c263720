//! Fjord's load balancer: the HTTP front door. It routes `/function/{name}` to the node agents
//! that can run the function, in the function's bounded-load hashing order, so the same function
//! lands on the same nodes and its instances stay warm ([`proxy`]), behind a stack of
//! front-door protections ([`layers`]). Its routing table comes from the control plane's Routes
//! stream and survives the control plane's absence ([`route_watch`]). It also serves the
//! OpenFaaS gateway API (`/system/*`, [`gateway`]) over the control plane's Admin API, with the
//! caller's own admin token.
//!
//! It must not keep routing state that only it knows: several lbs route identically from the
//! same table (only their own in-flight counts differ).

pub mod asynchronous;
pub mod error;
pub mod gateway;
pub mod layers;
pub mod metrics;
pub mod path;
pub mod proxy;
pub mod route_watch;

use clap::Parser;
use fjord_daemon::HttpBody;
use layers::headers::ClientAddr;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{ServiceBuilder, ServiceExt};

/// Default request body limit: 6 MiB, as AWS Lambda's synchronous invocations.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 6 * 1024 * 1024;
/// Added to a function's own timeout for the lb's bound: room for a cold start and the hops.
pub const TIMEOUT_MARGIN: Duration = Duration::from_secs(10);

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
    #[command(flatten)]
    pub control_plane: fjord_daemon::flags::ControlPlaneArgs,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "FJORD_BODY_LIMIT_BYTES", default_value_t = DEFAULT_BODY_LIMIT_BYTES)]
    pub body_limit_bytes: usize,
    /// Requests in progress at most; more are shed with 503 and Retry-After.
    #[arg(long, env = "FJORD_MAX_CONCURRENCY", default_value_t = 10_000)]
    pub max_concurrency: usize,
    /// Requests per function that may wait while every node is busy; more get 429.
    #[arg(long, env = "FJORD_QUEUE_PER_FUNCTION", default_value_t = 1_000)]
    pub queue_per_function: u32,
    /// Load bound factor c: a node takes a function's request while its in-flight count stays
    /// within c times its weighted share (consistent hashing with bounded loads).
    #[arg(long, env = "FJORD_LOAD_BOUND_C", default_value_t = fjord_core::hashing::DEFAULT_LOAD_BOUND_C)]
    pub load_bound_c: f64,
    /// Optional per-function rate limits, name=requests_per_second, comma-separated.
    #[arg(long, env = "FJORD_RATE_LIMIT", value_delimiter = ',')]
    pub rate_limit: Vec<String>,
    /// A client must send a whole request head within this time (slowloris), e.g. 10s or 500ms.
    #[arg(long, env = "FJORD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = fjord_core::duration::parse_duration)]
    pub header_read_timeout: Duration,
    #[command(flatten)]
    pub nats: fjord_daemon::flags::NatsArgs,
    /// Largest body of an asynchronous call, in bytes; larger ones get 413.
    #[arg(long, env = "FJORD_ASYNC_BODY_LIMIT_BYTES", default_value_t = asynchronous::DEFAULT_ASYNC_BODY_LIMIT_BYTES)]
    pub async_body_limit_bytes: usize,
    /// How long a delivered asynchronous call may go without a sign of life from the lb that
    /// took it before it is delivered again (the lb signals at a third of it while it works).
    #[arg(long, env = "FJORD_ASYNC_ACK_WAIT", default_value = "30s", value_parser = fjord_core::duration::parse_duration)]
    pub async_ack_wait: Duration,
    /// Whether this lb delivers queued calls (false: it only enqueues them).
    #[arg(long, env = "FJORD_ASYNC_WORKERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub async_workers: bool,
    /// Let X-Callback-Url name link-local and cloud metadata addresses (refused by default).
    #[arg(long, env = "FJORD_CALLBACK_ALLOW_LINK_LOCAL")]
    pub callback_allow_link_local: bool,
    #[command(flatten)]
    pub log: fjord_daemon::flags::LogArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Bind(#[from] fjord_daemon::BindError),
}

/// Serves on an already-bound listener until `shutdown` resolves, then drains for up to 10 s.
pub async fn run(
    args: Args,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let token =
        fjord_daemon::load_client_token(args.control_plane.token_file.as_deref()).map_err(StartError::Config)?;
    if args.control_plane.endpoints.is_empty() {
        return Err(StartError::Config("--control-plane needs at least one address".into()));
    }
    if args.body_limit_bytes == 0 || args.max_concurrency == 0 {
        return Err(StartError::Config(
            "--body-limit-bytes and --max-concurrency must be above 0".into(),
        ));
    }
    if !(args.load_bound_c >= 1.0 && args.load_bound_c.is_finite()) {
        return Err(StartError::Config(format!(
            "--load-bound-c must be at least 1 (got {})",
            args.load_bound_c
        )));
    }
    let rate_limits = layers::rate_limit::RateLimitLayer::parse(&args.rate_limit).map_err(StartError::Config)?;
    if args.async_body_limit_bytes == 0 || args.async_ack_wait < Duration::from_secs(1) {
        return Err(StartError::Config(
            "--async-body-limit-bytes must be above 0 and --async-ack-wait at least 1s".into(),
        ));
    }
    let queue_config = fjord_events::queue::QueueConfig::from_flags(
        &args.nats.nats_urls,
        args.nats.nats_token_file.as_deref(),
        args.nats.nats_replicas,
    )
    .map_err(|e| StartError::Config(e.to_string()))?;

    let (table_tx, table_rx) = watch::channel(Arc::new(fjord_core::RouteTable::default()));
    let watcher = route_watch::RouteWatch {
        endpoints: args.control_plane.endpoints.clone(),
        token,
        table: table_tx,
    };
    let watcher = tokio::spawn(watcher.run());
    let proxy = proxy::Proxy::new(
        table_rx,
        proxy::ProxyConfig {
            body_limit_bytes: args.body_limit_bytes,
            load_bound_c: args.load_bound_c,
            queue_per_function: args.queue_per_function,
        },
    );
    let settings = asynchronous::AsyncSettings {
        body_limit_bytes: args.async_body_limit_bytes,
        ack_wait: args.async_ack_wait,
        allow_link_local_callbacks: args.callback_allow_link_local,
        workers: args.async_workers,
    };
    let (queue, connecting) = asynchronous::QueueHandle::start(queue_config);
    let workers = (queue.configured() && settings.workers).then(|| {
        tokio::spawn(asynchronous::worker::run(
            proxy.clone(),
            queue.clone(),
            settings.clone(),
        ))
    });
    let front = Arc::new(asynchronous::front::AsyncFront {
        proxy: proxy.clone(),
        queue,
        settings,
    });
    let gateway =
        Arc::new(gateway::Gateway::new(&args.control_plane.endpoints, proxy.clone()).map_err(StartError::Config)?);
    let timeouts = proxy.clone();
    let routing = tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let proxy = proxy.clone();
        let front = front.clone();
        let gateway = gateway.clone();
        async move {
            if gateway::Gateway::owns(request.uri().path()) {
                return Ok::<_, Infallible>(gateway.handle(request).await);
            }
            if asynchronous::front::AsyncFront::owns(request.uri().path()) {
                return Ok::<_, Infallible>(front.handle(request).await);
            }
            Ok::<_, Infallible>(proxy.handle(request).await)
        }
    });
    let stack = ServiceBuilder::new()
        .layer(layers::headers::HeadersLayer::default())
        .layer(layers::shed::ShedLayer::new(args.max_concurrency))
        .layer(layers::body_limit::BodyLimitLayer::new(args.body_limit_bytes))
        .layer(layers::rate_limit::RateLimitLayer::new(&rate_limits))
        .layer(layers::timeout::TimeoutLayer::new(Arc::new(move |f: &str| {
            timeouts.function_timeout(f).map(|t| t + TIMEOUT_MARGIN)
        })))
        .service(routing);
    let stack = tower::util::BoxCloneService::<
        http::Request<hyper::body::Incoming>,
        http::Response<HttpBody>,
        Infallible,
    >::new(stack);

    let local = listener.local_addr().map_err(|source| fjord_daemon::BindError {
        addr: args.listen.clone(),
        source,
    })?;
    tracing::info!(listen = %local, "lb serving");
    let make_service = move |peer| {
        let stack = stack.clone();
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            stack.clone().oneshot(request)
        })
    };
    let header_timeout = args.header_read_timeout.max(Duration::from_millis(1));
    fjord_daemon::serve_http(
        listener,
        make_service,
        shutdown,
        Duration::from_secs(10),
        header_timeout,
    )
    .await;
    watcher.abort();
    for task in [workers, connecting].into_iter().flatten() {
        task.abort();
    }
    Ok(())
}

pub async fn main_with(args: Args) -> Result<(), StartError> {
    fjord_daemon::init_logging(args.log.log_format);
    let listener = fjord_daemon::bind(&args.listen).await?;
    run(args, listener, fjord_daemon::shutdown_signal()).await
}
