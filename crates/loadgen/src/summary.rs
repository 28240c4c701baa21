//! The run's summary: the benchmark goals, each read from the reports the run wrote (a goal whose
//! report is missing says so), and one line per report. Written as `summary.md` and
//! `summary.json` beside the reports. Goals are what the numbers are compared against, never
//! a pass/fail of the run: broken invariants fail a scenario, slow numbers do not.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::scenarios::catalog::PARTIAL_LOAD_PATH;
use crate::scenarios::rss::IDLE_GOAL_MIB;

/// One goal and what the run measured against it.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// The goal as stated.
    pub goal: String,
    /// What was measured, in words and numbers; `None` when its report is missing.
    pub measured: Option<String>,
    /// Whether the measurement meets the goal.
    pub met: Option<bool>,
}

/// The summary of the reports in one directory.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The goals.
    pub goals: Vec<Goal>,
    /// One line per report found: scenario, its best or headline numbers.
    pub reports: Vec<String>,
}

/// The reports in `dir`, by scenario name.
struct Reports {
    dir: PathBuf,
}

impl Reports {
    fn get(&self, scenario: &str) -> Option<Value> {
        let text = std::fs::read(self.dir.join(format!("{scenario}.json"))).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

fn paths(report: &Value) -> impl Iterator<Item = &Value> {
    report["paths"].as_array().into_iter().flatten()
}

fn path(report: &Value, predicate: impl Fn(&str) -> bool) -> Option<&Value> {
    paths(report).find(|path| path["name"].as_str().is_some_and(&predicate))
}

fn ratio(report: &Value, prefix: &str) -> Option<f64> {
    report["ratios"].as_array()?.iter().find(|ratio| {
        ratio["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(prefix))
    })?["value"]
        .as_f64()
}

fn number(path: &Value, field: &str) -> f64 {
    path[field].as_f64().unwrap_or(0.0)
}

/// A clean open-loop path: no errors, drops or unfinished iterations.
fn clean(path: &Value) -> bool {
    let errors: f64 = path["errors"]
        .as_object()
        .map(|errors| errors.values().filter_map(Value::as_f64).sum())
        .unwrap_or(0.0);
    errors == 0.0 && number(path, "dropped") == 0.0 && number(path, "unfinished") == 0.0
}

fn goal(goal: &str, measured: Option<(String, bool)>) -> Goal {
    let (measured, met) = match measured {
        Some((text, met)) => (Some(text), Some(met)),
        None => (None, None),
    };
    Goal {
        goal: goal.to_owned(),
        measured,
        met,
    }
}

/// Reads the reports in `dir` and evaluates every goal.
pub fn summarize(dir: &Path) -> Summary {
    let reports = Reports {
        dir: dir.to_owned(),
    };
    let catalog = reports.get("catalog");
    let edge = reports.get("edge");
    let saga = reports.get("saga");
    let flash = reports.get("flash-sale");
    let idle = reports.get("idle-rss");

    let mut goals = Vec::new();
    goals.push(goal(
        "catalog reads via the BFF ≥ 0.5 × raw tonic requests per second",
        catalog
            .as_ref()
            .and_then(|c| ratio(c, "bff catalog reads / raw tonic"))
            .map(|r| (format!("{r:.2} ×"), r >= 0.5)),
    ));
    goals.push(goal(
        "catalog reads via the BFF: p99 < 5 ms at 70 % of their maximum rate",
        catalog
            .as_ref()
            .and_then(|c| path(c, |name| name.starts_with(PARTIAL_LOAD_PATH)))
            .map(|p| {
                let p99 = number(p, "p99_us");
                (
                    format!(
                        "p99 {:.2} ms at {:.0}/s offered, {:.0}/s answered{}",
                        p99 / 1_000.0,
                        number(p, "offered_rps"),
                        number(p, "rps"),
                        if clean(p) {
                            ""
                        } else {
                            " (with errors or drops)"
                        }
                    ),
                    p99 < 5_000.0 && clean(p),
                )
            }),
    ));
    goals.push(goal(
        "BFF overhead ≤ 150 µs at p50 (one call at a time)",
        edge.as_ref().and_then(|e| {
            let serial = |prefix: &str| {
                path(e, |name| {
                    name.starts_with(prefix) && name.ends_with(", one at a time")
                })
                .map(|p| number(p, "p50_us"))
            };
            let (bff, direct) = (serial("bff.v1")?, serial("user.v1")?);
            let overhead = bff - direct;
            Some((
                format!("{overhead:.0} µs ({bff:.0} through the BFF vs {direct:.0} direct)"),
                overhead <= 150.0,
            ))
        }),
    ));
    goals.push(goal(
        "orders from creation to FINISHED ≥ 0.6 × pgbench replaying their SQL",
        saga.as_ref()
            .and_then(|s| ratio(s, "best clean saga rate"))
            .map(|r| (format!("{r:.2} ×"), r >= 0.6)),
    ));
    goals.push(goal(
        "flash-sale answers (orders and sold-out) ≥ 0.5 × catalog-read requests per second",
        flash.as_ref().zip(catalog.as_ref()).and_then(|(f, c)| {
            let best = paths(f)
                .filter(|p| clean(p))
                .map(|p| number(p, "rps"))
                .fold(0.0_f64, f64::max);
            let reads = number(path(c, |name| name.ends_with("(through the BFF)"))?, "rps");
            let value = if reads > 0.0 { best / reads } else { 0.0 };
            Some((
                format!(
                    "{value:.2} × ({best:.0} clean answers/s at the best round vs {reads:.0} \
                     catalog reads/s)"
                ),
                value >= 0.5,
            ))
        }),
    ));
    goals.push(goal(
        &format!("idle resident memory ≤ {IDLE_GOAL_MIB:.0} MiB per service"),
        idle.as_ref().and_then(|i| {
            let rows = i["tables"][0]["rows"].as_array()?;
            let mut worst = ("", 0.0_f64);
            for row in rows {
                let name = row[0].as_str().unwrap_or("?");
                let mib: f64 = row[2].as_str()?.parse().ok()?;
                if mib > worst.1 {
                    worst = (name, mib);
                }
            }
            Some((
                format!("largest: {} {:.1} MiB", worst.0, worst.1),
                worst.1 <= IDLE_GOAL_MIB,
            ))
        }),
    ));

    let mut lines = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let scenario = name.strip_suffix(".json")?;
            (scenario != "summary").then(|| scenario.to_owned())
        })
        .collect();
    names.sort();
    for name in names {
        if let Some(report) = reports.get(&name) {
            lines.push(headline(&name, &report));
        }
    }
    Summary {
        goals,
        reports: lines,
    }
}

/// One line for a report: its fastest clean path and whether invariants held.
fn headline(name: &str, report: &Value) -> String {
    let violations = report["violations"].as_array().map_or(0, Vec::len);
    let best = paths(report)
        .filter(|p| clean(p))
        .max_by(|a, b| number(a, "rps").total_cmp(&number(b, "rps")));
    let mut line = format!("{name}: ");
    match best {
        Some(p) => {
            let _ = write!(
                line,
                "fastest clean path {} — {:.0}/s, p50 {} µs, p99 {} µs",
                p["name"].as_str().unwrap_or("?"),
                number(p, "rps"),
                number(p, "p50_us"),
                number(p, "p99_us")
            );
        }
        None => line.push_str("no measured path"),
    }
    if violations > 0 {
        let _ = write!(line, "; {violations} INVARIANT(S) BROKEN");
    }
    line
}

impl Summary {
    /// The Markdown form.
    pub fn markdown(&self) -> String {
        let mut out = String::from("### Goals\n\n| goal | measured | met |\n|---|---|---|\n");
        for goal in &self.goals {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                goal.goal,
                goal.measured
                    .as_deref()
                    .unwrap_or("not measured in this run"),
                match goal.met {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                }
            );
        }
        out.push_str("\n### Reports\n\n");
        for line in &self.reports {
            let _ = writeln!(out, "- {line}");
        }
        out
    }

