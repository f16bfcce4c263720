//! The docker runtime: an instance is a container of the spec's `image`, run by the local Docker
//! engine through bollard. It owns the engine side of an instance's life: pulling an absent image
//! (one pull per image however many starts wait for it), creating the container locked down,
//! reading its exit (out of memory or exit code), streaming its output into the [`LogStore`], and
//! removing it. It must not keep state the engine does not also hold: every container it creates
//! carries `fjord.managed`, `fjord.function`, `fjord.instance` and `fjord.node` labels, and
//! [`DockerRuntime::connect`] removes the ones a previous run of this node's agent left behind
//! (a killed agent cannot stop its containers; the next one does).
//!
//! **Images.** [`DockerRuntime::resolve`] pins a reference to the digest its registry serves now,
//! asking through the engine with the pull's credentials; a pull's progress and outcome are kept
//! per reference ([`Runtime::image_status`]).
//!
//! **Cold starts.** A start measures its phases ([`StartPhases`]: image check, create, start,
//! port lookup, readiness) and logs them as a platform line. The engine's create is taken off the
//! cold path: after each start the runtime creates, not starts, the function's next container
//! ([`SpareContainers`]), with the same configuration and labels, and the next cold start whose
//! spec gives the same configuration starts that one instead. Such a container holds no process
//! and no memory; it is removed when its function changes ([`Runtime::function_changed`]), idles
//! past [`SPARE_IDLE_LIMIT`], or the agent stops ([`Runtime::shutdown`]).
//!
//! **Isolation.** Each container gets the spec's memory as a hard limit with no swap, its CPU as
//! `nano_cpus`, at most [`PIDS_LIMIT`] processes, a read-only root filesystem with a size-limited
//! tmpfs at `/tmp` (whose pages also count against the memory limit), every capability dropped,
//! `no-new-privileges`, never privileged, on the node's function network
//! ([`super::function_network`]: its own bridge, no traffic between containers, host firewall
//! rules that keep functions off the node, the metadata service and the platform's ports), never
//! the host's network. The engine's init runs as PID 1, so a stop's SIGTERM reaches the function.
//! The engine keeps at most [`ENGINE_LOG_MAX`] of a container's output on disk; the agent's own
//! capture is what `fjord logs` reads.
//!
//! **Networking.** By default ([`InstanceAddress::Bridge`]) the agent reaches an instance at its
//! address on the function network, port 8080: nothing is published on the host, so the engine
//! starts no port proxy per container (a process of about 3 MiB each) and the warm path has one
//! hop less. Where the host cannot reach bridge addresses (rootless engines, Docker Desktop),
//! [`InstanceAddress::Published`] publishes 8080 on 127.0.0.1 with a port the engine picks and
//! the instance is reached there; the engine's userland proxy then accepts connections before
//! the function listens, so a TCP connect proves nothing. Readiness therefore always waits for an
//! HTTP answer on `GET /_/health` ([`super::readiness`] with [`ReadyWhen::HttpAnswer`]; any
//! status below 500 counts, so a function without the route is ready once it serves HTTP).

use super::function_network::{FunctionNetwork, HostFirewall, NetworkError};
use super::readiness::{wait_ready, ReadyWhen};
use super::{
    ExitReason, ExitState, ImageStatus, Instance, ResolvedImage, Runtime, RuntimeError, StartPhases, StartRequest,
    LABEL_FUNCTION, LABEL_INSTANCE, LABEL_MANAGED, LABEL_NODE,
};
use crate::logs::LogStore;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, CreateImageInfo, HostConfig, HostConfigLogConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use fjord_core::FunctionSpec;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The port a function serves on inside its container.
pub const CONTAINER_PORT: u16 = 8080;
/// Processes (threads included) one container may run at once.
pub const PIDS_LIMIT: i64 = 256;
/// Size of the writable tmpfs at `/tmp`.
pub const TMP_SIZE_MIB: u32 = 64;

const PORT_KEY: &str = "8080/tcp";
/// The engine's own copy of a container's output (json-file driver): at most this size, one
/// file. The agent captures output as it is written, so the engine's copy is only a backstop and
/// must not fill the node's disk.
pub const ENGINE_LOG_MAX: &str = "10m";
/// How long after a start its function's next container is pre-created: out of the way of the
/// request the start was for.
const SPARE_CREATE_DELAY: Duration = Duration::from_millis(100);
/// A pre-created container whose function has not started an instance for this long is removed.
pub const SPARE_IDLE_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Pre-created containers one node keeps at most (created containers hold no memory or
/// processes, only their writable layer and the engine's bookkeeping).
pub const MAX_SPARES: usize = 64;
/// How often idle pre-created containers are looked for.
const SPARE_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Credentials for one registry, as in `--registry-auth-file`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

/// Registry host (`host[:port]`, as written in image references) -> credentials.
pub type RegistryAuth = HashMap<String, RegistryCredentials>;

/// Reads `--registry-auth-file`: a JSON object from registry host to `{"username", "password"}`.
pub fn load_registry_auth(path: &std::path::Path) -> Result<RegistryAuth, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let auth: RegistryAuth = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: {e} (expected {{\"registry.example.com\": {{\"username\": ..., \"password\": ...}}}})",
            path.display()
        )
    })?;
    for (host, credentials) in &auth {
        if host.is_empty() || host.contains('/') {
            return Err(format!(
                "{}: {host:?} is not a registry host (host or host:port)",
                path.display()
            ));
        }
        if credentials.username.is_empty() {
            return Err(format!("{}: the username for {host} is empty", path.display()));
        }
    }
    Ok(auth)
}

/// The registry host an image reference names, if it names one (`host.tld/...`, `host:port/...`,
/// `localhost/...`); `None` for Docker Hub's short names.
pub fn registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    node_id: String,
    /// The network every container joins.
    network: FunctionNetwork,
    /// How instances are reached.
    instance_address: InstanceAddress,
    images: Arc<ImagePuller>,
    spares: Arc<SpareContainers>,
    /// Whether cold starts leave a pre-created container for the function's next one.
    precreate: bool,
    ooms: Arc<OomEvents>,
}

/// The engine's `oom` events for this node's containers. The engine can learn of an OOM kill
/// after the container's exit (containerd delivers the two events separately), and then
/// `State.OOMKilled` stays false; the event still comes. An exit by SIGKILL the agent did not
/// cause waits briefly for it here before being reported as a plain exit.
#[derive(Default)]
struct OomEvents {
    seen: Mutex<HashMap<String, Instant>>,
    arrived: tokio::sync::Notify,
}

/// How long an exit by SIGKILL waits for the engine's late `oom` event.
const OOM_EVENT_GRACE: Duration = Duration::from_secs(2);

impl OomEvents {
    fn record(&self, container: String) {
        let mut seen = self.seen.lock().expect("oom events lock poisoned");
        // Bounded: entries older than a minute have been read or never will be.
        seen.retain(|_, at| at.elapsed() < Duration::from_secs(60));
        seen.insert(container, Instant::now());
        drop(seen);
        self.arrived.notify_waiters();
    }

