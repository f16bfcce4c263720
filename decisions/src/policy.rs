//! The cluster policy: what `fjord policy apply -f FILE` stores. Defaults for the scaling fields
//! a function's `fjord.yaml` leaves out, the function autoscaler's settings, and the scheduler's.
//!
//! ```yaml
//! defaults:                 # for fields a fjord.yaml does not set
//!   concurrency: 4
//!   target_utilization: 0.7
//!   scale_to_zero_after: 10m
//!   keep_alive: adaptive    # or fixed
//!   max: 50
//! autoscaler:               # the leader's function autoscaler
//!   stable_window_ms: 60000
//!   panic_window_ms: 6000
//!   max_scale_up_rate: 10
//!   max_scale_down_rate: 2
//!   keep_alive_bucket_ms: 60000   # adaptive keep-alive: idle-time histogram buckets
//!   keep_alive_min_samples: 5
//! scheduler:
//!   load_bound_c: 1.25
//! node_groups:              # sized by the node autoscaler (see node_autoscale)
//!   - name: workers
//!     provider: aws-asg     # or static (with nodes: [...]) or command (with command: [...])
//!     asg_name: fjord-workers
//!     min_nodes: 2
//!     max_nodes: 20
//!     windows:
//!       - cron: "30 11 * * 5"   # UTC
//!         duration_ms: 5400000
//!         min_nodes: 8
//! ```
//!
//! Every section and key is optional; unknown keys are refused, so a typo is an error, not a
//! silently ignored setting. [`ClusterPolicy::validate`] names the field at fault with its path
//! (`defaults.target_utilization`).

use crate::autoscale::AutoscalerConfig;
use crate::node_autoscale::{NodeGroupPolicy, NodeGroupPolicyError};
use fjord_core::duration::{parse_duration, parse_yaml_duration};
use fjord_core::hashing::DEFAULT_LOAD_BOUND_C;
use fjord_core::spec::{FunctionSpec, KeepAlive, SpecError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Largest policy file accepted.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

pub use fjord_core::spec::DEFAULTABLE_FIELDS;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterPolicy {
    pub defaults: FunctionDefaults,
    pub autoscaler: AutoscalerConfig,
    pub scheduler: SchedulerPolicy,
    /// Node groups the node autoscaler sizes (none: the nodes are whatever agents register).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_groups: Vec<NodeGroupPolicy>,
}

/// Values for the scaling fields a function's spec leaves out; unset here means the built-in
/// default of `fjord.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionDefaults {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_utilization: Option<f64>,
    /// A duration such as `90s` or `10m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_to_zero_after: Option<String>,
    /// `fixed` or `adaptive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerPolicy {
    /// The bounded-load factor `c` of the placement order (at least 1).
    pub load_bound_c: f64,
}

impl Default for SchedulerPolicy {
    fn default() -> Self {
        SchedulerPolicy {
            load_bound_c: DEFAULT_LOAD_BOUND_C,
        }
    }
}

/// A policy that cannot be applied, naming the field by its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid policy: {0}")]
    Parse(String),
    #[error("invalid policy: field `{field}` {reason}")]
    Field { field: String, reason: String },
}

/// Reads the policy's duration fields first, so that a malformed one is reported with its path
/// (`defaults.scale_to_zero_after: 30` has no unit): serde's own error would not name it, or
/// would call a bare number the wrong type. Text that is not a mapping is left to the full parse.
fn check_duration_fields(text: &str) -> Result<(), PolicyError> {
    let Ok(serde_yaml_ng::Value::Mapping(policy)) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return Ok(());
    };
    let Some(serde_yaml_ng::Value::Mapping(defaults)) = policy.get("defaults") else {
        return Ok(());
    };
    if let Some(value) = defaults.get("scale_to_zero_after") {
        parse_yaml_duration(value).map_err(|reason| PolicyError::Field {
            field: "defaults.scale_to_zero_after".into(),
            reason,
        })?;
    }
    Ok(())
}

