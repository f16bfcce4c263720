//! Runtimes start and stop function instances. The pool does not care how: a process, a
//! container. Each runtime hands back an [`Instance`] that serves HTTP on an address and can say
//! whether, and why, it has died.

pub mod docker;
pub mod function_network;
pub mod process;
pub mod readiness;

use crate::logs::LogStore;
use fjord_core::FunctionSpec;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Labels on everything the docker runtime creates: containers carry all four, the function
/// network [`LABEL_MANAGED`]. A new agent of the node finds its predecessor's containers by them.
pub const LABEL_MANAGED: &str = "fjord.managed";
pub const LABEL_FUNCTION: &str = "fjord.function";
pub const LABEL_INSTANCE: &str = "fjord.instance";
pub const LABEL_NODE: &str = "fjord.node";

/// Why an instance is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    Exited(i32),
    Signaled(i32),
    OutOfMemory,
    Stopped,
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Exited(code) => write!(f, "exited with code {code}"),
            ExitReason::Signaled(9) => write!(f, "was killed (signal 9)"),
            ExitReason::Signaled(sig) => write!(f, "was killed by signal {sig}"),
            ExitReason::OutOfMemory => write!(f, "was killed for exceeding its memory limit (OOM)"),
            ExitReason::Stopped => write!(f, "was stopped by the agent"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("function {function}: cannot start {program:?}: {source}")]
    Spawn {
        function: String,
        program: String,
        source: std::io::Error,
    },
    #[error("function {function}: the {runtime} runtime needs {needs} in the spec")]
    SpecUnfit {
        function: String,
        runtime: &'static str,
        needs: &'static str,
    },
    #[error("function {function}: instance {reason} before it became ready")]
    DiedStarting { function: String, reason: ExitReason },
    #[error("function {function}: instance not ready after {waited:?} (no answer on its port)")]
    NotReady { function: String, waited: Duration },
    /// The runtime's engine did not start the instance (for the docker runtime, a
    /// `docker::StartError`); `retryable` says whether a later start may succeed unchanged.
    #[error("function {function}: {source}")]
    Engine {
        function: String,
        retryable: bool,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The function names secrets this node could not get (see `fjord secret ls`).
    #[error("function {function}: its secrets are not available on this node: {reason}")]
    Secrets { function: String, reason: String },
    #[error("{0}")]
    Other(String),
}

/// What a runtime needs to start one instance.
pub struct StartRequest<'a> {
    pub spec: &'a FunctionSpec,
    pub instance_id: String,
    pub logs: Arc<LogStore>,
    /// How long the caller lets the instance take to become ready; the runtime waits for the
    /// shorter of this and what the spec allows ([`readiness::ready_limit`]).
    pub ready_within: Duration,
    /// The directory of the function's secret files (`crate::secrets`), when it names any.
    pub secrets_dir: Option<std::path::PathBuf>,
}

impl StartRequest<'_> {
    /// How long this start waits for the instance to become ready.
    pub fn ready_wait(&self) -> Duration {
        self.ready_within.min(readiness::ready_limit(self.spec))
    }
}

/// How an instance ended: recorded once by its runtime's watcher, read by the pool and the
/// invoke path. An instance the agent stopped reports [`ExitReason::Stopped`], whatever signal
/// ended it.
pub struct ExitState {
    exit: tokio::sync::watch::Sender<Option<ExitReason>>,
    stopping: std::sync::atomic::AtomicBool,
}

