//! Fjord's control plane: one member of an openraft cluster that holds functions and nodes.
//!
//! A member owns the Raft log ([`log_store`], redb, fsync before acknowledging), the state
//! machine ([`state_machine`], in memory with durable snapshots), the soft state from heartbeats
//! ([`liveness`]), the routing table built from both ([`routing`]), and four gRPC services on one
//! server: Admin ([`admin`]), Agent and Routes ([`agent_api`]), Raft ([`network`]). Every service
//! but Raft's peers-only calls goes through the same bearer token ([`auth`]). Prometheus metrics
//! are served on a separate address, loopback by default, without a token ([`metrics`]).
//!
//! It must not hold per-request state: invocations never pass through the control plane.

pub(crate) mod admin;
pub(crate) mod agent_api;
pub(crate) mod agent_client;
pub mod auth;
pub(crate) mod calls;
pub(crate) mod change_watch;
pub(crate) mod cron;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod images;
pub(crate) mod leadership;
pub(crate) mod liveness;
pub mod log_store;
pub(crate) mod logs;
pub(crate) mod member;
pub(crate) mod metrics;
pub mod network;
pub(crate) mod node_scaler;
pub(crate) mod paging;
pub(crate) mod providers;
pub(crate) mod queue_watch;
pub mod raft_types;
pub(crate) mod reports;
pub(crate) mod routing;
pub(crate) mod scheduler;
pub mod secrets;
pub(crate) mod state;
pub mod state_machine;

use crate::auth::Token;
use crate::liveness::Liveness;
use crate::member::Member;
use crate::raft_types::{MemberId, Raft};
use clap::Parser;
use fjord_daemon::LogFormat;
use fjord_proto::v1::{
    admin_server::AdminServer, agent_server::AgentServer, raft_server::RaftServer, routes_server::RoutesServer,
};
use openraft::{BasicNode, SnapshotPolicy};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

