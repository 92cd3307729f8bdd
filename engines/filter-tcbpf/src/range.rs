//! The bounded-time range tables (after DXR), built and changed in user space, read by
//! `egb_filter_dir` in the kernel: for IPv6, and for short IPv4 lists (addresses in the top
//! 32 of 128 bits).
//!
//! A deny-list's answer is one bit, so its prefixes collapse into disjoint denied intervals,
//! and an address is denied when an odd number of the intervals' edges ("flip points") lie
//! at or below it. The table splits the address space into cells:
//!
//! - the **first cells**, 2^`top` of them, indexed by the top `top` bits (chosen by the
//!   list's size, [`top_bits`]);
//! - **subdirectories** of 256 cells, indexed by the next 8 bits, for a cell whose flip points
//!   are more than [`RANGE_LEAF_MAX`];
//! - **leaves**: the state at the cell's first address and the flip points inside it (at most
//!   [`RANGE_LEAF_MAX`], sorted, as high and low halves in one 64-byte line of each of two
//!   arrays); a leaf of one or two points whose bits after the cell's 16-bit window are zero
//!   keeps them in its window and takes no line ([`RANGE_INLINE`]).
//!
//! A lookup reads one cell per level (a few levels for real lists, at most
//! [`RANGE_MAX_DEPTH`](filter_tcbpf_common::RANGE_MAX_DEPTH) + 1) and one line of points,
//! whatever the prefix lengths.
//!
//! A change rewrites only the cells its prefix overlaps, from the list's prefixes in them
//! ([`Prefixes`]): the new leaf is written to free space first and its cell switched after
//! it, so the program sees the old cell or the new one. Freed space is reused only after
//! [`GRACE_MS`](crate::grace::GRACE_MS), long past any program run that could still read it.

use std::collections::BTreeSet;
use std::sync::atomic::{Ordering, fence};

use filter_tcbpf_common::{
    RANGE_COUNT_MASK, RANGE_COUNT_SHIFT, RANGE_FANOUT, RANGE_INLINE, RANGE_LEAF_MAX,
    RANGE_OFFSET_SHIFT, RANGE_SUBDIR, RANGE_TOP_BITS_MAX, RANGE_TOP_BITS_MIN, RANGE_WINDOW_BITS,
};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::grace::Quarantine;

/// Flip-point halves per line (a leaf's room, 64 bytes).
pub(crate) const LINE: usize = RANGE_LEAF_MAX as usize;

/// The most leaves a table can index (the line field of a leaf, [`RANGE_INLINE`] left out);
/// a list with at most this many flip points always fits.
pub(crate) const MAX_LINES: u64 = RANGE_INLINE as u64;

/// The top bits for an IPv6 list of `entries`: about two entries per first cell inside
/// 2000::/3, between [`RANGE_TOP_BITS_MIN`] and [`RANGE_TOP_BITS_MAX`].
pub(crate) fn top_bits(entries: usize) -> u32 {
    let log = usize::BITS - entries.max(1).leading_zeros();
    (log + 2).clamp(RANGE_TOP_BITS_MIN, RANGE_TOP_BITS_MAX)
}

/// The top bits for an IPv4 list of `entries`: about one entry per first cell (IPv4 lists
/// spread over the whole space), so that few cells overflow into 2 KiB subdirectories.
/// From 8,192 entries on, 16 at least (512 KiB of cells): every cell's window then holds the
/// rest of an IPv4 address, and a leaf of one or two flip points needs no line
/// ([`RANGE_INLINE`]); shorter lists take fewer cells and a line per leaf.
pub(crate) fn top_bits_v4(entries: usize) -> u32 {
    const EXACT_WINDOWS: u32 = 32 - RANGE_WINDOW_BITS;
    let log = usize::BITS - entries.max(1).leading_zeros();
    let least = if entries >= 8_192 {
        EXACT_WINDOWS
    } else {
        RANGE_TOP_BITS_MIN
    };
    log.clamp(least, RANGE_TOP_BITS_MAX)
}

/// An IPv4 prefix as a range-table key: the address in the top 32 of 128 bits.
pub(crate) fn key_v4(net: &Ipv4Net) -> Key {
    (u128::from(u32::from(net.network())) << 96, net.prefix_len())
}

