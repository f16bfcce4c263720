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
//!
//! **Layout.** This module holds the runtime and its [`Runtime`] impl, which wires the parts:
//! [`container`] (configuration and lifecycle), [`images`] (pulls, progress, resolution),
//! [`registry_auth`] (the auth file, ECR tokens), [`spares`] (pre-created containers) and
//! [`watch`] (exit, OOM events, logs).

mod container;
mod images;
mod registry_auth;
mod spares;
mod watch;

pub use container::{StartError, CONTAINER_PORT, ENGINE_LOG_MAX, PIDS_LIMIT, TMP_SIZE_MIB};
pub use images::{ImageError, Refusal, RefusalKind};
pub use registry_auth::{
    load_registry_auth, registry_host, AuthFileError, CredentialsError, Ecr, RegistryAuth, RegistryCredentials,
};
pub use spares::{MAX_SPARES, SPARE_IDLE_LIMIT};

use super::function_network::{FunctionNetwork, HostFirewall, NetworkError};
use super::readiness::{wait_ready, ReadyWhen};
use super::{ExitState, ImageStatus, Instance, ResolvedImage, Runtime, RuntimeError, StartPhases, StartRequest};
use bollard::errors::Error as DockerError;
use bollard::Docker;
use container::{remove_container_quietly, remove_in_background, DockerInstance};
use futures::future::BoxFuture;
use futures::FutureExt;
use images::ImagePuller;
use registry_auth::PullCredentials;
use spares::{sweep_idle_spares, SpareContainers};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use watch::{capture_logs, follow_oom_events, watch_exit, OomEvents};

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
            images: Arc::new(ImagePuller::new(docker, PullCredentials { auth, ecr })),
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

    /// Pins `image` to the digest its registry serves for it now (the engine asks the registry,
    /// with the credentials a pull would use). A reference that already names a digest is
    /// returned as it is. The error names the image and carries the registry's reason.
    pub async fn resolve(&self, image: &str) -> Result<ResolvedImage, ImageError> {
        self.images.resolve(image).await
    }

    /// With `false`, no container is pre-created: every cold start creates its own (the
    /// agent's `--precreate-containers false`, for nodes that must not hold created containers,
    /// and to measure what pre-creation saves).
    pub fn precreate_containers(mut self, on: bool) -> Self {
        self.precreate = on;
        self
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

impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn mounts_files(&self) -> bool {
        true
    }

    fn resolve_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<ResolvedImage>, String>> {
        async move { self.resolve(image).await.map(Some).map_err(|e| e.to_string()) }.boxed()
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
            let failed = |error: StartError| RuntimeError::Engine {
                function: spec.name.clone(),
                retryable: error.retryable(),
                source: Box::new(error),
            };
            let begun = Instant::now();
            let mut phases = StartPhases::default();
            let secrets_dir = request.secrets_dir.as_deref();
            let started = match self.start_spare(spec, secrets_dir, &mut phases).await {
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
            self.replenish_spare(spec, secrets_dir);
            Ok(instance as Arc<dyn Instance>)
        }
        .boxed()
    }
}
