//! Relocations: the instances a plan takes off a node still running them, paired with where the
//! same function gains instances, so the caller starts the new one before it stops the old.

use super::planner::Cluster;
use super::{Move, NodeState, Placements};
use std::collections::BTreeMap;

/// Instances that leave a node still running them (ready or draining) while the same function
/// gains instances elsewhere: each such pair is a move. Draining nodes are paired first.
pub(super) fn relocations(cluster: &Cluster<'_>, current: &Placements, planned: &Placements) -> Vec<Move> {
    let empty = BTreeMap::new();
    let mut moves = Vec::new();
    for (function, before) in current {
        let after = planned.get(function).unwrap_or(&empty);
        let mut leaving: Vec<(bool, &str, u32)> = before
            .iter()
            .filter_map(|(id, &count)| {
                let state = cluster.state_of(id)?;
                let gone = count.saturating_sub(after.get(id).copied().unwrap_or(0));
                (state != NodeState::Down && gone > 0).then_some((state != NodeState::Draining, id.as_str(), gone))
            })
            .collect();
        leaving.sort();
        let mut arriving: Vec<(&str, u32)> = after
            .iter()
            .filter_map(|(id, &count)| {
                let new = count.saturating_sub(before.get(id).copied().unwrap_or(0));
                (new > 0).then_some((id.as_str(), new))
            })
            .collect();
        let mut to = arriving.iter_mut();
        let mut target = to.next();
        for (_, from, mut gone) in leaving {
            while gone > 0 {
                let Some((id, new)) = target.as_mut() else {
                    break;
                };
                let instances = gone.min(*new);
                moves.push(Move {
                    function: function.clone(),
                    from: from.to_string(),
                    to: id.to_string(),
                    instances,
                });
                gone -= instances;
                *new -= instances;
                if *new == 0 {
                    target = to.next();
                }
            }
        }
    }
    moves
}
