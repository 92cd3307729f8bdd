//! What the kernel-side program (`filter-tcbpf-ebpf`) and the loader (`filter-tcbpf`) must
//! agree on: map and program names, and the slots of the counters map.

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![no_std]

/// LPM trie of denied IPv4 networks: key `{prefix_len: u32, addr: [u8; 4]}` (network
/// order), value a `u64` [trie value](trie_value): when the entry stops matching, and its
/// prefix length.
pub const MAP_DENY_V4: &str = "EGB_DENY_V4";
/// LPM trie of denied IPv6 networks: key `{prefix_len: u32, addr: [u8; 16]}`.
pub const MAP_DENY_V6: &str = "EGB_DENY_V6";
/// Per-CPU array of `[u64; 2]` counter pairs, indexed by the `COUNTER_*` constants.
pub const MAP_COUNTERS: &str = "EGB_COUNTERS";
/// The filter program: drops packets whose destination is in a deny map.
pub const PROG_FILTER: &str = "egb_filter";
/// A program that passes every packet at once: the attach and test-run floor.
pub const PROG_EMPTY: &str = "egb_empty";
/// [`PROG_FILTER`] as a `cgroup_skb/egress` program: the packets of a cgroup's sockets.
pub const PROG_CG_FILTER: &str = "egb_cg_filter";
/// [`PROG_FILTER_DIR`] as a `cgroup_skb/egress` program.
pub const PROG_CG_FILTER_DIR: &str = "egb_cg_filter_dir";
/// [`PROG_EMPTY`] as a `cgroup_skb/egress` program: the cgroup hook's floor.
pub const PROG_CG_EMPTY: &str = "egb_cg_empty";
/// The connect-time filter: four `cgroup/sock_addr` programs named this with a suffix per
/// hook ([`CONNECT_HOOKS`]): `connect()` and unconnected UDP `sendmsg()` to a denied address
/// are refused with `EPERM`.
pub const PROG_CN_FILTER: &str = "egb_cn_filter";
/// [`PROG_CN_FILTER`] on the constant-time table.
pub const PROG_CN_FILTER_DIR: &str = "egb_cn_filter_dir";
/// [`PROG_CN_FILTER`]'s floor: four programs that let everything go on.
pub const PROG_CN_EMPTY: &str = "egb_cn_empty";
/// The connect-time hooks: the suffix of each program and its `enum bpf_attach_type`
/// (`BPF_CGROUP_INET4_CONNECT`, `..._INET6_CONNECT`, `..._UDP4_SENDMSG`, `..._UDP6_SENDMSG`).
pub const CONNECT_HOOKS: [(&str, u32); 4] = [("_c4", 10), ("_c6", 11), ("_s4", 14), ("_s6", 15)];
/// Benchmark only: looks up [`COLD_LOOKUPS`] pseudo-random IPv4 addresses per run.
pub const PROG_COLD: &str = "egb_cold";
/// Benchmark only: [`PROG_COLD`] without the lookups, to subtract its own cost.
pub const PROG_COLD_BASE: &str = "egb_cold_base";
/// Benchmark only, hooked like the filter: looks up each packet's destination mixed with a
/// counter into a pseudo-random address (cache-cold lookups on the real send path); passes all.
pub const PROG_FILTER_COLD: &str = "egb_filter_cold";
/// Benchmark only: [`PROG_FILTER_COLD`] without the lookup.
pub const PROG_MIX_ONLY: &str = "egb_mix_only";
/// The constant-time table's first level (DIR-24-8, IPv4): `BPF_MAP_TYPE_ARRAY` of
/// `[u32; 4]`, `BPF_F_MMAPABLE`, [`DIR_SLOTS`] / 4 entries. Its mmap view is one `u32` per
/// /24, indexed by the top 24 bits of the address: [`DIR_ALLOW`], [`DIR_DENY`], or
/// [`DIR_FIRST_CHUNK`] + the index of the chunk holding that /24's longer prefixes.
pub const MAP_DIR_SLOTS: &str = "EGB_DIR_V4_SLOTS";
/// The constant-time table's second level: `BPF_MAP_TYPE_ARRAY` of [`DIR_CHUNK_BYTES`]-byte
/// chunks (`BPF_F_MMAPABLE`), one bit per address of a /24 (bit `a % 8` of byte `a / 8`,
/// `a` the last octet); a set bit denies.
pub const MAP_DIR_CHUNKS: &str = "EGB_DIR_V4_CHUNKS";
/// Slots of the first level: one per /24.
pub const DIR_SLOTS: u32 = 1 << 24;
/// Bytes per second-level chunk (256 bits).
pub const DIR_CHUNK_BYTES: usize = 32;
/// First-level value: no denied prefix covers any part of this /24.
pub const DIR_ALLOW: u32 = 0;
/// First-level value: the whole /24 is denied.
pub const DIR_DENY: u32 = 1;
/// First-level values from this one on point into the second level.
pub const DIR_FIRST_CHUNK: u32 = 2;
/// The bounded-time IPv6 table's cells (a range table, after DXR): `BPF_MAP_TYPE_ARRAY` of
/// `u64`, one per cell, `BPF_F_MMAPABLE`. The first
/// 2^[`GLOBAL_V6_TOP_BITS`] cells are indexed by the top bits of the destination; below them
/// come subdirectories of [`RANGE_FANOUT`] cells, indexed by the next 8 bits. A cell is a
/// subdirectory ([`RANGE_SUBDIR`] set, its index in the other bits) or a leaf: the state of
/// the cell's first address (bit 0, set: denied), then how many points inside the cell flip
/// that state (bits 1..=5, at most [`RANGE_LEAF_MAX`]) and the index of the line of
/// [`MAP_V6_HIGH`] and [`MAP_V6_LOW`] that holds them (bits 6..=30). A leaf's bits 48..=63
/// and 32..=47 hold the [`RANGE_WINDOW_BITS`] bits after the cell's prefix of its first and
/// last flip point: an address whose bits there are below the first's or above the last's
/// is answered from the cell alone.
pub const MAP_V6_CELLS: &str = "EGB_V6_CELLS";
/// The flip points of the range table's leaves, one 64-byte line per leaf, ascending within
/// it: their high 64 bits (`BPF_MAP_TYPE_ARRAY` of `[u64; 8]`, `BPF_F_MMAPABLE`).
pub const MAP_V6_HIGH: &str = "EGB_V6_HIGH";
/// The flip points' low 64 bits, at the same indexes as [`MAP_V6_HIGH`].
pub const MAP_V6_LOW: &str = "EGB_V6_LOW";
/// The range table of short IPv4 lists (see [`MAP_V6_CELLS`]; addresses in the top 32 of
/// 128 bits): its cells.
pub const MAP_V4R_CELLS: &str = "EGB_V4R_CELLS";
/// The IPv4 range table's flip points, a line per leaf (`[u64; 8]`, the address in the top
/// 32 bits; no low halves).
pub const MAP_V4R_POINTS: &str = "EGB_V4R_POINTS";
/// Global (`u32`, set at load): the IPv4 range table's top bits; 0: IPv4 is in DIR-24-8.
pub const GLOBAL_V4_TOP_BITS: &str = "EGB_V4_TOP_BITS";
/// IPv4 lists up to this many entries (2^17, past 100k) go to the range table (memory that
/// follows the list);
/// longer ones to DIR-24-8 (64 MiB from the first entry).
pub const V4_RANGE_MAX_ENTRIES: usize = 131_072;
/// Global (`u32`, set at load): how many top bits of an IPv6 destination index the first
/// cells ([`RANGE_TOP_BITS_MIN`]..=[`RANGE_TOP_BITS_MAX`]).
pub const GLOBAL_V6_TOP_BITS: &str = "EGB_V6_TOP_BITS";
/// Bits of a leaf's window on its flip points (see [`MAP_V6_CELLS`]); cells more than
/// `128 - RANGE_WINDOW_BITS` bits long have none.
pub const RANGE_WINDOW_BITS: u32 = 16;
/// The fewest top bits the range table indexes.
pub const RANGE_TOP_BITS_MIN: u32 = 8;
/// The most top bits the range table indexes (16 MiB of first cells).
pub const RANGE_TOP_BITS_MAX: u32 = 22;
/// A range-table cell that is a subdirectory: the other bits are its index.
pub const RANGE_SUBDIR: u32 = 1 << 31;
/// Cells per subdirectory: one per value of the next 8 bits.
pub const RANGE_FANOUT: u32 = 256;
/// The most flip points a leaf holds (a line of halves): past this a cell becomes a
/// subdirectory.
pub const RANGE_LEAF_MAX: u32 = 8;
/// Where a leaf's flip count starts, and its mask once shifted.
pub const RANGE_COUNT_SHIFT: u32 = 1;
/// The mask of a leaf's flip count.
pub const RANGE_COUNT_MASK: u32 = 0x1f;
/// Where a leaf's line index starts.
pub const RANGE_OFFSET_SHIFT: u32 = 6;
/// A leaf's line index that means "no line": its one or two flip points lie exactly on its
/// window's first and last values (every bit after the window is zero), so the cell alone
/// answers. Most leaves of IPv4 lists are such (a /32 in a cell of its own), and they take
/// no 64-byte line.
pub const RANGE_INLINE: u32 = (1 << (31 - RANGE_OFFSET_SHIFT)) - 1;
/// The most subdirectory levels below the first cells: enough to reach single addresses
/// from the fewest top bits.
pub const RANGE_MAX_DEPTH: u32 = (128 - RANGE_TOP_BITS_MIN).div_ceil(8);
/// `BPF_F_MMAPABLE`: array maps whose values user space can mmap.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// The filter program on the constant-time tables (DIR-24-8 for IPv4, the range table for
/// IPv6).
pub const PROG_FILTER_DIR: &str = "egb_filter_dir";
/// Benchmark only: [`PROG_COLD`] on the constant-time table.
pub const PROG_COLD_DIR: &str = "egb_cold_dir";
/// Benchmark only: [`PROG_FILTER_COLD`] on the constant-time table.
pub const PROG_FILTER_COLD_DIR: &str = "egb_filter_cold_dir";
/// Benchmark only: [`COLD_LOOKUPS`] pseudo-random IPv6 addresses (2000::/3) per run, LPM trie.
pub const PROG_COLD_V6: &str = "egb_cold_v6";
/// Benchmark only: [`PROG_COLD_V6`] on the range table.
pub const PROG_COLD_V6_DIR: &str = "egb_cold_v6_dir";
/// Benchmark only: [`PROG_COLD_V6`] without the lookups.
pub const PROG_COLD_V6_BASE: &str = "egb_cold_v6_base";
/// Lookups per run of [`PROG_COLD`] and [`PROG_COLD_V6`].
pub const COLD_LOOKUPS: u32 = 64;

