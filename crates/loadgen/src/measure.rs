//! The two load models, both recording every latency in an HDR histogram and printing a progress
//! line to stderr once a second.
//!
//! - [`closed_loop`]: `concurrency` workers call as fast as answers come back for a fixed time,
//!   after an unrecorded warm-up. It finds the throughput limit of the path under test; comparing
//!   two paths measured the same way in the same run (through the BFF vs directly on the service)
//!   gives a ratio that holds on a noisy machine even when the absolute numbers do not.
//! - [`open_loop`]: iterations *arrive* at a constant rate whether or not earlier ones finished,
//!   as shoppers do. Latency is measured from when an iteration was due, not from when it got to
//!   run, so a stalled system shows its queueing delay instead of hiding it (no coordinated
//!   omission). An arrival that finds `max_in_flight` iterations still running is dropped and
//!   counted; the report gives the offered and the achieved rate side by side.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tonic_types::StatusExt as _;

/// How long and how hard to drive one path in a closed loop.
#[derive(Debug, Clone, Copy)]
pub struct LoadShape {
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Unrecorded calls before measuring (connections, caches, JIT-free but still warm-up).
    pub warmup: Duration,
    /// The measured time.
    pub duration: Duration,
}

/// How to drive one path in an open loop.
#[derive(Debug, Clone, Copy)]
pub struct OpenShape {
    /// Offered arrivals per second.
    pub rate: f64,
    /// Unrecorded arrivals at the same rate before measuring.
    pub warmup: Duration,
    /// The measured arrival window.
    pub duration: Duration,
    /// Arrivals finding this many iterations still running are dropped (the load generator's
    /// own bound; a dropped arrival is reported, never silently skipped).
    pub max_in_flight: usize,
    /// How long iterations still running after the last arrival may take to finish; those that
    /// do not are aborted and counted as unfinished.
    pub drain: Duration,
}

impl OpenShape {
    /// Arrivals in the warm-up and in the measured window.
    pub fn arrivals(&self) -> (u64, u64) {
        let count = |window: Duration| (window.as_secs_f64() * self.rate).round() as u64;
        (count(self.warmup), count(self.duration))
    }
}

/// Why one call or iteration failed, as it is counted in a report: a gRPC code name, with the
/// `ErrorInfo` reason when the status carries one (`FailedPrecondition/INSUFFICIENT_STOCK`), or a
/// label the scenario chose (`ended CANCELLED`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Failure(pub String);

impl From<tonic::Code> for Failure {
    fn from(code: tonic::Code) -> Self {
        Self(format!("{code:?}"))
    }
}

impl From<&tonic::Status> for Failure {
    fn from(status: &tonic::Status) -> Self {
        match status.get_error_details().error_info() {
            Some(info) if !info.reason.is_empty() => {
                Self(format!("{:?}/{}", status.code(), info.reason))
            }
            _ => Self::from(status.code()),
        }
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Self::from(&status)
    }
}

impl From<String> for Failure {
    fn from(label: String) -> Self {
        Self(label)
    }
}

