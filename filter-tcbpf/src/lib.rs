//! Egress filter engine with a tc eBPF program: the destination of every IP packet leaving
//! an interface is looked up and the packet is dropped on a match. Two [`Table`]s:
//! an LPM trie per family (`BPF_MAP_TYPE_LPM_TRIE`, `BPF_F_NO_PREALLOC`; the default), or for
//! IPv4 a constant-time DIR-24-8 table ([`dir`]: one or two array reads per packet whatever
//! the list, written through mmap; 64 MiB and up).
//!
//! - The program (crate `filter-tcbpf-ebpf`) is built at build time and embedded.
//! - It is attached with TCX on Linux 6.6+ (a BPF link: it goes away with the process),
//!   otherwise with a `clsact` qdisc and a direct-action filter. [`Attach`] picks.
//! - Tries are sized to the list (`max_entries` = twice the entries, at least 1,024) and filled
//!   with `BPF_MAP_UPDATE_BATCH` where the kernel has it, else one update per entry. The
//!   DIR-24-8 table is expanded in user space straight into its maps' mmap views.
//! - [`replace`](EgressFilter::replace) loads a second instance of the program with maps
//!   filled with the new list, then swaps programs on the hook in one kernel operation
//!   (`BPF_LINK_UPDATE` for TCX, a netlink filter replace for clsact): every packet sees the
//!   old list or the new one.
//!
//! Requires Linux 5.6+ with BTF-free BPF (CAP_BPF and CAP_NET_ADMIN, or root).
//!
//! ```no_run
//! use filter_core::{CidrList, EgressFilter, NetNs, Tag};
//! use filter_tcbpf::{Attach, TcbpfFilter};
//!
//! let list: CidrList = ["203.0.113.0/24".parse()?].into_iter().collect();
//! let mut filter = TcbpfFilter::new(NetNs::named("blue"), Tag::new("demo")?, "eth0", Attach::Auto);
//! filter.load(&list)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cost;
pub mod dir;
mod sys;
mod v6hash;

use std::ffi::CString;
use std::os::fd::AsFd;

use aya::maps::lpm_trie::Key;
use aya::maps::{HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray};
use aya::programs::tc::{NlOptions, SchedClassifierLinkId, TcAttach, TcAttachType};
use aya::programs::{LinkOrder, SchedClassifier};
use aya::util::KernelVersion;
use aya::{Ebpf, EbpfLoader};
use filter_core::{
    CidrList, EgressFilter, Error, Family, FilterStats, KernelMemory, NetNs, ProgramCost, Result,
    Tag,
};
use filter_tcbpf_common as common;
use ipnet::IpNet;

/// The kernel-side program, built by `build.rs`.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/filter-tcbpf-ebpf"));

/// The kernel's internal "operation not supported" (not in libc): what old kernels return
/// for batch operations on maps without them.
const ENOTSUPP: i32 = 524;

/// Entries per `BPF_MAP_UPDATE_BATCH` call.
const BATCH: usize = 65_536;

