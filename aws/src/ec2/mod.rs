//! A small client for EC2's Query API: the few calls Fjord makes (DescribeInstances, and for the
//! tests DescribeImages, DescribeSubnets and CreateLaunchTemplate), in place of the EC2 SDK
//! crate, which was the largest single item of Fjord's compile time for one read-only call.
//!
//! A call is a form-encoded POST (`Action=…&Version=2016-11-15&…`) signed with Signature
//! Version 4 ([`sigv4`]), sent over the SDK's own HTTP connector (rustls with ring, the same
//! connect timeout as the SDK clients), and answered in XML ([`xml`]). It takes from the
//! [`SdkConfig`] what the SDK client took: credentials (cached until 5 minutes before they
//! expire), region, FIPS and dual-stack choices, and the endpoint (an explicit override first,
//! then `AWS_ENDPOINT_URL_EC2` or a profile's `ec2` section, then `AWS_ENDPOINT_URL`, else
//! `https://ec2.{region}.amazonaws.com`). It does not retry: callers use [`crate::retry`], as
//! they do with the SDK clients whose retries are off. Failures come back as [`Ec2Error`] and
//! sort into the same [`FailureClass`]es as the SDK's.

mod sigv4;
pub(crate) mod xml;

use crate::sdk_error::{classify_code, FailureClass, SdkFailure};
use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body_util::BodyExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use xml::Element;

/// The EC2 API version every call names.
const API_VERSION: &str = "2016-11-15";
/// The service name in the signature's scope.
const SIGNING_NAME: &str = "ec2";
/// What is sent as the body's type.
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// Answers larger than this are refused rather than held in memory.
const MAX_ANSWER_BYTES: usize = 32 << 20;
/// Cached credentials are replaced this long before they expire.
const CREDENTIALS_REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Credentials without an expiry (static keys) are read again after this long.
const CREDENTIALS_REUSE_WITHOUT_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// Characters sent as they are in a form value: the unreserved set of RFC 3986, as the SDK's
/// Query serializer keeps them. Everything else is percent-encoded.
const FORM_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Why an EC2 call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Ec2Error {
    /// EC2 answered with an error (`InvalidInstanceID.NotFound`, `RequestLimitExceeded`...).
    #[error("{}{message} (HTTP {status})", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Service {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The request was not answered, or the answer not read, within the attempt's time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request could not be sent or its answer not received (connection refused, reset,
    /// TLS failure, DNS). `user` when the request itself was at fault.
    #[error("request not delivered: {reason}")]
    Dispatch { reason: String, user: bool },
    /// EC2 answered, but with something that could not be read.
    #[error("unreadable answer (HTTP {status}): {reason}")]
    BadAnswer { status: u16, reason: String },
    /// No credentials could be had from the configured chain.
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    /// The request could not be built: no region, a bad endpoint URL, unsignable input.
    #[error("{0}")]
    Request(String),
}

impl Ec2Error {
    /// EC2's error code, for an answer that had one.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The failure, classified as the SDK's failures are, with a message naming `operation`.
    ///
    /// Credentials that cannot be had count as unavailable (retryable), as the SDK reports them:
    /// a dispatch failure, most often an instance-metadata or STS hiccup.
    pub(crate) fn failure(&self, operation: &str) -> SdkFailure {
        let (class, code) = match self {
            Self::Service { status, code, .. } => (classify_code(code.as_deref(), Some(*status)), code.clone()),
            Self::Timeout(_) | Self::Credentials(_) => (FailureClass::Unavailable, None),
            Self::Dispatch { user: true, .. } | Self::Request(_) => (FailureClass::Invalid, None),
            Self::Dispatch { user: false, .. } => (FailureClass::Unavailable, None),
            Self::BadAnswer { status: 429, .. } => (FailureClass::Throttled, None),
            Self::BadAnswer { .. } => (FailureClass::Server, None),
        };
        let message = match self {
            Self::Service {
                code: Some(code),
                message,
                ..
            } if !message.is_empty() => format!("{operation}: {code}: {message}"),
            Self::Service { code: Some(code), .. } => format!("{operation}: {code}"),
            other => format!("{operation}: {other}"),
        };
        SdkFailure { class, code, message }
    }
}

