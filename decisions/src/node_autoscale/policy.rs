//! A node group's policy: the YAML an operator writes (sizes, targets, windows, cooldowns, the
//! provider), its defaults, and its validation naming the field.

use crate::schedule::Window;
use fjord_core::name::check_dns_label;
use serde::{Deserialize, Serialize};

pub const DEFAULT_MIN_NODES: u32 = 1;
pub const DEFAULT_TARGET_MEMORY_UTILIZATION: f64 = 0.70;
pub const DEFAULT_LOW_MEMORY_UTILIZATION: f64 = 0.30;
pub const DEFAULT_SCALE_OUT_WINDOW_MS: u64 = 60_000;
pub const DEFAULT_SCALE_IN_WINDOW_MS: u64 = 600_000;
pub const DEFAULT_SCALE_OUT_COOLDOWN_MS: u64 = 60_000;
pub const DEFAULT_SCALE_IN_COOLDOWN_MS: u64 = 300_000;
pub const DEFAULT_MAX_STEP_OUT: u32 = 5;
/// Largest policy file accepted.
pub const MAX_NODE_GROUP_POLICY_BYTES: usize = 64 * 1024;

/// How one node group scales. Field names are the YAML keys; only `name` and `max_nodes` are
/// required.
///
/// ```yaml
/// name: workers
/// min_nodes: 2
/// max_nodes: 20
/// target_memory_utilization: 0.7   # scale out above this (memory reserved / ready capacity)
/// low_memory_utilization: 0.3      # scale in below this
/// scale_out_window_ms: 60000       # how long pressure must last
/// scale_in_window_ms: 600000       # how long quiet must last
/// scale_out_cooldown_ms: 60000     # after a scale-out, before the next
/// scale_in_cooldown_ms: 300000     # after any scale-out or scale-in, before a drain
/// max_step_out: 5                  # nodes added at once
/// windows:                         # scheduled floors, cron in UTC
///   - cron: "0 8 * * 1-5"
///     duration_ms: 36000000
///     min_nodes: 6
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroupPolicy {
    /// The group's name (a DNS label), as the provider and `fjord nodes` know it.
    pub name: String,
    /// Who adds and removes the group's machines.
    #[serde(default)]
    pub provider: ProviderKind,
    /// `aws-asg`: the Auto Scaling group's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub asg_name: String,
    /// `static`: the node ids of the fleet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// `command`: a program and its first arguments, run with `describe`, `set-desired N` or
    /// `terminate ID` appended (see `fjord policy --help`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default = "default_min_nodes")]
    pub min_nodes: u32,
    pub max_nodes: u32,
    #[serde(default = "default_target_memory_utilization")]
    pub target_memory_utilization: f64,
    #[serde(default = "default_low_memory_utilization")]
    pub low_memory_utilization: f64,
    #[serde(default = "default_scale_out_window_ms")]
    pub scale_out_window_ms: u64,
    #[serde(default = "default_scale_in_window_ms")]
    pub scale_in_window_ms: u64,
    #[serde(default = "default_scale_out_cooldown_ms")]
    pub scale_out_cooldown_ms: u64,
    #[serde(default = "default_scale_in_cooldown_ms")]
    pub scale_in_cooldown_ms: u64,
    #[serde(default = "default_max_step_out")]
    pub max_step_out: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
}

/// The kinds of capacity provider a node group can use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// A fixed fleet of VPS nodes: never launches; says when demand exceeds it.
    #[default]
    Static,
    /// An EC2 Auto Scaling group.
    AwsAsg,
    /// An operator's program that adds and removes machines (any cloud or hypervisor API).
    Command,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Static => "static",
            ProviderKind::AwsAsg => "aws-asg",
            ProviderKind::Command => "command",
        }
    }
}

fn default_min_nodes() -> u32 {
    DEFAULT_MIN_NODES
}
fn default_target_memory_utilization() -> f64 {
    DEFAULT_TARGET_MEMORY_UTILIZATION
}
fn default_low_memory_utilization() -> f64 {
    DEFAULT_LOW_MEMORY_UTILIZATION
}
fn default_scale_out_window_ms() -> u64 {
    DEFAULT_SCALE_OUT_WINDOW_MS
}
fn default_scale_in_window_ms() -> u64 {
    DEFAULT_SCALE_IN_WINDOW_MS
}
fn default_scale_out_cooldown_ms() -> u64 {
    DEFAULT_SCALE_OUT_COOLDOWN_MS
}
fn default_scale_in_cooldown_ms() -> u64 {
    DEFAULT_SCALE_IN_COOLDOWN_MS
}
fn default_max_step_out() -> u32 {
    DEFAULT_MAX_STEP_OUT
}

/// A node group policy that cannot be used, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeGroupPolicyError {
    /// The text is not a policy at all (YAML syntax, wrong type, unknown key, bad cron).
    #[error("invalid node group policy: {0}")]
    Parse(String),
    /// One field's value is out of bounds.
    #[error("invalid node group policy: field `{field}` {reason}")]
    Field { field: String, reason: String },
}

