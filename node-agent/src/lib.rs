//! Fjord's node agent: one per node. It registers with the control plane, heartbeats its load,
//! watches which functions it may run, starts their instances on demand through a [`runtime`],
//! keeps them in the [`pool`] (warm, leased per request, scaled to zero when idle), proxies the
//! lb's invocations to them ([`invoke`]) and keeps their logs ([`logs`]).
//!
//! It must keep serving invocations of functions it knows when the control plane is away.

pub mod control_link;
pub mod ec2_metadata;
pub mod invoke;
pub mod logs;
pub mod pool;
pub mod runtime;
pub mod secrets;

use clap::{Parser, ValueEnum};
use fjord_core::NodeInfo;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Run each instance as a child process (the spec's `command`).
    Process,
    /// Run each instance as a container of the spec's `image` (the Docker engine).
    Docker,
}

/// Flags of `fjord-node-agent` (and of `fjord node-agent`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "fjord-node-agent",
    about = "Run Fjord's node agent: start function instances on this node and serve invocations from the lb."
)]
pub struct Args {
    /// This node's id, a DNS label unique in the cluster (default: the hostname).
    #[arg(long, env = "FJORD_NODE_ID")]
    pub node_id: Option<String>,
    #[command(flatten)]
    pub control_plane: fjord_daemon::flags::ControlPlaneArgs,
    /// Address to serve the invoke endpoint on (the lb calls it; keep it off the internet).
    #[arg(long, env = "FJORD_LISTEN", default_value = "127.0.0.1:7500")]
    pub listen: String,
    /// Address the lb reaches this agent at (default: --listen).
    #[arg(long, env = "FJORD_ADVERTISE")]
    pub advertise: Option<String>,
    /// How instances run.
    #[arg(long, env = "FJORD_RUNTIME", value_enum, default_value = "process")]
    pub runtime: RuntimeKind,
    /// Memory this node gives to function instances, in MiB.
    #[arg(long, env = "FJORD_MEMORY_MIB", default_value_t = 4096)]
    pub memory_mib: u32,
    /// CPU this node gives to function instances, in millicores.
    #[arg(long, env = "FJORD_CPU_MILLIS", default_value_t = 4000)]
    pub cpu_millis: u32,
    /// Directory for the agent's own files.
    #[arg(long, env = "FJORD_DATA_DIR", default_value = "/var/lib/fjord/node-agent")]
    pub data_dir: PathBuf,
    /// Where the secret files of the functions this node runs are written, mounted read-only
    /// into their instances. Must be a tmpfs, so secrets never reach a disk. Default:
    /// /dev/shm/fjord-secrets/<node id>-<process id>, removed when the agent stops.
    #[arg(long, env = "FJORD_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Availability zone or rack label, used to spread instances.
    #[arg(long, env = "FJORD_ZONE", default_value = "")]
    pub zone: String,
    /// On EC2: learn the instance id (the default node id) and the zone from the instance
    /// metadata service (IMDSv2).
    #[arg(long, env = "FJORD_EC2_METADATA")]
    pub ec2_metadata: bool,
    /// The machine's id at its provider (what a node group's capacity provider lists), when
    /// --ec2-metadata does not give it: ties this node to the machine the node autoscaler may
    /// terminate.
    #[arg(long, env = "FJORD_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// The instance metadata service's address (for tests).
    #[arg(long, env = "FJORD_EC2_METADATA_ENDPOINT", default_value = ec2_metadata::DEFAULT_ENDPOINT, hide = true)]
    pub ec2_metadata_endpoint: String,
    /// Docker runtime: credentials for private registries, a JSON file mapping each registry
    /// host (as in image references, e.g. `registry.example.com:5000`) to
    /// `{"username": ..., "password": ...}`.
    #[arg(long, env = "FJORD_REGISTRY_AUTH_FILE")]
    pub registry_auth_file: Option<PathBuf>,
    /// Docker runtime: AWS endpoint override for ECR pull tokens (a local AWS endpoint in
    /// tests). ECR registries (`<account>.dkr.ecr.<region>.amazonaws.com`) need no entry in
    /// --registry-auth-file: the agent asks ECR for a token with the node's AWS credentials
    /// (instance profile or the standard chain) and renews it before it expires.
    #[arg(long, env = "FJORD_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// Docker runtime: after a cold start, create (not start) the function's next container in
    /// the background, so its next cold start skips the create step. It holds no memory or CPU
    /// until started and is removed when the function stays unused for a while.
    #[arg(long, env = "FJORD_PRECREATE_CONTAINERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub precreate_containers: bool,
    /// Docker runtime: the network function containers join (created if absent, with traffic
    /// between containers off).
    #[arg(long, env = "FJORD_FUNCTION_NETWORK", default_value = "fjord-functions")]
    pub function_network: String,
    /// Docker runtime: the Linux bridge of --function-network (at most 15 characters).
    #[arg(long, env = "FJORD_FUNCTION_BRIDGE", default_value = "fjord0")]
    pub function_bridge: String,
    /// Docker runtime: how the agent reaches instances. `bridge`: the container's address on
    /// --function-network (nothing published on the host, no port proxy per container);
    /// `published`: a port published on 127.0.0.1, for engines whose bridge the host cannot
    /// reach (rootless, Docker Desktop).
    #[arg(long, env = "FJORD_INSTANCE_ADDRESS", value_enum, default_value = "bridge")]
    pub instance_address: runtime::docker::InstanceAddress,
    /// Docker runtime: install host firewall rules (iptables, needs root) so functions cannot
    /// open connections to this node, to the instance metadata service, or to the control
    /// plane's and agents' ports anywhere. Turn off only where the engine is not the host's
    /// (rootless, Docker Desktop) and every function is trusted.
    #[arg(long, env = "FJORD_FUNCTION_FIREWALL", default_value_t = true, action = clap::ArgAction::Set)]
    pub function_firewall: bool,
    #[command(flatten)]
    pub log: fjord_daemon::flags::LogArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Bind(#[from] fjord_daemon::BindError),
    #[error("--ec2-metadata: {0}")]
    Ec2Metadata(#[from] ec2_metadata::MetadataError),
    #[error("--runtime docker: {0}")]
    Docker(runtime::docker::ConnectError),
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_else(|_| "node".into())
}

/// The docker runtime's network and firewall from the flags: the platform ports no function may
/// reach are the control-plane members' and this agent's own.
fn network_isolation(args: &Args, listen_port: u16) -> Result<runtime::docker::NetworkIsolation, StartError> {
    let network = runtime::function_network::FunctionNetwork::new(&args.function_network, &args.function_bridge)
        .map_err(|e| StartError::Config(e.to_string()))?;
    let mut platform_ports = vec![listen_port];
    for endpoint in &args.control_plane.endpoints {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| StartError::Config(format!("--control-plane {endpoint:?}: {e}")))?;
        platform_ports.push(uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        }));
    }
    if let Some(port) = args
        .advertise
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
    {
        platform_ports.push(port);
    }
    let firewall = args.function_firewall.then(|| runtime::function_network::HostFirewall {
        bridge: network.bridge.clone(),
        platform_ports,
    });
    Ok(runtime::docker::NetworkIsolation {
        network,
        instance_address: args.instance_address,
        firewall,
    })
}

