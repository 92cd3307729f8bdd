//! The Cilium 1.9 host-firewall data-path model (not Cilium): the work Cilium's `bpf_host`
//! program does for a packet a local process sends, when the host firewall enforces an
//! egress policy, in Cilium's order:
//!
//! 1. the ipcache (an LPM trie) looked up for the source's identity;
//! 2. conntrack looked up for the flow (LRU hash per family and TCP / other);
//! 3. the ipcache looked up for the destination's identity (`WORLD_ID` when absent);
//! 4. the endpoint's policy map looked up four ways, most specific first: {identity, port,
//!    protocol}, {any, port, protocol}, {identity, any, any}, {any, any, any}; the first hit
//!    decides, a deny flag drops, and the entry's counters are updated; no hit drops;
//! 5. for a new flow that passes, a conntrack entry is created.
//!
//! The verdict is recomputed for every packet that leaves, established flows included (Cilium
//! skips policy only for replies). Non-IP packets pass.
#![no_std]
#![no_main]
#![allow(
    unsafe_code,
    reason = "eBPF programs write map values and per-CPU slots through raw pointers"
)]
#![allow(
    missing_docs,
    reason = "#[classifier] generates an undocumented wrapper"
)]

use aya_ebpf::bindings::{BPF_NOEXIST, TC_ACT_SHOT, TC_ACT_UNSPEC};
use aya_ebpf::macros::{classifier, map};
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::maps::{HashMap, LpmTrie, LruHashMap, PerCpuArray};
use aya_ebpf::programs::TcContext;
use cilium_model_common as common;

#[map(name = "cilium_ipcache")]
static IPCACHE: LpmTrie<[u8; common::IPCACHE_KEY_DATA], [u8; common::IPCACHE_VALUE]> =
    LpmTrie::with_max_entries(common::IPCACHE_MAX, 0);

/// Sized by the loader (`--policy-map-max`).
#[map(name = "cilium_policy")]
static POLICY: HashMap<[u8; common::POLICY_KEY], [u8; common::POLICY_VALUE]> =
    HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);

#[map(name = "cilium_ct4_global")]
static CT4_TCP: LruHashMap<[u8; common::CT4_KEY], CtEntry> =
    LruHashMap::with_max_entries(common::CT_TCP_MAX, 0);

#[map(name = "cilium_ct_any4_global")]
static CT4_ANY: LruHashMap<[u8; common::CT4_KEY], CtEntry> =
    LruHashMap::with_max_entries(common::CT_ANY_MAX, 0);

#[map(name = "cilium_ct6_global")]
static CT6_TCP: LruHashMap<[u8; common::CT6_KEY], CtEntry> =
    LruHashMap::with_max_entries(common::CT_TCP_MAX, 0);

#[map(name = "cilium_ct_any6_global")]
static CT6_ANY: LruHashMap<[u8; common::CT6_KEY], CtEntry> =
    LruHashMap::with_max_entries(common::CT_ANY_MAX, 0);

#[map(name = "EGB_CILIUM_COUNTERS")]
static COUNTERS: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(common::COUNTERS, 0);

/// `BPF_F_NO_PREALLOC`.
const BPF_F_NO_PREALLOC: u32 = 1;
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// Seconds a conntrack entry lives without traffic (Cilium's defaults: TCP 6 h, other 60 s).
const CT_LIFETIME_TCP: u32 = 21_600;
const CT_LIFETIME_NONTCP: u32 = 60;
const PASS: i32 = TC_ACT_UNSPEC;
const DROP: i32 = TC_ACT_SHOT as i32;

/// Cilium 1.9's `struct ct_entry` (56 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct CtEntry {
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
    lifetime: u32,
    flags: u16,
    rev_nat_index: u16,
    ifindex: u16,
    tx_flags_seen: u8,
    rx_flags_seen: u8,
    src_sec_id: u32,
    last_tx_report: u32,
    last_rx_report: u32,
}

