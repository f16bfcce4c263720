//! The Admin API's `Watch`: functions and nodes as this member applies changes to them. Each
//! wake-up compares a small digest of the state (a function's revision and last update, a
//! node's committed state) with the last one sent, so a watcher sees every change it did not
//! see before, once, without polling.

use crate::member::Member;
use fjord_proto::v1 as pb;
use pb::change_event::Kind;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// What a watcher was last told.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Digest {
    /// name -> (revision, updated_at_ms)
    functions: BTreeMap<String, (u64, u64)>,
    /// id -> committed state
    nodes: BTreeMap<String, &'static str>,
}

fn digest(member: &Member) -> (Digest, u64) {
    member.state.read(|a| {
        let c = &a.cluster;
        let digest = Digest {
            functions: c
                .functions
                .iter()
                .map(|(name, r)| (name.clone(), (r.revision, r.updated_at_ms)))
                .collect(),
            nodes: c.nodes.iter().map(|(id, n)| (id.clone(), n.state.as_str())).collect(),
        };
        (digest, a.last_applied.map_or(0, |l| l.index))
    })
}

/// The events that turn `old` into `new`, in name order.
fn changes(old: &Digest, new: &Digest, applied_index: u64) -> Vec<pb::ChangeEvent> {
    let event = |kind: Kind, name: &str| pb::ChangeEvent {
        kind: kind as i32,
        name: name.to_string(),
        applied_index,
        ..Default::default()
    };
    let mut events = Vec::new();
    for (name, shape) in &new.functions {
        if old.functions.get(name) != Some(shape) {
            events.push(pb::ChangeEvent {
                revision: shape.0,
                ..event(Kind::FunctionDeployed, name)
            });
        }
    }
    for name in old.functions.keys().filter(|n| !new.functions.contains_key(*n)) {
        events.push(event(Kind::FunctionRemoved, name));
    }
    for (id, state) in &new.nodes {
        if old.nodes.get(id) != Some(state) {
            events.push(pb::ChangeEvent {
                node_state: state.to_string(),
                ..event(Kind::NodeChanged, id)
            });
        }
    }
    for id in old.nodes.keys().filter(|n| !new.nodes.contains_key(*n)) {
        events.push(event(Kind::NodeRemoved, id));
    }
    events
}

/// Runs one watcher until it goes away or the member stops.
pub(crate) async fn run(
    member: Arc<Member>,
    include_existing: bool,
    tx: mpsc::Sender<Result<pb::ChangeEvent, tonic::Status>>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut applied = member.state.subscribe();
    let (mut sent, index) = digest(&member);
    if include_existing {
        let mut first = changes(&Digest::default(), &sent, index);
        first.push(pb::ChangeEvent {
            kind: Kind::Synced as i32,
            applied_index: index,
            ..Default::default()
        });
        for event in first {
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    }
    loop {
        tokio::select! {
            r = applied.changed() => if r.is_err() { return },
            _ = tx.closed() => return,
            _ = stopping.wait_for(|s| *s) => return,
        }
        let (now, index) = digest(&member);
        if now == sent {
            continue;
        }
        for event in changes(&sent, &now, index) {
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        sent = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_what_was_added_changed_and_removed() {
        let old = Digest {
            functions: [("a".into(), (1, 10)), ("b".into(), (2, 20))].into(),
            nodes: [("n1".into(), "ready")].into(),
        };
        let new = Digest {
            functions: [("a".into(), (1, 11)), ("c".into(), (3, 30))].into(),
            nodes: [("n1".into(), "draining"), ("n2".into(), "ready")].into(),
        };
        let seen: Vec<(i32, String)> = changes(&old, &new, 7).into_iter().map(|e| (e.kind, e.name)).collect();
        assert_eq!(
            seen,
            vec![
                (Kind::FunctionDeployed as i32, "a".into()),
                (Kind::FunctionDeployed as i32, "c".into()),
                (Kind::FunctionRemoved as i32, "b".into()),
                (Kind::NodeChanged as i32, "n1".into()),
                (Kind::NodeChanged as i32, "n2".into()),
            ]
        );
        assert!(changes(&new, &new, 8).is_empty());
    }
}
