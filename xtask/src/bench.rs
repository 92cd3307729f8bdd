//! `cargo xtask bench`: every filter at every list size through `egress-bench run`, with a
//! time budget per run; then `egress-bench report` renders results.json as CSV files,
//! summary.md and plots.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use records::{Record, RunStatus, SweepResults, SweepRun};
use serde_json::Value;

use crate::setup::{self, cargo, exec, root};

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
    /// Prefix-length mixes of the generated lists (default, hosts, uniform).
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
    /// iptables back-end (legacy, as in the published benchmarks, or nft).
    #[arg(long, default_value = "legacy")]
    pub backend: String,
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
}

/// How the sweep treats each filter, from `egress-bench filters --json` (the harness's
/// registry): the one place a filter's role is written down.
struct Registry(Vec<Value>);

impl Registry {
    fn read(binary: &Path) -> Result<Self> {
        let out = Command::new(binary)
            .args(["filters", "--json"])
            .output()
            .context("asking egress-bench for its filters")?;
        anyhow::ensure!(out.status.success(), "egress-bench filters --json failed");
        Ok(Self(serde_json::from_slice(&out.stdout)?))
    }

    /// The registry entry of the filter a label names (`tcbpf-empty@clsact`, `ipset/hosts`).
    fn entry(&self, label: &str) -> Option<&Value> {
        let name = label.split(['@', '/']).next().unwrap_or(label);
        self.0.iter().find(|d| d["name"] == name)
    }

    /// A flag of the filter a label names.
    fn flag(&self, label: &str, key: &str) -> bool {
        self.entry(label).is_some_and(|d| d[key] == true)
    }

    /// A filter a user would install, attached the default way.
    fn is_engine(&self, label: &str) -> bool {
        !label.contains('@') && self.entry(label).is_some_and(|d| d["role"] == "engine")
    }

    fn is_reference(&self, label: &str) -> bool {
        self.entry(label).is_some_and(|d| d["role"] == "reference")
    }

    /// Benchmark-only variants and other attach modes run at the largest size only.
    fn largest_only(&self, label: &str) -> bool {
        label.contains('@') || self.flag(label, "largest_only")
    }

    /// The default sweep's filters: every variant, then the other labels it is run under.
    fn sweep_filters(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|d| {
                let also = d["sweep_also"].as_array().cloned().unwrap_or_default();
                std::iter::once(d["name"].clone()).chain(also)
            })
            .filter_map(|label| label.as_str().map(ToOwned::to_owned))
            .collect()
    }

    /// The scale test's filters: every engine and reference loader.
    fn scale_filters(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|d| d["scale"] == true)
            .filter_map(|d| d["name"].as_str().map(ToOwned::to_owned))
            .collect()
    }
}

/// Sizes of the scale test.
const SCALE_SIZES: [u64; 3] = [10_000_000, 50_000_000, 100_000_000];

/// The largest size the scale test runs reference loaders at: their ratio to the engine
/// holds from 10M to 50M (0.21x and 0.25x for ipset, 0.84x and 0.78x for tcbpf here), and at
/// 100M they would take ten of the sweep's forty minutes.
const SCALE_REFERENCE_MAX: u64 = 50_000_000;

/// At scale, the send path (which loads the list a second time, into the sink namespace) is
/// measured only where the load is projected to take at most this long.
const SCALE_SEND_PATH_MAX_LOAD: Duration = Duration::from_secs(100);

