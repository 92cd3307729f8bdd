//! The egress filter programs: on the tc egress hook, look the packet's destination up and
//! drop it on a match. Non-IP packets pass unchecked.
//!
//! - `egb_filter`: an LPM trie per family.
//! - `egb_filter_dir`: IPv4 in a constant-time DIR-24-8 table (two array reads at most) or,
//!   for short lists, a range table; IPv6 in a range table.
//!
//! Per packet: the destination read in place from the linear data (`bpf_skb_load_bytes`
//! where it is not there), the lookup, two per-CPU counter updates. No logging.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]
#![allow(
    unsafe_code,
    reason = "eBPF programs read the skb and per-CPU slots through raw pointers"
)]
#![allow(
    missing_docs,
    reason = "#[classifier] generates an undocumented wrapper"
)]

use aya_ebpf::bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC};
use aya_ebpf::macros::{cgroup_skb, cgroup_sock_addr, classifier, map};
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::maps::{Array, LpmTrie, PerCpuArray};
use aya_ebpf::programs::{SkBuffContext, SockAddrContext, TcContext};
use filter_tcbpf_common as common;
use filter_tcbpf_common::mix;

/// Sized by the loader to the list (`max_entries`); no entries are preallocated.
#[map(name = "EGB_DENY_V4")]
/// Values: a deadline and the prefix length (`filter_tcbpf_common::trie_value`).
static DENY_V4: LpmTrie<[u8; 4], u64> = LpmTrie::with_max_entries(1, 0);

#[map(name = "EGB_DENY_V6")]
static DENY_V6: LpmTrie<[u8; 16], u64> = LpmTrie::with_max_entries(1, 0);

/// The constant-time table's first level: one `u32` per /24 (see filter-tcbpf-common).
/// Sized by the loader (left at one entry when the LPM trie is used).
#[map(name = "EGB_DIR_V4_SLOTS")]
static DIR_SLOTS: Array<[u32; 4]> = Array::with_max_entries(1, common::BPF_F_MMAPABLE);

/// The second level: 256-bit chunks for the /24s that hold longer prefixes.
#[map(name = "EGB_DIR_V4_CHUNKS")]
static DIR_CHUNKS: Array<[u8; common::DIR_CHUNK_BYTES]> =
    Array::with_max_entries(1, common::BPF_F_MMAPABLE);

/// The IPv6 range table's cells (see filter-tcbpf-common): left at one entry when the LPM
/// trie is used.
#[map(name = "EGB_V6_CELLS")]
static V6_CELLS: Array<u64> = Array::with_max_entries(1, common::BPF_F_MMAPABLE);

/// The range table's flip points, high 64 bits, a line per leaf.
#[map(name = "EGB_V6_HIGH")]
static V6_HIGH: Array<[u64; 8]> = Array::with_max_entries(1, common::BPF_F_MMAPABLE);

/// The range table's flip points, low 64 bits, a line per leaf.
#[map(name = "EGB_V6_LOW")]
static V6_LOW: Array<[u64; 8]> = Array::with_max_entries(1, common::BPF_F_MMAPABLE);

/// How many top bits index the first cells, set by the loader (read-only data).
#[unsafe(no_mangle)]
static EGB_V6_TOP_BITS: u32 = common::RANGE_TOP_BITS_MIN;

/// The IPv4 range table's cells, for short IPv4 lists (the DIR-24-8 table takes 64 MiB).
#[map(name = "EGB_V4R_CELLS")]
static V4_CELLS: Array<u64> = Array::with_max_entries(1, common::BPF_F_MMAPABLE);

/// The IPv4 range table's flip points (addresses in the top 32 bits), a line per leaf.
#[map(name = "EGB_V4R_POINTS")]
static V4_POINTS: Array<[u64; 8]> = Array::with_max_entries(1, common::BPF_F_MMAPABLE);

/// The IPv4 range table's top bits, set by the loader; 0: IPv4 is in DIR-24-8.
#[unsafe(no_mangle)]
static EGB_V4_TOP_BITS: u32 = 0;

#[map(name = "EGB_COUNTERS")]
static COUNTERS: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(common::COUNTERS, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
/// Offset of the destination address in the IPv4 and IPv6 headers.
const IPV4_DST: usize = 16;
const IPV6_DST: usize = 24;
/// Let the next program (TCX) or filter (clsact) decide; the packet passes if none objects.
const PASS: i32 = TC_ACT_UNSPEC;
const DROP: i32 = TC_ACT_SHOT as i32;

/// Counts a dropped packet: one per-CPU slot holds packets and bytes.
#[inline(always)]
fn count_drop(len: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(common::COUNTER_DROPPED) {
        // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            (*slot)[0] += 1;
            (*slot)[1] += u64::from(len);
        }
    }
}

