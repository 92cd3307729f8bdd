//! The table of engines the harness can run: a name, a constructor and a [`Descriptor`]
//! each. A new engine is one crate and one entry here; the sweep (`cargo xtask bench`, which
//! reads `egress-bench filters --json`) and summary.md take their lists from it.

use clap::ValueEnum;
use filter_core::{CidrList, EgressFilter, FilterStats, NetNs, Result, Tag};
use filter_ipset::IpsetFilter;
use filter_iptables::{Backend, IptablesFilter};
use filter_tcbpf::{Attach, Fill, Program, Table, TcbpfFilter};
use ipnet::IpNet;
use serde::Serialize;

/// A filter the harness can install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FilterKind {
    /// No filter: the baseline every figure is compared with.
    None,
    /// One iptables DROP rule per CIDR, streamed into iptables-restore.
    Iptables,
    /// Reference loader: the same rules from a script through iptables-restore.
    IptablesRestore,
    /// ipset hash:net filled over nfnetlink, one iptables rule.
    Ipset,
    /// Reference loader: the same set filled by `ipset restore`.
    IpsetRestore,
    /// tc eBPF program with an LPM trie per family (TCX or clsact), filled in batches.
    Tcbpf,
    /// Reference loader: the same program and maps, filled with one update per entry.
    TcbpfPerEntry,
    /// An eBPF program that passes everything, hooked the same way: the attach floor.
    TcbpfEmpty,
    /// Benchmark only: a trie lookup of each destination mixed into a pseudo-random address
    /// (cache-cold, as for traffic to the whole Internet); drops nothing.
    TcbpfCold,
    /// Benchmark only: `tcbpf-cold` without the lookup.
    TcbpfMix,
    /// tc eBPF program with a constant-time DIR-24-8 table for IPv4 (two array reads at
    /// most, filled through mmap) and an LPM trie for IPv6.
    TcbpfDir,
    /// Benchmark only: `tcbpf-cold` on the constant-time table.
    TcbpfDirCold,
}

/// Where and how a filter is installed.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The namespace.
    pub netns: NetNs,
    /// Names of the filter's kernel objects.
    pub tag: Tag,
    /// The interface whose egress tc programs hook.
    pub interface: String,
    /// iptables back-end for rule-based filters.
    pub backend: Backend,
    /// tc attach mode for eBPF filters.
    pub attach: Attach,
    /// A fixed `maxelem` for ipset filters (`None`: twice the list).
    pub ipset_maxelem: Option<u32>,
}

/// What a filter is for in a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// No filter: the baseline.
    Baseline,
    /// An engine: a filter a user would install.
    Engine,
    /// The same kernel state as an engine, loaded the slow, well-known way: the yardstick of
    /// the engine's load time.
    Reference,
    /// A benchmark-only program (attach floor, cold lookups) that filters nothing.
    BenchmarkOnly,
}

/// How the sweep treats a filter: everything outside the engine's crate that used to be a
/// list of names somewhere.
#[derive(Debug, Clone, Serialize)]
pub struct Descriptor {
    /// The name on the command line and in records.
    pub name: &'static str,
    /// What it is for.
    pub role: Role,
    /// Whether it drops the denied probes.
    pub drops: bool,
    /// The filter whose load time this one's is set against in summary.md.
    pub load_compared_with: Option<&'static str>,
    /// The filter whose send-path cost is subtracted as this one's floor.
    pub send_path_floor: Option<&'static str>,
    /// Whether the sweep measures its send path (not for reference loaders: same state).
    pub send_path: bool,
    /// Whether the sweep times its program with `BPF_PROG_TEST_RUN`.
    pub program_cost: bool,
    /// Whether the sweep runs it at the largest size only.
    pub largest_only: bool,
    /// Whether the scale test (10M to 100M entries) runs it.
    pub scale: bool,
}

impl Descriptor {
    const fn engine(name: &'static str) -> Self {
        Self {
            name,
            role: Role::Engine,
            drops: true,
            load_compared_with: None,
            send_path_floor: None,
            send_path: true,
            program_cost: false,
            largest_only: false,
            scale: true,
        }
    }