/// One instance as DescribeInstances lists it: what Fjord reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ec2Instance {
    pub instance_id: String,
    pub private_ip: Option<String>,
    pub zone: Option<String>,
    /// `pending`, `running`, `shutting-down`, `terminated`, `stopping`, `stopped`.
    pub state: Option<String>,
}

/// One page of DescribeInstances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstancesPage {
    pub instances: Vec<Ec2Instance>,
    /// Where the next page starts; `None` on the last.
    pub next_token: Option<String>,
}

/// The EC2 endpoint of one region (or an override), with the credentials to call it.
#[derive(Clone)]
pub(crate) struct Ec2Client {
    connector: SharedHttpConnector,
    endpoint: Result<Endpoint, String>,
    region: Option<String>,
    credentials: Option<CredentialsCache>,
    attempt_timeout: Duration,
}

impl fmt::Debug for Ec2Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ec2Client")
            .field("endpoint", &self.endpoint.as_ref().map(|e| e.uri.to_string()))
            .field("region", &self.region)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

impl Ec2Client {
    /// A client for `config`'s region and credentials, at `endpoint_url` when given. A missing
    /// region or a bad endpoint URL is reported by each call, as the SDK clients do.
    pub(crate) fn new(
        config: &SdkConfig,
        endpoint_url: Option<&str>,
        connect_timeout: Duration,
        attempt_timeout: Duration,
    ) -> Self {
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(connect_timeout)
            .build();
        let connector = aws_smithy_http_client::Connector::builder()
            .connector_settings(settings)
            .tls_provider(crate::tls_provider())
            .build();
        let region = config.region().map(|r| r.as_ref().to_string());
        Self {
            connector: SharedHttpConnector::new(connector),
            endpoint: endpoint_url_for(config, endpoint_url, region.as_deref()).and_then(|url| Endpoint::parse(&url)),
            region,
            credentials: config.credentials_provider().map(CredentialsCache::new),
            attempt_timeout,
        }
    }

    /// Calls `action` with `params` (already in EC2's Query names: `InstanceId.1`,
    /// `Filter.1.Name`...) and returns the answer's root element.
    pub(crate) async fn call(&self, action: &str, params: &[(String, String)]) -> Result<Element, Ec2Error> {
        match tokio::time::timeout(self.attempt_timeout, self.call_once(action, params)).await {
            Ok(result) => result,
            Err(_) => Err(Ec2Error::Timeout(self.attempt_timeout)),
        }
    }

    async fn call_once(&self, action: &str, params: &[(String, String)]) -> Result<Element, Ec2Error> {
        let endpoint = self.endpoint.as_ref().map_err(|e| Ec2Error::Request(e.clone()))?;
        let region = self.region.as_deref().ok_or_else(|| {
            Ec2Error::Request("no AWS region is configured (set AWS_REGION, or a region in the AWS profile)".into())
        })?;
        let credentials = match &self.credentials {
            Some(cache) => cache.get().await?,
            None => return Err(Ec2Error::Credentials("no credentials provider is configured".into())),
        };

        let mut request = http::Request::post(endpoint.uri.clone())
            .header(http::header::HOST, &endpoint.host)
            .header(http::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(Bytes::from(form_body(action, params)))
            .map_err(|e| Ec2Error::Request(format!("building the request: {e}")))?;
        let scope = sigv4::Scope {
            region,
            service: SIGNING_NAME,
        };
        sigv4::sign(&mut request, &credentials, scope, SystemTime::now()).map_err(Ec2Error::Request)?;
        let request = HttpRequest::try_from(request.map(SdkBody::from))
            .map_err(|e| Ec2Error::Request(format!("building the request: {e}")))?;

        let response = self.connector.call(request).await.map_err(|e| Ec2Error::Dispatch {
            reason: error_chain(&e),
            user: e.is_user(),
        })?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| Ec2Error::BadAnswer {
                status,
                reason: format!("reading the body: {e}"),
            })?
            .to_bytes();
        let text = std::str::from_utf8(&body).map_err(|_| Ec2Error::BadAnswer {
            status,
            reason: "the body is not UTF-8".into(),
        })?;
        if (200..300).contains(&status) {
            xml::parse(text).map_err(|e| Ec2Error::BadAnswer {
                status,
                reason: e.to_string(),
            })
        } else {
            Err(service_error(status, text))
        }
    }

