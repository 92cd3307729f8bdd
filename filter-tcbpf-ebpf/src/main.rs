//! The egress filter program: on the tc egress hook, looks the packet's destination up in
//! an LPM trie per family and drops it on a match. Non-IP packets pass unchecked.
//!
//! Per packet: one `bpf_skb_load_bytes` of the destination (bounded, works on non-linear
//! skbs), one trie lookup, two per-CPU counter updates. No logging.
#![no_std]
#![no_main]
#![allow(
    unsafe_code,
    reason = "eBPF programs read the skb and per-CPU slots through raw pointers"
)]
#![allow(
    missing_docs,
    reason = "#[classifier] generates an undocumented wrapper"
)]

use aya_ebpf::bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC};
use aya_ebpf::macros::{classifier, map};
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::maps::{LpmTrie, PerCpuArray};
use aya_ebpf::programs::TcContext;
use filter_tcbpf_common as common;

/// Sized by the loader to the list (`max_entries`); no entries are preallocated.
#[map(name = "EGB_DENY_V4")]
static DENY_V4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(1, 0);

#[map(name = "EGB_DENY_V6")]
static DENY_V6: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(1, 0);

#[map(name = "EGB_COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(common::COUNTERS, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
/// Offset of the destination address in the IPv4 and IPv6 headers.
const IPV4_DST: usize = 16;
const IPV6_DST: usize = 24;
/// Let the next program (TCX) or filter (clsact) decide; the packet passes if none objects.
const PASS: i32 = TC_ACT_UNSPEC;
const DROP: i32 = TC_ACT_SHOT as i32;

#[inline(always)]
fn count(packets: u32, bytes: u32, len: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(packets) {
        // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *p += 1 };
    }
    if let Some(b) = COUNTERS.get_ptr_mut(bytes) {
        // SAFETY: as above.
        unsafe { *b += u64::from(len) };
    }
}

#[inline(always)]
fn denied(ctx: &TcContext) -> Option<bool> {
    // skb->protocol is the EtherType in network order.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the EtherType is the low 16 bits"
    )]
    let proto = u16::from_be(ctx.skb.protocol() as u16);
    match proto {
        ETH_P_IP => {
            let dst: [u8; 4] = ctx.load(ETH_HLEN + IPV4_DST).ok()?;
            Some(DENY_V4.get(&Key::new(32, dst)).is_some())
        }
        ETH_P_IPV6 => {
            let dst: [u8; 16] = ctx.load(ETH_HLEN + IPV6_DST).ok()?;
            Some(DENY_V6.get(&Key::new(128, dst)).is_some())
        }
        _ => None,
    }
}

/// Drops packets to denied destinations.
#[classifier]
pub fn egb_filter(ctx: TcContext) -> i32 {
    match denied(&ctx) {
        Some(true) => {
            count(
                common::COUNTER_DROPPED_PACKETS,
                common::COUNTER_DROPPED_BYTES,
                ctx.len(),
            );
            DROP
        }
        Some(false) => {
            count(
                common::COUNTER_PASSED_PACKETS,
                common::COUNTER_PASSED_BYTES,
                ctx.len(),
            );
            PASS
        }
        None => PASS,
    }
}

/// Passes every packet: the cost of being attached at all.
#[classifier]
pub fn egb_empty(_ctx: TcContext) -> i32 {
    PASS
}

/// A 32-bit mixer (lowbias32): turns a counter into well-spread addresses.
#[inline(always)]
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

#[inline(always)]
fn seed() -> u32 {
    // SAFETY: a helper without arguments or side effects.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() as u32 }
}

/// Benchmark only, on a real hook: mixes each IPv4 packet's destination with a per-CPU
/// counter into a pseudo-random address and looks that up, as traffic to the whole Internet
/// would (the test range shares one path down the trie and stays in cache). Never drops.
#[classifier]
pub fn egb_filter_cold(ctx: TcContext) -> i32 {
    if let Some(addr) = mixed_destination(&ctx) {
        let _ = DENY_V4.get(&Key::new(32, addr));
    }
    PASS
}

/// Benchmark only: `egb_filter_cold` without the lookup, to subtract the mixing.
#[classifier]
pub fn egb_mix_only(ctx: TcContext) -> i32 {
    // Stored, so that the mixing is not optimised away.
    if let Some(addr) = mixed_destination(&ctx)
        && let Some(sink) = COUNTERS.get_ptr_mut(common::COUNTER_MIX_SINK)
    {
        // SAFETY: a per-CPU slot, written only by this CPU while the program runs.
        unsafe { *sink = u64::from(u32::from_ne_bytes(addr)) };
    }
    PASS
}

#[inline(always)]
fn mixed_destination(ctx: &TcContext) -> Option<[u8; 4]> {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the EtherType is the low 16 bits"
    )]
    let proto = u16::from_be(ctx.skb.protocol() as u16);
    if proto != ETH_P_IP {
        return None;
    }
    let dst: [u8; 4] = ctx.load(ETH_HLEN + IPV4_DST).ok()?;
    let counter = COUNTERS.get_ptr_mut(common::COUNTER_MIX)?;
    // SAFETY: a per-CPU slot, written only by this CPU while the program runs.
    let n = unsafe {
        *counter += 1;
        *counter
    };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "any 32 bits of the counter will do"
    )]
    Some(mix(u32::from_be_bytes(dst) ^ (n as u32)).to_be_bytes())
}

/// Benchmark only: looks up `COLD_LOOKUPS` pseudo-random IPv4 destinations, so the trie's
/// nodes are mostly not in cache (real traffic to the whole Internet). The results are
/// ignored: a branch on each would multiply the verifier's states.
#[classifier]
pub fn egb_cold(_ctx: TcContext) -> i32 {
    let base = seed();
    for i in 0..common::COLD_LOOKUPS {
        let addr = mix(base.wrapping_add(i)).to_be_bytes();
        let _ = DENY_V4.get(&Key::new(32, addr));
    }
    PASS
}

/// Benchmark only: `egb_cold` without the lookups.
#[classifier]
pub fn egb_cold_base(_ctx: TcContext) -> i32 {
    let base = seed();
    let mut acc = 0u32;
    for i in 0..common::COLD_LOOKUPS {
        acc ^= mix(base.wrapping_add(i));
    }
    // Keep the result alive so the mixing is not optimised away.
    if acc == 1 { DROP } else { PASS }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
