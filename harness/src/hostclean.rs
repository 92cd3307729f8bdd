//! Removing egress-bench's objects from the current network namespace (the host's, in
//! two-host mode): iptables chains and ipsets whose names start with a prefix, and tc filters
//! running egress-bench's programs. Nothing else is touched.

use std::process::Command;

use filter_core::{Family, NetNs, run_command};
use filter_iptables::{Backend, xtables};

const BACKENDS: [Backend; 2] = [Backend::Nft, Backend::Legacy];

/// Whether the legacy filter table exists here: reading it with iptables-legacy-save would
/// otherwise create it, changing the host's firewall state just to look.
fn legacy_table_exists(family: Family) -> bool {
    let names = match family {
        Family::V4 => "/proc/net/ip_tables_names",
        Family::V6 => "/proc/net/ip6_tables_names",
    };
    std::fs::read_to_string(names).is_ok_and(|t| t.lines().any(|l| l == "filter"))
}

fn save_program(backend: Backend, family: Family) -> &'static str {
    match (backend, family) {
        (Backend::Nft, Family::V4) => "iptables-nft-save",
        (Backend::Nft, Family::V6) => "ip6tables-nft-save",
        (Backend::Legacy, Family::V4) => "iptables-legacy-save",
        (Backend::Legacy, Family::V6) => "ip6tables-legacy-save",
    }
}

/// tc egress filters running one of our programs (named `egb_*`), per interface.
fn tc_filters() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Ok(links) = std::fs::read_dir("/sys/class/net") else {
        return found;
    };
    for link in links.flatten() {
        let dev = link.file_name().to_string_lossy().into_owned();
        if let Ok(out) =
            run_command(Command::new("tc").args(["filter", "show", "dev", &dev, "egress"]))
        {
            found.extend(
                out.lines()
                    .filter(|l| l.contains(" egb_"))
                    .map(|l| (dev.clone(), l.trim().to_owned())),
            );
        }
    }
    found
}

/// Removes every egress-bench object found here; returns what it removed.
pub fn remove(prefix: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let here = NetNs::current();
    for backend in BACKENDS {
        for family in Family::BOTH {
            if backend == Backend::Legacy && !legacy_table_exists(family) {
                continue;
            }
            let Ok(out) =
                run_command(Command::new(save_program(backend, family)).args(["-t", "filter"]))
            else {
                continue;
            };
            for line in out.lines() {
                let Some(chain) = line
                    .strip_prefix(':')
                    .and_then(|l| l.split_whitespace().next())
                else {
                    continue;
                };
                if chain.starts_with(prefix)
                    && xtables::remove_chain(&here, backend, family, chain).is_ok()
                {
                    removed.push(format!("{} chain {chain}", backend.program(family)));
                }
            }
        }
    }
    if let Ok(out) = run_command(Command::new("ipset").args(["list", "-n"])) {
        for set in out.lines().filter(|l| l.starts_with(prefix)) {
            if run_command(Command::new("ipset").args(["destroy", set])).is_ok() {
                removed.push(format!("ipset {set}"));
            }
        }
    }
    // tc filters carry the program's name (egb_filter), not the run's: only a cleanup of
    // everything egress-bench made removes them (a run's own filter detaches itself).
    let everything = prefix == filter_core::OBJECT_PREFIX;
    for (dev, line) in tc_filters().into_iter().filter(|_| everything) {
        // "filter protocol all pref 49152 bpf chain 0 handle 0x1 egb_filter direct-action ..."
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
                .copied()
        };
        if let (Some(pref), Some(handle)) = (after("pref"), after("handle"))
            && run_command(Command::new("tc").args([
                "filter", "del", "dev", &dev, "egress", "pref", pref, "handle", handle, "bpf",
            ]))
            .is_ok()
        {
            removed.push(format!("tc egress filter on {dev} (pref {pref})"));
        }
    }
    removed
}
