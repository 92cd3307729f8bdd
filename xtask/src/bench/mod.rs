//! `cargo xtask bench`: every filter at every list size through `egress-bench run`, with a
//! time budget per run; then `egress-bench report` renders results.json as CSV files,
//! summary.md and plots.

mod budget;
mod plan;
mod progress;
mod runner;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use records::{RunStatus, SweepResults, SweepRun};

use crate::setup::{self, cargo, exec, root};
use budget::{budget, expected_seconds, memory_shortfall, project, wait_for_memory};
use plan::{Registry, plan};
use progress::{eta, progress_bar, say};
use runner::{Outcome, Runner, one_run};

/// Options of `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct Options {
    /// Filters to run, in order (`name` or `name@attach-mode`); default: every filter of
    /// `egress-bench filters`, each also under the labels it lists in `sweep_also`.
    #[arg(long, value_delimiter = ',')]
    pub filters: Option<Vec<String>>,
    /// List sizes (entries per family), in increasing order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,100,1000,10000,100000,1000000"
    )]
    pub sizes: Vec<u64>,
    /// Runs of each filter at each size; the send path and the program cost (each already
    /// the median of several runs inside one) are measured in the first only.
    #[arg(long, default_value_t = 2)]
    pub repeats: u32,
    /// Prefix-length mixes of the generated lists (default, hosts, uniform, feed).
    #[arg(long, value_delimiter = ',', default_value = "default")]
    pub mix: Vec<String>,
    /// Address families (4, 6 or both).
    #[arg(long, default_value = "4")]
    pub family: String,
    /// A real deny-list instead of generated ones (sizes and mixes are then ignored).
    #[arg(long)]
    pub cidrs: Option<PathBuf>,
    /// Up to 10M entries, both families, every mix.
    #[arg(long)]
    pub full: bool,
    /// A first look in about four minutes: every engine and profile (and the baseline and
    /// the eBPF attach floor) at 1k and 100k entries, once, the send path (one and many
    /// destinations) and the update feed at the largest size each holds; no traffic, no
    /// reference loaders, no cold lookups. The same outputs as the full sweep.
    #[arg(long, conflicts_with_all = ["full", "scale", "cidrs"])]
    pub quick: bool,
    /// iptables back-end (legacy, as in the published benchmarks, or nft).
    #[arg(long, default_value = "legacy")]
    pub backend: xtables::Backend,
    /// Skip the data-path measurements (send-path cost per packet, throughput, CPU, latency).
    #[arg(long)]
    pub no_send_path: bool,
    /// Seconds of the live-update feed (single-entry adds and removes under probes) each
    /// engine gets at the largest size; 0 leaves it out.
    #[arg(long, default_value_t = 3.0)]
    pub update_seconds: f64,
    /// The breaking-point test: 10M, 50M and 100M distinct IPv4 entries for every engine
    /// (default and hosts mixes; reference loaders on the default mix to 50M), with a time budget
    /// that grows with the size and runs skipped when the last size projects over it.
    #[arg(long, conflicts_with_all = ["full", "cidrs"])]
    pub scale: bool,
    /// Seconds one run may take besides its measurements (with --scale: plus 5 s per million
    /// entries); a filter over budget is not run at larger sizes. Each run also gets the time
    /// its measurements need (send path, traffic, update feed, program cost).
    #[arg(long, default_value_t = 60)]
    pub budget: u64,
    /// Output folder (default: `bench-results/<unix time>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The cluster benchmark instead of the sweep: a 3-member etcd cluster on loopback and
    /// --nodes node testbeds, each with its own `egress-bench agent` keeping `tcbpf-dir` in
    /// step; set-up time (publish to every node enforcing), single-entry propagation, the
    /// same through faults, violations counted, at 10k, 100k and 1M entries
    /// (`egress-bench cluster`). Its record goes into results.json (beside a sweep's, with
    /// the same --out) and summary.md gets a "Cluster" table.
    #[arg(long, conflicts_with_all = ["full", "scale", "cidrs", "quick"])]
    pub cluster: bool,
    /// Nodes of the cluster benchmark.
    #[arg(long, default_value_t = 8, requires = "cluster")]
    pub nodes: usize,
    /// Run as if the machine had this many GiB to spare: each run's memory cgroup is limited
    /// to it (kernel memory charged to the run included) and the projections count with it.
    /// Default: 7/8 of MemAvailable at each run's start.
    #[arg(long, value_name = "GIB")]
    pub memory_limit: Option<f64>,
}

