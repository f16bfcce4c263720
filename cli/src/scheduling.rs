//! `fjord nodes drain|undrain` and `fjord policy apply|show`: the operator's side of the
//! scheduler.

use crate::connect::{explain, ConnectArgs};
use crate::output::{out, outln};
use fjord_decisions::policy::ClusterPolicy;
use fjord_proto::v1 as pb;
use std::path::Path;
use std::time::{Duration, Instant};

/// Asks the cluster to drain `id`, then (with `wait`) follows it until the node is drained.
pub async fn drain(connect: &ConnectArgs, id: &str, wait: Option<Duration>) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    let node = admin
        .drain_node(pb::DrainNodeRequest {
            id: id.into(),
            undrain: false,
        })
        .await
        .map_err(explain)?
        .into_inner();
    outln!("node {id} is {}: it gets no new instances or requests", node.state);
    let Some(limit) = wait else {
        outln!("follow it with `fjord nodes`; it shows `drained` once nothing runs there");
        return Ok(());
    };
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    loop {
        let nodes = crate::listing::nodes(&mut admin).await?.nodes;
        let Some(node) = nodes.iter().find(|n| n.info.as_ref().is_some_and(|i| i.id == id)) else {
            anyhow::bail!("node {id} is no longer registered");
        };
        if node.state == "drained" {
            outln!("node {id} is drained: nothing placed or running there; it can be stopped");
            return Ok(());
        }
        if node.state != "draining" {
            anyhow::bail!(
                "node {id} is {} now (drain interrupted: undrained, or the node went down)",
                node.state
            );
        }
        let instances: u32 = node.functions.iter().map(|f| f.ready + f.starting).sum();
        let placed: u32 = node.placed.values().sum();
        let progress = format!(
            "  {instances} instances running, {placed} still placed (waiting for their replacements), {} requests in flight",
            node.in_flight
        );
        if progress != last {
            outln!("{progress}");
            last = progress;
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "node {id} is still draining after {}s; instances with no room elsewhere stay until a node joins \
                 (see `fjord describe NAME` for pending instances)",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn undrain(connect: &ConnectArgs, id: &str) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    let node = admin
        .drain_node(pb::DrainNodeRequest {
            id: id.into(),
            undrain: true,
        })
        .await
        .map_err(explain)?
        .into_inner();
    outln!("node {id} is {}", node.state);
    Ok(())
}

pub async fn remove_node(connect: &ConnectArgs, id: &str) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    admin
        .remove_node(pb::RemoveNodeRequest { id: id.into() })
        .await
        .map_err(explain)?;
    outln!("node {id} removed");
    Ok(())
}

pub async fn apply_policy(connect: &ConnectArgs, file: &Path) -> anyhow::Result<()> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?
    };
    // Checked here for a quick answer naming the field; the control plane checks again.
    ClusterPolicy::from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}; nothing applied", file.display()))?;
    let mut admin = connect.admin().await?;
    let stored = admin
        .apply_policy(pb::Policy { yaml: text })
        .await
        .map_err(explain)?
        .into_inner();
    outln!("policy applied; the cluster now runs with:");
    out!("{}", stored.yaml);
    Ok(())
}

pub async fn show_policy(connect: &ConnectArgs) -> anyhow::Result<()> {
    let mut admin = connect.admin().await?;
    let stored = admin
        .get_policy(pb::GetPolicyRequest {})
        .await
        .map_err(explain)?
        .into_inner();
    out!("{}", stored.yaml);
    Ok(())
}
