use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{CidrList, CostProbe, Error, ProgramCost, Result};

/// The prefix of every object egress-bench creates in the kernel (namespaces, links, chains,
/// sets, pins), so that `egress-bench cleanup` can find what a killed run left behind.
pub const OBJECT_PREFIX: &str = "egb-";

/// Whether an object named `name` falls under `prefix`, as leftover finders read a prefix:
/// every object of egress-bench for [`OBJECT_PREFIX`] (or any prefix ending in `-`), else
/// the objects of one [`Tag`]: `egb-1a2b` and `egb-1a2b-...`, never `egb-1a2bc`.
pub fn under_prefix(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| prefix.ends_with('-') || rest.is_empty() || rest.starts_with('-'))
}

/// The name stem of one filter instance's kernel objects: `egb-<run id>`.
///
/// Engines derive every name from it (`egb-1a2b3c` as a chain, `egb-1a2b3c-v4` as a set),
/// so it is kept short enough for the tightest kernel name limit (iptables chains: 28 bytes;
/// ipset names: 31 bytes; interface names: 15 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Tag(String);

impl Tag {
    /// Longest run id accepted: keeps `egb-<id>-v4-next` within ipset's 31 bytes and
    /// `egb-<id>-c` within the 15 bytes of an interface name.
    pub const MAX_ID_LEN: usize = 8;

    /// Builds the tag for a run id made of ASCII letters and digits.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty, too long or non-alphanumeric id.
    pub fn new(run_id: &str) -> Result<Self> {
        if run_id.is_empty()
            || run_id.len() > Self::MAX_ID_LEN
            || !run_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Error::InvalidInput(format!(
                "run id {run_id:?} must be 1 to {} ASCII letters or digits",
                Self::MAX_ID_LEN
            )));
        }
        Ok(Self(format!("{OBJECT_PREFIX}{run_id}")))
    }

    /// The tag an object's name begins with: `egb-1a2b3c` of `egb-1a2b3c-client` or of
    /// `egb-1a2b3c-v4`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the name is not `egb-<run id>[-...]`.
    pub fn from_name(name: &str) -> Result<Self> {
        let id = name
            .strip_prefix(OBJECT_PREFIX)
            .map(|rest| rest.split('-').next().unwrap_or(rest))
            .ok_or_else(|| {
                Error::InvalidInput(format!("{name:?} is not named {OBJECT_PREFIX}<run id>"))
            })?;
        Self::new(id)
    }

    /// A fresh tag from the process id and the clock.
    pub fn random() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mixed = (u64::from(std::process::id()) << 32 | u64::from(nanos))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self(format!("{OBJECT_PREFIX}{:06x}", mixed >> 40))
    }

    /// The tag as a string (`egb-<run id>`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag followed by `-suffix`.
    pub fn with(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Kernel memory held by a filter, with the source of the figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelMemory {
    /// Bytes.
    pub bytes: u64,
    /// Where the figure comes from, and so how exact it is.
    pub source: MemorySource,
}

/// Where a kernel memory figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum MemorySource {
    /// The kernel's own accounting of BPF maps (`memlock` in `/proc/self/fdinfo`, from
    /// `map_mem_usage`).
    MapMemlock,
    /// The `memsize` ipset reports in each set's header, both families summed.
    IpsetMemsize,
}

impl MemorySource {
    const ALL: [Self; 2] = [Self::MapMemlock, Self::IpsetMemsize];

    fn text(self) -> &'static str {
        match self {
            Self::MapMemlock => {
                "memlock of the maps in /proc/self/fdinfo (the kernel's map_mem_usage)"
            }
            Self::IpsetMemsize => "ipset set headers (memsize), both families",
        }
    }
}

impl fmt::Display for MemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.text())
    }
}

impl From<MemorySource> for String {
    fn from(source: MemorySource) -> Self {
        source.text().to_owned()
    }
}

impl TryFrom<String> for MemorySource {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.text() == text)
            .ok_or_else(|| format!("unknown kernel memory source {text:?}"))
    }
}

/// What the kernel holds, read back from it, beside what the engine's bookkeeping says it
/// holds in the same unit: the check that an engine's counts are not its own say-so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCount {
    /// What is counted.
    pub unit: CountUnit,
    /// Per family (IPv4, IPv6), as the kernel lists it; `None` where its layout cannot give
    /// the count back.
    pub read: [Option<u64>; 2],
    /// Per family, what the engine's bookkeeping says the kernel holds, in that unit.
    pub expected: [u64; 2],
}

