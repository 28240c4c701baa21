//! Benchmark scenarios. Each measures Mercato's path and its baseline in one run and reports
//! the ratio; the journey scenarios also check their invariants from the databases and the
//! broker. [`seed`], [`shop`], [`sql`], [`bus`] and [`pgbench`] are what they share.

pub mod browse;
pub mod bus;
pub mod catalog;
pub mod checkout;
pub mod coupon_rush;
pub mod edge;
pub mod flash_sale;
pub mod login_storm;
pub mod pgbench;
pub mod redis;
pub mod rss;
pub mod saga;
pub mod seed;
pub mod shop;
pub mod sql;
pub mod stock;

use std::str::FromStr as _;

use anyhow::Context as _;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::measure::{LoadShape, PathResult, closed_loop};

/// `count` HTTP/2 connections to `uri` (at least one).
pub async fn connect_all(uri: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let channel = Endpoint::from_str(uri)
            .with_context(|| format!("bad URI {uri}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {uri}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// The baseline: health checks on a bare tonic server.
pub async fn measure_hello(channels: Vec<Channel>, shape: LoadShape) -> anyhow::Result<PathResult> {
    closed_loop("raw tonic (health check)", shape, move |worker| {
        let mut client = HealthClient::new(channels[worker % channels.len()].clone());
        async move {
            client
                .check(HealthCheckRequest::default())
                .await
                .map(drop)
                .map_err(|status| status.code())
        }
    })
    .await
}
