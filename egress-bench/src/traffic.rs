//! Traffic through the filter on the testbed, as paired measurements: the filter's testbed
//! (A) and a twin testbed without a filter (N), both on this machine, alternated
//! N-A-A-N in each of several rounds, so that both see the same machine state. Reported per
//! side as the median over rounds with [min..max], and per round as the ratio A/N.
//!
//! - Throughput: a built-in sendmmsg/recvmmsg generator over `flows` UDP flows (one socket and
//!   source port each), the sender on the first CPU and the receiver on the last. CPU per
//!   packet counts the sender's and receiver's own CPU time and the kernel's softirq threads'
//!   (`/proc/<pid>/schedstat`, nanoseconds), not 10 ms ticks of `/proc/stat`.
//! - Round trips over UDP and TCP, percentiles per round (HDR histograms).
//! - iperf3 through the filter, once, as a cross-check.
//!
//! Traffic goes to [`ALLOWED_V4`] on the server, so every packet is checked against the whole
//! filter and passes.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use filter_core::NetNs;
use hdrhistogram::Histogram;
use testbed::{ALLOWED_V4, Testbed};

pub use records::{Latency, LatencySide, Side, Spread, Throughput, Traffic};

use crate::sys::{BATCH, Receiver, Sender, cpu_count, pin_to, thread_cpu_time};

const PORT_UDP: u16 = 9_100;
const PORT_ECHO: u16 = 9_101;
const PORT_IPERF: u16 = 9_102;
/// Ethernet + IPv4 + UDP headers (without preamble and FCS).
const OVERHEAD: usize = 14 + 20 + 8;

/// How much to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// N-A-A-N rounds per case.
    pub rounds: u32,
    /// Sending time of each leg of a round.
    pub leg: Duration,
    /// Round trips per leg.
    pub round_trips: u32,
    /// Gap between round trips.
    pub interval: Duration,
    /// UDP flows of the throughput cases.
    pub flows: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rounds: 7,
            leg: Duration::from_millis(150),
            round_trips: 250,
            interval: Duration::from_micros(100),
            flows: 1,
        }
    }
}

/// CPUs: the sender's (the first) and the receiver's (the last; the same on one CPU).
fn cpus() -> (usize, usize) {
    (0, cpu_count() - 1)
}

fn pin(cpu: usize) {
    pin_to([cpu]);
}

/// Nanoseconds a task has run, from the first field of a `schedstat` file.
fn schedstat_ns(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The `schedstat` files of the kernel's softirq threads (`ksoftirqd/N`).
fn softirq_threads() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid = e.ok()?.file_name().into_string().ok()?;
        pid.parse::<u32>().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        comm.starts_with("ksoftirqd/")
            .then(|| format!("/proc/{pid}/schedstat"))
    })
    .collect()
}

fn softirq_ns(threads: &[String]) -> u64 {
    threads.iter().filter_map(|p| schedstat_ns(p)).sum()
}

fn udp_in(ns: &NetNs, bind: SocketAddr) -> Result<UdpSocket> {
    ns.run(move || UdpSocket::bind(bind))?
        .with_context(|| format!("binding UDP {bind}"))
}