impl KernelCount {
    /// Whether the kernel holds what the bookkeeping says, wherever it can be read.
    pub fn agrees(&self) -> bool {
        self.read
            .iter()
            .zip(self.expected)
            .all(|(read, expected)| read.is_none_or(|r| r == expected))
    }
}

/// What a [`KernelCount`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountUnit {
    /// Rules in the filter's chains, one per entry (iptables).
    Rules,
    /// Members of the sets, one per distinct entry (ipset).
    SetMembers,
    /// Elements of the sets: host addresses, and the start and end of each merged range
    /// (nftables).
    SetElements,
    /// Keys of the maps, one per distinct entry (eBPF tries and hashes).
    MapKeys,
    /// Disjoint denied address ranges: entries that overlap or touch count once (the
    /// constant-time tables, which keep addresses, not entries).
    Ranges,
}

/// What a loaded filter reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterStats {
    /// IPv4 entries the filter holds.
    pub entries_v4: u64,
    /// IPv6 entries the filter holds.
    pub entries_v6: u64,
    /// Packets the filter dropped, where the kernel counts them.
    pub packets_matched: Option<u64>,
    /// Bytes the filter dropped, where the kernel counts them.
    pub bytes_matched: Option<u64>,
    /// Kernel memory used, where it can be found out.
    pub kernel_memory: Option<KernelMemory>,
}

/// An egress filter installed in one network namespace: the seam between the harness and
/// every engine.
///
/// Contract, for every engine:
/// - [`load`](Self::load) and [`replace`](Self::replace) are atomic: either the whole new list
///   applies or, on error, the kernel is left as before the call. `replace` never opens a
///   window in which neither list applies.
/// - [`add`](Self::add) and [`remove`](Self::remove) change single entries of a loaded list;
///   adding a present entry or removing an absent one is not an error.
/// - [`teardown`](Self::teardown) removes every kernel object the filter created; it is also
///   called (errors ignored) when the filter is dropped.
/// - Every kernel object is named from the filter's [`Tag`].
pub trait EgressFilter: Send {
    /// The engine's name as the harness knows it (`ipset`, `iptables`, ...).
    fn name(&self) -> &'static str;

    /// How the engine reaches the kernel, with tool versions where a tool is involved
    /// (for example `nf_tables back-end, iptables v1.8.9`).
    fn backend(&self) -> String;

    /// Installs `list`, all or nothing.
    ///
    /// # Errors
    /// [`Error::AlreadyLoaded`] when a list is loaded; [`Error::Limit`] or
    /// [`Error::InvalidInput`] before anything changes when the list does not fit the engine;
    /// [`Error::Kernel`], [`Error::Command`] or [`Error::Io`] when the kernel or a tool refuses
    /// (what was created is removed again).
    fn load(&mut self, list: &CidrList) -> Result<()>;

    /// Replaces the loaded list with `list`, atomically for the packets in flight.
    ///
    /// # Errors
    /// [`Error::NotLoaded`] without a loaded list; otherwise as [`load`](Self::load), with the
    /// previous list still in force, or [`Error::RestoreFailed`] when putting it back failed too.
    fn replace(&mut self, list: &CidrList) -> Result<()>;

    /// Adds entries to the loaded list.
    ///
    /// # Errors
    /// [`Error::NotLoaded`] without a loaded list; [`Error::Limit`] when the engine's maps or
    /// sets are full; [`Error::Kernel`] or [`Error::Command`] when the kernel refuses.
    fn add(&mut self, entries: &[IpNet]) -> Result<()>;

    /// Removes entries from the loaded list.
    ///
    /// # Errors
    /// [`Error::NotLoaded`] without a loaded list; [`Error::Kernel`] or [`Error::Command`]
    /// when the kernel refuses.
    fn remove(&mut self, entries: &[IpNet]) -> Result<()>;

    /// Reads entry counts, match counters and kernel memory.
    ///
    /// # Errors
    /// [`Error::NotLoaded`] where the engine needs a list to read from; [`Error::Kernel`] or
    /// [`Error::Command`] when reading counters fails.
    fn stats(&self) -> Result<FilterStats>;

