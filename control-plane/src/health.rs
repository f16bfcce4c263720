//! The standard `grpc.health.v1.Health` service: each public service of this member (and the
//! server as a whole, `""`) answers SERVING only while the member can serve the Admin API: a
//! follower that knows a leader, or a leader that a quorum still confirms (a ReadIndex round).
//! A member cut off from the quorum answers NOT_SERVING, so a load balancer sends clients to
//! another member.

use crate::member::Member;
use openraft::ServerState;
use std::sync::Arc;
use std::time::Duration;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// The services whose health is reported, besides the server as a whole (`""`).
pub(crate) const SERVICES: [&str; 3] = ["fjord.v1.Admin", "fjord.v1.Agent", "fjord.v1.Routes"];

/// Follows this member's view of the cluster every `every`, updating `reporter` on a change.
pub(crate) async fn follow(member: Arc<Member>, reporter: HealthReporter, every: Duration) {
    let mut last: Option<bool> = None;
    loop {
        let serving = can_serve(&member, every).await;
        if last != Some(serving) {
            let status = if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for service in std::iter::once("").chain(SERVICES) {
                reporter.set_service_status(service, status).await;
            }
            tracing::info!(serving, "health");
            last = Some(serving);
        }
        tokio::time::sleep(every).await;
    }
}

async fn can_serve(member: &Member, within: Duration) -> bool {
    if member.is_leader() {
        return matches!(
            tokio::time::timeout(within.max(Duration::from_millis(200)), member.linearizable()).await,
            Ok(Ok(()))
        );
    }
    let metrics = member.raft.metrics();
    let m = metrics.borrow();
    matches!(m.state, ServerState::Follower | ServerState::Learner)
        && m.current_leader.is_some_and(|leader| leader != member.id)
}
