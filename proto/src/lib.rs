//! Fjord's gRPC contracts (`fjord.v1`) and the one place where their prost types become
//! `fjord-core` domain types and back. Daemons speak domain types inside and convert only at the
//! edge, through the `From`/`TryFrom` impls in [`convert`].

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fjord.v1");
}

pub mod convert;

/// The encoded descriptors of `fjord.v1`, for server reflection: a client that knows only a
/// member's address and a token can list the services and call them.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("fjord_v1_descriptor");

pub use v1::*;
