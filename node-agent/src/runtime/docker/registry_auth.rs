//! Registry credentials for pulls and resolutions: the `--registry-auth-file` (registry host ->
//! user and password, read once at start) and, for Amazon ECR registries, pull tokens from
//! GetAuthorizationToken with the node's AWS credentials ([`Ecr`], cached by `fjord-aws` until
//! shortly before they expire). The auth file wins over ECR for a host it names. It must not
//! talk to the engine: it only says which credentials go with an image.

use bollard::auth::DockerCredentials;
use fjord_aws::EcrError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Credentials for one registry, as in `--registry-auth-file`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

/// Registry host (`host[:port]`, as written in image references) -> credentials.
pub type RegistryAuth = HashMap<String, RegistryCredentials>;

/// Why `--registry-auth-file` cannot be used, naming the file and what in it is wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("reading {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "{}: {source} (expected {{\"registry.example.com\": {{\"username\": ..., \"password\": ...}}}})",
        .path.display()
    )]
    Malformed { path: PathBuf, source: serde_json::Error },
    #[error("{}: {host:?} is not a registry host (host or host:port)", .path.display())]
    NotAHost { path: PathBuf, host: String },
    #[error("{}: the username for {host} is empty", .path.display())]
    EmptyUsername { path: PathBuf, host: String },
}

/// Reads `--registry-auth-file`: a JSON object from registry host to `{"username", "password"}`.
pub fn load_registry_auth(path: &Path) -> Result<RegistryAuth, AuthFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let auth: RegistryAuth = serde_json::from_str(&text).map_err(|source| AuthFileError::Malformed {
        path: path.to_path_buf(),
        source,
    })?;
    for (host, credentials) in &auth {
        if host.is_empty() || host.contains('/') {
            return Err(AuthFileError::NotAHost {
                path: path.to_path_buf(),
                host: host.clone(),
            });
        }
        if credentials.username.is_empty() {
            return Err(AuthFileError::EmptyUsername {
                path: path.to_path_buf(),
                host: host.clone(),
            });
        }
    }
    Ok(auth)
}

/// Why no pull credentials could be had for a registry that needs them.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialsError {
    #[error("getting ECR pull credentials for {host}: {source}")]
    Ecr { host: String, source: EcrError },
}

impl CredentialsError {
    /// Whether asking again later may succeed (ECR throttling, a 5xx, a timeout).
    pub fn retryable(&self) -> bool {
        match self {
            CredentialsError::Ecr { source, .. } => source.retryable(),
        }
    }
}

/// The registry host an image reference names, if it names one (`host.tld/...`, `host:port/...`,
/// `localhost/...`); `None` for Docker Hub's short names.
pub fn registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// What pulls and resolutions present to registries: the auth file's entries, then ECR tokens.
pub(super) struct PullCredentials {
    pub(super) auth: RegistryAuth,
    /// Pull credentials for ECR registries (`<account>.dkr.ecr.<region>.amazonaws.com`),
    /// from GetAuthorizationToken with the node's AWS credentials; made on first use.
    pub(super) ecr: Ecr,
}

impl PullCredentials {
    /// The credentials `--registry-auth-file` holds for the registry `image` names, if any.
    fn configured(&self, image: &str) -> Option<DockerCredentials> {
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
    pub(super) async fn credentials_for(&self, image: &str) -> Result<Option<DockerCredentials>, CredentialsError> {
        if let Some(configured) = self.configured(image) {
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

    /// Whether the auth file has credentials for `host`.
    pub(super) fn has_configured(&self, host: &str) -> bool {
        self.auth.contains_key(host)
    }
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
    pub async fn credentials(&self, host: &str) -> Result<(String, String), CredentialsError> {
        self.client()
            .await
            .credentials(host)
            .await
            .map_err(|source| CredentialsError::Ecr {
                host: host.to_string(),
                source,
            })
    }

    /// Drops the cached token of the ECR registry `image` names; false when it names none.
    pub(super) fn forget(&self, image: &str) -> bool {
        match (registry_host(image), self.credentials.get()) {
            (Some(host), Some(client)) if fjord_aws::ecr_registry(host).is_some() => {
                client.invalidate(host);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_ecr_registry_is_pulled_from_with_a_token_from_ecr_and_the_auth_file_wins() {
        let Some(moto) = fjord_aws::testing::MotoServer::start() else {
            return;
        };
        let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let mut auth = RegistryAuth::new();
        auth.insert(
            "registry.example.com".into(),
            RegistryCredentials {
                username: "u".into(),
                password: "p".into(),
            },
        );
        let registries = PullCredentials {
            auth,
            ecr: Ecr::with_sdk_config(&moto.sdk_config(), Some(moto.endpoint_url().to_string())),
        };
        let credentials = registries
            .credentials_for(&format!("{host}/team/echo:v1"))
            .await
            .unwrap()
            .expect("credentials for an ECR host");
        assert_eq!(credentials.username.as_deref(), Some("AWS"));
        assert!(credentials.password.as_deref().is_some_and(|p| !p.is_empty()));
        assert_eq!(credentials.serveraddress.as_deref(), Some(host));
        let (_, token_password) = registries.ecr.credentials(host).await.unwrap();
        assert_eq!(credentials.password.as_deref(), Some(token_password.as_str()));
        let configured = registries
            .credentials_for("registry.example.com/team/echo:v1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(configured.username.as_deref(), Some("u"));
        assert!(registries
            .credentials_for("other.example.com/x:1")
            .await
            .unwrap()
            .is_none());
        assert!(registries.ecr.forget(&format!("{host}/team/echo:v1")));
        assert!(!registries.ecr.forget("registry.example.com/team/echo:v1"));
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
        assert!(load_registry_auth(&path).unwrap_err().to_string().contains("expected"));
        std::fs::write(&path, r#"{"reg.local/x": {"username": "u", "password": "p"}}"#).unwrap();
        assert!(load_registry_auth(&path)
            .unwrap_err()
            .to_string()
            .contains("not a registry host"));
        assert!(load_registry_auth(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string()
            .contains("reading"));
    }
}
