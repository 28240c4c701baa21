//! `pgbench` as a baseline path: a script run with the same number of clients as the service
//! path, its per-transaction latencies summarised like any other path. A run that found the
//! server without a free connection slot is run again after a pause, as `psql` is
//! ([`super::sql`]).

use std::path::Path;
use std::process::Stdio;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use uuid::Uuid;

use super::sql::waiting_out_a_full_server;
use crate::measure::{LoadShape, PathResult};

/// Runs `script` (a pgbench custom script, prepared mode) for the warm-up (if any), then for the
/// measured duration with per-transaction logging, and reports it as the path `name`.
pub async fn run(
    database_url: &str,
    name: &str,
    script: &str,
    shape: LoadShape,
) -> anyhow::Result<PathResult> {
    let dir = std::env::temp_dir().join(format!("mercato-pgbench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let script_path = dir.join("script.sql");
    std::fs::write(&script_path, script)?;
    let clients = shape.concurrency.to_string();
    let command = |seconds: u64, log: bool| {
        let mut command = tokio::process::Command::new("pgbench");
        command
            .args(["-n", "-M", "prepared", "-c", &clients, "-j", "2", "-T"])
            .arg(seconds.max(1).to_string())
            .arg("-f")
            .arg(&script_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if log {
            command
                .arg("-l")
                .arg(format!("--log-prefix={}", dir.join("log").display()));
        }
        command.arg(database_url);
        command
    };
    // pgbench runs whole seconds (at least one): a zero warm-up is skipped rather than rounded
    // up to a second of unrecorded load.
    let warmup = (!shape.warmup.is_zero()).then_some((shape.warmup.as_secs(), false));
    for (seconds, log) in warmup.into_iter().chain([(shape.duration.as_secs(), true)]) {
        waiting_out_a_full_server("pgbench", || {
            // A run that failed may have logged some transactions: only the last run counts.
            let cleared = clear_logs(&dir);
            let run = command(seconds, log).output();
            async move {
                cleared?;
                run.await.context("running pgbench")
            }
        })
        .await?;
    }
    let result = summarise_logs(&dir, name, shape)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(result)
}

/// Whether `path` is one of pgbench's per-transaction logs.
fn is_log(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("log"))
}

/// Removes the per-transaction logs of an earlier attempt.
fn clear_logs(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if is_log(&path) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Reads pgbench's per-transaction logs (`client transaction latency_us script epoch us`).
fn summarise_logs(dir: &Path, name: &str, shape: LoadShape) -> anyhow::Result<PathResult> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !is_log(&path) {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let latency = line
                .split_whitespace()
                .nth(2)
                .and_then(|field| field.parse::<u64>().ok())
                .with_context(|| format!("unexpected pgbench log line {line:?}"))?;
            histogram.saturating_record(latency);
        }
    }
    anyhow::ensure!(!histogram.is_empty(), "pgbench logged no transactions");
    Ok(PathResult::from_histogram(
        name,
        &histogram,
        Default::default(),
        shape.duration,
    ))
}
