//! Egress filter engine with one ipset `hash:net` set per family, matched by one iptables
//! rule per family: the kernel does one hash lookup per prefix length in the set, whatever
//! the number of entries.
//!
//! Sets are created sized for the list (`hashsize` a power of two at least the entry count,
//! so the kernel never rehashes while loading; `maxelem` with room to grow), filled over
//! nfnetlink with about 1,500 entries per message, and only then matched by the rule
//! `-A <chain> -m set --match-set <set> dst -j DROP` in a chain jumped to from `OUTPUT`.
//! A failed load destroys what it created. [`replace`](EgressFilter::replace) fills a second
//! set and swaps the two in one kernel operation.
//!
//! Requires ipset support (`ip_set_hash_net`, `xt_set`) and the iptables tools;
//! `CAP_NET_ADMIN` in the target namespace.
//!
//! ```no_run
//! use filter_core::{CidrList, EgressFilter, NetNs, Tag};
//! use filter_ipset::IpsetFilter;
//! use filter_ipset::Backend;
//!
//! let list: CidrList = ["203.0.113.0/24".parse()?].into_iter().collect();
//! let mut filter = IpsetFilter::new(NetNs::named("blue"), Tag::new("demo")?, Backend::Nft)?;
//! filter.load(&list)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod error;
mod netlink;

use std::io::Write;

use filter_core::engine::{Placement, Variant};
use filter_core::{
    CidrList, EgressFilter, Engine, Error, Family, FilterStats, KernelMemory, NetNs, Result, Tag,
    run_command,
};
use ipnet::IpNet;
pub use xtables::Backend;

pub use error::IpsetError;
use netlink::{Entries, IpsetSocket};

/// The engine's variant: sets filled over nfnetlink.
pub const IPSET: &str = "ipset";
/// The reference loader's variant: the same sets filled by `ipset restore`.
pub const IPSET_RESTORE: &str = "ipset-restore";

/// The engine, as egress-bench's registry sees it: [`IPSET`] and its reference loader
/// [`IPSET_RESTORE`]; options [`IpsetOptions`].
pub static ENGINE: Engine = Engine {
    name: "ipset",
    variants: &[
        Variant {
            load_compared_with: Some(IPSET_RESTORE),
            ..Variant::engine(
                IPSET,
                "ipset hash:net filled over nfnetlink, one iptables rule",
                |at| build(at, IpsetFilter::new),
            )
        },
        Variant::reference(
            IPSET_RESTORE,
            "Reference loader: the same set filled by `ipset restore`",
            |at| build(at, IpsetFilter::reference),
        ),
    ],
    leftovers,
    remove_leftovers,
    target_kind: filter_core::engine::egress_target,
};

/// The settings of the ipset engine in a [`Placement`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpsetOptions {
    /// The iptables back-end of the rule that matches the set (`nft` by default).
    pub backend: Backend,
    /// Create sets with this `maxelem` and refuse longer lists, as Calico Felix does with
    /// its `MaxIpsetSize` (default: twice the list, at least 65,536).
    pub maxelem: Option<u32>,
    /// Create sets with the timeout extension, for `add_with_timeout` (8 bytes per entry).
    pub timeouts: bool,
}

type Make = fn(NetNs, Tag, Backend) -> Result<IpsetFilter>;

fn build(at: &Placement, make: Make) -> Result<Box<dyn EgressFilter>> {
    let options: IpsetOptions = at.options.get();
    let mut filter = make(at.netns.clone(), at.tag.clone(), options.backend)?;
    if options.timeouts {
        filter = filter.with_timeouts();
    }
    Ok(match options.maxelem {
        Some(maxelem) => Box::new(filter.with_maxelem(maxelem)),
        None => Box::new(filter),
    })
}

/// The sets in `netns` whose names start with `prefix`.
fn sets(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    Ok(run_command(netns.command("ipset").args(["list", "-n"]))?
        .lines()
        .filter(|name| filter_core::under_prefix(name, prefix))
        .map(str::to_owned)
        .collect())
}

/// The chains and sets of this engine in `netns` under `prefix`.
fn leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    let mut found = xtables::chain_leftovers(netns, prefix)?;
    found.extend(
        sets(netns, prefix)?
            .into_iter()
            .map(|set| format!("ipset {set}")),
    );
    Ok(found)
}

/// Removes the chains first (a set matched by a rule cannot be destroyed), then the sets.
fn remove_leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    let mut removed = xtables::remove_chain_leftovers(netns, prefix)?;
    for set in sets(netns, prefix)? {
        run_command(netns.command("ipset").args(["destroy", &set]))?;
        removed.push(format!("ipset {set}"));
    }
    Ok(removed)
}

