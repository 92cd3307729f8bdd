//! The constant-time IPv4 table (DIR-24-8, as in the routing-lookup literature and DPDK's
//! LPM), built and changed in user space, read by `egb_filter_dir` in the kernel.
//!
//! - **Slots**: one `u32` per /24 (2^24 of them, 64 MiB), indexed by the top 24 bits of the
//!   destination: [`DIR_ALLOW`], [`DIR_DENY`], or [`DIR_FIRST_CHUNK`] + `k`, meaning "look
//!   in chunk `k`".
//! - **Chunks**: 256 bits each, one per /24 that holds prefixes longer than /24 and is not
//!   wholly denied; bit `a` (the last octet) set means denied.
//!
//! A lookup is one or two array reads whatever the number of entries or their lengths. The
//! table only answers "is this address covered by any denied prefix": a deny list needs no
//! longest match, so overlapping prefixes simply both deny.
//!
//! [`Dir24::build`] expands a list in ascending prefix length, so that a prefix whose first
//! address is already denied is wholly covered and skipped, and fills slot ranges with slice
//! writes. Incremental [`add`](Dir24::add) and [`remove`](Dir24::remove) look up the list's
//! prefixes (the sorted keys it was built from, plus the changes since), so that removing a
//! prefix restores what its ancestors and descendants still deny (removing a /32 inside a
//! denied /24 keeps the /24 denied). The first change after a load builds nothing.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{Ordering, fence};

use rdst::RadixSort;

use crate::grace::Quarantine;

use filter_tcbpf_common::{DIR_ALLOW, DIR_CHUNK_BYTES, DIR_DENY, DIR_FIRST_CHUNK, DIR_SLOTS};
use ipnet::Ipv4Net;

/// One second-level chunk: a bit per address of a /24.
pub type Chunk = [u8; DIR_CHUNK_BYTES];

/// Where the two levels live: vectors while a table is built, the maps' mmap views once it
/// is in the kernel.
pub trait Store {
    /// The first level, [`DIR_SLOTS`] entries.
    fn slots(&self) -> &[u32];
    /// The first level, for writing.
    fn slots_mut(&mut self) -> &mut [u32];
    /// The chunks that exist so far.
    fn chunks(&self) -> &[Chunk];
    /// The chunks, for writing.
    fn chunks_mut(&mut self) -> &mut [Chunk];
    /// Makes chunk `index` (the next unused one) available; false when the store is full.
    fn grow_to(&mut self, index: u32) -> bool;
    /// The most chunks the store can hold.
    fn capacity(&self) -> u32;
}

/// A table in memory: what [`Dir24::build`] makes before it is copied into the maps.
#[derive(Clone)]
pub struct Owned {
    slots: Vec<u32>,
    chunks: Vec<Chunk>,
}

impl Store for Owned {
    fn slots(&self) -> &[u32] {
        &self.slots
    }
    fn slots_mut(&mut self) -> &mut [u32] {
        &mut self.slots
    }
    fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }
    fn chunks_mut(&mut self) -> &mut [Chunk] {
        &mut self.chunks
    }
    fn grow_to(&mut self, index: u32) -> bool {
        if index as usize >= self.chunks.len() {
            self.chunks.resize(index as usize + 1, [0; DIR_CHUNK_BYTES]);
        }
        true
    }
    fn capacity(&self) -> u32 {
        DIR_SLOTS
    }
}

/// The two levels in the maps' mmap views: what the program reads.
pub(crate) struct Mapped {
    pub(crate) slots: crate::sys::Mapping,
    pub(crate) chunks: crate::sys::Mapping,
    pub(crate) capacity: u32,
}

impl Store for Mapped {
    fn slots(&self) -> &[u32] {
        self.slots.slice()
    }
    fn slots_mut(&mut self) -> &mut [u32] {
        self.slots.slice_mut()
    }
    fn chunks(&self) -> &[Chunk] {
        self.chunks.slice()
    }
    fn chunks_mut(&mut self) -> &mut [Chunk] {
        self.chunks.slice_mut()
    }
    fn grow_to(&mut self, index: u32) -> bool {
        index < self.capacity
    }
    fn capacity(&self) -> u32 {
        self.capacity
    }
}

