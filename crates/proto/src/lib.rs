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

/// One module per protobuf package, nested exactly like the package names so
/// that cross-package references in the generated code (`super::super::…`)
/// resolve.
pub mod mercato {
    /// `mercato.common.v1`: money, addresses, identity, shared enums, error
    /// reasons.
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("mercato.common.v1");
        }
    }

    /// `mercato.user.v1`: accounts, the built-in token issuer, signing keys.
    pub mod user {
        pub mod v1 {
            tonic::include_proto!("mercato.user.v1");
        }
    }

    /// `mercato.product.v1`: catalog, stock and reservations, rankings.
    pub mod product {
        pub mod v1 {
            tonic::include_proto!("mercato.product.v1");
        }
    }

    /// `mercato.order.v1`: carts, orders, coupons.
    pub mod order {
        pub mod v1 {
            tonic::include_proto!("mercato.order.v1");
        }
    }

    /// `mercato.payment.v1`: payments, refunds, wallets, seller payouts.
    pub mod payment {
        pub mod v1 {
            tonic::include_proto!("mercato.payment.v1");
        }
    }

    /// `mercato.process.v1`: shipments and notifications.
    pub mod process {
        pub mod v1 {
            tonic::include_proto!("mercato.process.v1");
        }
    }

    /// `mercato.events.v1`: the bus envelope and one payload per routing key.
    pub mod events {
        pub mod v1 {
            tonic::include_proto!("mercato.events.v1");
        }
    }

    /// `mercato.bff.v1`: the public API browsers reach through gRPC-Web.
    pub mod bff {
        pub mod v1 {
            tonic::include_proto!("mercato.bff.v1");
        }
    }
}