    /// Removes everything the filter created. Safe to call more than once.
    ///
    /// # Errors
    /// The first failure to remove an object; the others are still tried.
    fn teardown(&mut self) -> Result<()>;

    /// Adds entries that stop being enforced `ttl` after the call, by the kernel itself: no
    /// process has to stay alive for them to expire (as a blocklist manager's decisions do).
    /// Adding an entry again renews its time; [`remove`](Self::remove) takes it out early.
    ///
    /// # Errors
    /// [`Error::Unsupported`] from engines (or filters made) without timeouts; otherwise as
    /// [`add`](Self::add).
    fn add_with_timeout(&mut self, entries: &[IpNet], ttl: std::time::Duration) -> Result<()> {
        let _ = (entries, ttl);
        Err(Error::Unsupported {
            feature: "per-entry timeouts",
            engine: self.name(),
            hint: "use an engine with timeouts (tcbpf, or ipset made with timeouts)".into(),
        })
    }

    /// Makes the filter outlive this value and the process: dropping it (or the process
    /// ending, killed or not) leaves it enforced in the kernel, for a later process to
    /// [`adopt`](Self::adopt); only [`teardown`](Self::teardown) removes it. Call before
    /// [`load`](Self::load).
    ///
    /// # Errors
    /// [`Error::Unsupported`] from engines that cannot hand a filter over; a kernel refusal.
    fn persist(&mut self) -> Result<()> {
        Err(Error::Unsupported {
            feature: "filters that outlive their process",
            engine: self.name(),
            hint: "use tcbpf or tcbpf-dir (links pinned in bpffs)".into(),
        })
    }

    /// Takes over the filter of this tag and target that an earlier process left with
    /// [`persist`](Self::persist); whether there was one. It stays enforced as it is; the
    /// next [`sync`](Self::sync) (or `load`) moves it to a new list in one kernel operation.
    ///
    /// # Errors
    /// As [`persist`](Self::persist); a pinned filter that cannot be opened.
    fn adopt(&mut self) -> Result<bool> {
        self.persist().map(|()| false)
    }

    /// The list the filter holds, where it keeps track of it (`None`: it does not, and
    /// [`sync`](Self::sync) falls back to [`replace`](Self::replace)).
    fn held(&self) -> Option<CidrList> {
        None
    }

    /// The held entries that were added with a timeout and have not expired, in address
    /// order (none from engines without timeouts).
    fn expiring(&self) -> Vec<IpNet> {
        Vec::new()
    }

    /// Makes the loaded list `desired` with the fewest changes: the entries to add go in
    /// first, then those to remove go, so that no address denied before and after is allowed
    /// in between. Entries of `desired` held with a timeout are added again without one:
    /// after a sync the kernel holds `desired`, and nothing of it expires. Loads `desired`
    /// when nothing is loaded. Engines that can apply a
    /// difference in one kernel transaction override this.
    ///
    /// # Errors
    /// As [`add`](Self::add) and [`remove`](Self::remove) (or [`load`](Self::load) and
    /// [`replace`](Self::replace)). An add that fails leaves the list as it was; a remove
    /// that fails leaves the added entries in force.
    fn sync(&mut self, desired: &CidrList) -> Result<SyncReport> {
        sync_or_swap(self, desired, f64::INFINITY)
    }

    /// What the kernel holds, read back from it (rules, set members or elements, map keys),
    /// beside what the engine's bookkeeping says it holds: the check that the engine's
    /// counts are not its own say-so. It may walk every entry (at 1M entries here: 7.6 s for
    /// nftables' dump, 1.6 s for the LPM-trie walk, 0.2 s for ipset), so it is for checks,
    /// not for every figure. `None` from engines that cannot
    /// read their state back.
    ///
    /// # Errors
    /// [`Error::NotLoaded`] without a loaded list; the engine's error when the kernel
    /// cannot be asked.
    fn kernel_count(&self) -> Result<Option<KernelCount>> {
        Ok(None)
    }

    /// What the filter could not do the way it was asked (a fallback to a slower path, say),
    /// which a reader of its figures must know: one sentence each, empty by default.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Times the engine's own packet program in isolation (for example with
    /// `BPF_PROG_TEST_RUN`), for each `(case, destination)` probe, beside the engine's own
    /// floor and cold-cache cases. Engines without such a program return nothing.
    ///
    /// # Errors
    /// [`Error::NotLoaded`] without a loaded list; [`Error::Kernel`] when the kernel refuses
    /// `BPF_PROG_TEST_RUN`.
    fn program_costs(&mut self, probes: &[(CostProbe, IpAddr)]) -> Result<Vec<ProgramCost>> {
        let _ = probes;
        Ok(Vec::new())
    }
}

