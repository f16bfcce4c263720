//! Fjord's gRPC contracts (`fjord.v1`) and the one place where their prost types become
//! `fjord-core` domain types and back. Daemons speak domain types inside and convert only at the
//! edge, through the `From`/`TryFrom` impls in [`convert`].

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fjord.v1");
}

pub mod convert;

pub use v1::*;
