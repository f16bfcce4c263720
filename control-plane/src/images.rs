//! Deploy-time image resolution: a tag becomes the digest its registry serves now, once, so
//! every node runs the same bits, and a bad reference fails the deploy with the registry's
//! reason instead of the first invocation.
//!
//! The control plane holds no registry credentials: it asks a node agent that runs the docker
//! runtime (`GET /v1/images/resolve?image=`), which asks the registry through its engine with
//! the node's credentials (basic or ECR). Nodes are asked in the function's hashing order, so
//! the function's home node answers first and starts pulling the image at once.

use crate::agent_client::{self, AgentClient};
use fjord_core::agent_http;
use fjord_core::agent_http::ResolvedImage;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use std::time::Duration;

/// How long one node may take to answer a resolve (the registry round trip included).
pub(crate) const RESOLVE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// The registry refused (unknown tag, wrong credentials...): the deploy is wrong.
    #[error("{0}")]
    Registry(String),
    /// No node could ask: every one failed to answer.
    #[error("no node could resolve it: {}", .0.join("; "))]
    NoNode(Vec<String>),
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

#[derive(Clone)]
pub(crate) struct ImageResolver {
    client: AgentClient,
}

impl Default for ImageResolver {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        ImageResolver {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

/// Whether a reference already names a digest (`repo@sha256:...`, or a bare local image id).
pub(crate) fn is_pinned(image: &str) -> bool {
    image.contains("@sha256:") || image.starts_with("sha256:")
}

impl ImageResolver {
    /// Asks `nodes` ((id, invoke address), in order) until one answers.
    pub(crate) async fn resolve(&self, image: &str, nodes: &[(String, String)]) -> Result<ResolvedImage, ResolveError> {
        let mut errors = Vec::new();
        for (id, addr) in nodes {
            match tokio::time::timeout(RESOLVE_TIMEOUT, self.ask(addr, image)).await {
                Ok(Ok(Ok(resolved))) => return Ok(resolved),
                Ok(Ok(Err(registry_reason))) => return Err(ResolveError::Registry(registry_reason)),
                Ok(Err(e)) => errors.push(format!("node {id}: {e}")),
                Err(_) => errors.push(format!("node {id}: no answer within {RESOLVE_TIMEOUT:?}")),
            }
        }
        Err(ResolveError::NoNode(errors))
    }

    /// Outer error: the node did not answer usefully; inner error: the registry's refusal.
    async fn ask(&self, addr: &str, image: &str) -> Result<Result<ResolvedImage, String>, String> {
        let uri = agent_http::agent_url(addr, &agent_http::resolve_image_path(image));
        let (status, body) = agent_client::get(&self.client, &uri).await?;
        match status.as_u16() {
            200 => serde_json::from_slice(&body)
                .map(Ok)
                .map_err(|e| format!("bad resolve answer: {e}")),
            422 => {
                let answer: ErrorAnswer =
                    serde_json::from_slice(&body).map_err(|e| format!("bad resolve error answer: {e}"))?;
                Ok(Err(answer.error))
            }
            other => Err(format!(
                "answered {other}: {}",
                String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_references_are_known() {
        assert!(is_pinned("r/x@sha256:abc"));
        assert!(!is_pinned("r/x:latest"));
    }
}