/// Flags of `fjord-control-plane` (and of `fjord control-plane`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "fjord-control-plane",
    about = "Run one member of Fjord's control plane (Raft-replicated functions, nodes and routes).",
    long_about = "Run one member of Fjord's control plane.\n\nThe control plane stores functions and nodes \
                  in a Raft-replicated log and serves the Admin API (the `fjord` CLI), the Agent API (node \
                  agents) and the Routes API (load balancers) on one gRPC port.\n\nFirst start of a new \
                  cluster: pass --bootstrap. Later starts reuse --data-dir and need no flag."
)]
pub struct Args {
    /// This member's id: unique in the cluster, never reused.
    #[arg(long, env = "FJORD_MEMBER_ID", default_value_t = 1)]
    pub(crate) id: MemberId,
    /// Address to serve gRPC on.
    #[arg(long, env = "FJORD_LISTEN", default_value = "127.0.0.1:7400")]
    pub(crate) listen: String,
    /// Address other members and clients reach this one at (default: --listen).
    #[arg(long, env = "FJORD_ADVERTISE")]
    pub(crate) advertise: Option<String>,
    /// Directory for the Raft log, vote and snapshots.
    #[arg(long, env = "FJORD_DATA_DIR", default_value = "/var/lib/fjord/control-plane")]
    pub(crate) data_dir: PathBuf,
    /// File holding the cluster's bearer token (default: FJORD_TOKEN, else <data-dir>/admin.token,
    /// generated on first start).
    #[arg(long, env = "FJORD_TOKEN_FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// File holding the join token: node agents and lbs present it; it opens the Agent and
    /// Routes APIs only, never Admin. Without it they must present the admin token.
    #[arg(long, env = "FJORD_JOIN_TOKEN_FILE")]
    pub(crate) join_token_file: Option<PathBuf>,
    /// File holding the key that seals named secrets (32 bytes as 64 hexadecimal digits, such as
    /// `openssl rand -hex 32` writes). Keep it outside the data dir; every member needs the same
    /// one. Without it, `fjord secret` is refused and functions that name secrets cannot start.
    #[arg(long, env = "FJORD_SECRETS_KEY_FILE")]
    pub(crate) secrets_key_file: Option<PathBuf>,
    /// How often the leader's node autoscaler looks at each node group of the policy.
    #[arg(long, env = "FJORD_NODE_AUTOSCALE_INTERVAL", default_value = "5s", value_parser = node_autoscale_interval)]
    pub(crate) node_autoscale_interval: Duration,
    /// AWS endpoint override for the aws-asg node groups (a local AWS endpoint in tests);
    /// credentials and region come from the standard AWS chain.
    #[arg(long, env = "FJORD_AWS_ENDPOINT_URL")]
    pub(crate) aws_endpoint_url: Option<String>,
    /// Initialise a new cluster whose members are this one and --initial-members. Ignored when
    /// the data directory already holds a cluster.
    #[arg(long)]
    pub(crate) bootstrap: bool,
    /// Other founding members, as id=host:port pairs separated by commas (with --bootstrap).
    #[arg(long, env = "FJORD_INITIAL_MEMBERS", value_delimiter = ',')]
    pub(crate) initial_members: Vec<String>,
    /// A node that has not heartbeated for this long leaves the routing table.
    #[arg(long, env = "FJORD_HEARTBEAT_TIMEOUT", default_value = "5s", value_parser = heartbeat_timeout)]
    pub(crate) heartbeat_timeout: Duration,
    /// Raft election timeout (100ms to 60s): a follower campaigns after hearing nothing for this long
    /// plus a random extra of up to the same again, after a leader lease of twice this value.
    /// Failover takes about 3 to 4 times this value; lower it on a quiet, fast network.
    #[arg(long, env = "FJORD_ELECTION_TIMEOUT", default_value = "600ms", value_parser = election_timeout)]
    pub(crate) election_timeout: Duration,
    /// Take a snapshot (and purge the log before it) after this many entries.
    #[arg(long, env = "FJORD_SNAPSHOT_EVERY", default_value_t = 5000)]
    pub(crate) snapshot_every: u64,
    /// Address to serve Prometheus metrics on, at GET /metrics, without a token (node groups,
    /// pending instances, Raft role and term), or `off`. Default: loopback, on --listen's port
    /// plus 2000 (7400 -> 127.0.0.1:9400, 7401 -> 127.0.0.1:9401), so members started side by
    /// side never collide. The address must be free or the member does not start. Keep it off the
    /// internet.
    #[arg(long, env = "FJORD_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "FJORD_LOG_FORMAT", default_value = "text")]
    pub(crate) log_format: LogFormat,
    /// The queue of asynchronous calls (NATS JetStream): the leader fires scheduled functions
    /// into it and reads its depth for the autoscaler, `fjord describe` and `fjord calls`.
    #[command(flatten)]
    pub(crate) nats: fjord_daemon::flags::NatsArgs,
    /// For tests only: how long one minute of a cron schedule lasts (a divisor of 60s, such as
    /// 3s), so a test sees several ticks in seconds. Every member must be given the same value.
    #[arg(long, env = "FJORD_TEST_CRON_MINUTE", hide = true, value_parser = cron_minute)]
    pub(crate) test_cron_minute: Option<Duration>,
    /// For failover tests only: exit (status 86) right after committing the named decision,
    /// before acting on it. `node-scale-out`: a node group's scale-out. Read once at start;
    /// unset, it does nothing.
    #[arg(long, env = "FJORD_TEST_CRASH_AFTER_COMMIT", hide = true)]
    pub(crate) test_crash_after_commit: Option<node_scaler::CrashPoint>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration flag's value within `[min, max]`, e.g. `600ms` or `5s`.
fn duration_within(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = fjord_core::duration::parse_duration(text)?;
    if d < min || d > max {
        return Err(format!(
            "{text} is out of range: use {} to {}",
            fjord_core::duration::format_duration(min),
            fjord_core::duration::format_duration(max)
        ));
    }
    Ok(d)
}

fn election_timeout(text: &str) -> Result<Duration, String> {
    duration_within(text, Duration::from_millis(100), Duration::from_secs(60))
}

fn heartbeat_timeout(text: &str) -> Result<Duration, String> {
    duration_within(text, Duration::from_millis(100), Duration::from_secs(3600))
}

fn cron_minute(text: &str) -> Result<Duration, String> {
    let d = duration_within(text, Duration::from_millis(500), Duration::from_secs(60))?;
    if 60_000 % millis(d) != 0 {
        return Err(format!(
            "{text} does not divide a minute evenly: use 1s, 2s, 3s, 5s, 6s, 10s, ..."
        ));
    }
    Ok(d)
}

fn node_autoscale_interval(text: &str) -> Result<Duration, String> {
    duration_within(text, Duration::from_millis(100), Duration::from_secs(600))
}

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("opening the Raft log in {path}: {source}")]
    Log { path: PathBuf, source: Box<redb::Error> },
    #[error("starting Raft: {0}")]
    Raft(String),
    #[error(transparent)]
    Bind(#[from] fjord_daemon::BindError),
    #[error(
        "serving metrics on {addr}: {source}; move them with --metrics-listen ADDR (a free address), or turn \
         them off with --metrics-listen off"
    )]
    Metrics { addr: String, source: std::io::Error },
    #[error("the queue of asynchronous calls: {0}")]
    Queue(#[from] fjord_events::QueueError),
    #[error("serving gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
}

