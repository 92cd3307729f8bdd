//! What a filter adds to the cost of sending a packet, measured the way that resolves
//! 10-25 ns on a noisy 2-core machine: one pinned sender thread alternates chunks of packets
//! between a namespace with the filter (A) and one without (N), in A-B-B-A order, reading its
//! own CPU clock around each chunk. Each run gives the median over rounds of the per-packet
//! difference A-N and ratio A/N; the report is the median over runs, with their spread.
//!
//! Packets go to sink devices (see [`testbed::sink`]), so the whole send path runs in the
//! sender's system call and nothing else. A none-vs-none run (both namespaces without a
//! filter) before the filter is loaded says how far the method itself can be trusted.

use std::net::{Ipv4Addr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result};
use filter_core::NetNs;

use crate::sys::{BATCH, Sender, cpu_count, pin_to, thread_cpu_time};
use records::stats::median;

/// UDP payload for 64-byte Ethernet frames (14 + 20 + 8 + 18, FCS not counted... plus 4).
const PAYLOAD: usize = 18;
/// Aim for chunks of about this much CPU time: long enough to swamp the clock reads, short
/// enough that the machine's speed changes rarely inside a round.
const CHUNK_TARGET: Duration = Duration::from_micros(1_500);
/// A run aims at about this much sending.
const RUN_TARGET: Duration = Duration::from_millis(1_500);
/// New flows the filtered side sends at most in one measurement (see [`measure`]).
const NEW_FLOWS_MAX: usize = 100_000;
/// Port packets are sent to (nothing listens: they are discarded at the sink).
const PORT: u16 = 9;

pub use records::{Destinations, DuringUpdates, Paired, SendPath, SendPathRun};

/// How long to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Runs per case; the report is their median.
    pub runs: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { runs: 5 }
    }
}

/// One side of the paired senders: its sink namespace and, when the filter hooks a cgroup,
/// the cgroup its sockets belong to (each side has its own, so both pay the same).
#[derive(Debug, Clone)]
pub struct Side {
    netns: NetNs,
    cgroup: Option<std::path::PathBuf>,
}

/// The two sides of a [`SinkPair`](testbed::sink::SinkPair): the filtered one and the bare one.
#[derive(Debug, Clone)]
pub struct Sides {
    filtered: Side,
    bare: Side,
}

impl Sides {
    /// The sides of `pair`, with sockets in the pair's cgroups when `in_cgroups` (a filter
    /// on a cgroup sees only its cgroup's sockets).
    ///
    /// # Errors
    /// `in_cgroups` where no cgroup v2 hierarchy is mounted.
    pub fn of(pair: &testbed::sink::SinkPair, in_cgroups: bool) -> Result<Self> {
        let [a, n] = match (in_cgroups, pair.workloads()) {
            (false, _) => [None, None],
            (true, Some([a, n])) => [Some(a.to_owned()), Some(n.to_owned())],
            (true, None) => anyhow::bail!("a filter on a cgroup needs cgroup v2 mounted"),
        };
        Ok(Self {
            filtered: Side {
                netns: pair.filtered().clone(),
                cgroup: a,
            },
            bare: Side {
                netns: pair.bare().clone(),
                cgroup: n,
            },
        })
    }
}

/// A socket of `side`, connected to the one destination or unconnected for many.
fn socket(side: &Side, destinations: Destinations) -> Result<UdpSocket> {
    let socket = match &side.cgroup {
        Some(cgroup) => {
            let mut made = testbed::cgroup::sockets_in(
                cgroup,
                &side.netns,
                &[(nix::libc::AF_INET, nix::libc::SOCK_DGRAM)],
            )?;
            UdpSocket::from(made.pop().expect("one socket asked for"))
        }
        None => side
            .netns
            .run(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))?
            .context("opening a sender socket in a sink namespace")?,
    };
    if destinations == Destinations::One {
        socket.connect((Ipv4Addr::new(198, 19, 0, 1), PORT))?;
    }
    Ok(socket)
}

fn sender(destinations: Destinations) -> Sender {
    match destinations {
        Destinations::One => Sender::new(PAYLOAD, &[], &[]),
        Destinations::Many => Sender::new(PAYLOAD, &many(), &[] as &[SocketAddrV6]),
        Destinations::NewFlows => Sender::new_flows(PAYLOAD, &many()),
    }
}

/// The 32,768 addresses of 198.19.0.0/17.
fn many() -> Vec<SocketAddrV4> {
    (0..32_768u32)
        .map(|i| SocketAddrV4::new(Ipv4Addr::from(0xC613_0000 | i), PORT))
        .collect()
}

/// What a round times: packets sent, or `connect()` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    /// Packets to one destination (a connected socket) or many.
    Send(Destinations),
    /// `connect()` of an unconnected UDP socket to each of 32,768 destinations in turn: the
    /// connect-time hooks' cost per new connection (UDP, so no handshake is timed).
    Connect,
    /// `connect()` of a fresh non-blocking TCP socket, opened in the side's cgroup, to each
    /// of the 32,768 destinations in turn, then its close: the SYN goes to the sink and
    /// `connect` returns `EINPROGRESS`. What a filter adds to opening a TCP connection.
    ConnectTcp,
}