/// Kernel memory an LPM trie takes per entry: a leaf and, about as often, an intermediate
/// node, each a kmalloc-64 object (slab growth of 1,318-1,371 MiB per 10M entries measured on
/// 6.18; the maps' `memlock` figure counts about a fifth of it).
const TRIE_BYTES_PER_ENTRY: u64 = 144;
/// Kernel memory a preallocated IPv6 hash entry takes (key, value, element header): an
/// estimate from the element layout, not measured.
const V6_HASH_BYTES_PER_ENTRY: u64 = 112;

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

    fn resolve(self) -> Self {
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
    /// IPv4 in a constant-time DIR-24-8 table ([`dir`]): at most two array reads per packet
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

/// One loaded copy of the program with its maps.
pub(crate) struct Instance {
    pub(crate) ebpf: Ebpf,
    /// The constant-time table's user-space side, over the maps' mmap views.
    dir: Option<dir::Dir24<dir::Mapped>>,
    /// IPv6 prefix lengths looked up by hash (the constant-time table with few lengths);
    /// `None`: IPv6 is in the LPM trie.
    v6_lengths: Option<Vec<u8>>,
    link: Option<SchedClassifierLinkId>,
    capacity: [u32; 2],
    entries: [u64; 2],
    /// Whether the maps were filled in batches (else one update per entry).
    batched: bool,
}

/// The tc eBPF LPM-trie filter; see the [crate docs](crate).
pub struct TcbpfFilter {
    netns: NetNs,
    #[expect(dead_code, reason = "kept for object names once maps are pinned")]
    tag: Tag,
    interface: String,
    attach: Attach,
    fill: Fill,
    program: Program,
    table: Table,
    created_qdisc: bool,
    current: Option<Instance>,
}

/// A kernel refusal as an [`Error::Kernel`]: the whole error chain in words, the errno
/// where there is one, and a hint for the common limits.
fn kernel(operation: impl Into<String>, err: impl std::error::Error) -> Error {
    let mut message = err.to_string();
    let mut code = 0;
    let mut source = err.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            code = io.raw_os_error().unwrap_or(code);
        }
        source = cause.source();
    }
    let hint = match code {
        libc::EPERM => " (needs root, or CAP_BPF and CAP_NET_ADMIN)",
        libc::ENOMEM => {
            " (not enough kernel memory for the maps: use a shorter or aggregated list)"
        }
        _ => "",
    };
    // A verifier log can run to megabytes: its end says why.
    const KEEP: usize = 2_000;
    if message.len() > 2 * KEEP {
        let mut cut = message.len() - KEEP;
        while !message.is_char_boundary(cut) {
            cut += 1;
        }
        let head: String = message.chars().take(200).collect();
        message = format!("{head} [...] {}", &message[cut..]);
    }
    Error::Kernel {
        operation: operation.into(),
        code,
        message: format!("{message}{hint}"),
    }
}

fn capacity(entries: usize) -> Result<u32> {
    let wanted = (entries as u64 * 2).max(1_024);
    u32::try_from(wanted).map_err(|_| Error::Limit {
        limit: "BPF map max_entries",
        requested: wanted,
        max: u64::from(u32::MAX),
        hint: "split the list".into(),
    })
}

fn v4_key(net: &ipnet::Ipv4Net) -> Key<[u8; 4]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

fn v6_key(net: &ipnet::Ipv6Net) -> Key<[u8; 16]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Map {
    ebpf.map_mut(name)
        .unwrap_or_else(|| panic!("the embedded program defines map {name}"))
}

fn map_data(map: &Map) -> &MapData {
    match map {
        Map::LpmTrie(data) | Map::PerCpuArray(data) | Map::Array(data) | Map::HashMap(data) => data,
        _ => unreachable!("the filter only has LPM tries and arrays"),
    }
}

/// Chunks to make room for: what the list needs, plus 1/16 (at least 4,096) for incremental
/// adds; a full second level makes `add` swap in a rebuilt table, so the room is kept small.
fn chunk_capacity(needed: u32) -> u32 {
    needed
        .saturating_add((needed / 16).max(4_096))
        .min(common::DIR_SLOTS)
}

/// Maps the values of an mmapable array map of the program into this process.
fn mapping(ebpf: &Ebpf, name: &str, len: usize) -> Result<sys::Mapping> {
    let map = ebpf
        .map(name)
        .unwrap_or_else(|| panic!("the embedded program defines map {name}"));
    sys::Mapping::new(map_data(map).fd().as_fd(), len)
        .map_err(|e| kernel(format!("mmap of map {name} ({len} bytes)"), e))
}

/// Packs LPM keys (`u32` prefix length in host order, then the address) for a batch update.
fn pack<const N: usize>(keys: impl Iterator<Item = Key<[u8; N]>>, out: &mut Vec<u8>) -> u32 {
    out.clear();
    let mut count = 0;
    for key in keys {
        out.extend_from_slice(&key.prefix_len().to_ne_bytes());
        out.extend_from_slice(&key.data());
        count += 1;
    }
    count
}

