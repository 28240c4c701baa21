//! The best-seller ranking end to end: `order.paid` events published on the real broker, the
//! consumer recording units, `ListBestSellers` over gRPC with a manual clock, and the
//! single-flight cache.

mod best_sellers;
mod cache;
mod support;
