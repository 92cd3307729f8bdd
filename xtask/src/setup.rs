//! Installing what the project needs on a fresh Debian machine, and running the pinned
//! toolchain's cargo.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The toolchain the workspace builds with: the workspace's `rust-version` (aya 0.16 needs
/// Rust 1.98 or newer), pinned once in the root Cargo.toml.
pub fn rust_pin() -> &'static str {
    include_str!("../../Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \"")?.strip_suffix('"'))
        .expect("the workspace Cargo.toml pins a rust-version")
}

/// The nightly that builds the eBPF program, pinned once in `ebpf/nightly-toolchain` (which
/// filter-tcbpf's build script reads too).
pub fn nightly_pin() -> &'static str {
    include_str!("../../ebpf/nightly-toolchain").trim()
}

/// bpf-linker, linked against [`nightly_pin`]'s own LLVM.
const BPF_LINKER: &str = "bpf-linker@0.13.0";

/// The eBPF crates: they only build for bpfel-unknown-none, through their loaders' build scripts.
pub const EBPF_CRATES: [&str; 2] = ["filter-tcbpf-ebpf", "cilium-model-ebpf"];

/// Debian packages the tests and benchmarks drive.
const PACKAGES: &[&str] = &[
    "iproute2",
    "iptables",
    "ipset",
    "nftables",
    "iperf3",
    "bpftool",
    "fonts-dejavu-core",
    // The node agent: etcd-client's build compiles etcd's protocol files; its tests run a
    // private etcd on loopback, with certificates made by openssl.
    "protobuf-compiler",
    "etcd-server",
    "openssl",
    "curl",
];

/// What only the tests need: a headless browser that opens report.html.
const TEST_PACKAGES: &[&str] = &["chromium"];

/// Installs missing Debian packages and the pinned toolchain, saying what it installs.
pub fn prerequisites() -> Result<()> {
    packages(PACKAGES)?;
    toolchain()?;
    ebpf_toolchain()
}

/// [`prerequisites`] and what only the tests need.
pub fn test_prerequisites() -> Result<()> {
    prerequisites()?;
    packages(TEST_PACKAGES)
}

fn is_root() -> bool {
    // SAFETY-free check: the effective uid is in /proc/self/status ("Uid: real effective ...").
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Fails unless running as root: the tests and benchmarks create network namespaces.
pub fn require_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!(
            "{what} creates network namespaces and firewall rules: run it as root (for example `sudo -E cargo xtask ...`)"
        );
    }
    Ok(())
}

fn packages(wanted: &[&str]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output();
            !out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    require_root("installing Debian packages")?;
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    exec(Command::new("apt-get").args(["update", "-qq"]))?;
    exec(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn toolchain() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["run", rust_pin(), "cargo", "clippy", "--version"])
        .env("RUSTUP_AUTO_INSTALL", "0")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("rustup")
            .args(["run", rust_pin(), "rustfmt", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    eprintln!(
        "xtask: installing Rust {} (minimal profile, with clippy and rustfmt)",
        rust_pin()
    );
    exec(Command::new("rustup").args([
        "toolchain",
        "install",
        rust_pin(),
        "--profile",
        "minimal",
        "--component",
        "clippy,rustfmt",
    ]))
}

/// The pinned nightly with rust-src (for `-Z build-std=core`), and bpf-linker built against
/// that nightly's LLVM (without changing any file of the toolchain).
fn ebpf_toolchain() -> Result<()> {
    let nightly_ready = Command::new("rustup")
        .args(["run", nightly_pin(), "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|sysroot| sysroot.join("lib/rustlib/src/rust/library/core").exists());
    let sysroot = match nightly_ready {
        Some(sysroot) => sysroot,
        None => {
            eprintln!(
                "xtask: installing Rust {} with rust-src (builds the eBPF program)",
                nightly_pin()
            );
            exec(Command::new("rustup").args([
                "toolchain",
                "install",
                nightly_pin(),
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))?;
            let out = Command::new("rustup")
                .args(["run", nightly_pin(), "rustc", "--print", "sysroot"])
                .output()
                .context("asking the nightly for its sysroot")?;
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    let linker_ok = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if linker_ok {
        return Ok(());
    }
    // rustup ships the nightly's LLVM as lib/libLLVM-<major>-rust-<version>.so (a linker
    // script); link bpf-linker against it and record the path as its RUNPATH.
    let lib = sysroot.join("lib");
    let llvm = std::fs::read_dir(&lib)
        .with_context(|| format!("listing {}", lib.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("libLLVM-") && name.ends_with(".so"))
        .with_context(|| format!("no libLLVM-*.so in {}", lib.display()))?;
    let llvm = llvm.trim_start_matches("lib").trim_end_matches(".so");
    let lib = lib.display();
    eprintln!(
        "xtask: installing {BPF_LINKER} linked to {}'s {llvm} (about a minute)",
        nightly_pin()
    );
    exec(
        cargo()
            .args([
                "install",
                BPF_LINKER,
                "--locked",
                "--features",
                "no-llvm-linking",
            ])
            .env(
                "RUSTFLAGS",
                format!("-C link-arg=-L{lib} -C link-arg=-l{llvm} -C link-arg=-Wl,-rpath,{lib}"),
            ),
    )
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `cargo` of the pinned toolchain, run in the workspace root, with the environment the
/// outer `cargo run` set for xtask removed.
pub fn cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", rust_pin(), "cargo"]).current_dir(root());
    for var in [
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "CARGO_MANIFEST_DIR",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a command, failing with its command line if it fails.
pub fn exec(cmd: &mut Command) -> Result<()> {
    let line = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {line}"))?;
    if !status.success() {
        bail!("{line} failed ({status})");
    }
    Ok(())
}
