//! The Mercato BFF: the one public port browsers reach. It serves `mercato.bff.v1` over gRPC
//! and gRPC-Web, verifies access tokens against cached JWKS, derives the caller from the token
//! (never from the request), rate limits per user and per IP through Redis, and translates calls
//! to the internal services, forwarding the verified principal and the trace context.
//!
//! Code map: [`app`] (the stack and server), [`edge`] (strip, request id, authenticate, rate
//! limit), [`jwt`] (verification and the JWKS cache), [`rate_limit`] (GCRA in Redis),
//! [`metrics`] (auth failures, rate-limit hits, JWKS refreshes),
//! [`routes`] (the public allow-list and route classes), [`grpc`], [`catalog`], [`cart`],
//! [`order`], [`payment`], [`wallet`], [`coupon`], [`seller`], [`admin`] (handlers), [`error`]
//! (downstream status masking), [`settings`].

pub mod admin;
pub mod app;
pub mod assets;
pub mod cart;
pub mod catalog;
pub mod coupon;
pub mod edge;
pub mod error;
pub mod grpc;
pub mod jwt;
pub mod metrics;
pub mod order;
pub mod payment;
pub mod rate_limit;
pub mod routes;
pub mod seller;
pub mod settings;
pub mod wallet;

pub use app::{AppError, Application};
pub use settings::BffSettings;
