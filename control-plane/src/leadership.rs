//! What a member does according to its role, re-decided whenever the role changes.
//!
//! - **Leader:** heartbeats from every agent reach it (followers forward them), so it alone has
//!   the full soft state. It builds and publishes the routing table, and runs the leader-only
//!   loops: committing a node down when it misses heartbeats and ready when they resume, and
//!   the scheduler with the function autoscaler ([`crate::scheduler`]), the node autoscaler
//!   ([`crate::node_scaler`]), the scheduled functions ([`crate::cron`]) and the reading of the
//!   queue's depth ([`crate::queue_watch`]).
//!   Each decision carries the term it was made in and is refused if a later leader proposed
//!   it (fencing), so two leaders never both act.
//! - **Follower:** relays the leader's routing table to its own watchers (lbs), so an lb may
//!   watch any member.

use crate::member::Member;
use crate::node_scaler::NodeScalerConfig;
use crate::raft_types::{Command, CommandResult, NodeState};
use crate::routing::publish_if_changed;
use crate::scheduler::Scheduler;
use fjord_core::RouteTable;
use fjord_proto::v1 as pb;
use fjord_proto::v1::routes_client::RoutesClient;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::Request;

pub async fn run(
    member: Arc<Member>,
    routes: watch::Sender<Arc<RouteTable>>,
    tick: Duration,
    node_scaler: NodeScalerConfig,
) {
    let mut metrics = member.raft.metrics();
    loop {
        if member.is_leader() {
            let term = member.term();
            tracing::info!(member = member.id, term, "leading: publishing routes, watching nodes");
            member.liveness.restart_grace();
            // The node autoscaler talks to slow provider APIs: its own task, for this term only.
            let groups = tokio::spawn(crate::node_scaler::run(member.clone(), term, node_scaler.clone()));
            let schedules = tokio::spawn(crate::cron::run(member.clone(), term, member.cron_clock));
            let depths = tokio::spawn(crate::queue_watch::run(member.clone(), term));
            lead(&member, &routes, tick, term).await;
            groups.abort();
            schedules.abort();
            depths.abort();
            member.queue_depths.clear();
        } else if let Ok(Some(channel)) = member.leader_channel() {
            if let Err(e) = follow(&member, &routes, channel).await {
                tracing::debug!(error = %e, "route relay from the leader ended");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            let _ = tokio::time::timeout(Duration::from_millis(200), metrics.changed()).await;
        }
    }
}

async fn lead(member: &Member, routes: &watch::Sender<Arc<RouteTable>>, tick: Duration, term: u64) {
    let mut applied = member.state.subscribe();
    let mut heartbeats = member.liveness.subscribe();
    let mut metrics = member.raft.metrics();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scheduler = Scheduler::new(member.heartbeat_interval);
    while member.is_leader() && member.term() == term {
        publish_if_changed(&member.state, &member.liveness, routes);
        tokio::select! {
            _ = applied.changed() => {},
            _ = heartbeats.changed() => {},
            _ = metrics.changed() => {},
            _ = interval.tick() => {
                commit_node_transitions(member, term).await;
                if !scheduler.tick(member, term).await {
                    tracing::info!(term, "a newer leader exists: stopping the leader loops");
                    return;
                }
            }
        }
    }
}

/// Commits `down` for nodes silent past the heartbeat timeout (and past the grace of a new
/// term) and `ready` for down nodes heard from again. A draining node that falls silent is left
/// draining: the scheduler commits it drained once its placements have moved (nothing there is
/// reachable), so an operator's drain still holds when it comes back.
async fn commit_node_transitions(member: &Member, term: u64) {
    let nodes: Vec<(String, NodeState)> = member
        .state
        .read(|a| a.cluster.nodes.values().map(|n| (n.info.id.clone(), n.state)).collect());
    for (id, state) in nodes {
        let next = match state {
            NodeState::Ready if !member.liveness.is_alive(&id) => NodeState::Down,
            NodeState::Down if member.liveness.heard_recently(&id) => NodeState::Ready,
            _ => continue,
        };
        match member
            .write(Command::SetNodeState {
                id: id.clone(),
                state: next,
                term,
            })
            .await
        {
            Ok(CommandResult::Fenced { .. }) => return,
            Ok(_) => tracing::info!(node = %id, state = next.as_str(), term, "node state committed"),
            Err(e) => {
                tracing::warn!(node = %id, error = %e, "could not commit a node state change");
                return;
            }
        }
    }
}

async fn follow(
    member: &Member,
    routes: &watch::Sender<Arc<RouteTable>>,
    channel: tonic::transport::Channel,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let leader = member.leader().map(|(id, _)| id);
    let mut request = Request::new(pb::WatchRoutesRequest {});
    member.token.attach(&mut request);
    let mut stream = RoutesClient::new(channel).watch_routes(request).await?.into_inner();
    let mut metrics = member.raft.metrics();
    loop {
        tokio::select! {
            message = stream.message() => {
                let Some(table) = message? else { return Ok(()) };
                routes.send_replace(Arc::new(RouteTable::from(table)));
            }
            changed = metrics.changed() => {
                changed?;
                if member.is_leader() || member.leader().map(|(id, _)| id) != leader {
                    return Ok(());
                }
                if let Some(l) = leader {
                    if member.faults.is_cut(member.id, l) {
                        return Ok(());
                    }
                }
            }
        }
    }
}
