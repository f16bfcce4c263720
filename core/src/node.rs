//! Nodes: what an agent declares when it registers, and the load it reports in heartbeats.

use crate::hashing::HashNode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an agent declares about its node. Stored in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// `host:port` of the agent's invoke endpoint.
    pub invoke_addr: String,
    pub memory_mib: u32,
    pub cpu_millis: u32,
    #[serde(default)]
    pub zone: String,
    #[serde(default)]
    pub runtime: String,
    /// The cloud's id for the machine (EC2 instance id), when known.
    #[serde(default)]
    pub instance_id: String,
}

impl NodeInfo {
    /// Hashing weight: a node's memory in GiB, at least 1.
    pub fn weight(&self) -> u32 {
        (self.memory_mib / 1024).max(1)
    }
}

/// Instances of one function on one node, as last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionLoad {
    pub revision: u64,
    pub ready: u32,
    pub busy: u32,
    pub starting: u32,
    pub in_flight: u32,
    /// Requests waiting on the node for an instance of the function.
    #[serde(default)]
    pub waiting: u32,
    /// The function's image on this node.
    #[serde(default)]
    pub image_state: ImageState,
    #[serde(default)]
    pub pulled_bytes: u64,
    #[serde(default)]
    pub image_bytes: u64,
    /// Why the last pull failed (the registry's or the engine's words).
    #[serde(default)]
    pub image_error: String,
    /// Requests of the function the node has admitted since its agent started; a change between
    /// two heartbeats means calls came, even ones that began and ended between them.
    #[serde(default)]
    pub calls: u64,
}

/// Where a function's image stands on a node. On the wire (heartbeats, `fjord describe`) it is
/// spelled `""`, `pulling`, `ready` or `failed`: [`ImageState::as_str`] and
/// [`ImageState::from_wire`] are the only translations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageState {
    /// No image, or not looked at yet.
    #[default]
    #[serde(rename = "")]
    Unknown,
    Pulling,
    Ready,
    Failed,
}

impl ImageState {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Unknown => "",
            ImageState::Pulling => "pulling",
            ImageState::Ready => "ready",
            ImageState::Failed => "failed",
        }
    }

    /// Reads the wire spelling; anything else (a newer agent's state) is `Unknown`.
    pub fn from_wire(text: &str) -> ImageState {
        match text {
            "pulling" => ImageState::Pulling,
            "ready" => ImageState::Ready,
            "failed" => ImageState::Failed,
            _ => ImageState::Unknown,
        }
    }
}

/// A node's load from its last heartbeat (soft state, never in the log).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    pub in_flight: u32,
    pub reserved_memory_mib: u32,
    pub functions: BTreeMap<String, FunctionLoad>,
}

impl HashNode for NodeInfo {
    fn hash_id(&self) -> &str {
        &self.id
    }
    fn hash_weight(&self) -> u32 {
        self.weight()
    }
}

#[cfg(test)]
mod image_state_tests {
    use super::ImageState;

    #[test]
    fn image_states_round_trip_through_their_wire_spelling() {
        for state in [
            ImageState::Unknown,
            ImageState::Pulling,
            ImageState::Ready,
            ImageState::Failed,
        ] {
            assert_eq!(ImageState::from_wire(state.as_str()), state);
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("{:?}", state.as_str()));
        }
        assert_eq!(ImageState::from_wire("resizing"), ImageState::Unknown);
    }
}
