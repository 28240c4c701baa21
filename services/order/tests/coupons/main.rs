//! Coupons over a real gRPC channel against real PostgreSQL, Redis and RabbitMQ: the FCFS claim
//! under contention, the admin RPCs, the listings and the sweeper on the order service alone, and
//! coupons applied and restored through real checkouts with the product service in-process.

// The cart tests' fixtures: the product service seeded through its own API, principals, and
// error-detail accessors.
#[path = "../carts/support.rs"]
mod carts;

mod admin;
mod checkout;
mod fcfs;
mod listing;
mod restore;
mod support;