/// Where the table lives: vectors while it is built, the maps' mmap views once loaded.
pub(crate) trait RangeStore {
    /// Every cell: the first cells, then the subdirectories.
    fn cells(&self) -> &[u64];
    /// The cells, for writing.
    fn cells_mut(&mut self) -> &mut [u64];
    /// The flip points' high halves, [`LINE`] per leaf.
    #[cfg(test)]
    fn high(&self) -> &[u64];
    /// The flip points' low halves.
    #[cfg(test)]
    fn low(&self) -> &[u64];
    /// Both halves, for writing.
    fn points_mut(&mut self) -> (&mut [u64], &mut [u64]);
    /// Makes room for `subdirs` subdirectories and `lines` leaves in all; false when the
    /// store is full.
    fn reserve(&mut self, subdirs: u32, lines: u32) -> bool;
}

/// A table in memory, growing as it is built.
#[derive(Default)]
pub(crate) struct Owned {
    pub(crate) cells: Vec<u64>,
    pub(crate) high: Vec<u64>,
    pub(crate) low: Vec<u64>,
    first: usize,
}

impl RangeStore for Owned {
    fn cells(&self) -> &[u64] {
        &self.cells
    }
    fn cells_mut(&mut self) -> &mut [u64] {
        &mut self.cells
    }
    #[cfg(test)]
    fn high(&self) -> &[u64] {
        &self.high
    }
    #[cfg(test)]
    fn low(&self) -> &[u64] {
        &self.low
    }
    fn points_mut(&mut self) -> (&mut [u64], &mut [u64]) {
        (&mut self.high, &mut self.low)
    }
    fn reserve(&mut self, subdirs: u32, lines: u32) -> bool {
        let cells = self.first + subdirs as usize * RANGE_FANOUT as usize;
        if self.cells.len() < cells {
            self.cells.resize(cells, 0);
        }
        let points = lines as usize * LINE;
        if self.high.len() < points {
            self.high.resize(points, 0);
            self.low.resize(points, 0);
        }
        u64::from(lines) <= MAX_LINES
    }
}

/// Where a mapped table's low halves live.
pub(crate) enum LowHalves {
    /// In a map the program reads (IPv6).
    Kernel(crate::sys::Mapping),
    /// In this process only (IPv4: the program knows they are zero).
    Local(Vec<u64>),
}

impl LowHalves {
    #[cfg(test)]
    fn slice(&self) -> &[u64] {
        match self {
            Self::Kernel(mapping) => mapping.slice(),
            Self::Local(halves) => halves,
        }
    }

    fn slice_mut(&mut self) -> &mut [u64] {
        match self {
            Self::Kernel(mapping) => mapping.slice_mut(),
            Self::Local(halves) => halves,
        }
    }
}

/// The table in the maps' mmap views: what the program reads.
pub(crate) struct Mapped {
    pub(crate) cells: crate::sys::Mapping,
    pub(crate) high: crate::sys::Mapping,
    pub(crate) low: LowHalves,
    /// Subdirectories the cells map has room for.
    pub(crate) subdirs: u32,
    /// Leaves (lines) the point maps have room for.
    pub(crate) lines: u32,
}

impl RangeStore for Mapped {
    fn cells(&self) -> &[u64] {
        self.cells.slice()
    }
    fn cells_mut(&mut self) -> &mut [u64] {
        self.cells.slice_mut()
    }
    #[cfg(test)]
    fn high(&self) -> &[u64] {
        self.high.slice()
    }
    #[cfg(test)]
    fn low(&self) -> &[u64] {
        self.low.slice()
    }
    fn points_mut(&mut self) -> (&mut [u64], &mut [u64]) {
        (self.high.slice_mut(), self.low.slice_mut())
    }
    fn reserve(&mut self, subdirs: u32, lines: u32) -> bool {
        subdirs <= self.subdirs && lines <= self.lines
    }
}

/// The store has no room left for a change: the caller swaps in a bigger table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RangesFull;

/// A prefix as the table keeps it: its first address and length.
pub(crate) type Key = (u128, u8);

/// The disjoint ranges sorted prefixes make, overlapping or touching ones merged.
pub(crate) fn disjoint_ranges(keys: impl Iterator<Item = Key>) -> u64 {
    let (initial, points) = flips(keys, 0, u128::MAX);
    // Two edges a range, less the start of one at address 0 and the end of one at the top.
    (points.len() as u64 + u64::from(initial)).div_ceil(2)
}

/// The 16 bits of `address` after its first `bits` (at most 112): a leaf keeps them for its
/// first and last flip points, so that a lookup outside that window needs no leaf read.
fn window(address: u128, bits: u32) -> u64 {
    (address >> (112 - bits.min(112))) as u64 & 0xffff
}

/// The mask of the host bits of a `bits`-long prefix.
fn host_mask(bits: u32) -> u128 {
    u128::MAX.checked_shr(bits).unwrap_or(0)
}

fn key(net: &Ipv6Net) -> Key {
    (u128::from(net.network()), net.prefix_len())
}

