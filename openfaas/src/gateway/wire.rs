//! The JSON bodies of the OpenFaaS gateway's `/system/*` routes, with OpenFaaS's field names.
//! Optional fields are left out of what Fjord writes when they have nothing to say, as the
//! Go types' `omitempty` does.

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST|PUT /system/functions`: a function to deploy or update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeployment {
    /// The function's name.
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The watchdog's `fprocess`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_process: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_vars: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<String>>,
    /// Names of secrets created through `/system/secrets` (Fjord's named secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<FunctionResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<FunctionResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// Deprecated by OpenFaaS, which ignores it; named in a notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_auth: Option<String>,
    /// Deprecated by OpenFaaS, which ignores it; named in a notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// `limits` and `requests`: Kubernetes quantities (`128Mi`, `100m`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
}

/// `GET /system/functions` (a list of them) and `GET /system/function/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    pub name: String,
    pub image: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_process: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_vars: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<FunctionResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<FunctionResources>,
    #[serde(default)]
    pub read_only_root_filesystem: bool,
    pub invocation_count: u64,
    /// The desired count.
    pub replicas: u64,
    /// Instances ready to serve.
    pub available_replicas: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// `DELETE /system/functions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteFunctionRequest {
    #[serde(default)]
    pub function_name: String,
}

/// `POST /system/scale-function/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleServiceRequest {
    /// The function's name; when given it must be the path's.
    #[serde(default)]
    pub service_name: String,
    pub replicas: u64,
}

/// `GET /system/secrets` (a list of them), and `DELETE /system/secrets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretDescription {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `POST|PUT /system/secrets`: a name and its value, in plain text (`value`) or in base64
/// (`rawValue`, for binary data; read when `value` is absent or empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_value: Option<String>,
}

impl Secret {
    /// The value's bytes: `value`, else `rawValue` decoded from base64.
    pub fn bytes(&self) -> Result<Vec<u8>, super::BodyError> {
        if let Some(value) = self.value.as_deref().filter(|v| !v.is_empty()) {
            return Ok(value.as_bytes().to_vec());
        }
        let field_error = |field: &str, reason: String| super::BodyError::Field {
            field: field.into(),
            reason,
        };
        match self.raw_value.as_deref().filter(|v| !v.is_empty()) {
            Some(raw) => base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .map_err(|e| field_error("rawValue", format!("not base64: {e}"))),
            None => Err(field_error(
                "value",
                "the secret has no value: give `value` (text) or `rawValue` (base64)".into(),
            )),
        }
    }
}

/// One line of `GET /system/logs`, written as newline-delimited JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The function.
    pub name: String,
    pub namespace: String,
    /// The instance that wrote the line.
    pub instance: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub text: String,
}

/// `GET /system/info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayInfo {
    pub provider: ProviderInfo,
    pub version: VersionInfo,
    pub arch: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    pub provider: String,
    pub orchestration: String,
    pub version: VersionInfo,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit_message: String,
    pub sha: String,
    pub release: String,
}

impl GatewayInfo {
    /// Fjord's answer: provider and orchestration `fjord`, this build's version.
    pub fn fjord(release: &str, arch: &str) -> GatewayInfo {
        let version = VersionInfo {
            commit_message: String::new(),
            sha: String::new(),
            release: release.to_string(),
        };
        GatewayInfo {
            provider: ProviderInfo {
                provider: "fjord".into(),
                orchestration: "fjord".into(),
                version: version.clone(),
            },
            version,
            arch: arch.to_string(),
        }
    }
}