/// Fills a trie: batches where the kernel supports them, else one update per entry.
/// Returns whether batches were used.
fn fill<const N: usize>(
    map: &mut Map,
    name: &str,
    keys: &[Key<[u8; N]>],
    batch: bool,
) -> Result<bool> {
    let mut packed = Vec::with_capacity(BATCH.min(keys.len()) * (4 + N));
    let values = vec![0u8; BATCH.min(keys.len())];
    let mut batched = batch;
    for (chunk_index, chunk) in keys.chunks(BATCH).enumerate() {
        if batched {
            let count = pack(chunk.iter().copied(), &mut packed);
            match sys::update_batch(
                map_data(map).fd().as_fd(),
                &packed,
                &values[..chunk.len()],
                count,
            ) {
                Ok(_) => continue,
                Err((e, 0))
                    if chunk_index == 0
                        && matches!(
                            e.raw_os_error(),
                            Some(libc::EINVAL | ENOTSUPP | libc::EOPNOTSUPP)
                        ) =>
                {
                    batched = false;
                }
                Err((e, done)) => {
                    return Err(kernel(
                        format!(
                            "BPF_MAP_UPDATE_BATCH on {name} at entry {}",
                            chunk_index * BATCH + done as usize + 1
                        ),
                        e,
                    ));
                }
            }
        }
        let mut trie: LpmTrie<&mut MapData, [u8; N], u8> =
            LpmTrie::try_from(&mut *map).map_err(|e| kernel(format!("open map {name}"), e))?;
        for (i, key) in chunk.iter().enumerate() {
            trie.insert(key, &0, 0).map_err(|e| {
                kernel(
                    format!("update {name} entry {}", chunk_index * BATCH + i + 1),
                    e,
                )
            })?;
        }
    }
    Ok(batched)
}

/// Distinct keys of a sorted list: what the trie will hold.
fn distinct<const N: usize>(sorted: &[Key<[u8; N]>]) -> u64 {
    let same = |a: &Key<[u8; N]>, b: &Key<[u8; N]>| {
        a.data() == b.data() && a.prefix_len() == b.prefix_len()
    };
    let repeats = sorted.windows(2).filter(|w| same(&w[0], &w[1])).count();
    (sorted.len() - repeats) as u64
}

impl TcbpfFilter {
    /// A filter for the egress of `interface` in `netns`.
    pub fn new(netns: NetNs, tag: Tag, interface: &str, attach: Attach) -> Self {
        Self {
            netns,
            tag,
            interface: interface.to_owned(),
            attach: attach.resolve(),
            fill: Fill::Batch,
            program: Program::Filter,
            table: Table::LpmTrie,
            created_qdisc: false,
            current: None,
        }
    }

    /// Fills maps the given way (batches by default).
    #[must_use]
    pub fn with_fill(mut self, fill: Fill) -> Self {
        self.fill = fill;
        self
    }

    /// Hooks the given program (the filter by default).
    #[must_use]
    pub fn with_program(mut self, program: Program) -> Self {
        self.program = program;
        self
    }

    /// Looks destinations up in the given table (LPM tries by default).
    #[must_use]
    pub fn with_table(mut self, table: Table) -> Self {
        self.table = table;
        self
    }

