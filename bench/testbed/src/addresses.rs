//! The testbed's addresses: all in the benchmarking ranges 198.18.0.0/15 and 2001:2::/48.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The client's address (where filters run).
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The server's address on the veth link.
pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The client's IPv6 address.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
/// The server's IPv6 address on the veth link.
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
/// Addresses routed from the client to the server, which answers for all of them.
pub const PROBE_NET_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 19, 0, 0), 16);
/// IPv6 addresses routed from the client to the server, which answers for all of them.
pub const PROBE_NET_V6: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 2, 0, 0x1000, 0, 0, 0, 0), 52);
/// A probe address no deny-list may cover: traffic to it must pass.
pub const ALLOWED_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// An IPv6 probe address no deny-list may cover.
pub const ALLOWED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x1000, 0, 0, 0, 1);
/// The network the harness adds to a deny-list on purpose, to prove it blocks.
pub const DENIED_NET_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 19, 255, 0), 24);
/// The IPv6 network the harness adds to a deny-list on purpose.
pub const DENIED_NET_V6: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 2, 0, 0x1fff, 0, 0, 0, 0), 64);
/// A probe address inside [`DENIED_NET_V4`].
pub const DENIED_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 1);
/// A probe address inside [`DENIED_NET_V6`].
pub const DENIED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x1fff, 0, 0, 0, 1);

/// The testbed's own addresses and the allowed probes: a deny-list covering any of them
/// would cut the harness off from its hosts.
pub fn protected_addresses() -> Vec<IpAddr> {
    vec![
        CLIENT_V4.into(),
        SERVER_V4.into(),
        ALLOWED_V4.into(),
        CLIENT_V6.into(),
        SERVER_V6.into(),
        ALLOWED_V6.into(),
    ]
}

/// A denied single host: a /32 deny-list entry, so that tables which treat long prefixes
/// apart (the constant-time table's second level) are timed on that path too.
pub const DENIED_HOST_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 1);
/// An allowed address in the same /24 as [`DENIED_HOST_V4`].
pub const NEAR_MISS_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 2);

/// The deliberate deny-list entries whose blocking the probes check.
pub fn denied_probe_nets() -> [IpNet; 3] {
    [
        IpNet::V4(DENIED_NET_V4),
        IpNet::V4(Ipv4Net::new_assert(DENIED_HOST_V4, 32)),
        IpNet::V6(DENIED_NET_V6),
    ]
}

/// The destination a packet program is timed with for each probe case.
pub fn cost_probe_address(probe: filter_core::CostProbe) -> IpAddr {
    use filter_core::CostProbe;
    match probe {
        CostProbe::V4Hit => DENIED_V4.into(),
        CostProbe::V4Miss => ALLOWED_V4.into(),
        CostProbe::V4HostHit => DENIED_HOST_V4.into(),
        CostProbe::V4NearMiss => NEAR_MISS_V4.into(),
        CostProbe::V6Hit => DENIED_V6.into(),
        CostProbe::V6Miss => ALLOWED_V6.into(),
    }
}

/// Every probe case of `families`, with its destination.
pub fn cost_probes(families: &[filter_core::Family]) -> Vec<(filter_core::CostProbe, IpAddr)> {
    filter_core::CostProbe::ALL
        .into_iter()
        .filter(|p| families.contains(&p.family()))
        .map(|p| (p, cost_probe_address(p)))
        .collect()
}