/// The list's prefixes, for changes: the sorted keys the table was built from, plus the
/// changes since (merged in once they reach a quarter of the list), with a count per length.
#[derive(Default)]
struct Prefixes {
    base: Vec<Key>,
    added: BTreeSet<Key>,
    removed: foldhash::HashSet<Key>,
    per_length: Vec<u64>,
}

impl Prefixes {
    fn new(base: Vec<Key>) -> Self {
        let mut per_length = vec![0u64; 129];
        for &(_, len) in &base {
            per_length[usize::from(len)] += 1;
        }
        Self {
            base,
            per_length,
            ..Self::default()
        }
    }

    fn in_base(&self, key: &Key) -> bool {
        self.base.binary_search(key).is_ok()
    }

    fn contains(&self, key: &Key) -> bool {
        self.added.contains(key) || (self.in_base(key) && !self.removed.contains(key))
    }

    fn insert(&mut self, key: Key) -> bool {
        if self.contains(&key) {
            return false;
        }
        if !self.removed.remove(&key) {
            self.added.insert(key);
        }
        self.per_length[usize::from(key.1)] += 1;
        self.merge_if_due();
        true
    }

    fn remove(&mut self, key: Key) -> bool {
        let removed = self.added.remove(&key) || (self.in_base(&key) && self.removed.insert(key));
        if removed {
            self.per_length[usize::from(key.1)] -= 1;
            self.merge_if_due();
        }
        removed
    }

    fn merge_if_due(&mut self) {
        if (self.added.len() + self.removed.len()) * 4 <= self.base.len().max(4_096) {
            return;
        }
        let removed = std::mem::take(&mut self.removed);
        let mut base = std::mem::take(&mut self.base);
        base.retain(|k| !removed.contains(k));
        base.extend(std::mem::take(&mut self.added));
        base.sort_unstable();
        self.base = base;
    }

    /// Whether a prefix of at most `bits` bits covers `address`.
    fn covers(&self, address: u128, bits: u32) -> bool {
        (0..=bits.min(128)).any(|len| {
            self.per_length[len as usize] > 0
                && self.contains(&(address & !host_mask(len), len as u8))
        })
    }

    /// The prefixes whose first address is in `first..=last`, sorted.
    fn starting_in(&self, first: u128, last: u128) -> Vec<Key> {
        let from = self.base.partition_point(|k| k.0 < first);
        let to = self.base.partition_point(|k| k.0 <= last);
        let mut keys: Vec<Key> = self.base[from..to]
            .iter()
            .filter(|k| !self.removed.contains(k))
            .copied()
            .collect();
        let added = self.added.range((first, 0)..=(last, u8::MAX));
        if added.clone().next().is_some() {
            keys.extend(added);
            keys.sort_unstable();
        }
        keys
    }

    fn len(&self) -> usize {
        self.base.len() + self.added.len() - self.removed.len()
    }

    fn iter(&self) -> impl Iterator<Item = Key> + '_ {
        self.base
            .iter()
            .filter(|k| !self.removed.contains(k))
            .chain(&self.added)
            .copied()
    }
}

/// The flip points of sorted prefixes inside the cell `first..=last`: the state at `first`
/// and the points after it where the state flips.
fn flips(keys: impl Iterator<Item = Key>, first: u128, last: u128) -> (bool, Vec<u128>) {
    let mut initial = false;
    let mut points = Vec::new();
    let mut emit = |start: u128, end: u128| {
        if start <= first {
            initial = true;
        } else {
            points.push(start);
        }
        if end < last {
            points.push(end + 1);
        }
    };
    let mut current: Option<(u128, u128)> = None;
    for (start, len) in keys {
        let (start, end) = (
            start.max(first),
            (start | host_mask(u32::from(len))).min(last),
        );
        match &mut current {
            Some((_, e)) if start <= e.saturating_add(1) => *e = (*e).max(end),
            _ => {
                if let Some((s, e)) = current {
                    emit(s, e);
                }
                current = Some((start, end));
            }
        }
    }
    if let Some((s, e)) = current {
        emit(s, e);
    }
    (initial, points)
}

/// A walk through a table's states in address order, counting denied ranges.
#[derive(Default)]
struct Walk {
    denied: bool,
    ranges: u64,
}

impl Walk {
    fn step(&mut self, denied: bool) {
        self.ranges += u64::from(denied && !self.denied);
        self.denied = denied;
    }
}

/// Space given back, reused once no program run can still read it.
#[derive(Default)]
struct FreeSpace {
    lines: Quarantine,
    subdirs: Quarantine,
}

