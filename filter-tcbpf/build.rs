//! Builds the kernel-side program (`filter-tcbpf-ebpf`) for `bpfel-unknown-none` with the
//! pinned nightly and bpf-linker, into `OUT_DIR`, where `src/lib.rs` embeds it.
//! `cargo xtask setup` installs both; `AYA_BUILD_SKIP=1` skips this step.

/// The nightly that builds the eBPF program (with rust-src for `-Z build-std=core`); bpf-linker
/// is linked against this toolchain's LLVM. Keep in step with xtask/src/setup.rs.
const EBPF_TOOLCHAIN: &str = "nightly-2026-10-30";

fn main() -> aya_build::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate lives in the workspace")
        .join("filter-tcbpf-ebpf");
    let root = root.to_str().expect("UTF-8 path");
    println!("cargo::rerun-if-changed={root}/../filter-tcbpf-common");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "filter-tcbpf-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(EBPF_TOOLCHAIN),
    )
}