    /// Whether an `oom` event for `container` arrives (or has arrived) within `within`.
    async fn wait_for(&self, container: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self
                .seen
                .lock()
                .expect("oom events lock poisoned")
                .contains_key(container)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return false;
            }
        }
    }
}

/// Follows the engine's `oom` events for containers labelled for `node_id`, reconnecting with a
/// backoff (asking for the events since the last one seen, so a reconnect misses none); ends
/// with the runtime.
fn follow_oom_events(docker: Docker, node_id: String, ooms: std::sync::Weak<OomEvents>) {
    tokio::spawn(async move {
        let mut since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut backoff = Duration::from_millis(100);
        loop {
            let filters = HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("event".to_string(), vec!["oom".to_string()]),
                ("label".to_string(), vec![format!("{LABEL_NODE}={node_id}")]),
            ]);
            let options = bollard::query_parameters::EventsOptions {
                since: Some(since.to_string()),
                until: None,
                filters: Some(filters),
            };
            let mut events = docker.events(Some(options));
            while let Some(event) = events.next().await {
                let Some(ooms) = ooms.upgrade() else { return };
                match event {
                    Ok(event) => {
                        backoff = Duration::from_millis(100);
                        if let Some(time) = event.time {
                            since = since.max(time as u64);
                        }
                        if let Some(id) = event.actor.and_then(|a| a.id) {
                            ooms.record(id);
                        }
                    }
                    Err(e) => {
                        tracing::debug!("the engine's event stream broke: {e}");
                        break;
                    }
                }
            }
            if ooms.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

/// A container the engine has started for an instance, and where it serves.
struct Started {
    container: String,
    instance_id: String,
    addr: SocketAddr,
}

/// The engine's images as this agent sees them: pulls (one per reference however many wait for
/// it, with the registry's credentials), their progress, and digest resolution.
struct ImagePuller {
    docker: Docker,
    auth: RegistryAuth,
    /// Pull credentials for ECR registries (`<account>.dkr.ecr.<region>.amazonaws.com`),
    /// from GetAuthorizationToken with the node's AWS credentials; made on first use.
    ecr: Ecr,
    /// One lock per image reference: the first start pulls, the others wait and find it present.
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per image reference as asked for: pulling, present, or why the last pull failed.
    status: Mutex<HashMap<String, ImageStatus>>,
}

/// How the agent reaches an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InstanceAddress {
    /// The container's address on the function network (the host must reach the bridge).
    Bridge,
    /// A port the engine publishes on 127.0.0.1 (rootless engines, Docker Desktop).
    Published,
}

/// How the docker runtime isolates functions on the network.
#[derive(Debug, Clone)]
pub struct NetworkIsolation {
    pub network: FunctionNetwork,
    pub instance_address: InstanceAddress,
    /// The host firewall rules to install, or `None` to run without them
    /// (`--function-firewall false`).
    pub firewall: Option<HostFirewall>,
}

/// Why the engine could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no Docker engine answers on its local socket ({0}); is the daemon running and may this user use it?")]
    Unreachable(DockerError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("removing containers a previous agent of node {node} left behind: {source}")]
    Cleanup { node: String, source: DockerError },
}

impl DockerRuntime {
    /// Connects to the local engine with bollard's defaults (`DOCKER_HOST`, else the local
    /// socket), agrees on an API version, and removes every container labelled for `node_id`:
    /// whatever a previous agent of this node started is not ours to serve from.
    pub async fn connect(
        node_id: &str,
        auth: RegistryAuth,
        ecr: Ecr,
        isolation: NetworkIsolation,
    ) -> Result<DockerRuntime, ConnectError> {
        let docker = Docker::connect_with_local_defaults().map_err(ConnectError::Unreachable)?;
        let docker = docker.negotiate_version().await.map_err(ConnectError::Unreachable)?;
        docker.ping().await.map_err(ConnectError::Unreachable)?;
        isolation.network.ensure(&docker).await?;
        match isolation.firewall {
            Some(firewall) => {
                let added = tokio::task::spawn_blocking(move || firewall.install())
                    .await
                    .map_err(|e| NetworkError::Firewall {
                        rule: "(all)".into(),
                        reason: e.to_string(),
                    })??;
                tracing::info!(network = %isolation.network.name, bridge = %isolation.network.bridge, added,
                    "function network ready; host firewall rules in place");
            }
            None => tracing::warn!(network = %isolation.network.name,
                "--function-firewall false: functions can reach this node's services and the metadata service"),
        }
        let runtime = DockerRuntime {
            docker: docker.clone(),
            node_id: node_id.to_string(),
            network: isolation.network,
            instance_address: isolation.instance_address,
            images: Arc::new(ImagePuller {
                docker,
                auth,
                ecr,
                pulls: Mutex::new(HashMap::new()),
                status: Mutex::new(HashMap::new()),
            }),
            spares: Arc::default(),
            precreate: true,
            ooms: Arc::default(),
        };
        let removed = runtime
            .remove_leftovers()
            .await
            .map_err(|source| ConnectError::Cleanup {
                node: node_id.to_string(),
                source,
            })?;
        tracing::info!(node = %node_id, removed, "docker runtime ready; removed containers left by a previous agent");
        sweep_idle_spares(runtime.docker.clone(), Arc::downgrade(&runtime.spares));
        follow_oom_events(
            runtime.docker.clone(),
            runtime.node_id.clone(),
            Arc::downgrade(&runtime.ooms),
        );
        Ok(runtime)
    }