/// TCP connects a [`Operation::ConnectTcp`] round times per chunk, rounds per run, and runs
/// at most: each connect uses up a socket of a pool opened beforehand in the cgroup.
const TCP_CHUNK: usize = 32;
const TCP_ROUNDS: u32 = 20;
const TCP_RUNS: u32 = 3;

/// Times `count` operations on a socket: a [`Sender`] or a walk of `connect()`s.
enum Worker {
    Sender(Sender),
    Connector {
        next: u32,
    },
    TcpConnector {
        pool: Vec<std::os::fd::OwnedFd>,
        next: u32,
    },
}

impl Worker {
    /// A worker for `operation` on `side` (a TCP connector opens its pool of sockets there).
    fn new(operation: Operation, side: &Side) -> Result<Self> {
        Ok(match operation {
            Operation::Send(destinations) => Self::Sender(sender(destinations)),
            Operation::Connect => Self::Connector { next: 0 },
            Operation::ConnectTcp => {
                let cgroup = side
                    .cgroup
                    .as_ref()
                    .context("TCP connects are timed for filters on a cgroup only")?;
                let uses = (BATCH * 5) + 2 * TCP_CHUNK * (TCP_ROUNDS * TCP_RUNS) as usize;
                let kind = (
                    nix::libc::AF_INET,
                    nix::libc::SOCK_STREAM | nix::libc::SOCK_NONBLOCK,
                );
                let pool = testbed::cgroup::sockets_in(cgroup, &side.netns, &vec![kind; uses])?;
                Self::TcpConnector { pool, next: 0 }
            }
        })
    }

    fn run(&mut self, socket: &UdpSocket, count: usize) -> std::io::Result<()> {
        match self {
            Self::Sender(sender) => sender.send(socket, count),
            Self::Connector { next } => {
                for _ in 0..count {
                    *next = (*next + 1) & 0x7fff;
                    socket.connect(SocketAddrV4::new(Ipv4Addr::from(0xC613_0000 | *next), PORT))?;
                }
                Ok(())
            }
            Self::TcpConnector { pool, next } => {
                for _ in 0..count {
                    let fd = pool
                        .pop()
                        .ok_or_else(|| std::io::Error::other("the pool of TCP sockets ran out"))?;
                    *next = (*next + 1) & 0x7fff;
                    let to = nix::sys::socket::SockaddrIn::from(SocketAddrV4::new(
                        Ipv4Addr::from(0xC613_0000 | *next),
                        PORT,
                    ));
                    match nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &to) {
                        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            }
        }
    }
}

/// Runs paired rounds between the two sides on the calling thread.
fn measure(sides: &Sides, operation: Operation, settings: &Settings) -> Result<Paired> {
    let destinations = match operation {
        Operation::Send(destinations) => destinations,
        Operation::Connect | Operation::ConnectTcp => Destinations::Many,
    };
    let a = socket(&sides.filtered, destinations)?;
    let n = socket(&sides.bare, destinations)?;
    let (mut send_a, mut send_n) = (
        Worker::new(operation, &sides.filtered)?,
        Worker::new(operation, &sides.bare)?,
    );
    // Calibrate: warm both paths, then size chunks and rounds from the slower one.
    for (s, sock) in [(&mut send_a, &a), (&mut send_n, &n)] {
        s.run(sock, BATCH * 4).context("sending through the sink")?;
    }
    let t = thread_cpu_time();
    send_a.run(&a, BATCH).context("sending through the sink")?;
    let per_packet = (thread_cpu_time() - t).as_secs_f64() / BATCH as f64;
    let chunk = ((CHUNK_TARGET.as_secs_f64() / per_packet) as usize).clamp(16, 4_096);
    let mut chunk = chunk;
    let mut rounds =
        ((RUN_TARGET.as_secs_f64() / (4.0 * chunk as f64 * per_packet)) as u32).clamp(20, 400);
    let mut runs_wanted = settings.runs;
    if operation == Operation::ConnectTcp {
        (chunk, rounds, runs_wanted) = (TCP_CHUNK, TCP_ROUNDS, settings.runs.min(TCP_RUNS));
    }
    if operation == Operation::Send(Destinations::NewFlows) {
        // Each packet is a conntrack entry for filters that keep one (30 s for UDP):
        // stay well under netfilter's table (nf_conntrack_max, 262,144 here), which drops
        // new flows once full.
        let per_round = 2 * chunk * settings.runs as usize;
        rounds = rounds.min((NEW_FLOWS_MAX / per_round).max(5) as u32);
    }
    let mut runs = Vec::new();
    for _ in 0..runs_wanted {
        let (mut diffs, mut ratios, mut bases) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let time = |s: &mut Worker, sock: &UdpSocket| -> Result<f64> {
                let t = thread_cpu_time();
                s.run(sock, chunk).context("sending through the sink")?;
                Ok((thread_cpu_time() - t).as_secs_f64() * 1e9 / chunk as f64)
            };
            let n1 = time(&mut send_n, &n)?;
            let a1 = time(&mut send_a, &a)?;
            let a2 = time(&mut send_a, &a)?;
            let n2 = time(&mut send_n, &n)?;
            let (a, n) = ((a1 + a2) / 2.0, (n1 + n2) / 2.0);
            diffs.push(a - n);
            ratios.push(a / n);
            bases.push(n);
        }
        runs.push(SendPathRun {
            added_ns: median(&diffs),
            ratio: median(&ratios),
            baseline_ns: median(&bases),
            rounds,
            packets_per_chunk: chunk,
        });
    }
    let pick = |f: fn(&SendPathRun) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let (added, ratio) = (pick(|r| r.added_ns), pick(|r| r.ratio));
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Ok(Paired {
        destinations,
        added_ns: median(&added),
        added_ns_min: min(&added),
        added_ns_max: max(&added),
        ratio: median(&ratio),
        ratio_min: min(&ratio),
        ratio_max: max(&ratio),
        baseline_ns: median(&pick(|r| r.baseline_ns)),
        runs,
    })
}