/// What the filter reads of a packet, on a tc hook (from the Ethernet header) and on a
/// cgroup hook (from the IP header).
trait Packet {
    /// Where the IP header starts.
    const L3: usize;
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    fn load<T>(&self, offset: usize) -> Option<T>;
    /// `skb->protocol`: the EtherType, in network order.
    fn protocol(&self) -> u32;
}

impl Packet for TcContext {
    const L3: usize = ETH_HLEN;
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    fn load<T>(&self, offset: usize) -> Option<T> {
        TcContext::load(self, offset).ok()
    }
    fn protocol(&self) -> u32 {
        self.skb.protocol()
    }
}

impl Packet for SkBuffContext {
    const L3: usize = 0;
    fn data(&self) -> usize {
        SkBuffContext::data(self)
    }
    fn data_end(&self) -> usize {
        SkBuffContext::data_end(self)
    }
    fn load<T>(&self, offset: usize) -> Option<T> {
        SkBuffContext::load(self, offset).ok()
    }
    fn protocol(&self) -> u32 {
        self.skb.protocol()
    }
}

/// Reads a `T` at `offset` of the packet: straight from the linear data when it is there
/// (the usual case on egress), else through `bpf_skb_load_bytes`.
#[inline(always)]
fn read<T: Copy>(ctx: &impl Packet, offset: usize) -> Option<T> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + offset + core::mem::size_of::<T>() <= end {
        // SAFETY: the bounds were checked against data_end just above (and again by the
        // verifier); packets are byte arrays, so read unaligned.
        return Some(unsafe { ((start + offset) as *const T).read_unaligned() });
    }
    ctx.load(offset)
}

/// Whether the LPM trie denies an IPv6 address.
#[inline(always)]
fn trie_denies_v6(dst: [u8; 16]) -> bool {
    lpm_denies::<16, 129>(&DENY_V6, dst)
}

/// Whether the LPM trie denies an IPv4 address (network order).
#[inline(always)]
fn trie_denies(dst: [u8; 4]) -> bool {
    lpm_denies::<4, 33>(&DENY_V4, dst)
}

/// Whether `trie` holds a live prefix of `dst`. The longest match decides unless it has
/// expired; then the longest match shorter than it does, and so on (at most one lookup per
/// prefix length, `LENGTHS` of them). Permanent entries need no clock.
#[inline(always)]
fn lpm_denies<const N: usize, const LENGTHS: u32>(
    trie: &LpmTrie<[u8; N], u64>,
    dst: [u8; N],
) -> bool {
    let mut limit = LENGTHS - 1;
    let mut now = 0;
    for _ in 0..LENGTHS {
        let Some(&value) = trie.get(&Key::new(limit, dst)) else {
            return false;
        };
        let deadline = common::trie_value_deadline(value);
        if deadline == common::NEVER {
            return true;
        }
        if now == 0 {
            // SAFETY: a helper without arguments or side effects.
            now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
        }
        if deadline > now {
            return true;
        }
        let matched = common::trie_value_prefix_len(value);
        if matched == 0 || matched > limit {
            return false;
        }
        limit = matched - 1;
    }
    false
}

/// Whether the constant-time tables deny an IPv4 address (network order): in the range
/// table for short lists, else one read of the address's /24 slot and, if that /24 holds
/// longer prefixes, one of its chunk.
#[inline(always)]
fn dir_denies(dst: [u8; 4]) -> bool {
    let addr = u32::from_be_bytes(dst);
    // SAFETY: as in `range_denies`.
    let top = unsafe { core::ptr::read_volatile(&raw const EGB_V4_TOP_BITS) };
    if top != 0 {
        return range_lookup(&V4_CELLS, &V4_POINTS, None, top, u64::from(addr) << 32, 0);
    }
    let slot = addr >> 8;
    let Some(group) = DIR_SLOTS.get(slot >> 2) else {
        return false;
    };
    let value = group[(slot & 3) as usize];
    if value < common::DIR_FIRST_CHUNK {
        return value == common::DIR_DENY;
    }
    let Some(chunk) = DIR_CHUNKS.get(value - common::DIR_FIRST_CHUNK) else {
        return false;
    };
    let bit = addr & 0xff;
    (chunk[(bit >> 3) as usize] >> (bit & 7)) & 1 != 0
}

