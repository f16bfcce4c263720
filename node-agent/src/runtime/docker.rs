//! The docker runtime: an instance is a container of the spec's `image`, run by the local Docker
//! engine through bollard. It owns the engine side of an instance's life: pulling an absent image
//! (one pull per image however many starts wait for it), creating the container locked down,
//! reading its exit (out of memory or exit code), streaming its output into the [`LogStore`], and
//! removing it. It must not keep state the engine does not also hold: every container it creates
//! carries `fjord.managed`, `fjord.function`, `fjord.instance` and `fjord.node` labels, and
//! [`DockerRuntime::connect`] removes the ones a previous run of this node's agent left behind
//! (a killed agent cannot stop its containers; the next one does).
//!
//! **Isolation.** Each container gets the spec's memory as a hard limit with no swap, its CPU as
//! `nano_cpus`, at most [`PIDS_LIMIT`] processes, a read-only root filesystem with a size-limited
//! tmpfs at `/tmp` (whose pages also count against the memory limit), every capability dropped,
//! `no-new-privileges`, never privileged, on the default bridge network, never the host's. The
//! engine's init runs as PID 1, so a stop's SIGTERM reaches the function.
//!
//! **Networking.** The container's 8080/tcp is published on 127.0.0.1 with a port the engine
//! picks, and the instance's address is that port on loopback. This works wherever the engine
//! runs on the agent's host (rootless engines and Docker Desktop included, where bridge addresses
//! are not reachable from the host), keeps functions off every non-loopback interface, and needs
//! no free-port guessing. The price: the engine's userland proxy accepts connections on the port
//! before the function listens (and closes them when it cannot reach it), so a TCP connect proves
//! nothing. Readiness here therefore waits for an HTTP answer on `GET /_/health`
//! ([`wait_http_ready`]) instead of the process runtime's connect-or-health probe.

use super::{ExitReason, ExitState, Instance, Runtime, RuntimeError, StartRequest};
use crate::logs::LogStore;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, ContainerStateStatusEnum, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The port a function serves on inside its container.
pub const CONTAINER_PORT: u16 = 8080;
/// Processes (threads included) one container may run at once.
pub const PIDS_LIMIT: i64 = 256;
/// Size of the writable tmpfs at `/tmp`.
pub const TMP_SIZE_MIB: u32 = 64;
/// Label set on every container this runtime creates.
pub const LABEL_MANAGED: &str = "fjord.managed";
pub const LABEL_FUNCTION: &str = "fjord.function";
pub const LABEL_INSTANCE: &str = "fjord.instance";
pub const LABEL_NODE: &str = "fjord.node";

const PORT_KEY: &str = "8080/tcp";

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

pub struct DockerRuntime {
    docker: Docker,
    node_id: String,
    auth: RegistryAuth,
    /// One lock per image reference: the first start pulls, the others wait and find it present.
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Why the engine could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no Docker engine answers on its local socket ({0}); is the daemon running and may this user use it?")]
    Unreachable(DockerError),
    #[error("removing containers a previous agent of node {node} left behind: {source}")]
    Cleanup { node: String, source: DockerError },
}

