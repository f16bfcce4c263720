//! The Docker engine's build and push, with their progress as events.
//!
//! Builds go through bollard's build API (the classic builder's `Step N/M : ...` lines). Pushes
//! are read from the engine's push endpoint directly, over its unix socket: each progress line
//! there names the layer it is about (`id`), which bollard's push type drops, and a progress bar
//! per layer needs it.

use crate::context::{context_tar, DOCKERFILE_ENTRY};
use crate::plan::{image_repository, image_tag};
use crate::{BuildError, BuildPlan};
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::path::PathBuf;

/// The lines of a failing step kept for its error.
const FAILED_STEP_LINES: usize = 40;

/// A line of a build's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// A Dockerfile step begins (`Step 2/7 : COPY . .`).
    Step(String),
    /// A line a step printed.
    Output(String),
}

/// Progress of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// A layer's state (`Pushing`, `Pushed`, `Layer already exists`) and bytes sent of total.
    Layer {
        id: String,
        status: String,
        current: u64,
        total: u64,
    },
    /// A line about the whole push.
    Status(String),
}

/// A user and password for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryLogin {
    pub username: String,
    pub password: String,
    /// The registry host, as image references name it.
    pub server: String,
}

/// A connection to the local Docker engine (`DOCKER_HOST` as `unix://PATH`, else
/// `/var/run/docker.sock`).
pub struct Engine {
    docker: bollard::Docker,
    socket: PathBuf,
}

impl Engine {
    pub fn connect() -> Result<Engine, BuildError> {
        let socket = match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => match host.strip_prefix("unix://") {
                Some(path) => PathBuf::from(path),
                None => {
                    return Err(BuildError::Engine(format!(
                        "DOCKER_HOST={host}: only a unix socket (unix://PATH) is supported"
                    )))
                }
            },
            _ => PathBuf::from("/var/run/docker.sock"),
        };
        let path = socket
            .to_str()
            .ok_or_else(|| BuildError::Engine("the socket path is not UTF-8".into()))?;
        let docker = bollard::Docker::connect_with_unix(path, 600, bollard::API_DEFAULT_VERSION)
            .map_err(|e| BuildError::Engine(format!("{}: {e}", socket.display())))?;
        Ok(Engine { docker, socket })
    }

    /// Builds `plan`, tagging it with its image; `no_cache` rebuilds every step.
    pub async fn build(
        &self,
        plan: &BuildPlan,
        no_cache: bool,
        mut on_event: impl FnMut(BuildEvent),
    ) -> Result<(), BuildError> {
        let tar = context_tar(&plan.source)?;
        let args: HashMap<&str, &str> = plan.args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let options = bollard::query_parameters::BuildImageOptionsBuilder::default()
            .dockerfile(DOCKERFILE_ENTRY)
            .t(&plan.image)
            .nocache(no_cache)
            .rm(true)
            .forcerm(true)
            .buildargs(&args)
            .build();
        let mut stream = self
            .docker
            .build_image(options, None, Some(bollard::body_full(Bytes::from(tar))));
        let mut step: Option<String> = None;
        let mut output: Vec<String> = Vec::new();
        let failed = |step: &Option<String>, output: &[String], message: String| BuildError::StepFailed {
            image: plan.image.clone(),
            step: step.clone(),
            output: output.to_vec(),
            message: message.trim().to_string(),
        };
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(bollard::errors::Error::DockerStreamError { error }) => return Err(failed(&step, &output, error)),
                Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                    return Err(failed(&step, &output, message))
                }
                Err(e) => return Err(BuildError::Engine(e.to_string())),
            };
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(failed(&step, &output, detail));
            }
            for line in info.stream.iter().flat_map(|s| s.lines()) {
                let line = line.trim_end();
                if line.is_empty() {
                    continue;
                }
                if line.starts_with("Step ") {
                    step = Some(line.to_string());
                    output.clear();
                    on_event(BuildEvent::Step(line.to_string()));
                } else {
                    if output.len() == FAILED_STEP_LINES {
                        output.remove(0);
                    }
                    output.push(line.to_string());
                    on_event(BuildEvent::Output(line.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Pushes `image` with `login` (or none). Returns the pushed digest when the engine says it.
    pub async fn push(
        &self,
        image: &str,
        login: Option<&RegistryLogin>,
        mut on_event: impl FnMut(PushEvent),
    ) -> Result<Option<String>, BuildError> {
        let push_error = |message: String| BuildError::Push {
            image: image.to_string(),
            message,
        };
        let auth = match login {
            Some(l) => serde_json::json!({"username": l.username, "password": l.password, "serveraddress": l.server}),
            None => serde_json::json!({}),
        };
        let auth = base64::engine::general_purpose::URL_SAFE.encode(auth.to_string());
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| BuildError::Engine(format!("{}: {e}", self.socket.display())))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| BuildError::Engine(e.to_string()))?;
        tokio::spawn(connection);
        let uri = format!("/images/{}/push?tag={}", image_repository(image), image_tag(image));
        let request = hyper::Request::post(uri)
            .header("host", "docker")
            .header("x-registry-auth", auth)
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|e| push_error(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| BuildError::Engine(e.to_string()))?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(push_error(format!("{status}: {message}")));
        }
        let mut pending = Vec::new();
        let mut digest = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BuildError::Engine(e.to_string()))?;
            let Ok(data) = frame.into_data() else { continue };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(line) = serde_json::from_slice::<PushLine>(&line) else {
                    continue;
                };
                if let Some(message) = line.error_detail.and_then(|d| d.message).or(line.error) {
                    return Err(push_error(message));
                }
                if let Some(d) = line.aux.and_then(|a| a.digest) {
                    digest = Some(d);
                }
                let Some(status) = line.status else { continue };
                match line.id {
                    Some(id) if line.progress_detail.is_some() || !status.contains(' ') || is_layer_status(&status) => {
                        let progress = line.progress_detail.unwrap_or_default();
                        on_event(PushEvent::Layer {
                            id,
                            status,
                            current: progress.current.unwrap_or(0),
                            total: progress.total.unwrap_or(0),
                        });
                    }
                    _ => on_event(PushEvent::Status(status)),
                }
            }
        }
        Ok(digest)
    }
}

fn is_layer_status(status: &str) -> bool {
    matches!(
        status,
        "Layer already exists" | "Preparing" | "Waiting" | "Pushing" | "Pushed"
    ) || status.starts_with("Mounted from")
}

/// A line of the engine's push stream.
#[derive(serde::Deserialize)]
struct PushLine {
    status: Option<String>,
    id: Option<String>,
    #[serde(rename = "progressDetail")]
    progress_detail: Option<Progress>,
    error: Option<String>,
    #[serde(rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
    aux: Option<PushAux>,
}

#[derive(serde::Deserialize, Default)]
struct Progress {
    current: Option<u64>,
    total: Option<u64>,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

#[derive(serde::Deserialize)]
struct PushAux {
    #[serde(rename = "Digest")]
    digest: Option<String>,
}
