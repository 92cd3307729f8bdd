//! What the Cilium 1.9 host-firewall data-path model's program (`cilium-model-ebpf`) and its
//! loader (`filter-cilium-model`) agree on: map and program names, Cilium's key and value
//! layouts (as Cilium 1.9's `bpf/lib/maps.h`, `eps.h`, `policy.h` and `conntrack.h` define
//! them, rewritten here from their documented sizes and fields), sizes and identities.
//!
//! Keys and values are byte arrays in both programs (aya's `Pod` holds for them), built and
//! read by the functions here, so both sides share one definition of every offset.
//!
//! This is a model of Cilium's data path, not Cilium: no agent, no Kubernetes.

#![no_std]

/// The ipcache: `BPF_MAP_TYPE_LPM_TRIE`, `BPF_F_NO_PREALLOC`, [`IPCACHE_MAX`] entries.
/// Key: `u32` prefix length then [`IPCACHE_KEY_DATA`] bytes ([`ipcache_key`]); value:
/// [`IPCACHE_VALUE`] bytes (`sec_label`, `tunnel_endpoint`, `key`).
pub const MAP_IPCACHE: &str = "cilium_ipcache";
/// The host endpoint's policy map: `BPF_MAP_TYPE_HASH`, `BPF_F_NO_PREALLOC`, sized by the
/// loader (`--policy-map-max`). Key [`POLICY_KEY`] bytes ([`policy_key`]), value
/// [`POLICY_VALUE`] bytes ([`policy_entry`]).
pub const MAP_POLICY: &str = "cilium_policy";
/// Conntrack of TCP flows, IPv4: `BPF_MAP_TYPE_LRU_HASH`, [`CT_TCP_MAX`] entries.
pub const MAP_CT4_TCP: &str = "cilium_ct4_global";
/// Conntrack of other flows (UDP, ICMP), IPv4: LRU hash, [`CT_ANY_MAX`] entries.
pub const MAP_CT4_ANY: &str = "cilium_ct_any4_global";
/// Conntrack of TCP flows, IPv6.
pub const MAP_CT6_TCP: &str = "cilium_ct6_global";
/// Conntrack of other flows, IPv6.
pub const MAP_CT6_ANY: &str = "cilium_ct_any6_global";
/// Per-CPU array of `[u64; 2]` (packets, bytes) at [`COUNTER_DENIED`] and
/// [`COUNTER_NEW_FLOWS`].
pub const MAP_COUNTERS: &str = "EGB_CILIUM_COUNTERS";
/// Every map, for memory accounting.
pub const MAPS: [&str; 7] = [
    MAP_IPCACHE,
    MAP_POLICY,
    MAP_CT4_TCP,
    MAP_CT4_ANY,
    MAP_CT6_TCP,
    MAP_CT6_ANY,
    MAP_COUNTERS,
];
/// The tc egress program (`bpf_host.c`'s to-netdev with the host firewall, reduced to the
/// egress policy work).
pub const PROG_HOST_EGRESS: &str = "egb_cilium_host_egress";

/// Counter slot: packets dropped by a deny entry.
pub const COUNTER_DENIED: u32 = 0;
/// Counter slot: conntrack entries created (new flows).
pub const COUNTER_NEW_FLOWS: u32 = 1;
/// Slots of [`MAP_COUNTERS`].
pub const COUNTERS: u32 = 2;

/// The ipcache's size: 512,000 in Cilium 1.9 and still fixed today.
pub const IPCACHE_MAX: u32 = 512_000;
/// `bpf-policy-map-max`'s default.
pub const POLICY_MAP_DEFAULT: u32 = 16_384;
/// The smallest `bpf-policy-map-max` Cilium accepts.
pub const POLICY_MAP_MIN: u32 = 256;
/// The largest `bpf-policy-map-max` Cilium accepts.
pub const POLICY_MAP_MAX: u32 = 65_536;
/// `bpf-ct-global-tcp-max`'s default.
pub const CT_TCP_MAX: u32 = 524_288;
/// `bpf-ct-global-any-max`'s default.
pub const CT_ANY_MAX: u32 = 262_144;

/// Reserved identity of addresses the ipcache does not know.
pub const WORLD_ID: u32 = 2;
/// Node-local CIDR identities carry this flag (`1 << 24`).
pub const LOCAL_IDENTITY_FLAG: u32 = 1 << 24;

/// Bytes of an ipcache key after its prefix length: `pad1: u16, pad2: u8, family: u8,
/// ip: [u8; 16]`.
pub const IPCACHE_KEY_DATA: usize = 20;
/// The prefix bits of the key before the address (`pad1`, `pad2`, `family`).
pub const IPCACHE_KEY_PREFIX_BITS: u32 = 32;
/// `family` of an IPv4 key (`ENDPOINT_KEY_IPV4`).
pub const FAMILY_V4: u8 = 1;
/// `family` of an IPv6 key (`ENDPOINT_KEY_IPV6`).
pub const FAMILY_V6: u8 = 2;
/// Bytes of an ipcache value: `sec_label: u32, tunnel_endpoint: u32, key: u8`, padded.
pub const IPCACHE_VALUE: usize = 12;

