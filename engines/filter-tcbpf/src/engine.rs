//! The engine as egress-bench's registry sees it: its variants, its options and what a run
//! left on the interfaces of a namespace (each attach kind finds its own, see [`hooks`]).
//!
//! [`hooks`]: crate::hooks

use filter_core::engine::{Placement, Variant};
use filter_core::{EgressFilter, Engine, Result};

use crate::{Attach, Fill, Program, Table, TcbpfFilter, hooks};

/// The settings of the tc-eBPF engine in a [`Placement`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcbpfOptions {
    /// How the program is hooked (`auto`: TCX on Linux 6.6+, else clsact; `cgroup` needs a
    /// [`Target::Cgroup`](filter_core::Target::Cgroup)).
    pub attach: Attach,
}

/// The names of the engine's variants, each stated once: the registry lists them and
/// [`TcbpfFilter`]'s `name()` reports them.
pub mod names {
    /// The LPM-trie filter, filled in batches.
    pub const TCBPF: &str = "tcbpf";
    /// The reference loader: the same maps filled one entry at a time.
    pub const TCBPF_PER_ENTRY: &str = "tcbpf-per-entry";
    /// The attach floor: a program that passes everything.
    pub const TCBPF_EMPTY: &str = "tcbpf-empty";
    /// Benchmark only: cache-cold trie lookups.
    pub const TCBPF_COLD: &str = "tcbpf-cold";
    /// Benchmark only: [`TCBPF_COLD`] without the lookup.
    pub const TCBPF_MIX: &str = "tcbpf-mix";
    /// The constant-time DIR-24-8 filter.
    pub const TCBPF_DIR: &str = "tcbpf-dir";
    /// Benchmark only: cache-cold lookups in the constant-time table.
    pub const TCBPF_DIR_COLD: &str = "tcbpf-dir-cold";
}

use names::{
    TCBPF, TCBPF_COLD, TCBPF_DIR, TCBPF_DIR_COLD, TCBPF_EMPTY, TCBPF_MIX, TCBPF_PER_ENTRY,
};

/// The engine: the LPM-trie filter, the constant-time DIR-24-8 filter, the per-entry
/// reference loader and the benchmark-only programs (attach floor, cold lookups); options
/// [`TcbpfOptions`].
pub static ENGINE: Engine = Engine {
    name: "tcbpf",
    variants: &[
        Variant {
            load_compared_with: Some(TCBPF_PER_ENTRY),
            send_path_floor: Some(TCBPF_EMPTY),
            ..Variant::engine(
                TCBPF,
                "tc eBPF program with an LPM trie per family (TCX or clsact), filled in batches",
                |at| build(at, |f| f),
            )
        },
        Variant::reference(
            TCBPF_PER_ENTRY,
            "Reference loader: the same program and maps, filled with one update per entry",
            |at| build(at, |f| f.with_fill(Fill::PerEntry)),
        ),
        Variant::benchmark_only(
            TCBPF_EMPTY,
            "An eBPF program that passes everything, hooked the same way: the attach floor",
            None,
            |at| build(at, |f| f.with_program(Program::Empty)),
        ),
        Variant::benchmark_only(
            TCBPF_COLD,
            "Benchmark only: a trie lookup of each destination mixed into a pseudo-random \
             address (cache-cold); drops nothing",
            Some(TCBPF_MIX),
            |at| build(at, |f| f.with_program(Program::ColdLookup)),
        ),
        Variant::benchmark_only(
            TCBPF_MIX,
            "Benchmark only: `tcbpf-cold` without the lookup",
            Some(TCBPF_EMPTY),
            |at| build(at, |f| f.with_program(Program::MixOnly)),
        ),
        // The constant-time table is measured against the LPM-trie engine.
        Variant {
            load_compared_with: Some(TCBPF),
            send_path_floor: Some(TCBPF_EMPTY),
            ..Variant::engine(
                TCBPF_DIR,
                "tc eBPF program with bounded-time tables filled through mmap: IPv4 in a range \
                 table up to 131,072 entries, in DIR-24-8 (two array reads at most) past it; \
                 IPv6 in a range table, whatever the prefix lengths",
                |at| build(at, |f| f.with_table(Table::Dir24)),
            )
        },
        Variant::benchmark_only(
            TCBPF_DIR_COLD,
            "Benchmark only: `tcbpf-cold` on the constant-time table",
            Some(TCBPF_MIX),
            |at| {
                build(at, |f| {
                    f.with_table(Table::Dir24).with_program(Program::ColdLookup)
                })
            },
        ),
    ],
    leftovers: hooks::leftovers,
    remove_leftovers: hooks::remove_leftovers,
    target_kind: |options| options.get::<TcbpfOptions>().attach.resolve().target,
};

fn build(at: &Placement, set_up: fn(TcbpfFilter) -> TcbpfFilter) -> Result<Box<dyn EgressFilter>> {
    let options: TcbpfOptions = at.options.get();
    Ok(Box::new(set_up(TcbpfFilter::at(
        at.netns.clone(),
        at.tag.clone(),
        &at.target,
        options.attach,
    )?)))
}