    /// Removes (forcibly) every container labelled as managed by this node; returns how many.
    async fn remove_leftovers(&self) -> Result<usize, DockerError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_NODE}={}", self.node_id),
            ],
        )]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await?;
        let removals = containers.iter().filter_map(|c| c.id.as_deref()).map(|id| async move {
            match self.docker.remove_container(id, Some(force_remove())).await {
                Ok(()) | Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
                Err(e) => Err(e),
            }
        });
        futures::future::try_join_all(removals).await?;
        Ok(containers.len())
    }

    /// Pins `image` to the digest its registry serves for it now (the engine asks the registry,
    /// with the credentials a pull would use). A reference that already names a digest is
    /// returned as it is. The error names the image and carries the registry's reason.
    pub async fn resolve(&self, image: &str) -> Result<ResolvedImage, String> {
        self.images.resolve(image).await
    }

    /// The locked-down container of one instance of `spec`.
    fn container_config(&self, spec: &FunctionSpec, instance_id: &str) -> ContainerCreateBody {
        let mut env: Vec<String> = spec
            .env
            .iter()
            .chain(spec.secrets.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.extend([
            format!("PORT={CONTAINER_PORT}"),
            "HOST=0.0.0.0".to_string(),
            format!("FJORD_FUNCTION={}", spec.name),
            format!("FJORD_INSTANCE_ID={instance_id}"),
        ]);
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_FUNCTION.to_string(), spec.name.clone()),
            (LABEL_INSTANCE.to_string(), instance_id.to_string()),
            (LABEL_NODE.to_string(), self.node_id.clone()),
        ]);
        let memory_bytes = i64::from(spec.memory_mib) << 20;
        let port_bindings = (self.instance_address == InstanceAddress::Published).then(|| {
            HashMap::from([(
                PORT_KEY.to_string(),
                Some(vec![PortBinding {
                    host_ip: Some(Ipv4Addr::LOCALHOST.to_string()),
                    host_port: Some(String::new()),
                }]),
            )])
        });
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: Some(vec![PORT_KEY.to_string()]),
            host_config: Some(HostConfig {
                memory: Some(memory_bytes),
                memory_swap: Some(memory_bytes),
                nano_cpus: Some(i64::from(spec.cpu_millis) * 1_000_000),
                pids_limit: Some(PIDS_LIMIT),
                readonly_rootfs: Some(true),
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_string(),
                    format!("rw,nosuid,nodev,size={TMP_SIZE_MIB}m"),
                )])),
                cap_drop: Some(vec!["ALL".to_string()]),
                security_opt: Some(vec!["no-new-privileges".to_string()]),
                privileged: Some(false),
                network_mode: Some(self.network.name.clone()),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(HashMap::from([
                        ("max-size".to_string(), ENGINE_LOG_MAX.to_string()),
                        ("max-file".to_string(), "1".to_string()),
                    ])),
                }),
                port_bindings,
                auto_remove: Some(false),
                // The engine's tiny init as PID 1: it passes SIGTERM on (a function's own
                // process as PID 1 would ignore it and always wait out the grace) and reaps.
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Creates (not starts) the container of one instance; returns its id.
    async fn create(&self, spec: &FunctionSpec, instance_id: &str) -> Result<String, DockerError> {
        let options = CreateContainerOptions {
            name: Some(format!("fjord-{instance_id}")),
            ..Default::default()
        };
        let config = self.container_config(spec, instance_id);
        Ok(self.docker.create_container(Some(options), config).await?.id)
    }

    /// Starts a created container and returns where it serves: its address on the function
    /// network, or the loopback port the engine published 8080 on.
    async fn start_created(&self, container: &str, phases: &mut StartPhases) -> Result<SocketAddr, String> {
        let t = Instant::now();
        self.docker
            .start_container(container, None)
            .await
            .map_err(|e| format!("starting the container: {e}"))?;
        phases.start_us = micros(t.elapsed());
        let t = Instant::now();
        let inspect = self
            .docker
            .inspect_container(container, None)
            .await
            .map_err(|e| format!("inspecting the container: {e}"))?;
        phases.port_us = micros(t.elapsed());
        let settings = inspect.network_settings;
        if self.instance_address == InstanceAddress::Bridge {
            return settings
                .and_then(|n| n.networks)
                .and_then(|mut networks| networks.remove(&self.network.name))
                .and_then(|endpoint| endpoint.ip_address)
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .map(|ip| SocketAddr::from((ip, CONTAINER_PORT)))
                .ok_or_else(|| format!("the engine gave the container no address on {}", self.network.name));
        }
        settings
            .and_then(|n| n.ports)
            .and_then(|mut ports| ports.remove(PORT_KEY).flatten())
            .into_iter()
            .flatten()
            .find(|b| b.host_ip.as_deref() == Some("127.0.0.1"))
            .and_then(|b| b.host_port)
            .and_then(|p| p.parse::<u16>().ok())
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .ok_or_else(|| format!("the engine published no loopback port for {PORT_KEY}"))
    }

    /// Makes sure the image is present, then creates and starts the instance's container.
    /// Removes the container again if starting it fails.
    async fn run_fresh(&self, request: &StartRequest<'_>, phases: &mut StartPhases) -> Result<Started, String> {
        let spec = request.spec;
        let t = Instant::now();
        // An image this runtime saw present is not asked about again; should it have been removed
        // since, the create says so and the image is pulled after all.
        if !self.images.known_present(&spec.image) {
            self.images.ensure(&spec.image).await?;
        }
        phases.image_us = micros(t.elapsed());
        let t = Instant::now();
        let created = match self.create(spec, &request.instance_id).await {
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {
                self.images.ensure(&spec.image).await?;
                self.create(spec, &request.instance_id).await
            }
            other => other,
        };
        let container = created.map_err(|e| format!("creating the container: {e}"))?;
        phases.create_us = micros(t.elapsed());
        match self.start_created(&container, phases).await {
            Ok(addr) => Ok(Started {
                container,
                instance_id: request.instance_id.clone(),
                addr,
            }),
            Err(e) => {
                remove_container_quietly(&self.docker, &container).await;
                Err(e)
            }
        }
    }

    /// Starts the function's pre-created container when there is one made for exactly this
    /// spec; `None` (and the container removed) when there is none, it no longer fits, or it
    /// does not start.
    async fn start_spare(&self, spec: &FunctionSpec, phases: &mut StartPhases) -> Option<Started> {
        let spare = self.spares.take(&spec.name)?;
        if spare.config != self.container_config(spec, &spare.instance_id) {
            remove_in_background(&self.docker, spare.container);
            return None;
        }
        match self.start_created(&spare.container, phases).await {
            Ok(addr) => {
                phases.precreated = true;
                Some(Started {
                    container: spare.container,
                    instance_id: spare.instance_id,
                    addr,
                })
            }
            Err(e) => {
                tracing::debug!(function = %spec.name, container = %spare.container, "pre-created container: {e}");
                remove_in_background(&self.docker, spare.container);
                *phases = StartPhases::default();
                None
            }
        }
    }

    /// With `false`, no container is pre-created: every cold start creates its own (the
    /// agent's `--precreate-containers false`, for nodes that must not hold created containers,
    /// and to measure what pre-creation saves).
    pub fn precreate_containers(mut self, on: bool) -> Self {
        self.precreate = on;
        self
    }

    /// Creates, in the background, the container the function's next cold start will take,
    /// unless it has one or one is being made.
    fn replenish_spare(&self, spec: &FunctionSpec) {
        if !self.precreate {
            return;
        }
        let Some(instance_id) = self.spares.begin_create(&spec.name, &self.node_id) else {
            return;
        };
        let runtime = self.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            // Out of the way of the request the cold start was for.
            tokio::time::sleep(SPARE_CREATE_DELAY).await;
            let spares = &runtime.spares;
            match runtime.create(&spec, &instance_id).await {
                Ok(container) => {
                    let spare = Spare {
                        config: runtime.container_config(&spec, &instance_id),
                        container,
                        instance_id,
                    };
                    if let Some(unwanted) = spares.finish_create(&spec.name, spare) {
                        remove_container_quietly(&runtime.docker, &unwanted.container).await;
                    }
                }
                Err(e) => {
                    spares.abandon_create(&spec.name, &instance_id);
                    tracing::debug!(function = %spec.name, "pre-creating a container: {e}");
                }
            }
        });
    }
}

impl ImagePuller {
    fn set_status(&self, image: &str, status: ImageStatus) {
        self.status
            .lock()
            .expect("image status lock poisoned")
            .insert(image.to_string(), status);
    }

    fn status(&self, image: &str) -> Option<ImageStatus> {
        self.status
            .lock()
            .expect("image status lock poisoned")
            .get(image)
            .cloned()
    }

    /// Whether `image` was present when this runtime last looked.
    fn known_present(&self, image: &str) -> bool {
        self.status(image) == Some(ImageStatus::Ready)
    }