    /// One page of DescribeInstances for `instance_ids`, from `next_token` when given.
    pub(crate) async fn describe_instances(
        &self,
        instance_ids: &[String],
        next_token: Option<&str>,
    ) -> Result<InstancesPage, Ec2Error> {
        let mut params = numbered("InstanceId", instance_ids.iter().cloned());
        if let Some(token) = next_token {
            params.push(("NextToken".to_string(), token.to_string()));
        }
        let root = self.call("DescribeInstances", &params).await?;
        instances_page(&root).map_err(|reason| Ec2Error::BadAnswer { status: 200, reason })
    }
}

/// `name.1`, `name.2`... for a list parameter, as EC2's Query protocol numbers its members.
pub(crate) fn numbered(name: &str, values: impl IntoIterator<Item = String>) -> Vec<(String, String)> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| (format!("{name}.{}", i + 1), value))
        .collect()
}

/// The form body of a call: action, version, then the parameters in the order given.
fn form_body(action: &str, params: &[(String, String)]) -> String {
    let mut body = format!(
        "Action={}&Version={API_VERSION}",
        utf8_percent_encode(action, FORM_VALUE)
    );
    for (name, value) in params {
        body.push('&');
        body.extend(utf8_percent_encode(name, FORM_VALUE));
        body.push('=');
        body.extend(utf8_percent_encode(value, FORM_VALUE));
    }
    body
}

/// A DescribeInstances answer's instances and next token.
fn instances_page(root: &Element) -> Result<InstancesPage, String> {
    if root.name != "DescribeInstancesResponse" {
        return Err(format!("expected a DescribeInstancesResponse, got <{}>", root.name));
    }
    let instances = root
        .items("reservationSet")
        .flat_map(|reservation| reservation.items("instancesSet"))
        .filter_map(|instance| {
            Some(Ec2Instance {
                instance_id: instance.child_text("instanceId")?.to_string(),
                private_ip: instance.child_text("privateIpAddress").map(str::to_string),
                zone: instance
                    .at(&["placement", "availabilityZone"])
                    .map(Element::text)
                    .filter(|z| !z.is_empty())
                    .map(str::to_string),
                state: instance
                    .at(&["instanceState", "name"])
                    .map(Element::text)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            })
        })
        .collect();
    Ok(InstancesPage {
        instances,
        next_token: root.child_text("nextToken").map(str::to_string),
    })
}

/// The error an answer with status `status` carries: EC2's `Response/Errors/Error` (or a bare
/// `Error`, as some proxies and mocks send), else the status alone with the body's start.
fn service_error(status: u16, body: &str) -> Ec2Error {
    let root = xml::parse(body).ok();
    let error = root
        .as_ref()
        .and_then(|r| r.at(&["Errors", "Error"]).or_else(|| r.child("Error")));
    match error {
        Some(error) => Ec2Error::Service {
            status,
            code: error.child_text("Code").map(str::to_string),
            message: error.child_text("Message").unwrap_or_default().to_string(),
        },
        None => Ec2Error::Service {
            status,
            code: None,
            message: body.chars().take(200).collect(),
        },
    }
}