/// A range table over a store; see the [module docs](self).
pub(crate) struct Ranges<S: RangeStore = Owned> {
    store: S,
    top: u32,
    /// Subdirectories and lines handed out so far (high-water marks).
    subdirs: u32,
    lines: u32,
    free: FreeSpace,
    prefixes: Prefixes,
}

impl Ranges<Owned> {
    /// Builds the table of the IPv6 `nets` in memory.
    ///
    /// # Errors
    /// The number of flip points the list makes, when it is past [`MAX_LINES`].
    pub(crate) fn build(nets: &[Ipv6Net]) -> Result<Self, u64> {
        let keys: Vec<Key> = nets.iter().map(|n| key(&n.trunc())).collect();
        let top = top_bits(keys.len());
        Self::build_keys(keys, top)
    }

    /// Builds the table of the IPv4 `nets` in memory (addresses in the top 32 bits).
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub(crate) fn build_v4(nets: &[Ipv4Net]) -> Result<Self, u64> {
        let keys: Vec<Key> = nets.iter().map(|n| key_v4(&n.trunc())).collect();
        let top = top_bits_v4(keys.len());
        Self::build_keys(keys, top)
    }

    fn build_keys(mut keys: Vec<Key>, top: u32) -> Result<Self, u64> {
        keys.sort_unstable();
        keys.dedup();
        let (initial, points) = flips(keys.iter().copied(), 0, u128::MAX);
        if points.len() as u64 > MAX_LINES {
            return Err(points.len() as u64);
        }
        let store = Owned {
            cells: vec![0; 1 << top],
            first: 1 << top,
            ..Owned::default()
        };
        let mut table = Self {
            store,
            top,
            subdirs: 0,
            lines: 0,
            free: FreeSpace::default(),
            prefixes: Prefixes::new(keys),
        };
        table
            .fill_children(0, 0, 0, top, initial, &points)
            .expect("an owned store grows up to MAX_LINES, and each leaf has a point");
        Ok(table)
    }

    /// The same table in `store`, which must have room for [`Self::subdirs_used`]
    /// subdirectories and [`Self::lines_used`] leaves.
    pub(crate) fn move_into<S: RangeStore>(self, mut store: S) -> Ranges<S> {
        assert!(store.reserve(self.subdirs, self.lines));
        store.cells_mut()[..self.store.cells.len()].copy_from_slice(&self.store.cells);
        let (high, low) = store.points_mut();
        high[..self.store.high.len()].copy_from_slice(&self.store.high);
        low[..self.store.low.len()].copy_from_slice(&self.store.low);
        Ranges {
            store,
            top: self.top,
            subdirs: self.subdirs,
            lines: self.lines,
            free: FreeSpace::default(),
            prefixes: self.prefixes,
        }
    }
}

impl<S: RangeStore> Ranges<S> {
    /// How many top bits index the first cells.
    pub(crate) fn top(&self) -> u32 {
        self.top
    }

    /// Subdirectories in use.
    pub(crate) fn subdirs_used(&self) -> u32 {
        self.subdirs
    }

    /// Leaves (lines of points) in use.
    pub(crate) fn lines_used(&self) -> u32 {
        self.lines
    }

    /// Distinct prefixes of the list.
    pub(crate) fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// The list's prefixes (of an IPv6 table).
    pub(crate) fn nets(&self) -> Vec<Ipv6Net> {
        self.prefixes
            .iter()
            .map(|(address, len)| Ipv6Net::new_assert(address.into(), len))
            .collect()
    }

    /// The list's prefixes (of an IPv4 table).
    pub(crate) fn nets_v4(&self) -> Vec<Ipv4Net> {
        self.prefixes
            .iter()
            .map(|(address, len)| Ipv4Net::new_assert(((address >> 96) as u32).into(), len))
            .collect()
    }

    /// The disjoint denied ranges the table holds, read from its cells and points (the
    /// kernel's own memory once loaded).
    pub(crate) fn ranges_in_table(&self) -> u64 {
        let mut walk = Walk::default();
        for index in 0..self.first_cells() {
            self.walk(self.store.cells()[index as usize] as u32, &mut walk);
        }
        walk.ranges
    }

    fn walk(&self, cell: u32, walk: &mut Walk) {
        if cell & RANGE_SUBDIR != 0 {
            let index = self.first_cells() + (cell & !RANGE_SUBDIR) * RANGE_FANOUT;
            for child in index..index + RANGE_FANOUT {
                self.walk(self.store.cells()[child as usize] as u32, walk);
            }
            return;
        }
        walk.step(cell & 1 != 0);
        let count = (cell >> RANGE_COUNT_SHIFT) & RANGE_COUNT_MASK;
        for _ in 0..count {
            walk.step(!walk.denied);
        }
    }

