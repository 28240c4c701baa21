//! Resident memory of the running services, read from `/proc/<pid>/status`: once when they are
//! idle (started, ready, nothing sent yet) and, if asked, again after the load, with the peak
//! (`VmHWM`) each reached.

use anyhow::Context as _;

use crate::measure::LoadShape;
use crate::report::{Report, Table};

/// The memory goal per service, MiB.
pub const IDLE_GOAL_MIB: f64 = 30.0;

/// One process to read: its name in the report and its pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The service's name.
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

impl std::str::FromStr for Process {
    type Err = String;

    /// `name=pid`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, pid) = text
            .split_once('=')
            .ok_or_else(|| format!("expected name=pid, got {text:?}"))?;
        let pid = pid
            .parse()
            .map_err(|_| format!("{pid:?} is not a process id"))?;
        Ok(Self {
            name: name.to_owned(),
            pid,
        })
    }
}

/// One process's memory, KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss_kib: u64,
    /// The most it has been resident (`VmHWM`).
    pub peak_kib: u64,
}

/// Reads every process into the report `scenario` (`idle-rss`, `rss-after-load`).
pub fn run(scenario: &str, processes: &[Process]) -> anyhow::Result<Report> {
    let shape = LoadShape {
        concurrency: 0,
        warmup: std::time::Duration::ZERO,
        duration: std::time::Duration::ZERO,
    };
    let mut rows = Vec::new();
    let mut over = Vec::new();
    for process in processes {
        let status = std::fs::read_to_string(format!("/proc/{}/status", process.pid))
            .with_context(|| format!("{} (pid {}) is not running", process.name, process.pid))?;
        let memory = parse_status(&status)
            .with_context(|| format!("no VmRSS/VmHWM in the status of {}", process.name))?;
        let rss = mib(memory.rss_kib);
        if rss > IDLE_GOAL_MIB {
            over.push(format!("{} {rss:.1} MiB", process.name));
        }
        rows.push(vec![
            process.name.clone(),
            process.pid.to_string(),
            format!("{rss:.1}"),
            format!("{:.1}", mib(memory.peak_kib)),
        ]);
    }
    let mut report = Report::new(scenario, shape, 0, Vec::new(), Vec::new());
    report.table(Table {
        title: "Resident memory per process".to_owned(),
        columns: ["process", "pid", "RSS MiB", "peak RSS MiB"]
            .map(str::to_owned)
            .to_vec(),
        rows,
    });
    report.note(if over.is_empty() {
        format!("every process within the {IDLE_GOAL_MIB:.0} MiB goal")
    } else {
        format!(
            "over the {IDLE_GOAL_MIB:.0} MiB goal: {} (a goal, not an invariant)",
            over.join(", ")
        )
    });
    Ok(report)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text.
pub fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    Some(Memory {
        rss_kib: field("VmRSS")?,
        peak_kib: field("VmHWM")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_fields_are_read_in_kib() {
        let status = "Name:\tmercato-order\nVmPeak:\t  900000 kB\nVmHWM:\t   40960 kB\n\
                      VmRSS:\t   20480 kB\nThreads:\t5\n";
        assert_eq!(
            parse_status(status),
            Some(Memory {
                rss_kib: 20_480,
                peak_kib: 40_960
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = Process {
            name: "loadgen".to_owned(),
            pid: std::process::id(),
        };
        let report = run("idle-rss", &[me]).expect("own status readable");
        let row = &report.tables[0].rows[0];
        assert_eq!(row[0], "loadgen");
        assert!(row[2].parse::<f64>().expect("a number") > 0.0, "{row:?}");
    }

    #[test]
    fn a_process_is_named_and_numbered() {
        assert_eq!(
            "bff=42".parse::<Process>(),
            Ok(Process {
                name: "bff".to_owned(),
                pid: 42
            })
        );
        assert!("bff".parse::<Process>().is_err());
        assert!("bff=x".parse::<Process>().is_err());
    }
}
