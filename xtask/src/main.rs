//! `cargo xtask`: the project's tasks, each installing what it needs first.
//!
//! - `cargo xtask test`: formatting, clippy and every test (kernel tests included: run as root).
//! - `cargo xtask bench`: the quick load benchmark of every filter; results in `bench-results/`.
//! - `cargo xtask setup`: only install the prerequisites.

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod bench;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install prerequisites, then check formatting, run clippy and all tests.
    Test(test::Options),
    /// Install prerequisites, then run the load benchmark sweep.
    Bench(bench::Options),
    /// Install prerequisites (Debian packages, the pinned Rust toolchain) and nothing else.
    Setup,
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Test(options) => test::run(&options),
        Task::Bench(options) => bench::run(&options),
        Task::Setup => setup::prerequisites(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
