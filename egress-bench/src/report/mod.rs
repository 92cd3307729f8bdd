//! `egress-bench report DIR`: turns a sweep's `results.json` into one CSV per metric,
//! `summary.md` and plots (SVG and PNG), the same as one self-contained `report.html`,
//! optionally against a baseline sweep.

mod csv;
mod html;
pub(crate) mod markdown;
mod plot;
mod published;
pub(crate) mod text;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use filter_core::CostCase;
use records::{Figures, Latency, Paired, Protocol, RunStatus, SweepResults, Throughput};

/// Arguments of `egress-bench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A sweep's output folder (with results.json), as written by `cargo xtask bench`.
    pub dir: PathBuf,
    /// Another sweep's folder to compare with: every figure both have, with spreads, is
    /// written to DIR/comparison.md (summary.md stays this sweep's own).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
}

/// One run of the sweep as results.json has it.
pub type Run = records::SweepRun;

/// The figures of a run that wrote its record.
fn figures(run: &Run) -> Option<&Figures> {
    run.record.as_ref()?.figures.as_ref()
}
/// Every run of a sweep, with the order filters were given in.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub runs: Vec<Run>,
    pub filters: Vec<String>,
    pub description: String,
    /// The cluster benchmark's record, when one ran into the folder.
    pub cluster: Option<records::cluster::ClusterRecord>,
}

/// The median of some numbers (see [`records::stats`] for the rule on missing values).
pub fn median(v: Vec<f64>) -> f64 {
    records::stats::median(&v)
}

impl Sweep {
    /// Reads `dir/results.json`.
    ///
    /// # Errors
    /// When the file cannot be read or is not a sweep's results.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("results.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let results: SweepResults =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Self::from_results(results))
    }

    /// The sweep of parsed results.
    pub fn from_results(results: SweepResults) -> Self {
        let mut filters: Vec<String> = Vec::new();
        for run in &results.runs {
            if !filters.contains(&run.filter) {
                filters.push(run.filter.clone());
            }
        }
        Self {
            runs: results.runs,
            filters,
            description: results.description,
            cluster: results.cluster,
        }
    }

    /// Sizes in increasing order.
    pub fn sizes(&self) -> Vec<u64> {
        let mut sizes: Vec<u64> = self.runs.iter().map(|r| r.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// Successful runs of one filter at one size.
    pub fn ok_runs<'a>(&'a self, filter: &'a str, size: u64) -> impl Iterator<Item = &'a Run> + 'a {
        self.runs
            .iter()
            .filter(move |r| r.filter == filter && r.size == size && r.ok())
    }

    /// Why a filter has no figures at a size ("over budget", "failed: the named error"),
    /// or `None` if it has.
    pub fn missing(&self, filter: &str, size: u64) -> Option<String> {
        if self.ok_runs(filter, size).next().is_some() {
            return None;
        }
        self.runs
            .iter()
            .find(|r| r.filter == filter && r.size == size)
            .map(|r| {
                let status = match r.status {
                    RunStatus::Ok => "no figures (the filter failed its probes)",
                    RunStatus::Failed => "failed",
                    RunStatus::OverBudget => "over budget",
                    RunStatus::NotRun => "not run",
                };
                match &r.error {
                    Some(error) => format!("{status}: {error}"),
                    None => status.to_owned(),
                }
            })
    }

    /// Whether the sweep scheduled a filter at a size (whatever became of the run).
    pub fn scheduled(&self, filter: &str, size: u64) -> bool {
        self.runs
            .iter()
            .any(|r| r.filter == filter && r.size == size)
    }

    /// The first successful run of a filter at a size.
    pub fn first_ok<'a>(&'a self, filter: &'a str, size: u64) -> Option<&'a Run> {
        self.ok_runs(filter, size).next()
    }

    /// The median over runs of a number found by `pick` in each run's figures.
    pub fn median_of(
        &self,
        filter: &str,
        size: u64,
        pick: impl Fn(&Figures) -> Option<f64>,
    ) -> Option<f64> {
        let values: Vec<f64> = self
            .ok_runs(filter, size)
            .filter_map(|r| figures(r).and_then(&pick))
            .collect();
        (!values.is_empty()).then(|| median(values))
    }
}

/// Load time in seconds.
pub fn load_seconds(f: &Figures) -> Option<f64> {
    Some(f.load_seconds)
}