    /// The credentials `--registry-auth-file` holds for the registry `image` names, if any.
    fn credentials(&self, image: &str) -> Option<DockerCredentials> {
        let host = registry_host(image)?;
        self.auth.get(host).map(|c| DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        })
    }

    /// The credentials for the registry `image` names: `--registry-auth-file` first, then, for
    /// an ECR host, a token from ECR (cached until shortly before it expires).
    async fn credentials_for(&self, image: &str) -> Result<Option<DockerCredentials>, String> {
        if let Some(configured) = self.credentials(image) {
            return Ok(Some(configured));
        }
        let Some(host) = registry_host(image).filter(|h| fjord_aws::ecr_registry(h).is_some()) else {
            return Ok(None);
        };
        let (username, password) = self.ecr.credentials(host).await?;
        Ok(Some(DockerCredentials {
            username: Some(username),
            password: Some(password),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        }))
    }

    /// Makes sure `image` is present, pulling it if not, and records where that stands for
    /// [`ImagePuller::status`]. Concurrent calls for one image share one pull.
    async fn ensure(&self, image: &str) -> Result<(), String> {
        if self.docker.inspect_image(image).await.is_ok() {
            self.set_status(image, ImageStatus::Ready);
            return Ok(());
        }
        let lock = self
            .pulls
            .lock()
            .expect("pull lock poisoned")
            .entry(image.to_string())
            .or_default()
            .clone();
        let _pulling = lock.lock().await;
        if self.docker.inspect_image(image).await.is_ok() {
            self.set_status(image, ImageStatus::Ready);
            return Ok(());
        }
        tracing::info!(%image, "pulling image");
        let started = Instant::now();
        let result = self.pull(image).await;
        match &result {
            Ok(()) => {
                self.set_status(image, ImageStatus::Ready);
                tracing::info!(%image, ms = started.elapsed().as_millis() as u64, "image pulled");
            }
            Err(reason) => {
                self.set_status(image, ImageStatus::Failed { reason: reason.clone() });
                tracing::warn!(%image, "{reason}");
            }
        }
        result
    }

    /// One pull through the engine, its progress recorded as [`ImageStatus::Pulling`].
    async fn pull(&self, image: &str) -> Result<(), String> {
        match self.pull_once(image).await {
            // An ECR token refused (revoked, or expired early): once more with a fresh one.
            Err(reason) if is_auth_failure(&reason) && self.ecr.forget(image) => self.pull_once(image).await,
            other => other,
        }
    }

    async fn pull_once(&self, image: &str) -> Result<(), String> {
        let credentials = self.credentials_for(image).await?;
        let mut progress = PullProgress::default();
        self.set_status(image, progress.status());
        let mut steps = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(with_tag(image)),
                ..Default::default()
            }),
            None,
            credentials,
        );
        while let Some(step) = steps.next().await {
            let step = step.map_err(|e| format!("pulling image {image:?}: {}", engine_reason(e)))?;
            if let Some(error) = step.error_detail.as_ref().and_then(|d| d.message.as_deref()) {
                return Err(format!("pulling image {image:?}: {error}"));
            }
            if progress.record(&step) {
                self.set_status(image, progress.status());
            }
        }
        Ok(())
    }

    /// What the user can do about a registry's refusal to resolve `image`, if it is clear.
    fn resolve_hint(&self, image: &str, reason: &str) -> String {
        let reason = reason.to_lowercase();
        let host = registry_host(image).unwrap_or("Docker Hub");
        if reason.contains("unauthorized") || reason.contains("denied") {
            let fix = if self.auth.contains_key(host) {
                "check them in"
            } else {
                "this node has none: add them to"
            };
            format!(" (the credentials for {host}: {fix} --registry-auth-file)")
        } else if reason.contains("manifest unknown") || reason.contains("not found") {
            " (the registry has no image under this name and tag)".to_string()
        } else {
            String::new()
        }
    }

    /// The pin of an image present on this engine: its registry digest if it has one, else its
    /// local id (the digest of its configuration, the same on every node that has these bits).
    async fn local_pin(&self, image: &str) -> Option<ResolvedImage> {
        let local = self.docker.inspect_image(&with_tag(image)).await.ok()?;
        let repository = repository(image);
        if let Some(pinned) = local
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find(|d| d.split_once('@').is_some_and(|(repo, _)| repo == repository))
        {
            let digest = pinned.split_once('@').map(|(_, d)| d.to_string())?;
            return Some(ResolvedImage {
                reference: image.to_string(),
                digest,
                pinned,
            });
        }
        let id = local.id.filter(|id| id.starts_with("sha256:"))?;
        Some(ResolvedImage {
            reference: image.to_string(),
            digest: id.clone(),
            pinned: id,
        })
    }

    /// Pins `image` to the digest its registry serves for it now, asking the registry through
    /// the engine (`GET /distribution/{name}/json`) with the pull's credentials. A reference
    /// already pinned is returned as it is, without asking.
    async fn resolve(&self, image: &str) -> Result<ResolvedImage, String> {
        if let Some(pinned) = already_pinned(image) {
            return Ok(pinned);
        }
        let mut asked = self
            .docker
            .inspect_registry_image(&with_tag(image), self.credentials_for(image).await?)
            .await;
        // An ECR token refused (revoked, or expired early): once more with a fresh one.
        if let Err(e) = &asked {
            if is_auth_failure(&e.to_string()) && self.ecr.forget(image) {
                asked = self
                    .docker
                    .inspect_registry_image(&with_tag(image), self.credentials_for(image).await?)
                    .await;
            }
        }
        let inspect = match asked {
            Ok(inspect) => inspect,
            Err(e) => {
                let reason = engine_reason(e);
                // A short name (no registry host) that no registry serves but this engine has,
                // such as an image built or loaded on the node: pinned to its local id.
                if registry_host(image).is_none() {
                    if let Some(local) = self.local_pin(image).await {
                        return Ok(local);
                    }
                }
                return Err(format!(
                    "resolving image {image:?}: {reason}{}",
                    self.resolve_hint(image, &reason)
                ));
            }
        };
        let digest = inspect
            .descriptor
            .digest
            .filter(|d| d.starts_with("sha256:"))
            .ok_or_else(|| format!("resolving image {image:?}: the registry named no sha256 digest"))?;
        Ok(ResolvedImage {
            reference: image.to_string(),
            pinned: format!("{}@{digest}", repository(image)),
            digest,
        })
    }
}

fn is_auth_failure(reason: &str) -> bool {
    let reason = reason.to_lowercase();
    reason.contains("unauthorized") || reason.contains("denied") || reason.contains("authentication required")
}

/// ECR pull credentials, set up on first use so a node that never pulls from ECR never loads
/// the AWS configuration.
#[derive(Default)]
pub struct Ecr {
    /// Endpoint override (a local AWS endpoint in tests).
    endpoint_url: Option<String>,
    credentials: tokio::sync::OnceCell<fjord_aws::EcrCredentials>,
}

impl Ecr {
    pub fn new(endpoint_url: Option<String>) -> Self {
        Ecr {
            endpoint_url,
            credentials: tokio::sync::OnceCell::new(),
        }
    }

