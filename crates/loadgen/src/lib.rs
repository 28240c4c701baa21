//! Mercato's load generator and benchmark driver (the `mercato-loadgen` binary).
//!
//! Every scenario measures Mercato's path and its baseline in the same run and reports the
//! ratio, because ratios hold on a noisy two-core machine where absolute numbers do not:
//! [`scenarios::edge`] compares a verified-token read through the BFF with the same read made
//! directly on the service and with a bare tonic server ([`hello`]). [`measure`] is the
//! closed-loop driver with HDR histograms, [`report`] writes JSON and Markdown.

pub mod hello;
pub mod measure;
pub mod report;
pub mod scenarios;
