//! Egress filter engine with a tc eBPF program: the destination of every IP packet leaving
//! an interface is looked up and the packet is dropped on a match. Two [`Table`]s:
//! an LPM trie per family (`BPF_MAP_TYPE_LPM_TRIE`, `BPF_F_NO_PREALLOC`; the default), or
//! bounded-time tables written through mmap ([`Table::Dir24`]): for IPv4 a DIR-24-8 table
//! ([`dir`]: one or two array reads per packet whatever the list; 64 MiB and up) or, for
//! short lists, a range table whose memory follows the list; for IPv6 a range table (a few
//! reads per packet whatever the prefix lengths).
//!
//! - The program (crate `filter-tcbpf-ebpf`) is built at build time and embedded.
//! - It is attached with TCX on Linux 6.6+ (a BPF link: it goes away with the process),
//!   otherwise with a `clsact` qdisc and a direct-action filter. [`Attach`] picks; each
//!   attach kind is one file of [`hooks`].
//! - Tries are sized to the list (`max_entries` = twice the entries, at least 1,024) and filled
//!   with `BPF_MAP_UPDATE_BATCH` where the kernel has it, else one update per entry. The
//!   bounded-time tables are built in user space straight into their maps' mmap views.
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

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod btf;
mod changes;
mod config;
pub mod cost;
mod destroy;
pub mod dir;
mod engine;
mod error;
mod fill;
mod grace;
pub mod hooks;
mod instance;
pub mod pin;
mod range;
mod sys;

use std::os::fd::AsFd;

use aya::maps::{MapData, PerCpuArray};
use filter_core::{
    CidrList, EgressFilter, Error, Family, FilterStats, KernelMemory, NetNs, ProgramCost, Result,
    Tag, Target,
};
use filter_tcbpf_common as common;
use ipnet::IpNet;

pub use config::{Fill, Program, Table};
pub use engine::{ENGINE, TcbpfOptions, names};
pub use hooks::{Attach, HookKind};

pub use error::TcbpfError;
use error::kernel;
use fill::map_data;
use hooks::Hook;
use instance::Instance;

/// A kernel refusal met through aya, as [`Error::Kernel`] naming `operation` and the errno:
/// for crates that load programs of their own on this crate's [`hooks`].
pub fn kernel_error(operation: impl Into<String>, err: impl std::error::Error + 'static) -> Error {
    kernel(operation, err).into()
}

/// The kernel memory a BPF map holds (the `memlock` of its fdinfo), 0 when unknown.
pub fn map_memlock(map: &aya::maps::Map) -> u64 {
    sys::memlock(map_data(map).fd().as_fd()).unwrap_or(0)
}

/// The tc eBPF LPM-trie filter; see the [crate docs](crate).
pub struct TcbpfFilter {
    netns: NetNs,
    hook: Box<dyn Hook>,
    fill: Fill,
    program: Program,
    table: Table,
    /// The constant-time tables: IPv4 lists up to this many entries go to the range table.
    v4_range_max: usize,
    current: Option<Instance>,
    /// Tests only: the next program swap fails, as a kernel refusal would.
    fail_next_swap: bool,
    /// The list in the maps, for `sync`.
    held: filter_core::Held,
    /// Connect-time hooks: the cgroup whose open connections to newly denied addresses are
    /// closed.
    closes_in: Option<std::path::PathBuf>,
    /// Why open connections could not be closed, the last time it failed.
    close_failed: Option<String>,
    /// How long closing open connections took, the last time.
    close_took: Option<std::time::Duration>,
    /// The programs that close them, loaded at the first change that needs them.
    closer: Option<destroy::Closer>,
    /// The run's tag: the name of the pins.
    tag: Tag,
    /// Whether the hook's links are pinned, so the filter outlives the process
    /// ([`persist`](EgressFilter::persist)).
    persistent: bool,
}

impl TcbpfFilter {
    /// A filter for the egress of `interface` in `netns`.
    ///
    /// # Panics
    /// When `attach` names a kind that hooks no interface ([`Attach::CGROUP`]: build that
    /// with [`at`](Self::at) and a [`Target::cgroup`]).
    pub fn new(netns: NetNs, tag: Tag, interface: &str, attach: Attach) -> Self {
        Self::at(netns, tag, &Target::egress(interface), attach)
            .expect("the attach kinds that hook interfaces take one")
    }

