//! The control plane's plain-HTTP calls to node agents (logs, image resolution); their paths
//! are `fjord_core::agent_http`'s.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;
use hyper_util::client::legacy::{connect::HttpConnector, Client};

pub(crate) type AgentClient = Client<HttpConnector, Empty<Bytes>>;

/// GETs `uri` from an agent: the status and the whole body, or why there is none.
pub(crate) async fn get(client: &AgentClient, uri: &str) -> Result<(StatusCode, Bytes), String> {
    let response = client
        .get(uri.parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}
