//! The operator CLI against the real services: the whole system in-process (`mercato_e2e`'s
//! `Stack`, every service on fresh resources and one broker namespace), the user service alone
//! for the signing keys, and a test consumer on a broker namespace of its own for the DLQ.
//! Commands are called through the library (typed results, or [`mercato_cli::execute`] with a
//! parsed command line); `binary` runs the built `mercato` for its usage and exit codes.

mod binary;
mod coupons;
mod dlq;
mod keys;
mod orders;
mod payments;
mod seed;
mod support;
