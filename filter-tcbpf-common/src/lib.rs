//! What the kernel-side program (`filter-tcbpf-ebpf`) and the loader (`filter-tcbpf`) must
//! agree on: map and program names, and the slots of the counters map.
#![no_std]

/// LPM trie of denied IPv4 networks: key `{prefix_len: u32, addr: [u8; 4]}` (network
/// order), value `u8` (unused).
pub const MAP_DENY_V4: &str = "EGB_DENY_V4";
/// LPM trie of denied IPv6 networks: key `{prefix_len: u32, addr: [u8; 16]}`.
pub const MAP_DENY_V6: &str = "EGB_DENY_V6";
/// Per-CPU array of `u64` counters, indexed by the `COUNTER_*` constants.
pub const MAP_COUNTERS: &str = "EGB_COUNTERS";
/// The filter program: drops packets whose destination is in a deny map.
pub const PROG_FILTER: &str = "egb_filter";
/// A program that passes every packet at once: the attach and test-run floor.
pub const PROG_EMPTY: &str = "egb_empty";
/// Benchmark only: looks up [`COLD_LOOKUPS`] pseudo-random IPv4 addresses per run.
pub const PROG_COLD: &str = "egb_cold";
/// Benchmark only: [`PROG_COLD`] without the lookups, to subtract its own cost.
pub const PROG_COLD_BASE: &str = "egb_cold_base";
/// Benchmark only, hooked like the filter: looks up each packet's destination mixed with a
/// counter into a pseudo-random address (cache-cold lookups on the real send path); passes all.
pub const PROG_FILTER_COLD: &str = "egb_filter_cold";
/// Benchmark only: [`PROG_FILTER_COLD`] without the lookup.
pub const PROG_MIX_ONLY: &str = "egb_mix_only";
/// Lookups per run of [`PROG_COLD`].
pub const COLD_LOOKUPS: u32 = 64;

/// Packets dropped.
pub const COUNTER_DROPPED_PACKETS: u32 = 0;
/// Bytes dropped.
pub const COUNTER_DROPPED_BYTES: u32 = 1;
/// IP packets checked and passed.
pub const COUNTER_PASSED_PACKETS: u32 = 2;
/// Bytes of IP packets checked and passed.
pub const COUNTER_PASSED_BYTES: u32 = 3;
/// Packets seen by the benchmark-only mixing programs (their per-CPU sequence).
pub const COUNTER_MIX: u32 = 4;
/// Where the mixing-only program stores its result.
pub const COUNTER_MIX_SINK: u32 = 5;
/// Slots in the counters map.
pub const COUNTERS: u32 = 6;