    /// With an AWS configuration already made (tests use fixed credentials).
    pub fn with_sdk_config(config: &fjord_aws::SdkConfig, endpoint_url: Option<String>) -> Self {
        let mut builder = fjord_aws::EcrCredentials::builder(config);
        if let Some(url) = &endpoint_url {
            builder = builder.endpoint_url(url.clone());
        }
        Ecr {
            endpoint_url,
            credentials: tokio::sync::OnceCell::new_with(Some(builder.build())),
        }
    }

    async fn client(&self) -> &fjord_aws::EcrCredentials {
        self.credentials
            .get_or_init(|| async {
                let config = fjord_aws::load_sdk_config(self.endpoint_url.as_deref()).await;
                let mut builder = fjord_aws::EcrCredentials::builder(&config);
                if let Some(url) = &self.endpoint_url {
                    builder = builder.endpoint_url(url.clone());
                }
                builder.build()
            })
            .await
    }

    /// A pull user and password for the ECR registry `host`.
    pub async fn credentials(&self, host: &str) -> Result<(String, String), String> {
        self.client()
            .await
            .credentials(host)
            .await
            .map_err(|e| format!("getting ECR pull credentials for {host}: {e}"))
    }

    /// Drops the cached token of the ECR registry `image` names; false when it names none.
    fn forget(&self, image: &str) -> bool {
        match (registry_host(image), self.credentials.get()) {
            (Some(host), Some(client)) if fjord_aws::ecr_registry(host).is_some() => {
                client.invalidate(host);
                true
            }
            _ => false,
        }
    }
}

/// A container created for a function ahead of time and not started.
struct Spare {
    container: String,
    instance_id: String,
    /// What it was created with: it serves a start only if that start's spec gives the same.
    config: ContainerCreateBody,
}

/// Containers created ahead of time, at most one per function that started an instance in the
/// last [`SPARE_IDLE_LIMIT`], made for the spec of its last start: a cold start that finds one
/// skips the engine's create. Each carries the usual labels, so a new agent of the node removes
/// them with the rest; the runtime removes them when their function changes, idles, or the agent
/// stops.
#[derive(Default)]
struct SpareContainers {
    state: Mutex<SpareState>,
    /// Told when a create in flight ends (for [`SpareContainers::close`]).
    settled: tokio::sync::Notify,
}

#[derive(Default)]
struct SpareState {
    functions: HashMap<String, SpareSlot>,
    /// Numbers the spares' instance ids.
    next: u64,
    closed: bool,
}

struct SpareSlot {
    ready: Option<Spare>,
    /// The instance id of the spare being created, if one is.
    creating: Option<String>,
    last_start: Instant,
}

impl SpareContainers {
    fn lock(&self) -> std::sync::MutexGuard<'_, SpareState> {
        self.state.lock().expect("spare lock poisoned")
    }

    /// Takes `function`'s spare, if it has one, and notes that the function starts an instance.
    fn take(&self, function: &str) -> Option<Spare> {
        let mut state = self.lock();
        let slot = state.functions.get_mut(function)?;
        slot.last_start = Instant::now();
        slot.ready.take()
    }

    /// Reserves the making of `function`'s next spare: its instance id, or `None` when it has one,
    /// one is being made, or the runtime is closing.
    fn begin_create(&self, function: &str, node_id: &str) -> Option<String> {
        let mut state = self.lock();
        let held = state
            .functions
            .values()
            .filter(|slot| slot.ready.is_some() || slot.creating.is_some())
            .count();
        if state.closed || held >= MAX_SPARES {
            return None;
        }
        state.next += 1;
        let instance_id = format!("{function}-{node_id}-s{}", state.next);
        let slot = state
            .functions
            .entry(function.to_string())
            .or_insert_with(|| SpareSlot {
                ready: None,
                creating: None,
                last_start: Instant::now(),
            });
        if slot.ready.is_some() || slot.creating.is_some() {
            return None;
        }
        slot.creating = Some(instance_id.clone());
        Some(instance_id)
    }

    /// Keeps a spare whose making [`SpareContainers::begin_create`] reserved; hands it back to be
    /// removed when the reservation was cancelled meanwhile (function changed, runtime closing).
    fn finish_create(&self, function: &str, spare: Spare) -> Option<Spare> {
        let mut state = self.lock();
        let closed = state.closed;
        let unwanted = match state.functions.get_mut(function) {
            Some(slot) if slot.creating.as_deref() == Some(spare.instance_id.as_str()) => {
                slot.creating = None;
                match closed {
                    true => Some(spare),
                    false => slot.ready.replace(spare),
                }
            }
            _ => Some(spare),
        };
        drop(state);
        self.settled.notify_waiters();
        unwanted
    }

    /// Ends a reservation whose create failed.
    fn abandon_create(&self, function: &str, instance_id: &str) {
        if let Some(slot) = self.lock().functions.get_mut(function) {
            if slot.creating.as_deref() == Some(instance_id) {
                slot.creating = None;
            }
        }
        self.settled.notify_waiters();
    }

    /// Forgets `function` (redeployed or removed): returns its spare, to be removed; a create in
    /// flight will be handed back by [`SpareContainers::finish_create`].
    fn forget(&self, function: &str) -> Option<Spare> {
        self.lock().functions.remove(function)?.ready
    }

    /// Forgets the functions that started no instance within `idle_limit`; returns their spares.
    fn idle(&self, idle_limit: Duration) -> Vec<Spare> {
        let mut state = self.lock();
        let idle: Vec<String> = state
            .functions
            .iter()
            .filter(|(_, slot)| slot.creating.is_none() && slot.last_start.elapsed() >= idle_limit)
            .map(|(name, _)| name.clone())
            .collect();
        idle.iter()
            .filter_map(|name| state.functions.remove(name)?.ready)
            .collect()
    }

    /// Stops making spares and returns every one there is, once the creates in flight (at most
    /// `within`) have ended and been handed back.
    async fn close(&self, within: Duration) -> Vec<Spare> {
        self.lock().closed = true;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.lock().functions.values().all(|slot| slot.creating.is_none()) {
                break;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                break;
            }
        }
        let mut state = self.lock();
        state
            .functions
            .values_mut()
            .filter_map(|slot| slot.ready.take())
            .collect()
    }
}

/// Removes, every [`SPARE_SWEEP_EVERY`], the spares of functions idle past [`SPARE_IDLE_LIMIT`];
/// ends with the runtime.
fn sweep_idle_spares(docker: Docker, spares: std::sync::Weak<SpareContainers>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SPARE_SWEEP_EVERY).await;
            let Some(spares) = spares.upgrade() else { return };
            for spare in spares.idle(SPARE_IDLE_LIMIT) {
                remove_container_quietly(&docker, &spare.container).await;
            }
        }
    });
}

