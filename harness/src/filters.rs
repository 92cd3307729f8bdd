//! The table of engines the harness can run: a name and a constructor each. A new engine
//! is one crate and one entry here.

use clap::ValueEnum;
use filter_core::{CidrList, EgressFilter, FilterStats, NetNs, Result, Tag};
use filter_ipset::IpsetFilter;
use filter_iptables::{Backend, IptablesFilter};
use filter_tcbpf::{Attach, Fill, Program, Table, TcbpfFilter};
use ipnet::IpNet;

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

impl FilterKind {
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
        !matches!(
            self,
            FilterKind::None
                | FilterKind::TcbpfEmpty
                | FilterKind::TcbpfCold
                | FilterKind::TcbpfMix
                | FilterKind::TcbpfDirCold
        )
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
