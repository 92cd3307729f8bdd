//! Timing enforcement: when a filter started to block an address.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use filter_core::{Error, NetNs, Result};

use crate::bed::NEXT_TOKEN;
use crate::probes::{datagram, parse_datagram};

/// When a filter started to block an address, as seen by packets sent continuously.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Enforcement {
    /// From the given start until the first packet that was dropped and after which none
    /// got through; `None` if the last packet sent still got through.
    pub after: Option<Duration>,
    /// The median gap between two sent packets: the resolution of `after`.
    pub resolution: Duration,
    /// The longest gap between two sent packets.
    pub max_gap: Duration,
    /// Packets sent.
    pub sent: u64,
    /// Packets the server received.
    pub delivered: u64,
}

/// Every packet of a watch: when each was sent, and which arrived.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// The send time of packet `i`.
    pub sent: Vec<Instant>,
    /// The packets the server received, by number.
    pub delivered: HashSet<u64>,
}

impl Stream {
    /// From `from` on (up to `until`), the time from `from` to the first packet after which
    /// every packet sent before `until` had the fate `delivered`; `None` when the last
    /// packet of the window still had the other fate, or none was sent in it.
    pub fn settled(&self, from: Instant, until: Instant, delivered: bool) -> Option<Duration> {
        let start = self.sent.partition_point(|&t| t < from);
        let end = self.sent.partition_point(|&t| t < until);
        if start >= end {
            return None;
        }
        let fate = |seq: usize| self.delivered.contains(&(seq as u64)) == delivered;
        if !fate(end - 1) {
            return None;
        }
        let first = (start..end).rev().take_while(|&seq| fate(seq)).last()?;
        Some(self.sent[first].saturating_duration_since(from))
    }

    /// Packets sent in `[from, until)`.
    pub fn count(&self, from: Instant, until: Instant) -> u64 {
        let start = self.sent.partition_point(|&t| t < from);
        let end = self.sent.partition_point(|&t| t < until);
        end.saturating_sub(start) as u64
    }

    /// Packets sent in `[from, until)` whose fate was not `delivered`.
    pub fn against(&self, from: Instant, until: Instant, delivered: bool) -> u64 {
        let start = self.sent.partition_point(|&t| t < from);
        let end = self.sent.partition_point(|&t| t < until);
        (start..end)
            .filter(|&seq| self.delivered.contains(&(seq as u64)) != delivered)
            .count() as u64
    }
}

/// A running sender and receiver of numbered packets; see [`Testbed::watch_enforcement`](crate::Testbed::watch_enforcement).
pub struct EnforcementWatch {
    stop: Arc<AtomicBool>,
    sender: thread::JoinHandle<Vec<Instant>>,
    receiver: thread::JoinHandle<HashSet<u64>>,
}

impl EnforcementWatch {
    /// Stops the watch and gives every packet's fate.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the sender or the receiver thread died: its counts would
    /// read as packets lost, or never sent.
    pub fn stream(self) -> Result<Stream> {
        self.stop.store(true, Ordering::Relaxed);
        let died = |side: &str| {
            Error::InvalidInput(format!(
                "the enforcement watch's {side} thread panicked: its counts are not figures"
            ))
        };
        let sent = self.sender.join().map_err(|_| died("sender"))?;
        let delivered = self.receiver.join().map_err(|_| died("receiver"))?;
        Ok(Stream { sent, delivered })
    }

    pub(crate) fn start(
        client: UdpSocket,
        server: &NetNs,
        dst: IpAddr,
        interval: Duration,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        // Sockets of its own: watches running side by side never read each other's packets.
        let any: IpAddr = if dst.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let server = server
            .run(|| UdpSocket::bind((any, 0)))?
            .map_err(|e| Error::io("bind watch socket", e))?;
        let port = server
            .local_addr()
            .map_err(|e| Error::io("watch socket address", e))?
            .port();
        server
            .set_read_timeout(Some(Duration::from_millis(5)))
            .map_err(|e| Error::io("set probe timeout", e))?;
        // Room for a second of packets, so a receiver thread that loses the CPU for a moment
        // (the machine has two cores and a loader busy on one) does not count as packet loss.
        nix::sys::socket::setsockopt(&server, nix::sys::socket::sockopt::RcvBufForce, &(16 << 20))
            .map_err(|e| Error::io("enlarge watch socket buffer", e.into()))?;
        let receiver = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut seen = HashSet::new();
                let mut buf = [0u8; 64];
                let mut quiet_after_stop = 0;
                // Stops after four quiet reads once told to stop: packets in flight arrive first.
                loop {
                    match server.recv(&mut buf) {
                        Ok(n) => {
                            if let Some((t, seq)) = parse_datagram(&buf[..n])
                                && t == token
                            {
                                seen.insert(seq);
                            }
                        }
                        Err(_) if stop.load(Ordering::Relaxed) => {
                            quiet_after_stop += 1;
                            if quiet_after_stop >= 4 {
                                break;
                            }
                        }
                        Err(_) => {}
                    }
                }
                seen
            })
        };
        let sender = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                // Sleep precisely: the default 50 us timer slack would set the resolution.
                let _ = nix::sys::prctl::set_timerslack(1);
                let target = SocketAddr::new(dst, port);
                let mut sent = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let seq = sent.len() as u64;
                    sent.push(Instant::now());
                    let _ = client.send_to(&datagram(token, seq), target);
                    thread::sleep(interval);
                }
                sent
            })
        };
        Ok(Self {
            stop,
            sender,
            receiver,
        })
    }

    /// Stops the watch and reports enforcement relative to `start` (the start of the load).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the sender or the receiver thread died: its counts would
    /// read as packets lost, or never sent.
    pub fn finish(self, start: Instant) -> Result<Enforcement> {
        let Stream {
            sent,
            delivered: seen,
        } = self.stream()?;
        let mut gaps: Vec<Duration> = sent.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_unstable();
        let resolution = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
        let max_gap = gaps.last().copied().unwrap_or_default();
        let last_delivered = seen.iter().copied().max();
        let first_blocked = match last_delivered {
            Some(seq) => seq as usize + 1,
            None => 0,
        };
        let after = sent
            .get(first_blocked)
            .map(|t| t.saturating_duration_since(start));
        Ok(Enforcement {
            after,
            resolution,
            max_gap,
            sent: sent.len() as u64,
            delivered: seen.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets 0..10 a millisecond apart; `lost` did not arrive.
    fn stream(lost: &[u64]) -> (Stream, Instant) {
        let t0 = Instant::now();
        let sent = (0..10).map(|i| t0 + Duration::from_millis(i)).collect();
        let delivered = (0..10).filter(|i| !lost.contains(i)).collect();
        (Stream { sent, delivered }, t0)
    }

    #[test]
    fn settled_finds_the_packet_after_which_the_fate_held() {
        let (s, t0) = stream(&[4, 6, 7, 8, 9]);
        let end = t0 + Duration::from_secs(1);
        // Dropped for good from packet 6 (4 was a stray loss before).
        assert_eq!(s.settled(t0, end, false), Some(Duration::from_millis(6)));
        // Never delivered for good: the last packet was dropped.
        assert_eq!(s.settled(t0, end, true), None);
        // A window that ends before the drops settled on delivery at its start.
        assert_eq!(
            s.settled(t0, t0 + Duration::from_micros(3500), true),
            Some(Duration::ZERO)
        );
        assert_eq!(s.against(t0, end, true), 5);
        assert_eq!(s.against(t0 + Duration::from_millis(6), end, false), 0);
    }
}