    fn program_name(&self) -> &'static str {
        match (self.program, self.table) {
            (Program::Filter, Table::LpmTrie) => common::PROG_FILTER,
            (Program::Filter, Table::Dir24) => common::PROG_FILTER_DIR,
            (Program::Empty, _) => common::PROG_EMPTY,
            (Program::ColdLookup, Table::LpmTrie) => common::PROG_FILTER_COLD,
            (Program::ColdLookup, Table::Dir24) => common::PROG_FILTER_COLD_DIR,
            (Program::MixOnly, _) => common::PROG_MIX_ONLY,
        }
    }

    /// The attach mode in use (`tcx` or `clsact`).
    pub fn attach_mode(&self) -> Attach {
        self.attach
    }

    /// Loads a fresh program instance with maps sized for and filled with `list`.
    pub(crate) fn instance(
        list: &CidrList,
        fill_mode: Fill,
        hooked: &str,
        table: Table,
    ) -> Result<Instance> {
        let dir = (table == Table::Dir24).then(|| dir::Prepared::new(list.v4()));
        let v6_lengths = match table {
            Table::Dir24 => v6hash::lengths(list.v6()),
            Table::LpmTrie => None,
        };
        let capacity = [
            if dir.is_some() {
                1
            } else {
                capacity(list.v4().len())?
            },
            if v6_lengths.is_some() {
                v6hash::capacity(list.v6().len())
            } else {
                capacity(list.v6().len())?
            },
        ];
        let chunk_capacity = dir.as_ref().map(|d| chunk_capacity(d.chunks_needed()));
        // IPv4 goes to the DIR table or a trie; IPv6 to per-length hashes or a trie.
        let (v4_trie, dir_bytes) = match chunk_capacity {
            Some(chunks) => (
                0,
                u64::from(common::DIR_SLOTS) * 4
                    + u64::from(chunks) * common::DIR_CHUNK_BYTES as u64,
            ),
            None => (list.v4().len() as u64, 0),
        };
        let (v6_trie, v6_hash_bytes) = match v6_lengths {
            Some(_) => (0, u64::from(capacity[1]) * V6_HASH_BYTES_PER_ENTRY),
            None => (list.v6().len() as u64, 0),
        };
        let needed = (v4_trie + v6_trie) * TRIE_BYTES_PER_ENTRY + dir_bytes + v6_hash_bytes;
        filter_core::memory::require(
            "kernel memory for the BPF maps",
            needed,
            "free memory, load a shorter or aggregated list, or use the DIR-24-8 table for IPv4",
        )?;
        let (v6_global, v6_count) = v6hash::global(v6_lengths.as_deref().unwrap_or_default());
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(common::MAP_DENY_V4, capacity[0])
            .map_max_entries(
                common::MAP_DENY_V6,
                if v6_lengths.is_some() { 1 } else { capacity[1] },
            )
            .map_max_entries(
                common::MAP_DIR_V6,
                if v6_lengths.is_some() { capacity[1] } else { 1 },
            )
            .override_global(common::GLOBAL_V6_LENGTHS, &v6_global, true)
            .override_global(common::GLOBAL_V6_LENGTH_COUNT, &v6_count, true);
        if let Some(chunks) = chunk_capacity {
            loader
                .map_max_entries(common::MAP_DIR_SLOTS, common::DIR_SLOTS / 4)
                .map_max_entries(common::MAP_DIR_CHUNKS, chunks);
        }
        let mut ebpf = loader
            .load(PROGRAM)
            .map_err(|e| kernel("creating the BPF maps", e))?;
        let mut entries_v4 = 0;
        let dir = match (dir, chunk_capacity) {
            (Some(prepared), Some(capacity)) => {
                entries_v4 = prepared.len() as u64;
                let store = dir::Mapped {
                    slots: mapping(&ebpf, common::MAP_DIR_SLOTS, common::DIR_SLOTS as usize * 4)?,
                    chunks: mapping(
                        &ebpf,
                        common::MAP_DIR_CHUNKS,
                        capacity as usize * common::DIR_CHUNK_BYTES,
                    )?,
                    capacity,
                };
                Some(
                    prepared
                        .build_in(store)
                        .expect("the chunks map is sized for the list"),
                )
            }
            _ => None,
        };
        // Sorted, each insert walks the trie where the previous one did: its nodes are in
        // cache, and the fill takes about half the time of input order.
        let mut v4: Vec<_> = match dir {
            Some(_) => Vec::new(),
            None => list.v4().iter().map(v4_key).collect(),
        };
        let mut v6: Vec<_> = match v6_lengths {
            Some(_) => Vec::new(),
            None => list.v6().iter().map(v6_key).collect(),
        };
        v4.sort_unstable_by_key(|k| (k.data(), k.prefix_len()));
        v6.sort_unstable_by_key(|k| (k.data(), k.prefix_len()));
        let batch = fill_mode == Fill::Batch;
        let batched_v4 = fill(
            map_mut(&mut ebpf, common::MAP_DENY_V4),
            common::MAP_DENY_V4,
            &v4,
            batch,
        )?;
        let batched_v6 = fill(
            map_mut(&mut ebpf, common::MAP_DENY_V6),
            common::MAP_DENY_V6,
            &v6,
            batch,
        )?;
        let mut entries_v6 = distinct(&v6);
        if v6_lengths.is_some() {
            let mut keys: Vec<v6hash::HashKey> = list.v6().iter().map(v6hash::key).collect();
            keys.sort_unstable();
            keys.dedup();
            entries_v6 = keys.len() as u64;
            v6hash::fill(
                map_data(map_mut(&mut ebpf, common::MAP_DIR_V6)),
                common::MAP_DIR_V6,
                &keys,
            )?;
        }
        let program = program_mut(&mut ebpf, hooked)?;
        program
            .load()
            .map_err(|e| kernel(format!("loading program {hooked} (verifier)"), e))?;
        if dir.is_none() {
            entries_v4 = distinct(&v4);
        }
        Ok(Instance {
            ebpf,
            dir,
            v6_lengths,
            link: None,
            capacity,
            entries: [entries_v4, entries_v6],
            batched: batched_v4 && batched_v6,
        })
    }

    /// Hooks a loaded instance to the interface, inside the namespace.
    fn hook(&mut self, instance: &mut Instance) -> Result<()> {
        let interface = CString::new(self.interface.clone())
            .map_err(|_| Error::InvalidInput(format!("interface name {:?}", self.interface)))?;
        let attach = self.attach;
        let hooked = self.program_name();
        let ebpf = &mut instance.ebpf;
        let (link, created) = self.netns.run(move || -> Result<_> {
            let mut created = false;
            if attach == Attach::Clsact {
                match aya::programs::tc::qdisc_add_clsact(interface.as_c_str()) {
                    Ok(()) => created = true,
                    Err(e) if e.to_string().contains("exists") => {}
                    Err(e) => {
                        return Err(kernel(format!("adding a clsact qdisc to {interface:?}"), e));
                    }
                }
            }
            let program = program_mut(ebpf, hooked)?;
            let how = match attach {
                Attach::Clsact => TcAttach::Netlink {
                    parent: TcAttachType::Egress.into(),
                    options: NlOptions::default(),
                },
                _ => TcAttach::Tcx {
                    attach_type: TcAttachType::Egress,
                    order: LinkOrder::default(),
                },
            };
            let link = program.attach(interface.as_c_str(), how).map_err(|e| {
                kernel(
                    format!(
                        "attaching to the egress of {interface:?} ({})",
                        attach.name()
                    ),
                    e,
                )
            })?;
            Ok((link, created))
        })??;
        self.created_qdisc |= created;
        instance.link = Some(link);
        Ok(())
    }

    /// Drops an instance (detaching it) inside the namespace: a clsact filter is removed by
    /// interface index, which only means the right interface there.
    fn discard(&self, instance: Instance) {
        let _ = self.netns.run(move || drop(instance));
    }

    fn current(&mut self) -> Result<&mut Instance> {
        self.current.as_mut().ok_or(Error::NotLoaded)
    }

    fn change(&mut self, entries: &[IpNet], add: bool) -> Result<()> {
        let instance = self.current()?;
        for (done, net) in entries.iter().map(IpNet::trunc).enumerate() {
            if let (IpNet::V4(n), Some(table)) = (net, instance.dir.as_mut()) {
                let changed = if add { table.add(n) } else { table.remove(n) };
                match changed {
                    Ok(true) if add => instance.entries[0] += 1,
                    Ok(true) => instance.entries[0] -= 1,
                    Ok(false) => {}
                    Err(dir::ChunksFull { .. }) => {
                        // No chunk left: a bigger table with the whole list, swapped in.
                        return self.rebuild_with(&entries[done..], add);
                    }
                }
                continue;
            }
            if let (IpNet::V6(n), Some(lengths)) = (net, instance.v6_lengths.as_ref()) {
                if !lengths.contains(&n.prefix_len()) {
                    if add {
                        // A length the program does not look up: a table that does.
                        return self.rebuild_with(&entries[done..], add);
                    }
                    continue;
                }
                let map = map_mut(&mut instance.ebpf, common::MAP_DIR_V6);
                match update_hash(map, &v6hash::key(&n), add) {
                    Ok(true) if add => instance.entries[1] += 1,
                    Ok(true) => instance.entries[1] -= 1,
                    Ok(false) => {}
                    Err(MapError::SyscallError(e))
                        if add && e.io_error.raw_os_error() == Some(libc::E2BIG) =>
                    {
                        return self.rebuild_with(&entries[done..], add);
                    }
                    Err(e) => {
                        return Err(kernel(
                            format!(
                                "{} {net} in {}",
                                if add { "adding" } else { "removing" },
                                common::MAP_DIR_V6
                            ),
                            e,
                        ));
                    }
                }
                continue;
            }
            let (name, slot) = match net {
                IpNet::V4(_) => (common::MAP_DENY_V4, 0),
                IpNet::V6(_) => (common::MAP_DENY_V6, 1),
            };
            let capacity = instance.capacity[slot];
            let map = map_mut(&mut instance.ebpf, name);
            let result = match net {
                IpNet::V4(n) => update(map, &v4_key(&n), add),
                IpNet::V6(n) => update(map, &v6_key(&n), add),
            };
            match result {
                Ok(true) if add => instance.entries[slot] += 1,
                Ok(true) => instance.entries[slot] -= 1,
                Ok(false) => {}
                Err(e) if add && instance.entries[slot] >= u64::from(capacity) => {
                    return Err(Error::Limit {
                        limit: "BPF LPM trie max_entries",
                        requested: instance.entries[slot] + 1,
                        max: u64::from(capacity),
                        hint: format!("replace() the list to get maps sized for it ({e})"),
                    });
                }
                Err(e) => {
                    return Err(kernel(
                        format!(
                            "{} {net} in {name}",
                            if add { "adding" } else { "removing" }
                        ),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }
}

impl TcbpfFilter {
    /// Replaces the loaded list with itself plus (or less) `entries`: what `add` and `remove`
    /// do when the constant-time table cannot take a change in place (no chunk left, the
    /// IPv6 hash full, or an IPv6 prefix length the program does not look up).
    fn rebuild_with(&mut self, entries: &[IpNet], add: bool) -> Result<()> {
        let instance = self.current()?;
        let mut nets: std::collections::BTreeSet<IpNet> = instance
            .dir
            .as_mut()
            .map(|t| t.nets().into_iter().map(IpNet::V4).collect())
            .unwrap_or_default();
        if instance.v6_lengths.is_some() {
            let hash: HashMap<&MapData, v6hash::HashKey, u8> = instance
                .ebpf
                .map(common::MAP_DIR_V6)
                .ok_or_else(|| Error::InvalidInput("no IPv6 map".into()))?
                .try_into()
                .map_err(|e| kernel("open the IPv6 map", e))?;
            for key in hash.keys() {
                let key = key.map_err(|e| kernel("read the IPv6 map", e))?;
                nets.insert(IpNet::V6(v6hash::net(&key)?));
            }
        }
        let trie: LpmTrie<&MapData, [u8; 16], u8> = instance
            .ebpf
            .map(common::MAP_DENY_V6)
            .ok_or_else(|| Error::InvalidInput("no IPv6 map".into()))?
            .try_into()
            .map_err(|e| kernel("open the IPv6 map", e))?;
        for key in trie.keys() {
            let key = key.map_err(|e| kernel("read the IPv6 map", e))?;
            #[expect(clippy::cast_possible_truncation, reason = "prefix lengths are <= 128")]
            let net = ipnet::Ipv6Net::new(key.data().into(), key.prefix_len() as u8)
                .map_err(|e| Error::InvalidInput(format!("IPv6 map key: {e}")))?;
            nets.insert(IpNet::V6(net));
        }
        for net in entries.iter().map(IpNet::trunc) {
            if add {
                nets.insert(net);
            } else {
                nets.remove(&net);
            }
        }
        self.replace(&nets.into_iter().collect())
    }
}

/// Inserts (if absent) or removes one key; returns whether the map changed.
fn update<const N: usize>(
    map: &mut Map,
    key: &Key<[u8; N]>,
    add: bool,
) -> std::result::Result<bool, MapError> {
    let mut trie: LpmTrie<&mut MapData, [u8; N], u8> = LpmTrie::try_from(map)?;
    let result = if add {
        trie.insert(key, &0, u64::from(aya_obj_noexist()))
    } else {
        trie.remove(key)
    };
    changed(result)
}

/// Inserts (if absent) or removes one key of the IPv6 hash; returns whether it changed.
fn update_hash(
    map: &mut Map,
    key: &v6hash::HashKey,
    add: bool,
) -> std::result::Result<bool, MapError> {
    let mut hash: HashMap<&mut MapData, v6hash::HashKey, u8> = HashMap::try_from(map)?;
    changed(if add {
        hash.insert(key, &0, u64::from(aya_obj_noexist()))
    } else {
        hash.remove(key)
    })
}

/// An update's outcome as "changed or not": adding a present key or removing an absent one
/// is not an error.
fn changed(result: std::result::Result<(), MapError>) -> std::result::Result<bool, MapError> {
    match result {
        Ok(()) => Ok(true),
        Err(MapError::KeyNotFound) => Ok(false),
        Err(MapError::SyscallError(e))
            if matches!(e.io_error.raw_os_error(), Some(libc::EEXIST | libc::ENOENT)) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// `BPF_NOEXIST`: add only if absent.
const fn aya_obj_noexist() -> u32 {
    1
}

fn program_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    ebpf.program_mut(name)
        .ok_or_else(|| Error::InvalidInput(format!("the embedded object has no program {name}")))?
        .try_into()
        .map_err(|e| kernel(format!("program {name}"), e))
}

impl EgressFilter for TcbpfFilter {
    fn name(&self) -> &'static str {
        match (self.program, self.table, self.fill) {
            (Program::Empty, _, _) => "tcbpf-empty",
            (Program::ColdLookup, Table::LpmTrie, _) => "tcbpf-cold",
            (Program::ColdLookup, Table::Dir24, _) => "tcbpf-dir-cold",
            (Program::MixOnly, _, _) => "tcbpf-mix",
            (Program::Filter, Table::Dir24, _) => "tcbpf-dir",
            (Program::Filter, Table::LpmTrie, Fill::Batch) => "tcbpf",
            (Program::Filter, Table::LpmTrie, Fill::PerEntry) => "tcbpf-per-entry",
        }
    }

    fn backend(&self) -> String {
        let fill = match &self.current {
            Some(i) if !i.batched => "per-entry updates",
            _ => "BPF_MAP_UPDATE_BATCH",
        };
        match self.table {
            Table::LpmTrie => format!(
                "tc eBPF LPM trie, {} attach, {fill}, aya",
                self.attach.name()
            ),
            Table::Dir24 => {
                let v6 = match self.current.as_ref().and_then(|i| i.v6_lengths.as_ref()) {
                    Some(lengths) => format!("hash per prefix length {lengths:?}"),
                    None => format!("LPM trie, {fill}"),
                };
                format!(
                    "tc eBPF DIR-24-8 table (IPv4, mmap fill) + IPv6 {v6}, {} attach, aya",
                    self.attach.name()
                )
            }
        }
    }

    fn load(&mut self, list: &CidrList) -> Result<()> {
        if self.current.is_some() {
            return Err(Error::AlreadyLoaded);
        }
        let mut instance = Self::instance(list, self.fill, self.program_name(), self.table)?;
        if let Err(e) = self.hook(&mut instance) {
            self.discard(instance);
            let _ = self.teardown();
            return Err(e);
        }
        self.current = Some(instance);
        Ok(())
    }

    fn replace(&mut self, list: &CidrList) -> Result<()> {
        if self.current.is_none() {
            return Err(Error::NotLoaded);
        }
        let hooked = self.program_name();
        let mut next = Self::instance(list, self.fill, hooked, self.table)?;
        let mut old = self.current.take().expect("checked above");
        let taken = old
            .link
            .take()
            .ok_or_else(|| Error::InvalidInput("the loaded program is not hooked".into()))
            .and_then(|id| {
                program_mut(&mut old.ebpf, hooked)?
                    .take_link(id)
                    .map_err(|e| kernel("taking the hook's link", e))
            });
        let link = match taken {
            Ok(link) => link,
            Err(e) => {
                // Still attached (the program keeps its links); only replace is refused.
                self.current = Some(old);
                return Err(e);
            }
        };
        let ebpf = &mut next.ebpf;
        let swapped = self.netns.run(move || {
            program_mut(ebpf, hooked)?
                .attach_to_link(link)
                .map_err(|e| {
                    kernel(
                        "swapping programs on the hook (BPF_LINK_UPDATE / tc replace)",
                        e,
                    )
                })
        })?;
        match swapped {
            Ok(id) => {
                next.link = Some(id);
                self.current = Some(next);
                self.discard(old);
                Ok(())
            }
            Err(e) => {
                // The link went with the failed update: hook the old program again.
                self.discard(next);
                self.hook(&mut old)?;
                self.current = Some(old);
                Err(e)
            }
        }
    }

    fn add(&mut self, entries: &[IpNet]) -> Result<()> {
        self.change(entries, true)
    }

    fn remove(&mut self, entries: &[IpNet]) -> Result<()> {
        self.change(entries, false)
    }

    fn stats(&self) -> Result<FilterStats> {
        let instance = self.current.as_ref().ok_or(Error::NotLoaded)?;
        let counters: PerCpuArray<&MapData, [u64; 2]> = instance
            .ebpf
            .map(common::MAP_COUNTERS)
            .ok_or_else(|| Error::InvalidInput("no counters map".into()))?
            .try_into()
            .map_err(|e| kernel("open counters", e))?;
        let dropped = counters
            .get(&common::COUNTER_DROPPED, 0)
            .map_err(|e| kernel("read counters", e))?
            .iter()
            .fold([0u64; 2], |sum, cpu| [sum[0] + cpu[0], sum[1] + cpu[1]]);
        let mut memory = 0;
        for name in [
            common::MAP_DENY_V4,
            common::MAP_DENY_V6,
            common::MAP_DIR_SLOTS,
            common::MAP_DIR_CHUNKS,
            common::MAP_DIR_V6,
            common::MAP_COUNTERS,
        ] {
            if let Some(map) = instance.ebpf.map(name) {
                memory += sys::memlock(map_data(map).fd().as_fd()).unwrap_or(0);
            }
        }
        Ok(FilterStats {
            entries_v4: instance.entries[0],
            entries_v6: instance.entries[1],
            packets_matched: Some(dropped[0]),
            bytes_matched: Some(dropped[1]),
            kernel_memory: Some(KernelMemory {
                bytes: memory,
                source: "memlock of the maps in /proc/self/fdinfo (the kernel's map_mem_usage)"
                    .into(),
            }),
        })
    }

    fn program_costs(&mut self, probes: &[(String, std::net::IpAddr)]) -> Result<Vec<ProgramCost>> {
        let instance = self.current.as_mut().ok_or(Error::NotLoaded)?;
        // Cold lookups for the families the list holds (both when it is empty).
        let held: Vec<Family> = Family::BOTH
            .into_iter()
            .zip(instance.entries)
            .filter(|&(_, n)| n > 0)
            .map(|(family, _)| family)
            .collect();
        let cold = if held.is_empty() {
            Family::BOTH.to_vec()
        } else {
            held
        };
        cost::measure(
            &mut instance.ebpf,
            self.table,
            probes,
            &cold,
            &cost::Settings::default(),
        )
    }

    fn teardown(&mut self) -> Result<()> {
        if let Some(instance) = self.current.take() {
            self.discard(instance);
        }
        if self.created_qdisc {
            self.created_qdisc = false;
            // Another filter may have hooked the qdisc since: then it stays.
            if self.other_tc_filters()? {
                return Ok(());
            }
            let mut cmd = self.netns.command("tc");
            cmd.args(["qdisc", "del", "dev", &self.interface, "clsact"]);
            filter_core::run_command(&mut cmd)?;
        }
        Ok(())
    }
}

impl TcbpfFilter {
    /// Whether tc filters other than ours sit on the interface's clsact hooks (ours are
    /// gone when this is asked).
    fn other_tc_filters(&self) -> Result<bool> {
        for direction in ["ingress", "egress"] {
            let mut cmd = self.netns.command("tc");
            cmd.args(["filter", "show", "dev", &self.interface, direction]);
            if filter_core::run_command(&mut cmd)?
                .lines()
                .any(|l| !l.trim().is_empty())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Drop for TcbpfFilter {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
