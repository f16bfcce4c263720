//! Pull credentials for Amazon ECR registries, for the node agent's image puller.
//!
//! [`ecr_registry`] recognises an ECR registry host (`<account>.dkr.ecr.<region>.amazonaws.com`,
//! or `.amazonaws.com.cn` in China) and refuses look-alikes, so no token is ever sent to a host
//! that merely resembles ECR. [`EcrCredentials`] turns such a host into a Docker login: it calls
//! GetAuthorizationToken for the host's account in the host's region, decodes the `user:password`
//! token, and caches it per host until a margin (5 minutes by default) before ECR's `expiresAt`.
//! Concurrent callers for one host wait for a single request. After a registry refuses a cached
//! token, the caller [`invalidate`](EcrCredentials::invalidate)s it and asks once more.
//!
//! It does not pull images or talk to the registry itself; it only hands out credentials.

use crate::sdk_error;
use aws_config::SdkConfig;
use base64::Engine;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// By default a cached token is replaced this long before it expires.
pub const DEFAULT_REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The account and region an ECR registry host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrRegistry {
    /// The 12-digit AWS account id (ECR's registry id).
    pub account: String,
    pub region: String,
}

/// The ECR registry that `host` names, or `None` when it is not one. Matching ignores ASCII
/// case; a port, a path, a FIPS or dual-stack endpoint, and hosts that only contain an ECR name
/// (`….amazonaws.com.evil.example`) are refused.
pub fn ecr_registry(host: &str) -> Option<EcrRegistry> {
    let host = host.to_ascii_lowercase();
    let (rest, china) = match host.strip_suffix(".amazonaws.com.cn") {
        Some(rest) => (rest, true),
        None => (host.strip_suffix(".amazonaws.com")?, false),
    };
    let (account, region) = rest.split_once(".dkr.ecr.")?;
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    if !account_ok || !is_region(region) || region.starts_with("cn-") != china {
        return None;
    }
    Some(EcrRegistry {
        account: account.to_string(),
        region: region.to_string(),
    })
}

/// `us-east-1`, `ap-southeast-2`, `us-gov-west-1`, `cn-north-1`: a two-letter area, one or more
/// lowercase words, and a number.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && words[0].len() == 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Why no credentials could be had for a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcrError {
    #[error(
        "{host:?} is not an Amazon ECR registry host (expected <12-digit account>.dkr.ecr.<region>.amazonaws.com); \
         give this registry's credentials in the registry auth file instead"
    )]
    NotEcr { host: String },
    /// GetAuthorizationToken failed; `message` is AWS's answer.
    #[error("getting an ECR pull token for {host} failed: {message}")]
    Request {
        host: String,
        message: String,
        retryable: bool,
    },
    /// ECR answered with something that is not a `user:password` token.
    #[error("ECR returned an unusable pull token for {host}: {reason}")]
    BadToken { host: String, reason: String },
}

impl EcrError {
    /// Whether asking again later may succeed (throttling, a 5xx, a timeout).
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Request { retryable: true, .. })
    }
}

/// A decoded token and when ECR said it expires.
#[derive(Clone)]
struct CachedToken {
    username: String,
    password: String,
    expires_at: Option<SystemTime>,
}

impl CachedToken {
    /// Whether the token can still be handed out at `now`: it expires more than `margin` later.
    /// A token without an expiry is never reused.
    fn fresh_at(&self, now: SystemTime, margin: Duration) -> bool {
        self.expires_at
            .is_some_and(|expires| now.checked_add(margin).is_some_and(|t| t < expires))
    }
}

/// One host's cache entry. `fetch` is held by the one caller asking ECR; the others wait on it
/// and then find the token it stored.
#[derive(Default)]
struct HostSlot {
    fetch: tokio::sync::Mutex<()>,
    token: Mutex<Option<CachedToken>>,
}

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Configures an [`EcrCredentials`].
pub struct EcrCredentialsBuilder {
    sdk_config: SdkConfig,
    endpoint_url: Option<String>,
    refresh_before_expiry: Duration,
    clock: Clock,
}

impl EcrCredentialsBuilder {
    /// Sends every ECR request to `url` instead of the region's endpoint (a local mock in tests,
    /// or a VPC endpoint).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// How long before `expiresAt` a cached token is replaced (default 5 minutes).
    pub fn refresh_before_expiry(mut self, margin: Duration) -> Self {
        self.refresh_before_expiry = margin;
        self
    }

