//! Benchmark reports: one JSON file (for tools) and one Markdown table (for people) per run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::measure::{LoadShape, PathResult};

/// `numerator / denominator` with its meaning.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// What the ratio compares.
    pub name: String,
    /// The ratio (0 when the denominator is 0).
    pub value: f64,
}

impl Ratio {
    /// `numerator / denominator`, named.
    pub fn new(name: &str, numerator: f64, denominator: f64) -> Self {
        let value = if denominator > 0.0 {
            numerator / denominator
        } else {
            0.0
        };
        Self {
            name: name.to_owned(),
            value,
        }
    }
}

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// When the run finished (UTC, RFC 3339).
    pub finished_at: String,
    /// Calls in flight per path.
    pub concurrency: usize,
    /// HTTP/2 connections per path.
    pub connections: usize,
    /// Measured seconds per path.
    pub duration_s: f64,
    /// Unrecorded warm-up seconds per path.
    pub warmup_s: f64,
    /// Every measured path.
    pub paths: Vec<PathResult>,
    /// The comparisons the scenario exists for.
    pub ratios: Vec<Ratio>,
    /// Free-form observations.
    pub notes: Vec<String>,
}

impl Report {
    /// A report of `paths` measured with `shape`.
    pub fn new(
        scenario: &str,
        shape: LoadShape,
        connections: usize,
        paths: Vec<PathResult>,
        ratios: Vec<Ratio>,
    ) -> Self {
        Self {
            scenario: scenario.to_owned(),
            finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            concurrency: shape.concurrency,
            connections,
            duration_s: shape.duration.as_secs_f64(),
            warmup_s: shape.warmup.as_secs_f64(),
            paths,
            ratios,
            notes: Vec::new(),
        }
    }

    /// Adds an observation.
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// The Markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### {} ({}; {} in flight over {} connections, {:.0} s each after {:.0} s warm-up)\n",
            self.scenario,
            self.finished_at,
            self.concurrency,
            self.connections,
            self.duration_s,
            self.warmup_s
        );
        out.push_str("| path | ok | errors | req/s | p50 µs | p90 µs | p99 µs | max µs |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for path in &self.paths {
            let errors: u64 = path.errors.values().sum();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                path.name,
                path.ok,
                errors,
                path.rps,
                path.p50_us,
                path.p90_us,
                path.p99_us,
                path.max_us
            );
        }
        if !self.ratios.is_empty() {
            out.push_str("\n| ratio | value |\n|---|---:|\n");
            for ratio in &self.ratios {
                let _ = writeln!(out, "| {} | {:.2} |", ratio.name, ratio.value);
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }

    /// Writes `<scenario>.json` and `<scenario>.md` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let json = dir.join(format!("{}.json", self.scenario));
        let markdown = dir.join(format!("{}.md", self.scenario));
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        std::fs::write(&markdown, self.markdown())?;
        Ok((json, markdown))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_markdown_has_a_row_per_path_and_every_ratio() {
        let path = |name: &str, rps: f64| PathResult {
            name: name.to_owned(),
            ok: 10,
            errors: BTreeMap::from([("Unavailable".to_owned(), 2)]),
            rps,
            p50_us: 100,
            p90_us: 200,
            p99_us: 300,
            max_us: 400,
        };
        let shape = LoadShape {
            concurrency: 8,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
        };
        let report = Report::new(
            "edge",
            shape,
            2,
            vec![path("direct", 2000.0), path("bff", 1000.0)],
            vec![Ratio::new("bff / direct throughput", 1000.0, 2000.0)],
        );
        let markdown = report.markdown();
        assert!(
            markdown.contains("| direct | 10 | 2 | 2000 | 100 | 200 | 300 | 400 |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| bff / direct throughput | 0.50 |"),
            "{markdown}"
        );
        let dir = std::env::temp_dir().join(format!("loadgen-report-{}", uuid::Uuid::new_v4()));
        let (json, md) = report.write(&dir).expect("report written");
        let parsed: serde_json::Value =
            serde_json::from_slice(&std::fs::read(json).expect("json readable"))
                .expect("valid json");
        assert_eq!(parsed["paths"][1]["name"], "bff");
        assert!(md.exists());
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn a_zero_denominator_gives_zero_not_infinity() {
        assert_eq!(Ratio::new("x", 5.0, 0.0).value, 0.0);
    }
}
