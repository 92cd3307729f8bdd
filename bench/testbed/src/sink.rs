//! A pair of namespaces for timing the send path: in each, a veth whose peer is down is the
//! sink. A packet sent there runs the whole egress path (netfilter OUTPUT, routing, tc egress)
//! in the sender's own system call, and is then discarded: no receiver, no softirq on
//! another core, nothing but the sender's CPU time to measure.
//!
//! Destinations in 198.19.0.0/16 and 2001:2:0:1000::/52 are routed through one gateway whose
//! neighbour entry is permanent, so neither ARP nor the neighbour table grows with the number
//! of destinations.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

use filter_core::{NetNs, Result, Tag, run_command};

use crate::bed::{Namespaces, ip_batch};
use crate::{PROBE_NET_V4, PROBE_NET_V6};

/// The sink's own address in each namespace.
pub const SINK_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The gateway every probe destination is routed through (never answers).
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 254);
/// The sink's own IPv6 address.
pub const SINK_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 1);
/// The IPv6 gateway.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0xfe);
const GATEWAY_MAC: &str = "02:00:00:00:00:fe";

/// Two sink namespaces: `filtered` (`egb-<id>-a`) gets the filter, `bare` (`egb-<id>-n`)
/// stays without, so the difference between them is what the filter costs.
pub struct SinkPair {
    tag: Tag,
    filtered: NetNs,
    bare: NetNs,
    /// The senders' cgroups (`egb-<id>-a`, `egb-<id>-n`), where cgroup v2 is mounted.
    workloads: Option<[crate::cgroup::Workload; 2]>,
    namespaces: Namespaces,
}

impl SinkPair {
    /// Builds both namespaces.
    ///
    /// # Errors
    /// [`Error::Command`](filter_core::Error::Command) when `ip` cannot make the namespaces or
    /// links (needs root; what was made is removed).
    pub fn new(tag: Tag) -> Result<Self> {
        let mut namespaces = Namespaces::claiming(&tag)?;
        let mut build = |suffix: &str| -> Result<NetNs> {
            let name = tag.with(suffix);
            namespaces.add(name.clone())?;
            let (sink, peer) = (
                tag.with(&format!("s{suffix}")),
                tag.with(&format!("p{suffix}")),
            );
            run_command(Command::new("ip").args([
                "-n", &name, "link", "add", &sink, "type", "veth", "peer", "name", &peer,
            ]))?;
            ip_batch(
                &name,
                &format!(
                    "link set lo up\nlink set {sink} up\naddr add {SINK_V4}/24 dev {sink}\n\
                     addr add {SINK_V6}/64 dev {sink} nodad\n\
                     neigh replace {GATEWAY_V4} lladdr {GATEWAY_MAC} dev {sink} nud permanent\n\
                     neigh replace {GATEWAY_V6} lladdr {GATEWAY_MAC} dev {sink} nud permanent\n\
                     route add {PROBE_NET_V4} via {GATEWAY_V4} dev {sink}\n\
                     route add {PROBE_NET_V6} via {GATEWAY_V6} dev {sink}\n"
                ),
            )?;
            // A route over a link without carrier is skipped by IPv6 unless told otherwise.
            let _ = run_command(Command::new("ip").args([
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{sink}.ignore_routes_with_linkdown=0"),
            ]));
            Ok(NetNs::named(name))
        };
        let filtered = build("a")?;
        let bare = build("n")?;
        let workloads = match (
            crate::cgroup::Workload::create(&tag.with("a"))?,
            crate::cgroup::Workload::create(&tag.with("n"))?,
        ) {
            (Some(a), Some(n)) => Some([a, n]),
            _ => None,
        };
        Ok(Self {
            tag,
            filtered,
            bare,
            workloads,
            namespaces,
        })
    }

    /// The namespace that gets the filter.
    pub fn filtered(&self) -> &NetNs {
        &self.filtered
    }

    /// The namespace without a filter.
    pub fn bare(&self) -> &NetNs {
        &self.bare
    }

    /// The cgroups of the filtered and the bare side's senders (cgroup hooks go on the
    /// first), where cgroup v2 is mounted.
    pub fn workloads(&self) -> Option<[&std::path::Path; 2]> {
        self.workloads.as_ref().map(|[a, n]| [a.path(), n.path()])
    }

    /// The sink link of the filtered namespace (where tc programs hook).
    pub fn filtered_link(&self) -> String {
        self.tag.with("sa")
    }

    /// Removes both namespaces (also done on drop).
    ///
    /// # Errors
    /// The first namespace `ip netns del` could not remove.
    pub fn remove(mut self) -> Result<()> {
        self.namespaces.remove()
    }
}