/// Pins the calling thread to the last CPU, so that every chunk runs where the others did.
fn pin() {
    pin_to([cpu_count() - 1]);
}

/// [`measure`] on a thread of its own, pinned to the last CPU.
fn measure_pinned(sides: &Sides, operation: Operation, settings: &Settings) -> Result<Paired> {
    let (sides, settings) = (sides.clone(), settings.clone());
    std::thread::spawn(move || {
        pin();
        measure(&sides, operation, &settings)
    })
    .join()
    .expect("the meter thread does not panic")
}

/// The none-vs-none check; call before the filter is loaded into `filtered`.
pub fn baseline(sides: &Sides, settings: &Settings) -> Result<Paired> {
    measure_pinned(sides, Operation::Send(Destinations::One), settings)
}

/// What the filter adds to one `connect()` (paired like packets, 32,768 destinations in
/// turn): what the connect-time hooks cost a new connection.
pub fn connects(sides: &Sides, settings: &Settings) -> Result<Paired> {
    measure_pinned(sides, Operation::Connect, settings)
}

/// The filter's cost with many destinations, on the last CPU, while the caller changes the
/// filter from another thread (pinned elsewhere with [`pin_away`]).
pub fn many_destinations(sides: &Sides, settings: &Settings) -> Result<Paired> {
    measure_pinned(sides, Operation::Send(Destinations::Many), settings)
}

/// What the filter adds to opening a TCP connection (a non-blocking `connect()` whose SYN
/// goes to the sink, and the close), paired like packets: for filters on a cgroup.
pub fn tcp_connects(sides: &Sides, settings: &Settings) -> Result<Paired> {
    measure_pinned(sides, Operation::ConnectTcp, settings)
}

/// A new flow per packet ([`Destinations::NewFlows`]), on the last CPU.
pub fn new_flows(sides: &Sides, settings: &Settings) -> Result<Paired> {
    measure_pinned(sides, Operation::Send(Destinations::NewFlows), settings)
}

/// Pins the calling thread to every CPU but the meter's (left as it is on a single CPU).
pub fn pin_away() {
    pin_to(0..cpu_count() - 1);
}

/// The filter's cost with one and with many destinations, given the none-vs-none check.
pub fn with_filter(sides: &Sides, none_vs_none: Paired, settings: &Settings) -> Result<SendPath> {
    let (sides, settings) = (sides.clone(), settings.clone());
    let (one, many) = std::thread::spawn(move || -> Result<_> {
        pin();
        Ok((
            measure(&sides, Operation::Send(Destinations::One), &settings)?,
            measure(&sides, Operation::Send(Destinations::Many), &settings)?,
        ))
    })
    .join()
    .expect("the meter thread does not panic")?;
    let mut warnings = Vec::new();
    if none_vs_none.added_ns.abs() > 10.0 {
        warnings.push(format!(
            "the none-vs-none check is off by {:+.1} ns per packet: differences smaller than that are noise \
             (a busy or throttled machine; run again when it is quiet)",
            none_vs_none.added_ns
        ));
    }
    for p in [&one, &many] {
        let spread = p.added_ns_max - p.added_ns_min;
        if p.added_ns.abs() > 20.0 && spread > p.added_ns.abs() * 0.5 {
            warnings.push(format!(
                "{:?} destinations: the runs spread over {spread:.0} ns around {:.0} ns (the host changed speed \
                 between runs); trust the ratio {:.3} more than the ns figure",
                p.destinations, p.added_ns, p.ratio
            ));
        }
    }
    Ok(SendPath {
        none_vs_none,
        one_destination: one,
        many_destinations: many,
        warnings,
        during_updates: None,
        connects: None,
        tcp_connects: None,
        new_flows: None,
    })
}
