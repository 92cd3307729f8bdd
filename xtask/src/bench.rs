//! `cargo xtask bench`: every filter at every list size through `egress-bench run`, with a
//! time budget per run, then `results.json` and `summary.md` in the output folder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

use crate::setup::{self, cargo, exec, root};

/// Options of `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct Options {
    /// Filters to run, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "none,iptables,iptables-restore,ipset,ipset-restore,tcbpf,tcbpf-per-entry"
    )]
    pub filters: Vec<String>,
    /// List sizes (entries), in increasing order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,10000,100000,1000000"
    )]
    pub sizes: Vec<u64>,
    /// Runs of each filter at each size.
    #[arg(long, default_value_t = 1)]
    pub repeats: u32,
    /// Prefix-length mix of the generated lists.
    #[arg(long, default_value = "default")]
    pub mix: String,
    /// iptables back-end (legacy, as in the published benchmarks, or nft).
    #[arg(long, default_value = "legacy")]
    pub backend: String,
    /// Seconds one run may take; a filter over budget is not run at larger sizes.
    #[arg(long, default_value_t = 120)]
    pub budget: u64,
    /// Output folder (default: bench-results/<unix time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The yardstick of each engine's load time, measured in the same sweep.
const REFERENCES: [(&str, &str); 3] = [
    ("iptables", "iptables-restore"),
    ("ipset", "ipset-restore"),
    ("tcbpf", "tcbpf-per-entry"),
];

pub fn run(options: &Options) -> Result<()> {
    setup::prerequisites()?;
    setup::require_root("the benchmark")?;
    eprintln!("xtask: building egress-bench (release)");
    exec(cargo().args(["build", "--release", "--quiet", "-p", "harness"]))?;
    let binary = root().join("target/release/egress-bench");
    let out = options.out.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        root().join("bench-results").join(now.to_string())
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let _ = Command::new(&binary).arg("cleanup").status();

    let total = options.filters.len() * options.sizes.len() * options.repeats as usize;
    let started = Instant::now();
    let mut done = 0;
    let mut over_budget: BTreeMap<String, u64> = BTreeMap::new();
    let mut records = Vec::new();
    for &size in &options.sizes {
        for repeat in 0..options.repeats {
            for filter in &options.filters {
                done += 1;
                if let Some(limit) = over_budget.get(filter) {
                    eprintln!(
                        "[{done}/{total}] {filter} at {size}: skipped (over budget at {limit})"
                    );
                    records.push(serde_json::json!({"filter": filter, "size": size, "status": "over budget"}));
                    continue;
                }
                let eta = eta(started.elapsed(), done - 1, total);
                eprintln!(
                    "[{done}/{total}] {filter} at {size} entries, run {} ({eta})",
                    repeat + 1
                );
                let path = out.join(format!("{filter}-{size}-{repeat}.json"));
                match one_run(&binary, filter, size, options, &path)? {
                    Outcome::Done(record) => records.push(serde_json::json!({"filter": filter, "size": size, "status": "ok", "record": record})),
                    Outcome::Failed(why) => {
                        eprintln!("  failed: {why}");
                        records.push(serde_json::json!({"filter": filter, "size": size, "status": "failed", "error": why}));
                    }
                    Outcome::OverBudget => {
                        eprintln!("  over the {} s budget: not run at larger sizes", options.budget);
                        over_budget.insert(filter.clone(), size);
                        records.push(serde_json::json!({"filter": filter, "size": size, "status": "over budget"}));
                    }
                }
            }
        }
    }
    let results = serde_json::json!({ "options": format!("{options:?}"), "runs": records });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    let summary = summary(&records, options);
    std::fs::write(out.join("summary.md"), &summary)?;
    println!("{summary}");
    println!(
        "results in {} ({:.0} s)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn eta(elapsed: Duration, done: usize, total: usize) -> String {
    if done == 0 {
        return "estimating time left".into();
    }
    // Sizes grow tenfold, so later runs dominate; this underestimates, and says so.
    let left = elapsed.as_secs_f64() / done as f64 * (total - done) as f64;
    format!("at least {left:.0} s left")
}

enum Outcome {
    Done(Value),
    Failed(String),
    OverBudget,
}

fn one_run(
    binary: &Path,
    filter: &str,
    size: u64,
    options: &Options,
    path: &Path,
) -> Result<Outcome> {
    let mut child = Command::new(binary)
        .args([
            "run",
            "--filter",
            filter,
            "--rules",
            &size.to_string(),
            "--mix",
            &options.mix,
        ])
        .args(["--backend", &options.backend, "--output"])
        .arg(path)
        // The program is the same whatever fills its maps: time it once per size.
        .args(if filter == "tcbpf" {
            &[][..]
        } else {
            &["--no-program-cost"][..]
        })
        .stdout(std::process::Stdio::inherit())
        .spawn()
        .context("starting egress-bench")?;
    let deadline = Instant::now() + Duration::from_secs(options.budget);
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                return Ok(Outcome::Failed(format!(
                    "egress-bench exited with {status}"
                )));
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            return Ok(Outcome::Done(serde_json::from_str(&text)?));
        }
        if Instant::now() > deadline {
            // SIGTERM lets egress-bench remove its testbed before it exits.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            return Ok(Outcome::OverBudget);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    (!values.is_empty()).then(|| values[values.len() / 2])
}

fn summary(records: &[Value], options: &Options) -> String {
    // (filter, size) -> figures of every ok run
    let mut table: BTreeMap<(u64, usize), (String, Vec<Value>, bool)> = BTreeMap::new();
    for r in records {
        let filter = r["filter"].as_str().unwrap_or("?").to_owned();
        let size = r["size"].as_u64().unwrap_or(0);
        let order = options
            .filters
            .iter()
            .position(|f| *f == filter)
            .unwrap_or(usize::MAX);
        let entry = table
            .entry((size, order))
            .or_insert_with(|| (filter, Vec::new(), false));
        match r["status"].as_str() {
            Some("ok") => entry.1.push(r["record"]["figures"].clone()),
            Some("over budget") => entry.2 = true,
            _ => {}
        }
    }
    let load_median = |filter: &str, size: u64| -> Option<f64> {
        median(
            records
                .iter()
                .filter(|r| r["filter"] == filter && r["size"] == size && r["status"] == "ok")
                .filter_map(|r| r["record"]["figures"]["load_seconds"].as_f64())
                .collect(),
        )
    };
    let mut md = String::new();
    let _ = writeln!(md, "# Load benchmark\n");
    let _ = writeln!(
        md,
        "Generated lists (mix {}, seed 1), IPv4, iptables back-end {}; {} run(s) per cell, medians. \
         Enforcement: from the start of the load until a probe stream to a denied address stopped getting through.\n",
        options.mix, options.backend, options.repeats
    );
    let _ = writeln!(
        md,
        "| filter | entries | load (s) | enforced (s) | teardown (s) | kernel memory (MiB) | load vs reference |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for ((size, _), (filter, runs, over)) in &table {
        if runs.is_empty() {
            let why = if *over { "over budget" } else { "failed" };
            let _ = writeln!(md, "| {filter} | {size} | {why} | | | | |");
            continue;
        }
        let pick = |key: &str| median(runs.iter().filter_map(|f| f[key].as_f64()).collect());
        let memory = median(
            runs.iter()
                .filter_map(|f| {
                    f["stats"]["kernel_memory"]["bytes"]
                        .as_f64()
                        .or_else(|| f["kernel_allocations_delta_bytes"].as_f64())
                })
                .collect(),
        );
        let ratio = REFERENCES
            .iter()
            .find(|(engine, _)| engine == filter)
            .and_then(|(_, reference)| {
                Some(load_median(filter, *size)? / load_median(reference, *size)?)
            })
            .map_or_else(String::new, |r| format!("{r:.2}x"));
        let fmt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
        };
        let _ = writeln!(
            md,
            "| {filter} | {size} | {} | {} | {} | {} | {ratio} |",
            fmt(pick("load_seconds"), 3),
            fmt(pick("enforcement_seconds"), 3),
            fmt(pick("teardown_seconds"), 3),
            fmt(memory.map(|b| b / f64::from(1 << 20)), 1),
        );
    }
    program_costs(&mut md, records);
    let _ = writeln!(
        md,
        "\nKernel memory: ipset's own set size where the filter reports it, otherwise the change in \
         slab + vmalloc + per-CPU memory across the load (approximate)."
    );
    md
}

