//! The engine's images as this agent sees them: one pull per image reference however many
//! starts wait for it (with the registry's credentials, [`super::registry_auth`]), its progress
//! summed over the layers ([`ImageStatus::Pulling`]), and the resolution of a reference to the
//! digest its registry serves now. It must not create or start containers.

use super::registry_auth::{registry_host, CredentialsError, PullCredentials};
use crate::runtime::{ImageStatus, ResolvedImage};
use bollard::errors::Error as DockerError;
use bollard::models::{CreateImageInfo, DistributionInspect};
use bollard::query_parameters::CreateImageOptions;
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How a registry, through the engine, refused an image. Classified once, where the engine's
/// answer arrives ([`Refusal::of_engine`], [`Refusal::of_pull_message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The registry refused the credentials given, or asked for some where none were given.
    Unauthorized,
    /// The registry has no image under this name and tag (or digest).
    UnknownImage,
    /// Anything else: the engine or the registry failing or out of reach.
    Other,
}

/// A registry's (or the engine's) refusal: what kind, and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    /// What the engine or the registry said, its repeated code said once.
    pub reason: String,
}

impl Refusal {
    /// Classifies an error of the engine's API: by its HTTP status (401/403 and 404), and,
    /// because the engine reports many registry answers as a plain 500, by the registry's error
    /// code in its message (`unauthorized`, `denied`, `manifest unknown`, `not found`).
    pub fn of_engine(error: DockerError) -> Refusal {
        let status = match &error {
            DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
            _ => None,
        };
        let reason = engine_reason(error);
        Refusal {
            kind: RefusalKind::classify(status, &reason),
            reason,
        }
    }

    /// Classifies the error a pull reports in its progress stream (the status line is sent by
    /// then, so the message is all there is).
    fn of_pull_message(message: &str) -> Refusal {
        Refusal {
            kind: RefusalKind::classify(None, message),
            reason: message.to_string(),
        }
    }
}

impl RefusalKind {
    fn classify(status: Option<u16>, reason: &str) -> RefusalKind {
        let reason = reason.to_lowercase();
        let mentions = |words: &[&str]| words.iter().any(|w| reason.contains(w));
        if matches!(status, Some(401 | 403)) || mentions(&["unauthorized", "denied", "authentication required"]) {
            RefusalKind::Unauthorized
        } else if status == Some(404) || mentions(&["manifest unknown", "not found"]) {
            RefusalKind::UnknownImage
        } else {
            RefusalKind::Other
        }
    }
}

/// Why an image could not be pulled or resolved, naming the image.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImageError {
    #[error("pulling image {image:?}: {}", .refusal.reason)]
    Pull { image: String, refusal: Refusal },
    /// `configured`: whether the auth file has credentials for the image's registry (the hint
    /// says to check them, or to add some).
    #[error("resolving image {image:?}: {}{}", .refusal.reason, resolve_hint(.image, .refusal.kind, *.configured))]
    Resolve {
        image: String,
        refusal: Refusal,
        configured: bool,
    },
    #[error("resolving image {image:?}: the registry named no sha256 digest")]
    NoDigest { image: String },
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

impl ImageError {
    /// The registry's refusal, if it refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            ImageError::Pull { refusal, .. } | ImageError::Resolve { refusal, .. } => Some(refusal),
            ImageError::NoDigest { .. } | ImageError::Credentials(_) => None,
        }
    }

    /// Whether the registry refused the credentials (a cached ECR token may be stale).
    pub fn is_auth_failure(&self) -> bool {
        self.refusal().is_some_and(|r| r.kind == RefusalKind::Unauthorized)
    }

    /// Whether the same request may succeed later without anyone changing anything: not for
    /// refused credentials, an unknown image or tag, or a registry that names no digest.
    pub fn retryable(&self) -> bool {
        match self {
            ImageError::Credentials(e) => e.retryable(),
            ImageError::NoDigest { .. } => false,
            _ => self.refusal().is_some_and(|r| r.kind == RefusalKind::Other),
        }
    }
}