/// Removes a container, forcibly; one already gone (or being removed by another call) is fine.
/// An engine error is retried a few times with a backoff (a busy engine can fail a removal it
/// would do a moment later), then logged.
async fn remove_container_quietly(docker: &Docker, container: &str) {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=4 {
        match docker.remove_container(container, Some(force_remove())).await {
            Ok(()) | Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => return,
            Err(DockerError::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => return,
            Err(e) if attempt == 4 => tracing::warn!(%container, "removing the container: {e}"),
            Err(e) => {
                tracing::debug!(%container, attempt, "removing the container: {e}; trying again");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
}

fn remove_in_background(docker: &Docker, container: String) {
    let docker = docker.clone();
    tokio::spawn(async move { remove_container_quietly(&docker, &container).await });
}

/// What the engine (or the registry behind it) said, without bollard's wrapping, and with a
/// registry error's repeated code (`manifest unknown: manifest unknown`) said once.
fn engine_reason(error: DockerError) -> String {
    let message = match error {
        DockerError::DockerResponseServerError { message, .. } => message,
        other => return other.to_string(),
    };
    let message = message.trim();
    match message.rsplit_once(": ") {
        Some((head, last)) if head == last || head.ends_with(&format!(": {last}")) => head.to_string(),
        _ => message.to_string(),
    }
}

/// Bytes downloaded over the layers of one pull, from the engine's progress messages.
#[derive(Default)]
struct PullProgress {
    /// Layer id -> (done, total) bytes.
    layers: HashMap<String, (u64, u64)>,
}

impl PullProgress {
    /// Takes one progress message into account; true if the byte counts changed.
    fn record(&mut self, step: &CreateImageInfo) -> bool {
        let (Some(layer), Some(status)) = (step.id.as_deref(), step.status.as_deref()) else {
            return false;
        };
        let detail = step.progress_detail.as_ref();
        let before = self.layers.get(layer).copied();
        match status {
            "Pulling fs layer" | "Waiting" => {
                self.layers.entry(layer.to_string()).or_insert((0, 0));
            }
            "Downloading" => {
                let current = detail.and_then(|d| d.current).unwrap_or(0).max(0) as u64;
                let total = detail.and_then(|d| d.total).unwrap_or(0).max(0) as u64;
                self.layers.insert(layer.to_string(), (current, total.max(current)));
            }
            "Verifying Checksum" | "Download complete" | "Extracting" | "Pull complete" => {
                if let Some((done, total)) = self.layers.get_mut(layer) {
                    *done = *total;
                }
            }
            _ => {}
        }
        self.layers.get(layer).copied() != before
    }

    fn status(&self) -> ImageStatus {
        let (done_bytes, total_bytes) = self
            .layers
            .values()
            .fold((0, 0), |(done, total), &(d, t)| (done + d, total + t));
        ImageStatus::Pulling {
            done_bytes,
            total_bytes,
        }
    }
}

/// `image`'s repository: the reference without its tag and digest.
fn repository(image: &str) -> &str {
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].find(':') {
        Some(colon) => &name[..last + colon],
        None => name,
    }
}

/// `image` as its own resolution when it already names a sha256 digest.
fn already_pinned(image: &str) -> Option<ResolvedImage> {
    let (_, digest) = image.split_once('@')?;
    digest.starts_with("sha256:").then(|| ResolvedImage {
        reference: image.to_string(),
        digest: digest.to_string(),
        pinned: format!("{}@{digest}", repository(image)),
    })
}

/// `image` with `:latest` added when it names neither a tag nor a digest (the engine would
/// otherwise pull every tag).
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

fn micros(elapsed: Duration) -> u64 {
    elapsed.as_micros().try_into().unwrap_or(u64::MAX)
}

/// The platform log line that accounts for one start, e.g. `started in 212.4 ms: image 0.9 ms,
/// create 41.2 ms, start 150.3 ms, port 2.0 ms, ready 18.0 ms`.
pub fn describe_phases(phases: &StartPhases) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "started in {:.1} ms: image {:.1} ms, create {:.1} ms, start {:.1} ms, port {:.1} ms, ready {:.1} ms{}",
        ms(phases.total_us),
        ms(phases.image_us),
        ms(phases.create_us),
        ms(phases.start_us),
        ms(phases.port_us),
        ms(phases.ready_us),
        if phases.precreated {
            " (pre-created container)"
        } else {
            ""
        }
    )
}

fn force_remove() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    }
}

impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn resolve_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<ResolvedImage>, String>> {
        async move { self.resolve(image).await.map(Some) }.boxed()
    }

    fn prefetch_image(&self, image: &str) {
        let images = self.images.clone();
        let image = image.to_string();
        tokio::spawn(async move {
            // The outcome is recorded in the image's status; a start will retry a failed pull.
            let _ = images.ensure(&image).await;
        });
    }

    fn image_status(&self, image: &str) -> Option<ImageStatus> {
        self.images.status(image)
    }

    fn function_changed(&self, function: &str) {
        if let Some(spare) = self.spares.forget(function) {
            remove_in_background(&self.docker, spare.container);
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        async move {
            let spares = self.spares.close(Duration::from_secs(10)).await;
            let removals = spares
                .iter()
                .map(|spare| remove_container_quietly(&self.docker, &spare.container));
            futures::future::join_all(removals).await;
            // Whatever else carries this node's label (a start the agent gave up waiting for)
            // goes too: no container outlives the agent that made it.
            match self.remove_leftovers().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed containers still labelled for this node"),
                Err(e) => tracing::warn!("removing this node's remaining containers: {e}"),
            }
        }
        .boxed()
    }

    fn start<'a>(&'a self, request: StartRequest<'a>) -> BoxFuture<'a, Result<Arc<dyn Instance>, RuntimeError>> {
        async move {
            let spec = request.spec;
            if spec.image.is_empty() {
                return Err(RuntimeError::SpecUnfit {
                    function: spec.name.clone(),
                    runtime: "docker",
                    needs: "an image",
                });
            }
            let failed = |what: String| RuntimeError::Other(format!("function {}: {what}", spec.name));
            let begun = Instant::now();
            let mut phases = StartPhases::default();
            let started = match self.start_spare(spec, &mut phases).await {
                Some(started) => started,
                None => self.run_fresh(&request, &mut phases).await.map_err(failed)?,
            };
            let log_capture = capture_logs(
                self.docker.clone(),
                started.container.clone(),
                request.logs.clone(),
                spec.name.clone(),
                started.instance_id.clone(),
            );
            let exit = Arc::new(ExitState::default());
            let instance = Arc::new(DockerInstance {
                id: started.instance_id,
                container: started.container,
                addr: started.addr,
                docker: self.docker.clone(),
                exit: exit.clone(),
                phases: OnceLock::new(),
            });
            watch_exit(
                self.docker.clone(),
                instance.container.clone(),
                exit,
                log_capture,
                self.ooms.clone(),
            );
            let t = Instant::now();
            if let Err(e) = wait_ready(&*instance, &spec.name, request.ready_wait(), ReadyWhen::HttpAnswer).await {
                instance.stop(Duration::from_millis(100)).await;
                return Err(e);
            }
            phases.ready_us = micros(t.elapsed());
            phases.total_us = micros(begun.elapsed());
            let _ = instance.phases.set(phases);
            tracing::debug!(function = %spec.name, instance = %instance.id, ?phases, "instance started");
            request
                .logs
                .push(&spec.name, &instance.id, "platform", &describe_phases(&phases));
            self.replenish_spare(spec);
            Ok(instance as Arc<dyn Instance>)
        }
        .boxed()
    }
}

