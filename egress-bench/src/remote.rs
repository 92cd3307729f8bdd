//! Two hosts: `egress-bench serve` on a server, `egress-bench run --server ADDR --on-host`
//! on the client, with the filter in the client's own network stack.
//!
//! The server listens on one TCP control port P and, on P+1, counts UDP datagrams by the
//! 8-byte token they start with; on P+2 it echoes UDP datagrams and TCP bytes. The client
//! asks `COUNT <token>` over the control port to learn what arrived.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::sys::{BATCH, Receiver, Sender};
use crate::traffic::{Latency, Side, Spread, Throughput, histogram, latency_side, round_trips};

/// The default control port.
pub const DEFAULT_PORT: u16 = 9_200;

/// Arguments of `egress-bench serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and control port to listen on (UDP uses the next two ports). On 0.0.0.0 the
    /// UDP and echo ports take every address of the host, IPv6 included, so that any of them
    /// can serve as the client's --denied-probe.
    #[arg(long, default_value = "0.0.0.0:9200")]
    pub listen: SocketAddr,
}

type Counts = Arc<Mutex<HashMap<u64, (u64, u64)>>>;

/// A UDP socket on `ip`; on an unspecified address, a dual-stack IPv6 socket (it takes IPv4
/// too) where the host has IPv6, so that every address of the server counts.
fn udp_any(ip: IpAddr, port: u16) -> Result<Vec<UdpSocket>> {
    if ip.is_unspecified()
        && let Ok(socket) = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))
    {
        return Ok(vec![socket]);
    }
    Ok(vec![
        UdpSocket::bind((ip, port)).with_context(|| format!("binding UDP {ip}:{port}"))?,
    ])
}

fn tcp_any(ip: IpAddr, port: u16) -> Result<TcpListener> {
    if ip.is_unspecified()
        && let Ok(listener) = TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
    {
        return Ok(listener);
    }
    TcpListener::bind((ip, port)).with_context(|| format!("binding TCP {ip}:{port}"))
}

