//! The leader reads the queue's depth per function every [`PERIOD`] (calls waiting, in flight,
//! the oldest's age) for the autoscaler, `fjord describe` and the metrics. Soft state: a new
//! leader reads it again within a period; a follower keeps none.

use crate::member::Member;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub(crate) const PERIOD: Duration = Duration::from_secs(2);

/// Runs while this member leads in `term`.
pub(crate) async fn run(member: Arc<Member>, term: u64) {
    let mut interval = tokio::time::interval(PERIOD);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while member.is_leader() && member.term() == term {
        interval.tick().await;
        let Some(queue) = member.queue.get() else {
            member.queue_depths.set_error(if member.queue.configured() {
                "the queue (NATS) is not reachable yet".into()
            } else {
                "no queue: the control plane runs without --nats-url".into()
            });
            continue;
        };
        let names: Vec<String> = member.state.read(|a| a.cluster.functions.keys().cloned().collect());
        let mut depths = BTreeMap::new();
        let mut failure = None;
        for name in names {
            match queue.depth(&name).await {
                Ok(depth) => {
                    depths.insert(name, depth);
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        match failure {
            None => member.queue_depths.set(depths),
            Some(error) => member.queue_depths.set_error(error),
        }
    }
    member.queue_depths.clear();
}