    /// Writes `summary.md` and `summary.json` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let markdown = dir.join("summary.md");
        let json = dir.join("summary.json");
        std::fs::write(&markdown, self.markdown())?;
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        Ok(vec![json, markdown])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, scenario: &str, value: &Value) {
        std::fs::write(
            dir.join(format!("{scenario}.json")),
            serde_json::to_vec(value).expect("json"),
        )
        .expect("written");
    }

    #[test]
    fn goals_are_read_from_the_reports_and_missing_ones_say_so() {
        let dir = std::env::temp_dir().join(format!("loadgen-summary-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        write(
            &dir,
            "catalog",
            &serde_json::json!({
                "paths": [
                    {"name": "raw tonic (health check)", "rps": 10000.0, "p50_us": 100, "p99_us": 300, "errors": {}},
                    {"name": "bff.v1 CatalogService.GetProduct (through the BFF)", "rps": 6000.0, "p50_us": 400, "p99_us": 900, "errors": {}},
                    {"name": format!("{PARTIAL_LOAD_PATH} of its closed-loop rate, open model"), "rps": 4200.0, "offered_rps": 4200.0, "p50_us": 300, "p99_us": 6000, "errors": {}}
                ],
                "ratios": [{"name": "bff catalog reads / raw tonic", "value": 0.6}],
                "violations": []
            }),
        );
        write(
            &dir,
            "flash-sale",
            &serde_json::json!({
                "paths": [
                    {"name": "round 1", "rps": 2000.0, "offered_rps": 2000.0, "p50_us": 1, "p99_us": 2, "errors": {}},
                    {"name": "round 2", "rps": 3500.0, "offered_rps": 4000.0, "p50_us": 1, "p99_us": 2, "errors": {}, "dropped": 7}
                ],
                "ratios": [],
                "violations": ["@ 4000/s: oversold"]
            }),
        );
        let summary = summarize(&dir);
        let met: Vec<Option<bool>> = summary.goals.iter().map(|g| g.met).collect();
        // catalog ratio met, p99 missed, edge and saga missing, flash sale 2000/6000 missed
        // (the dropping round does not count), idle RSS missing.
        assert_eq!(
            met,
            [Some(true), Some(false), None, None, Some(false), None]
        );
        assert!(
            summary.goals[4]
                .measured
                .as_deref()
                .is_some_and(|m| m.starts_with("0.33 ×")),
            "{:?}",
            summary.goals[4]
        );
        assert_eq!(summary.reports.len(), 2);
        assert!(
            summary.reports[1].contains("1 INVARIANT(S) BROKEN"),
            "{:?}",
            summary.reports
        );
        let markdown = summary.markdown();
        assert!(markdown.contains("not measured in this run"), "{markdown}");
        let written = summary.write(&dir).expect("written");
        assert!(written.iter().all(|path| path.exists()));
        // The summary itself is not a report of the next summary.
        assert_eq!(summarize(&dir).reports.len(), 2);
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}