    const fn reference(name: &'static str) -> Self {
        Self {
            role: Role::Reference,
            send_path: false,
            ..Self::engine(name)
        }
    }

    const fn benchmark_only(name: &'static str, floor: Option<&'static str>) -> Self {
        Self {
            role: Role::BenchmarkOnly,
            drops: false,
            send_path_floor: floor,
            largest_only: true,
            scale: false,
            ..Self::engine(name)
        }
    }
}

impl FilterKind {
    /// How the sweep treats this filter.
    pub fn descriptor(self) -> Descriptor {
        let name = self.name();
        match self {
            FilterKind::None => Descriptor {
                role: Role::Baseline,
                drops: false,
                scale: false,
                ..Descriptor::engine(name)
            },
            FilterKind::Iptables => Descriptor {
                load_compared_with: Some("iptables-restore"),
                ..Descriptor::engine(name)
            },
            FilterKind::Ipset => Descriptor {
                load_compared_with: Some("ipset-restore"),
                ..Descriptor::engine(name)
            },
            FilterKind::Tcbpf => Descriptor {
                load_compared_with: Some("tcbpf-per-entry"),
                send_path_floor: Some("tcbpf-empty"),
                program_cost: true,
                ..Descriptor::engine(name)
            },
            // The constant-time table is measured against the LPM-trie engine.
            FilterKind::TcbpfDir => Descriptor {
                load_compared_with: Some("tcbpf"),
                send_path_floor: Some("tcbpf-empty"),
                program_cost: true,
                ..Descriptor::engine(name)
            },
            FilterKind::IptablesRestore | FilterKind::IpsetRestore | FilterKind::TcbpfPerEntry => {
                Descriptor::reference(name)
            }
            // The attach floor runs at every size: the other eBPF rows subtract it.
            FilterKind::TcbpfEmpty => Descriptor {
                largest_only: false,
                ..Descriptor::benchmark_only(name, None)
            },
            FilterKind::TcbpfMix => Descriptor::benchmark_only(name, Some("tcbpf-empty")),
            FilterKind::TcbpfCold | FilterKind::TcbpfDirCold => {
                Descriptor::benchmark_only(name, Some("tcbpf-mix"))
            }
        }
    }

    /// Every filter, in the order of the command line's list.
    pub fn all() -> impl Iterator<Item = FilterKind> {
        Self::value_variants().iter().copied()
    }

    /// The filter of a name, or of a sweep label (`tcbpf-empty@clsact`, `ipset/hosts`).
    pub fn from_label(label: &str) -> Option<FilterKind> {
        let name = label.split(['@', '/']).next().unwrap_or(label);
        Self::all().find(|kind| kind.name() == name)
    }