    /// A filter for `target` in `netns`, hooked the way `attach` says.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the attach kind cannot hook that kind of target.
    pub fn at(netns: NetNs, tag: Tag, target: &Target, attach: Attach) -> Result<Self> {
        let hook = (attach.resolve().make)(target, &tag)?;
        Ok(Self {
            netns,
            hook,
            fill: Fill::Batch,
            program: Program::Filter,
            table: Table::LpmTrie,
            v4_range_max: common::V4_RANGE_MAX_ENTRIES,
            current: None,
            fail_next_swap: false,
            held: filter_core::Held::default(),
            closes_in: (attach.resolve().flavour == hooks::Flavour::Connect)
                .then(|| target.cgroup_path().map(std::path::Path::to_path_buf))
                .flatten(),
            close_failed: None,
            close_took: None,
            closer: None,
            tag,
            persistent: false,
        })
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

    /// With [`Table::Dir24`]: IPv4 lists of up to `entries` go to a range table whose kernel
    /// memory follows the list, longer ones to DIR-24-8 (64 MiB from the first entry).
    /// Default [`V4_RANGE_MAX_ENTRIES`](common::V4_RANGE_MAX_ENTRIES); 0 always takes
    /// DIR-24-8, `usize::MAX` always the range table.
    #[must_use]
    pub fn with_ipv4_range_max(mut self, entries: usize) -> Self {
        self.v4_range_max = entries;
        self
    }

    fn layout(&self) -> instance::Layout {
        instance::Layout {
            table: self.table,
            v4_range_max: self.v4_range_max,
        }
    }

    /// The program the hook runs: the build of the filter for the hook's program type.
    fn program_name(&self) -> Result<&'static str> {
        let flavour = self.hook.kind().flavour;
        Ok(match (flavour, self.program, self.table) {
            (hooks::Flavour::Tc, Program::Filter, Table::LpmTrie) => common::PROG_FILTER,
            (hooks::Flavour::Tc, Program::Filter, Table::Dir24) => common::PROG_FILTER_DIR,
            (hooks::Flavour::Tc, Program::Empty, _) => common::PROG_EMPTY,
            (hooks::Flavour::Tc, Program::ColdLookup, Table::LpmTrie) => common::PROG_FILTER_COLD,
            (hooks::Flavour::Tc, Program::ColdLookup, Table::Dir24) => common::PROG_FILTER_COLD_DIR,
            (hooks::Flavour::Tc, Program::MixOnly, _) => common::PROG_MIX_ONLY,
            (hooks::Flavour::CgroupSkb, Program::Filter, Table::LpmTrie) => common::PROG_CG_FILTER,
            (hooks::Flavour::CgroupSkb, Program::Filter, Table::Dir24) => {
                common::PROG_CG_FILTER_DIR
            }
            (hooks::Flavour::CgroupSkb, Program::Empty, _) => common::PROG_CG_EMPTY,
            (hooks::Flavour::Connect, Program::Filter, Table::LpmTrie) => common::PROG_CN_FILTER,
            (hooks::Flavour::Connect, Program::Filter, Table::Dir24) => common::PROG_CN_FILTER_DIR,
            (hooks::Flavour::Connect, Program::Empty, _) => common::PROG_CN_EMPTY,
            (hooks::Flavour::CgroupSkb | hooks::Flavour::Connect, program, _) => {
                return Err(Error::InvalidInput(format!(
                    "the benchmark-only program {program:?} runs on tc hooks only, not on {}",
                    self.hook.kind().name
                )));
            }
        })
    }

    /// Tests only: makes the next program swap of `replace` fail after the hook's link was
    /// taken from the old program, to prove the old list is hooked again.
    #[cfg(feature = "test-hooks")]
    pub fn fail_next_swap(&mut self) {
        self.fail_next_swap = true;
    }

    /// Deletes the keys of entries whose timeout has passed (they no longer match, but keep
    /// their memory until deleted) and returns how many went. Every change runs it first;
    /// a caller that adds with timeouts and then goes quiet can run it from time to time.
    ///
    /// # Errors
    /// [`Error::Kernel`] when the kernel refuses a delete.
    pub fn sweep_expired(&mut self) -> Result<usize> {
        if self.current.is_none() {
            return Ok(0);
        }
        let gone = self.held.take_expired();
        if !gone.is_empty() {
            self.change(&gone, false, None)?;
        }
        Ok(gone.len())
    }

