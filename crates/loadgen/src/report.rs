//! Benchmark reports: one JSON file (for tools) and one Markdown table (for people) per run, and
//! for scenarios measured at several offered rates an SVG plot of latency against offered load
//! ([`crate::plot`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::measure::{LoadShape, OpenShape, PathResult};

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

/// How a scenario loaded the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadModel {
    /// `concurrency` calls in flight, each sent when the previous answered.
    Closed,
    /// Arrivals at an offered rate, at most `concurrency` in flight.
    Open,
}

/// A table of its own in a report (per-step latencies, invariant counts).
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    /// What the table shows.
    pub title: String,
    /// Column headings.
    pub columns: Vec<String>,
    /// Rows, one cell per column.
    pub rows: Vec<Vec<String>>,
}

/// One path measured at several offered rates: the points of a latency-vs-load curve.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// What was measured.
    pub name: String,
    /// One point per offered rate, lowest first.
    pub points: Vec<LoadPoint>,
}

/// One offered rate of a [`Series`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LoadPoint {
    /// Arrivals offered per second.
    pub offered_rps: f64,
    /// Successes per second.
    pub achieved_rps: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
}

impl LoadPoint {
    /// The point an open-loop path makes.
    pub fn of(path: &PathResult) -> Self {
        Self {
            offered_rps: path.offered_rps.unwrap_or(path.rps),
            achieved_rps: path.rps,
            p50_us: path.p50_us,
            p99_us: path.p99_us,
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
    /// Closed or open loop.
    pub model: LoadModel,
    /// Calls in flight per path (closed), or the most in flight (open).
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
    /// Further tables.
    pub tables: Vec<Table>,
    /// Latency against offered load, plotted into `<scenario>.svg`.
    pub series: Vec<Series>,
    /// Invariants the run broke; a report with any fails its run.
    pub violations: Vec<String>,
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
            model: LoadModel::Closed,
            concurrency: shape.concurrency,
            connections,
            duration_s: shape.duration.as_secs_f64(),
            warmup_s: shape.warmup.as_secs_f64(),
            paths,
            ratios,
            notes: Vec::new(),
            tables: Vec::new(),
            series: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// A report of open-loop `paths` measured with `shape` (the rate varies per path).
    pub fn open(
        scenario: &str,
        shape: OpenShape,
        connections: usize,
        paths: Vec<PathResult>,
        ratios: Vec<Ratio>,
    ) -> Self {
        let closed = LoadShape {
            concurrency: shape.max_in_flight,
            warmup: shape.warmup,
            duration: shape.duration,
        };
        Self {
            model: LoadModel::Open,
            ..Self::new(scenario, closed, connections, paths, ratios)
        }
    }

    /// Adds a table.
    pub fn table(&mut self, table: Table) {
        self.tables.push(table);
    }

    /// Records a broken invariant.
    pub fn violation(&mut self, violation: String) {
        self.violations.push(violation);
    }

    /// Adds an observation.
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// The Markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let load = match self.model {
            LoadModel::Closed => format!("{} in flight", self.concurrency),
            LoadModel::Open => format!(
                "open model: arrivals at the offered rate, at most {} in flight",
                self.concurrency
            ),
        };
        if self.paths.is_empty() {
            let _ = writeln!(out, "### {} ({})\n", self.scenario, self.finished_at);
        } else {
            let _ = writeln!(
                out,
                "### {} ({}; {load} over {} connections, {:.0} s each after {:.0} s warm-up)\n",
                self.scenario, self.finished_at, self.connections, self.duration_s, self.warmup_s
            );
        }
        let open = self.paths.iter().any(|path| path.offered_rps.is_some());
        if self.paths.is_empty() {
            // A measurement without paths (resident memory) is its tables and notes.
        } else if open {
            out.push_str(
                "| path | offered/s | ok | errors | dropped | unfinished | ok/s | p50 µs | p90 µs \
                 | p99 µs | max µs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            );
        } else {
            out.push_str("| path | ok | errors | req/s | p50 µs | p90 µs | p99 µs | max µs |\n");
            out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        }
        for path in &self.paths {
            let errors = path.error_count();
            let offered = path
                .offered_rps
                .map_or_else(|| "-".to_owned(), |rate| format!("{rate:.0}"));
            if open {
                let _ = writeln!(
                    out,
                    "| {} | {offered} | {} | {errors} | {} | {} | {:.1} | {} | {} | {} | {} |",
                    path.name,
                    path.ok,
                    path.dropped,
                    path.unfinished,
                    path.rps,
                    path.p50_us,
                    path.p90_us,
                    path.p99_us,
                    path.max_us
                );
            } else {
                let _ = writeln!(
                    out,
                    "| {} | {} | {errors} | {:.0} | {} | {} | {} | {} |",
                    path.name,
                    path.ok,
                    path.rps,
                    path.p50_us,
                    path.p90_us,
                    path.p99_us,
                    path.max_us
                );
            }
        }
        for path in self.paths.iter().filter(|path| !path.errors.is_empty()) {
            let errors: Vec<String> = path
                .errors
                .iter()
                .map(|(code, count)| format!("{code} {count}"))
                .collect();
            let _ = writeln!(out, "\nerrors of {}: {}", path.name, errors.join(", "));
        }
        for table in &self.tables {
            let _ = writeln!(out, "\n{}\n", table.title);
            let _ = writeln!(out, "| {} |", table.columns.join(" | "));
            let rule: Vec<&str> = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---" } else { "---:" })
                .collect();
            let _ = writeln!(out, "|{}|", rule.join("|"));
            for row in &table.rows {
                let _ = writeln!(out, "| {} |", row.join(" | "));
            }
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
        if !self.series.is_empty() {
            let _ = writeln!(
                out,
                "\nLatency against offered load: `{}.svg`.",
                self.scenario
            );
        }
        for violation in &self.violations {
            let _ = writeln!(out, "\n**INVARIANT BROKEN:** {violation}");
        }
        out
    }

    /// Writes `<scenario>.json` and `<scenario>.md` into `dir`, and `<scenario>.svg` when the
    /// report has series; returns the paths written.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let json = dir.join(format!("{}.json", self.scenario));
        let markdown = dir.join(format!("{}.md", self.scenario));
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        std::fs::write(&markdown, self.markdown())?;
        let mut written = vec![json, markdown];
        if !self.series.is_empty() {
            let svg = dir.join(format!("{}.svg", self.scenario));
            std::fs::write(
                &svg,
                crate::plot::latency_vs_load(&self.scenario, &self.series),
            )?;
            written.push(svg);
        }
        Ok(written)
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
            offered_rps: None,
            dropped: 0,
            unfinished: 0,
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
        let written = report.write(&dir).expect("report written");
        let [json, md] = written.as_slice() else {
            panic!("no series, no plot: {written:?}")
        };
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
