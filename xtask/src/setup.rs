//! Installing what the project needs on a fresh Debian machine, and running the pinned
//! toolchain's cargo.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The toolchain the workspace builds with: the workspace's `rust-version` (aya 0.16 needs
/// Rust 1.98 or newer), pinned once in the root Cargo.toml.
pub const TOOLCHAIN: &str = workspace_rust_version(include_str!("../../Cargo.toml"));

/// The nightly that builds the eBPF program, pinned once in `ebpf/nightly-toolchain` (which
/// filter-tcbpf's build script reads too).
pub const EBPF_TOOLCHAIN: &str = trim_line(include_str!("../../ebpf/nightly-toolchain"));

/// The value of the first `rust-version = "..."` line of a manifest.
const fn workspace_rust_version(manifest: &'static str) -> &'static str {
    const KEY: &[u8] = b"rust-version = \"";
    let bytes = manifest.as_bytes();
    let mut at = 0;
    while at + KEY.len() < bytes.len() {
        let mut matched = 0;
        while matched < KEY.len() && bytes[at + matched] == KEY[matched] {
            matched += 1;
        }
        let line_start = at == 0 || bytes[at - 1] == b'\n';
        if matched == KEY.len() && line_start {
            let start = at + KEY.len();
            let mut end = start;
            while bytes[end] != b'"' {
                end += 1;
            }
            let (_, rest) = manifest.split_at(start);
            let (version, _) = rest.split_at(end - start);
            return version;
        }
        at += 1;
    }
    panic!("the workspace Cargo.toml has no rust-version line");
}

/// A one-line file's text without its line end.
const fn trim_line(text: &'static str) -> &'static str {
    text.trim_ascii()
}

/// bpf-linker, linked against [`EBPF_TOOLCHAIN`]'s own LLVM.
const BPF_LINKER: &str = "bpf-linker@0.13.0";

/// The eBPF crate: it only builds for bpfel-unknown-none, through filter-tcbpf's build script.
pub const EBPF_CRATE: &str = "filter-tcbpf-ebpf";

/// Debian packages the tests and benchmarks drive.
const PACKAGES: &[&str] = &[
    "iproute2",
    "iptables",
    "ipset",
    "nftables",
    "iperf3",
    "bpftool",
    "fonts-dejavu-core",
];

/// Installs missing Debian packages and the pinned toolchain, saying what it installs.
pub fn prerequisites() -> Result<()> {
    packages()?;
    toolchain()?;
    ebpf_toolchain()
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

fn packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
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
        .args(["run", TOOLCHAIN, "cargo", "clippy", "--version"])
        .env("RUSTUP_AUTO_INSTALL", "0")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("rustup")
            .args(["run", TOOLCHAIN, "rustfmt", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    eprintln!("xtask: installing Rust {TOOLCHAIN} (minimal profile, with clippy and rustfmt)");
    exec(Command::new("rustup").args([
        "toolchain",
        "install",
        TOOLCHAIN,
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
        .args(["run", EBPF_TOOLCHAIN, "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|sysroot| sysroot.join("lib/rustlib/src/rust/library/core").exists());
    let sysroot = match nightly_ready {
        Some(sysroot) => sysroot,
        None => {
            eprintln!(
                "xtask: installing Rust {EBPF_TOOLCHAIN} with rust-src (builds the eBPF program)"
            );
            exec(Command::new("rustup").args([
                "toolchain",
                "install",
                EBPF_TOOLCHAIN,
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))?;
            let out = Command::new("rustup")
                .args(["run", EBPF_TOOLCHAIN, "rustc", "--print", "sysroot"])
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
        "xtask: installing {BPF_LINKER} linked to {EBPF_TOOLCHAIN}'s {llvm} (about a minute)"
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
    cmd.args(["run", TOOLCHAIN, "cargo"]).current_dir(root());
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