/// Low bits of a [trie value](trie_value) that hold the entry's prefix length.
pub const TRIE_VALUE_LEN_MASK: u64 = 0xff;
/// The deadline of a [trie value](trie_value) for an entry that never expires.
pub const NEVER: u64 = !TRIE_VALUE_LEN_MASK;

/// The value stored with a trie entry: its deadline in `bpf_ktime_get_ns` time
/// (`CLOCK_MONOTONIC` nanoseconds, rounded up to 256 ns), or [`NEVER`], with the low 8 bits
/// holding the entry's prefix length. When the longest match has expired, the program looks
/// again for matches shorter than that length, so an expired entry never hides a shorter one
/// that still holds.
pub const fn trie_value(prefix_len: u8, deadline_ns: Option<u64>) -> u64 {
    let deadline = match deadline_ns {
        None => NEVER,
        Some(ns) => {
            let rounded = ns.saturating_add(TRIE_VALUE_LEN_MASK) & NEVER;
            if rounded >= NEVER {
                NEVER - (TRIE_VALUE_LEN_MASK + 1)
            } else {
                rounded
            }
        }
    };
    deadline | prefix_len as u64
}

/// The deadline part of a [trie value](trie_value) ([`NEVER`] for a permanent entry).
pub const fn trie_value_deadline(value: u64) -> u64 {
    value & NEVER
}

