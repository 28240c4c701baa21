//! The catalog over a real gRPC channel against real PostgreSQL, Redis and RabbitMQ: product
//! and SKU lifecycle, the ownership matrix, validation, listing and search, and the detail
//! cache.

mod cache;
mod lifecycle;
mod listing;
mod ownership;
mod reservations;
mod skus;
mod support;
mod validation;
