//! The live-update feed (`run --updates`).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One probe stream's count.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Stream {
    /// The address.
    pub address: IpAddr,
    /// Packets sent.
    pub sent: u64,
    /// Packets the server received.
    pub delivered: u64,
}

/// What the feed measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Updates {
    /// The rate asked for (`max` or entries per second).
    pub requested: String,
    /// Entries per call.
    pub batch: usize,
    /// How long the feed ran.
    pub seconds: f64,
    /// Entries added and removed (each counts as one update).
    pub updates: u64,
    /// Add and remove calls made.
    pub calls: u64,
    /// Updates per second sustained over the feed.
    pub updates_per_second: f64,
    /// Median, 99th percentile and longest time of one call, microseconds.
    pub call_us: [f64; 3],
    /// From the start of an add call until a probe to the added network stopped getting
    /// through (median of rounds), microseconds.
    pub enforcement_us: Option<f64>,
    /// The stream to an address the list holds throughout: nothing may be delivered.
    pub stays_denied: Stream,
    /// The stream to an address the list never holds: nothing may be lost.
    pub stays_allowed: Stream,
    /// Packets delivered to the denied address plus packets lost to the allowed one: 0 for
    /// a filter that is never wrong while it changes.
    pub violations: u64,
}
