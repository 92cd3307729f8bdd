//! Traffic through the filter on the testbed: throughput (a built-in sendmmsg/recvmmsg
//! generator, and iperf3 as a cross-check), CPU time per packet from the kernel's own
//! accounting, and request/response latency percentiles over UDP and TCP.
//!
//! Traffic goes from the client to [`ALLOWED_V4`] on the server, so every packet is checked
//! against the whole filter and passes.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use filter_core::NetNs;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use testbed::{ALLOWED_V4, Testbed};

use crate::sys::{BATCH, Receiver, Sender};

const PORT_UDP: u16 = 9_100;
const PORT_ECHO: u16 = 9_101;
const PORT_IPERF: u16 = 9_102;
/// Ethernet + IPv4 + UDP headers (without preamble and FCS).
const OVERHEAD: usize = 14 + 20 + 8;

/// How long each measurement lasts.
#[derive(Debug, Clone)]
pub struct Settings {
    pub duration: Duration,
    pub round_trips: u32,
    pub interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(1),
            round_trips: 2_000,
            interval: Duration::from_micros(100),
        }
    }
}

/// One throughput measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    pub payload_bytes: usize,
    /// Offered rate in bit/s (frames), or `None` for as fast as possible.
    pub offered_bps: Option<f64>,
    pub seconds: f64,
    pub sent_packets: u64,
    pub received_packets: u64,
    pub received_pps: f64,
    /// Received Ethernet frames (headers included, no preamble or FCS), in Gbit/s.
    pub received_gbps: f64,
    /// Busy CPU time of all cores (user, system, irq, softirq) per received packet, ns.
    pub cpu_ns_per_packet: Option<f64>,
}

/// Round-trip time percentiles, in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub protocol: String,
    pub round_trips: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

/// Everything measured on the traffic path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Traffic {
    pub throughput: Vec<Throughput>,
    pub latency: Vec<Latency>,
    /// iperf3's own UDP figures (`-J`, end.sum), same packets and duration, for comparison.
    pub iperf3: Option<serde_json::Value>,
}

/// Busy and total jiffies of all CPUs, from /proc/stat.
fn cpu_busy() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    Some(
        fields
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, v)| v)
            .sum(),
    )
}

fn jiffy() -> f64 {
    // SAFETY-free: USER_HZ is 100 on every Linux architecture egress-bench runs on.
    1.0 / 100.0
}

fn udp_in(ns: &NetNs, bind: SocketAddr) -> Result<UdpSocket> {
    ns.run(move || UdpSocket::bind(bind))?
        .with_context(|| format!("binding UDP {bind}"))
}

/// Sends `payload`-byte datagrams for `duration`, paced to `rate_bps` if given, and counts
/// what the server receives.
fn throughput(
    bed: &Testbed,
    payload: usize,
    rate_bps: Option<f64>,
    duration: Duration,
) -> Result<Throughput> {
    let server = udp_in(bed.server(), (Ipv4Addr::UNSPECIFIED, PORT_UDP).into())?;
    nix::sys::socket::setsockopt(&server, nix::sys::socket::sockopt::RcvBufForce, &(32 << 20))
        .context("enlarging the receive buffer")?;
    server.set_read_timeout(Some(Duration::from_millis(50)))?;
    let client = udp_in(bed.client(), (Ipv4Addr::UNSPECIFIED, 0).into())?;
    client.connect((ALLOWED_V4, PORT_UDP))?;
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut rx = Receiver::new(payload.max(64));
            let (mut packets, mut quiet) = (0u64, 0);
            loop {
                match rx.receive(&server) {
                    Ok((n, _)) => packets += n as u64,
                    Err(_) if stop.load(Ordering::Relaxed) => {
                        quiet += 1;
                        if quiet > 2 {
                            break;
                        }
                    }
                    Err(_) => {}
                }
            }
            packets
        })
    };
    let frame_bits = ((payload + OVERHEAD) * 8) as f64;
    let batch_interval =
        rate_bps.map(|bps| Duration::from_secs_f64(BATCH as f64 * frame_bits / bps));
    let _ = nix::sys::prctl::set_timerslack(1);
    let mut tx = Sender::new(payload, &[], &[]);
    let busy_before = cpu_busy();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut next = start;
    while start.elapsed() < duration {
        // A full socket buffer or a busy device is back-pressure, not an error.
        if tx.send(&client, BATCH).is_ok() {
            sent += BATCH as u64;
        }
        if let Some(interval) = batch_interval {
            next += interval;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(20));
    let busy_after = cpu_busy();
    stop.store(true, Ordering::Relaxed);
    let received = receiver.join().expect("receiver thread");
    let pps = received as f64 / seconds;
    Ok(Throughput {
        payload_bytes: payload,
        offered_bps: rate_bps,
        seconds,
        sent_packets: sent,
        received_packets: received,
        received_pps: pps,
        received_gbps: pps * frame_bits / 1e9,
        cpu_ns_per_packet: busy_before
            .zip(busy_after)
            .filter(|_| received > 0)
            .map(|(b, a)| (a - b) as f64 * jiffy() * 1e9 / received as f64),
    })
}

