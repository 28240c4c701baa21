//! Mercato's load generator and benchmark driver (the `mercato-loadgen` binary).
//!
//! Every scenario measures Mercato's path and its baseline in the same run and reports the
//! ratio, because ratios hold on a noisy two-core machine where absolute numbers do not:
//! [`scenarios::edge`] compares a verified-token read through the BFF with the same read made
//! directly on the service and with a bare tonic server ([`hello`]). [`measure`] has the
//! closed-loop and the open-loop (constant arrival rate) drivers with HDR histograms, [`report`]
//! writes JSON and Markdown, [`plot`] the SVG of latency against offered load.
//!
//! The scenarios that drive whole journeys (the checkout saga to FINISHED, a flash sale, a coupon
//! rush, a login storm, a browsing mix) check their invariants straight from the services'
//! databases and the broker afterwards; a broken invariant is recorded in the report and fails
//! the run. [`scenarios::redis`] (redis-benchmark) and [`scenarios::rss`] (resident memory) are
//! baselines and measurements without a path of Mercato's own; [`summary`] sets the run's
//! numbers against the benchmark goals.

pub mod hello;
pub mod measure;
pub mod plot;
pub mod report;
pub mod scenarios;
pub mod summary;