/// What a [`sync`](EgressFilter::sync) changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Entries added.
    pub added: u64,
    /// Entries removed.
    pub removed: u64,
    /// Whether the whole list was loaded or replaced instead of changed entry by entry.
    pub replaced: bool,
    /// Wall-clock seconds the sync took.
    pub seconds: f64,
}

impl SyncReport {
    /// A report of a sync that began at `start` and ends now.
    pub fn since(start: std::time::Instant, added: usize, removed: usize, replaced: bool) -> Self {
        Self {
            added: added as u64,
            removed: removed as u64,
            replaced,
            seconds: start.elapsed().as_secs_f64(),
        }
    }
}

/// [`EgressFilter::sync`] by difference: when it is more than `max_share` of the desired
/// list (for engines whose `replace` swaps a whole new copy in atomically, and per-entry
/// changes would take longer than a fresh copy), one `replace`; else adds, then removes.
/// With nothing to compare with (no [`held`](EgressFilter::held) list), a load, or a replace
/// of what is loaded.
///
/// # Errors
/// As [`EgressFilter::sync`].
pub fn sync_or_swap<F: EgressFilter + ?Sized>(
    filter: &mut F,
    desired: &CidrList,
    max_share: f64,
) -> Result<SyncReport> {
    let start = std::time::Instant::now();
    let Some(held) = filter.held() else {
        match filter.load(desired) {
            Err(Error::AlreadyLoaded) => filter.replace(desired)?,
            other => other?,
        }
        return Ok(SyncReport::since(start, desired.len(), 0, true));
    };
    let (gone, mut came) = difference(&held, desired);
    came.extend(timed_and_desired(filter.expiring(), desired));
    #[expect(clippy::cast_precision_loss, reason = "a share")]
    let share = (gone.len() + came.len()) as f64 / desired.len().max(1) as f64;
    if share > max_share {
        filter.replace(desired)?;
        return Ok(SyncReport::since(start, came.len(), gone.len(), true));
    }
    if !came.is_empty() {
        filter.add(&came)?;
    }
    if !gone.is_empty() {
        filter.remove(&gone)?;
    }
    Ok(SyncReport::since(start, came.len(), gone.len(), false))
}

/// The entries of `timed` (held with a timeout) that `desired` holds: those a sync adds again
/// without a timeout.
pub fn timed_and_desired(timed: Vec<IpNet>, desired: &CidrList) -> Vec<IpNet> {
    if timed.is_empty() {
        return timed;
    }
    let wanted: std::collections::BTreeSet<IpNet> = desired.iter().map(|n| n.trunc()).collect();
    timed.into_iter().filter(|n| wanted.contains(n)).collect()
}

/// The entries of `held` that `desired` lacks, and those of `desired` that `held` lacks
/// (host bits cleared, duplicates once), each in address order.
pub fn difference(held: &CidrList, desired: &CidrList) -> (Vec<IpNet>, Vec<IpNet>) {
    let set = |list: &CidrList| -> std::collections::BTreeSet<IpNet> {
        list.iter().map(|n| n.trunc()).collect()
    };
    let (held, desired) = (set(held), set(desired));
    (
        held.difference(&desired).copied().collect(),
        desired.difference(&held).copied().collect(),
    )
}

/// The list a filter holds, kept cheaply for [`EgressFilter::held`]: the list loaded (or
/// replaced) as given, and the entries added and removed since, each change one hash probe.
#[derive(Debug, Clone, Default)]
pub struct Held {
    base: CidrList,
    // Hashed (foldhash, seeded per process): an update feed touches them once per entry.
    /// Entries added since, each with whether it is known not to be in `base` (added when
    /// the filter did not hold it, and not removed from `base` before): its removal then
    /// needs no mark in `removed`, which would otherwise grow with every entry a feed turns
    /// over.
    added: foldhash::HashMap<IpNet, bool>,
    /// Entries of `base` hidden (removed, or replaced by a timed copy); may hold entries
    /// that `base` lacks.
    removed: foldhash::HashSet<IpNet>,
    /// Entries added with a timeout: when the kernel stops holding them.
    expiring: Deadlines<IpNet>,
}