/// What the user can do about a registry's refusal to resolve `image`, if it is clear.
fn resolve_hint(image: &str, kind: RefusalKind, configured: bool) -> String {
    let host = registry_host(image).unwrap_or("Docker Hub");
    match kind {
        RefusalKind::Unauthorized => {
            let fix = if configured {
                "check them in"
            } else {
                "this node has none: add them to"
            };
            format!(" (the credentials for {host}: {fix} --registry-auth-file)")
        }
        RefusalKind::UnknownImage => " (the registry has no image under this name and tag)".to_string(),
        RefusalKind::Other => String::new(),
    }
}

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
    pub(super) async fn ensure(&self, image: &str) -> Result<(), ImageError> {
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
            Err(error) => {
                let reason = error.to_string();
                tracing::warn!(%image, "{reason}");
                self.set_status(image, ImageStatus::Failed { reason });
            }
        }
        result
    }

    /// One pull through the engine, its progress recorded as [`ImageStatus::Pulling`].
    async fn pull(&self, image: &str) -> Result<(), ImageError> {
        match self.pull_once(image).await {
            // An ECR token refused (revoked, or expired early): once more with a fresh one.
            Err(error) if error.is_auth_failure() && self.credentials.ecr.forget(image) => self.pull_once(image).await,
            other => other,
        }
    }

    async fn pull_once(&self, image: &str) -> Result<(), ImageError> {
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
            let refused = |refusal| ImageError::Pull {
                image: image.to_string(),
                refusal,
            };
            let step = step.map_err(|e| refused(Refusal::of_engine(e)))?;
            if let Some(error) = step.error_detail.as_ref().and_then(|d| d.message.as_deref()) {
                return Err(refused(Refusal::of_pull_message(error)));
            }
            if progress.record(&step) {
                self.set_status(image, progress.status());
            }
        }
        Ok(())
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
    pub(super) async fn resolve(&self, image: &str) -> Result<ResolvedImage, ImageError> {
        if let Some(pinned) = already_pinned(image) {
            return Ok(pinned);
        }
        let mut asked = self.inspect_in_registry(image).await;
        // An ECR token refused (revoked, or expired early): once more with a fresh one.
        if asked.as_ref().is_err_and(ImageError::is_auth_failure) && self.credentials.ecr.forget(image) {
            asked = self.inspect_in_registry(image).await;
        }
        let inspect = match asked {
            Ok(inspect) => inspect,
            // A short name (no registry host) that no registry serves but this engine has, such
            // as an image built or loaded on the node: pinned to its local id.
            Err(error @ ImageError::Resolve { .. }) if registry_host(image).is_none() => {
                return self.local_pin(image).await.ok_or(error);
            }
            Err(error) => return Err(error),
        };
        let digest = inspect
            .descriptor
            .digest
            .filter(|d| d.starts_with("sha256:"))
            .ok_or_else(|| ImageError::NoDigest {
                image: image.to_string(),
            })?;
        Ok(ResolvedImage {
            reference: image.to_string(),
            pinned: format!("{}@{digest}", repository(image)),
            digest,
        })
    }

    /// Asks the registry, through the engine (`GET /distribution/{name}/json`), what it serves
    /// for `image`, with the pull's credentials.
    async fn inspect_in_registry(&self, image: &str) -> Result<DistributionInspect, ImageError> {
        let credentials = self.credentials.credentials_for(image).await?;
        self.docker
            .inspect_registry_image(&with_tag(image), credentials)
            .await
            .map_err(|e| ImageError::Resolve {
                image: image.to_string(),
                refusal: Refusal::of_engine(e),
                configured: registry_host(image).is_some_and(|host| self.credentials.has_configured(host)),
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
    use super::{already_pinned, engine_reason, repository, with_tag, ImageError, PullProgress, Refusal, RefusalKind};
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
    fn the_engines_refusal_is_classified_once_by_status_then_by_the_registrys_code() {
        let server = |status_code: u16, message: &str| bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        let kind = |status, message| Refusal::of_engine(server(status, message)).kind;
        assert_eq!(kind(401, "no basic auth credentials"), RefusalKind::Unauthorized);
        assert_eq!(
            kind(500, "unauthorized: authentication required"),
            RefusalKind::Unauthorized
        );
        assert_eq!(
            kind(404, "manifest unknown: manifest unknown"),
            RefusalKind::UnknownImage
        );
        assert_eq!(kind(500, "Get https://r/v2/: connection refused"), RefusalKind::Other);
        assert_eq!(
            Refusal::of_pull_message("denied: requested access to the resource is denied").kind,
            RefusalKind::Unauthorized
        );

        let resolve = |status, message, configured| ImageError::Resolve {
            image: "reg:5000/team/echo:v1".into(),
            refusal: Refusal::of_engine(server(status, message)),
            configured,
        };
        let refused = resolve(401, "unauthorized: authentication required", false);
        assert!(refused.is_auth_failure() && !refused.retryable());
        assert_eq!(
            refused.to_string(),
            "resolving image \"reg:5000/team/echo:v1\": unauthorized: authentication required \
             (the credentials for reg:5000: this node has none: add them to --registry-auth-file)"
        );
        let unknown = resolve(404, "manifest unknown", true);
        assert!(!unknown.is_auth_failure() && !unknown.retryable());
        assert!(unknown
            .to_string()
            .ends_with("(the registry has no image under this name and tag)"));
        let flaky = resolve(500, "connection refused", true);
        assert!(flaky.retryable());
        assert!(flaky.to_string().ends_with(": connection refused"));
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
