//! Everything in Fjord that talks to AWS: ECR pull credentials for the node agent ([`ecr`]) and
//! the Auto Scaling group capacity provider for the control plane's node autoscaler ([`asg`]).
//!
//! This is the only crate that links the AWS SDK, whose compile takes minutes; other crates opt
//! in by depending on it. It holds clients and the mapping of AWS's answers and failures to
//! Fjord's terms (`fjord_decisions::capacity`), and no policy: when to scale, and which node to drain,
//! is the control plane's business.
//!
//! Credentials and region come from the standard AWS chain (environment, profile, web identity,
//! ECS, instance metadata) via [`load_sdk_config`]; an endpoint URL override points every client
//! at a local mock (moto in the tests) or a private endpoint.
//!
//! Compile time shapes two choices here. EC2 is called through a small client of our own
//! (`ec2`: DescribeInstances is all the provider needs) rather than the EC2 SDK crate, the
//! largest crate of the build. And every client speaks TLS through rustls with ring, as the rest
//! of Fjord does ([`sdk_http_client`]), rather than the SDK's default of aws-lc, a C library
//! whose build took minutes.

pub mod asg;
mod ec2;
pub mod ecr;
pub mod retry;
mod sdk_error;
pub mod testing;

pub use asg::AsgProvider;
pub use aws_config::SdkConfig;
pub use ecr::{ecr_registry, EcrCredentials, EcrError, EcrRegistry};
pub use retry::{retry, RetryPolicy};

/// Loads the AWS configuration from the standard chain (credentials, region, retry and timeout
/// settings from the environment, profile files and instance metadata). `endpoint_url`, when
/// given, overrides every service's endpoint (an operator's `--aws-endpoint-url`).
pub async fn load_sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(sdk_http_client());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The HTTP client every AWS SDK client here uses, and the credentials chain too (instance
/// metadata, STS, ECS): the SDK's hyper client over rustls with ring and the system's root
/// certificates. The SDK crates are built without a default client, so an [`SdkConfig`] must
/// carry this one; [`load_sdk_config`] and [`testing::static_sdk_config`] put it there.
pub fn sdk_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls_provider())
        .build_https()
}

/// rustls with ring, the TLS Fjord uses everywhere.
fn tls_provider() -> aws_smithy_http_client::tls::Provider {
    aws_smithy_http_client::tls::Provider::Rustls(aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring)
}
