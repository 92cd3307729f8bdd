//! How a [`TcbpfFilter`](crate::TcbpfFilter) is set up: fill, program, table (the attach
//! kind is in [`hooks`](crate::hooks)).

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
    /// Bounded-time tables, filled through mmap: IPv4 lists up to
    /// [`V4_RANGE_MAX_ENTRIES`](filter_tcbpf_common::V4_RANGE_MAX_ENTRIES) in a range table
    /// whose memory follows the list, longer ones in DIR-24-8 ([`dir`](crate::dir): at most
    /// two array reads per packet; 64 MiB for the first level plus 32 bytes per /24 holding
    /// longer prefixes); IPv6 in a range table (a few cell reads and one line read per
    /// packet, whatever the prefix lengths).
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
