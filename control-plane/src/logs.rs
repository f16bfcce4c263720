//! `fjord logs`: asks every node's agent for the function's recent log lines and merges them in
//! time order. Logs stay on the nodes (bounded buffers there); nothing is stored here.

use crate::agent_client::{self, AgentClient};
use fjord_core::agent_http;
use fjord_core::agent_http::LogLine as AgentLogLine;
use fjord_proto::v1 as pb;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

#[derive(Clone)]
pub(crate) struct LogCollector {
    client: AgentClient,
}

impl Default for LogCollector {
    fn default() -> Self {
        LogCollector {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl LogCollector {
    pub(crate) async fn collect(&self, function: &str, tail: u32, nodes: Vec<(String, String)>) -> pb::LogsResponse {
        let fetches = nodes.into_iter().map(|(node_id, addr)| async move {
            let result = tokio::time::timeout(Duration::from_secs(3), self.fetch(&addr, function, tail)).await;
            (node_id, result)
        });
        let mut lines = Vec::new();
        let mut errors = Vec::new();
        for (node_id, result) in futures::future::join_all(fetches).await {
            match result {
                Ok(Ok(fetched)) => lines.extend(fetched.into_iter().map(|l| pb::LogLine {
                    node_id: node_id.clone(),
                    instance_id: l.instance_id,
                    stream: l.stream,
                    timestamp_ms: l.timestamp_ms,
                    line: l.line,
                })),
                Ok(Err(e)) => errors.push(format!("node {node_id}: {e}")),
                Err(_) => errors.push(format!("node {node_id}: no answer within 3s")),
            }
        }
        lines.sort_by_key(|l| l.timestamp_ms);
        let skip = lines.len().saturating_sub(tail as usize);
        pb::LogsResponse {
            lines: lines.split_off(skip),
            errors,
        }
    }

    async fn fetch(&self, addr: &str, function: &str, tail: u32) -> Result<Vec<AgentLogLine>, String> {
        let uri = agent_http::agent_url(addr, &agent_http::logs_path(function, tail as usize));
        let (status, body) = agent_client::get(&self.client, &uri).await?;
        if !status.is_success() {
            return Err(format!("agent answered {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("bad log reply: {e}"))
    }
}