fn parse_members(args: &Args, advertise: &str) -> Result<BTreeMap<MemberId, BasicNode>, StartError> {
    let mut members = BTreeMap::new();
    members.insert(
        args.id,
        BasicNode {
            addr: advertise.to_string(),
        },
    );
    for pair in &args.initial_members {
        let (id, addr) = pair
            .split_once('=')
            .ok_or_else(|| StartError::Config(format!("--initial-members entry {pair:?} is not id=host:port")))?;
        let id: MemberId = id
            .trim()
            .parse()
            .map_err(|_| StartError::Config(format!("--initial-members: {id:?} is not a member id")))?;
        if members
            .insert(
                id,
                BasicNode {
                    addr: addr.trim().to_string(),
                },
            )
            .is_some()
            && id != args.id
        {
            return Err(StartError::Config(format!("--initial-members names member {id} twice")));
        }
    }
    Ok(members)
}

/// Where `--metrics-listen` asks the metrics to be served: `None` for `off`, else the address
/// given, else [`metrics::default_metrics_listen`] of `--listen`.
fn metrics_address(args: &Args) -> Result<Option<String>, StartError> {
    match args.metrics_listen.as_deref() {
        Some("off") => Ok(None),
        Some(addr) => Ok(Some(addr.to_string())),
        None => metrics::default_metrics_listen(&args.listen)
            .map(Some)
            .map_err(StartError::Config),
    }
}

/// Binds the metrics address; one that cannot be had stops the start, default or not.
async fn bind_metrics(addr: Option<String>) -> Result<Option<TcpListener>, StartError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    match TcpListener::bind(&addr).await {
        Ok(listener) => Ok(Some(listener)),
        Err(source) => Err(StartError::Metrics { addr, source }),
    }
}

/// Resolves the cluster token as `--help` describes.
pub(crate) fn load_token(args: &Args) -> Result<Token, StartError> {
    if let Some(path) = &args.token_file {
        return Token::read_file(path).map_err(StartError::Config);
    }
    if let Ok(value) = std::env::var("FJORD_TOKEN") {
        return Token::new(&value).map_err(|e| StartError::Config(format!("FJORD_TOKEN: {e}")));
    }
    let path = args.data_dir.join("admin.token");
    if path.exists() {
        return Token::read_file(&path).map_err(StartError::Config);
    }
    let token = Token::generate();
    token.write_file(&path).map_err(|source| StartError::DataDir {
        path: path.clone(),
        source,
    })?;
    tracing::info!(path = %path.display(), "generated a new admin token");
    Ok(token)
}

/// Starts a member on an already-bound listener and serves until `shutdown` resolves.
pub async fn run(
    args: Args,
    token: Token,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    run_with_faults(args, token, listener, shutdown, network::Faults::default()).await
}

