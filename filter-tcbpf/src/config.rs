//! How a [`TcbpfFilter`](crate::TcbpfFilter) is set up: attach mode, fill, program, table.

use aya::util::KernelVersion;

/// How the program is hooked to the interface's egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attach {
    /// TCX where the kernel has it (6.6+), else clsact.
    #[default]
    Auto,
    /// TCX: a BPF link on the egress hook; removed when the process exits.
    Tcx,
    /// A `clsact` qdisc with a direct-action filter (any kernel with tc BPF).
    Clsact,
}

impl Attach {
    /// The name used in records (`tcx`, `clsact`, `auto`).
    pub fn name(self) -> &'static str {
        match self {
            Attach::Auto => "auto",
            Attach::Tcx => "tcx",
            Attach::Clsact => "clsact",
        }
    }

    pub(crate) fn resolve(self) -> Self {
        match self {
            Attach::Auto
                if KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0)) =>
            {
                Attach::Tcx
            }
            Attach::Auto => Attach::Clsact,
            other => other,
        }
    }
}

impl std::str::FromStr for Attach {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Attach::Auto),
            "tcx" => Ok(Attach::Tcx),
            "clsact" => Ok(Attach::Clsact),
            _ => Err(format!(
                "unknown attach mode {s:?}; expected auto, tcx or clsact"
            )),
        }
    }
}

/// How maps are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fill {
    /// `BPF_MAP_UPDATE_BATCH`, 65,536 entries per call, falling back to per-entry updates
    /// on kernels without batch support for LPM tries.
    #[default]
    Batch,
    /// One `BPF_MAP_UPDATE_ELEM` per entry: the reference the batch fill is measured against.
    PerEntry,
}

/// Which program goes on the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Program {
    /// The filter: LPM-trie lookups, drop on a match.
    #[default]
    Filter,
    /// A program that passes every packet at once: what being attached costs (the floor
    /// that filter costs are read against). Maps are still filled, but never read.
    Empty,
    /// Benchmark only: looks up each IPv4 destination mixed with a counter into a
    /// pseudo-random address (the cache-cold trie of traffic to the whole Internet); never drops.
    ColdLookup,
    /// Benchmark only: [`Program::ColdLookup`] without the lookup.
    MixOnly,
}

/// The table the program looks destinations up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Table {
    /// An LPM trie per family: memory in proportion to the list, lookups that grow with it.
    #[default]
    LpmTrie,
    /// IPv4 in a constant-time DIR-24-8 table ([`dir`](crate::dir)): at most two array reads per packet
    /// whatever the list, filled through mmap; 64 MiB for the first level plus 32 bytes per
    /// /24 holding longer prefixes. IPv6 stays in the LPM trie.
    Dir24,
}

impl Table {
    /// The name used in records and benchmark ids (`lpm-trie`, `dir-24-8`).
    pub fn name(self) -> &'static str {
        match self {
            Table::LpmTrie => "lpm-trie",
            Table::Dir24 => "dir-24-8",
        }
    }
}