/// The second level is full: no chunk is left for a new /24 with longer prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunksFull {
    /// Chunks the store holds.
    pub capacity: u32,
}

/// A DIR-24-8 table over a store; see the [module docs](self).
pub struct Dir24<S: Store = Owned> {
    store: S,
    /// Chunks handed out so far (the high-water mark).
    used: u32,
    /// Chunks handed out and given back: reused first, once no program run can still read
    /// them.
    free: Quarantine,
    /// The list, for `add` and `remove`.
    prefixes: Prefixes,
}

/// The list's prefixes as `add` and `remove` need them, at no cost to a load: the keys the
/// table was built from (sorted by [`key`], so each length is one sorted run) and the changes
/// since, kept beside them until they grow to a quarter of the list and are merged in. A
/// lookup is a binary search in one run plus a hash probe; "does a shorter prefix cover this
/// one" is one lookup per length the list uses; the prefixes inside a removed one are a
/// range of each longer run.
struct Prefixes {
    base: Vec<u64>,
    /// Where each length's run starts in `base` (`runs[33]` is its end).
    runs: [usize; 34],
    added: BTreeSet<u64>,
    removed: foldhash::HashSet<u64>,
    per_length: [u64; 33],
}

impl Prefixes {
    fn new(base: Vec<u64>) -> Self {
        let mut runs = [0; 34];
        let mut per_length = [0; 33];
        for len in 0..=33u8 {
            runs[usize::from(len)] = base.partition_point(|&k| k < key(len, 0));
            if len > 0 {
                per_length[usize::from(len - 1)] =
                    (runs[usize::from(len)] - runs[usize::from(len - 1)]) as u64;
            }
        }
        Self {
            base,
            runs,
            added: BTreeSet::new(),
            removed: foldhash::HashSet::default(),
            per_length,
        }
    }

    fn run(&self, len: u8) -> &[u64] {
        &self.base[self.runs[usize::from(len)]..self.runs[usize::from(len) + 1]]
    }

    fn len(&self) -> usize {
        self.base.len() + self.added.len() - self.removed.len()
    }

    fn contains(&self, network: u32, len: u8) -> bool {
        let k = key(len, network);
        self.added.contains(&k)
            || (self.run(len).binary_search(&k).is_ok() && !self.removed.contains(&k))
    }

    /// Whether the list holds the length-`len` prefix of `network`.
    fn covers_at(&self, network: u32, len: u8) -> bool {
        self.per_length[usize::from(len)] > 0 && self.contains(network & mask(len), len)
    }

    /// Adds a prefix that is not in the list.
    fn insert(&mut self, network: u32, len: u8) {
        let k = key(len, network);
        if !self.removed.remove(&k) {
            self.added.insert(k);
        }
        self.per_length[usize::from(len)] += 1;
        self.merge_if_large();
    }

    /// Removes a prefix if the list holds it: whether it did. One search where a look-up
    /// and a removal took two (the update feed's removals are mostly of recent adds).
    fn take(&mut self, network: u32, len: u8) -> bool {
        let k = key(len, network);
        let held = self.added.remove(&k)
            || (self.run(len).binary_search(&k).is_ok() && self.removed.insert(k));
        if held {
            self.per_length[usize::from(len)] -= 1;
            self.merge_if_large();
        }
        held
    }

    fn merge_if_large(&mut self) {
        if (self.added.len() + self.removed.len()) * 4 > self.base.len().max(4096) {
            let mut keys: Vec<u64> = self.iter().collect();
            keys.sort_unstable();
            *self = Self::new(keys);
        }
    }

    /// Every prefix, as [`key`]s, in no particular order.
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.base
            .iter()
            .copied()
            .filter(|k| !self.removed.contains(k))
            .chain(self.added.iter().copied())
    }

    /// The prefixes strictly inside `network/len`, as (length, network), ascending.
    fn inside(&self, network: u32, len: u8) -> Vec<(u8, u32)> {
        let last = network | !mask(len);
        let mut inside = Vec::new();
        for l in len + 1..=32 {
            let (from, to) = (key(l, network), key(l, last));
            let run = self.run(l);
            let start = run.partition_point(|&k| k < from);
            let end = run.partition_point(|&k| k <= to);
            inside.extend(
                run[start..end]
                    .iter()
                    .filter(|k| !self.removed.contains(k))
                    .chain(self.added.range(from..=to))
                    .map(|&k| unkey(k)),
            );
        }
        inside.sort_unstable();
        inside
    }
}