    /// The disjoint ranges the list's prefixes make (overlapping or touching ones merged):
    /// what [`ranges_in_table`](Self::ranges_in_table) must read.
    pub(crate) fn ranges_of_list(&self) -> u64 {
        let mut keys: Vec<Key> = self.prefixes.iter().collect();
        keys.sort_unstable();
        disjoint_ranges(keys.into_iter())
    }

    fn first_cells(&self) -> u32 {
        1 << self.top
    }

    /// Whether the table denies `address`, read as the program reads it.
    #[cfg(test)]
    pub(crate) fn denies(&self, address: u128) -> bool {
        let cells = self.store.cells();
        let mut entry = cells[(address >> (128 - self.top)) as usize];
        let mut used = self.top;
        while entry as u32 & RANGE_SUBDIR != 0 {
            let byte = ((address >> (120 - used)) & 0xff) as u32;
            let subdir = entry as u32 & !RANGE_SUBDIR;
            entry = cells[(self.first_cells() + subdir * RANGE_FANOUT + byte) as usize];
            used += 8;
        }
        let cell = entry as u32;
        let count = ((cell >> RANGE_COUNT_SHIFT) & RANGE_COUNT_MASK) as usize;
        if used <= 112 {
            let window = window(address, used);
            if window < entry >> 48 {
                return cell & 1 != 0;
            }
            if window > (entry >> 32) & 0xffff {
                return (cell ^ count as u32) & 1 != 0;
            }
            if cell >> RANGE_OFFSET_SHIFT == RANGE_INLINE {
                let last = if window == (entry >> 32) & 0xffff {
                    count
                } else {
                    1
                };
                return (cell ^ last as u32) & 1 != 0;
            }
        }
        let first = (cell >> RANGE_OFFSET_SHIFT) as usize * LINE;
        let (high, low) = (self.store.high(), self.store.low());
        let below = (first..first + count)
            .take_while(|&i| (u128::from(high[i]) << 64 | u128::from(low[i])) <= address)
            .count();
        (cell ^ below as u32) & 1 != 0
    }

    /// Writes the `count` cells from `index` on: the children of a cell starting at `first`,
    /// each `child_bits` long, whose state at `first` is `state` and whose flip points are
    /// `points` (all inside the parent).
    fn fill_children(
        &mut self,
        index: u32,
        first: u128,
        count: u32,
        child_bits: u32,
        mut state: bool,
        points: &[u128],
    ) -> Result<(), RangesFull> {
        let count = if count == 0 { 1 << child_bits } else { count };
        let mut i = 0;
        let mut child = 0u32;
        while child < count {
            let start = first + (u128::from(child) << (128 - child_bits));
            // A run of children without points inside: all one state.
            let next_point = points.get(i).copied();
            let run_end = match next_point {
                Some(p) => ((p - first) >> (128 - child_bits)) as u32,
                None => count,
            };
            if run_end > child {
                let value = u64::from(state);
                self.store.cells_mut()[(index + child) as usize..(index + run_end) as usize]
                    .fill(value);
                child = run_end;
                continue;
            }
            // Points exactly at the child's first address set its state.
            while points.get(i) == Some(&start) {
                state = !state;
                i += 1;
            }
            let last = start | host_mask(child_bits);
            let inside = points[i..].partition_point(|&p| p <= last);
            let value = self.encode(start, child_bits, state, &points[i..i + inside])?;
            self.store.cells_mut()[(index + child) as usize] = value;
            if inside % 2 == 1 {
                state = !state;
            }
            i += inside;
            child += 1;
        }
        Ok(())
    }

    /// The value of a cell starting at `first`, `bits` long, with `state` at `first` and
    /// `points` inside: a leaf, or a new subdirectory when there are too many points.
    fn encode(
        &mut self,
        first: u128,
        bits: u32,
        state: bool,
        points: &[u128],
    ) -> Result<u64, RangesFull> {
        if points.is_empty() {
            return Ok(u64::from(state));
        }
        let windowed = bits <= 128 - RANGE_WINDOW_BITS;
        if windowed
            && points.len() <= 2
            && points
                .iter()
                .all(|&p| p & host_mask(bits + RANGE_WINDOW_BITS) == 0)
        {
            // Exact windows: the cell says it all, no line.
            let count = points.len() as u32;
            let value =
                u32::from(state) | count << RANGE_COUNT_SHIFT | RANGE_INLINE << RANGE_OFFSET_SHIFT;
            let (first, last) = (points[0], points[points.len() - 1]);
            return Ok(u64::from(value) | window(first, bits) << 48 | window(last, bits) << 32);
        }
        if points.len() <= LINE {
            let line = self.allocate_line()?;
            let (high, low) = self.store.points_mut();
            let at = line as usize * LINE;
            for (i, &p) in points.iter().enumerate() {
                high[at + i] = (p >> 64) as u64;
                low[at + i] = p as u64;
            }
            let count = points.len() as u32;
            let value = u32::from(state) | count << RANGE_COUNT_SHIFT | line << RANGE_OFFSET_SHIFT;
            let (first, last) = match (points.first(), points.last()) {
                (Some(&first), Some(&last)) if bits <= 112 => {
                    (window(first, bits), window(last, bits))
                }
                _ => (0, 0xffff),
            };
            return Ok(u64::from(value) | first << 48 | last << 32);
        }
        let subdir = self.allocate_subdir()?;
        let index = self.first_cells() + subdir * RANGE_FANOUT;
        self.fill_children(index, first, RANGE_FANOUT, bits + 8, state, points)?;
        Ok(u64::from(RANGE_SUBDIR | subdir))
    }

