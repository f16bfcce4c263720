//! Fjord's domain: what a function, a node and a routing table are, how a function spec is
//! written and validated, and the consistent-hashing order that both the scheduler and the load
//! balancer follow.
//!
//! This crate does no I/O: it is pure data and pure functions, so every daemon and the CLI agree
//! on the same rules, and tests run without a network.

pub mod autoscale;
pub mod capacity;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod duration;
pub mod hashing;
pub mod keepalive;
pub mod name;
pub mod node;
pub mod node_autoscale;
pub mod placement;
pub mod policy;
pub mod route;
pub mod schedule;
pub mod spec;
#[cfg(feature = "daemon")]
pub mod sys;

pub use capacity::{CapacityProvider, GroupSnapshot, ProviderError, StaticProvider};
pub use hashing::{preference_order, HashNode};
pub use node::{NodeInfo, NodeLoad};
pub use route::{RouteNode, RouteTable, RoutedFunction};
pub use spec::{FunctionRecord, FunctionSpec, SpecError};