/// When keys stop being held, kept so that finding the expired ones costs time in proportion
/// to them (a queue by deadline), not to every key with a deadline: changes run it on every
/// call.
#[derive(Debug, Clone)]
pub struct Deadlines<K> {
    by_key: std::collections::HashMap<K, std::time::Instant>,
    queue: std::collections::BTreeSet<(std::time::Instant, K)>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            by_key: std::collections::HashMap::new(),
            queue: std::collections::BTreeSet::new(),
        }
    }
}

impl<K: Copy + Ord + std::hash::Hash> Deadlines<K> {
    /// Gives `key` a deadline (replacing any it had).
    pub fn insert(&mut self, key: K, deadline: std::time::Instant) {
        if let Some(old) = self.by_key.insert(key, deadline) {
            self.queue.remove(&(old, key));
        }
        self.queue.insert((deadline, key));
    }

    /// Takes `key`'s deadline away; whether it had one.
    pub fn remove(&mut self, key: &K) -> bool {
        if self.by_key.is_empty() {
            // No key to hash: lists without timeouts pay nothing per change.
            return false;
        }
        match self.by_key.remove(key) {
            Some(old) => self.queue.remove(&(old, *key)),
            None => false,
        }
    }

    /// Whether `key` has a deadline.
    pub fn contains(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// Whether `key` has a deadline that has passed by `at`.
    pub fn expired(&self, key: &K, at: std::time::Instant) -> bool {
        self.by_key.get(key).is_some_and(|&deadline| deadline <= at)
    }

    /// Whether no key has a deadline.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The keys whose deadline is after `at`, in key order.
    pub fn live(&self, at: std::time::Instant) -> Vec<K> {
        let mut live: Vec<K> = self
            .queue
            .iter()
            .filter(|&&(deadline, _)| deadline > at)
            .map(|&(_, key)| key)
            .collect();
        live.sort_unstable();
        live
    }

    /// Takes out the keys whose deadline is at or before `at`, in key order.
    pub fn take_expired(&mut self, at: std::time::Instant) -> Vec<K> {
        let mut gone = Vec::new();
        while let Some(&(deadline, key)) = self.queue.first() {
            if deadline > at {
                break;
            }
            self.queue.pop_first();
            self.by_key.remove(&key);
            gone.push(key);
        }
        gone.sort_unstable();
        gone
    }
}

impl Held {
    /// Holds `list`, as a load or replace installed it (no entry of it expires).
    pub fn set(&mut self, list: &CidrList) {
        self.base = list.clone();
        self.added.clear();
        self.removed.clear();
        self.expiring = Deadlines::default();
    }

    /// Records entries added.
    pub fn add(&mut self, entries: &[IpNet]) {
        for net in entries.iter().map(IpNet::trunc) {
            self.removed.remove(&net);
            self.expiring.remove(&net);
            self.added.entry(net).or_insert(false);
        }
    }

    /// Records entries added, with which of them the filter did not hold before
    /// (`new[i]` for `entries[i]`): what an engine knows per entry when its tables say
    /// whether an add changed them. Cheaper than [`add`](Self::add) for a feed: removing
    /// such an entry later leaves no mark.
    pub fn add_known(&mut self, entries: &[IpNet], new: &[bool]) {
        for (net, &new) in entries.iter().map(IpNet::trunc).zip(new) {
            // A hidden entry may be one of `base` coming back: its removal must hide it again.
            let in_base = self.removed.remove(&net);
            self.expiring.remove(&net);
            if new {
                self.added.insert(net, !in_base);
            } else {
                self.added.entry(net).or_insert(false);
            }
        }
    }

    /// Records entries added until `deadline`, when the kernel drops them by itself.
    pub fn add_expiring(&mut self, entries: &[IpNet], deadline: std::time::Instant) {
        for net in entries.iter().map(IpNet::trunc) {
            // A loaded entry added again with a timeout expires too: hide the loaded copy.
            self.removed.insert(net);
            self.added.insert(net, false);
            self.expiring.insert(net, deadline);
        }
    }

    /// Records entries removed.
    pub fn remove(&mut self, entries: &[IpNet]) {
        for net in entries.iter().map(IpNet::trunc) {
            self.expiring.remove(&net);
            if self.added.remove(&net) != Some(true) {
                self.removed.insert(net);
            }
        }
    }