    /// The wall clock compared with `expiresAt` (default [`SystemTime::now`]).
    pub fn clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now);
        self
    }

    pub fn build(self) -> EcrCredentials {
        EcrCredentials {
            sdk_config: self.sdk_config,
            endpoint_url: self.endpoint_url,
            refresh_before_expiry: self.refresh_before_expiry,
            clock: self.clock,
            clients: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            token_requests: AtomicU64::new(0),
        }
    }
}

/// ECR pull credentials, cached per registry host. Share one behind an `Arc`.
pub struct EcrCredentials {
    sdk_config: SdkConfig,
    endpoint_url: Option<String>,
    refresh_before_expiry: Duration,
    clock: Clock,
    /// ECR clients by region.
    clients: Mutex<HashMap<String, aws_sdk_ecr::Client>>,
    /// Cache entries by lowercased host.
    slots: Mutex<HashMap<String, Arc<HostSlot>>>,
    token_requests: AtomicU64,
}

impl fmt::Debug for EcrCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcrCredentials")
            .field("endpoint_url", &self.endpoint_url)
            .field("refresh_before_expiry", &self.refresh_before_expiry)
            .field("token_requests", &self.token_requests())
            .finish_non_exhaustive()
    }
}

impl EcrCredentials {
    /// Credentials from `sdk_config`'s chain, ECR at each region's endpoint.
    pub fn new(sdk_config: &SdkConfig) -> Self {
        Self::builder(sdk_config).build()
    }

