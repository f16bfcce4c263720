//! A deployed Fjord function as OpenFaaS's `FunctionStatus`. What Fjord keeps is written back in
//! OpenFaaS's terms, so that a client that reads a function and sends it back as a deployment
//! (faas-cli's describe, a CI script's read-modify-write) deploys the same spec: `fprocess` as
//! `envProcess`, the scaling fields as the `com.openfaas.scale.*` labels the translation reads,
//! memory and CPU as one amount in both `limits` and `requests` (Fjord reserves and limits one).
//! Annotations are not stored by Fjord (the cron ones become its `schedule`), so none are
//! reported but those.

use super::wire::{FunctionResources, FunctionStatus};
use super::DEFAULT_NAMESPACE;
use fjord_core::secret::Secrets;
use fjord_core::FunctionSpec;
use std::collections::BTreeMap;

/// The counts a `FunctionStatus` reports besides the spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replicas {
    /// The desired instance count.
    pub desired: u64,
    /// Instances ready to serve.
    pub available: u64,
    /// Calls counted by the gateway that answers.
    pub invocations: u64,
}

impl FunctionStatus {
    /// `spec` as deployed; `image` is the reference as deployed (a tag resolved to a digest at
    /// deploy time is reported as the tag), `created_at_ms` Unix milliseconds.
    pub fn of(spec: &FunctionSpec, image: &str, replicas: Replicas, created_at_ms: u64) -> FunctionStatus {
        let mut env_vars = spec.env.clone();
        let env_process = env_vars.remove("fprocess");
        let secrets = match &spec.secrets {
            Secrets::Named(names) => names.clone(),
            Secrets::Inline(values) => values.keys().cloned().collect(),
        };
        let resources = FunctionResources {
            memory: Some(format!("{}Mi", spec.memory_mib)),
            cpu: Some(format!("{}m", spec.cpu_millis)),
        };
        let mut annotations = BTreeMap::new();
        if !spec.schedule.is_empty() {
            annotations.insert("topic".to_string(), "cron-function".to_string());
            annotations.insert("schedule".to_string(), spec.schedule.join(";"));
        }
        FunctionStatus {
            name: spec.name.clone(),
            image: if image.is_empty() {
                spec.image.clone()
            } else {
                image.to_string()
            },
            namespace: DEFAULT_NAMESPACE.into(),
            env_process,
            env_vars,
            secrets,
            labels: labels_of(spec),
            annotations,
            limits: Some(resources.clone()),
            requests: Some(resources),
            read_only_root_filesystem: true,
            invocation_count: replicas.invocations,
            replicas: replicas.desired,
            available_replicas: replicas.available,
            created_at: fjord_core::civil::format_rfc3339_ms(created_at_ms),
        }
    }
}

/// The spec's labels and its scaling fields as OpenFaaS's scale labels.
fn labels_of(spec: &FunctionSpec) -> BTreeMap<String, String> {
    let mut labels = spec.labels.clone();
    let mut scale = |setting: &str, value: String| {
        labels.insert(format!("com.openfaas.scale.{setting}"), value);
    };
    scale("min", spec.min.to_string());
    scale("max", spec.max.to_string());
    scale("type", "capacity".into());
    scale("target", spec.concurrency.to_string());
    scale("target-proportion", spec.target_utilization.to_string());
    if spec.min == 0 {
        scale("zero", "true".into());
        scale(
            "zero-duration",
            fjord_core::duration::format_duration(spec.scale_to_zero_after),
        );
    }
    labels
}