/// Whether the range table denies an IPv6 address: the first cell by the top bits, down
/// subdirectories by 8 bits at a time, then a scan of the leaf's line of flip points (at
/// most [`RANGE_MAX_DEPTH`](common::RANGE_MAX_DEPTH) + 1 cell reads and one line read,
/// whatever the list).
#[inline(always)]
fn dir_denies_v6(dst: [u8; 16]) -> bool {
    let mut high = [0u8; 8];
    let mut low = [0u8; 8];
    high.copy_from_slice(&dst[..8]);
    low.copy_from_slice(&dst[8..]);
    range_denies(u64::from_be_bytes(high), u64::from_be_bytes(low))
}

/// [`dir_denies_v6`] of the address's high and low 64 bits.
#[inline(always)]
fn range_denies(high: u64, low: u64) -> bool {
    // SAFETY: a plain read of a read-only global; volatile so that its load-time value,
    // not the default, is used.
    let top = unsafe { core::ptr::read_volatile(&raw const EGB_V6_TOP_BITS) };
    range_lookup(&V6_CELLS, &V6_HIGH, Some(&V6_LOW), top, high, low)
}

/// Whether a range table (its cells, its points' high halves and, for IPv6, low halves)
/// denies an address given as high and low 64 bits (IPv4: the address in the top 32 bits).
#[inline(always)]
fn range_lookup(
    cells: &Array<u64>,
    highs: &Array<[u64; 8]>,
    lows: Option<&Array<[u64; 8]>>,
    top: u32,
    high: u64,
    low: u64,
) -> bool {
    if !(common::RANGE_TOP_BITS_MIN..=common::RANGE_TOP_BITS_MAX).contains(&top) {
        return false;
    }
    let cell_at = |index: u32| cells.get(index).copied();
    let Some(mut entry) = cell_at((high >> (64 - top)) as u32) else {
        return false;
    };
    // The bits after the ones used so far, as a 128-bit value shifted left: each level
    // takes the top byte (cheaper than cutting byte `used` out of the address each time).
    let mut rest_high = (high << top) | (low >> (64 - top));
    let mut rest_low = low << top;
    let mut cell = entry as u32;
    let mut used = top;
    for _ in 0..common::RANGE_MAX_DEPTH {
        if cell & common::RANGE_SUBDIR == 0 {
            break;
        }
        let index = (1u32 << top)
            + (cell & !common::RANGE_SUBDIR) * common::RANGE_FANOUT
            + (rest_high >> 56) as u32;
        let Some(next) = cell_at(index) else {
            return false;
        };
        entry = next;
        cell = entry as u32;
        used += 8;
        rest_high = (rest_high << 8) | (rest_low >> 56);
        rest_low <<= 8;
    }
    if cell & common::RANGE_SUBDIR != 0 {
        return false;
    }
    let line = cell >> common::RANGE_OFFSET_SHIFT;
    let count = (cell >> common::RANGE_COUNT_SHIFT) & common::RANGE_COUNT_MASK;
    if count == 0 {
        return cell & 1 != 0;
    }
    // Outside the window on the leaf's flip points: below the first or above the last.
    if used <= 128 - common::RANGE_WINDOW_BITS {
        let window = (rest_high >> 48) as u32;
        if window < (entry >> 48) as u32 {
            return cell & 1 != 0;
        }
        let last = (entry >> 32) as u32 & 0xffff;
        if window > last {
            return (cell ^ count) & 1 != 0;
        }
        // Inline: the points are exactly the window's first and last values.
        if line == common::RANGE_INLINE {
            let below = if window == last { count } else { 1 };
            return (cell ^ below) & 1 != 0;
        }
    }
    // The flip points at or below the address: a scan of the leaf's one line (sorted, so
    // it stops at the first one above).
    let Some(points) = highs.get(line) else {
        return false;
    };
    let mut below = 0;
    for (i, &point) in points.iter().enumerate() {
        if i as u32 >= count {
            break;
        }
        // The low half is read only when the high halves tie (rare but for /65../128
        // edges in the address's own /64).
        let at_or_below = point < high
            || (point == high
                && match lows.map(|lows| lows.get(line)) {
                    Some(Some(lows)) => lows[i] <= low,
                    Some(None) => return false,
                    // No low halves (IPv4): they are all zero.
                    None => true,
                });
        if !at_or_below {
            break;
        }
        below += 1;
    }
    ((cell ^ below) & 1) != 0
}

