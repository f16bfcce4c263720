//! OpenFaaS's wire contracts as Fjord reads them, one module per contract, so that an operator
//! coming from OpenFaaS or faasd keeps their files and clients.
//!
//! - [`stack`]: faas-cli's `stack.yml` and its translation to [`fjord_core::FunctionSpec`], with
//!   a notice for every key Fjord cannot honour and errors that name the key (and the line).
//! - [`gateway`]: the OpenFaaS gateway's REST bodies (`/system/*`), a `FunctionDeployment`
//!   translated by the same rules as a stack file's function, and a spec as a `FunctionStatus`.
//!
//! This crate translates; it does not deploy, build or talk to a cluster. It reads no file but
//! the environment files a stack names, and the process environment only through the lookup
//! its caller passes.

pub mod gateway;
pub mod stack;
