//! Builds the model's kernel-side program (`ebpf/cilium-model-ebpf`) for `bpfel-unknown-none`
//! with the pinned nightly and bpf-linker, into `OUT_DIR`, where `src/lib.rs` embeds it (as
//! filter-tcbpf's build script does for its program). `AYA_BUILD_SKIP=1` skips this step.

use std::path::Path;

fn main() -> aya_build::Result<()> {
    let ebpf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ebpf");
    let pin = ebpf.join("nightly-toolchain");
    println!("cargo::rerun-if-changed={}", pin.display());
    let nightly = std::fs::read_to_string(&pin).expect("ebpf/nightly-toolchain is readable");
    let nightly: &'static str = nightly.trim().to_owned().leak();
    let root = ebpf.join("cilium-model-ebpf");
    let root = root.to_str().expect("UTF-8 path");
    println!(
        "cargo::rerun-if-changed={}",
        ebpf.join("cilium-model-common").display()
    );
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "cilium-model-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(nightly),
    )
}