pub fn run(options: &Options) -> Result<()> {
    setup::prerequisites()?;
    setup::require_root("the benchmark")?;
    eprintln!("xtask: building egress-bench (release)");
    exec(cargo().args(["build", "--release", "--quiet", "-p", "egress-bench"]))?;
    let binary = root().join("target/release/egress-bench");
    let out = options.out.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        root().join("bench-results").join(now.to_string())
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let _ = Command::new(&binary).arg("cleanup").status();
    if options.cluster {
        eprintln!(
            "xtask: the cluster benchmark, {} nodes, into {}",
            options.nodes,
            out.display()
        );
        return exec(
            Command::new(&binary)
                .args(["cluster", "--nodes", &options.nodes.to_string(), "--out"])
                .arg(&out),
        );
    }
    let registry = Registry::read(&binary)?;

    let plan::Plan { mut jobs, family } = plan(options, &registry);
    let started = Instant::now();
    // Per label, why larger sizes are not run: a failure or a run over budget at a size.
    let mut stopped: HashMap<String, String> = HashMap::new();
    // Per label, the last (entries, load seconds) measured: the scale test projects from it.
    let mut last_load: HashMap<String, (u64, f64)> = HashMap::new();
    // Per label, the last (entries, bytes) a run needed at once: the projection every loader,
    // reference tools included, gets before it starts.
    let mut last_memory: HashMap<String, (u64, u64)> = HashMap::new();
    let memory_at_start = filter_core::memory::available();
    let expected: Vec<f64> = jobs
        .iter()
        .map(|job| expected_seconds(job, options, &registry))
        .collect();
    let mut runs = Vec::new();
    let total = jobs.len();
    let bar = progress_bar(total);
    let runner = Runner {
        binary: &binary,
        registry: &registry,
        options,
        family: &family,
        bar: &bar,
        cages: std::cell::Cell::new(0),
    };
    for (i, job) in jobs.iter_mut().enumerate() {
        bar.set_position(i as u64);
        bar.set_message(format!("{} at {} entries", job.label, job.size));
        let progress = format!(
            "[{}/{}] {} at {} entries",
            i + 1,
            total,
            job.label,
            job.size
        );
        if let Some(why) = stopped.get(&job.label) {
            say(&bar, format!("{progress}: not run: {why}"));
            runs.push(SweepRun::stopped(
                &job.label,
                job.size,
                RunStatus::NotRun,
                why.clone(),
            ));
            continue;
        }
        let budget = budget(job, options, &registry);
        if options.scale
            && let Some((size, seconds)) = last_load.get(&job.label)
        {
            let projection = project((*size, *seconds), job.size, job.send_path, budget);
            let (projected, whole) = (projection.load, projection.whole);
            if job.send_path && !projection.send_path {
                say(
                    &bar,
                    format!(
                        "{progress}: load projected at {projected:.0} s: the send path (a second load) is left out"
                    ),
                );
                job.send_path = false;
            }
            if projection.over_budget {
                let why = format!(
                    "skipped: projected {whole:.0} s (load {seconds:.0} s at {size} entries) over the {} s budget",
                    budget.as_secs()
                );
                say(&bar, format!("{progress}: {why}"));
                runs.push(SweepRun::stopped(
                    &job.label,
                    job.size,
                    RunStatus::OverBudget,
                    why.clone(),
                ));
                stopped.insert(
                    job.label.clone(),
                    format!("skipped at {} entries", job.size),
                );
                continue;
            }
        }
        wait_for_memory(memory_at_start);
        if let Some(&last) = last_memory.get(&job.label)
            && let Some(why) = memory_shortfall(last, job.size, runner.memory_to_spare())
        {
            say(&bar, format!("{progress}: {why}"));
            runs.push(SweepRun::stopped(
                &job.label,
                job.size,
                RunStatus::NotRun,
                why,
            ));
            stopped.insert(
                job.label.clone(),
                format!("would not fit in memory at {} entries", job.size),
            );
            continue;
        }
        say(
            &bar,
            format!(
                "{progress} ({})",
                eta(
                    started.elapsed(),
                    expected[..i].iter().sum(),
                    expected[i..].iter().sum()
                )
            ),
        );
        let path = out.join(format!(
            "{}-{}-{i}.json",
            job.label.replace('/', "-"),
            job.size
        ));
        let run = match one_run(&runner, job, budget, &path)? {
            Outcome::Done(record) => {
                if let Some(figures) = &record.figures {
                    last_load.insert(job.label.clone(), (job.size, figures.load_seconds));
                    let kernel = figures
                        .stats
                        .kernel_memory
                        .as_ref()
                        .map(|m| m.bytes)
                        .or_else(|| {
                            figures
                                .kernel_allocations_bytes()
                                .and_then(|b| u64::try_from(b).ok())
                        })
                        .unwrap_or(0);
                    last_memory.insert(
                        job.label.clone(),
                        (job.size, record.peak_memory.most_bytes() + kernel),
                    );
                }
                // A list read from a file: its size is what was loaded.
                let size = if job.size == 0 {
                    record.list.loaded_entries as u64
                } else {
                    job.size
                };
                SweepRun::finished(&job.label, size, *record)
            }
            Outcome::Failed {
                stderr,
                exit,
                memory_limit,
            } => {
                let mut run = SweepRun::failed(&job.label, job.size, &stderr, &exit);
                if let Some(limit) = memory_limit {
                    run.error = Some(format!(
                        "{limit}: {}",
                        run.error.as_deref().unwrap_or_default()
                    ));
                }
                let why = run.error.clone().unwrap_or_default();
                say(&bar, format!("  failed: {why}"));
                // A failure is a finding (a limit reached): larger sizes would fail the same way.
                if options.scale {
                    stopped.insert(
                        job.label.clone(),
                        format!("failed at {} entries ({why})", job.size),
                    );
                }
                run
            }
            Outcome::OverBudget => {
                let why = format!("stopped at the {} s budget", budget.as_secs());
                say(&bar, format!("  {why}: not run at larger sizes"));
                stopped.insert(
                    job.label.clone(),
                    format!(
                        "over the {} s budget at {} entries",
                        budget.as_secs(),
                        job.size
                    ),
                );
                SweepRun::stopped(&job.label, job.size, RunStatus::OverBudget, why)
            }
        };
        runs.push(run);
        // Rewritten after every run: a sweep cut short keeps what it measured.
        write_results(&out, options, &family, &runs)?;
    }
    bar.finish_and_clear();
    write_results(&out, options, &family, &runs)?;
    exec(Command::new(&binary).arg("report").arg(&out))?;
    eprintln!(
        "xtask: sweep done in {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn write_results(out: &Path, options: &Options, family: &str, runs: &[SweepRun]) -> Result<()> {
    let description = format!(
        "Lists: {}; family {family}; iptables back-end {}; {} run(s) per cell; time budget {} s per run{}.",
        options.cidrs.as_ref().map_or_else(
            || "generated (seed 1), prefix mix given after the filter name when not the default 89/10/1".to_owned(),
            |p| p.display().to_string()
        ),
        options.backend,
        if options.scale || options.quick {
            1
        } else {
            options.repeats
        },
        options.budget,
        if options.quick {
            " (quick look: 1k and 100k, send path and update feed at the largest size each \
             filter holds, no traffic; `cargo xtask bench` for the full sweep)"
        } else if options.scale {
            " plus 5 s per million entries (scale test: distinct entries, default and hosts mixes, \
             reference loaders on the default mix to 50M, send path where the load takes <= 100 s)"
        } else {
            ""
        }
    );
    // A cluster benchmark run into the same folder keeps its record.
    let cluster = std::fs::read_to_string(out.join("results.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<SweepResults>(&text).ok())
        .and_then(|earlier| earlier.cluster);
    let results = SweepResults {
        description,
        options: format!("{options:?}"),
        runs: runs.to_vec(),
        cluster,
    };
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    Ok(())
}
