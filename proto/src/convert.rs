//! Conversions between the wire types and `fjord-core`'s domain types.
//!
//! A spec coming off the wire is validated in its `TryFrom`, so no daemon can hold an invalid
//! `FunctionSpec`.

use crate::v1 as pb;
use fjord_core::node::{FunctionLoad, ImageState};
use fjord_core::secret::Secrets;
use fjord_core::spec::{AsyncPolicy, KeepAlive};
use fjord_core::{FunctionRecord, FunctionSpec, NodeInfo, RouteNode, RouteTable, RoutedFunction, SpecError};
use std::time::Duration;

impl From<&FunctionSpec> for pb::FunctionSpec {
    fn from(s: &FunctionSpec) -> Self {
        pb::FunctionSpec {
            name: s.name.clone(),
            image: s.image.clone(),
            command: s.command.clone(),
            env: s.env.clone().into_iter().collect(),
            secrets: s.secrets.inline().cloned().unwrap_or_default().into_iter().collect(),
            secret_names: s.secrets.names().to_vec(),
            memory_mib: s.memory_mib,
            cpu_millis: s.cpu_millis,
            timeout_ms: s.timeout.as_millis() as u64,
            concurrency: s.concurrency,
            min_instances: s.min,
            max_instances: s.max,
            scale_to_zero_after_ms: s.scale_to_zero_after.as_millis() as u64,
            keep_alive: if s.keep_alive.is_fixed() {
                String::new()
            } else {
                s.keep_alive.as_str().to_string()
            },
            labels: s.labels.clone().into_iter().collect(),
            target_utilization: s.target_utilization,
            async_policy: Some((&s.async_policy).into()),
            schedule: s.schedule.clone(),
        }
    }
}

impl From<&AsyncPolicy> for pb::AsyncPolicy {
    fn from(a: &AsyncPolicy) -> Self {
        pb::AsyncPolicy {
            concurrency: a.concurrency,
            max_attempts: a.max_attempts,
            min_backoff_ms: a.min_backoff.as_millis() as u64,
            max_backoff_ms: a.max_backoff.as_millis() as u64,
            max_age_ms: a.max_age.as_millis() as u64,
        }
    }
}

impl From<pb::AsyncPolicy> for AsyncPolicy {
    fn from(p: pb::AsyncPolicy) -> Self {
        AsyncPolicy {
            concurrency: p.concurrency,
            max_attempts: p.max_attempts,
            min_backoff: Duration::from_millis(p.min_backoff_ms),
            max_backoff: Duration::from_millis(p.max_backoff_ms),
            max_age: Duration::from_millis(p.max_age_ms),
        }
    }
}

impl TryFrom<pb::FunctionSpec> for FunctionSpec {
    type Error = SpecError;