impl ClusterPolicy {
    /// Parses and validates a policy file.
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::Parse(format!(
                "the file is {} bytes; a policy may be at most {MAX_POLICY_BYTES}",
                text.len()
            )));
        }
        check_duration_fields(text)?;
        let policy: ClusterPolicy = if text.trim().is_empty() {
            ClusterPolicy::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?
        };
        policy.validate()?;
        Ok(policy)
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a ClusterPolicy always serializes")
    }

    /// Checks every section; the first field at fault is reported.
    pub fn validate(&self) -> Result<(), PolicyError> {
        // The defaults must make a valid spec on their own: apply them to a minimal one.
        let mut probe = FunctionSpec::with_command("policy-check", vec!["true".into()]);
        self.defaults
            .apply(&mut probe, &DEFAULTABLE_FIELDS)
            .and_then(|()| probe.validate())
            .map_err(|e| match e {
                SpecError::Field { field, reason } => PolicyError::Field {
                    field: format!("defaults.{field}"),
                    reason,
                },
                SpecError::Parse(reason) => PolicyError::Parse(reason),
            })?;
        self.autoscaler.validate().map_err(|e| PolicyError::Field {
            field: format!("autoscaler.{}", e.field),
            reason: e.reason,
        })?;
        let mut names = std::collections::BTreeSet::new();
        for (i, group) in self.node_groups.iter().enumerate() {
            group
                .validate()
                .and_then(|()| group.validate_provider())
                .map_err(|e| match e {
                    NodeGroupPolicyError::Field { field, reason } => PolicyError::Field {
                        field: format!("node_groups[{i}].{field}"),
                        reason,
                    },
                    NodeGroupPolicyError::Parse(reason) => PolicyError::Parse(reason),
                })?;
            if !names.insert(group.name.as_str()) {
                return Err(PolicyError::Field {
                    field: format!("node_groups[{i}].name"),
                    reason: format!("{:?} names two groups; names must be unique", group.name),
                });
            }
        }
        let c = self.scheduler.load_bound_c;
        if !(c.is_finite() && (1.0..=100.0).contains(&c)) {
            return Err(PolicyError::Field {
                field: "scheduler.load_bound_c".into(),
                reason: format!("must be a number from 1 to 100 (got {c})"),
            });
        }
        Ok(())
    }
}

impl FunctionDefaults {
    /// Sets each field named in `fields` (see [`DEFAULTABLE_FIELDS`]) that has a default here.
    pub fn apply(&self, spec: &mut FunctionSpec, fields: &[impl AsRef<str>]) -> Result<(), SpecError> {
        for field in fields {
            match field.as_ref() {
                "min" => spec.min = self.min.unwrap_or(spec.min),
                "max" => spec.max = self.max.unwrap_or(spec.max),
                "concurrency" => spec.concurrency = self.concurrency.unwrap_or(spec.concurrency),
                "target_utilization" => {
                    spec.target_utilization = self.target_utilization.unwrap_or(spec.target_utilization)
                }
                "scale_to_zero_after" => {
                    if let Some(text) = &self.scale_to_zero_after {
                        spec.scale_to_zero_after = parse_duration(text).map_err(|reason| SpecError::Field {
                            field: "scale_to_zero_after".into(),
                            reason,
                        })?;
                    }
                }
                "keep_alive" => spec.keep_alive = self.keep_alive.unwrap_or(spec.keep_alive),
                other => {
                    return Err(SpecError::Parse(format!(
                        "{other:?} is not a field the policy defaults (one of {})",
                        DEFAULTABLE_FIELDS.join(", ")
                    )))
                }
            }
        }
        Ok(())
    }