/// A receiver thread on the server of one testbed, counting packets until dropped.
struct Sink {
    packets: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// The receiver thread's `schedstat` file.
    schedstat: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    fn start(bed: &Testbed, payload: usize, cpu: usize) -> Result<Self> {
        let server = udp_in(bed.server(), (Ipv4Addr::UNSPECIFIED, PORT_UDP).into())?;
        nix::sys::socket::setsockopt(&server, nix::sys::socket::sockopt::RcvBufForce, &(32 << 20))
            .context("enlarging the receive buffer")?;
        server.set_read_timeout(Some(Duration::from_millis(20)))?;
        let (packets, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let thread = {
            let (packets, stop) = (Arc::clone(&packets), Arc::clone(&stop));
            std::thread::spawn(move || {
                pin(cpu);
                let _ = tid_tx.send(nix::unistd::gettid().as_raw());
                let mut rx = Receiver::new(payload.max(64));
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = rx.receive(&server) {
                        packets.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            })
        };
        let tid = tid_rx.recv().context("starting the receiver thread")?;
        Ok(Self {
            packets,
            stop,
            schedstat: format!("/proc/self/task/{tid}/schedstat"),
            thread: Some(thread),
        })
    }

    fn count(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// The count once the receiver has drained its queue: unchanged for 2 ms (at most
    /// 100 ms of waiting).
    fn settled_count(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut last = self.count();
        loop {
            std::thread::sleep(Duration::from_millis(2));
            let now = self.count();
            if now == last || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One leg's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Leg {
    sent: u64,
    received: u64,
    seconds: f64,
    cpu_ns: f64,
}

/// One testbed's sending end: its flows' sockets and its sink.
struct Path {
    sockets: Vec<UdpSocket>,
    sink: Sink,
    sender: Sender,
}

impl Path {
    fn new(bed: &Testbed, payload: usize, flows: usize, receiver_cpu: usize) -> Result<Self> {
        let sink = Sink::start(bed, payload, receiver_cpu)?;
        let sockets = (0..flows.max(1))
            .map(|_| {
                // In the client's cgroup: cgroup hooks see the traffic as tc hooks do.
                let s = bed.client_udp_socket(false)?;
                s.connect((ALLOWED_V4, PORT_UDP))?;
                Ok(s)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            sockets,
            sink,
            sender: Sender::new(payload, &[], &[]),
        })
    }

    /// Sends for `duration`, paced to `rate_bps` if given, and counts what arrives.
    fn leg(
        &mut self,
        duration: Duration,
        frame_bits: f64,
        rate_bps: Option<f64>,
        softirqs: &[String],
    ) -> Leg {
        let batch_interval =
            rate_bps.map(|bps| Duration::from_secs_f64(BATCH as f64 * frame_bits / bps));
        let before = (
            self.sink.count(),
            thread_cpu_time(),
            schedstat_ns(&self.sink.schedstat).unwrap_or(0),
            softirq_ns(softirqs),
        );
        let start = Instant::now();
        let (mut sent, mut next, mut flow) = (0u64, start, 0);
        while start.elapsed() < duration {
            // A full socket buffer or a busy device is back-pressure, not an error.
            if self.sender.send(&self.sockets[flow], BATCH).is_ok() {
                sent += BATCH as u64;
            }
            flow = (flow + 1) % self.sockets.len();
            if let Some(interval) = batch_interval {
                next += interval;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let sender_cpu = thread_cpu_time() - before.1;
        // Count what is still queued for the receiver too: wait until its count settles.
        let received = self.sink.settled_count() - before.0;
        let receiver_ns = schedstat_ns(&self.sink.schedstat)
            .unwrap_or(0)
            .saturating_sub(before.2);
        let softirq = softirq_ns(softirqs).saturating_sub(before.3);
        Leg {
            sent,
            received,
            seconds,
            cpu_ns: sender_cpu.as_secs_f64() * 1e9 + (receiver_ns + softirq) as f64,
        }
    }
}

/// The two legs of each round on one side.
type Rounds = Vec<[Leg; 2]>;

/// Per-round figures of one side, and the side's totals.
fn side(rounds: &[[Leg; 2]], frame_bits: f64) -> Side {
    let pps: Vec<f64> = rounds.iter().map(pps).collect();
    let cpu: Vec<f64> = rounds.iter().map(cpu_per_packet).collect();
    let gbps: Vec<f64> = pps.iter().map(|p| p * frame_bits / 1e9).collect();
    Side {
        received_gbps: Spread::of(&gbps),
        received_pps: Spread::of(&pps),
        cpu_ns_per_packet: Spread::of(&cpu),
        sent_packets: rounds.iter().flatten().map(|l| l.sent).sum(),
        received_packets: rounds.iter().flatten().map(|l| l.received).sum(),
    }
}

fn pps(legs: &[Leg; 2]) -> f64 {
    let received: u64 = legs.iter().map(|l| l.received).sum();
    received as f64 / legs.iter().map(|l| l.seconds).sum::<f64>()
}

fn cpu_per_packet(legs: &[Leg; 2]) -> f64 {
    let received: u64 = legs.iter().map(|l| l.received).sum();
    if received == 0 {
        return f64::NAN;
    }
    legs.iter().map(|l| l.cpu_ns).sum::<f64>() / received as f64
}

/// One throughput case, alternating between `a` and `n` (N-A-A-N per round), on a thread
/// pinned to the sender's CPU.
fn throughput(
    a: &Testbed,
    n: &Testbed,
    payload: usize,
    rate_bps: Option<f64>,
    settings: &Settings,
) -> Result<Throughput> {
    let (sender_cpu, receiver_cpu) = cpus();
    let frame_bits = ((payload + OVERHEAD) * 8) as f64;
    let softirqs = softirq_threads();
    let (a_rounds, n_rounds) = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<(Rounds, Rounds)> {
                pin(sender_cpu);
                let _ = nix::sys::prctl::set_timerslack(1);
                let mut path_a = Path::new(a, payload, settings.flows, receiver_cpu)?;
                let mut path_n = Path::new(n, payload, settings.flows, receiver_cpu)?;
                // Warm both paths (routes, neighbours, caches) before anything counts.
                let warm = settings.leg / 4;
                path_a.leg(warm, frame_bits, rate_bps, &softirqs);
                path_n.leg(warm, frame_bits, rate_bps, &softirqs);
                let (mut a_rounds, mut n_rounds) = (Vec::new(), Vec::new());
                for _ in 0..settings.rounds.max(1) {
                    let leg = |p: &mut Path| p.leg(settings.leg, frame_bits, rate_bps, &softirqs);
                    let n1 = leg(&mut path_n);
                    let a1 = leg(&mut path_a);
                    let a2 = leg(&mut path_a);
                    let n2 = leg(&mut path_n);
                    a_rounds.push([a1, a2]);
                    n_rounds.push([n1, n2]);
                }
                Ok((a_rounds, n_rounds))
            })
            .join()
            .expect("the traffic thread does not panic")
    })?;
    let ratio = |f: fn(&[Leg; 2]) -> f64| {
        let r: Vec<f64> = a_rounds
            .iter()
            .zip(&n_rounds)
            .map(|(a, n)| f(a) / f(n))
            .collect();
        Spread::of(&r)
    };
    Ok(Throughput {
        payload_bytes: payload,
        offered_bps: rate_bps,
        flows: settings.flows.max(1),
        rounds: settings.rounds.max(1),
        seconds_per_leg: settings.leg.as_secs_f64(),
        filter: side(&a_rounds, frame_bits),
        none: Some(side(&n_rounds, frame_bits)),
        ratio_pps: Some(ratio(pps)),
        ratio_cpu: Some(ratio(cpu_per_packet)),
    })
}

/// An HDR histogram of nanoseconds, 1 ns to 10 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds")
}

/// Percentiles of one round per side, spread over rounds.
pub fn latency_side(rounds: &[Histogram<u64>]) -> LatencySide {
    let at = |q: f64| -> Spread {
        let v: Vec<f64> = rounds
            .iter()
            .map(|h| h.value_at_quantile(q) as f64 / 1_000.0)
            .collect();
        Spread::of(&v)
    };
    LatencySide {
        round_trips: rounds.iter().map(Histogram::len).sum(),
        p50_us: at(0.50),
        p90_us: at(0.90),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: Spread::of(
            &rounds
                .iter()
                .map(|h| h.max() as f64 / 1_000.0)
                .collect::<Vec<_>>(),
        ),
    }
}

/// Echo servers (UDP and TCP) on one testbed's server, and the client's sockets to them.
struct Echo {
    udp: UdpSocket,
    tcp: TcpStream,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Echo {
    fn start(bed: &Testbed, cpu: usize) -> Result<Self> {
        // Bound to the address the client sends to, so replies come from it (the client's
        // connected socket takes no others).
        let server = udp_in(bed.server(), (ALLOWED_V4, PORT_ECHO).into())?;
        server.set_read_timeout(Some(Duration::from_millis(20)))?;
        let listener = bed
            .server()
            .run(|| TcpListener::bind((ALLOWED_V4, PORT_ECHO)))?
            .context("binding the TCP echo server")?;
        let stop = Arc::new(AtomicBool::new(false));
        let udp_thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                pin(cpu);
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = server.recv_from(&mut buf) {
                        let _ = server.send_to(&buf[..n], from);
                    }
                }
            })
        };
        let tcp_thread = std::thread::spawn(move || {
            pin(cpu);
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let mut buf = [0u8; 32];
            while stream.read_exact(&mut buf).is_ok() {
                if stream.write_all(&buf).is_err() {
                    break;
                }
            }
        });
        let udp = bed.client_udp_socket(false)?;
        udp.connect((ALLOWED_V4, PORT_ECHO))?;
        udp.set_read_timeout(Some(Duration::from_millis(200)))?;
        let tcp = bed
            .client_tcp_connect((ALLOWED_V4, PORT_ECHO).into())
            .context("connecting to the TCP echo server")?;
        tcp.set_nodelay(true)?;
        Ok(Self {
            udp,
            tcp,
            stop,
            threads: vec![udp_thread, tcp_thread],
        })
    }

