//! Building a function's image from source, for `fjord build`, `push`, `up` and `new`:
//! the embedded [`template`]s, the build [`context`] (a tar honouring `.dockerignore`), the
//! [`plan`] read from a fjord.yaml `build:` section or a stack file's `lang`/`handler`, and the
//! Docker [`engine`]'s build and push with their progress as events. It prints nothing: the
//! CLI shows the events.

pub mod context;
pub mod credentials;
pub mod engine;
pub mod plan;
pub mod template;

pub use context::Source;
pub use engine::{BuildEvent, Engine, PushEvent, RegistryLogin};
pub use plan::{BuildPlan, BuildSection};
pub use template::{UnknownLang, TEMPLATES};

use std::path::PathBuf;

/// Why an image could not be built or pushed, naming the path, step or image at fault.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    UnknownLang(#[from] UnknownLang),
    #[error("no {what} at {}", .path.display())]
    Missing { what: &'static str, path: PathBuf },
    #[error("reading {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("making the build context: {0}")]
    Context(String),
    /// The function's build settings are wrong (the key is named).
    #[error("{0}")]
    Settings(String),
    #[error("the Docker engine: {0}")]
    Engine(String),
    /// A step of the Dockerfile failed; `output` is what that step printed.
    #[error("building {image} failed{}: {message}{}",
        .step.as_ref().map(|s| format!(" at {s}")).unwrap_or_default(),
        .output.iter().map(|l| format!("\n  | {l}")).collect::<String>())]
    StepFailed {
        image: String,
        step: Option<String>,
        output: Vec<String>,
        message: String,
    },
    #[error("pushing {image}: {message}")]
    Push { image: String, message: String },
    #[error("{}: {reason}", .path.display())]
    DockerConfig { path: PathBuf, reason: String },
}
