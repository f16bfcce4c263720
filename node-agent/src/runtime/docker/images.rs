//! The engine's images as this agent sees them: one pull per image reference however many
//! starts wait for it (with the registry's credentials, [`super::registry_auth`]), its progress
//! summed over the layers ([`ImageStatus::Pulling`]), and the resolution of a reference to the
//! digest its registry serves now. It must not create or start containers.

use super::registry_auth::{is_auth_failure, registry_host, PullCredentials};
use crate::runtime::{ImageStatus, ResolvedImage};
use bollard::errors::Error as DockerError;
use bollard::models::CreateImageInfo;
use bollard::query_parameters::CreateImageOptions;
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The engine's images as this agent sees them: pulls (one per reference however many wait for
/// it, with the registry's credentials), their progress, and digest resolution.
pub(super) struct ImagePuller {
    docker: Docker,
    credentials: PullCredentials,
    /// One lock per image reference: the first start pulls, the others wait and find it present.
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per image reference as asked for: pulling, present, or why the last pull failed.
    status: Mutex<HashMap<String, ImageStatus>>,
}

impl ImagePuller {
    pub(super) fn new(docker: Docker, credentials: PullCredentials) -> Self {
        ImagePuller {
            docker,
            credentials,
            pulls: Mutex::default(),
            status: Mutex::default(),
        }
    }

    fn set_status(&self, image: &str, status: ImageStatus) {
        self.status
            .lock()
            .expect("image status lock poisoned")
            .insert(image.to_string(), status);
    }

    pub(super) fn status(&self, image: &str) -> Option<ImageStatus> {
        self.status
            .lock()
            .expect("image status lock poisoned")
            .get(image)
            .cloned()
    }

    /// Whether `image` was present when this runtime last looked.
    pub(super) fn known_present(&self, image: &str) -> bool {
        self.status(image) == Some(ImageStatus::Ready)
    }

    /// Makes sure `image` is present, pulling it if not, and records where that stands for
    /// [`ImagePuller::status`]. Concurrent calls for one image share one pull.
    pub(super) async fn ensure(&self, image: &str) -> Result<(), String> {
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
            Err(reason) if is_auth_failure(&reason) && self.credentials.ecr.forget(image) => {
                self.pull_once(image).await
            }
            other => other,
        }
    }

    async fn pull_once(&self, image: &str) -> Result<(), String> {
        let credentials = self.credentials.credentials_for(image).await?;
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
            let fix = if self.credentials.has_configured(host) {
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
    pub(super) async fn resolve(&self, image: &str) -> Result<ResolvedImage, String> {
        if let Some(pinned) = already_pinned(image) {
            return Ok(pinned);
        }
        let mut asked = self
            .docker
            .inspect_registry_image(&with_tag(image), self.credentials.credentials_for(image).await?)
            .await;
        // An ECR token refused (revoked, or expired early): once more with a fresh one.
        if let Err(e) = &asked {
            if is_auth_failure(&e.to_string()) && self.credentials.ecr.forget(image) {
                asked = self
                    .docker
                    .inspect_registry_image(&with_tag(image), self.credentials.credentials_for(image).await?)
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

#[cfg(test)]
mod tests {
    use super::{already_pinned, engine_reason, repository, with_tag, PullProgress};
    use crate::runtime::ImageStatus;
    use bollard::models::{CreateImageInfo, ProgressDetail};

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
