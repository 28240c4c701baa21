//! Closed-loop measurement: `concurrency` workers call as fast as answers come back for a fixed
//! time, after an unrecorded warm-up, and every latency lands in an HDR histogram.
//!
//! A closed loop finds the throughput limit of the path under test; comparing two paths measured
//! the same way in the same run (through the BFF vs directly on the service) gives a ratio that
//! holds on a noisy machine even when the absolute numbers do not.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// How long and how hard to drive one path.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Unrecorded calls before measuring (connections, caches, JIT-free but still warm-up).
    pub warmup: Duration,
    /// The measured time.
    pub duration: Duration,
}

/// The outcome of one measured path.
#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    /// What was measured.
    pub name: String,
    /// Successful calls in the measured window.
    pub ok: u64,
    /// Failed calls by gRPC code name.
    pub errors: BTreeMap<String, u64>,
    /// Successful calls per second.
    pub rps: f64,
    /// Latency percentiles of successful calls, microseconds.
    pub p50_us: u64,
    /// 90th percentile, microseconds.
    pub p90_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// Slowest successful call, microseconds.
    pub max_us: u64,
}

/// Drives `call` with `shape` and summarises it. `call(worker)` performs one request and returns
/// its gRPC status code on failure.
pub async fn closed_loop<F, Fut>(
    name: &str,
    shape: LoadShape,
    call: F,
) -> anyhow::Result<PathResult>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Code>> + Send,
{
    let start = Instant::now();
    let measure_from = start + shape.warmup;
    let end = measure_from + shape.duration;
    let mut workers = Vec::with_capacity(shape.concurrency);
    for worker in 0..shape.concurrency {
        let call = call.clone();
        workers.push(tokio::spawn(async move {
            let mut histogram = new_histogram()?;
            let mut errors = BTreeMap::<String, u64>::new();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let outcome = call(worker).await;
                if sent < measure_from {
                    continue;
                }
                match outcome {
                    Ok(()) => histogram.saturating_record(micros(sent.elapsed())),
                    Err(code) => *errors.entry(format!("{code:?}")).or_default() += 1,
                }
            }
            Ok::<_, anyhow::Error>((histogram, errors))
        }));
    }
    let mut histogram = new_histogram()?;
    let mut errors = BTreeMap::<String, u64>::new();
    for worker in workers {
        let (part, part_errors) = worker.await??;
        histogram.add(&part)?;
        for (code, count) in part_errors {
            *errors.entry(code).or_default() += count;
        }
    }
    let ok = histogram.len();
    Ok(PathResult {
        name: name.to_owned(),
        ok,
        errors,
        rps: ok as f64 / shape.duration.as_secs_f64(),
        p50_us: histogram.value_at_quantile(0.50),
        p90_us: histogram.value_at_quantile(0.90),
        p99_us: histogram.value_at_quantile(0.99),
        max_us: histogram.max(),
    })
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs to 60 s at 3 significant digits.
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test]
    async fn counts_successes_and_errors_only_inside_the_measured_window() {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let shape = LoadShape {
            concurrency: 2,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(200),
        };
        let result = closed_loop("test", shape, move |_| {
            let counter = counter.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if counter.fetch_add(1, Ordering::Relaxed) % 4 == 3 {
                    Err(tonic::Code::Unavailable)
                } else {
                    Ok(())
                }
            }
        })
        .await
        .expect("measurement runs");
        let failed = result.errors.get("Unavailable").copied().unwrap_or(0);
        let total = calls.load(Ordering::Relaxed);
        assert!(result.ok > 0 && failed > 0, "{result:?}");
        assert!(result.ok + failed < total, "warm-up calls are not recorded");
        assert!(
            result.p50_us >= 5_000,
            "latency includes the 5 ms sleep: {result:?}"
        );
        assert!(result.p50_us <= result.p99_us && result.p99_us <= result.max_us);
    }
}