    /// On the connect-time hooks, closes the cgroup's open TCP and UDP sockets whose peer
    /// `entries` (newly denied) cover, with a BPF socket iterator and `bpf_sock_destroy`
    /// (Linux 6.5+): `connect()` is where the hooks decide, so a connection opened before its
    /// address was denied would otherwise go on. A failure does not undo the change (new
    /// connections are refused); [`warnings`](EgressFilter::warnings) says it.
    fn close_open_connections(&mut self, entries: &[IpNet]) {
        let Some(cgroup) = &self.closes_in else {
            return;
        };
        if entries.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let closer = match self.closer.take() {
            Some(closer) => Ok(closer),
            None => std::fs::metadata(cgroup)
                .and_then(|meta| destroy::Closer::new(std::os::unix::fs::MetadataExt::ino(&meta))),
        };
        let closed = closer.and_then(|mut closer| {
            let entries = entries.to_vec();
            let (closer, result) = self
                .netns
                .run(move || {
                    let result = closer.close(&entries);
                    (closer, result)
                })
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.closer = Some(closer);
            result
        });
        self.close_took = Some(started.elapsed());
        self.close_failed = closed.err().map(|e| {
            format!(
                "connections already open to newly denied addresses were not closed \
                 (bpf_sock_destroy, Linux 6.5+): {e}"
            )
        });
    }

    /// How long closing the cgroup's open connections to newly denied addresses took after
    /// the last change that denied some (connect-time hooks only).
    pub fn closing_time(&self) -> Option<std::time::Duration> {
        self.close_took
    }

    /// The attach kind in use (`tcx` or `clsact`).
    pub fn attach_mode(&self) -> Attach {
        Attach::Kind(self.hook.kind())
    }

    /// Drops an instance (detaching it) inside the namespace: a clsact filter is removed by
    /// interface index, which only means the right interface there.
    fn discard(&self, instance: Instance) {
        let _ = self.netns.run(move || drop(instance));
    }

    /// The loaded instance.
    fn current(&mut self) -> Result<&mut Instance> {
        self.current.as_mut().ok_or(Error::NotLoaded)
    }
}

