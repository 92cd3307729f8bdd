//! Facts about the machine and, in two-host mode, the hosts.

use serde::{Deserialize, Serialize};

/// The machine a record was measured on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    /// The kernel release.
    pub kernel: String,
    /// CPUs available to egress-bench.
    pub cpus: usize,
    /// `iptables --version`, or `not installed`.
    pub iptables: String,
    /// `ipset version`, or `not installed`.
    pub ipset: String,
    /// egress-bench's version.
    pub egress_bench: String,
}

/// The change in the kernel's allocations across a load, and whether it is a figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllocationDelta {
    /// The change, when it can be trusted as the filter's (positive, above the noise).
    pub bytes: Option<i64>,
    /// The change as read, trusted or not.
    pub raw_bytes: i64,
    /// How much the reading moved by itself before the load.
    pub noise_bytes: u64,
    /// Why `bytes` is not given, when it is not.
    pub untrusted: Option<String>,
}

/// Peak resident memory of egress-bench, from `getrusage(RUSAGE_SELF)`. (Children are left
/// out: a child's peak counts the pages it shared with its parent before `exec`.)
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PeakMemory {
    /// Bytes.
    pub egress_bench_bytes: u64,
    /// The largest peak of the programs it ran (`ipset restore`, `nft -f`, ...), from
    /// `getrusage(RUSAGE_CHILDREN)`: what a reference loader needed, at most (a child also
    /// counts the pages it shared with egress-bench before it started its program).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children_bytes: Option<u64>,
}

impl PeakMemory {
    /// The most user-space memory the run needed at once, its own or a child's.
    pub fn most_bytes(&self) -> u64 {
        self.egress_bench_bytes
            .max(self.children_bytes.unwrap_or(0))
    }
}

/// What a two-host record says about the hosts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TwoHosts {
    /// The server's address.
    pub server: String,
    /// The client's interface toward the server, where the filter sits.
    pub interface: String,
    /// The denied address probed on the server.
    pub denied_probe: String,
}
