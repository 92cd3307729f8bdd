//! What a filter adds to the cost of sending a packet (`run --send-path`).

use serde::{Deserialize, Serialize};

/// Where the packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Destinations {
    /// One flow to one address, as in the published benchmark.
    One,
    /// Every address of 198.19.0.0/17 in turn (32,768; the deliberate denied probe network
    /// in the upper half stays out).
    Many,
    /// A new flow per packet: the addresses of [`Many`](Self::Many) in turn, the
    /// destination port one higher on each pass, so no 5-tuple repeats within a run (what a
    /// filter with conntrack pays for a connection's first packet).
    NewFlows,
}

/// One run of paired rounds: medians over its rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendPathRun {
    /// Median of the per-round difference with and without the filter, ns per packet.
    pub added_ns: f64,
    /// Median of the per-round ratio with / without the filter.
    pub ratio: f64,
    /// Median send cost per packet without the filter, ns.
    pub baseline_ns: f64,
    /// Rounds (each A-B-B-A).
    pub rounds: u32,
    /// Packets per chunk of a round.
    pub packets_per_chunk: usize,
}

/// The cost added per packet, over several runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Paired {
    /// Where the packets went.
    pub destinations: Destinations,
    /// Median over runs of the per-run median of A-N, ns per packet.
    pub added_ns: f64,
    /// Smallest run's figure.
    pub added_ns_min: f64,
    /// Largest run's figure.
    pub added_ns_max: f64,
    /// Median over runs of the per-run median of A/N.
    pub ratio: f64,
    /// Smallest run's ratio.
    pub ratio_min: f64,
    /// Largest run's ratio.
    pub ratio_max: f64,
    /// Median send cost per packet without a filter, ns (the host's speed state).
    pub baseline_ns: f64,
    /// Every run.
    pub runs: Vec<SendPathRun>,
}

/// The send-path figures of one filter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendPath {
    /// Both namespaces without a filter: how close to zero the method gets.
    pub none_vs_none: Paired,
    /// One destination.
    pub one_destination: Paired,
    /// 32,768 destinations.
    pub many_destinations: Paired,
    /// Reasons not to trust the figures, with what to do.
    pub warnings: Vec<String>,
    /// Many destinations again while an update feed changes the list (`--updates`).
    #[serde(default)]
    pub during_updates: Option<DuringUpdates>,
    /// For a filter on a cgroup: what it adds to one `connect()` of a UDP socket (32,768
    /// destinations in turn), ns per call, paired like the packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connects: Option<Paired>,
    /// For a filter on a cgroup: what it adds to opening a TCP connection (a non-blocking
    /// `connect()` of a fresh socket, its SYN, and the close), ns per call, paired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_connects: Option<Paired>,
    /// A new flow per packet (`--new-flows`): where a filter keeps conntrack, what a
    /// connection's first packet costs; `one_destination` is then an established flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_flows: Option<Paired>,
}

/// The send path measured while the filter is being changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DuringUpdates {
    /// What the filter added per packet meanwhile (many destinations).
    pub paired: Paired,
    /// Updates per second the feed sustained meanwhile, on the other CPU.
    pub updates_per_second: f64,
    /// Entries per add or remove call.
    pub batch: usize,
}
