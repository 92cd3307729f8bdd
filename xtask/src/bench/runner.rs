//! One run of the sweep: `egress-bench run` as a child, its output passed through, its
//! record read back, stopped at its budget.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use records::Record;

use super::Options;
use super::plan::{Job, Registry};
use super::progress::say;

/// How a run ended.
pub(super) enum Outcome {
    Done(Box<Record>),
    /// egress-bench failed: its last lines on stderr and its exit status.
    Failed {
        stderr: Vec<String>,
        exit: String,
        /// What the run's memory cgroup says when its limit killed something.
        memory_limit: Option<String>,
    },
    OverBudget,
}

/// The share of `MemAvailable` a run's cgroup may take, kernel memory charged to it included.
const CAGE_SHARE: (u64, u64) = (7, 8);

/// A memory cgroup for the next run, limited to [`CAGE_SHARE`] of `MemAvailable`: a list too
/// big for the machine is killed there, never by the machine-wide out-of-memory killer.
/// `None` (said once) where no hierarchy has the memory controller: then the projection
/// alone stands guard.
fn cage(runner: &Runner<'_>) -> Option<testbed::cgroup::MemoryCage> {
    let available = filter_core::memory::available()?;
    let n = runner.cages.get();
    runner.cages.set(n + 1);
    let limit = (available / CAGE_SHARE.1 * CAGE_SHARE.0).min(runner.memory_to_spare()?);
    match testbed::cgroup::MemoryCage::new(&testbed::cgroup::cage_name(n), limit) {
        Ok(cage) => Some(cage),
        Err(e) => {
            if n == 0 {
                say(
                    runner.bar,
                    format!("  runs are not memory-limited: {e} (the projection still applies)"),
                );
            }
            None
        }
    }
}

impl Runner<'_> {
    /// The memory a run may plan for: `MemAvailable`, or `--memory-limit` when lower.
    pub(super) fn memory_to_spare(&self) -> Option<u64> {
        let available = filter_core::memory::available()?;
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "GiB to bytes"
        )]
        let cap = self
            .options
            .memory_limit
            .map_or(u64::MAX, |gib| (gib * f64::from(1 << 30)) as u64);
        Some(available.min(cap))
    }
}

/// What every run of a sweep shares.
pub(super) struct Runner<'a> {
    pub(super) binary: &'a Path,
    pub(super) registry: &'a Registry,
    pub(super) options: &'a Options,
    pub(super) family: &'a str,
    pub(super) bar: &'a ProgressBar,
    /// Memory cgroups made so far (each run has its own).
    pub(super) cages: std::cell::Cell<usize>,
}

pub(super) fn one_run(
    runner: &Runner<'_>,
    job: &Job,
    budget: Duration,
    path: &Path,
) -> Result<Outcome> {
    let Runner {
        binary,
        registry,
        options,
        family,
        bar,
        ..
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
        options.backend.name(),
    ]);
    match &options.cidrs {
        Some(file) => cmd.arg("--cidrs").arg(file).arg("--exclude-conflicting"),
        None => cmd.args(["--rules", &job.size.to_string(), "--mix", &job.mix]),
    };
    if job.send_path {
        cmd.arg("--send-path");
        // The scale test's question is per-packet cost; throughput and latency stay with
        // the default sweep's sizes.
        if !options.scale && !options.quick {
            cmd.arg("--traffic");
        }
        if job.new_flows {
            cmd.arg("--new-flows");
        }
    }
    if job.updates {
        cmd.args(["--updates", "max", "--update-duration"])
            .arg(options.update_seconds.to_string());
    }
    // The program is the same whatever fills its maps: time it once per size and table.
    if !registry.times_program(job) {
        cmd.arg("--no-program-cost");
    }
    let cage = cage(runner);
    if let Some(cage) = &cage {
        cage.enclose(&mut cmd);
    }
    let oom_before = filter_core::oom_kills();
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
                    exit: filter_core::exit_cause(status, oom_before),
                    // Named with its figures where the limit struck, in the run or in a
                    // tool the run started.
                    memory_limit: cage.as_ref().and_then(testbed::cgroup::MemoryCage::verdict),
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
