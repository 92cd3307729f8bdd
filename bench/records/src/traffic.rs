//! Traffic through the filter on the testbed (`run --traffic`): each figure measured with
//! and without the filter in the same run, alternated A-B-B-A over rounds.

use serde::{Deserialize, Serialize};

use crate::Spread;

/// One side (with or without the filter) of a throughput measurement, over rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    /// Received Ethernet frames (headers included, no preamble or FCS), Gbit/s.
    pub received_gbps: Spread,
    /// Received packets per second.
    pub received_pps: Spread,
    /// CPU time per received packet, ns: the sender and receiver threads' own CPU time plus
    /// the kernel's softirq threads' (the packet path runs in one of those).
    pub cpu_ns_per_packet: Spread,
    /// Packets sent over all rounds.
    pub sent_packets: u64,
    /// Packets received over all rounds.
    pub received_packets: u64,
}

/// Throughput of one packet size and rate, with the filter and without it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// UDP payload, bytes.
    pub payload_bytes: usize,
    /// Offered rate in bit/s (frames), or `None` for as fast as possible.
    pub offered_bps: Option<f64>,
    /// Concurrent flows (sender threads, each its own socket and port).
    pub flows: usize,
    /// A-B-B-A rounds.
    pub rounds: u32,
    /// Seconds of each leg of a round.
    pub seconds_per_leg: f64,
    /// Through the filter's client namespace.
    pub filter: Side,
    /// Through a twin testbed without a filter (`None` in two-host mode, where there is no
    /// path without the filter to alternate with).
    pub none: Option<Side>,
    /// Per round, packets/s with the filter over packets/s without.
    pub ratio_pps: Option<Spread>,
    /// Per round, CPU per packet with the filter over CPU per packet without.
    pub ratio_cpu: Option<Spread>,
}

/// One side of a round-trip measurement: per-round percentiles, microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencySide {
    /// Round trips over all rounds.
    pub round_trips: u64,
    /// Median round trip.
    pub p50_us: Spread,
    /// 90th percentile.
    pub p90_us: Spread,
    /// 99th percentile.
    pub p99_us: Spread,
    /// 99.9th percentile.
    pub p999_us: Spread,
    /// Longest.
    pub max_us: Spread,
}

/// Round trips of one protocol, with the filter and without it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// The protocol of the round trips.
    pub protocol: Protocol,
    /// Through the filter's client namespace.
    pub filter: LatencySide,
    /// Through the twin testbed without a filter (`None` in two-host mode).
    pub none: Option<LatencySide>,
    /// Per round, the median round trip with the filter over the one without.
    pub ratio_p50: Option<Spread>,
    /// Per round, the 99th percentile with the filter over the one without.
    pub ratio_p99: Option<Spread>,
}

/// Everything measured on the traffic path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Traffic {
    /// Before the load, both client namespaces without a filter (1470-byte payloads, as fast
    /// as possible): how close to 1.0 the method's ratios get on this machine in this run.
    pub none_vs_none: Option<Throughput>,
    /// Throughput cases.
    pub throughput: Vec<Throughput>,
    /// Round-trip cases.
    pub latency: Vec<Latency>,
    /// iperf3's own UDP figures through the filter (`-J`, end.sum), for comparison.
    pub iperf3: Option<serde_json::Value>,
    /// Where the sender and receiver threads ran.
    pub pinning: Pinning,
}

/// The protocol of round trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// UDP datagrams echoed back.
    Udp,
    /// Bytes echoed back on one TCP connection.
    Tcp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        })
    }
}

impl Protocol {
    /// Both, in the order records list them.
    pub const BOTH: [Self; 2] = [Self::Udp, Self::Tcp];
}

/// Where the traffic threads ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Pinning {
    /// Sender and round-trip client pinned to one CPU, receiver and echo servers to another.
    Cpus {
        /// The sender's CPU.
        sender: usize,
        /// The receiver's CPU.
        receiver: usize,
    },
    /// Not pinned: the receiver is another host.
    TwoHosts,
}

impl std::fmt::Display for Pinning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpus { sender, receiver } => write!(
                f,
                "sender and round-trip client on CPU {sender}, receiver and echo servers on CPU {receiver}"
            ),
            Self::TwoHosts => f.write_str("none (two hosts)"),
        }
    }
}

impl From<Pinning> for String {
    fn from(pinning: Pinning) -> Self {
        pinning.to_string()
    }
}

impl TryFrom<String> for Pinning {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "none (two hosts)" {
            return Ok(Self::TwoHosts);
        }
        let cpus: Vec<usize> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        match cpus.as_slice() {
            [sender, receiver] if text.starts_with("sender and round-trip client on CPU") => {
                Ok(Self::Cpus {
                    sender: *sender,
                    receiver: *receiver,
                })
            }
            _ => Err(format!("unknown traffic pinning {text:?}")),
        }
    }
}

impl Throughput {
    /// Whether the rounds resolve a throughput difference: every round's ratio lies on the
    /// same side of 1.
    pub fn resolved(&self) -> bool {
        self.ratio_pps.is_some_and(|r| r.excludes(1.0))
    }
}