impl Default for ExitState {
    fn default() -> Self {
        ExitState {
            exit: tokio::sync::watch::channel(None).0,
            stopping: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl ExitState {
    /// Records why the instance ended; only the first record counts. True if this one did.
    pub fn record(&self, reason: ExitReason) -> bool {
        self.exit.send_if_modified(|current| match current {
            None => {
                *current = Some(reason);
                true
            }
            Some(_) => false,
        })
    }

    pub fn has_ended(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Marks that the agent is stopping the instance (called before it signals it).
    pub fn mark_stopping(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Why the instance ended; `None` while it runs.
    pub fn reason(&self) -> Option<ExitReason> {
        let reason = self.exit.borrow().clone()?;
        Some(if self.is_stopping() {
            ExitReason::Stopped
        } else {
            reason
        })
    }

    /// Resolves when the instance has ended, with why.
    pub async fn wait(&self) -> ExitReason {
        let mut exit = self.exit.subscribe();
        let _ = exit.wait_for(|r| r.is_some()).await;
        self.reason().unwrap_or(ExitReason::Stopped)
    }
}

/// The image-resolve answer is part of the agent's HTTP contract.
pub use fjord_core::agent_http::ResolvedImage;

/// Where a runtime stands with one image on this node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ImageStatus {
    /// Being pulled: bytes downloaded so far and in all, summed over the layers the registry has
    /// announced (both grow while layers are discovered).
    Pulling { done_bytes: u64, total_bytes: u64 },
    /// Present on the node.
    Ready,
    /// The last pull failed; the registry's or the engine's reason.
    Failed { reason: String },
}

/// Where one cold start spent its time, in microseconds. A phase a runtime does not have, or
/// skipped, is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StartPhases {
    /// Making sure the image is present (pulling it if not).
    pub image_us: u64,
    /// Creating the container (0 when a pre-created one was taken).
    pub create_us: u64,
    /// Starting it (the engine's start call, or spawning the process).
    pub start_us: u64,
    /// Asking the engine which host port it published the instance's port on.
    pub port_us: u64,
    /// From started to the first readiness answer.
    pub ready_us: u64,
    /// The whole start, as the caller waited for it.
    pub total_us: u64,
    /// Whether a container created ahead of time was used.
    pub precreated: bool,
}

pub trait Runtime: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Whether instances see files through mounts as another user (containers), so secret files
    /// must be readable by any user behind their 0700 base; a process instance runs as the agent.
    fn mounts_files(&self) -> bool {
        false
    }
    /// Starts an instance and returns once it is ready to serve. A runtime may hand back an
    /// instance prepared ahead of time under an id of its own (see [`Instance::id`]) instead of
    /// `request.instance_id`.
    fn start<'a>(&'a self, request: StartRequest<'a>) -> BoxFuture<'a, Result<Arc<dyn Instance>, RuntimeError>>;

    /// Pins `image` to the digest its registry serves now, or `None` when this runtime does not
    /// run images (the process runtime runs the spec's `command`). The error is the registry's
    /// reason, naming the image.
    fn resolve_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<ResolvedImage>, String>> {
        let _ = image;
        async { Ok(None) }.boxed()
    }

    /// Starts pulling `image` in the background if it is absent, so the first start of a
    /// function deployed with it does not wait for the pull; [`Runtime::image_status`] follows it.
    fn prefetch_image(&self, image: &str) {
        let _ = image;
    }

    /// Where this node stands with `image`, if this runtime has pulled or is pulling it.
    fn image_status(&self, image: &str) -> Option<ImageStatus> {
        let _ = image;
        None
    }

    /// Tells the runtime that `function` was redeployed or removed: whatever it prepared ahead
    /// of time for it (pre-created containers) is of no more use.
    fn function_changed(&self, function: &str) {
        let _ = function;
    }

    /// Releases what the runtime holds besides instances (pre-created containers); called once
    /// when the agent stops, after its instances are stopped.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}

pub trait Instance: Send + Sync + 'static {
    fn id(&self) -> &str;
    /// Where the instance serves HTTP.
    fn addr(&self) -> SocketAddr;
    /// `Some` once the instance has died, with why.
    fn exit_reason(&self) -> Option<ExitReason>;
    /// Resolves when the instance dies (or is stopped).
    fn wait_exit(&self) -> BoxFuture<'_, ExitReason>;
    /// Stops the instance: a polite signal, then a forced one after `grace`.
    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()>;
    /// Where this instance's start spent its time, if its runtime measured it.
    fn start_phases(&self) -> Option<StartPhases> {
        None
    }
}
