//! Generated code for Mercato's protobuf contracts (`proto/mercato/**/v1`).
//!
//! This crate holds no hand-written logic: one module per protobuf package,
//! plus the encoded descriptor set for gRPC reflection.

#![allow(
    unreachable_pub,
    missing_debug_implementations,
    clippy::wildcard_enum_match_arm,
    reason = "generated code"
)]

/// Encoded `FileDescriptorSet` of every Mercato proto, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mercato_descriptor");

pub mod mercato {
    pub mod events {
        pub mod v1 {
            tonic::include_proto!("mercato.events.v1");
        }
    }
}
