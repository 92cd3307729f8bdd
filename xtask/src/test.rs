//! `cargo xtask test`: everything CI checks.

use anyhow::Result;
use clap::Args;

use crate::setup::{self, EBPF_CRATES, cargo, exec};

/// Options of `cargo xtask test`.
#[derive(Debug, Args)]
pub struct Options {
    /// Arguments passed on to `cargo test` (for example a test name filter).
    #[arg(trailing_var_arg = true)]
    pub cargo_test_args: Vec<String>,
}

pub fn run(options: &Options) -> Result<()> {
    setup::test_prerequisites()?;
    setup::require_root("the test suite")?;
    eprintln!("xtask: cargo fmt --check");
    exec(cargo().args(["fmt", "--all", "--check"]))?;
    eprintln!(
        "xtask: cargo clippy --workspace --all-targets -- -D warnings (the eBPF crates build, with their warnings, inside their loaders' build scripts)"
    );
    exec(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        EBPF_CRATES[0],
        "--exclude",
        EBPF_CRATES[1],
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    eprintln!("xtask: cargo doc --workspace --no-deps with RUSTDOCFLAGS=-D warnings");
    exec(cargo().env("RUSTDOCFLAGS", "-D warnings").args([
        "doc",
        "--workspace",
        "--no-deps",
        "--exclude",
        EBPF_CRATES[0],
        "--exclude",
        EBPF_CRATES[1],
    ]))?;
    eprintln!("xtask: cargo test --workspace (kernel tests in network namespaces of their own)");
    exec(
        cargo()
            .args(["test", "--workspace"])
            .args(EBPF_CRATES.iter().flat_map(|c| ["--exclude", c]))
            .args(&options.cargo_test_args),
    )
}