    fn try_from(p: pb::FunctionSpec) -> Result<Self, SpecError> {
        let spec = FunctionSpec {
            name: p.name,
            image: p.image,
            command: p.command,
            env: p.env.into_iter().collect(),
            secrets: if p.secrets.is_empty() {
                Secrets::Named(p.secret_names)
            } else {
                Secrets::Inline(p.secrets.into_iter().collect())
            },
            memory_mib: p.memory_mib,
            cpu_millis: p.cpu_millis,
            timeout: Duration::from_millis(p.timeout_ms),
            concurrency: p.concurrency,
            min: p.min_instances,
            max: p.max_instances,
            target_utilization: p.target_utilization,
            scale_to_zero_after: Duration::from_millis(p.scale_to_zero_after_ms),
            keep_alive: match p.keep_alive.as_str() {
                "" => KeepAlive::Fixed,
                text => text.parse().map_err(|reason: String| SpecError::Field {
                    field: "keep_alive".into(),
                    reason,
                })?,
            },
            labels: p.labels.into_iter().collect(),
            async_policy: p.async_policy.map(AsyncPolicy::from).unwrap_or_default(),
            schedule: p.schedule,
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl From<&FunctionRecord> for pb::FunctionRecord {
    fn from(r: &FunctionRecord) -> Self {
        pb::FunctionRecord {
            spec: Some((&r.spec).into()),
            revision: r.revision,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
            image_ref: r.image_ref.clone(),
        }
    }
}

impl TryFrom<pb::FunctionRecord> for FunctionRecord {
    type Error = SpecError;

    fn try_from(p: pb::FunctionRecord) -> Result<Self, SpecError> {
        let spec = p
            .spec
            .ok_or_else(|| SpecError::Parse("function record without a spec".into()))?
            .try_into()?;
        Ok(FunctionRecord {
            spec,
            revision: p.revision,
            created_at_ms: p.created_at_ms,
            updated_at_ms: p.updated_at_ms,
            image_ref: p.image_ref,
        })
    }
}

impl From<&NodeInfo> for pb::NodeInfo {
    fn from(n: &NodeInfo) -> Self {
        pb::NodeInfo {
            id: n.id.clone(),
            invoke_addr: n.invoke_addr.clone(),
            memory_mib: n.memory_mib,
            cpu_millis: n.cpu_millis,
            zone: n.zone.clone(),
            runtime: n.runtime.clone(),
            instance_id: n.instance_id.clone(),
        }
    }
}

impl From<pb::NodeInfo> for NodeInfo {
    fn from(p: pb::NodeInfo) -> Self {
        NodeInfo {
            id: p.id,
            invoke_addr: p.invoke_addr,
            memory_mib: p.memory_mib,
            cpu_millis: p.cpu_millis,
            zone: p.zone,
            runtime: p.runtime,
            instance_id: p.instance_id,
        }
    }
}

/// A function's load on a node, named: the wire carries the name inside the message.
impl From<(&str, &FunctionLoad)> for pb::FunctionLoad {
    fn from((name, f): (&str, &FunctionLoad)) -> Self {
        pb::FunctionLoad {
            name: name.to_string(),
            revision: f.revision,
            ready: f.ready,
            busy: f.busy,
            starting: f.starting,
            in_flight: f.in_flight,
            waiting: f.waiting,
            image_state: f.image_state.as_str().to_string(),
            pulled_bytes: f.pulled_bytes,
            image_bytes: f.image_bytes,
            image_error: f.image_error.clone(),
            calls: f.calls,
        }
    }
}

impl From<pb::FunctionLoad> for (String, FunctionLoad) {
    fn from(f: pb::FunctionLoad) -> Self {
        let load = FunctionLoad {
            revision: f.revision,
            ready: f.ready,
            busy: f.busy,
            starting: f.starting,
            in_flight: f.in_flight,
            waiting: f.waiting,
            image_state: ImageState::from_wire(&f.image_state),
            pulled_bytes: f.pulled_bytes,
            image_bytes: f.image_bytes,
            image_error: f.image_error,
            calls: f.calls,
        };
        (f.name, load)
    }
}

impl From<&RouteTable> for pb::RouteTable {
    fn from(t: &RouteTable) -> Self {
        let mut functions: Vec<pb::RoutedFunction> = t
            .functions
            .values()
            .map(|f| pb::RoutedFunction {
                name: f.name.clone(),
                revision: f.revision,
                timeout_ms: f.timeout.as_millis() as u64,
                concurrency: f.concurrency,
                warm_nodes: f.warm_nodes.iter().cloned().collect(),
                async_policy: Some((&f.async_policy).into()),
            })
            .collect();
        functions.sort_by(|a, b| a.name.cmp(&b.name));
        pb::RouteTable {
            version: t.version,
            nodes: t
                .nodes
                .iter()
                .map(|n| pb::RouteNode {
                    id: n.id.clone(),
                    invoke_addr: n.invoke_addr.clone(),
                    weight: n.weight,
                    in_flight: n.in_flight,
                })
                .collect(),
            functions,
        }
    }
}

impl From<pb::RouteTable> for RouteTable {
    fn from(p: pb::RouteTable) -> Self {
        RouteTable {
            version: p.version,
            nodes: p
                .nodes
                .into_iter()
                .map(|n| RouteNode {
                    id: n.id,
                    invoke_addr: n.invoke_addr,
                    weight: n.weight.max(1),
                    in_flight: n.in_flight,
                })
                .collect(),
            functions: p
                .functions
                .into_iter()
                .map(|f| {
                    let routed = RoutedFunction {
                        name: f.name.clone(),
                        revision: f.revision,
                        timeout: Duration::from_millis(f.timeout_ms),
                        concurrency: f.concurrency,
                        warm_nodes: f.warm_nodes.into_iter().collect(),
                        async_policy: f.async_policy.map(AsyncPolicy::from).unwrap_or_default(),
                    };
                    (f.name, routed)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_and_invalid_wire_spec_is_refused() {
        let mut spec = FunctionSpec::with_command("echo", vec!["fjord-echo".into()]);
        spec.env.insert("A".into(), "b".into());
        let wire: pb::FunctionSpec = (&spec).into();
        assert_eq!(FunctionSpec::try_from(wire.clone()).unwrap(), spec);
        let bad = pb::FunctionSpec { memory_mib: 1, ..wire };
        assert_eq!(
            FunctionSpec::try_from(bad).unwrap_err().field_name(),
            Some("memory_mib")
        );
    }
}