/// Streams the container's stdout and stderr, line by line, into the log store until it ends.
fn capture_logs(
    docker: Docker,
    container: String,
    logs: Arc<LogStore>,
    function: String,
    instance: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut output = docker.logs(
            &container,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        while let Some(Ok(chunk)) = output.next().await {
            let (stream, message) = match chunk {
                LogOutput::StdOut { message } | LogOutput::Console { message } => ("stdout", message),
                LogOutput::StdErr { message } => ("stderr", message),
                LogOutput::StdIn { .. } => continue,
            };
            for line in String::from_utf8_lossy(&message).lines() {
                logs.push(&function, &instance, stream, line);
            }
        }
    })
}

/// Waits for the container to stop running and publishes why. The engine's wait call is the
/// signal; the container's state (read after it) is the truth, so a wait that breaks off (the
/// engine restarting) is retried with a backoff rather than taken as an exit. A container that
/// died on its own (not stopped by the agent) is removed once its last output is captured: no
/// stopped container outlives its instance.
fn watch_exit(
    docker: Docker,
    container: String,
    exit: Arc<ExitState>,
    log_capture: tokio::task::JoinHandle<()>,
    ooms: Arc<OomEvents>,
) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            let _ = docker
                .wait_container(&container, Some(WaitContainerOptions::default()))
                .next()
                .await;
            let reason = match docker.inspect_container(&container, None).await {
                Ok(inspect) => inspect.state.and_then(|state| {
                    let running = state.running.unwrap_or(false)
                        || matches!(
                            state.status,
                            Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::RESTARTING)
                        );
                    match (running, state.oom_killed) {
                        (true, _) => None,
                        (false, Some(true)) => Some(ExitReason::OutOfMemory),
                        (false, _) => Some(ExitReason::Exited(state.exit_code.unwrap_or(-1) as i32)),
                    }
                }),
                // Removed under us: by the agent's stop, or by an operator.
                Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Some(ExitReason::Stopped),
                Err(_) => None,
            };
            if let Some(mut reason) = reason {
                // Killed by SIGKILL, not by the agent: perhaps an OOM kill the engine has not
                // heard of yet.
                if reason == ExitReason::Exited(137)
                    && !exit.is_stopping()
                    && ooms.wait_for(&container, OOM_EVENT_GRACE).await
                {
                    reason = ExitReason::OutOfMemory;
                }
                let died = reason != ExitReason::Stopped;
                let first = exit.record(reason);
                // The agent's own stop removes the container itself, after the engine's stop.
                if died && first && !exit.is_stopping() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), log_capture).await;
                    remove_container_quietly(&docker, &container).await;
                }
                return;
            }
            if exit.has_ended() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    });
}

struct DockerInstance {
    id: String,
    container: String,
    addr: SocketAddr,
    docker: Docker,
    exit: Arc<ExitState>,
    phases: OnceLock<StartPhases>,
}

impl Instance for DockerInstance {
    fn id(&self) -> &str {
        &self.id
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn exit_reason(&self) -> Option<ExitReason> {
        self.exit.reason()
    }

    fn wait_exit(&self) -> BoxFuture<'_, ExitReason> {
        self.exit.wait().boxed()
    }

    fn start_phases(&self) -> Option<StartPhases> {
        self.phases.get().copied()
    }

