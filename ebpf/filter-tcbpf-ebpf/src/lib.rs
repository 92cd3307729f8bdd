//! Kernel side of the tc eBPF filter; the program is in `main.rs`, built for
//! `bpfel-unknown-none` by `filter-tcbpf`'s build script.
#![no_std]
