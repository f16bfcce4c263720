//! Fjord's domain: what a function, a node and a routing table are, how a function spec is
//! written and validated, and the consistent-hashing order that both the scheduler and the load
//! balancer follow.
//!
//! This crate does no I/O: it is pure data and pure functions, so every daemon and the CLI agree
//! on the same rules, and tests run without a network. The leader's decisions built on these
//! types live in `fjord-decisions`; the daemons' shared plumbing in `fjord-daemon`.

pub mod duration;
pub mod hashing;
pub mod name;
pub mod node;
pub mod route;
pub mod spec;

pub use hashing::{preference_order, HashNode};
pub use node::{NodeInfo, NodeLoad};
pub use route::{RouteNode, RouteTable, RoutedFunction};
pub use spec::{FunctionRecord, FunctionSpec, SpecError};