/// The outcome of one measured path.
#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    /// What was measured.
    pub name: String,
    /// Successful calls in the measured window.
    pub ok: u64,
    /// Failed calls by gRPC code name (and reason, where the scenario records it).
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
    /// Open loop only: the offered arrival rate per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_rps: Option<f64>,
    /// Open loop only: arrivals dropped because `max_in_flight` iterations were still running.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// Open loop only: iterations aborted because they had not finished within the drain time.
    #[serde(skip_serializing_if = "is_zero")]
    pub unfinished: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl PathResult {
    /// A path summarised from a histogram of successes over `window`.
    pub fn from_histogram(
        name: &str,
        histogram: &Histogram<u64>,
        errors: BTreeMap<String, u64>,
        window: Duration,
    ) -> Self {
        let ok = histogram.len();
        Self {
            name: name.to_owned(),
            ok,
            errors,
            rps: ok as f64 / window.as_secs_f64().max(f64::EPSILON),
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
            offered_rps: None,
            dropped: 0,
            unfinished: 0,
        }
    }

    /// Failed calls of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Counters shared by the workers and the progress line.
#[derive(Debug, Default)]
struct Live {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    in_flight: AtomicU64,
}

/// Prints `name: 3/10 s, sent …` to stderr every second until dropped.
struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(name: &str, live: Arc<Live>, measure_from: Instant, total: Duration) -> Self {
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = Instant::now();
                let phase = if now < measure_from {
                    format!("warm-up, {:.0} s to go", (measure_from - now).as_secs_f64())
                } else {
                    format!(
                        "{:.0}/{:.0} s",
                        (now - measure_from).as_secs_f64(),
                        total.as_secs_f64()
                    )
                };
                #[allow(clippy::print_stderr, reason = "the progress line is for the operator")]
                {
                    eprintln!(
                        "  {name}: {phase}, sent {}, ok {}, failed {}, dropped {}, in flight {}",
                        live.sent.load(Ordering::Relaxed),
                        live.ok.load(Ordering::Relaxed),
                        live.failed.load(Ordering::Relaxed),
                        live.dropped.load(Ordering::Relaxed),
                        live.in_flight.load(Ordering::Relaxed),
                    );
                }
            }
        });
        Self { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Drives `call` with `shape` and summarises it. `call(worker)` performs one request and returns
/// why it failed on failure (a gRPC code, a status, or a label).
pub async fn closed_loop<F, Fut, E>(
    name: &str,
    shape: LoadShape,
    call: F,
) -> anyhow::Result<PathResult>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<Failure>,
{
    let start = Instant::now();
    let measure_from = start + shape.warmup;
    let end = measure_from + shape.duration;
    let live = Arc::new(Live::default());
    let _progress = Progress::start(name, Arc::clone(&live), measure_from, shape.duration);
    let mut workers = Vec::with_capacity(shape.concurrency);
    for worker in 0..shape.concurrency {
        let call = call.clone();
        let live = Arc::clone(&live);
        workers.push(tokio::spawn(async move {
            let mut histogram = new_histogram()?;
            let mut errors = BTreeMap::<String, u64>::new();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                live.sent.fetch_add(1, Ordering::Relaxed);
                let outcome = call(worker).await;
                if sent < measure_from {
                    continue;
                }
                match outcome {
                    Ok(()) => {
                        live.ok.fetch_add(1, Ordering::Relaxed);
                        histogram.saturating_record(micros(sent.elapsed()));
                    }
                    Err(failure) => {
                        live.failed.fetch_add(1, Ordering::Relaxed);
                        *errors.entry(failure.into().0).or_default() += 1;
                    }
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
    Ok(PathResult::from_histogram(
        name,
        &histogram,
        errors,
        shape.duration,
    ))
}

/// What the iterations of an open loop recorded, shared by them.
#[derive(Debug)]
struct Recorded {
    histogram: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

/// Drives `call` with arrivals at `shape.rate` per second and summarises the measured ones.
/// `call(iteration)` runs one iteration (0-based, warm-up included) and returns why it failed on
/// failure. Every iteration runs in its own task, so a slow one never delays the next arrival.
pub async fn open_loop<F, Fut, E>(
    name: &str,
    shape: OpenShape,
    call: F,
) -> anyhow::Result<PathResult>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<Failure> + Send + 'static,
{
    anyhow::ensure!(
        shape.rate.is_finite() && shape.rate > 0.0,
        "the offered rate must be positive, not {}",
        shape.rate
    );
    let (warmup_arrivals, measured_arrivals) = shape.arrivals();
    let interval = Duration::from_secs_f64(1.0 / shape.rate);
    let start = tokio::time::Instant::now();
    let measure_from = start + interval * u32::try_from(warmup_arrivals).unwrap_or(u32::MAX);
    let live = Arc::new(Live::default());
    let _progress = Progress::start(
        name,
        Arc::clone(&live),
        measure_from.into_std(),
        shape.duration,
    );
    let recorded = Arc::new(Mutex::new(Recorded {
        histogram: new_histogram()?,
        errors: BTreeMap::new(),
    }));
    let mut tasks = tokio::task::JoinSet::new();
    let mut dropped = 0_u64;
    for iteration in 0..warmup_arrivals + measured_arrivals {
        // Due times are computed from the start, never from the previous arrival, so a late
        // wake-up is caught up at once instead of slowing the offered rate.
        let due = start + interval.mul_f64(iteration as f64);
        tokio::time::sleep_until(due).await;
        let measured = iteration >= warmup_arrivals;
        // Reap finished tasks so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
        if live.in_flight.load(Ordering::Relaxed) >= shape.max_in_flight as u64 {
            if measured {
                dropped += 1;
                live.dropped.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        live.sent.fetch_add(1, Ordering::Relaxed);
        live.in_flight.fetch_add(1, Ordering::Relaxed);
        let future = call(iteration);
        let live = Arc::clone(&live);
        let recorded = Arc::clone(&recorded);
        tasks.spawn(async move {
            let outcome = future.await;
            let latency = micros(due.elapsed());
            live.in_flight.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(()) => live.ok.fetch_add(1, Ordering::Relaxed),
                Err(_) => live.failed.fetch_add(1, Ordering::Relaxed),
            };
            if !measured {
                return;
            }
            let mut recorded = recorded.lock().unwrap_or_else(PoisonError::into_inner);
            match outcome {
                Ok(()) => recorded.histogram.saturating_record(latency),
                Err(failure) => *recorded.errors.entry(failure.into().0).or_default() += 1,
            }
        });
    }
    let unfinished = drain(&mut tasks, shape.drain).await;
    let recorded = recorded.lock().unwrap_or_else(PoisonError::into_inner);
    let mut result = PathResult::from_histogram(
        name,
        &recorded.histogram,
        recorded.errors.clone(),
        shape.duration,
    );
    result.offered_rps = Some(shape.rate);
    result.dropped = dropped;
    result.unfinished = unfinished;
    Ok(result)
}

/// Waits up to `patience` for `tasks`; aborts the rest and returns how many there were.
async fn drain(tasks: &mut tokio::task::JoinSet<()>, patience: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => return 0,
            Err(_) => {
                let left = tasks.len() as u64;
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                return left;
            }
        }
    }
}

/// An empty histogram of 1 µs to 60 s at 3 significant digits.
pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// `elapsed` in whole microseconds.
pub fn micros(elapsed: Duration) -> u64 {
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

    #[tokio::test]
    async fn an_open_loop_offers_every_arrival_and_counts_only_the_measured_ones() {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let shape = OpenShape {
            rate: 500.0,
            warmup: Duration::from_millis(20),
            duration: Duration::from_millis(50),
            max_in_flight: 1_000,
            drain: Duration::from_secs(30),
        };
        let result = open_loop("test", shape, move |iteration| {
            counter.fetch_add(1, Ordering::Relaxed);
            async move {
                if iteration % 5 == 4 {
                    Err(tonic::Code::Unavailable)
                } else {
                    Ok(())
                }
            }
        })
        .await
        .expect("measurement runs");
        assert_eq!(
            calls.load(Ordering::Relaxed),
            35,
            "10 warm-up + 25 measured"
        );
        assert_eq!(result.ok, 20, "{result:?}");
        assert_eq!(result.errors.get("Unavailable"), Some(&5), "{result:?}");
        assert_eq!((result.dropped, result.unfinished), (0, 0));
        assert_eq!(result.offered_rps, Some(500.0));
    }

    #[tokio::test]
    async fn arrivals_beyond_the_in_flight_bound_are_dropped_and_stuck_ones_reported() {
        let shape = OpenShape {
            rate: 1_000.0,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(20),
            max_in_flight: 2,
            drain: Duration::from_millis(50),
        };
        let result = open_loop("test", shape, |_| {
            futures::future::pending::<Result<(), tonic::Code>>()
        })
        .await
        .expect("measurement runs");
        assert_eq!(result.ok, 0);
        assert_eq!(result.dropped, 18, "{result:?}");
        assert_eq!(result.unfinished, 2, "{result:?}");
    }

    #[test]
    fn a_status_with_a_reason_is_counted_under_code_and_reason() {
        use tonic_types::{ErrorDetails, StatusExt as _};
        let status = tonic::Status::with_error_details(
            tonic::Code::FailedPrecondition,
            "sold out",
            ErrorDetails::with_error_info(
                "INSUFFICIENT_STOCK",
                "mercato",
                std::collections::HashMap::new(),
            ),
        );
        assert_eq!(
            Failure::from(&status).0,
            "FailedPrecondition/INSUFFICIENT_STOCK"
        );
        assert_eq!(
            Failure::from(tonic::Status::unavailable("x")).0,
            "Unavailable"
        );
    }
}