struct Job {
    filter: String,
    label: String,
    size: u64,
    mix: String,
    repeat: u32,
    send_path: bool,
    /// Whether the run also applies the live-update feed.
    updates: bool,
}

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
    let registry = Registry::read(&binary)?;

    let filters = if options.scale {
        registry.scale_filters()
    } else {
        options
            .filters
            .clone()
            .unwrap_or_else(|| registry.sweep_filters())
    };
    let repeats = if options.scale { 1 } else { options.repeats };
    let (sizes, mixes, family) = if options.scale {
        (
            SCALE_SIZES.to_vec(),
            vec!["default".into(), "hosts".into()],
            "4".to_owned(),
        )
    } else if options.full {
        let mut sizes = options.sizes.clone();
        sizes.push(10_000_000);
        (
            sizes,
            vec!["default".into(), "hosts".into(), "uniform".into()],
            "both".to_owned(),
        )
    } else if options.cidrs.is_some() {
        (vec![0], vec!["default".into()], options.family.clone())
    } else {
        (
            options.sizes.clone(),
            options.mix.clone(),
            options.family.clone(),
        )
    };
    let mut jobs = Vec::new();
    for mix in &mixes {
        for &size in &sizes {
            for repeat in 0..repeats {
                let largest = sizes.last() == Some(&size);
                for filter in filters
                    .iter()
                    .filter(|f| largest || !registry.largest_only(f))
                    .filter(|f| {
                        !(options.scale
                            && (mix != "default" || size > SCALE_REFERENCE_MAX)
                            && registry.is_reference(f))
                    })
                {
                    let label = if mix == "default" {
                        filter.clone()
                    } else {
                        format!("{filter}/{mix}")
                    };
                    let send_path = !options.no_send_path
                        && repeat == 0
                        && registry.flag(filter, "send_path")
                        && !(options.scale && mix != "default");
                    // Live updates: every engine, once, at the largest size.
                    let updates = largest
                        && repeat == 0
                        && !options.scale
                        && options.update_seconds > 0.0
                        && registry.is_engine(filter);
                    jobs.push(Job {
                        filter: filter.clone(),
                        label,
                        size,
                        mix: mix.clone(),
                        repeat,
                        send_path,
                        updates,
                    });
                }
            }
        }
    }
    let started = Instant::now();
    // Per label, why larger sizes are not run: a failure or a run over budget at a size.
    let mut stopped: HashMap<String, String> = HashMap::new();
    // Per label, the last (entries, load seconds) measured: the scale test projects from it.
    let mut last_load: HashMap<String, (u64, f64)> = HashMap::new();
    let memory_at_start = mem_available();
    let mut runs = Vec::new();
    let total = jobs.len();
    let bar = progress_bar(total);
    let runner = Runner {
        binary: &binary,
        registry: &registry,
        options,
        family: &family,
        bar: &bar,
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
        let budget = Duration::from_secs(
            if options.scale {
                options.budget + 5 * job.size / 1_000_000
            } else {
                options.budget
            } + measuring_seconds(job, options, &registry),
        );
        if options.scale
            && let Some((size, seconds)) = last_load.get(&job.label)
        {
            #[expect(clippy::cast_precision_loss, reason = "a projection")]
            let projected = seconds * job.size as f64 / *size as f64 * 1.1;
            if job.send_path && projected > SCALE_SEND_PATH_MAX_LOAD.as_secs_f64() {
                say(
                    &bar,
                    format!(
                        "{progress}: load projected at {projected:.0} s: the send path (a second load) is left out"
                    ),
                );
                job.send_path = false;
            }
            let whole = projected * if job.send_path { 2.0 } else { 1.0 } + 30.0;
            if whole > budget.as_secs_f64() {
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
        say(
            &bar,
            format!("{progress} ({})", eta(started.elapsed(), i, total)),
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
                }
                // A list read from a file: its size is what was loaded.
                let size = if job.size == 0 {
                    record.list.loaded_entries as u64
                } else {
                    job.size
                };
                SweepRun::finished(&job.label, size, *record)
            }
            Outcome::Failed { stderr, exit } => {
                let run = SweepRun::failed(&job.label, job.size, &stderr, &exit);
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
        if options.scale { 1 } else { options.repeats },
        options.budget,
        if options.scale {
            " plus 5 s per million entries (scale test: distinct entries, default and hosts mixes, \
             reference loaders on the default mix to 50M, send path where the load takes <= 100 s)"
        } else {
            ""
        }
    );
    let results = SweepResults {
        description,
        options: format!("{options:?}"),
        runs: runs.to_vec(),
    };
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    Ok(())
}

/// A progress bar of the sweep's runs on stderr (hidden when stderr is not a terminal: then
/// the lines printed through [`say`] are the progress).
fn progress_bar(total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} runs, {elapsed} so far, about {eta} left: {msg}",
        )
        .expect("a valid template"),
    );
    bar
}

/// Prints a line above the progress bar, or to stderr when there is no bar.
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn eta(elapsed: Duration, done: usize, total: usize) -> String {
    if done == 0 {
        return "estimating time left".into();
    }
    // Sizes grow tenfold, so later runs take longer: this is a lower bound.
    let left = elapsed.as_secs_f64() / done as f64 * (total - done) as f64;
    format!(
        "{:.0} s so far, at least {left:.0} s left",
        elapsed.as_secs_f64()
    )
}

enum Outcome {
    Done(Box<Record>),
    /// egress-bench failed: its last lines on stderr and its exit status.
    Failed {
        stderr: Vec<String>,
        exit: String,
    },
    OverBudget,
}

