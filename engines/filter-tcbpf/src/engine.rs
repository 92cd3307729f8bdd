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
    /// How the program is hooked (`auto`: TCX on Linux 6.6+, else clsact).
    pub attach: Attach,
}

/// The engine: the LPM-trie filter, the constant-time DIR-24-8 filter, the per-entry
/// reference loader and the benchmark-only programs (attach floor, cold lookups); options
/// [`TcbpfOptions`].
pub static ENGINE: Engine = Engine {
    name: "tcbpf",
    variants: &[
        Variant {
            load_compared_with: Some("tcbpf-per-entry"),
            send_path_floor: Some("tcbpf-empty"),
            ..Variant::engine(
                "tcbpf",
                "tc eBPF program with an LPM trie per family (TCX or clsact), filled in batches",
                |at| build(at, |f| f),
            )
        },
        Variant::reference(
            "tcbpf-per-entry",
            "Reference loader: the same program and maps, filled with one update per entry",
            |at| build(at, |f| f.with_fill(Fill::PerEntry)),
        ),
        Variant::benchmark_only(
            "tcbpf-empty",
            "An eBPF program that passes everything, hooked the same way: the attach floor",
            None,
            |at| build(at, |f| f.with_program(Program::Empty)),
        ),
        Variant::benchmark_only(
            "tcbpf-cold",
            "Benchmark only: a trie lookup of each destination mixed into a pseudo-random \
             address (cache-cold); drops nothing",
            Some("tcbpf-mix"),
            |at| build(at, |f| f.with_program(Program::ColdLookup)),
        ),
        Variant::benchmark_only(
            "tcbpf-mix",
            "Benchmark only: `tcbpf-cold` without the lookup",
            Some("tcbpf-empty"),
            |at| build(at, |f| f.with_program(Program::MixOnly)),
        ),
        // The constant-time table is measured against the LPM-trie engine.
        Variant {
            load_compared_with: Some("tcbpf"),
            send_path_floor: Some("tcbpf-empty"),
            ..Variant::engine(
                "tcbpf-dir",
                "tc eBPF program with a constant-time DIR-24-8 table for IPv4 (two array reads \
                 at most, filled through mmap) and an LPM trie for IPv6",
                |at| build(at, |f| f.with_table(Table::Dir24)),
            )
        },
        Variant::benchmark_only(
            "tcbpf-dir-cold",
            "Benchmark only: `tcbpf-cold` on the constant-time table",
            Some("tcbpf-mix"),
            |at| {
                build(at, |f| {
                    f.with_table(Table::Dir24).with_program(Program::ColdLookup)
                })
            },
        ),
    ],
    leftovers: hooks::leftovers,
    remove_leftovers: hooks::remove_leftovers,
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