/// Bytes of a policy key: `sec_label: u32, dport: u16 (network order), protocol: u8,
/// egress: u8`.
pub const POLICY_KEY: usize = 8;
/// Bytes of a policy entry: `proxy_port: u16, flags: u8 (bit 0: deny), pad: u8, pad: u16,
/// pad: u16, packets: u64, bytes: u64`.
pub const POLICY_VALUE: usize = 24;
/// Offset of the deny flag byte in a policy entry.
pub const POLICY_FLAGS: usize = 2;
/// The deny bit of [`POLICY_FLAGS`].
pub const POLICY_DENY: u8 = 1;
/// Offset of the packet counter in a policy entry (the byte counter follows it).
pub const POLICY_PACKETS: usize = 8;
/// `egress` of a policy key for traffic leaving the endpoint.
pub const DIRECTION_EGRESS: u8 = 1;

/// Bytes of an IPv4 conntrack key: `daddr, saddr: [u8; 4], dport, sport: u16, nexthdr: u8,
/// flags: u8` (packed).
pub const CT4_KEY: usize = 14;
/// Bytes of an IPv6 conntrack key: `daddr, saddr: [u8; 16], dport, sport, nexthdr, flags`.
pub const CT6_KEY: usize = 38;
/// Bytes of a conntrack entry (`struct ct_entry`: four `u64` counters, lifetime, flags,
/// rev_nat_index, ifindex, seen flags, src_sec_id, two report times).
pub const CT_VALUE: usize = 56;

/// The ipcache key of `addr` (network order, IPv4 in the first 4 bytes) cut to `prefix_len`
/// bits: the trie key's prefix length and its data.
pub const fn ipcache_key(
    family: u8,
    addr: [u8; 16],
    prefix_len: u32,
) -> (u32, [u8; IPCACHE_KEY_DATA]) {
    let mut data = [0u8; IPCACHE_KEY_DATA];
    data[3] = family;
    let mut i = 0;
    while i < 16 {
        data[4 + i] = addr[i];
        i += 1;
    }
    (IPCACHE_KEY_PREFIX_BITS + prefix_len, data)
}

/// An ipcache value for identity `sec_label` (no tunnel).
pub const fn ipcache_value(sec_label: u32) -> [u8; IPCACHE_VALUE] {
    let mut value = [0u8; IPCACHE_VALUE];
    let id = sec_label.to_ne_bytes();
    value[0] = id[0];
    value[1] = id[1];
    value[2] = id[2];
    value[3] = id[3];
    value
}

/// The identity of an ipcache value.
pub const fn ipcache_identity(value: &[u8; IPCACHE_VALUE]) -> u32 {
    u32::from_ne_bytes([value[0], value[1], value[2], value[3]])
}

/// A policy key: `sec_label` (0: any identity), destination port in network order (0: any),
/// IP protocol (0: any), direction.
pub const fn policy_key(
    sec_label: u32,
    dport_be: u16,
    protocol: u8,
    egress: u8,
) -> [u8; POLICY_KEY] {
    let id = sec_label.to_ne_bytes();
    let port = dport_be.to_ne_bytes();
    [
        id[0], id[1], id[2], id[3], port[0], port[1], protocol, egress,
    ]
}

/// A policy entry that denies (`deny`) or allows, with zeroed counters.
pub const fn policy_entry(deny: bool) -> [u8; POLICY_VALUE] {
    let mut value = [0u8; POLICY_VALUE];
    if deny {
        value[POLICY_FLAGS] = POLICY_DENY;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_ciliums_sizes_and_field_places() {
        let (len, data) = ipcache_key(
            FAMILY_V4,
            [198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            32,
        );
        assert_eq!(len, 64);
        assert_eq!(data[3], FAMILY_V4);
        assert_eq!(&data[4..8], &[198, 18, 0, 1]);
        assert_eq!(4 + data.len(), 24, "Cilium's ipcache key is 24 bytes");
        let key = policy_key(LOCAL_IDENTITY_FLAG | 7, 80u16.to_be(), 6, DIRECTION_EGRESS);
        assert_eq!(key.len(), 8);
        assert_eq!(
            u32::from_ne_bytes([key[0], key[1], key[2], key[3]]),
            LOCAL_IDENTITY_FLAG | 7
        );
        assert_eq!(policy_entry(true)[POLICY_FLAGS] & POLICY_DENY, POLICY_DENY);
        assert_eq!(policy_entry(false)[POLICY_FLAGS] & POLICY_DENY, 0);
        assert_eq!(ipcache_identity(&ipcache_value(1234)), 1234);
    }
}