    /// `count` round trips over TCP (`tcp`) or UDP, `interval` apart, into `h`.
    fn leg(
        &mut self,
        tcp: bool,
        count: u32,
        interval: Duration,
        h: &mut Histogram<u64>,
    ) -> Result<()> {
        round_trips(&self.udp, &mut self.tcp, tcp, count, interval, h)
    }
}

/// `count` round trips, `interval` apart, into `h`: 32 bytes each way over the TCP stream
/// (`tcp`), or a datagram echoed over the connected UDP socket (a lost one is left out).
///
/// # Errors
/// When sending fails, or the TCP stream breaks.
pub fn round_trips(
    udp: &UdpSocket,
    tcp: &mut TcpStream,
    use_tcp: bool,
    count: u32,
    interval: Duration,
    h: &mut Histogram<u64>,
) -> Result<()> {
    let mut buf = [0u8; 32];
    for i in 0..count {
        let t = Instant::now();
        if use_tcp {
            tcp.write_all(&buf)?;
            tcp.read_exact(&mut buf)?;
            h.record(t.elapsed().as_nanos() as u64).ok();
        } else {
            udp.send(&i.to_be_bytes())?;
            if udp.recv(&mut buf).is_ok() {
                h.record(t.elapsed().as_nanos() as u64).ok();
            }
        }
        std::thread::sleep(interval);
    }
    Ok(())
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Round trips over UDP and TCP, alternating between `a` and `n` (N-A-A-N per round).
fn latency(a: &Testbed, n: &Testbed, settings: &Settings) -> Result<Vec<Latency>> {
    let (client_cpu, server_cpu) = cpus();
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<Vec<Latency>> {
                pin(client_cpu);
                let mut echo_a = Echo::start(a, server_cpu)?;
                let mut echo_n = Echo::start(n, server_cpu)?;
                let mut out = Vec::new();
                for protocol in records::Protocol::BOTH {
                    let tcp = protocol == records::Protocol::Tcp;
                    let (count, gap) = (settings.round_trips, settings.interval);
                    let mut scratch = histogram();
                    echo_a.leg(tcp, count / 4, gap, &mut scratch)?;
                    echo_n.leg(tcp, count / 4, gap, &mut scratch)?;
                    let (mut a_rounds, mut n_rounds) = (Vec::new(), Vec::new());
                    for _ in 0..settings.rounds.max(1) {
                        let (mut ha, mut hn) = (histogram(), histogram());
                        echo_n.leg(tcp, count, gap, &mut hn)?;
                        echo_a.leg(tcp, count, gap, &mut ha)?;
                        echo_a.leg(tcp, count, gap, &mut ha)?;
                        echo_n.leg(tcp, count, gap, &mut hn)?;
                        a_rounds.push(ha);
                        n_rounds.push(hn);
                    }
                    let ratio = |q: f64| {
                        let r: Vec<f64> = a_rounds
                            .iter()
                            .zip(&n_rounds)
                            .map(|(a, n)| {
                                a.value_at_quantile(q) as f64 / n.value_at_quantile(q) as f64
                            })
                            .collect();
                        Spread::of(&r)
                    };
                    out.push(Latency {
                        protocol,
                        filter: latency_side(&a_rounds),
                        none: Some(latency_side(&n_rounds)),
                        ratio_p50: Some(ratio(0.5)),
                        ratio_p99: Some(ratio(0.99)),
                    });
                }
                Ok(out)
            })
            .join()
            .expect("the latency thread does not panic")
    })
}