impl EgressFilter for TcbpfFilter {
    fn name(&self) -> &'static str {
        use engine::names;
        match (self.program, self.table, self.fill) {
            (Program::Empty, _, _) => names::TCBPF_EMPTY,
            (Program::ColdLookup, Table::LpmTrie, _) => names::TCBPF_COLD,
            (Program::ColdLookup, Table::Dir24, _) => names::TCBPF_DIR_COLD,
            (Program::MixOnly, _, _) => names::TCBPF_MIX,
            (Program::Filter, Table::Dir24, _) => names::TCBPF_DIR,
            (Program::Filter, Table::LpmTrie, Fill::Batch) => names::TCBPF,
            (Program::Filter, Table::LpmTrie, Fill::PerEntry) => names::TCBPF_PER_ENTRY,
        }
    }

    fn backend(&self) -> String {
        let fill = match &self.current {
            Some(i) if i.fallback.is_some() => "per-entry updates (batch refused)",
            Some(i) if !i.batched => "per-entry updates",
            _ => "BPF_MAP_UPDATE_BATCH",
        };
        match self.table {
            Table::LpmTrie => format!(
                "tc eBPF LPM trie, {} attach, {fill}, aya",
                self.hook.kind().name
            ),
            Table::Dir24 => {
                let shape = |table: Option<&range::Ranges<range::Mapped>>| match table {
                    Some(r) => format!(
                        ": 2^{} cells, {} subdirectories, {} leaves",
                        r.top(),
                        r.subdirs_used(),
                        r.lines_used()
                    ),
                    None => String::new(),
                };
                let current = self.current.as_ref();
                let v4 = match current.and_then(|i| i.v4_ranges.as_ref()) {
                    Some(table) => format!("range table (IPv4{})", shape(Some(table))),
                    None => "DIR-24-8 table (IPv4)".to_owned(),
                };
                format!(
                    "tc eBPF {v4} + range table (IPv6{}), mmap fill, {} attach, aya",
                    shape(current.and_then(|i| i.ranges.as_ref())),
                    self.hook.kind().name
                )
            }
        }
    }

    /// The keys of the tries, walked in the kernel, against the keys the filter's bookkeeping
    /// says it wrote; for the constant-time tables, which keep addresses rather than entries,
    /// the denied ranges their kernel memory holds (walked through the mmap views) against
    /// the ranges the list's prefixes make.
    fn kernel_count(&self) -> Result<Option<filter_core::KernelCount>> {
        let instance = self.current.as_ref().ok_or(Error::NotLoaded)?;
        if let Some(ranges) = &instance.ranges {
            let v4 = match (&instance.dir, &instance.v4_ranges) {
                (Some(dir), _) => [dir.ranges_in_table(), dir.ranges_of_list()],
                (_, Some(table)) => [table.ranges_in_table(), table.ranges_of_list()],
                (None, None) => unreachable!("an instance with a range table has an IPv4 table"),
            };
            return Ok(Some(filter_core::KernelCount {
                unit: filter_core::CountUnit::Ranges,
                read: [Some(v4[0]), Some(ranges.ranges_in_table())],
                expected: [v4[1], ranges.ranges_of_list()],
            }));
        }
        let v4 = fill::count_keys::<aya::maps::LpmTrie<_, [u8; 4], u64>>(
            &instance.ebpf,
            common::MAP_DENY_V4,
        )?;
        let v6 = fill::count_keys::<aya::maps::LpmTrie<_, [u8; 16], u64>>(
            &instance.ebpf,
            common::MAP_DENY_V6,
        )?;
        Ok(Some(filter_core::KernelCount {
            unit: filter_core::CountUnit::MapKeys,
            read: [Some(v4), Some(v6)],
            expected: instance.entries,
        }))
    }

    fn warnings(&self) -> Vec<String> {
        self.current
            .as_ref()
            .and_then(|i| i.fallback.clone())
            .into_iter()
            .chain(self.close_failed.clone())
            .collect()
    }

    fn load(&mut self, list: &CidrList) -> Result<()> {
        if self.current.is_some() {
            return Err(Error::AlreadyLoaded);
        }
        let program = self.program_name()?;
        let mut instance = Self::instance(list, self.fill, program, self.layout())?;
        if self.hook.is_attached() {
            // Adopted: the pinned links move to the new program in one kernel operation,
            // and on a refusal keep the one they ran.
            let fail = std::mem::take(&mut self.fail_next_swap);
            let swapped = self
                .hook
                .swap(&self.netns, None, &mut instance.ebpf, program, fail);
            if let Err(e) = swapped {
                self.discard(instance);
                return Err(e);
            }
        } else if let Err(e) = self.hook.attach(&self.netns, &mut instance.ebpf, program) {
            self.discard(instance);
            let _ = self.teardown();
            return Err(e);
        }
        self.current = Some(instance);
        self.held.set(list);
        if self.persistent
            && let Err(e) = pin::pin_links(&self.tag, &self.hook.links())
        {
            let _ = self.teardown();
            return Err(e);
        }
        Ok(())
    }

    /// Pins the hook's links under `<bpffs>/<tag>/` (mounting a bpffs at
    /// [`pin::OWN_MOUNT`] when none is, unmounted with the last pin): the list stays enforced
    /// when this value is dropped and when the process exits, killed or not. TCX and the cgroup attach kinds; clsact filters stay anyway
    /// but cannot be adopted.
    fn persist(&mut self) -> Result<()> {
        if self.hook.link_names().is_empty() {
            return Err(Error::Unsupported {
                feature: "adopting a filter after its process",
                engine: self.name(),
                hint: format!(
                    "the {} attach holds no link to pin: use --attach tcx, cgroup or connect",
                    self.hook.kind().name
                ),
            });
        }
        if self.current.is_some() {
            pin::pin_links(&self.tag, &self.hook.links())?;
        }
        self.persistent = true;
        Ok(())
    }

    /// Opens the links pinned under `<bpffs>/<tag>/` and holds them: the old list stays
    /// enforced until the first `sync` or `load` moves the links to a new program. Entry
    /// changes (`add`, `remove`) need that first `sync`: the old list is not read back.
    fn adopt(&mut self) -> Result<bool> {
        if self.current.is_some() || self.hook.is_attached() {
            return Err(Error::AlreadyLoaded);
        }
        self.persist()?;
        match pin::open(&self.tag, &self.hook.link_names())? {
            Some(links) => {
                self.hook.adopt(links)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn replace(&mut self, list: &CidrList) -> Result<()> {
        if self.current.is_none() {
            return Err(Error::NotLoaded);
        }
        let program = self.program_name()?;
        let mut next = Self::instance(list, self.fill, program, self.layout())?;
        // Only the connect hooks close connections: no whole-list difference otherwise.
        let denied = match self.closes_in {
            Some(_) => filter_core::difference(&self.held.list(), list).1,
            None => Vec::new(),
        };
        let mut old = self.current.take().expect("checked above");
        let fail = std::mem::take(&mut self.fail_next_swap);
        let swapped = self.hook.swap(
            &self.netns,
            Some(&mut old.ebpf),
            &mut next.ebpf,
            program,
            fail,
        );
        match swapped {
            Ok(()) => {
                self.current = Some(next);
                self.held.set(list);
                self.discard(old);
                self.close_open_connections(&denied);
                Ok(())
            }
            Err(e) => {
                self.discard(next);
                if self.hook.is_attached() {
                    self.current = Some(old);
                } else {
                    // Neither program is hooked: nothing is enforced, which the error says.
                    self.discard(old);
                    self.held.clear();
                }
                Err(e)
            }
        }
    }

    fn add(&mut self, entries: &[IpNet]) -> Result<()> {
        self.sweep_expired()?;
        match self.change(entries, true, None)? {
            Some(new) => self.held.add_known(entries, &new),
            None => self.held.add(entries),
        }
        self.close_open_connections(entries);
        Ok(())
    }

    fn remove(&mut self, entries: &[IpNet]) -> Result<()> {
        self.sweep_expired()?;
        self.change(entries, false, None)?;
        self.held.remove(entries);
        Ok(())
    }

    /// Native in the LPM tries: each entry's value holds its deadline, which the program
    /// checks against the kernel's clock, so an entry stops matching on time whether or not
    /// this process is alive (with clsact the program stays hooked after it exits). An expired
    /// entry never hides a shorter one that still holds (see
    /// [`trie_value`](filter_tcbpf_common::trie_value)). Expired keys keep their memory until
    /// [`sweep_expired`](TcbpfFilter::sweep_expired), which every change runs first.
    ///
    /// The constant-time table (`tcbpf-dir`) refuses: its IPv4 side keeps one bit per
    /// address, with no room for a deadline.
    fn add_with_timeout(&mut self, entries: &[IpNet], ttl: std::time::Duration) -> Result<()> {
        if self.table == Table::Dir24 {
            return Err(Error::Unsupported {
                feature: "per-entry timeouts",
                engine: self.name(),
                hint: "the constant-time table keeps one bit per IPv4 address, with no room \
                       for a deadline: use tcbpf (LPM tries)"
                    .into(),
            });
        }
        self.sweep_expired()?;
        let ttl_ns = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        let deadline = sys::monotonic_ns()
            .map_err(|e| kernel("reading CLOCK_MONOTONIC", e))?
            .saturating_add(ttl_ns);
        self.change(entries, true, Some(deadline))?;
        self.held
            .add_expiring(entries, std::time::Instant::now() + ttl);
        self.close_open_connections(entries);
        Ok(())
    }

    fn held(&self) -> Option<CidrList> {
        self.current.as_ref().map(|_| self.held.list())
    }

    fn expiring(&self) -> Vec<IpNet> {
        self.held.expiring()
    }

    /// Past a quarter of the list changing, a fresh program with maps filled in batches,
    /// swapped in by one link update, beats per-entry map updates.
    fn sync(&mut self, desired: &CidrList) -> Result<filter_core::SyncReport> {
        filter_core::sync_or_swap(self, desired, 0.25)
    }

    fn stats(&self) -> Result<FilterStats> {
        let instance = self.current.as_ref().ok_or(Error::NotLoaded)?;
        let counters: PerCpuArray<&MapData, [u64; 2]> = instance
            .ebpf
            .map(common::MAP_COUNTERS)
            .ok_or_else(|| TcbpfError::MissingObject("counters map".into()))?
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
            common::MAP_V6_CELLS,
            common::MAP_V6_HIGH,
            common::MAP_V6_LOW,
            common::MAP_V4R_CELLS,
            common::MAP_V4R_POINTS,
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
                source: filter_core::MemorySource::MapMemlock,
            }),
        })
    }

    fn program_costs(
        &mut self,
        probes: &[(filter_core::CostProbe, std::net::IpAddr)],
    ) -> Result<Vec<ProgramCost>> {
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

    /// Removes the filter, pinned or not.
    fn teardown(&mut self) -> Result<()> {
        self.held.clear();
        let unpinned = std::mem::take(&mut self.persistent).then(|| pin::remove(&self.tag));
        if let Some(instance) = self.current.take() {
            self.discard(instance);
        }
        let released = self.hook.release(&self.netns);
        unpinned.transpose().and(released)
    }
}

impl Drop for TcbpfFilter {
    /// Tears the filter down, unless it was made to outlive this value
    /// ([`persist`](EgressFilter::persist)): then only this process's descriptors close.
    fn drop(&mut self) {
        if self.persistent {
            if let Some(instance) = self.current.take() {
                self.discard(instance);
            }
            let _ = self.hook.release(&self.netns);
        } else {
            let _ = self.teardown();
        }
    }
}
