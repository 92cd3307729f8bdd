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

/// A running sender and receiver of numbered packets; see [`Testbed::watch_enforcement`](crate::Testbed::watch_enforcement).
pub struct EnforcementWatch {
    stop: Arc<AtomicBool>,
    sender: thread::JoinHandle<Vec<Instant>>,
    receiver: thread::JoinHandle<HashSet<u64>>,
}

impl EnforcementWatch {
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
        self.stop.store(true, Ordering::Relaxed);
        let died = |side: &str| {
            Error::InvalidInput(format!(
                "the enforcement watch's {side} thread panicked: its counts are not figures"
            ))
        };
        let sent = self.sender.join().map_err(|_| died("sender"))?;
        let seen = self.receiver.join().map_err(|_| died("receiver"))?;
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
