//! The engine as egress-bench's registry sees it: its variants, the `attach` option, and
//! how to find what a run left on the interfaces of a namespace.

use aya::programs::tc::{TcAttachType, TcHandle};
use filter_core::engine::{OptionSpec, Placement, Variant};
use filter_core::{EgressFilter, Engine, NetNs, OBJECT_PREFIX, Result, run_command};

use crate::{Fill, Program, Table, TcbpfFilter};

/// The `attach` option: how the program is hooked (`auto`, `tcx` or `clsact`).
pub const ATTACH_OPTION: OptionSpec = OptionSpec {
    key: "attach",
    about: "tc attach mode: auto (TCX on 6.6+, else clsact), tcx or clsact",
};

/// The engine: the LPM-trie filter, the constant-time DIR-24-8 filter, the per-entry
/// reference loader and the benchmark-only programs (attach floor, cold lookups).
pub static ENGINE: Engine = Engine {
    name: "tcbpf",
    variants: &[
        Variant {
            load_compared_with: Some("tcbpf-per-entry"),
            send_path_floor: Some("tcbpf-empty"),
            program_cost: true,
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
        // The attach floor runs at every size: the other eBPF rows subtract it.
        Variant {
            largest_only: false,
            sweep_also: &["tcbpf-empty@clsact"],
            ..Variant::benchmark_only(
                "tcbpf-empty",
                "An eBPF program that passes everything, hooked the same way: the attach floor",
                None,
                |at| build(at, |f| f.with_program(Program::Empty)),
            )
        },
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
            program_cost: true,
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
    options: &[ATTACH_OPTION],
    leftovers,
    remove_leftovers,
};

fn build(at: &Placement, set_up: fn(TcbpfFilter) -> TcbpfFilter) -> Result<Box<dyn EgressFilter>> {
    let attach = at.options.get(ATTACH_OPTION.key)?.unwrap_or_default();
    Ok(Box::new(set_up(TcbpfFilter::new(
        at.netns.clone(),
        at.tag.clone(),
        &at.interface,
        attach,
    ))))
}

/// The clsact filter handle of a tag (`egb-<id>`): its FNV-1a hash, never 0 (0 asks the
/// kernel to pick one). A run's tc filters carry it, so a cleanup by tag finds them.
pub(crate) fn tag_handle(tag: &str) -> TcHandle {
    let hash = tag.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    TcHandle::from(hash.max(1))
}

/// The links of `netns`, by name.
fn links(netns: &NetNs) -> Vec<String> {
    // "2: egb-1a2b-c@if3: <BROADCAST,..." -> "egb-1a2b-c"
    run_command(netns.command("ip").args(["-o", "link", "show"])).map_or_else(
        |_| Vec::new(),
        |out| {
            out.lines()
                .filter_map(|l| l.split(": ").nth(1))
                .map(|name| name.split('@').next().unwrap_or(name).to_owned())
                .collect()
        },
    )
}

/// A tc egress filter of ours: the link, its preference, its handle and the line.
struct TcFilter {
    link: String,
    pref: String,
    handle: String,
    line: String,
}

/// tc egress filters running one of our programs (`egb_*`) in `netns`, all of them for the
/// whole [`OBJECT_PREFIX`], else those whose handle is the [`tag_handle`] of `prefix`.
fn tc_filters(netns: &NetNs, prefix: &str) -> Vec<TcFilter> {
    let handle = format!("{:#x}", u32::from(tag_handle(prefix)));
    let mut found = Vec::new();
    for link in links(netns) {
        let Ok(out) = run_command(
            netns
                .command("tc")
                .args(["filter", "show", "dev", &link, "egress"]),
        ) else {
            continue;
        };
        for line in out.lines().filter(|l| l.contains(" egb_")) {
            // "filter protocol all pref 49152 bpf chain 0 handle 0x1 egb_filter direct-action"
            let words: Vec<&str> = line.split_whitespace().collect();
            let after = |key: &str| {
                let at = words.iter().position(|w| *w == key)?;
                words.get(at + 1).map(|w| (*w).to_owned())
            };
            if let (Some(pref), Some(found_handle)) = (after("pref"), after("handle"))
                && (prefix == OBJECT_PREFIX || found_handle == handle)
            {
                found.push(TcFilter {
                    link: link.clone(),
                    pref,
                    handle: found_handle,
                    line: line.trim().to_owned(),
                });
            }
        }
    }
    found
}

/// Programs of ours on TCX egress hooks in `netns`. TCX links carry no name we choose, so
/// every `egb_*` program counts, whatever `prefix`; they go away with the process that made
/// them.
fn tcx_programs(netns: &NetNs) -> Vec<String> {
    let mut found = Vec::new();
    for link in links(netns) {
        let Ok(name) = std::ffi::CString::new(link.clone()) else {
            continue;
        };
        let Ok(Ok((_, programs))) = netns.run(move || {
            aya::programs::SchedClassifier::query_tcx(name.as_c_str(), TcAttachType::Egress)
        }) else {
            continue;
        };
        found.extend(
            programs
                .iter()
                .filter(|p| p.name_as_str().is_some_and(|n| n.starts_with("egb_")))
                .map(|p| format!("tcx egress program {} on {link}", p.id())),
        );
    }
    found
}

fn leftovers(netns: &NetNs, prefix: &str) -> Vec<String> {
    let mut found: Vec<String> = tc_filters(netns, prefix)
        .into_iter()
        .map(|f| format!("tc egress filter on {}: {}", f.link, f.line))
        .collect();
    found.extend(tcx_programs(netns));
    found
}

fn remove_leftovers(netns: &NetNs, prefix: &str) -> Vec<String> {
    tc_filters(netns, prefix)
        .into_iter()
        .filter(|f| {
            run_command(netns.command("tc").args([
                "filter", "del", "dev", &f.link, "egress", "pref", &f.pref, "handle", &f.handle,
                "bpf",
            ]))
            .is_ok()
        })
        .map(|f| format!("tc egress filter on {} (pref {})", f.link, f.pref))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_handles_differ_and_are_never_zero() {
        let a = u32::from(tag_handle("egb-1a2b3c"));
        let b = u32::from(tag_handle("egb-1a2b3d"));
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_eq!(a, u32::from(tag_handle("egb-1a2b3c")));
    }
}