/// The eBPF program's own time per run (BPF_PROG_TEST_RUN), per list size.
fn program_costs(md: &mut String, records: &[Value]) {
    let mut rows: BTreeMap<u64, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for r in records.iter().filter(|r| r["status"] == "ok") {
        let size = r["size"].as_u64().unwrap_or(0);
        for cost in r["record"]["figures"]["program_costs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(case), Some(ns)) = (cost["case"].as_str(), cost["median_ns"].as_f64()) {
                rows.entry(size)
                    .or_default()
                    .entry(case.to_owned())
                    .or_default()
                    .push(ns);
            }
        }
    }
    let Some(cases) = rows
        .values()
        .next()
        .map(|c| c.keys().cloned().collect::<Vec<_>>())
    else {
        return;
    };
    let _ = writeln!(
        md,
        "\n## tcbpf program cost per run (BPF_PROG_TEST_RUN, ns, median)\n\n\
         Warm cache: one packet repeated. The cold rows look up 64 pseudo-random IPv4 addresses per \
         run; the per-lookup row is their difference divided by 64.\n"
    );
    let _ = writeln!(md, "| entries | {} |", cases.join(" | "));
    let _ = writeln!(md, "|---:|{}", "---:|".repeat(cases.len()));
    for (size, by_case) in &rows {
        let cells: Vec<String> = cases
            .iter()
            .map(|c| {
                by_case
                    .get(c)
                    .and_then(|v| median(v.clone()))
                    .map_or_else(|| "-".into(), |v| format!("{v:.1}"))
            })
            .collect();
        let _ = writeln!(md, "| {size} | {} |", cells.join(" | "));
    }
}