/// `MemAvailable` in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// The kernel frees a big map or set after its file is closed, in the background: wait (up to
/// two minutes) until memory is back near where the sweep started, so one run's leftovers do
/// not count against the next one's memory checks.
fn wait_for_memory(at_start: Option<u64>) {
    let Some(start) = at_start else { return };
    let began = Instant::now();
    let deadline = began + Duration::from_secs(120);
    while mem_available().is_some_and(|now| now < start / 100 * 95) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    if began.elapsed() > Duration::from_secs(2) {
        eprintln!(
            "  waited {:.0} s for the kernel to give back the last run's memory",
            began.elapsed().as_secs_f64()
        );
    }
}

/// Whether a run times the eBPF program: the program is the same whatever fills its maps, so
/// once per size and table.
fn times_program(job: &Job, registry: &Registry) -> bool {
    registry.flag(&job.filter, "program_cost") && !job.filter.contains('@') && job.repeat == 0
}

/// Seconds a run's measurements take beyond the load, with room to spare: the send path
/// (with and without the filter, and during the update feed), paired traffic, the update
/// feed and the program's timing. Added to the budget, so that only a slow load or a hang
/// stops a run.
fn measuring_seconds(job: &Job, options: &Options, registry: &Registry) -> u64 {
    let mut seconds = 0;
    if job.send_path {
        // One and many destinations and the none-vs-none check, plus a second load.
        seconds += 40;
        if !options.scale {
            // Paired traffic: a none-vs-none check and four cases, N-A-A-N rounds.
            seconds += 45;
        }
        if job.updates {
            seconds += 20;
        }
    }
    if job.updates {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "seconds of a feed"
        )]
        let feed = options.update_seconds.ceil() as u64;
        seconds += feed + 15;
    }
    if times_program(job, registry) {
        seconds += 20;
    }
    seconds
}

/// What every run of a sweep shares.
struct Runner<'a> {
    binary: &'a Path,
    registry: &'a Registry,
    options: &'a Options,
    family: &'a str,
    bar: &'a ProgressBar,
}

fn one_run(runner: &Runner<'_>, job: &Job, budget: Duration, path: &Path) -> Result<Outcome> {
    let Runner {
        binary,
        registry,
        options,
        family,
        bar,
    } = *runner;
    let mut cmd = Command::new(binary);
    // `filter@clsact` runs an eBPF filter with the clsact attach instead of TCX.
    let (filter, attach) = job.filter.split_once('@').unwrap_or((&job.filter, "auto"));
    cmd.args([
        "run",
        "--filter",
        filter,
        "--attach",
        attach,
        "--family",
        family,
        "--backend",
        &options.backend,
    ]);
    match &options.cidrs {
        Some(file) => cmd.arg("--cidrs").arg(file).arg("--exclude-conflicting"),
        None => cmd.args(["--rules", &job.size.to_string(), "--mix", &job.mix]),
    };
    if job.send_path {
        cmd.arg("--send-path");
        // The scale test's question is per-packet cost; throughput and latency stay with
        // the default sweep's sizes.
        if !options.scale {
            cmd.arg("--traffic");
        }
    }
    if job.updates {
        cmd.args(["--updates", "max", "--update-duration"])
            .arg(options.update_seconds.to_string());
    }
    // The program is the same whatever fills its maps: time it once per size and table.
    if !times_program(job, registry) {
        cmd.arg("--no-program-cost");
    }
    let mut child = cmd
        .arg("--output")
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting egress-bench")?;
    // Passed through above the progress bar, and stderr's last lines kept: a failed run's
    // record names the error.
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let out_bar = bar.clone();
    let forward = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            say(&out_bar, line);
        }
    });
    let err_bar = bar.clone();
    let tail = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut last: Vec<String> = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            say(&err_bar, line.clone());
            last.push(line);
            if last.len() > records::STDERR_TAIL_LINES {
                last.remove(0);
            }
        }
        last
    });
    let deadline = Instant::now() + budget;
    loop {
        if let Some(status) = child.try_wait()? {
            let _ = forward.join();
            if !status.success() {
                let stderr = tail.join().unwrap_or_default();
                return Ok(Outcome::Failed {
                    stderr,
                    exit: status.to_string(),
                });
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let record: Record = serde_json::from_str(&text)
                .with_context(|| format!("reading the record {}", path.display()))?;
            return Ok(Outcome::Done(Box::new(record)));
        }
        if Instant::now() > deadline {
            // SIGTERM lets egress-bench remove its namespaces before it exits.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            return Ok(Outcome::OverBudget);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
