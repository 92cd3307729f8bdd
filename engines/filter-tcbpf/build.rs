//! Builds the kernel-side program (`ebpf/filter-tcbpf-ebpf`) for `bpfel-unknown-none` with the
//! pinned nightly and bpf-linker, into `OUT_DIR`, where `src/lib.rs` embeds it.
//! `cargo xtask setup` installs both; `AYA_BUILD_SKIP=1` skips this step.

use std::path::Path;

fn main() -> aya_build::Result<()> {
    let ebpf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ebpf");
    // The nightly (with rust-src for `-Z build-std=core`) whose LLVM bpf-linker is linked
    // against: pinned once, in ebpf/nightly-toolchain, which xtask's setup installs.
    let pin = ebpf.join("nightly-toolchain");
    println!("cargo::rerun-if-changed={}", pin.display());
    let nightly = std::fs::read_to_string(&pin).expect("ebpf/nightly-toolchain is readable");
    let nightly: &'static str = nightly.trim().to_owned().leak();
    let root = ebpf.join("filter-tcbpf-ebpf");
    let root = root.to_str().expect("UTF-8 path");
    println!(
        "cargo::rerun-if-changed={}",
        ebpf.join("filter-tcbpf-common").display()
    );
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "filter-tcbpf-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(nightly),
    )
}