/// An error and its sources, `: `-separated, so a connection failure says why.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The URL EC2 is called at, chosen as the SDK's EC2 client chooses it.
fn endpoint_url_for(config: &SdkConfig, endpoint_url: Option<&str>, region: Option<&str>) -> Result<String, String> {
    if let Some(url) = endpoint_url {
        return Ok(url.to_string());
    }
    let configured = if config.get_origin("endpoint_url").is_client_config() {
        config.endpoint_url().map(str::to_string)
    } else {
        let key = aws_types::service_config::ServiceConfigKey::builder()
            .service_id("EC2")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .expect("every field of the key is set");
        config
            .service_config()
            .and_then(|c| c.load_config(key))
            .or_else(|| config.endpoint_url().map(str::to_string))
    };
    if let Some(url) = configured {
        return Ok(url);
    }
    let region = region.ok_or("no AWS region is configured (set AWS_REGION, or a region in the AWS profile)")?;
    Ok(regional_endpoint(
        region,
        config.use_fips().unwrap_or(false),
        config.use_dual_stack().unwrap_or(false),
    ))
}

/// EC2's public endpoint in `region`: `https://ec2.{region}.amazonaws.com`, with `ec2-fips`
/// for FIPS, the `api.aws` domain for dual stack, and China's own domains for `cn-` regions.
fn regional_endpoint(region: &str, fips: bool, dual_stack: bool) -> String {
    let china = region.starts_with("cn-");
    let service = if fips { "ec2-fips" } else { "ec2" };
    let domain = match (china, dual_stack) {
        (false, false) => "amazonaws.com",
        (false, true) => "api.aws",
        (true, false) => "amazonaws.com.cn",
        (true, true) => "api.amazonwebservices.com.cn",
    };
    format!("https://{service}.{region}.{domain}")
}

/// Where requests go: the URI (path `/` when the URL has none) and the `Host` header, which is
/// signed, so it is set here rather than left to the HTTP client.
#[derive(Debug, Clone)]
struct Endpoint {
    uri: http::Uri,
    host: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, String> {
        let bad = |why: &str| format!("the EC2 endpoint URL {url:?} {why}");
        let uri: http::Uri = url.parse().map_err(|e| bad(&format!("is not a URL: {e}")))?;
        let scheme = uri.scheme_str().ok_or_else(|| bad("has no scheme"))?.to_string();
        if scheme != "http" && scheme != "https" {
            return Err(bad("is neither http nor https"));
        }
        let authority = uri.authority().ok_or_else(|| bad("has no host"))?.clone();
        let default_port = if scheme == "https" { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => format!("{}:{port}", authority.host()),
            _ => authority.host().to_string(),
        };
        let path = match uri.path() {
            "" => "/",
            path => path,
        };
        let uri = http::Uri::builder()
            .scheme(scheme.as_str())
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Endpoint { uri, host })
    }
}

/// The configured credentials, read once and reused until shortly before they expire, as the
/// SDK's identity cache does; concurrent callers wait for one read.
#[derive(Clone)]
struct CredentialsCache {
    provider: SharedCredentialsProvider,
    cached: Arc<tokio::sync::Mutex<Option<(Credentials, SystemTime)>>>,
}

impl CredentialsCache {
    fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            provider,
            cached: Arc::default(),
        }
    }

    async fn get(&self) -> Result<Credentials, Ec2Error> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some((credentials, reuse_until)) = cached.as_ref() {
            if now < *reuse_until {
                return Ok(credentials.clone());
            }
        }
        let fresh = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| Ec2Error::Credentials(error_chain(&e)))?;
        let reuse_until = match fresh.expiry() {
            Some(expiry) => expiry.checked_sub(CREDENTIALS_REFRESH_BEFORE_EXPIRY).unwrap_or(now),
            None => now + CREDENTIALS_REUSE_WITHOUT_EXPIRY,
        };
        *cached = Some((fresh.clone(), reuse_until));
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests;