/// Starts the agent on an already-bound listener and runs until `shutdown` resolves; then stops
/// accepting, lets in-flight requests finish (up to 10 s) and stops every instance.
pub async fn run(
    args: Args,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let ec2 = match args.ec2_metadata {
        true => Some(ec2_metadata::fetch_identity(&args.ec2_metadata_endpoint).await?),
        false => None,
    };
    let node_id = match (&args.node_id, &ec2) {
        (Some(id), _) => id.clone(),
        (None, Some(identity)) => identity.instance_id.clone(),
        (None, None) => hostname(),
    };
    let zone = match (&ec2, args.zone.is_empty()) {
        (Some(identity), true) => identity.availability_zone.clone(),
        _ => args.zone.clone(),
    };
    fjord_core::name::check_dns_label(&node_id).map_err(|r| StartError::Config(format!("--node-id {r}")))?;
    let token =
        fjord_daemon::load_client_token(args.control_plane.token_file.as_deref()).map_err(StartError::Config)?;
    if args.control_plane.endpoints.is_empty() {
        return Err(StartError::Config("--control-plane needs at least one address".into()));
    }
    let registry_auth = match &args.registry_auth_file {
        Some(path) => runtime::docker::load_registry_auth(path)
            .map_err(|e| StartError::Config(format!("--registry-auth-file: {e}")))?,
        None => Default::default(),
    };
    let local = listener.local_addr().map_err(|source| fjord_daemon::BindError {
        addr: args.listen.clone(),
        source,
    })?;
    let runtime: Arc<dyn runtime::Runtime> = match args.runtime {
        RuntimeKind::Process => Arc::new(runtime::process::ProcessRuntime::default()),
        RuntimeKind::Docker => Arc::new(
            runtime::docker::DockerRuntime::connect(
                &node_id,
                registry_auth,
                runtime::docker::Ecr::new(args.aws_endpoint_url.clone()),
                network_isolation(&args, local.port())?,
            )
            .await
            .map_err(StartError::Docker)?
            .precreate_containers(args.precreate_containers),
        ),
    };
    let advertise = args.advertise.clone().unwrap_or_else(|| local.to_string());
    let secrets = Arc::new(secrets::SecretFiles::new(
        args.secrets_dir
            .clone()
            .unwrap_or_else(|| secrets::default_dir(&node_id)),
        &node_id,
    ));
    secrets.sweep_dead_agents();
    let pool = pool::InstancePool::with_secrets(runtime, &node_id, args.memory_mib, secrets.clone());
    let node = NodeInfo {
        id: node_id.clone(),
        invoke_addr: advertise.clone(),
        memory_mib: args.memory_mib,
        cpu_millis: args.cpu_millis,
        zone,
        runtime: pool.runtime_name().into(),
        instance_id: args
            .instance_id
            .clone()
            .or(ec2.map(|identity| identity.instance_id))
            .unwrap_or_default(),
    };
    let link = control_link::ControlLink {
        endpoints: args.control_plane.endpoints.clone(),
        token,
        node,
        pool: pool.clone(),
    };
    let link = tokio::spawn(link.run());
    tracing::info!(node = %node_id, listen = %local, advertise = %advertise, "node agent serving");
    let service = invoke::InvokeService::new(pool.clone(), node_id);
    let make_service = move |_peer| {
        let service = service.clone();
        hyper::service::service_fn(move |request| service.clone().handle(request))
    };
    fjord_daemon::serve_http(
        listener,
        make_service,
        shutdown,
        Duration::from_secs(10),
        Duration::from_secs(30),
    )
    .await;
    link.abort();
    pool.stop_all().await;
    secrets.clear();
    Ok(())
}

pub async fn main_with(args: Args) -> Result<(), StartError> {
    fjord_daemon::init_logging(args.log.log_format);
    let listener = fjord_daemon::bind(&args.listen).await?;
    run(args, listener, fjord_daemon::shutdown_signal()).await
}
