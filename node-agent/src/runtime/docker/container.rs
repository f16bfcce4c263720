//! One container's configuration and life: the locked-down configuration an instance of a spec
//! gets, creating and starting it (pulling its image first when it is absent), where it serves,
//! stopping it, and removing it (forcibly, quietly, or every one labelled for this node). It must
//! not choose which container serves a start (that is [`super::spares`]) or follow one after it
//! started (that is [`super::watch`]).

use super::images::ImageError;
use super::{micros, DockerRuntime, InstanceAddress};
use crate::runtime::{
    ExitReason, ExitState, Instance, StartPhases, StartRequest, LABEL_FUNCTION, LABEL_INSTANCE, LABEL_MANAGED,
    LABEL_NODE,
};
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use fjord_core::FunctionSpec;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Why the engine did not start an instance's container.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("creating the container: {0}")]
    Create(DockerError),
    #[error("starting the container: {0}")]
    Start(DockerError),
    #[error("inspecting the container: {0}")]
    Inspect(DockerError),
    #[error("the engine gave the container no address on {network}")]
    NoAddress { network: String },
    #[error("the engine published no loopback port for {port}")]
    NoPort { port: &'static str },
}

impl StartError {
    /// Whether a later start may succeed with nothing changed: not when the image cannot be had
    /// (credentials refused, unknown image or tag); yes when the engine failed or was busy.
    pub fn retryable(&self) -> bool {
        match self {
            StartError::Image(e) => e.retryable(),
            StartError::Create(e) | StartError::Start(e) | StartError::Inspect(e) => engine_may_recover(e),
            StartError::NoAddress { .. } | StartError::NoPort { .. } => true,
        }
    }
}

/// Whether the engine's error is its own trouble (a 5xx, or no answer) rather than a refusal of
/// the request.
fn engine_may_recover(error: &DockerError) -> bool {
    match error {
        DockerError::DockerResponseServerError { status_code, .. } => *status_code >= 500,
        _ => true,
    }
}

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

/// A container the engine has started for an instance, and where it serves.
pub(super) struct Started {
    pub(super) container: String,
    pub(super) instance_id: String,
    pub(super) addr: SocketAddr,
}

impl DockerRuntime {
    /// Removes (forcibly) every container labelled as managed by this node; returns how many.
    pub(super) async fn remove_leftovers(&self) -> Result<usize, DockerError> {
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

    /// The locked-down container of one instance of `spec`.
    pub(super) fn container_config(
        &self,
        spec: &FunctionSpec,
        instance_id: &str,
        secrets_dir: Option<&Path>,
    ) -> ContainerCreateBody {
        let mut env: Vec<String> = spec
            .env
            .iter()
            .chain(spec.secrets.inline().into_iter().flatten())
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
                // Secret files, read-only, at both paths (OpenFaaS's and Fjord's); the source is
                // the agent's tmpfs directory, never the image or an environment variable.
                binds: secrets_dir.map(|dir| {
                    fjord_core::secret::CONTAINER_DIRS
                        .iter()
                        .map(|target| format!("{}:{target}:ro", dir.display()))
                        .collect()
                }),
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
    pub(super) async fn create(
        &self,
        spec: &FunctionSpec,
        instance_id: &str,
        secrets_dir: Option<&Path>,
    ) -> Result<String, DockerError> {
        let options = CreateContainerOptions {
            name: Some(format!("fjord-{instance_id}")),
            ..Default::default()
        };
        let config = self.container_config(spec, instance_id, secrets_dir);
        Ok(self.docker.create_container(Some(options), config).await?.id)
    }

    /// Starts a created container and returns where it serves: its address on the function
    /// network, or the loopback port the engine published 8080 on.
    pub(super) async fn start_created(
        &self,
        container: &str,
        phases: &mut StartPhases,
    ) -> Result<SocketAddr, StartError> {
        let t = Instant::now();
        self.docker
            .start_container(container, None)
            .await
            .map_err(StartError::Start)?;
        phases.start_us = micros(t.elapsed());
        let t = Instant::now();
        let inspect = self
            .docker
            .inspect_container(container, None)
            .await
            .map_err(StartError::Inspect)?;
        phases.port_us = micros(t.elapsed());
        let settings = inspect.network_settings;
        if self.instance_address == InstanceAddress::Bridge {
            return settings
                .and_then(|n| n.networks)
                .and_then(|mut networks| networks.remove(&self.network.name))
                .and_then(|endpoint| endpoint.ip_address)
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .map(|ip| SocketAddr::from((ip, CONTAINER_PORT)))
                .ok_or_else(|| StartError::NoAddress {
                    network: self.network.name.clone(),
                });
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
            .ok_or(StartError::NoPort { port: PORT_KEY })
    }

    /// Makes sure the image is present, then creates and starts the instance's container.
    /// Removes the container again if starting it fails.
    pub(super) async fn run_fresh(
        &self,
        request: &StartRequest<'_>,
        phases: &mut StartPhases,
    ) -> Result<Started, StartError> {
        let spec = request.spec;
        let t = Instant::now();
        // An image this runtime saw present is not asked about again; should it have been removed
        // since, the create says so and the image is pulled after all.
        if !self.images.known_present(&spec.image) {
            self.images.ensure(&spec.image).await?;
        }
        phases.image_us = micros(t.elapsed());
        let t = Instant::now();
        let created = match self
            .create(spec, &request.instance_id, request.secrets_dir.as_deref())
            .await
        {
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {
                self.images.ensure(&spec.image).await?;
                self.create(spec, &request.instance_id, request.secrets_dir.as_deref())
                    .await
            }
            other => other,
        };
        let container = created.map_err(StartError::Create)?;
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
}

/// Removes a container, forcibly; one already gone (or being removed by another call) is fine.
/// An engine error is retried a few times with a backoff (a busy engine can fail a removal it
/// would do a moment later), then logged.
pub(super) async fn remove_container_quietly(docker: &Docker, container: &str) {
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

pub(super) fn remove_in_background(docker: &Docker, container: String) {
    let docker = docker.clone();
    tokio::spawn(async move { remove_container_quietly(&docker, &container).await });
}

fn force_remove() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    }
}

pub(super) struct DockerInstance {
    pub(super) id: String,
    pub(super) container: String,
    pub(super) addr: SocketAddr,
    pub(super) docker: Docker,
    pub(super) exit: Arc<ExitState>,
    pub(super) phases: OnceLock<StartPhases>,
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
