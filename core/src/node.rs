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
    /// The function's image on this node: "" (no image, or not looked at), "pulling", "ready"
    /// or "failed".
    #[serde(default)]
    pub image_state: String,
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
