//! The cluster benchmark's record (`egress-bench cluster`, `cargo xtask bench --cluster`): K
//! nodes, each a testbed with its own agent, kept in step through an etcd cluster.

use serde::{Deserialize, Serialize};

/// A whole cluster run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// The filter every node runs.
    pub filter: String,
    /// Nodes (testbeds with an agent each).
    pub nodes: usize,
    /// etcd members.
    pub members: usize,
    /// Whether etcd was reached over TLS with client certificates.
    pub tls: bool,
    /// The agents' settle time, in milliseconds.
    pub settle_ms: u64,
    /// One entry per list size.
    pub sizes: Vec<ClusterSize>,
}

/// What one list size gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSize {
    /// Entries published.
    pub entries: usize,
    /// Chunks the list was published as.
    pub chunks: usize,
    /// How long the publish call took.
    pub publish_ms: f64,
    /// From the publish call until each node dropped a denied probe (per node, in order).
    pub setup_ms: Vec<Option<f64>>,
    /// Single-entry changes: per change, the time until every node showed it (a denied
    /// probe dropped after an add, delivered after a delete); `None` where a node never did.
    pub propagation_ms: Vec<Option<f64>>,
    /// The faults and how long the cluster took to enforce a new list through each.
    pub faults: Vec<Fault>,
    /// Packets to an address every published list denies that got through, once the list
    /// was first enforced, over every node.
    pub denied_reached: u64,
    /// Packets to an allowed address that were lost, over every node.
    pub allowed_lost: u64,
    /// Packets of the steady streams, over every node (the denominators).
    pub steady_packets: u64,
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// What was done (`etcd member killed mid-publish`...).
    pub name: String,
    /// From the publish (or the fault's end) until every node enforced the new list;
    /// `None`: not every node did within the time allowed.
    pub enforced_ms: Option<f64>,
    /// What else happened (the publish retried, the agent restarted...).
    pub note: String,
}

impl ClusterSize {
    /// The median and the largest set-up time over the nodes; NaN when a node never
    /// enforced.
    pub fn setup(&self) -> (f64, f64) {
        let times: Vec<f64> = self
            .setup_ms
            .iter()
            .map(|t| t.unwrap_or(f64::NAN))
            .collect();
        if times.iter().any(|t| t.is_nan()) {
            return (f64::NAN, f64::NAN);
        }
        (
            crate::stats::median(&times),
            times.iter().copied().fold(0.0, f64::max),
        )
    }

    /// The 50th and 99th percentiles of the propagation times, and how many changes never
    /// reached every node.
    pub fn propagation(&self) -> (f64, f64, usize) {
        let reached: Vec<f64> = self.propagation_ms.iter().flatten().copied().collect();
        (
            crate::stats::percentile(&reached, 0.5),
            crate::stats::percentile(&reached, 0.99),
            self.propagation_ms.len() - reached.len(),
        )
    }
}
