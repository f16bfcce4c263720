//! Fjord's domain: what a function, a node and a routing table are, how a function spec is
//! written and validated, the consistent-hashing order that both the scheduler and the load
//! balancer follow, and the HTTP contract of a node agent's port that the lb, the agent and the
//! control plane share ([`agent_http`]).
//!
//! This crate does no I/O: it is pure data and pure functions, so every daemon and the CLI agree
//! on the same rules, and tests run without a network. The leader's decisions built on these
//! types live in `fjord-decisions`; the daemons' shared plumbing in `fjord-daemon`.

pub mod agent_http;
pub mod civil;
pub mod duration;
pub mod hashing;
pub mod name;
pub mod node;
pub mod route;
pub mod secret;
pub mod spec;

pub use hashing::{preference_order, HashNode};
pub use node::{NodeInfo, NodeLoad};
pub use route::{RouteNode, RouteTable, RoutedFunction};
pub use spec::{AsyncPolicy, FunctionRecord, FunctionSpec, SpecError};
