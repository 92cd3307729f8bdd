//! A sweep's `results.json`, as `cargo xtask bench` writes it.

use serde::{Deserialize, Serialize};

use crate::Record;

/// Every run of a sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepResults {
    /// What the lists were and how the sweep ran, in words.
    pub description: String,
    /// The sweep's options, as given.
    pub options: String,
    /// The runs, in the order they ran.
    pub runs: Vec<SweepRun>,
    /// The cluster benchmark's record (`cargo xtask bench --cluster`), when one ran into
    /// this folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::ClusterRecord>,
}

/// How a run of the sweep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// It wrote its record.
    Ok,
    /// egress-bench failed: the error is kept.
    Failed,
    /// Stopped at the time budget.
    OverBudget,
    /// Not run: a smaller size failed or went over budget, or it would not fit the budget.
    NotRun,
}

/// One filter at one size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRun {
    /// The filter's sweep label (`ipset`, `ipset/hosts`, `tcbpf-empty@clsact`).
    pub filter: String,
    /// Entries asked for (or loaded, for a list read from a file).
    pub size: u64,
    /// How the run ended.
    pub status: RunStatus,
    /// Why it failed or was not run.
    pub error: Option<String>,
    /// The last lines the run printed to stderr, when it failed.
    #[serde(default)]
    pub stderr_tail: Vec<String>,
    /// The run's record, when it wrote one.
    pub record: Option<Box<Record>>,
}

/// How many of a failed run's last stderr lines are kept.
pub const STDERR_TAIL_LINES: usize = 20;

impl SweepRun {
    /// Whether the run wrote its record.
    pub fn ok(&self) -> bool {
        self.status == RunStatus::Ok && self.record.is_some()
    }

    /// A run that wrote `record`.
    pub fn finished(filter: &str, size: u64, record: Record) -> Self {
        Self {
            filter: filter.to_owned(),
            size,
            status: RunStatus::Ok,
            error: None,
            stderr_tail: Vec::new(),
            record: Some(Box::new(record)),
        }
    }

    /// A run that failed, from the last lines it printed: the error is the last line
    /// egress-bench printed as its error (`egress-bench: ...`), else `exit`, the exit status.
    pub fn failed(filter: &str, size: u64, stderr: &[String], exit: &str) -> Self {
        let error = stderr
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("egress-bench: "))
            .map_or_else(|| format!("egress-bench exited with {exit}"), str::to_owned);
        let tail = &stderr[stderr.len().saturating_sub(STDERR_TAIL_LINES)..];
        Self {
            filter: filter.to_owned(),
            size,
            status: RunStatus::Failed,
            error: Some(error),
            stderr_tail: tail.to_vec(),
            record: None,
        }
    }

    /// A run stopped at the time budget, or not run, and why.
    pub fn stopped(filter: &str, size: u64, status: RunStatus, why: String) -> Self {
        Self {
            filter: filter.to_owned(),
            size,
            status,
            error: Some(why),
            stderr_tail: Vec::new(),
            record: None,
        }
    }
}