/// The prefix length part of a [trie value](trie_value).
pub const fn trie_value_prefix_len(value: u64) -> u32 {
    (value & TRIE_VALUE_LEN_MASK) as u32
}

/// A 32-bit mixer (lowbias32): turns a counter into well-spread addresses.
pub const fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// The pseudo-random address the cold-lookup programs look up for a packet to `destination`
/// (host order), the `sequence`-th on its CPU. The sequence is mixed before it meets the
/// destination: a sender walking through destinations one per packet advances both in step,
/// and `mix(destination ^ sequence)` then takes only a few hundred values (a warm cache, not a
/// cold one).
pub const fn cold_address(destination: u32, sequence: u32) -> u32 {
    mix(mix(sequence) ^ destination)
}

/// Packets and bytes dropped. Packets that pass are not counted: the interface's own
/// statistics have them, and the common path stays one lookup long.
pub const COUNTER_DROPPED: u32 = 0;
/// The benchmark-only mixing programs: their per-CPU sequence, and where they store a
/// result so that it is not optimised away.
pub const COUNTER_MIX: u32 = 1;
/// Slots in the counters map.
pub const COUNTERS: u32 = 2;

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::BTreeSet;

    use super::{cold_address, mix};

    /// 32,768 destinations walked in step with the sequence, as the send-path sender does.
    #[test]
    fn cold_addresses_stay_spread_when_destination_and_sequence_advance_together() {
        let base = 0xC613_0000u32;
        for start in [0u32, 12_345, 999_999] {
            let walk = |f: &dyn Fn(u32, u32) -> u32| -> usize {
                (0..32_768u32)
                    .map(|i| f(base.wrapping_add(i), start.wrapping_add(i)))
                    .collect::<BTreeSet<_>>()
                    .len()
            };
            assert_eq!(walk(&cold_address), 32_768);
            // What the programs did before: the two counters cancel.
            assert!(walk(&|d, s| mix(d ^ s)) < 1_000);
        }
    }
}