pub fn percentiles(protocol: &'static str, h: &Histogram<u64>) -> Latency {
    let us = |ns: u64| ns as f64 / 1_000.0;
    Latency {
        protocol: protocol.into(),
        round_trips: h.len(),
        p50_us: us(h.value_at_quantile(0.50)),
        p90_us: us(h.value_at_quantile(0.90)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
        mean_us: h.mean() / 1_000.0,
    }
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds")
}

/// UDP echo: one datagram out, the same back, `count` times at a fixed interval.
fn udp_latency(bed: &Testbed, settings: &Settings) -> Result<Latency> {
    // Bound to the address the client sends to, so replies come from it (the client's
    // connected socket takes no others).
    let server = udp_in(bed.server(), (ALLOWED_V4, PORT_ECHO).into())?;
    server.set_read_timeout(Some(Duration::from_millis(100)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = server.recv_from(&mut buf) {
                    let _ = server.send_to(&buf[..n], from);
                }
            }
        })
    };
    let client = udp_in(bed.client(), (Ipv4Addr::UNSPECIFIED, 0).into())?;
    client.connect((ALLOWED_V4, PORT_ECHO))?;
    client.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut h = histogram();
    let mut buf = [0u8; 64];
    for i in 0..settings.round_trips {
        let t = Instant::now();
        client.send(&i.to_be_bytes())?;
        if client.recv(&mut buf).is_ok() {
            h.record(t.elapsed().as_nanos() as u64).ok();
        }
        std::thread::sleep(settings.interval);
    }
    stop.store(true, Ordering::Relaxed);
    echo.join().ok();
    Ok(percentiles("udp", &h))
}

/// TCP echo over one connection (TCP_NODELAY): 32 bytes out, 32 back, `count` times.
fn tcp_latency(bed: &Testbed, settings: &Settings) -> Result<Latency> {
    let listener = bed
        .server()
        .run(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT_ECHO)))?
        .context("binding the TCP echo server")?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut buf = [0u8; 32];
        while stream.read_exact(&mut buf).is_ok() {
            stream.write_all(&buf)?;
        }
        Ok(())
    });
    let mut stream = bed
        .client()
        .run(|| {
            TcpStream::connect_timeout(&(ALLOWED_V4, PORT_ECHO).into(), Duration::from_secs(2))
        })?
        .context("connecting to the TCP echo server")?;
    stream.set_nodelay(true)?;
    let mut h = histogram();
    let mut buf = [0u8; 32];
    for _ in 0..settings.round_trips {
        let t = Instant::now();
        stream.write_all(&buf)?;
        stream.read_exact(&mut buf)?;
        h.record(t.elapsed().as_nanos() as u64).ok();
        std::thread::sleep(settings.interval);
    }
    drop(stream);
    let _ = echo.join();
    Ok(percentiles("tcp", &h))
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
        .client()
        .command("iperf3")
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

/// Every traffic measurement, in turn.
pub fn measure(bed: &Testbed, settings: &Settings) -> Result<Traffic> {
    let d = settings.duration;
    let throughput = vec![
        throughput(bed, 1470, None, d)?,
        throughput(bed, 18, None, d)?,
        throughput(bed, 1470, Some(1e9), d)?,
    ];
    let latency = vec![udp_latency(bed, settings)?, tcp_latency(bed, settings)?];
    Ok(Traffic {
        throughput,
        latency,
        iperf3: iperf3(bed, d),
    })
}