    /// The scale-to-zero default, if set and valid.
    pub fn scale_to_zero_after(&self) -> Option<Duration> {
        self.scale_to_zero_after.as_deref().and_then(|t| parse_duration(t).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_duration_without_a_unit_names_its_field() {
        for value in ["30", "\"30\""] {
            let err = ClusterPolicy::from_yaml(&format!("defaults:\n  scale_to_zero_after: {value}\n")).unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid policy: field `defaults.scale_to_zero_after` \"30\" has no unit; write 30s or 30ms"
            );
        }
        let policy = ClusterPolicy::from_yaml("defaults:\n  scale_to_zero_after: 10m\n").unwrap();
        assert_eq!(policy.defaults.scale_to_zero_after(), Some(Duration::from_secs(600)));
    }

    #[test]
    fn an_empty_file_is_the_default_policy() {
        assert_eq!(ClusterPolicy::from_yaml("").unwrap(), ClusterPolicy::default());
        assert_eq!(ClusterPolicy::from_yaml("{}\n").unwrap(), ClusterPolicy::default());
    }

    #[test]
    fn a_full_policy_round_trips() {
        let text = "defaults:\n  concurrency: 4\n  scale_to_zero_after: 10m\n  max: 50\n\
                    autoscaler:\n  stable_window_ms: 30000\n  panic_window_ms: 3000\n\
                    scheduler:\n  load_bound_c: 2\n";
        let policy = ClusterPolicy::from_yaml(text).unwrap();
        assert_eq!(policy.defaults.concurrency, Some(4));
        assert_eq!(policy.defaults.scale_to_zero_after(), Some(Duration::from_secs(600)));
        assert_eq!(policy.autoscaler.stable_window_ms, 30_000);
        assert_eq!(
            policy.autoscaler.max_scale_up_rate,
            AutoscalerConfig::default().max_scale_up_rate
        );
        assert_eq!(policy.scheduler.load_bound_c, 2.0);
        assert_eq!(ClusterPolicy::from_yaml(&policy.to_yaml()).unwrap(), policy);
    }

    fn field_of(text: &str) -> String {
        match ClusterPolicy::from_yaml(text) {
            Err(PolicyError::Field { field, .. }) => field,
            other => panic!("expected a field error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(
            field_of("defaults:\n  target_utilization: 2\n"),
            "defaults.target_utilization"
        );
        assert_eq!(field_of("defaults:\n  concurrency: 0\n"), "defaults.concurrency");
        assert_eq!(
            field_of("defaults:\n  scale_to_zero_after: soon\n"),
            "defaults.scale_to_zero_after"
        );
        assert_eq!(field_of("defaults:\n  min: 5\n  max: 2\n"), "defaults.min");
        assert_eq!(
            field_of("autoscaler:\n  panic_window_ms: 0\n"),
            "autoscaler.panic_window_ms"
        );
        assert_eq!(field_of("scheduler:\n  load_bound_c: 0.5\n"), "scheduler.load_bound_c");
        assert_eq!(
            field_of("node_groups:\n  - name: w\n    provider: aws-asg\n    max_nodes: 3\n"),
            "node_groups[0].asg_name"
        );
        assert_eq!(
            field_of("node_groups:\n  - name: w\n    nodes: [a]\n    max_nodes: 3\n  - name: w\n    nodes: [b]\n    max_nodes: 1\n"),
            "node_groups[1].name"
        );
        assert_eq!(
            field_of("node_groups:\n  - name: w\n    provider: command\n    command: [x]\n    min_nodes: 4\n    max_nodes: 3\n"),
            "node_groups[0].min_nodes"
        );
    }

    #[test]
    fn unknown_keys_and_bad_yaml_are_refused() {
        let e = ClusterPolicy::from_yaml("defaults:\n  concurency: 4\n").unwrap_err();
        assert!(e.to_string().contains("concurency"), "{e}");
        assert!(matches!(
            ClusterPolicy::from_yaml("schedular: {}\n"),
            Err(PolicyError::Parse(_))
        ));
        assert!(matches!(
            ClusterPolicy::from_yaml(": :\n -"),
            Err(PolicyError::Parse(_))
        ));
    }

    #[test]
    fn defaults_apply_only_to_the_named_fields() {
        let policy = ClusterPolicy::from_yaml("defaults:\n  concurrency: 8\n  max: 7\n").unwrap();
        let mut spec = FunctionSpec::with_command("f", vec!["x".into()]);
        spec.max = 3;
        policy.defaults.apply(&mut spec, &["concurrency"]).unwrap();
        assert_eq!((spec.concurrency, spec.max), (8, 3));
        policy.defaults.apply(&mut spec, &["max"]).unwrap();
        assert_eq!(spec.max, 7);
        assert!(policy.defaults.apply(&mut spec, &["memory_mib"]).is_err());
    }
}