    fn allocate_line(&mut self) -> Result<u32, RangesFull> {
        if let Some(line) = self.free.lines.pop() {
            return Ok(line);
        }
        if !self.store.reserve(self.subdirs, self.lines + 1) {
            return Err(RangesFull);
        }
        self.lines += 1;
        Ok(self.lines - 1)
    }

    fn allocate_subdir(&mut self) -> Result<u32, RangesFull> {
        if let Some(subdir) = self.free.subdirs.pop() {
            return Ok(subdir);
        }
        if !self.store.reserve(self.subdirs + 1, self.lines) {
            return Err(RangesFull);
        }
        self.subdirs += 1;
        Ok(self.subdirs - 1)
    }

    /// Gives back what a cell that no longer points to it held.
    fn release(&mut self, cell: u64) {
        let cell = cell as u32;
        if cell & RANGE_SUBDIR != 0 {
            let subdir = cell & !RANGE_SUBDIR;
            let index = (self.first_cells() + subdir * RANGE_FANOUT) as usize;
            for child in 0..RANGE_FANOUT as usize {
                let value = self.store.cells()[index + child];
                self.release(value);
            }
            self.free.subdirs.push(subdir);
            return;
        }
        if (cell >> RANGE_COUNT_SHIFT) & RANGE_COUNT_MASK > 0
            && cell >> RANGE_OFFSET_SHIFT != RANGE_INLINE
        {
            self.free.lines.push(cell >> RANGE_OFFSET_SHIFT);
        }
    }

    /// Adds (`add`) or removes one IPv6 prefix. Whether the list changed. On [`RangesFull`]
    /// the list keeps the change and the caller rebuilds the table from [`Self::nets`].
    pub(crate) fn change(&mut self, net: Ipv6Net, add: bool) -> Result<bool, RangesFull> {
        self.change_key(key(&net.trunc()), add)
    }

    /// [`change`](Self::change) of an IPv4 table.
    pub(crate) fn change_v4(&mut self, net: Ipv4Net, add: bool) -> Result<bool, RangesFull> {
        self.change_key(key_v4(&net.trunc()), add)
    }

    fn change_key(&mut self, key: Key, add: bool) -> Result<bool, RangesFull> {
        let changed = if add {
            self.prefixes.insert(key)
        } else {
            self.prefixes.remove(key)
        };
        let len = u32::from(key.1);
        // Covered by a shorter prefix: the addresses stay denied either way.
        if !changed || (len > 0 && self.prefixes.covers(key.0, len - 1)) {
            return Ok(changed);
        }
        let last = key.0 | host_mask(len);
        let shift = 128 - self.top;
        for top_cell in (key.0 >> shift) as u32..=(last >> shift) as u32 {
            let first = u128::from(top_cell) << shift;
            self.rewrite(top_cell, first, self.top, (key.0, last), add)?;
        }
        Ok(true)
    }