/// Most entries one set may hold: `hashsize` must stay a power of two below 2^31 in the
/// kernel, and a set this large already needs tens of GiB.
pub const MAX_ENTRIES: u64 = 1 << 28;

/// Kernel memory a set needs per entry, for the up-front memory check (an element, its
/// share of a bucket, and its hash slot: 59-62 bytes measured on 6.18 at 10M entries).
const BYTES_PER_ENTRY: u64 = 64;

/// Calico Felix's default `MaxIpsetSize`: the set size at which Calico's published
/// breaking point ("Hash is full, cannot add more elements") came.
pub const FELIX_DEFAULT_MAXELEM: u32 = 1_048_576;

/// Sizes of a set made for `entries` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSize {
    /// Buckets: a power of two, at least the entry count, so loading never triggers a resize.
    pub hashsize: u32,
    /// The most elements the set accepts: twice the list, at least 65,536, unless fixed.
    pub maxelem: u32,
}

impl SetSize {
    /// The size for a list of `entries` distinct entries, or an [`Error::Limit`] naming the
    /// limit: [`MAX_ENTRIES`], kernel memory against `MemAvailable`, or `maxelem` when the
    /// caller fixes it (as Calico does).
    ///
    /// # Errors
    ///
    /// [`Error::Limit`] when the list does not fit.
    ///
    /// # Panics
    /// Never: sizes are bounded by [`MAX_ENTRIES`] before they are narrowed.
    pub fn for_entries(entries: usize, fixed_maxelem: Option<u32>) -> Result<Self> {
        let n = entries as u64;
        if let Some(max) = fixed_maxelem
            && n > u64::from(max)
        {
            return Err(IpsetError::MaxelemExceeded {
                requested: n,
                maxelem: max,
            }
            .into());
        }
        if n > MAX_ENTRIES {
            return Err(IpsetError::TooManyEntries { requested: n }.into());
        }
        filter_core::memory::require(
            "kernel memory for the ipset",
            n * BYTES_PER_ENTRY,
            "free memory, or load a shorter or aggregated list (--aggregate)",
        )?;
        let hashsize =
            u32::try_from(n.max(64).next_power_of_two()).expect("bounded by MAX_ENTRIES");
        let maxelem = fixed_maxelem
            .unwrap_or_else(|| u32::try_from((n * 2).max(65_536)).expect("bounded by MAX_ENTRIES"));
        Ok(Self { hashsize, maxelem })
    }
}

/// How sets are created and filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loader {
    /// nfnetlink messages from this process (the engine).
    Netlink,
    /// `ipset restore` fed a script (the reference loader).
    Restore,
}

impl Loader {
    /// The registry variant this loader is.
    fn variant(self) -> &'static str {
        match self {
            Loader::Netlink => IPSET,
            Loader::Restore => IPSET_RESTORE,
        }
    }
}

/// An ipset `hash:net` set per family and one iptables rule each; see the [crate docs](crate).
pub struct IpsetFilter {
    netns: NetNs,
    tag: Tag,
    backend: Backend,
    loader: Loader,
    socket: IpsetSocket,
    loaded: bool,
    maxelem: Option<u32>,
    /// Tests only: the next IPv6 swap fails, as a kernel refusal would.
    fail_next_v6_swap: bool,
    /// The list in the sets, for `sync`.
    held: filter_core::Held,
    /// Whether sets are made with the timeout extension (entries may expire).
    timeouts: bool,
}

impl IpsetFilter {
    /// The engine: sets filled over nfnetlink by this process.
    ///
    /// # Errors
    /// [`Error::Io`] when the netlink socket cannot be opened in the namespace.
    pub fn new(netns: NetNs, tag: Tag, backend: Backend) -> Result<Self> {
        Self::with_loader(netns, tag, backend, Loader::Netlink)
    }