    /// The name used on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            FilterKind::None => "none",
            FilterKind::Iptables => "iptables",
            FilterKind::IptablesRestore => "iptables-restore",
            FilterKind::Ipset => "ipset",
            FilterKind::IpsetRestore => "ipset-restore",
            FilterKind::Tcbpf => "tcbpf",
            FilterKind::TcbpfPerEntry => "tcbpf-per-entry",
            FilterKind::TcbpfEmpty => "tcbpf-empty",
            FilterKind::TcbpfCold => "tcbpf-cold",
            FilterKind::TcbpfMix => "tcbpf-mix",
            FilterKind::TcbpfDir => "tcbpf-dir",
            FilterKind::TcbpfDirCold => "tcbpf-dir-cold",
        }
    }

    /// Whether the filter is expected to drop the denied probes.
    pub fn filters(self) -> bool {
        self.descriptor().drops
    }

    /// Builds the filter.
    pub fn build(self, at: &Placement) -> Result<Box<dyn EgressFilter>> {
        let (netns, tag, backend) = (at.netns.clone(), at.tag.clone(), at.backend);
        Ok(match self {
            FilterKind::None => Box::new(NoFilter::default()),
            FilterKind::Iptables => Box::new(IptablesFilter::new(netns, tag, backend)),
            FilterKind::IptablesRestore => Box::new(IptablesFilter::reference(netns, tag, backend)),
            FilterKind::Ipset | FilterKind::IpsetRestore => {
                let filter = if self == FilterKind::Ipset {
                    IpsetFilter::new(netns, tag, backend)?
                } else {
                    IpsetFilter::reference(netns, tag, backend)?
                };
                match at.ipset_maxelem {
                    Some(maxelem) => Box::new(filter.with_maxelem(maxelem)),
                    None => Box::new(filter),
                }
            }
            FilterKind::Tcbpf => Box::new(TcbpfFilter::new(netns, tag, &at.interface, at.attach)),
            FilterKind::TcbpfPerEntry => Box::new(
                TcbpfFilter::new(netns, tag, &at.interface, at.attach).with_fill(Fill::PerEntry),
            ),
            FilterKind::TcbpfEmpty => Box::new(
                TcbpfFilter::new(netns, tag, &at.interface, at.attach).with_program(Program::Empty),
            ),
            FilterKind::TcbpfCold => Box::new(
                TcbpfFilter::new(netns, tag, &at.interface, at.attach)
                    .with_program(Program::ColdLookup),
            ),
            FilterKind::TcbpfMix => Box::new(
                TcbpfFilter::new(netns, tag, &at.interface, at.attach)
                    .with_program(Program::MixOnly),
            ),
            FilterKind::TcbpfDir => Box::new(
                TcbpfFilter::new(netns, tag, &at.interface, at.attach).with_table(Table::Dir24),
            ),
            FilterKind::TcbpfDirCold => Box::new(
                TcbpfFilter::new(netns, tag, &at.interface, at.attach)
                    .with_table(Table::Dir24)
                    .with_program(Program::ColdLookup),
            ),
        })
    }
}

/// The baseline: installs nothing, so every packet passes.
#[derive(Debug, Default)]
pub struct NoFilter {
    entries: (u64, u64),
}

impl EgressFilter for NoFilter {
    fn name(&self) -> &'static str {
        "none"
    }

    fn backend(&self) -> String {
        "none".into()
    }

    fn load(&mut self, list: &CidrList) -> Result<()> {
        self.entries = (list.v4().len() as u64, list.v6().len() as u64);
        Ok(())
    }

    fn replace(&mut self, list: &CidrList) -> Result<()> {
        self.load(list)
    }

    fn add(&mut self, _: &[IpNet]) -> Result<()> {
        Ok(())
    }

    fn remove(&mut self, _: &[IpNet]) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> Result<FilterStats> {
        Ok(FilterStats::default())
    }

    fn teardown(&mut self) -> Result<()> {
        Ok(())
    }
}

/// `egress-bench filters`: the registry, as a table or as JSON for `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct FiltersArgs {
    /// Print JSON (one object per filter) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the registry.
pub fn print(args: &FiltersArgs) -> anyhow::Result<()> {
    let all: Vec<Descriptor> = FilterKind::all().map(FilterKind::descriptor).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<15} {:<6} {:<18} {:<13}",
        "filter", "role", "drops", "load compared with", "floor"
    );
    for d in all {
        println!(
            "{:<16} {:<15} {:<6} {:<18} {:<13}",
            d.name,
            serde_json::to_value(d.role)?.as_str().unwrap_or("-"),
            if d.drops { "yes" } else { "no" },
            d.load_compared_with.unwrap_or("-"),
            d.send_path_floor.unwrap_or("-"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_it_points_to_is_a_filter() {
        for kind in FilterKind::all() {
            let d = kind.descriptor();
            assert_eq!(FilterKind::from_label(d.name), Some(kind));
            for other in [d.load_compared_with, d.send_path_floor]
                .into_iter()
                .flatten()
            {
                assert!(
                    FilterKind::from_label(other).is_some(),
                    "{}: {other}",
                    d.name
                );
            }
            assert_eq!(d.drops, d.role == Role::Engine || d.role == Role::Reference);
        }
        assert_eq!(
            FilterKind::from_label("tcbpf-empty@clsact"),
            Some(FilterKind::TcbpfEmpty)
        );
        assert_eq!(
            FilterKind::from_label("ipset/hosts"),
            Some(FilterKind::Ipset)
        );
    }
}