const _: () = assert!(core::mem::size_of::<CtEntry>() == common::CT_VALUE);

/// What the program reads of a packet.
struct Flow<const N: usize> {
    saddr: [u8; N],
    daddr: [u8; N],
    nexthdr: u8,
    /// Source and destination port, network order (0 without ports).
    ports: [u8; 4],
}

/// Reads a `T` at `offset` of the packet (`bpf_skb_load_bytes`).
#[inline(always)]
fn read<T>(ctx: &TcContext, offset: usize) -> Option<T> {
    ctx.load(offset).ok()
}

#[inline(always)]
fn ports(ctx: &TcContext, nexthdr: u8, l4: usize) -> [u8; 4] {
    if nexthdr == IPPROTO_TCP || nexthdr == IPPROTO_UDP {
        read(ctx, l4).unwrap_or([0; 4])
    } else {
        [0; 4]
    }
}

/// The identity of an address (network order, IPv4 in the first 4 bytes).
#[inline(always)]
fn identity(family: u8, addr: [u8; 16], bits: u32) -> u32 {
    let (len, data) = common::ipcache_key(family, addr, bits);
    match IPCACHE.get(&Key::new(len, data)) {
        Some(value) => common::ipcache_identity(value),
        None => common::WORLD_ID,
    }
}

#[inline(always)]
fn widen<const N: usize>(addr: [u8; N]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < N && i < 16 {
        out[i] = addr[i];
        i += 1;
    }
    out
}

/// The policy map's answer for a destination identity, port and protocol: `true` drops.
/// Cilium's four lookups, most specific first; the first hit decides and counts the packet.
#[inline(always)]
fn policy_denies(dst_id: u32, dport: u16, nexthdr: u8, len: u32) -> bool {
    let keys = [
        common::policy_key(dst_id, dport, nexthdr, common::DIRECTION_EGRESS),
        common::policy_key(0, dport, nexthdr, common::DIRECTION_EGRESS),
        common::policy_key(dst_id, 0, 0, common::DIRECTION_EGRESS),
        common::policy_key(0, 0, 0, common::DIRECTION_EGRESS),
    ];
    for key in &keys {
        if let Some(entry) = POLICY.get_ptr_mut(key) {
            let entry = entry.cast::<u8>();
            // SAFETY: the value is `POLICY_VALUE` bytes, its counters 8-aligned at
            // `POLICY_PACKETS` (hash values are 8-aligned). Cilium adds atomically; the BPF
            // target offers Rust no atomic add, so racing CPUs may lose a count here.
            unsafe {
                if *entry.add(common::POLICY_FLAGS) & common::POLICY_DENY != 0 {
                    return true;
                }
                let packets = entry.add(common::POLICY_PACKETS).cast::<u64>();
                *packets += 1;
                *packets.add(1) += u64::from(len);
            }
            return false;
        }
    }
    true
}

/// Seconds on the monotonic clock, as Cilium's `bpf_mono_now()`.
#[inline(always)]
fn now_seconds() -> u32 {
    // SAFETY: a helper without arguments or side effects.
    let ns = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    (ns / 1_000_000_000) as u32
}

