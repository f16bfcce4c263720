//! The pure decisions the control plane's leader makes: where instances go (`placement`), how
//! many a function needs (`autoscale`, `keepalive`), how many nodes a group needs
//! (`node_autoscale`, `capacity`, `schedule`), and the cluster policy file that tunes them
//! (`policy`).
//!
//! No I/O and no clock: every decision takes what it needs as arguments (times included), so the
//! control plane and the routing simulator run the same rules, and tests run them with a paused
//! or made-up clock. Each decision's reasons are enums with `Display`, so `fjord describe`
//! explains itself.

pub mod autoscale;
pub mod capacity;
pub mod keepalive;
pub mod node_autoscale;
pub mod placement;
pub mod policy;
pub mod schedule;

pub use capacity::{CapacityProvider, GroupSnapshot, ProviderError, StaticProvider};