    /// SIGTERM, SIGKILL after `grace` (the engine's stop), then removes the container.
    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        async move {
            self.exit.mark_stopping();
            if !self.exit.has_ended() {
                let seconds = grace.as_secs_f64().ceil().max(1.0) as i32;
                let _ = self
                    .docker
                    .stop_container(
                        &self.container,
                        Some(StopContainerOptions {
                            t: Some(seconds),
                            ..Default::default()
                        }),
                    )
                    .await;
            }
            remove_container_quietly(&self.docker, &self.container).await;
            self.exit.record(ExitReason::Stopped);
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_ecr_registry_is_pulled_from_with_a_token_from_ecr_and_the_auth_file_wins() {
        let Some(moto) = fjord_aws::testing::MotoServer::start() else {
            return;
        };
        let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let mut auth = super::RegistryAuth::new();
        auth.insert(
            "registry.example.com".into(),
            super::RegistryCredentials {
                username: "u".into(),
                password: "p".into(),
            },
        );
        let puller = super::ImagePuller {
            docker: bollard::Docker::connect_with_local_defaults().unwrap(),
            auth,
            ecr: super::Ecr::with_sdk_config(&moto.sdk_config(), Some(moto.endpoint_url().to_string())),
            pulls: Default::default(),
            status: Default::default(),
        };
        let credentials = puller
            .credentials_for(&format!("{host}/team/echo:v1"))
            .await
            .unwrap()
            .expect("credentials for an ECR host");
        assert_eq!(credentials.username.as_deref(), Some("AWS"));
        assert!(credentials.password.as_deref().is_some_and(|p| !p.is_empty()));
        assert_eq!(credentials.serveraddress.as_deref(), Some(host));
        let (_, token_password) = puller.ecr.credentials(host).await.unwrap();
        assert_eq!(credentials.password.as_deref(), Some(token_password.as_str()));
        let configured = puller
            .credentials_for("registry.example.com/team/echo:v1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(configured.username.as_deref(), Some("u"));
        assert!(puller.credentials_for("other.example.com/x:1").await.unwrap().is_none());
        assert!(puller.ecr.forget(&format!("{host}/team/echo:v1")));
        assert!(!puller.ecr.forget("registry.example.com/team/echo:v1"));
    }

    use super::{
        already_pinned, engine_reason, load_registry_auth, registry_host, repository, with_tag, PullProgress, Spare,
        SpareContainers, MAX_SPARES,
    };
    use crate::runtime::ImageStatus;
    use bollard::models::{ContainerCreateBody, CreateImageInfo, ProgressDetail};
    use std::time::Duration;

    #[tokio::test]
    async fn an_oom_event_is_waited_for_briefly_whether_it_came_before_or_after() {
        let ooms = std::sync::Arc::new(super::OomEvents::default());
        ooms.record("early".into());
        assert!(
            ooms.wait_for("early", std::time::Duration::ZERO).await,
            "one that came before"
        );
        let late = {
            let ooms = ooms.clone();
            tokio::spawn(async move { ooms.wait_for("late", std::time::Duration::from_secs(10)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        ooms.record("late".into());
        assert!(late.await.unwrap(), "one that comes while waiting");
        assert!(
            !ooms.wait_for("never", std::time::Duration::from_millis(30)).await,
            "none within the grace: a plain exit"
        );
    }

    #[test]
    fn the_repository_is_the_reference_without_tag_and_digest() {
        assert_eq!(repository("127.0.0.1:5000/team/echo:v1"), "127.0.0.1:5000/team/echo");
        assert_eq!(repository("127.0.0.1:5000/team/echo"), "127.0.0.1:5000/team/echo");
        assert_eq!(repository("echo:v1@sha256:ab"), "echo");
        assert_eq!(repository("localhost/echo@sha256:ab"), "localhost/echo");
        assert_eq!(repository("echo"), "echo");
    }

    #[test]
    fn the_engines_reason_says_a_registry_code_once() {
        let server = |message: &str| bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: message.into(),
        };
        assert_eq!(
            engine_reason(server("manifest unknown: manifest unknown")),
            "manifest unknown"
        );
        assert_eq!(
            engine_reason(server(
                "manifest for r/e:v not found: manifest unknown: manifest unknown"
            )),
            "manifest for r/e:v not found: manifest unknown"
        );
        assert_eq!(
            engine_reason(server("unauthorized: authentication required\n")),
            "unauthorized: authentication required"
        );
    }

    #[test]
    fn a_pinned_reference_is_its_own_resolution() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = already_pinned(&format!("reg:5000/team/echo:v1@{digest}")).unwrap();
        assert_eq!(pinned.reference, format!("reg:5000/team/echo:v1@{digest}"));
        assert_eq!(pinned.digest, digest);
        assert_eq!(pinned.pinned, format!("reg:5000/team/echo@{digest}"));
        assert!(already_pinned("reg:5000/team/echo:v1").is_none());
    }

    fn step(layer: &str, status: &str, progress: Option<(i64, i64)>) -> CreateImageInfo {
        CreateImageInfo {
            id: Some(layer.into()),
            status: Some(status.into()),
            progress_detail: progress.map(|(current, total)| ProgressDetail {
                current: Some(current),
                total: Some(total),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pull_progress_sums_the_layers() {
        let mut progress = PullProgress::default();
        assert!(progress.record(&step("a", "Pulling fs layer", None)));
        assert!(progress.record(&step("b", "Pulling fs layer", None)));
        assert!(!progress.record(&step("a", "Waiting", None)));
        assert!(progress.record(&step("a", "Downloading", Some((100, 1000)))));
        assert!(progress.record(&step("b", "Downloading", Some((50, 500)))));
        assert_eq!(
            progress.status(),
            ImageStatus::Pulling {
                done_bytes: 150,
                total_bytes: 1500
            }
        );
        assert!(progress.record(&step("a", "Download complete", None)));
        assert!(!progress.record(&step("a", "Extracting", Some((10, 1000)))));
        assert!(!progress.record(&step("v1", "Pulling from team/echo", None)));
        assert_eq!(
            progress.status(),
            ImageStatus::Pulling {
                done_bytes: 1050,
                total_bytes: 1500
            }
        );
    }

    fn spare(instance_id: &str) -> Spare {
        Spare {
            container: format!("c-{instance_id}"),
            instance_id: instance_id.into(),
            config: ContainerCreateBody::default(),
        }
    }

    #[test]
    fn one_spare_per_function_and_none_after_it_changed() {
        let spares = SpareContainers::default();
        let id = spares.begin_create("echo", "n1").unwrap();
        assert_eq!(id, "echo-n1-s1");
        assert!(spares.begin_create("echo", "n1").is_none(), "one create at a time");
        assert!(spares.finish_create("echo", spare(&id)).is_none());
        assert!(spares.begin_create("echo", "n1").is_none(), "one spare per function");
        assert_eq!(spares.take("echo").unwrap().instance_id, id);
        assert!(spares.take("echo").is_none());

        // A create that finishes after its function changed is handed back to be removed.
        let id = spares.begin_create("echo", "n1").unwrap();
        assert!(spares.forget("echo").is_none());
        assert_eq!(spares.finish_create("echo", spare(&id)).unwrap().instance_id, id);
        assert!(spares.take("echo").is_none());

        // A failed create frees the function for the next.
        let id = spares.begin_create("echo", "n1").unwrap();
        spares.abandon_create("echo", &id);
        assert!(spares.begin_create("echo", "n1").is_some());
    }

    #[test]
    fn spares_are_bounded_and_idle_ones_given_up() {
        let spares = SpareContainers::default();
        for i in 0..MAX_SPARES {
            let id = spares.begin_create(&format!("f{i}"), "n").unwrap();
            assert!(spares.finish_create(&format!("f{i}"), spare(&id)).is_none());
        }
        assert!(spares.begin_create("one-more", "n").is_none());
        assert!(spares.idle(Duration::from_secs(3600)).is_empty());
        assert_eq!(spares.idle(Duration::ZERO).len(), MAX_SPARES);
        assert!(spares.take("f0").is_none());
        assert!(spares.begin_create("one-more", "n").is_some());
    }

    #[tokio::test]
    async fn closing_hands_back_every_spare_and_refuses_new_ones() {
        let spares = SpareContainers::default();
        let kept = spares.begin_create("a", "n").unwrap();
        assert!(spares.finish_create("a", spare(&kept)).is_none());
        let late = spares.begin_create("b", "n").unwrap();
        let closing = spares.close(Duration::from_secs(10));
        tokio::pin!(closing);
        // The close waits for the create in flight, which is then handed back too.
        assert!(futures::poll!(closing.as_mut()).is_pending());
        assert!(spares.finish_create("b", spare(&late)).is_some());
        let left = closing.await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].instance_id, kept);
        assert!(spares.begin_create("c", "n").is_none());
    }

    #[test]
    fn the_registry_host_is_the_first_component_when_it_looks_like_one() {
        assert_eq!(registry_host("127.0.0.1:5000/team/echo:v1"), Some("127.0.0.1:5000"));
        assert_eq!(
            registry_host("123456789012.dkr.ecr.eu-north-1.amazonaws.com/echo"),
            Some("123456789012.dkr.ecr.eu-north-1.amazonaws.com")
        );
        assert_eq!(registry_host("localhost/echo"), Some("localhost"));
        assert_eq!(registry_host("team/echo:v1"), None);
        assert_eq!(registry_host("echo"), None);
    }

    #[test]
    fn a_bad_auth_file_is_refused_naming_what() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(&path, r#"{"reg.local:5000": {"username": "u", "password": "p"}}"#).unwrap();
        assert_eq!(load_registry_auth(&path).unwrap()["reg.local:5000"].username, "u");
        std::fs::write(&path, r#"{"reg.local": {"user": "u"}}"#).unwrap();
        assert!(load_registry_auth(&path).unwrap_err().contains("expected"));
        std::fs::write(&path, r#"{"reg.local/x": {"username": "u", "password": "p"}}"#).unwrap();
        assert!(load_registry_auth(&path).unwrap_err().contains("not a registry host"));
        assert!(load_registry_auth(&dir.path().join("missing.json"))
            .unwrap_err()
            .contains("reading"));
    }

    #[test]
    fn an_image_without_tag_or_digest_gets_latest() {
        assert_eq!(with_tag("echo"), "echo:latest");
        assert_eq!(with_tag("fjord-example/echo"), "fjord-example/echo:latest");
        assert_eq!(with_tag("registry:5000/echo"), "registry:5000/echo:latest");
        assert_eq!(with_tag("registry:5000/echo:v1"), "registry:5000/echo:v1");
        assert_eq!(with_tag("echo@sha256:abc"), "echo@sha256:abc");
        assert_eq!(
            with_tag("registry:5000/team/echo@sha256:abc"),
            "registry:5000/team/echo@sha256:abc"
        );
    }
}
