//! A `FunctionDeployment` to a validated Fjord spec: the deployment becomes the stack schema's
//! function (`envProcess` is `fprocess`, `envVars` is `environment`, the rest have the same
//! names) and goes through the stack translation, so the two paths share every rule. Keys in
//! notices and errors are the JSON's (`envProcess`, `labels.com.openfaas.scale.min`).

use super::wire::{FunctionDeployment, FunctionResources};
use crate::stack::file::{Amount, Entries, Function, Resources, Unit, UnknownKey};
use crate::stack::translate::{translate, KeyStyle};
use crate::stack::{Notice, StackError, Translation};
use fjord_core::spec::DEFAULTABLE_FIELDS;
use std::collections::BTreeMap;
use std::path::Path;

impl FunctionDeployment {
    /// Translates the deployment; `unknown` are the paths of the body's fields the schema does
    /// not know (from [`super::parse_body`]), each named in a notice.
    pub fn translate(&self, unknown: &[String]) -> Result<Translation, StackError> {
        let function = Function {
            image: Some(self.image.clone()).filter(|i| !i.trim().is_empty()),
            fprocess: self.env_process.clone(),
            environment: self.env_vars.as_ref().map(entries),
            secrets: self.secrets.clone(),
            labels: self.labels.as_ref().map(entries),
            annotations: self.annotations.as_ref().map(entries),
            limits: self.limits.as_ref().map(|r| resources("limits", r)).transpose()?,
            requests: self.requests.as_ref().map(|r| resources("requests", r)).transpose()?,
            readonly_root_filesystem: self.read_only_root_filesystem,
            constraints: self.constraints.clone(),
            namespace: self.namespace.clone(),
            ..Function::default()
        };
        let unknown: Vec<UnknownKey> = unknown
            .iter()
            .map(|path| UnknownKey {
                path: path.clone(),
                function: Some(self.service.clone()),
            })
            .collect();
        let unknown: Vec<&UnknownKey> = unknown.iter().collect();
        let mut translation = translate(&self.service, &function, Path::new("."), &unknown, KeyStyle::Gateway)?;
        for (field, present) in [
            ("registryAuth", self.registry_auth.is_some()),
            ("network", self.network.is_some()),
        ] {
            if present {
                translation.notices.push(Notice::new(
                    field,
                    "deprecated by OpenFaaS, ignored (registry credentials belong to the nodes: --registry-auth-file)",
                ));
            }
        }
        Ok(translation)
    }
}

impl Translation {
    /// The scaling fields the source left out, for `DeployRequest.defaulted`: the cluster
    /// policy's defaults apply to them.
    pub fn defaulted_fields(&self) -> Vec<String> {
        DEFAULTABLE_FIELDS
            .iter()
            .filter(|field| !self.set_fields.contains(field))
            .map(|field| field.to_string())
            .collect()
    }
}

fn entries(map: &BTreeMap<String, String>) -> Entries<String> {
    Entries(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn resources(field: &str, given: &FunctionResources) -> Result<Resources, StackError> {
    fn amount<U: Unit>(key: String, text: Option<&String>) -> Result<Option<Amount<U>>, StackError> {
        text.filter(|t| !t.trim().is_empty())
            .map(|t| Amount::read(t).map_err(|reason| StackError::Value { key, reason }))
            .transpose()
    }
    Ok(Resources {
        memory: amount(format!("{field}.memory"), given.memory.as_ref())?,
        cpu: amount(format!("{field}.cpu"), given.cpu.as_ref())?,
    })
}