    /// The list held now (expired entries left out): the loaded list in its order, then
    /// the entries added since, in address order.
    pub fn list(&self) -> CidrList {
        let now = std::time::Instant::now();
        let mut added: Vec<IpNet> = self
            .added
            .keys()
            .copied()
            .filter(|n| !self.expiring.expired(n, now))
            .collect();
        added.sort_unstable();
        self.base
            .iter()
            .map(|n| n.trunc())
            .filter(|n| !self.removed.contains(n))
            .chain(added)
            .collect()
    }

    /// The entries added with a timeout that have not expired yet, in address order.
    pub fn expiring(&self) -> Vec<IpNet> {
        self.expiring.live(std::time::Instant::now())
    }

    /// Takes out the entries whose timeout has passed and returns them, so that their keys can
    /// be deleted from the kernel (where they no longer match but still take memory).
    pub fn take_expired(&mut self) -> Vec<IpNet> {
        let gone = self.expiring.take_expired(std::time::Instant::now());
        for net in &gone {
            self.added.remove(net);
            self.removed.insert(*net);
        }
        gone
    }

    /// Forgets everything (a teardown).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Deadlines, Held};
    use crate::CidrList;

    fn nets(text: &[&str]) -> Vec<ipnet::IpNet> {
        text.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn held_follows_adds_known_new_and_leaves_no_marks_for_them() {
        let base: CidrList = nets(&["10.0.0.0/8", "192.0.2.1/32"]).into_iter().collect();
        let mut held = Held::default();
        held.set(&base);
        let listed = |held: &Held| {
            held.list()
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        };
        let fresh = nets(&["198.51.100.0/24", "203.0.113.9/32"]);
        held.add_known(&fresh, &[true, true]);
        assert_eq!(listed(&held).len(), 4);
        held.remove(&fresh);
        assert!(held.removed.is_empty() && held.added.is_empty());
        // A loaded entry removed and added back may be in the loaded list: its next removal
        // hides it again.
        let loaded = nets(&["10.0.0.0/8"]);
        held.remove(&loaded);
        held.add_known(&loaded, &[true]);
        assert_eq!(listed(&held).len(), 2);
        held.remove(&loaded);
        assert_eq!(listed(&held), nets(&["192.0.2.1/32"]));
        // An entry held already stays held.
        held.add_known(&nets(&["192.0.2.1/32"]), &[false]);
        assert_eq!(listed(&held), nets(&["192.0.2.1/32"]));
        held.remove(&nets(&["192.0.2.1/32"]));
        assert!(listed(&held).is_empty());
    }

    #[test]
    fn deadlines_give_back_only_what_expired_and_forget_replaced_times() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut d = Deadlines::default();
        d.insert(3u32, at(30));
        d.insert(1, at(10));
        d.insert(2, at(50));
        // A new deadline replaces the old one: 2 no longer expires at 50.
        d.insert(2, at(5));
        assert!(d.remove(&3) && !d.remove(&3));
        assert!(d.expired(&2, at(6)) && !d.expired(&1, at(6)));
        assert_eq!(d.live(at(6)), vec![1]);
        assert_eq!(d.take_expired(at(20)), vec![1, 2]);
        assert!(d.take_expired(at(100)).is_empty() && d.is_empty());
    }
}

#[cfg(test)]
mod tag_tests {
    use super::Tag;

    #[test]
    fn a_tag_owns_only_its_own_names() {
        use super::under_prefix;
        assert!(under_prefix("egb-1a2b", "egb-1a2b"));
        assert!(under_prefix("egb-1a2b-v4", "egb-1a2b"));
        assert!(!under_prefix("egb-1a2bc", "egb-1a2b"));
        assert!(!under_prefix("egb-1a2bc-v4", "egb-1a2b"));
        assert!(under_prefix("egb-1a2bc-v4", "egb-"));
        assert!(!under_prefix("cali40s:x", "egb-"));
    }

    #[test]
    fn a_name_gives_back_its_tag() {
        for name in ["egb-1a2b3c", "egb-1a2b3c-client", "egb-1a2b3c-v4-next"] {
            assert_eq!(Tag::from_name(name).unwrap().as_str(), "egb-1a2b3c");
        }
        assert!(Tag::from_name("cali40s:x").is_err());
        assert!(Tag::from_name("egb-").is_err());
    }
}
