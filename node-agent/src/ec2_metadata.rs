//! The node's identity on EC2, from the instance metadata service, version 2 only: a session
//! token is fetched with `PUT /latest/api/token`, then sent with every read. The control plane
//! ties the registered node to its instance id (to terminate exactly that instance on
//! scale-in), and the zone spreads instances.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Where the metadata service answers on every EC2 instance.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const TOKEN_TTL_SECONDS: &str = "21600";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Identity {
    pub instance_id: String,
    pub availability_zone: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("the EC2 metadata service at {endpoint} did not answer {path}: {reason}")]
    Unreachable {
        endpoint: String,
        path: String,
        reason: String,
    },
    #[error("the EC2 metadata service answered {status} for {path}")]
    Status { path: String, status: u16 },
    #[error("the EC2 metadata service returned an invalid {what}: {value:?}")]
    Invalid { what: &'static str, value: String },
}

/// Reads the instance id and availability zone, trying up to three times per call.
pub async fn fetch_identity(endpoint: &str) -> Result<Ec2Identity, MetadataError> {
    let endpoint = endpoint.trim_end_matches('/');
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let token = call(
        &client,
        endpoint,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS)],
    )
    .await?;
    let auth = [("x-aws-ec2-metadata-token", token.as_str())];
    let instance_id = call(&client, endpoint, "GET", "/latest/meta-data/instance-id", &auth).await?;
    let availability_zone = call(
        &client,
        endpoint,
        "GET",
        "/latest/meta-data/placement/availability-zone",
        &auth,
    )
    .await?;
    if fjord_core::name::check_dns_label(&instance_id).is_err() {
        return Err(MetadataError::Invalid {
            what: "instance id",
            value: instance_id,
        });
    }
    Ok(Ec2Identity {
        instance_id,
        availability_zone,
    })
}

async fn call(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<String, MetadataError> {
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{endpoint}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| MetadataError::Invalid {
                what: "request",
                value: e.to_string(),
            })?;
        match tokio::time::timeout(Duration::from_secs(2), client.request(request)).await {
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                if status != 200 {
                    return Err(MetadataError::Status {
                        path: path.into(),
                        status,
                    });
                }
                return Ok(String::from_utf8_lossy(&body).trim().to_string());
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "no answer within 2s".into(),
        }
    }
    Err(MetadataError::Unreachable {
        endpoint: endpoint.into(),
        path: path.into(),
        reason: last,
    })
}