impl DockerRuntime {
    /// Connects to the local engine with bollard's defaults (`DOCKER_HOST`, else the local
    /// socket), agrees on an API version, and removes every container labelled for `node_id`:
    /// whatever a previous agent of this node started is not ours to serve from.
    pub async fn connect(node_id: &str, auth: RegistryAuth) -> Result<DockerRuntime, ConnectError> {
        let docker = Docker::connect_with_local_defaults().map_err(ConnectError::Unreachable)?;
        let docker = docker.negotiate_version().await.map_err(ConnectError::Unreachable)?;
        docker.ping().await.map_err(ConnectError::Unreachable)?;
        let runtime = DockerRuntime {
            docker,
            node_id: node_id.to_string(),
            auth,
            pulls: Mutex::new(HashMap::new()),
        };
        let removed = runtime
            .remove_leftovers()
            .await
            .map_err(|source| ConnectError::Cleanup {
                node: node_id.to_string(),
                source,
            })?;
        tracing::info!(node = %node_id, removed, "docker runtime ready; removed containers left by a previous agent");
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

    /// Makes sure `image` is present, pulling it if not. Concurrent calls for one image share
    /// one pull.
    async fn ensure_image(&self, image: &str) -> Result<(), String> {
        if self.docker.inspect_image(image).await.is_ok() {
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
            return Ok(());
        }
        tracing::info!(%image, "pulling image");
        let started = Instant::now();
        let credentials = registry_host(image).and_then(|host| {
            self.auth.get(host).map(|c| DockerCredentials {
                username: Some(c.username.clone()),
                password: Some(c.password.clone()),
                serveraddress: Some(host.to_string()),
                ..Default::default()
            })
        });
        let mut progress = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(with_tag(image)),
                ..Default::default()
            }),
            None,
            credentials,
        );
        while let Some(step) = progress.next().await {
            let step = step.map_err(|e| format!("pulling image {image:?}: {e}"))?;
            if let Some(error) = step.error_detail.and_then(|d| d.message) {
                return Err(format!("pulling image {image:?}: {error}"));
            }
        }
        tracing::info!(%image, ms = started.elapsed().as_millis() as u64, "image pulled");
        Ok(())
    }

    fn container_config(&self, request: &StartRequest<'_>) -> ContainerCreateBody {
        let spec = request.spec;
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
            format!("FJORD_INSTANCE_ID={}", request.instance_id),
        ]);
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_FUNCTION.to_string(), spec.name.clone()),
            (LABEL_INSTANCE.to_string(), request.instance_id.clone()),
            (LABEL_NODE.to_string(), self.node_id.clone()),
        ]);
        let memory_bytes = i64::from(spec.memory_mib) << 20;
        let port_bindings = HashMap::from([(
            PORT_KEY.to_string(),
            Some(vec![PortBinding {
                host_ip: Some(Ipv4Addr::LOCALHOST.to_string()),
                host_port: Some(String::new()),
            }]),
        )]);
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
                network_mode: Some("bridge".to_string()),
                port_bindings: Some(port_bindings),
                auto_remove: Some(false),
                // The engine's tiny init as PID 1: it passes SIGTERM on (a function's own
                // process as PID 1 would ignore it and always wait out the grace) and reaps.
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Creates and starts the container; returns its id and the loopback port 8080 is
    /// published on. Removes the container again if anything after creating it fails.
    async fn run_container(&self, request: &StartRequest<'_>) -> Result<(String, u16), String> {
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(format!("fjord-{}", request.instance_id)),
                    ..Default::default()
                }),
                self.container_config(request),
            )
            .await
            .map_err(|e| format!("creating the container: {e}"))?;
        let id = created.id;
        let started = async {
            self.docker
                .start_container(&id, None)
                .await
                .map_err(|e| format!("starting the container: {e}"))?;
            let inspect = self
                .docker
                .inspect_container(&id, None)
                .await
                .map_err(|e| format!("inspecting the container: {e}"))?;
            inspect
                .network_settings
                .and_then(|n| n.ports)
                .and_then(|mut ports| ports.remove(PORT_KEY).flatten())
                .into_iter()
                .flatten()
                .find(|b| b.host_ip.as_deref() == Some("127.0.0.1"))
                .and_then(|b| b.host_port)
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| format!("the engine published no loopback port for {PORT_KEY}"))
        }
        .await;
        match started {
            Ok(port) => Ok((id, port)),
            Err(e) => {
                let _ = self.docker.remove_container(&id, Some(force_remove())).await;
                Err(e)
            }
        }
    }
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
            self.ensure_image(&spec.image).await.map_err(failed)?;
            let (container, port) = self.run_container(&request).await.map_err(failed)?;
            let log_capture = capture_logs(
                self.docker.clone(),
                container.clone(),
                request.logs.clone(),
                spec.name.clone(),
                request.instance_id.clone(),
            );
            let exit = Arc::new(ExitState::default());
            let instance = Arc::new(DockerInstance {
                id: request.instance_id.clone(),
                container,
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                docker: self.docker.clone(),
                exit: exit.clone(),
            });
            watch_exit(self.docker.clone(), instance.container.clone(), exit, log_capture);
            if let Err(e) = wait_http_ready(&*instance, &spec.name, request.ready_within).await {
                instance.stop(Duration::from_millis(100)).await;
                return Err(e);
            }
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
fn watch_exit(docker: Docker, container: String, exit: Arc<ExitState>, log_capture: tokio::task::JoinHandle<()>) {
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
            if let Some(reason) = reason {
                let died = reason != ExitReason::Stopped;
                let first = exit.record(reason);
                // The agent's own stop removes the container itself, after the engine's stop.
                if died && first && !exit.is_stopping() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), log_capture).await;
                    let _ = docker.remove_container(&container, Some(force_remove())).await;
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

/// Polls until the instance answers `GET /_/health` with any HTTP status below 500 (a function
/// without a health route answers 404, which counts). A connection the engine's proxy accepts
/// and closes without an answer does not count: the function is not listening yet.
pub async fn wait_http_ready(instance: &dyn Instance, function: &str, within: Duration) -> Result<(), RuntimeError> {
    let started = Instant::now();
    let mut step = Duration::from_millis(2);
    loop {
        if let Some(reason) = instance.exit_reason() {
            return Err(RuntimeError::DiedStarting {
                function: function.to_string(),
                reason,
            });
        }
        if http_health(instance.addr()).await {
            return Ok(());
        }
        if started.elapsed() > within {
            return Err(RuntimeError::NotReady {
                function: function.to_string(),
                waited: within,
            });
        }
        tokio::time::sleep(step).await;
        step = (step * 2).min(Duration::from_millis(25));
    }
}

async fn http_health(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /_/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        let status: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
        (head.starts_with(b"HTTP/") && status < 500).then_some(())
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), probe).await, Ok(Some(())))
}

struct DockerInstance {
    id: String,
    container: String,
    addr: SocketAddr,
    docker: Docker,
    exit: Arc<ExitState>,
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
            if let Err(e) = self
                .docker
                .remove_container(&self.container, Some(force_remove()))
                .await
            {
                if !matches!(e, DockerError::DockerResponseServerError { status_code: 404, .. }) {
                    tracing::warn!(container = %self.container, instance = %self.id, "removing the container: {e}");
                }
            }
            self.exit.record(ExitReason::Stopped);
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::{load_registry_auth, registry_host, with_tag};

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
    }
}