impl NodeGroupPolicyError {
    fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        NodeGroupPolicyError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field at fault, when one is known (`windows[1].min_nodes`).
    pub fn field_name(&self) -> Option<&str> {
        match self {
            NodeGroupPolicyError::Field { field, .. } => Some(field),
            NodeGroupPolicyError::Parse(_) => None,
        }
    }
}

impl NodeGroupPolicy {
    /// A policy with every default and the given name and bounds.
    pub fn new(name: &str, min_nodes: u32, max_nodes: u32) -> Self {
        NodeGroupPolicy {
            name: name.to_string(),
            provider: ProviderKind::Static,
            asg_name: String::new(),
            nodes: Vec::new(),
            command: Vec::new(),
            min_nodes,
            max_nodes,
            target_memory_utilization: DEFAULT_TARGET_MEMORY_UTILIZATION,
            low_memory_utilization: DEFAULT_LOW_MEMORY_UTILIZATION,
            scale_out_window_ms: DEFAULT_SCALE_OUT_WINDOW_MS,
            scale_in_window_ms: DEFAULT_SCALE_IN_WINDOW_MS,
            scale_out_cooldown_ms: DEFAULT_SCALE_OUT_COOLDOWN_MS,
            scale_in_cooldown_ms: DEFAULT_SCALE_IN_COOLDOWN_MS,
            max_step_out: DEFAULT_MAX_STEP_OUT,
            windows: Vec::new(),
        }
    }

    /// Parses and validates a policy written in YAML.
    pub fn from_yaml(text: &str) -> Result<Self, NodeGroupPolicyError> {
        if text.len() > MAX_NODE_GROUP_POLICY_BYTES {
            return Err(NodeGroupPolicyError::Parse(format!(
                "the policy is {} bytes; the limit is {MAX_NODE_GROUP_POLICY_BYTES}",
                text.len()
            )));
        }
        let policy: NodeGroupPolicy =
            serde_yaml_ng::from_str(text).map_err(|e| NodeGroupPolicyError::Parse(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks that the provider settings are complete: `asg_name` for `aws-asg`, `nodes` for
    /// `static`, `command` for `command`. Separate from [`Self::validate`], which checks the
    /// scaling rules alone.
    pub fn validate_provider(&self) -> Result<(), NodeGroupPolicyError> {
        let fail = |field: &str, reason: String| Err(NodeGroupPolicyError::field(field, reason));
        match self.provider {
            ProviderKind::AwsAsg if self.asg_name.trim().is_empty() => {
                return fail(
                    "asg_name",
                    "is required with provider aws-asg: the Auto Scaling group's name".into(),
                )
            }
            ProviderKind::Static if self.nodes.is_empty() => {
                return fail("nodes", "is required with provider static: the fleet's node ids".into())
            }
            ProviderKind::Static => {
                for (i, node) in self.nodes.iter().enumerate() {
                    check_dns_label(node).map_err(|r| NodeGroupPolicyError::field(format!("nodes[{i}]"), r))?;
                }
            }
            ProviderKind::Command if self.command.first().is_none_or(|c| c.trim().is_empty()) => {
                return fail(
                    "command",
                    "is required with provider command: [program, args...]".into(),
                )
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks every bound; the first field at fault is reported.
    pub fn validate(&self) -> Result<(), NodeGroupPolicyError> {
        let fail = |field: &str, reason: String| Err(NodeGroupPolicyError::field(field, reason));
        check_dns_label(&self.name).map_err(|r| NodeGroupPolicyError::field("name", r))?;
        if self.max_nodes == 0 {
            return fail("max_nodes", "must be at least 1".into());
        }
        if self.min_nodes > self.max_nodes {
            return fail(
                "min_nodes",
                format!(
                    "is {} but max_nodes is {}; lower min_nodes or raise max_nodes",
                    self.min_nodes, self.max_nodes
                ),
            );
        }
        let target = self.target_memory_utilization;
        if !(target.is_finite() && target > 0.0 && target <= 1.0) {
            return fail(
                "target_memory_utilization",
                format!("must be above 0 and at most 1 (got {target})"),
            );
        }
        let low = self.low_memory_utilization;
        if !(low.is_finite() && low >= 0.0 && low < target) {
            return fail(
                "low_memory_utilization",
                format!("must be at least 0 and below target_memory_utilization ({target}) (got {low})"),
            );
        }
        if self.max_step_out == 0 {
            return fail("max_step_out", "must be at least 1".into());
        }
        for (i, window) in self.windows.iter().enumerate() {
            if let Err((field, reason)) = window.validate() {
                return fail(&format!("windows[{i}].{field}"), reason);
            }
            if window.min_nodes > self.max_nodes {
                return fail(
                    &format!("windows[{i}].min_nodes"),
                    format!("is {} but max_nodes is {}", window.min_nodes, self.max_nodes),
                );
            }
        }
        Ok(())
    }
}