/// A prefix as one sortable word: length in the high half, network in the low half, so
/// that ascending keys go by (length, network).
fn key(len: u8, network: u32) -> u64 {
    u64::from(len) << 32 | u64::from(network)
}

/// The (length, network) of a [`key`].
#[expect(clippy::cast_possible_truncation, reason = "the halves of a key")]
fn unkey(key: u64) -> (u8, u32) {
    ((key >> 32) as u8, key as u32)
}

/// The first slot and the number of slots a prefix of length <= 24 covers.
fn slot_range(network: u32, len: u8) -> std::ops::Range<usize> {
    let first = (network >> 8) as usize;
    first..first + (1usize << (24 - len))
}

/// The bit range a prefix longer than /24 covers in its chunk.
fn bit_range(network: u32, len: u8) -> std::ops::Range<usize> {
    let first = (network & 0xff) as usize;
    first..first + (1usize << (32 - len))
}

fn set_bits(chunk: &mut Chunk, bits: std::ops::Range<usize>, on: bool) {
    for bit in bits {
        let mask = 1u8 << (bit & 7);
        if on {
            chunk[bit >> 3] |= mask;
        } else {
            chunk[bit >> 3] &= !mask;
        }
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

/// The distinct [`key`]s of `nets`, ascending, and the chunks they need. At 100M entries the sort is most of a load,
/// so the networks are grouped by length first (one counting pass) and each length's
/// 32-bit networks radix-sorted on both cores: 89M host addresses take about 0.6 s this
/// way, where a comparison sort of the 64-bit keys took 2.2 s.
fn sorted_keys(nets: &[Ipv4Net]) -> (Vec<u64>, u32) {
    let mut starts = [0usize; 34];
    for net in nets {
        starts[usize::from(net.prefix_len()) + 1] += 1;
    }
    for len in 1..34 {
        starts[len] += starts[len - 1];
    }
    let mut networks = vec![0u32; nets.len()];
    let mut next = starts;
    for net in nets {
        let at = &mut next[usize::from(net.prefix_len())];
        networks[*at] = u32::from(net.network());
        *at += 1;
    }
    let mut keys = Vec::with_capacity(nets.len());
    // One chunk at most per /24 holding longer prefixes: one bit per /24 (2 MiB) counts them
    // in the same pass.
    let mut seen = vec![0u64; DIR_SLOTS as usize / 64];
    let mut chunks_needed = 0;
    for len in 0..=32u8 {
        let run = &mut networks[starts[usize::from(len)]..starts[usize::from(len) + 1]];
        run.radix_sort_unstable();
        let mut previous = None;
        for &network in run.iter() {
            if previous == Some(network) {
                continue;
            }
            previous = Some(network);
            keys.push(key(len, network));
            if len > 24 {
                let slot = (network >> 8) as usize;
                let (word, bit) = (slot / 64, 1u64 << (slot % 64));
                chunks_needed += u32::from(seen[word] & bit == 0);
                seen[word] |= bit;
            }
        }
    }
    (keys, chunks_needed)
}

/// A list sorted and deduplicated for expansion, with the most chunks it can need: what
/// sizes the second-level map before the table is written into it.
pub struct Prepared {
    /// [`key`]s, ascending.
    sorted: Vec<u64>,
    chunks_needed: u32,
}

impl Prepared {
    /// Sorts `nets` (any order, duplicates and overlaps allowed) by length.
    pub fn new(nets: &[Ipv4Net]) -> Self {
        let (sorted, chunks_needed) = sorted_keys(nets);
        Self {
            sorted,
            chunks_needed,
        }
    }

    /// Distinct prefixes.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The most chunks the table can need (the /24s holding longer prefixes).
    pub fn chunks_needed(&self) -> u32 {
        self.chunks_needed
    }

    /// Expands the list into `store`, whose levels must be all [`DIR_ALLOW`] and zero.
    ///
    /// # Errors
    /// [`ChunksFull`] when `store` has fewer chunks than [`chunks_needed`](Self::chunks_needed).
    pub fn build_in<S: Store>(self, store: S) -> Result<Dir24<S>, ChunksFull> {
        let mut table = Dir24 {
            store,
            used: 0,
            free: Quarantine::default(),
            prefixes: Prefixes::new(Vec::new()),
        };
        for (len, network) in self.sorted.iter().map(|&k| unkey(k)) {
            // Ascending lengths: a prefix whose first address is already denied lies wholly
            // inside a shorter (or equal) one seen before.
            if table.denies_u32(network) {
                continue;
            }
            table.apply(network, len)?;
        }
        table.prefixes = Prefixes::new(self.sorted);
        Ok(table)
    }
}

impl Dir24<Owned> {
    /// Expands `nets` (any order, duplicates and overlaps allowed) into a table in memory.
    ///
    /// # Panics
    /// Never: an owned store grows as needed.
    pub fn build(nets: &[Ipv4Net]) -> Self {
        let store = Owned {
            slots: vec![DIR_ALLOW; DIR_SLOTS as usize],
            chunks: Vec::new(),
        };
        Prepared::new(nets)
            .build_in(store)
            .expect("an owned store never fills up")
    }
}

impl<S: Store> Dir24<S> {
    /// The prefixes of the list, in address order.
    ///
    /// # Panics
    /// Never: stored prefix lengths are at most 32.
    pub fn nets(&self) -> Vec<Ipv4Net> {
        let mut prefixes: Vec<(u32, u8)> = self
            .prefixes
            .iter()
            .map(|k| {
                let (len, network) = unkey(k);
                (network, len)
            })
            .collect();
        prefixes.sort_unstable();
        prefixes
            .into_iter()
            .map(|(n, l)| Ipv4Net::new(Ipv4Addr::from(n), l).expect("lengths are <= 32"))
            .collect()
    }

    /// Distinct prefixes in the list.
    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Chunks in use (the second level's size; at most one per /24).
    ///
    /// # Panics
    /// Never: a table has fewer than 2^32 chunks.
    pub fn chunks_used(&self) -> u32 {
        self.used - u32::try_from(self.free.len()).expect("fewer than 2^32 chunks")
    }

    /// Slots that point to a chunk: equal to [`chunks_used`](Dir24::chunks_used) unless a
    /// chunk leaked (a check for tests; reads the whole first level).
    pub fn slots_with_chunks(&self) -> usize {
        self.store
            .slots()
            .iter()
            .filter(|&&v| v >= DIR_FIRST_CHUNK)
            .count()
    }

    /// The disjoint denied ranges the table holds, read from its levels (the kernel's own
    /// memory once loaded): a walk of every slot and chunk.
    pub fn ranges_in_table(&self) -> u64 {
        let mut ranges = 0;
        let mut denied = false;
        let mut step = |now: bool| {
            ranges += u64::from(now && !denied);
            denied = now;
        };
        for &slot in self.store.slots() {
            match slot {
                DIR_ALLOW => step(false),
                DIR_DENY => step(true),
                chunk => {
                    let bits = &self.store.chunks()[(chunk - DIR_FIRST_CHUNK) as usize];
                    for bit in 0..256 {
                        step(bits[bit >> 3] >> (bit & 7) & 1 != 0);
                    }
                }
            }
        }
        ranges
    }

    /// The disjoint ranges the list's prefixes make (overlapping or touching ones merged):
    /// what [`ranges_in_table`](Self::ranges_in_table) must read.
    pub fn ranges_of_list(&self) -> u64 {
        crate::range::disjoint_ranges(self.nets().iter().map(crate::range::key_v4))
    }

    /// Whether the table denies `addr`: the program's lookup, in user space.
    pub fn denies(&self, addr: Ipv4Addr) -> bool {
        self.denies_u32(u32::from(addr))
    }

    /// Whether a strictly shorter prefix of the list covers `network/len`. The table answers
    /// "no" for most prefixes in one or two reads: a prefix of length <= 24 makes every slot
    /// it covers [`DIR_DENY`], and one of length 25 to 31 sets the bit of every address it
    /// covers; only where the table denies `network` are the shorter lengths looked up.
    fn has_ancestor(&self, network: u32, len: u8) -> bool {
        let shortest = match self.store.slots()[(network >> 8) as usize] {
            DIR_DENY => 0,
            DIR_ALLOW => return false,
            _ if len <= 25 || !self.denies_u32(network) => return false,
            _ => 25,
        };
        (shortest..len).any(|l| self.prefixes.covers_at(network, l))
    }

    fn denies_u32(&self, addr: u32) -> bool {
        match self.store.slots()[(addr >> 8) as usize] {
            DIR_ALLOW => false,
            DIR_DENY => true,
            chunk => {
                let bit = (addr & 0xff) as usize;
                self.store.chunks()[(chunk - DIR_FIRST_CHUNK) as usize][bit >> 3] >> (bit & 7) & 1
                    != 0
            }
        }
    }

    fn allocate(&mut self) -> Result<u32, ChunksFull> {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                if !self.store.grow_to(self.used) {
                    return Err(ChunksFull {
                        capacity: self.store.capacity(),
                    });
                }
                self.used += 1;
                self.used - 1
            }
        };
        self.store.chunks_mut()[index as usize] = [0; DIR_CHUNK_BYTES];
        Ok(index)
    }

    /// Sets a slot, giving back the chunk it pointed to (after the slot no longer does).
    fn set_slot(&mut self, slot: usize, value: u32) {
        let old = std::mem::replace(&mut self.store.slots_mut()[slot], value);
        if old >= DIR_FIRST_CHUNK {
            self.free.push(old - DIR_FIRST_CHUNK);
        }
    }

    /// Denies every address of `network/len` in the table.
    fn apply(&mut self, network: u32, len: u8) -> Result<(), ChunksFull> {
        if len <= 24 {
            for slot in slot_range(network, len) {
                self.set_slot(slot, DIR_DENY);
            }
            return Ok(());
        }
        let slot = (network >> 8) as usize;
        let chunk = match self.store.slots()[slot] {
            DIR_DENY => return Ok(()),
            DIR_ALLOW => {
                let chunk = self.allocate()?;
                set_bits(
                    &mut self.store.chunks_mut()[chunk as usize],
                    bit_range(network, len),
                    true,
                );
                // The chunk's bits before the slot that points to it, for the program
                // reading concurrently.
                fence(Ordering::Release);
                self.store.slots_mut()[slot] = chunk + DIR_FIRST_CHUNK;
                return Ok(());
            }
            value => value - DIR_FIRST_CHUNK,
        };
        set_bits(
            &mut self.store.chunks_mut()[chunk as usize],
            bit_range(network, len),
            true,
        );
        Ok(())
    }

    /// Chunks that can still be handed out.
    fn chunks_available(&self) -> u64 {
        self.free.reusable() as u64 + u64::from(self.store.capacity().saturating_sub(self.used))
    }

    /// Rewrites the region of a removed prefix that no shorter prefix covers, from the
    /// prefixes still inside it (`inside`, ascending length). Every address they deny stays
    /// denied throughout: a slot goes from "deny" straight to its chunk, a chunk's bytes from
    /// old to new bits.
    fn rewrite(&mut self, network: u32, len: u8, inside: &[(u8, u32)]) -> Result<(), ChunksFull> {
        if len > 24 {
            // The slot holds a chunk (no shorter prefix covers the removed one).
            let slot = (network >> 8) as usize;
            let chunk = self.store.slots()[slot] - DIR_FIRST_CHUNK;
            let mut bits = self.store.chunks()[chunk as usize];
            set_bits(&mut bits, bit_range(network, len), false);
            for &(l, n) in inside {
                set_bits(&mut bits, bit_range(n, l), true);
            }
            if bits.iter().all(|&b| b == 0) {
                self.set_slot(slot, DIR_ALLOW);
            } else {
                self.store.chunks_mut()[chunk as usize] = bits;
            }
            return Ok(());
        }
        // Every slot of the region says "deny" now; work out what each must say next.
        enum Next {
            Deny,
            Bits(Chunk),
        }
        let mut next: std::collections::BTreeMap<usize, Next> = Default::default();
        for &(l, n) in inside {
            if l <= 24 {
                for slot in slot_range(n, l) {
                    next.insert(slot, Next::Deny);
                }
                continue;
            }
            let entry = next
                .entry((n >> 8) as usize)
                .or_insert(Next::Bits([0; DIR_CHUNK_BYTES]));
            if let Next::Bits(bits) = entry {
                set_bits(bits, bit_range(n, l), true);
            }
        }
        let needed = next.values().filter(|v| matches!(v, Next::Bits(_))).count();
        if needed as u64 > self.chunks_available() {
            return Err(ChunksFull {
                capacity: self.store.capacity(),
            });
        }
        for slot in slot_range(network, len) {
            match next.get(&slot) {
                Some(Next::Deny) => {}
                Some(Next::Bits(bits)) => {
                    let chunk = self.allocate()?;
                    self.store.chunks_mut()[chunk as usize] = *bits;
                    fence(Ordering::Release);
                    self.store.slots_mut()[slot] = chunk + DIR_FIRST_CHUNK;
                }
                None => self.store.slots_mut()[slot] = DIR_ALLOW,
            }
        }
        Ok(())
    }

    /// Adds one prefix. Returns whether the list changed (false if it was there already).
    /// On [`ChunksFull`] the table is unchanged.
    ///
    /// # Errors
    /// [`ChunksFull`] when the prefix needs a chunk and none is left.
    pub fn add(&mut self, net: Ipv4Net) -> Result<bool, ChunksFull> {
        let (network, len) = (u32::from(net.network()), net.prefix_len());
        // A prefix of the list denies its first address: where the table allows it, the
        // prefix is new without a look at the list.
        if self.denies_u32(network) && self.prefixes.contains(network, len) {
            return Ok(false);
        }
        if !self.has_ancestor(network, len) {
            self.apply(network, len)?;
        }
        self.prefixes.insert(network, len);
        Ok(true)
    }

    /// Removes one prefix. Returns whether the list changed (false if it was not there).
    /// Addresses that other prefixes of the list cover stay denied, without a moment
    /// allowed. On [`ChunksFull`] (the prefixes inside a removed short one need more chunks
    /// than are left) the table and the list are unchanged.
    ///
    /// # Errors
    /// [`ChunksFull`] when re-expanding the prefixes inside `net` needs more chunks than are left.
    pub fn remove(&mut self, net: Ipv4Net) -> Result<bool, ChunksFull> {
        let (network, len) = (u32::from(net.network()), net.prefix_len());
        if !self.prefixes.take(network, len) {
            return Ok(false);
        }
        // Shorter and longer prefixes decide what the table keeps: taking this one out of
        // the list first changes neither.
        if !self.has_ancestor(network, len) {
            // The prefixes strictly inside this one: longer, in its address range.
            let inside = self.prefixes.inside(network, len);
            if let Err(full) = self.rewrite(network, len, &inside) {
                self.prefixes.insert(network, len);
                return Err(full);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn lookups_follow_prefixes_of_every_kind() {
        let t = Dir24::build(&[
            net("10.0.0.0/8"),
            net("192.0.2.128/25"),
            net("203.0.113.7/32"),
        ]);
        assert!(t.denies(addr("10.200.1.1")));
        assert!(t.denies(addr("192.0.2.128")));
        assert!(t.denies(addr("192.0.2.255")));
        assert!(!t.denies(addr("192.0.2.127")));
        assert!(t.denies(addr("203.0.113.7")));
        assert!(!t.denies(addr("203.0.113.6")));
        assert!(!t.denies(addr("11.0.0.0")));
        assert_eq!(t.chunks_used(), 2);
    }

    #[test]
    fn covered_prefixes_take_no_chunk() {
        let t = Dir24::build(&[net("10.0.0.0/8"), net("10.1.2.3/32"), net("10.1.2.0/24")]);
        assert_eq!(t.chunks_used(), 0);
    }

    #[test]
    fn removing_a_host_inside_a_denied_net_keeps_the_net() {
        let mut t = Dir24::build(&[net("192.0.2.0/24"), net("192.0.2.7/32")]);
        assert_eq!(t.remove(net("192.0.2.7/32")), Ok(true));
        assert!(t.denies(addr("192.0.2.7")));
        assert_eq!(t.remove(net("192.0.2.0/24")), Ok(true));
        assert!(!t.denies(addr("192.0.2.7")));
        assert_eq!(t.remove(net("192.0.2.0/24")), Ok(false));
    }

    #[test]
    fn removing_a_net_puts_back_what_it_covered() {
        let mut t = Dir24::build(&[net("10.0.0.0/8"), net("10.1.2.3/32"), net("10.9.0.0/16")]);
        assert_eq!(t.remove(net("10.0.0.0/8")), Ok(true));
        assert!(t.denies(addr("10.1.2.3")));
        assert!(!t.denies(addr("10.1.2.4")));
        assert!(t.denies(addr("10.9.255.255")));
        assert!(!t.denies(addr("10.10.0.0")));
        assert_eq!(t.chunks_used(), 1);
    }

    #[test]
    fn adding_a_net_frees_the_chunks_it_covers() {
        let mut t = Dir24::build(&[net("10.1.2.3/32"), net("10.1.3.3/32")]);
        assert_eq!(t.chunks_used(), 2);
        assert_eq!(t.add(net("10.1.0.0/16")), Ok(true));
        assert_eq!(t.chunks_used(), 0);
        assert_eq!(t.add(net("10.1.0.0/16")), Ok(false));
        assert_eq!(t.remove(net("10.1.0.0/16")), Ok(true));
        assert!(t.denies(addr("10.1.3.3")));
        assert!(!t.denies(addr("10.1.3.4")));
        assert_eq!(t.chunks_used(), 2);
    }

    #[test]
    fn the_whole_space_and_single_hosts() {
        let t = Dir24::build(&[net("0.0.0.0/0")]);
        assert!(t.denies(addr("255.255.255.255")));
        let t = Dir24::build(&[net("255.255.255.255/32"), net("0.0.0.0/32")]);
        assert!(t.denies(addr("255.255.255.255")));
        assert!(t.denies(addr("0.0.0.0")));
        assert!(!t.denies(addr("0.0.0.1")));
    }

    #[test]
    fn many_changes_after_a_load_are_merged_into_the_lookup_and_still_answer() {
        // Past a quarter of the list (at least 1,024 changes) the changes are merged into
        // the sorted keys; lookups, removals and the count must not notice.
        let mut t = Dir24::build(&[net("10.0.0.0/16"), net("10.1.0.0/24")]);
        let host = |i: u32| Ipv4Net::new(Ipv4Addr::from(0x0b00_0000 + i * 7), 32).unwrap();
        for i in 0..3000 {
            assert_eq!(t.add(host(i)), Ok(true));
        }
        assert_eq!(t.len(), 3002);
        for i in (0..3000).step_by(2) {
            assert_eq!(t.remove(host(i)), Ok(true));
        }
        assert_eq!(t.remove(host(0)), Ok(false));
        assert_eq!(t.add(host(1)), Ok(false));
        assert_eq!(t.len(), 1502);
        assert!(t.denies(host(1).network()));
        assert!(!t.denies(host(2).network()));
        // A /8 over them all, removed again: the hosts inside come back from the merged keys
        // and from the changes since.
        assert_eq!(t.add(net("11.0.0.0/8")), Ok(true));
        assert_eq!(t.remove(host(3)), Ok(true));
        assert_eq!(t.remove(net("11.0.0.0/8")), Ok(true));
        assert!(t.denies(host(2999).network()));
        assert!(!t.denies(host(3).network()));
        assert!(!t.denies(host(2998).network()));
        assert!(t.denies(Ipv4Addr::new(10, 0, 200, 1)));
        assert_eq!(t.nets().len(), t.len());
    }
}