/// The 16 bytes at `offset` of the packet as two words: [`read`] for an IPv6 address, read
/// in place with two 8-byte loads when they are in the linear data.
///
/// Rust's unaligned read compiles to sixteen byte loads on this target, which declares no
/// unaligned access; the kernel allows 8-byte packet loads at any offset where the CPU
/// does them (and, where it does not, at offsets 8-aligned in its model of the packet,
/// which puts the IP header 2 bytes past a 4-aligned start: the IPv6 destination is one).
#[inline(always)]
fn read_words(ctx: &impl Packet, offset: usize) -> Option<[u64; 2]> {
    let (start, end) = (ctx.data(), ctx.data_end());
    let at = start + offset;
    if at + 16 > end {
        return ctx.load(offset);
    }
    let (first, second): (u64, u64);
    // SAFETY: `at..at + 16` was checked against data_end just above (and again by the
    // verifier); the loads only read.
    unsafe {
        core::arch::asm!(
            "{first} = *(u64 *)({at} + 0)",
            "{second} = *(u64 *)({at} + 8)",
            at = in(reg) at,
            first = lateout(reg) first,
            second = lateout(reg) second,
            options(readonly, nostack, preserves_flags),
        );
    }
    Some([first, second])
}

/// How a program looks destinations up: in the LPM tries, or in the constant-time tables.
trait Lookup {
    fn v4(dst: [u8; 4]) -> bool;
    /// Reads the IPv6 destination at `offset` of the packet and looks it up.
    fn v6<P: Packet>(ctx: &P, offset: usize) -> Option<bool>;
}

/// The LPM tries.
struct Tries;

impl Lookup for Tries {
    #[inline(always)]
    fn v4(dst: [u8; 4]) -> bool {
        trie_denies(dst)
    }
    #[inline(always)]
    fn v6<P: Packet>(ctx: &P, offset: usize) -> Option<bool> {
        Some(trie_denies_v6(read(ctx, offset)?))
    }
}

/// The constant-time tables: DIR-24-8 or a range table for IPv4, a range table for IPv6.
struct Tables;

impl Lookup for Tables {
    #[inline(always)]
    fn v4(dst: [u8; 4]) -> bool {
        dir_denies(dst)
    }
    #[inline(always)]
    fn v6<P: Packet>(ctx: &P, offset: usize) -> Option<bool> {
        let words = read_words(ctx, offset)?;
        Some(range_denies(u64::from_be(words[0]), u64::from_be(words[1])))
    }
}

#[inline(always)]
fn denied<P: Packet, L: Lookup>(ctx: &P) -> Option<bool> {
    // skb->protocol is the EtherType in network order.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the EtherType is the low 16 bits"
    )]
    let proto = u16::from_be(ctx.protocol() as u16);
    match proto {
        ETH_P_IP => {
            let dst: [u8; 4] = read(ctx, P::L3 + IPV4_DST)?;
            Some(L::v4(dst))
        }
        ETH_P_IPV6 => L::v6(ctx, P::L3 + IPV6_DST),
        _ => None,
    }
}

/// Drops packets to denied destinations (LPM tries).
#[classifier]
pub fn egb_filter(ctx: TcContext) -> i32 {
    verdict(&ctx, denied::<_, Tries>(&ctx))
}

/// Drops packets to denied destinations (constant-time tables).
#[classifier]
pub fn egb_filter_dir(ctx: TcContext) -> i32 {
    verdict(&ctx, denied::<_, Tables>(&ctx))
}

#[inline(always)]
fn verdict(ctx: &TcContext, denied: Option<bool>) -> i32 {
    if denied == Some(true) {
        count_drop(ctx.len());
        DROP
    } else {
        PASS
    }
}

/// A cgroup program's answer: 1 lets the packet go, 0 drops it (the sender's `send` gets
/// `EPERM`).
#[inline(always)]
fn cgroup_verdict(ctx: &SkBuffContext, denied: Option<bool>) -> i32 {
    if denied == Some(true) {
        count_drop(ctx.len());
        0
    } else {
        1
    }
}

/// `egb_filter` on a cgroup's egress: the packets of the cgroup's sockets (LPM tries).
#[cgroup_skb(egress)]
pub fn egb_cg_filter(ctx: SkBuffContext) -> i32 {
    cgroup_verdict(&ctx, denied::<_, Tries>(&ctx))
}

/// `egb_filter_dir` on a cgroup's egress (constant-time tables).
#[cgroup_skb(egress)]
pub fn egb_cg_filter_dir(ctx: SkBuffContext) -> i32 {
    cgroup_verdict(&ctx, denied::<_, Tables>(&ctx))
}