    /// The reference loader: the same sets and rules, filled by `ipset restore`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn reference(netns: NetNs, tag: Tag, backend: Backend) -> Result<Self> {
        Self::with_loader(netns, tag, backend, Loader::Restore)
    }

    fn with_loader(netns: NetNs, tag: Tag, backend: Backend, loader: Loader) -> Result<Self> {
        let socket = IpsetSocket::open(&netns)?;
        Ok(Self {
            netns,
            tag,
            backend,
            loader,
            socket,
            loaded: false,
            maxelem: None,
            fail_next_v6_swap: false,
            held: filter_core::Held::default(),
            timeouts: false,
        })
    }

    /// Tests only: makes the next swap of the IPv6 set fail, to prove a replace that fails
    /// half way leaves the old list in force in both families.
    #[cfg(feature = "test-hooks")]
    pub fn fail_next_swap(&mut self) {
        self.fail_next_v6_swap = true;
    }

    fn swap(&mut self, family: Family) -> Result<()> {
        if family == Family::V6 && std::mem::take(&mut self.fail_next_v6_swap) {
            return Err(IpsetError::Refused(filter_core::Refusal {
                operation: "swapping the IPv6 set (injected by a test)".into(),
                code: -1,
                message: "injected failure".into(),
            })
            .into());
        }
        let (live, staging) = (self.set_name(family), self.staging_name(family));
        self.socket.swap(&live, &staging)
    }

    /// Creates sets with this `maxelem` instead of twice the list, and refuses lists with
    /// more distinct entries per family, as a set created by another tool would (Calico Felix
    /// creates its sets with `maxelem` [`FELIX_DEFAULT_MAXELEM`] by default).
    #[must_use]
    pub fn with_maxelem(mut self, maxelem: u32) -> Self {
        self.maxelem = Some(maxelem);
        self
    }

    /// Makes sets with ipset's timeout extension, so that
    /// [`add_with_timeout`](EgressFilter::add_with_timeout) works: the kernel stops matching
    /// an entry when its time is up, whatever happens to this process. Costs 8 bytes per
    /// entry; other entries stay until removed.
    #[must_use]
    pub fn with_timeouts(mut self) -> Self {
        self.timeouts = true;
        self
    }

    /// The set matched for `family` (`egb-<id>-v4`, `egb-<id>-v6`).
    pub fn set_name(&self, family: Family) -> String {
        self.tag.with(family_suffix(family))
    }

    fn staging_name(&self, family: Family) -> String {
        self.tag.with(&format!("{}-next", family_suffix(family)))
    }

    fn chain(&self) -> &str {
        self.tag.as_str()
    }

    /// Creates set `name` sized for `entries` and fills it; on any error the set is gone.
    fn create_filled(&mut self, name: &str, entries: Entries<'_>) -> Result<()> {
        let size = SetSize::for_entries(entries.counted_for(self.maxelem), self.maxelem)?;
        let result = match self.loader {
            Loader::Netlink => self.netlink_fill(name, entries, size),
            Loader::Restore => self.restore_fill(name, entries, size),
        };
        if result.is_err() {
            let _ = self.socket.destroy(name);
        }
        result
    }

    fn netlink_fill(&mut self, name: &str, entries: Entries<'_>, size: SetSize) -> Result<()> {
        self.socket.create(
            name,
            entries.family(),
            size.hashsize,
            size.maxelem,
            self.timeouts,
        )?;
        self.socket
            .change(name, entries, true, None, |_| {})
            .map_err(|refusal| {
                let what = refusal
                    .entry
                    .map(|i| format!(" entry {} ({})", i + 1, entries.describe(i)))
                    .unwrap_or_default();
                refusal.into_error(format!("adding{what} to set {name}"))
            })
    }

    fn restore_fill(&mut self, name: &str, entries: Entries<'_>, size: SetSize) -> Result<()> {
        let family = match entries.family() {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        };
        self.ipset_restore(|w| {
            writeln!(
                w,
                "create {name} hash:net family {family} hashsize {} maxelem {}{}",
                size.hashsize,
                size.maxelem,
                if self.timeouts { " timeout 0" } else { "" }
            )?;
            match entries {
                Entries::V4(nets) => nets.iter().try_for_each(|n| writeln!(w, "add {name} {n}")),
                Entries::V6(nets) => nets.iter().try_for_each(|n| writeln!(w, "add {name} {n}")),
            }
        })
    }

    /// Runs `ipset -exist restore` with the script `write` streams into it.
    fn ipset_restore(
        &self,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut cmd = self.netns.command("ipset");
        cmd.args(["-exist", "restore"]);
        filter_core::run_with_input(&mut cmd, write)
    }

    fn hook(&self, family: Family) -> Result<()> {
        let (chain, set) = (self.chain(), self.set_name(family));
        xtables::restore(
            &self.netns,
            self.backend,
            family,
            &format!(
                "*filter\n:{chain} - [0:0]\n-A {chain} -m set --match-set {set} dst -j DROP\n\
                 -A OUTPUT -j {chain}\nCOMMIT\n"
            ),
        )
    }

    fn remove_everything(&mut self) -> Result<()> {
        // Rules first: the kernel refuses to destroy a set a rule refers to.
        let mut first_error =
            xtables::remove_chain_both(&self.netns, self.backend, self.tag.as_str()).err();
        for family in Family::BOTH {
            for name in [self.set_name(family), self.staging_name(family)] {
                if let Err(e) = self.socket.destroy(&name) {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn family_suffix(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

fn entries_of(list: &CidrList, family: Family) -> Entries<'_> {
    match family {
        Family::V4 => Entries::V4(list.v4()),
        Family::V6 => Entries::V6(list.v6()),
    }
}

impl EgressFilter for IpsetFilter {
    fn name(&self) -> &'static str {
        self.loader.variant()
    }

    fn backend(&self) -> String {
        let loader = match self.loader {
            Loader::Netlink => "nfnetlink".to_owned(),
            Loader::Restore => {
                filter_core::run_command(std::process::Command::new("ipset").arg("version"))
                    .map_or_else(|_| "ipset restore".into(), |v| v.trim().to_owned())
            }
        };
        format!(
            "hash:net via {loader}; rule: iptables {}",
            self.backend.describe()
        )
    }

    fn load(&mut self, list: &CidrList) -> Result<()> {
        if self.loaded {
            return Err(Error::AlreadyLoaded);
        }
        check(list, self.maxelem)?;
        let result = (|| {
            for family in Family::BOTH {
                let name = self.set_name(family);
                self.create_filled(&name, entries_of(list, family))?;
            }
            for family in Family::BOTH {
                self.hook(family)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.loaded = true;
                self.held.set(list);
                Ok(())
            }
            Err(e) => {
                let _ = self.remove_everything();
                Err(e)
            }
        }
    }

    fn replace(&mut self, list: &CidrList) -> Result<()> {
        if !self.loaded {
            return Err(Error::NotLoaded);
        }
        check(list, self.maxelem)?;
        // Fill both staging sets before swapping either, so a failure changes nothing.
        for family in Family::BOTH {
            let staging = self.staging_name(family);
            if let Err(e) = self.create_filled(&staging, entries_of(list, family)) {
                let _ = self.socket.destroy(&self.staging_name(Family::V4));
                return Err(e);
            }
        }
        let mut swapped = Vec::new();
        for family in Family::BOTH {
            if let Err(e) = self.swap(family) {
                // Swapping back puts the old sets in force again (staging holds them now).
                let restored = swapped
                    .iter()
                    .map(|&done| self.swap(done))
                    .fold(Ok(()), Result::and);
                for family in Family::BOTH {
                    let _ = self.socket.destroy(&self.staging_name(family));
                }
                return Err(match restored {
                    Ok(()) => e,
                    Err(restore) => Error::RestoreFailed {
                        failed: Box::new(e),
                        restore: Box::new(restore),
                    },
                });
            }
            swapped.push(family);
        }
        self.held.set(list);
        for family in Family::BOTH {
            self.socket.destroy(&self.staging_name(family))?;
        }
        Ok(())
    }

    fn add(&mut self, entries: &[IpNet]) -> Result<()> {
        change(self, entries, true, None)?;
        self.held.add(entries);
        Ok(())
    }

    /// Native: each entry carries its own timeout (whole seconds, rounded up), and the kernel
    /// stops matching it when the time is up. Needs sets made [with timeouts](IpsetFilter::with_timeouts).
    fn add_with_timeout(&mut self, entries: &[IpNet], ttl: std::time::Duration) -> Result<()> {
        if !self.timeouts {
            return Err(Error::Unsupported {
                feature: "per-entry timeouts",
                engine: self.name(),
                hint: "make the filter with timeouts (IpsetFilter::with_timeouts, option timeouts=true)"
                    .into(),
            });
        }
        let seconds = u32::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .unwrap_or(u32::MAX)
            .max(1);
        change(self, entries, true, Some(seconds))?;
        // The kernel keeps them for the whole seconds it was given.
        let kept = std::time::Duration::from_secs(u64::from(seconds));
        self.held
            .add_expiring(entries, std::time::Instant::now() + kept);
        Ok(())
    }

    fn remove(&mut self, entries: &[IpNet]) -> Result<()> {
        change(self, entries, false, None)?;
        self.held.remove(entries);
        Ok(())
    }

    fn expiring(&self) -> Vec<IpNet> {
        self.held.expiring()
    }

    fn held(&self) -> Option<CidrList> {
        self.loaded.then(|| self.held.list())
    }

    /// Past a quarter of the list changing, a swap of freshly filled sets (one kernel
    /// operation per family) beats per-entry messages and never shows a half-changed list.
    fn sync(&mut self, desired: &CidrList) -> Result<filter_core::SyncReport> {
        filter_core::sync_or_swap(self, desired, 0.25)
    }

    fn stats(&self) -> Result<FilterStats> {
        let mut socket = IpsetSocket::open(&self.netns)?;
        let mut stats = FilterStats::default();
        let mut memory = 0;
        for family in Family::BOTH {
            let header = socket.header(&self.set_name(family))?;
            match family {
                Family::V4 => stats.entries_v4 = header.elements,
                Family::V6 => stats.entries_v6 = header.elements,
            }
            memory += header.memsize;
        }
        stats.kernel_memory = Some(KernelMemory {
            bytes: memory,
            source: filter_core::MemorySource::IpsetMemsize,
        });
        let (packets, bytes) = xtables::counters_both(&self.netns, self.backend, self.chain())?;
        stats.packets_matched = Some(packets);
        stats.bytes_matched = Some(bytes);
        Ok(stats)
    }

    /// The members of each set, from the kernel's set header, against the distinct entries
    /// the filter's bookkeeping holds.
    fn kernel_count(&self) -> Result<Option<filter_core::KernelCount>> {
        let held = self.held().ok_or(filter_core::Error::NotLoaded)?;
        let mut socket = IpsetSocket::open(&self.netns)?;
        let mut read = [None; 2];
        let mut expected = [0; 2];
        for (i, family) in Family::BOTH.into_iter().enumerate() {
            read[i] = Some(socket.header(&self.set_name(family))?.elements);
            let distinct: std::collections::BTreeSet<IpNet> = held
                .iter()
                .filter(|n| Family::of(n.addr()) == family)
                .map(|n| n.trunc())
                .collect();
            expected[i] = distinct.len() as u64;
        }
        Ok(Some(filter_core::KernelCount {
            unit: filter_core::CountUnit::SetMembers,
            read,
            expected,
        }))
    }

    fn teardown(&mut self) -> Result<()> {
        self.loaded = false;
        self.held.clear();
        self.remove_everything()
    }
}

/// Checks every limit before the kernel sees anything: set sizes, and prefix lengths
/// (hash:net cannot hold a /0).
fn check(list: &CidrList, maxelem: Option<u32>) -> Result<()> {
    for family in Family::BOTH {
        SetSize::for_entries(entries_of(list, family).counted_for(maxelem), maxelem)?;
    }
    let zero_v4 = list
        .v4()
        .iter()
        .position(|n| n.prefix_len() == 0)
        .map(|i| (Family::V4, i));
    let zero_v6 = list
        .v6()
        .iter()
        .position(|n| n.prefix_len() == 0)
        .map(|i| (Family::V6, i));
    if let Some((family, index)) = zero_v4.or(zero_v6) {
        let place = list.line_of(family, index).map_or_else(
            || format!("entry {}", index + 1),
            |line| format!("line {line}"),
        );
        return Err(IpsetError::ZeroPrefix { place }.into());
    }
    Ok(())
}

fn change(
    filter: &mut IpsetFilter,
    entries: &[IpNet],
    add: bool,
    timeout: Option<u32>,
) -> Result<()> {
    if !filter.loaded {
        return Err(Error::NotLoaded);
    }
    let list: CidrList = entries.iter().copied().collect();
    if add {
        check(&list, None)?;
    }
    for family in Family::BOTH {
        let set = filter.set_name(family);
        let part = entries_of(&list, family);
        if part.len() == 0 {
            continue;
        }
        match filter.loader {
            Loader::Netlink => filter
                .socket
                .change(&set, part, add, timeout, |_| {})
                .map_err(|r| {
                    let verb = if add { "adding to" } else { "removing from" };
                    r.into_error(format!("{verb} set {set}"))
                })?,
            Loader::Restore => {
                let verb = if add { "add" } else { "del" };
                let ttl = timeout.map(|t| format!(" timeout {t}")).unwrap_or_default();
                filter.ipset_restore(|w| {
                    list.iter()
                        .filter(|n| Family::of(n.addr()) == family)
                        .try_for_each(|n| writeln!(w, "{verb} {set} {n}{ttl}"))
                })?;
            }
        }
    }
    Ok(())
}

impl Drop for IpsetFilter {
    fn drop(&mut self) {
        if self.loaded {
            let _ = self.teardown();
        }
    }
}
