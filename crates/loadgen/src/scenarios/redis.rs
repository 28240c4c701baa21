//! The cache baseline: `redis-benchmark` against the Redis the services use, with as many clients
//! as the other closed-loop paths have calls in flight: GET and SET of small values, and the
//! BFF's own rate-limit script over two keys (the Redis work of every BFF request), run by its
//! SHA as the BFF runs it. Keys carry the run's prefix, so the run's clean-up removes them.

use std::process::Stdio;

use anyhow::Context as _;

use crate::measure::{LoadShape, PathResult};
use crate::report::{Ratio, Report};

/// Where Redis is and which keys the run may write.
#[derive(Debug, Clone)]
pub struct RedisTargets {
    /// `redis://host:port`, as the services are configured.
    pub url: String,
    /// Prefix of every key the benchmark writes.
    pub key_prefix: String,
}

/// Random keys per command: enough that SET does not rewrite one hot key.
const KEYSPACE: &str = "100000";

/// Requests of the calibration run that sizes the measured runs to the wanted duration.
const CALIBRATION_REQUESTS: u64 = 20_000;

/// Runs GET, SET and the rate-limit script, each sized to `shape.duration`.
pub async fn run(targets: &RedisTargets, shape: LoadShape) -> anyhow::Result<Report> {
    let sha = load_script(&targets.url, mercato_bff::rate_limit::GCRA).await?;
    let prefix = &targets.key_prefix;
    let key = format!("{prefix}k:__rand_int__");
    // Interval 1 s, tolerance ~3 years: every call is admitted, as the BFF's calls are under the
    // benchmark's lifted limits, so each one reads and writes both keys (which then expire
    // after a second or so, as a shopper's do once idle).
    let commands: [(&str, Vec<String>); 3] = [
        ("GET", vec!["GET".to_owned(), key.clone()]),
        ("SET", vec!["SET".to_owned(), key, "1".to_owned()]),
        (
            "the BFF's rate-limit script (EVALSHA, two keys)",
            vec![
                "EVALSHA".to_owned(),
                sha,
                "2".to_owned(),
                format!("{prefix}ip:__rand_int__"),
                format!("{prefix}user:__rand_int__"),
                "1000000".to_owned(),
                "100000000000000".to_owned(),
            ],
        ),
    ];
    let mut paths = Vec::new();
    for (label, command) in &commands {
        let calibration = benchmark(
            &targets.url,
            shape.concurrency,
            CALIBRATION_REQUESTS,
            command,
        )
        .await?;
        let requests =
            ((calibration.rps * shape.duration.as_secs_f64()) as u64).max(CALIBRATION_REQUESTS);
        let mut measured = benchmark(&targets.url, shape.concurrency, requests, command).await?;
        measured.name = format!("redis-benchmark {label}");
        paths.push(measured);
    }
    let ratios = vec![Ratio::new(
        "rate-limit script / GET throughput",
        paths[2].rps,
        paths[0].rps,
    )];
    let mut report = Report::new("redis", shape, shape.concurrency, paths, ratios);
    report.note(format!(
        "redis-benchmark with {} clients, one connection each, no pipelining, random keys over \
         a keyspace of {KEYSPACE}; each measured run is sized from a {CALIBRATION_REQUESTS}-request \
         calibration run to last about {:.0} s. redis-benchmark reports p50, p95 and p99: the p90 \
         column of these rows holds p95",
        shape.concurrency,
        shape.duration.as_secs_f64()
    ));
    Ok(report)
}

/// `SCRIPT LOAD`s `script`, returning its SHA.
async fn load_script(url: &str, script: &str) -> anyhow::Result<String> {
    let output = tokio::process::Command::new("redis-cli")
        .args(["-u", url, "SCRIPT", "LOAD", script])
        .stdin(Stdio::null())
        .output()
        .await
        .context("running redis-cli (is Redis's client installed?)")?;
    let sha = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    anyhow::ensure!(
        output.status.success() && sha.len() == 40,
        "redis-cli SCRIPT LOAD failed: {}{}",
        sha,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(sha)
}

/// One `redis-benchmark --csv` run of `command`.
async fn benchmark(
    url: &str,
    clients: usize,
    requests: u64,
    command: &[String],
) -> anyhow::Result<PathResult> {
    let output = tokio::process::Command::new("redis-benchmark")
        .args(["-u", url, "--csv", "-r", KEYSPACE, "-c"])
        .arg(clients.max(1).to_string())
        .arg("-n")
        .arg(requests.to_string())
        .args(command)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running redis-benchmark (is Redis's tools package installed?)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "redis-benchmark failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_csv(&stdout, requests)
        .with_context(|| format!("unexpected redis-benchmark output: {stdout}"))
}

/// The one result row of `redis-benchmark --csv`: `"test","rps","avg_latency_ms",
/// "min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"`.
fn parse_csv(csv: &str, requests: u64) -> anyhow::Result<PathResult> {
    let mut lines = csv.lines().filter(|line| !line.trim().is_empty());
    let header = lines.next().context("no header")?;
    anyhow::ensure!(header.starts_with("\"test\",\"rps\""), "header {header}");
    let row = lines.next().context("no result row")?;
    // The test name may itself contain commas: the numbers are the last seven fields.
    let fields: Vec<&str> = row.rsplitn(8, ',').collect();
    anyhow::ensure!(fields.len() == 8, "row {row}");
    let number = |index: usize| -> anyhow::Result<f64> {
        let field = fields[index].trim_matches('"');
        field
            .parse::<f64>()
            .with_context(|| format!("field {field:?}"))
    };
    let micros = |index: usize| -> anyhow::Result<u64> { Ok((number(index)? * 1_000.0) as u64) };
    // rsplitn yields from the end: max, p99, p95, p50, min, avg, rps, name.
    Ok(PathResult {
        name: fields[7].trim_matches('"').to_owned(),
        ok: requests,
        errors: Default::default(),
        rps: number(6)?,
        p50_us: micros(3)?,
        p90_us: micros(2)?,
        p99_us: micros(1)?,
        max_us: micros(0)?,
        offered_rps: None,
        dropped: 0,
        unfinished: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_row_becomes_a_path_even_when_the_command_has_commas() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                   \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"EVALSHA ab, cd\",\"39920.16\",\"0.408\",\"0.064\",\"0.407\",\"0.671\",\
                   \"0.743\",\"8.615\"\n";
        let path = parse_csv(csv, 1_000).expect("parsed");
        assert_eq!(path.name, "EVALSHA ab, cd");
        assert_eq!(path.ok, 1_000);
        assert!((path.rps - 39_920.16).abs() < 1e-6);
        assert_eq!(
            (path.p50_us, path.p90_us, path.p99_us, path.max_us),
            (407, 671, 743, 8_615)
        );
    }

    #[test]
    fn output_without_a_result_row_is_an_error() {
        assert!(parse_csv("\"test\",\"rps\"\n", 1).is_err());
        assert!(parse_csv("", 1).is_err());
    }
}