/// [`run`], with links between members that a test can cut (see [`network::Faults`]).
pub async fn run_with_faults(
    args: Args,
    token: Token,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    faults: network::Faults,
) -> Result<(), StartError> {
    let advertise = match &args.advertise {
        Some(a) => a.clone(),
        None => listener
            .local_addr()
            .map_err(|source| fjord_daemon::BindError {
                addr: args.listen.clone(),
                source,
            })?
            .to_string(),
    };
    let metrics_listener = bind_metrics(metrics_address(&args)?).await?;
    std::fs::create_dir_all(&args.data_dir).map_err(|source| StartError::DataDir {
        path: args.data_dir.clone(),
        source,
    })?;
    let log_path = args.data_dir.join("raft-log.redb");
    let log = log_store::LogStore::open(&log_path).map_err(|source| StartError::Log { path: log_path, source })?;
    let state = state_machine::StateMachineStore::open(&args.data_dir).map_err(|source| StartError::DataDir {
        path: args.data_dir.clone(),
        source,
    })?;

    let config = openraft::Config {
        cluster_name: "fjord".into(),
        heartbeat_interval: (millis(args.election_timeout) / 4).max(25),
        election_timeout_min: millis(args.election_timeout),
        election_timeout_max: millis(args.election_timeout) * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(args.snapshot_every.max(1)),
        max_in_snapshot_log_to_keep: 500,
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartError::Config(e.to_string()))?;
    let network = network::PeerNetwork {
        id: args.id,
        token: token.clone(),
        faults: faults.clone(),
    };
    let raft: Raft = openraft::Raft::new(args.id, Arc::new(config), network, log.clone(), state.clone())
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;

    if args.bootstrap {
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if !initialized {
            let members = parse_members(&args, &advertise)?;
            tracing::info!(?members, "bootstrapping a new cluster");
            raft.initialize(members)
                .await
                .map_err(|e| StartError::Raft(e.to_string()))?;
        }
    }

    let secrets_key = match &args.secrets_key_file {
        Some(path) => {
            let key = secrets::SecretsKey::load(path).map_err(StartError::Config)?;
            tracing::info!(
                key = key.id(),
                "secrets are sealed with the key from --secrets-key-file"
            );
            Some(Arc::new(key))
        }
        None => None,
    };
    let queue_config = fjord_events::queue::QueueConfig::from_flags(
        &args.nats.nats_urls,
        args.nats.nats_token_file.as_deref(),
        args.nats.nats_replicas,
    )?;
    let (queue, connecting) = fjord_events::QueueHandle::start(queue_config);
    let liveness = Arc::new(Liveness::new(args.heartbeat_timeout));
    let (routes_tx, routes_rx) = watch::channel(Arc::new(fjord_core::RouteTable::default()));
    let mut member = Member::new(
        args.id,
        raft.clone(),
        state,
        log,
        liveness,
        routes_rx,
        token.clone(),
        Duration::from_millis((millis(args.heartbeat_timeout) / 5).clamp(100, 2000)),
        faults,
        queue,
        cron::CronClock::with_minute(args.test_cron_minute),
    );
    member.secrets_key = secrets_key;
    let member = Arc::new(member);
    let tick = Duration::from_millis((millis(args.heartbeat_timeout) / 4).clamp(50, 1000));
    let node_scaler = node_scaler::NodeScalerConfig {
        interval: args.node_autoscale_interval,
        aws_endpoint_url: args.aws_endpoint_url.clone(),
        crash_after_commit: args.test_crash_after_commit,
    };
    let publisher = tokio::spawn(leadership::run(member.clone(), routes_tx, tick, node_scaler));

    let join = match &args.join_token_file {
        Some(path) => Some(Token::read_file(path).map_err(StartError::Config)?),
        None => None,
    };
    let interceptor = token.interceptor();
    let node_interceptor = token.interceptor_or(join);
    // The standard health service and server reflection, behind the same tokens as the rest:
    // health for whoever may use a member (agents, lbs, operators), reflection for operators.
    // Reflection lists the public services only, never Raft.
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let health = tokio::spawn(health::follow(
        member.clone(),
        health_reporter,
        Duration::from_millis((millis(args.election_timeout) / 2).clamp(100, 1000)),
    ));
    let reflection = || {
        health::SERVICES
            .iter()
            .chain(&["grpc.health.v1.Health"])
            .fold(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(fjord_proto::FILE_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
                |builder, service| builder.with_service_name(*service),
            )
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| StartError::Config(format!("server reflection: {e}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| StartError::Config(format!("server reflection: {e}")))?;
    // Watch streams (agents, lbs, Admin watchers) never end on their own: they end when shutdown
    // begins, so the graceful shutdown does not wait on them forever.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let admin = admin::AdminService {
        member: member.clone(),
        logs: logs::LogCollector::default(),
        images: images::ImageResolver::default(),
        stopping: stopping.clone(),
    };
    let shutdown = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map_or_else(|| "off".to_string(), |a| a.to_string());
    let metrics_server = metrics_listener.map(|listener| {
        let mut stopping = stopping.clone();
        let stopped = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        tokio::spawn(metrics::serve(listener, member.clone(), stopped))
    });
    tracing::info!(
        id = args.id,
        listen = %advertise,
        metrics = %metrics_addr,
        data_dir = %args.data_dir.display(),
        "control plane serving"
    );
    let served = tonic::transport::Server::builder()
        .add_service(AdminServer::with_interceptor(admin, interceptor.clone()))
        .add_service(AgentServer::with_interceptor(
            agent_api::AgentService {
                member: member.clone(),
                stopping: stopping.clone(),
            },
            node_interceptor.clone(),
        ))
        .add_service(RoutesServer::with_interceptor(
            agent_api::RoutesService {
                member: member.clone(),
                stopping,
            },
            node_interceptor.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            health_service,
            node_interceptor,
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            reflection_v1,
            interceptor.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            reflection_v1alpha,
            interceptor.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            RaftServer::new(network::RaftRpc { raft: raft.clone() }).max_decoding_message_size(256 * 1024 * 1024),
            interceptor,
        ))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    publisher.abort();
    health.abort();
    if let Some(task) = connecting {
        task.abort();
    }
    if let Some(server) = metrics_server {
        server.abort();
    }
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    served.map_err(StartError::from)
}

/// What `main` does: logging, token, bind, serve until SIGINT/SIGTERM.
pub async fn main_with(args: Args) -> Result<(), StartError> {
    fjord_daemon::init_logging(args.log_format);
    let token = load_token(&args)?;
    let listener = fjord_daemon::bind(&args.listen).await?;
    run(args, token, listener, fjord_daemon::shutdown_signal()).await
}