/// Lets every packet of the cgroup go: the cost of being attached there at all.
#[cgroup_skb(egress)]
pub fn egb_cg_empty(_ctx: SkBuffContext) -> i32 {
    1
}

/// A socket-address program's answer: 1 lets the `connect()` or `sendmsg()` go on, 0
/// refuses it with `EPERM`; the destination is the address the program was given.
#[inline(always)]
fn address_verdict(denied: bool) -> i32 {
    if denied {
        count_drop(0);
        0
    } else {
        1
    }
}

/// The IPv4 destination of a `connect()` or `sendmsg()` (network order).
#[inline(always)]
fn user_ip4(ctx: &SockAddrContext) -> [u8; 4] {
    // SAFETY: the kernel hands every cgroup/sock_addr program a valid bpf_sock_addr.
    unsafe { (*ctx.sock_addr).user_ip4 }.to_ne_bytes()
}

/// The IPv6 destination of a `connect()` or `sendmsg()`.
#[inline(always)]
fn user_ip6(ctx: &SockAddrContext) -> [u8; 16] {
    // SAFETY: as in `user_ip4`; the verifier allows 4-byte reads of user_ip6.
    let words = unsafe { (*ctx.sock_addr).user_ip6 };
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let b = words[i].to_ne_bytes();
        out[i * 4] = b[0];
        out[i * 4 + 1] = b[1];
        out[i * 4 + 2] = b[2];
        out[i * 4 + 3] = b[3];
        i += 1;
    }
    out
}

/// `connect()` of an IPv4 socket of the cgroup to a denied address is refused (LPM tries).
#[cgroup_sock_addr(connect4)]
pub fn egb_cn_filter_c4(ctx: SockAddrContext) -> i32 {
    address_verdict(trie_denies(user_ip4(&ctx)))
}

/// `connect()` of an IPv6 socket to a denied address is refused (LPM tries).
#[cgroup_sock_addr(connect6)]
pub fn egb_cn_filter_c6(ctx: SockAddrContext) -> i32 {
    address_verdict(trie_denies_v6(user_ip6(&ctx)))
}

/// `sendmsg()` of an unconnected IPv4 UDP socket to a denied address is refused.
#[cgroup_sock_addr(sendmsg4)]
pub fn egb_cn_filter_s4(ctx: SockAddrContext) -> i32 {
    address_verdict(trie_denies(user_ip4(&ctx)))
}

/// `sendmsg()` of an unconnected IPv6 UDP socket to a denied address is refused.
#[cgroup_sock_addr(sendmsg6)]
pub fn egb_cn_filter_s6(ctx: SockAddrContext) -> i32 {
    address_verdict(trie_denies_v6(user_ip6(&ctx)))
}

/// `egb_cn_filter_c4` on the constant-time table.
#[cgroup_sock_addr(connect4)]
pub fn egb_cn_filter_dir_c4(ctx: SockAddrContext) -> i32 {
    address_verdict(dir_denies(user_ip4(&ctx)))
}

/// `egb_cn_filter_c6` on the constant-time table's IPv6 side.
#[cgroup_sock_addr(connect6)]
pub fn egb_cn_filter_dir_c6(ctx: SockAddrContext) -> i32 {
    address_verdict(dir_denies_v6(user_ip6(&ctx)))
}

/// `egb_cn_filter_s4` on the constant-time table.
#[cgroup_sock_addr(sendmsg4)]
pub fn egb_cn_filter_dir_s4(ctx: SockAddrContext) -> i32 {
    address_verdict(dir_denies(user_ip4(&ctx)))
}

/// `egb_cn_filter_s6` on the constant-time table's IPv6 side.
#[cgroup_sock_addr(sendmsg6)]
pub fn egb_cn_filter_dir_s6(ctx: SockAddrContext) -> i32 {
    address_verdict(dir_denies_v6(user_ip6(&ctx)))
}

/// Lets every `connect()` go on: the connect hook's floor.
#[cgroup_sock_addr(connect4)]
pub fn egb_cn_empty_c4(_ctx: SockAddrContext) -> i32 {
    1
}

/// Lets every IPv6 `connect()` go on.
#[cgroup_sock_addr(connect6)]
pub fn egb_cn_empty_c6(_ctx: SockAddrContext) -> i32 {
    1
}