/// Steps 1 to 5 for one flow; `true` drops.
#[inline(always)]
fn egress<const N: usize, const K: usize>(
    flow: &Flow<N>,
    family: u8,
    tcp: &LruHashMap<[u8; K], CtEntry>,
    any: &LruHashMap<[u8; K], CtEntry>,
    len: u32,
) -> bool {
    let bits = (N * 8) as u32;
    let src_id = identity(family, widen(flow.saddr), bits);
    // Cilium's tuple for an egress lookup: daddr, saddr, dport, sport, nexthdr, flags.
    let mut tuple = [0u8; K];
    let mut i = 0;
    while i < N && i < K {
        tuple[i] = flow.daddr[i];
        tuple[N + i] = flow.saddr[i];
        i += 1;
    }
    if 2 * N + 6 <= K {
        tuple[2 * N] = flow.ports[2];
        tuple[2 * N + 1] = flow.ports[3];
        tuple[2 * N + 2] = flow.ports[0];
        tuple[2 * N + 3] = flow.ports[1];
        tuple[2 * N + 4] = flow.nexthdr;
    }
    let (ct, lifetime) = if flow.nexthdr == IPPROTO_TCP {
        (tcp, CT_LIFETIME_TCP)
    } else {
        (any, CT_LIFETIME_NONTCP)
    };
    let entry = ct.get_ptr_mut(&tuple);
    let dst_id = identity(family, widen(flow.daddr), bits);
    let dport = u16::from_ne_bytes([flow.ports[2], flow.ports[3]]);
    if policy_denies(dst_id, dport, flow.nexthdr, len) {
        return true;
    }
    let expires = now_seconds().wrapping_add(lifetime);
    match entry {
        Some(entry) => {
            // SAFETY: an LRU hash value of this map's type; racing CPUs only lose counts,
            // as in Cilium.
            unsafe {
                (*entry).tx_packets += 1;
                (*entry).tx_bytes += u64::from(len);
                (*entry).lifetime = expires;
            }
        }
        None => {
            let created = CtEntry {
                rx_packets: 0,
                rx_bytes: 0,
                tx_packets: 1,
                tx_bytes: u64::from(len),
                lifetime: expires,
                flags: 0,
                rev_nat_index: 0,
                ifindex: 0,
                tx_flags_seen: 0,
                rx_flags_seen: 0,
                src_sec_id: src_id,
                last_tx_report: 0,
                last_rx_report: 0,
            };
            if ct.insert(&tuple, &created, u64::from(BPF_NOEXIST)).is_ok() {
                count(common::COUNTER_NEW_FLOWS, len);
            }
        }
    }
    false
}

/// Adds a packet to a per-CPU counter pair.
#[inline(always)]
fn count(slot: u32, len: u32) {
    if let Some(pair) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            (*pair)[0] += 1;
            (*pair)[1] += u64::from(len);
        }
    }
}

#[inline(always)]
fn denied(ctx: &TcContext) -> Option<bool> {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the EtherType is the low 16 bits"
    )]
    let proto = u16::from_be(ctx.skb.protocol() as u16);
    let len = ctx.len();
    match proto {
        ETH_P_IP => {
            let version_ihl: u8 = read(ctx, ETH_HLEN)?;
            let ihl = usize::from(version_ihl & 0x0f) * 4;
            let nexthdr: u8 = read(ctx, ETH_HLEN + 9)?;
            let flow = Flow::<4> {
                saddr: read(ctx, ETH_HLEN + 12)?,
                daddr: read(ctx, ETH_HLEN + 16)?,
                nexthdr,
                ports: ports(ctx, nexthdr, ETH_HLEN + ihl),
            };
            Some(egress::<4, { common::CT4_KEY }>(
                &flow,
                common::FAMILY_V4,
                &CT4_TCP,
                &CT4_ANY,
                len,
            ))
        }
        ETH_P_IPV6 => {
            let nexthdr: u8 = read(ctx, ETH_HLEN + 6)?;
            let flow = Flow::<16> {
                saddr: read(ctx, ETH_HLEN + 8)?,
                daddr: read(ctx, ETH_HLEN + 24)?,
                nexthdr,
                ports: ports(ctx, nexthdr, ETH_HLEN + 40),
            };
            Some(egress::<16, { common::CT6_KEY }>(
                &flow,
                common::FAMILY_V6,
                &CT6_TCP,
                &CT6_ANY,
                len,
            ))
        }
        _ => None,
    }
}

/// The host firewall's egress work for each packet a local process sends; see the crate docs.
#[classifier]
pub fn egb_cilium_host_egress(ctx: TcContext) -> i32 {
    if denied(&ctx) == Some(true) {
        count(common::COUNTER_DENIED, ctx.len());
        DROP
    } else {
        PASS
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
