//! `pgbench` as a baseline path: a script run with the same number of clients as the service
//! path, its per-transaction latencies summarised like any other path.

use std::path::Path;
use std::process::Stdio;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use uuid::Uuid;

use crate::measure::{LoadShape, PathResult};

/// Runs `script` (a pgbench custom script, prepared mode) for the warm-up, then for the measured
/// duration with per-transaction logging, and reports it as the path `name`.
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
    for (seconds, log) in [
        (shape.warmup.as_secs(), false),
        (shape.duration.as_secs(), true),
    ] {
        let output = command(seconds, log)
            .output()
            .await
            .context("running pgbench")?;
        anyhow::ensure!(
            output.status.success(),
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let result = summarise_logs(&dir, name, shape)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(result)
}

/// Reads pgbench's per-transaction logs (`client transaction latency_us script epoch us`).
fn summarise_logs(dir: &Path, name: &str, shape: LoadShape) -> anyhow::Result<PathResult> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("log"));
        if !is_log {
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
