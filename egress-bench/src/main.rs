//! `egress-bench`: load deny-lists into Linux egress filters and measure what they cost.

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod agent;
mod churn;
mod cluster;
mod filters;
mod list;
mod record;
mod remote;
mod report;
mod run;
mod sendpath;
mod sys;
mod system;
mod traffic;
mod updates;

use std::process::ExitCode;

#[cfg(test)]
mod readme;
use clap::{Parser, Subcommand};

/// Measure Linux egress filters (iptables, ipset, nftables, eBPF) loaded with up to millions
/// of CIDRs, inside network namespaces of its own.
#[derive(Debug, Parser)]
#[command(name = "egress-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a testbed, load a list into one filter, prove it works, and record load,
    /// enforcement and teardown times and kernel memory.
    Run(run::RunArgs),
    /// Remove what killed benchmark runs left behind (their namespaces, links, chains, sets,
    /// tables and tc filters), saying what it left alone: live runs' objects and `egb-*`
    /// objects no run claimed (another program's filter), unless --unclaimed.
    Cleanup(CleanupArgs),
    /// Render a sweep's results.json (from `cargo xtask bench`) as CSV files, summary.md,
    /// plots and report.html, optionally against a baseline sweep.
    Report(report::ReportArgs),
    /// List the filters and how the sweep treats each (`--json` for `cargo xtask bench`).
    Filters(filters::FiltersArgs),
    /// Write a generated deny-list to standard output, one CIDR per line: the list `run
    /// --rules N` would load (same seed, mix and family), for other tools or `--cidrs`.
    Generate(list::GenerateArgs),
    /// Run the receiving side of two-host mode (`run --server`): UDP counting, UDP and TCP
    /// echo, and a control port.
    Serve(remote::ServeArgs),
    /// Keep a filter equal to a deny-list held in etcd, chunk by chunk, until SIGINT or
    /// SIGTERM; the filter outlives the agent and a restarted agent adopts it.
    Agent(agent::AgentArgs),
    /// Write a deny-list to etcd as chunks under a prefix (for `agent`), replacing the
    /// previous list's chunks.
    Publish(agent::PublishArgs),
    /// A cluster on one machine: an etcd cluster and K nodes (testbeds with an agent each);
    /// set-up and propagation times to every node's kernel, through faults, with
    /// violations counted (`cargo xtask bench --cluster` runs it).
    Cluster(cluster::ClusterArgs),
    /// For the crash tests: keep one filter changing in this namespace until killed.
    #[command(hide = true)]
    Churn(churn::ChurnArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Cleanup(args) => cleanup(&args),
        Command::Report(args) => report::report(&args),
        Command::Serve(args) => remote::serve(&args),
        Command::Generate(args) => list::write_generated(&args),
        Command::Churn(args) => churn::churn(&args),
        Command::Agent(args) => agent::agent(&args),
        Command::Cluster(args) => cluster::cluster(&args),
        Command::Publish(args) => agent::publish(&args),
        Command::Filters(args) => filters::print(&args),
    };
    testbed::exit_if_interrupted();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("egress-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Arguments of `egress-bench cleanup`.
#[derive(Debug, clap::Args)]
struct CleanupArgs {
    /// Also remove `egb-*` objects that no benchmark run claims: left by runs from before run
    /// claims, or made by another program embedding the engine crates (its filter goes too).
    #[arg(long)]
    unclaimed: bool,
}

fn cleanup(args: &CleanupArgs) -> anyhow::Result<()> {
    let here = filter_core::NetNs::current();
    let list = |prefix: &str| filters::REGISTRY.leftovers(&here, prefix);
    let remove = |prefix: &str| filters::remove_leftovers(prefix);
    let report = testbed::cleanup(
        &testbed::HostObjects {
            list: &list,
            remove: &remove,
        },
        args.unclaimed,
    )?;
    // Memory cgroups of sweeps that were killed: only those whose process is gone, and empty.
    let cages = testbed::cgroup::remove_dead_cages()?;
    for cage in &cages {
        println!("removed memory cgroup {cage} (its sweep is gone)");
    }
    // etcd data of cluster runs that were killed (their members died with them).
    let etcd = testbed::etcd::remove_dead_dirs()?;
    for dir in &etcd {
        println!("removed etcd data {dir} (its cluster run is gone)");
    }
    if report.removed.is_empty() && cages.is_empty() && etcd.is_empty() {
        println!("nothing to clean up");
    }
    for item in &report.removed {
        println!("removed {item}");
    }
    for item in &report.left_alone {
        println!("left alone {item}");
    }
    Ok(())
}