/// Runs the server until killed.
pub fn serve(args: &ServeArgs) -> Result<()> {
    let (ip, port) = (args.listen.ip(), args.listen.port());
    let counts: Counts = Arc::default();
    for socket in udp_any(ip, port + 1)? {
        let counts = Arc::clone(&counts);
        std::thread::spawn(move || {
            let mut rx = Receiver::new(2_048);
            let mut buf = [0u8; 2_048];
            loop {
                // recvmmsg for rate, recv_from for the token of each datagram is too slow:
                // read one to learn the token, then count a batch as the same flow.
                let Ok((n, from_len)) = socket.recv(&mut buf).map(|n| (n, n)) else {
                    continue;
                };
                let token = buf
                    .get(..8)
                    .map_or(0, |t| u64::from_be_bytes(t.try_into().expect("8 bytes")));
                let (more, more_bytes) = if n >= 8 {
                    socket.set_nonblocking(true).ok();
                    let r = rx.receive(&socket).unwrap_or((0, 0));
                    socket.set_nonblocking(false).ok();
                    r
                } else {
                    (0, 0)
                };
                let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
                let entry = counts.entry(token).or_default();
                entry.0 += 1 + more as u64;
                entry.1 += (from_len + more_bytes) as u64;
            }
        });
    }
    for socket in udp_any(ip, port + 2)? {
        std::thread::spawn(move || {
            let mut buf = [0u8; 2_048];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], from);
            }
        });
    }
    let echo = tcp_any(ip, port + 2)?;
    std::thread::spawn(move || {
        for stream in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_nodelay(true);
                let mut buf = [0u8; 2_048];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let control =
        TcpListener::bind(args.listen).with_context(|| format!("binding TCP {}", args.listen))?;
    println!(
        "egress-bench serving on {} (control), UDP {} (count) and {} (echo), TCP {} (echo)",
        args.listen,
        port + 1,
        port + 2,
        port + 2
    );
    for stream in control.incoming().flatten() {
        let counts = Arc::clone(&counts);
        std::thread::spawn(move || {
            let mut writer = match stream.try_clone() {
                Ok(w) => w,
                Err(_) => return,
            };
            for line in BufReader::new(stream)
                .lines()
                .map_while(std::io::Result::ok)
            {
                let reply = match line.split_whitespace().collect::<Vec<_>>()[..] {
                    ["HELLO"] => format!("egress-bench {}", env!("CARGO_PKG_VERSION")),
                    ["COUNT", token] => {
                        let token: u64 = token.parse().unwrap_or(0);
                        let (p, b) = counts
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(&token)
                            .copied()
                            .unwrap_or_default();
                        format!("{p} {b}")
                    }
                    _ => "ERR unknown command".into(),
                };
                if writeln!(writer, "{reply}").is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

static TOKEN: AtomicU64 = AtomicU64::new(1);

/// A connection to a running `egress-bench serve`.
pub struct Server {
    pub ip: IpAddr,
    port: u16,
    control: BufReader<TcpStream>,
}

impl Server {
    /// Connects to the control port and checks the server answers.
    pub fn connect(address: &str) -> Result<Self> {
        let addr: SocketAddr = address
            .parse()
            .or_else(|_| {
                address
                    .parse::<IpAddr>()
                    .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
            })
            .with_context(|| format!("--server {address:?}: expected ADDRESS or ADDRESS:PORT"))?;
        let stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(3)).with_context(|| {
                format!("connecting to egress-bench serve at {addr} (is it running there?)")
            })?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut server = Self {
            ip: addr.ip(),
            port: addr.port(),
            control: BufReader::new(stream),
        };
        let hello = server.ask("HELLO")?;
        if !hello.starts_with("egress-bench") {
            bail!("{addr} answered {hello:?}, not egress-bench serve");
        }
        Ok(server)
    }

    fn ask(&mut self, line: &str) -> Result<String> {
        writeln!(self.control.get_mut(), "{line}")?;
        let mut reply = String::new();
        self.control
            .read_line(&mut reply)
            .context("reading the server's reply")?;
        Ok(reply.trim().to_owned())
    }

    fn count(&mut self, token: u64) -> Result<(u64, u64)> {
        let reply = self.ask(&format!("COUNT {token}"))?;
        let mut parts = reply.split_whitespace().map(str::parse::<u64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(p)), Some(Ok(b))) => Ok((p, b)),
            _ => bail!("unexpected reply to COUNT: {reply:?}"),
        }
    }

    /// Whether a few datagrams to `dst` (an address of the server) arrive.
    pub fn probe(&mut self, dst: IpAddr) -> Result<bool> {
        let token = TOKEN.fetch_add(1, Ordering::Relaxed) | (u64::from(std::process::id()) << 32);
        let socket = UdpSocket::bind(if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        for _ in 0..3 {
            // A firewall in OUTPUT refuses the send (EPERM): that is a drop.
            let _ = socket.send_to(&token.to_be_bytes(), (dst, self.port + 1));
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(self.count(token)?.0 > 0)
    }

    /// UDP to the server as fast as it goes for `leg`, counted by the server: packets sent,
    /// received and seconds.
    fn throughput_leg(&mut self, payload: usize, leg: Duration) -> Result<(u64, u64, f64)> {
        let token = TOKEN.fetch_add(1, Ordering::Relaxed) | (u64::from(std::process::id()) << 32);
        let socket = UdpSocket::bind(if self.ip.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        socket.connect((self.ip, self.port + 1))?;
        let mut bytes = vec![0u8; payload.max(8)];
        bytes[..8].copy_from_slice(&token.to_be_bytes());
        let mut tx = Sender::with_payload(bytes);
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < leg {
            if tx.send(&socket, BATCH).is_ok() {
                sent += BATCH as u64;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(200));
        let (received, _) = self.count(token)?;
        Ok((sent, received, seconds))
    }

    /// UDP to the server as fast as it goes, `rounds` legs of `leg` each, through the filter
    /// only (there is no path without it to alternate with).
    pub fn throughput(&mut self, payload: usize, rounds: u32, leg: Duration) -> Result<Throughput> {
        let frame_bits = ((payload.max(8) + 42) * 8) as f64;
        let (mut pps, mut sent, mut received) = (Vec::new(), 0, 0);
        for _ in 0..rounds.max(1) {
            let (s, r, seconds) = self.throughput_leg(payload, leg)?;
            pps.push(r as f64 / seconds);
            sent += s;
            received += r;
        }
        let gbps: Vec<f64> = pps.iter().map(|p| p * frame_bits / 1e9).collect();
        Ok(Throughput {
            payload_bytes: payload.max(8),
            offered_bps: None,
            flows: 1,
            rounds: rounds.max(1),
            seconds_per_leg: leg.as_secs_f64(),
            filter: Side {
                received_gbps: Spread::of(&gbps),
                received_pps: Spread::of(&pps),
                cpu_ns_per_packet: Spread::of(&[]),
                sent_packets: sent,
                received_packets: received,
            },
            none: None,
            ratio_pps: None,
            ratio_cpu: None,
        })
    }

    /// UDP and TCP round trips to the echo port, `rounds` rounds of `round_trips` each.
    pub fn latency(
        &mut self,
        rounds: u32,
        round_trips_per_round: u32,
        interval: Duration,
    ) -> Result<Vec<Latency>> {
        let target = SocketAddr::new(self.ip, self.port + 2);
        let udp = UdpSocket::bind(if self.ip.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        udp.connect(target)?;
        udp.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut tcp = TcpStream::connect_timeout(&target, Duration::from_secs(3))?;
        tcp.set_nodelay(true)?;
        let mut out = Vec::new();
        for protocol in records::Protocol::BOTH {
            let mut per_round = Vec::new();
            for _ in 0..rounds.max(1) {
                let mut h = histogram();
                round_trips(
                    &udp,
                    &mut tcp,
                    protocol == records::Protocol::Tcp,
                    round_trips_per_round,
                    interval,
                    &mut h,
                )?;
                per_round.push(h);
            }
            out.push(Latency {
                protocol,
                filter: latency_side(&per_round),
                none: None,
                ratio_p50: None,
                ratio_p99: None,
            });
        }
        Ok(out)
    }
}

/// The interface packets to `dst` leave by (from the kernel's routing table).
pub fn route_interface(dst: IpAddr) -> Result<String> {
    let out = filter_core::run_command(std::process::Command::new("ip").args([
        "route",
        "get",
        &dst.to_string(),
    ]))?;
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "dev")
        .and_then(|i| words.get(i + 1))
        .map(|s| (*s).to_owned())
        .with_context(|| format!("no route to {dst}: {out}"))
}

pub use records::TwoHosts;