    pub fn builder(sdk_config: &SdkConfig) -> EcrCredentialsBuilder {
        EcrCredentialsBuilder {
            sdk_config: sdk_config.clone(),
            endpoint_url: None,
            refresh_before_expiry: DEFAULT_REFRESH_BEFORE_EXPIRY,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// How many GetAuthorizationToken requests this cache has sent.
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// `(username, password)` for pulling from `host`, from the cache or from ECR.
    pub async fn credentials(&self, host: &str) -> Result<(String, String), EcrError> {
        let registry = ecr_registry(host).ok_or_else(|| EcrError::NotEcr { host: host.to_string() })?;
        let host = host.to_ascii_lowercase();
        let slot = self.slot(&host);
        if let Some(pair) = self.cached(&slot) {
            return Ok(pair);
        }
        let _fetching = slot.fetch.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(pair) = self.cached(&slot) {
            return Ok(pair);
        }
        let token = self.fetch(&host, &registry).await?;
        let pair = (token.username.clone(), token.password.clone());
        *lock(&slot.token) = Some(token);
        Ok(pair)
    }

    /// Forgets `host`'s cached token, so the next [`credentials`](Self::credentials) call asks
    /// ECR again. Call it once after the registry refused the token.
    pub fn invalidate(&self, host: &str) {
        let slot = lock(&self.slots).get(&host.to_ascii_lowercase()).cloned();
        if let Some(slot) = slot {
            *lock(&slot.token) = None;
        }
    }

    fn slot(&self, host: &str) -> Arc<HostSlot> {
        lock(&self.slots).entry(host.to_string()).or_default().clone()
    }

    fn cached(&self, slot: &HostSlot) -> Option<(String, String)> {
        let now = (self.clock)();
        lock(&slot.token)
            .as_ref()
            .filter(|t| t.fresh_at(now, self.refresh_before_expiry))
            .map(|t| (t.username.clone(), t.password.clone()))
    }

    fn client(&self, region: &str) -> aws_sdk_ecr::Client {
        lock(&self.clients)
            .entry(region.to_string())
            .or_insert_with(|| {
                let mut config = aws_sdk_ecr::config::Builder::from(&self.sdk_config)
                    .region(aws_sdk_ecr::config::Region::new(region.to_string()));
                if let Some(url) = &self.endpoint_url {
                    config = config.endpoint_url(url);
                }
                aws_sdk_ecr::Client::from_conf(config.build())
            })
            .clone()
    }

    async fn fetch(&self, host: &str, registry: &EcrRegistry) -> Result<CachedToken, EcrError> {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        // registryIds is deprecated (a token opens every registry the principal may read), but
        // naming the host's account keeps the answer's proxyEndpoint that registry's.
        #[allow(deprecated)]
        let output = self
            .client(&registry.region)
            .get_authorization_token()
            .registry_ids(&registry.account)
            .send()
            .await
            .map_err(|err| {
                let failure = sdk_error::classify("GetAuthorizationToken", &err);
                EcrError::Request {
                    host: host.to_string(),
                    retryable: failure.class.retryable(),
                    message: failure.message,
                }
            })?;
        let bad = |reason: &str| EcrError::BadToken {
            host: host.to_string(),
            reason: reason.to_string(),
        };
        let data = output
            .authorization_data()
            .first()
            .ok_or_else(|| bad("no authorization data in the answer"))?;
        let encoded = data
            .authorization_token()
            .ok_or_else(|| bad("the answer has no authorizationToken"))?;
        let (username, password) = decode_token(encoded).map_err(bad)?;
        let expires_at = data.expires_at().and_then(|t| SystemTime::try_from(*t).ok());
        tracing::debug!(host, region = %registry.region, "fetched an ECR pull token");
        Ok(CachedToken {
            username,
            password,
            expires_at,
        })
    }
}

/// Splits ECR's base64 `user:password` token.
fn decode_token(encoded: &str) -> Result<(String, String), &'static str> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the token is not base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "the decoded token is not UTF-8")?;
    let (user, password) = text.split_once(':').ok_or("the decoded token is not user:password")?;
    if user.is_empty() || password.is_empty() {
        return Err("the decoded token has an empty user or password");
    }
    Ok((user.to_string(), password.to_string()))
}

/// Locks a mutex whose holders never panic while holding it; recovers the data if one did.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(account: &str, region: &str) -> Option<EcrRegistry> {
        Some(EcrRegistry {
            account: account.into(),
            region: region.into(),
        })
    }

    #[test]
    fn recognises_ecr_hosts() {
        assert_eq!(
            ecr_registry("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            registry("123456789012", "us-east-1")
        );
        assert_eq!(
            ecr_registry("000000000001.dkr.ecr.ap-southeast-2.amazonaws.com"),
            registry("000000000001", "ap-southeast-2")
        );
        assert_eq!(
            ecr_registry("123456789012.dkr.ecr.us-gov-west-1.amazonaws.com"),
            registry("123456789012", "us-gov-west-1")
        );
        assert_eq!(
            ecr_registry("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            registry("123456789012", "cn-north-1")
        );
        assert_eq!(
            ecr_registry("123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM"),
            registry("123456789012", "eu-west-1")
        );
    }

    #[test]
    fn refuses_look_alikes() {
        for host in [
            "",
            "docker.io",
            "ghcr.io",
            "localhost:5000",
            "dkr.ecr.us-east-1.amazonaws.com",
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "1234567890123.dkr.ecr.us-east-1.amazonaws.com",
            "12345678901a.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com:443",
            "123456789012.dkr.ecr.us-east-1.amazonaws.co",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east.amazonaws.com",
            "123456789012.dkr.ecr.useast1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.evil.amazonaws.com",
            "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
            "evil.123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr..amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo",
            "123456789012.notdkr.ecr.us-east-1.amazonaws.com",
        ] {
            assert_eq!(ecr_registry(host), None, "{host}");
        }
    }

    #[test]
    fn decodes_user_password_tokens() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("AWS:secret:with:colons");
        assert_eq!(decode_token(&encoded), Ok(("AWS".into(), "secret:with:colons".into())));
        assert!(decode_token("not base64!").is_err());
        let no_colon = base64::engine::general_purpose::STANDARD.encode("AWS");
        assert!(decode_token(&no_colon).is_err());
        let empty = base64::engine::general_purpose::STANDARD.encode("AWS:");
        assert!(decode_token(&empty).is_err());
    }

    #[test]
    fn tokens_are_reused_until_the_margin_before_expiry() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let token = CachedToken {
            username: "AWS".into(),
            password: "p".into(),
            expires_at: Some(t0 + Duration::from_secs(3600)),
        };
        let margin = Duration::from_secs(300);
        assert!(token.fresh_at(t0, margin));
        assert!(token.fresh_at(t0 + Duration::from_secs(3299), margin));
        assert!(!token.fresh_at(t0 + Duration::from_secs(3300), margin));
        assert!(!token.fresh_at(t0 + Duration::from_secs(7200), margin));
        let no_expiry = CachedToken {
            expires_at: None,
            ..token
        };
        assert!(!no_expiry.fresh_at(t0, margin));
    }

    #[test]
    fn errors_say_what_to_do() {
        let err = EcrError::NotEcr { host: "ghcr.io".into() };
        assert!(err.to_string().contains("\"ghcr.io\""), "{err}");
        assert!(!err.retryable());
        let err = EcrError::Request {
            host: "h".into(),
            message: "GetAuthorizationToken: Throttling".into(),
            retryable: true,
        };
        assert!(err.retryable());
        assert!(err.to_string().contains("Throttling"), "{err}");
    }
}
