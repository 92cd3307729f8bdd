//! `egress-bench`: load deny-lists into Linux egress filters and measure what they cost.

mod filters;
mod list;
mod record;
mod report;
mod run;
mod sendpath;
mod sys;
mod system;
mod traffic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Measure Linux egress filters (iptables, ipset, eBPF) loaded with up to millions of CIDRs,
/// inside network namespaces of its own.
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
    /// Remove what killed runs left behind: every namespace and link named `egb-*`.
    Cleanup,
    /// Render a sweep's results.json (from `cargo xtask bench`) as CSV files, summary.md and
    /// plots, optionally against a baseline sweep.
    Report(report::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Cleanup => cleanup(),
        Command::Report(args) => report::report(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("egress-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn cleanup() -> anyhow::Result<()> {
    let removed = testbed::cleanup()?;
    if removed.is_empty() {
        println!("nothing to clean up");
    }
    for item in removed {
        println!("removed {item}");
    }
    Ok(())
}
