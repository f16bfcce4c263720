//! The OpenFaaS gateway's REST API bodies (`/system/*`, as OpenFaaS's API documentation
//! specifies them), so that faas-cli and other OpenFaaS clients talk to Fjord's lb unchanged:
//! the wire types ([`wire`]), a `FunctionDeployment` translated to Fjord's spec by the same
//! rules as a stack file's function ([`deployment`]), and Fjord's function as a
//! `FunctionStatus` ([`status`]).
//!
//! **The same rules as stack.yml.** A deployment is turned into the stack schema's function
//! and translated by [`crate::stack`]'s translation: quantities, scale labels, the cron
//! annotations, and a [`Notice`](crate::stack::Notice) for every field Fjord does not honour,
//! named as the JSON names it (`envProcess`, `annotations.prometheus.io.scrape`). Unknown
//! fields are collected by path, never dropped silently.
//!
//! Not here: HTTP routing, authentication, the control plane (the lb's business).

pub mod deployment;
pub mod status;
#[cfg(test)]
mod tests;
pub mod wire;

pub use wire::{
    DeleteFunctionRequest, FunctionDeployment, FunctionResources, FunctionStatus, GatewayInfo, LogEntry, ProviderInfo,
    ScaleServiceRequest, Secret, SecretDescription, VersionInfo,
};

use serde::de::DeserializeOwned;

/// A request body larger than this is refused before it is parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The namespace OpenFaaS reports for functions and secrets when none is chosen; Fjord has one
/// set of names and reports this one.
pub const DEFAULT_NAMESPACE: &str = "openfaas-fn";

/// A body the gateway cannot read. The client's fault, with what to send instead.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is empty: send a {what} as JSON")]
    Empty { what: &'static str },
    /// Not JSON, or a field of the wrong type: serde_json's message with its line and column.
    #[error("the body is not a valid {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
}

/// Parses a JSON body as `T` (`what` names it in errors: `FunctionDeployment`), returning
/// also the paths of the fields `T` does not know (`annotations` is known;
/// `topic` at the top level is not).
pub fn parse_body<T: DeserializeOwned>(what: &'static str, body: &[u8]) -> Result<(T, Vec<String>), BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty { what });
    }
    let mut unknown = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_ignored::deserialize(&mut deserializer, |path| unknown.push(path.to_string()))
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|source| BodyError::Json { what, source })?;
    Ok((value, unknown))
}
