//! `egress-bench report DIR`: turns a sweep's `results.json` into one CSV per metric,
//! `summary.md` and plots (SVG and PNG), optionally against a baseline sweep.

mod csv;
pub(crate) mod markdown;
mod plot;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

/// Arguments of `egress-bench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A sweep's output folder (with results.json), as written by `cargo xtask bench`.
    pub dir: PathBuf,
    /// Another sweep's folder to compare with.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
}

/// One run of the sweep as results.json has it.
#[derive(Debug, Clone)]
pub struct Run {
    pub filter: String,
    pub size: u64,
    pub status: String,
    pub record: Value,
}

impl Run {
    fn figures(&self) -> &Value {
        &self.record["figures"]
    }

    fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Every run of a sweep, with the order filters were given in.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub runs: Vec<Run>,
    pub filters: Vec<String>,
    pub description: String,
}

/// The median of some numbers (NaN for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

impl Sweep {
    /// Reads `dir/results.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("results.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let json: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let mut filters: Vec<String> = Vec::new();
        let runs: Vec<Run> = json["runs"]
            .as_array()
            .context("results.json has no runs")?
            .iter()
            .map(|r| Run {
                filter: r["filter"].as_str().unwrap_or("?").to_owned(),
                size: r["size"].as_u64().unwrap_or(0),
                status: r["status"].as_str().unwrap_or("?").to_owned(),
                record: r["record"].clone(),
            })
            .collect();
        for run in &runs {
            if !filters.contains(&run.filter) {
                filters.push(run.filter.clone());
            }
        }
        Ok(Self {
            runs,
            filters,
            description: json["description"].as_str().unwrap_or_default().to_owned(),
        })
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
            .map(|r| match r.record["error"].as_str() {
                Some(error) => format!("{}: {error}", r.status),
                None => r.status.clone(),
            })
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
        pick: impl Fn(&Value) -> Option<f64>,
    ) -> Option<f64> {
        let values: Vec<f64> = self
            .ok_runs(filter, size)
            .filter_map(|r| pick(r.figures()))
            .collect();
        (!values.is_empty()).then(|| median(values))
    }

    /// Per filter, the (size, value) points that `pick` finds.
    pub fn series(
        &self,
        pick: impl Fn(&Value) -> Option<f64>,
    ) -> BTreeMap<usize, (String, Vec<(u64, f64)>)> {
        let mut out = BTreeMap::new();
        for (i, filter) in self.filters.iter().enumerate() {
            let points: Vec<(u64, f64)> = self
                .sizes()
                .into_iter()
                .filter_map(|size| self.median_of(filter, size, &pick).map(|v| (size, v)))
                .collect();
            if !points.is_empty() {
                out.insert(i, (filter.clone(), points));
            }
        }
        out
    }
}

/// Load time in seconds.
pub fn load_seconds(f: &Value) -> Option<f64> {
    f["load_seconds"].as_f64()
}

/// Kernel memory in bytes: the filter's own figure, else the meminfo delta.
pub fn memory_bytes(f: &Value) -> Option<f64> {
    f["stats"]["kernel_memory"]["bytes"]
        .as_f64()
        .or_else(|| f["kernel_allocations_delta_bytes"].as_f64())
}

/// The send-path figure for one destination pattern.
pub fn send_path<'a>(f: &'a Value, case: &str) -> &'a Value {
    &f["send_path"][case]
}

/// The median of one `BPF_PROG_TEST_RUN` case, in ns.
pub fn program_cost(f: &Value, case: &str) -> Option<f64> {
    f["program_costs"]
        .as_array()?
        .iter()
        .find(|c| c["case"] == case)?["median_ns"]
        .as_f64()
}

/// Writes every output of `dir` from its results.json.
pub fn report(args: &ReportArgs) -> Result<()> {
    let sweep = Sweep::read(&args.dir)?;
    let baseline = args.baseline.as_deref().map(Sweep::read).transpose()?;
    csv::write_all(&sweep, &args.dir)?;
    let plots = plot::write_all(&sweep, &args.dir)?;
    let summary = markdown::summary(&sweep, baseline.as_ref(), &plots);
    std::fs::write(args.dir.join("summary.md"), &summary)?;
    println!("{summary}");
    println!(
        "written to {}: summary.md, *.csv, {}",
        args.dir.display(),
        plots.join(", ")
    );
    Ok(())
}