    /// Rewrites the cell at `index` (starting at `first`, `bits` long) where it overlaps
    /// `region`, descending into subdirectories the region does not cover whole.
    fn rewrite(
        &mut self,
        index: u32,
        first: u128,
        bits: u32,
        region: (u128, u128),
        add: bool,
    ) -> Result<(), RangesFull> {
        let last = first | host_mask(bits);
        let whole = region.0 <= first && last <= region.1;
        let old = self.store.cells()[index as usize];
        if !whole && old as u32 & RANGE_SUBDIR != 0 {
            let subdir = self.first_cells() + (old as u32 & !RANGE_SUBDIR) * RANGE_FANOUT;
            let shift = 128 - (bits + 8);
            let from = ((region.0.max(first) - first) >> shift) as u32;
            let to = ((region.1.min(last) - first) >> shift) as u32;
            for child in from..=to {
                let child_first = first + (u128::from(child) << shift);
                self.rewrite(subdir + child, child_first, bits + 8, region, add)?;
            }
            return Ok(());
        }
        let value = if (whole && add) || self.prefixes.covers(first, bits) {
            1
        } else {
            let inside = self.prefixes.starting_in(first, last);
            let (state, points) = flips(inside.into_iter(), first, last);
            self.encode(first, bits, state, &points)?
        };
        // The new leaf or subdirectory is complete before the cell points to it.
        fence(Ordering::Release);
        self.store.cells_mut()[index as usize] = value;
        self.release(old);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn naive(nets: &[Ipv6Net], address: u128) -> bool {
        nets.iter()
            .any(|n| n.contains(&std::net::Ipv6Addr::from(address)))
    }

    /// Addresses worth checking: each prefix's first and last, their neighbours, and
    /// pseudo-random ones inside and around.
    fn probes(nets: &[Ipv6Net], seed: u64) -> Vec<u128> {
        let mut out = Vec::new();
        let mut x = seed;
        for n in nets {
            let (a, b) = (u128::from(n.network()), u128::from(n.broadcast()));
            out.extend([a, b, a.wrapping_sub(1), b.wrapping_add(1)]);
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.push(a | (u128::from(x) & host_mask(u32::from(n.prefix_len()))));
        }
        out
    }

    /// A list of many lengths, clustered so that cells overflow into subdirectories.
    fn list(count: usize, seed: u64) -> Vec<Ipv6Net> {
        let mut x = seed;
        (0..count)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Half in one /48 with long prefixes, to fill subdirectories; half of many
                // lengths spread over 2000::/3.
                let (address, len) = if i % 2 == 0 {
                    (
                        0x2001_0db8_0000_u128 << 80 | (u128::from(x) << 20),
                        [56u8, 64, 96, 127, 128][i / 2 % 5],
                    )
                } else {
                    (
                        (0x2000_u128 << 112) | (u128::from(x) << 61) | u128::from(x >> 7),
                        [29u8, 32, 40, 47, 48, 64, 128][i / 2 % 7],
                    )
                };
                Ipv6Net::new(address.into(), len).unwrap().trunc()
            })
            .collect()
    }

    #[test]
    fn a_built_table_answers_as_the_prefixes_do() {
        for (count, seed) in [(0, 1), (1, 2), (50, 3), (3_000, 4)] {
            let nets = list(count, seed);
            let table = Ranges::build(&nets).unwrap();
            for a in probes(&nets, seed) {
                assert_eq!(table.denies(a), naive(&nets, a), "{count}: {a:#x}");
            }
            assert_eq!(table.len(), nets.iter().collect::<BTreeSet<_>>().len());
            assert_eq!(table.ranges_in_table(), table.ranges_of_list(), "{count}");
        }
        let clustered = list(3_000, 4);
        assert!(Ranges::build(&clustered).unwrap().subdirs_used() > 0);
    }

    /// An IPv4 table answers as `nets` do at the edges of every `step`th prefix, just
    /// outside them and inside, and holds the ranges they make.
    fn assert_answers_v4(table: &Ranges, nets: &[Ipv4Net], step: usize) {
        for n in nets.iter().step_by(step) {
            let (a, b) = (u32::from(n.network()), u32::from(n.broadcast()));
            for address in [a, b, a.wrapping_sub(1), b.wrapping_add(1), a ^ 0x55] {
                let expected = nets
                    .iter()
                    .any(|m| m.contains(&std::net::Ipv4Addr::from(address)));
                assert_eq!(
                    table.denies(u128::from(address) << 96),
                    expected,
                    "{address:#x}"
                );
            }
        }
        assert_eq!(table.ranges_in_table(), table.ranges_of_list());
    }

    #[test]
    fn an_ipv4_table_answers_as_its_prefixes_do_through_changes() {
        let mut x = 7u64;
        let mut nets: BTreeSet<Ipv4Net> = (0..3_000)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // A third of long prefixes inside 203.0.0.0/16, to make subdirectories.
                let (address, len) = if i % 3 == 0 {
                    (
                        0xcb00_0000 | (x >> 40) as u32 & 0xffff,
                        [32u8, 31, 28][i % 3],
                    )
                } else {
                    ((x >> 32) as u32, [32u8, 32, 32, 24, 28, 20, 31, 22][i % 8])
                };
                Ipv4Net::new(address.into(), len).unwrap().trunc()
            })
            .collect();
        let listed: Vec<Ipv4Net> = nets.iter().copied().collect();
        let mut table = Ranges::build_v4(&listed).unwrap();
        let check = |table: &Ranges, nets: &BTreeSet<Ipv4Net>| {
            let nets: Vec<Ipv4Net> = nets.iter().copied().collect();
            assert_answers_v4(table, &nets, 3);
        };
        check(&table, &nets);
        assert!(table.subdirs_used() > 0);
        for (i, n) in listed.iter().enumerate().step_by(4) {
            let removed = table.change_v4(*n, false).unwrap();
            assert_eq!(removed, nets.remove(n));
            let added: Ipv4Net = Ipv4Net::new((u32::from(n.network()) ^ 0x100).into(), 32).unwrap();
            assert_eq!(
                table.change_v4(added, true).unwrap(),
                nets.insert(added),
                "{i}"
            );
        }
        check(&table, &nets);
        assert_eq!(table.nets_v4().len(), nets.len());
    }

    #[test]
    fn long_ipv4_lists_keep_most_leaves_in_their_cells() {
        let mut x = 11u64;
        let nets: Vec<Ipv4Net> = (0..10_000)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let len = [32u8, 32, 32, 31, 24][i % 5];
                Ipv4Net::new(((x >> 32) as u32).into(), len)
                    .unwrap()
                    .trunc()
            })
            .collect();
        let table = Ranges::build_v4(&nets).unwrap();
        assert_eq!(table.top(), 16);
        // A prefix or two per cell, on exact windows: the cell says it all.
        assert!(table.lines_used() < 1_500, "{} lines", table.lines_used());
        assert_answers_v4(&table, &nets, 1);
    }

    #[test]
    fn the_whole_space_and_its_edges() {
        for nets in [
            vec![net("::/0")],
            vec![
                net("::/128"),
                net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"),
            ],
            vec![net("::/1"), net("8000::/2")],
        ] {
            let table = Ranges::build(&nets).unwrap();
            for a in probes(&nets, 9) {
                assert_eq!(table.denies(a), naive(&nets, a), "{nets:?}: {a:#x}");
            }
        }
    }

    #[test]
    fn changes_answer_as_a_rebuild_would() {
        let mut nets: BTreeSet<Ipv6Net> = list(2_000, 5).into_iter().collect();
        let mut table = Ranges::build(&nets.iter().copied().collect::<Vec<_>>()).unwrap();
        let extra = list(600, 6);
        for (i, n) in extra.iter().enumerate() {
            let add = i % 3 != 0;
            let target = if add {
                *n
            } else {
                *nets.iter().nth(i * 3).unwrap()
            };
            let expected = if add {
                nets.insert(target)
            } else {
                nets.remove(&target)
            };
            assert_eq!(table.change(target, add), Ok(expected), "{target}");
        }
        // A short prefix over many cells comes and goes.
        for add in [true, false] {
            let short = net("2001:db8::/30");
            table.change(short, add).unwrap();
            if add {
                nets.insert(short);
            } else {
                nets.remove(&short);
            }
        }
        let nets: Vec<Ipv6Net> = nets.into_iter().collect();
        for a in probes(&nets, 7).into_iter().chain(probes(&extra, 8)) {
            assert_eq!(table.denies(a), naive(&nets, a), "{a:#x}");
        }
        assert_eq!(table.nets().len(), nets.len());
        assert_eq!(table.ranges_in_table(), table.ranges_of_list());
    }

    #[test]
    fn a_full_store_says_so() {
        let nets = list(1_000, 10);
        let owned = Ranges::build(&nets).unwrap();
        let (subdirs, lines) = (owned.subdirs_used(), owned.lines_used());
        struct Tight(Owned, u32, u32);
        impl RangeStore for Tight {
            fn cells(&self) -> &[u64] {
                self.0.cells()
            }
            fn cells_mut(&mut self) -> &mut [u64] {
                self.0.cells_mut()
            }
            #[cfg(test)]
            fn high(&self) -> &[u64] {
                self.0.high()
            }
            #[cfg(test)]
            fn low(&self) -> &[u64] {
                self.0.low()
            }
            fn points_mut(&mut self) -> (&mut [u64], &mut [u64]) {
                self.0.points_mut()
            }
            fn reserve(&mut self, subdirs: u32, lines: u32) -> bool {
                subdirs <= self.1 && lines <= self.2 && self.0.reserve(subdirs, lines)
            }
        }
        let first = 1usize << owned.top();
        let store = Tight(
            Owned {
                cells: vec![0; first],
                first,
                ..Owned::default()
            },
            subdirs,
            lines,
        );
        let mut table = owned.move_into(store);
        let more = list(1_000, 11);
        assert!(
            more.iter()
                .any(|n| table.change(*n, true) == Err(RangesFull))
        );
    }
}
