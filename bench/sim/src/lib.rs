//! Fjord's routing simulator: generates invocation traces shaped like a public cloud's and
//! replays them through the real consistent-hashing code (`fjord_core::hashing`) and keep-alive
//! policies (`fjord_decisions::keepalive`) against simulated nodes, next to the policies other
//! platforms use (round robin, random, least loaded, OpenWhisk's hash-mod-N with co-prime steps).
//!
//! What it answers: how many cold starts, image pulls and dropped calls a routing policy causes,
//! how evenly it loads nodes, and how much memory warm instances hold under a keep-alive policy.
//! What it does not model: network and start-up latency, CPU contention, failures.

pub mod generate;
pub mod movement;
pub mod report;
pub mod routing;
pub mod sim;
pub mod trace;