/// Kernel memory in bytes: the filter's own figure, else the meminfo delta.
pub fn memory_bytes(f: &Figures) -> Option<f64> {
    f.stats
        .kernel_memory
        .as_ref()
        .map(|m| m.bytes as f64)
        .or(f.kernel_allocations_bytes().map(|b| b as f64))
}

/// A send-path case of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendCase {
    /// Both namespaces without a filter.
    NoneVsNone,
    /// One destination.
    One,
    /// 32,768 destinations.
    Many,
    /// 32,768 destinations while the update feed runs.
    DuringUpdates,
    /// `connect()` calls, for filters on a cgroup (ns per call).
    Connects,
    /// A new flow per packet (`--new-flows`).
    NewFlows,
    /// TCP `connect()` calls, for filters on a cgroup (ns per call).
    TcpConnects,
}

impl SendCase {
    /// Every case, in table order.
    pub const ALL: [SendCase; 7] = [
        SendCase::NoneVsNone,
        SendCase::One,
        SendCase::Many,
        SendCase::DuringUpdates,
        SendCase::Connects,
        SendCase::NewFlows,
        SendCase::TcpConnects,
    ];

    /// The name used in CSV files.
    pub fn name(self) -> &'static str {
        match self {
            SendCase::NoneVsNone => "none_vs_none",
            SendCase::One => "one_destination",
            SendCase::Many => "many_destinations",
            SendCase::DuringUpdates => "many_destinations_during_updates",
            SendCase::Connects => "connects",
            SendCase::NewFlows => "new_flows",
            SendCase::TcpConnects => "tcp_connects",
        }
    }
}

/// The send-path figure of one case.
pub fn send_path(f: &Figures, case: SendCase) -> Option<&Paired> {
    let s = f.send_path.as_ref()?;
    match case {
        SendCase::NoneVsNone => Some(&s.none_vs_none),
        SendCase::One => Some(&s.one_destination),
        SendCase::Many => Some(&s.many_destinations),
        SendCase::DuringUpdates => s.during_updates.as_ref().map(|d| &d.paired),
        SendCase::Connects => s.connects.as_ref(),
        SendCase::NewFlows => s.new_flows.as_ref(),
        SendCase::TcpConnects => s.tcp_connects.as_ref(),
    }
}

/// The median of one `BPF_PROG_TEST_RUN` case, in ns.
pub fn program_cost(f: &Figures, case: CostCase) -> Option<f64> {
    f.program_costs
        .iter()
        .find(|c| c.case == case)
        .map(|c| c.median_ns)
}

/// A throughput case of the traffic figures: payload bytes, and whether it was paced.
pub fn throughput(f: &Figures, payload: usize, paced: bool) -> Option<&Throughput> {
    f.traffic
        .as_ref()?
        .throughput
        .iter()
        .find(|t| t.payload_bytes == payload && t.offered_bps.is_some() == paced)
}

/// The round trips of one protocol (`udp`, `tcp`).
pub fn latency(f: &Figures, protocol: Protocol) -> Option<&Latency> {
    f.traffic
        .as_ref()?
        .latency
        .iter()
        .find(|l| l.protocol == protocol)
}

/// Writes every output of `dir` from its results.json.
pub fn report(args: &ReportArgs) -> Result<()> {
    let sweep = Sweep::read(&args.dir)?;
    let baseline = args.baseline.as_deref().map(Sweep::read).transpose()?;
    let plots = if sweep.runs.is_empty() {
        // A cluster benchmark alone: its table is the whole report.
        Vec::new()
    } else {
        csv::write_all(&sweep, &args.dir)?;
        plot::write_all(&sweep, &args.dir)?
    };
    let summary = markdown::summary(&sweep, &plots);
    std::fs::write(args.dir.join("summary.md"), &summary)?;
    html::write(&args.dir, &summary)?;
    println!("{summary}");
    if sweep.runs.is_empty() {
        println!("written to {}: summary.md, report.html", args.dir.display());
    } else {
        println!(
            "written to {}: summary.md, report.html, *.csv, {}",
            args.dir.display(),
            plots
                .iter()
                .map(|p| format!("{}.svg{}", p.file, if p.png { " (.png)" } else { "" }))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let (Some(base), Some(path)) = (baseline, &args.baseline) {
        let name = path.display().to_string();
        let compared = markdown::comparison(&sweep, &base, &name);
        let file = args.dir.join("comparison.md");
        std::fs::write(&file, &compared)?;
        println!("{compared}");
        println!("written to {}", file.display());
    }
    Ok(())
}