/// Lets every unconnected IPv4 `sendmsg()` go on.
#[cgroup_sock_addr(sendmsg4)]
pub fn egb_cn_empty_s4(_ctx: SockAddrContext) -> i32 {
    1
}

/// Lets every unconnected IPv6 `sendmsg()` go on.
#[cgroup_sock_addr(sendmsg6)]
pub fn egb_cn_empty_s6(_ctx: SockAddrContext) -> i32 {
    1
}

/// Passes every packet: the cost of being attached at all.
#[classifier]
pub fn egb_empty(_ctx: TcContext) -> i32 {
    PASS
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
        let _ = trie_denies(addr);
    }
    PASS
}

/// Benchmark only: `egb_filter_cold` on the constant-time table. Its answer is stored, so
/// that the array reads are not optimised away.
#[classifier]
pub fn egb_filter_cold_dir(ctx: TcContext) -> i32 {
    if let Some(addr) = mixed_destination(&ctx) {
        sink(u64::from(dir_denies(addr)));
    }
    PASS
}

#[inline(always)]
fn sink(value: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(common::COUNTER_MIX) {
        // SAFETY: a per-CPU slot, written only by this CPU while the program runs.
        unsafe { (*slot)[1] = value };
    }
}

/// Benchmark only: `egb_filter_cold` without the lookup, to subtract the mixing.
#[classifier]
pub fn egb_mix_only(ctx: TcContext) -> i32 {
    // Stored, so that the mixing is not optimised away.
    if let Some(addr) = mixed_destination(&ctx) {
        sink(u64::from(u32::from_ne_bytes(addr)));
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
    let dst: [u8; 4] = read(ctx, ETH_HLEN + IPV4_DST)?;
    let counter = COUNTERS.get_ptr_mut(common::COUNTER_MIX)?;
    // SAFETY: a per-CPU slot, written only by this CPU while the program runs.
    let n = unsafe {
        (*counter)[0] += 1;
        (*counter)[0]
    };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "any 32 bits of the counter will do"
    )]
    Some(common::cold_address(u32::from_be_bytes(dst), n as u32).to_be_bytes())
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

/// Benchmark only: `egb_cold` on the constant-time table (the answers are summed and
/// stored, so that the reads are not optimised away).
#[classifier]
pub fn egb_cold_dir(_ctx: TcContext) -> i32 {
    cold_run(|x| dir_denies(mix(x).to_be_bytes()))
}

/// [`COLD_LOOKUPS`](common::COLD_LOOKUPS) answers of `lookup` for counters from a
/// time-based seed, summed and stored so that no lookup is optimised away.
#[inline(always)]
fn cold_run(lookup: impl Fn(u32) -> bool) -> i32 {
    let base = seed();
    let mut hits = 0u64;
    for i in 0..common::COLD_LOOKUPS {
        hits += u64::from(lookup(base.wrapping_add(i)));
    }
    sink(hits);
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

/// A pseudo-random global unicast IPv6 address (in 2000::/3) from a counter.
#[inline(always)]
fn mixed_v6(x: u32) -> [u8; 16] {
    let words = [
        (mix(x) & 0x1fff_ffff) | 0x2000_0000,
        mix(x ^ 0x9e37_79b9),
        mix(x ^ 0x7f4a_7c15),
        mix(x ^ 0x94d0_49bb),
    ];
    let mut addr = [0u8; 16];
    for (i, word) in words.iter().enumerate() {
        addr[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    addr
}

/// The longest IPv6 match only, without looking past an expired one: what the cold-lookup
/// benchmark times (64 lookups of the full walk in one program are too many paths for the
/// verifier), and what a list without timeouts costs.
#[inline(always)]
fn longest_match_v6(dst: [u8; 16]) -> bool {
    DENY_V6.get(&Key::new(128, dst)).is_some()
}

/// Benchmark only: `egb_cold` for IPv6, in the LPM trie.
#[classifier]
pub fn egb_cold_v6(_ctx: TcContext) -> i32 {
    cold_run(|x| longest_match_v6(mixed_v6(x)))
}

/// Benchmark only: `egb_cold_v6` on the range table.
#[classifier]
pub fn egb_cold_v6_dir(_ctx: TcContext) -> i32 {
    cold_run(|x| dir_denies_v6(mixed_v6(x)))
}

/// Benchmark only: `egb_cold_v6` without the lookups (a byte compare stands in for them).
#[classifier]
pub fn egb_cold_v6_base(_ctx: TcContext) -> i32 {
    cold_run(|x| {
        let addr = mixed_v6(x);
        addr[15] == addr[7]
    })
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