/// iperf3 over UDP, 1470-byte datagrams, as fast as it goes; its JSON summary.
fn iperf3(bed: &Testbed, duration: Duration) -> Option<serde_json::Value> {
    let mut server = bed
        .server()
        .command("iperf3")
        .args([
            "-s",
            "-1",
            "-p",
            &PORT_IPERF.to_string(),
            "-B",
            &ALLOWED_V4.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    let out = bed
        .client_command("iperf3")
        .ok()?
        .args([
            "-c",
            &ALLOWED_V4.to_string(),
            "-p",
            &PORT_IPERF.to_string(),
            "-u",
            "-b",
            "0",
            "-l",
            "1470",
            "-J",
        ])
        .args(["-t", &duration.as_secs().max(1).to_string()])
        .output()
        .ok();
    let _ = server.kill();
    let _ = server.wait();
    let json: serde_json::Value = serde_json::from_slice(&out?.stdout).ok()?;
    Some(json["end"]["sum"].clone())
}

/// Where the threads run.
fn pinning() -> records::Pinning {
    let (sender, receiver) = cpus();
    records::Pinning::Cpus { sender, receiver }
}

/// The none-vs-none check: both testbeds without a filter, 1470-byte payloads as fast as
/// possible. Run before the filter is loaded into `a`.
///
/// # Errors
/// When sockets cannot be made in the testbeds.
pub fn none_vs_none(a: &Testbed, n: &Testbed, settings: &Settings) -> Result<Throughput> {
    throughput(a, n, 1470, None, settings)
}

/// Every traffic measurement, through `a` (with the filter) and `n` (its twin without),
/// given the none-vs-none check made before the load.
///
/// # Errors
/// When sockets cannot be made or round trips fail.
pub fn measure(
    a: &Testbed,
    n: &Testbed,
    none_vs_none: Option<Throughput>,
    settings: &Settings,
) -> Result<Traffic> {
    let throughput = vec![
        throughput(a, n, 1470, None, settings)?,
        throughput(a, n, 18, None, settings)?,
        throughput(a, n, 1470, Some(1e9), settings)?,
    ];
    let latency = latency(a, n, settings)?;
    Ok(Traffic {
        none_vs_none,
        throughput,
        latency,
        iperf3: iperf3(a, Duration::from_secs(1)),
        pinning: pinning(),
    })
}
