//! A throw-away network for egress filter tests and benchmarks: two network namespaces,
//! `egb-<id>-client` and `egb-<id>-server`, joined by a veth pair, with addresses from the
//! benchmarking ranges 198.18.0.0/15 and 2001:2::/48 only.
//!
//! The server accepts UDP for every address of [`PROBE_NET_V4`] and [`PROBE_NET_V6`]
//! (routed to it from the client), so a probe can tell whether a packet to any of those
//! addresses left the client. Filters go in the client namespace.
//!
//! Everything is removed when the [`Testbed`] is dropped (also while unwinding from a
//! panic), by [`install_signal_cleanup`] on Ctrl-C or SIGTERM, and by [`cleanup`] after a
//! run that was killed.

pub mod conformance;
pub mod sink;

use std::collections::HashSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use filter_core::{Error, NetNs, OBJECT_PREFIX, Result, Tag, run_command};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The client's address (where filters run).
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The server's address on the veth link.
pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The client's IPv6 address.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
/// The server's IPv6 address on the veth link.
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
/// Addresses routed from the client to the server, which answers for all of them.
pub const PROBE_NET_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 19, 0, 0), 16);
/// IPv6 addresses routed from the client to the server, which answers for all of them.
pub const PROBE_NET_V6: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 2, 0, 0x1000, 0, 0, 0, 0), 52);
/// A probe address no deny-list may cover: traffic to it must pass.
pub const ALLOWED_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// An IPv6 probe address no deny-list may cover.
pub const ALLOWED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x1000, 0, 0, 0, 1);
/// The network the harness adds to a deny-list on purpose, to prove it blocks.
pub const DENIED_NET_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 19, 255, 0), 24);
/// The IPv6 network the harness adds to a deny-list on purpose.
pub const DENIED_NET_V6: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 2, 0, 0x1fff, 0, 0, 0, 0), 64);
/// A probe address inside [`DENIED_NET_V4`].
pub const DENIED_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 1);
/// A probe address inside [`DENIED_NET_V6`].
pub const DENIED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x1fff, 0, 0, 0, 1);

const PORT_V4: u16 = 9_004;
const PORT_V6: u16 = 9_006;
const MAGIC: u32 = 0x6567_6221; // "egb!"
const PROBE_WAIT: Duration = Duration::from_millis(300);

/// The testbed's own addresses and the allowed probes: a deny-list covering any of them
/// would cut the harness off from its hosts.
pub fn protected_addresses() -> Vec<IpAddr> {
    vec![
        CLIENT_V4.into(),
        SERVER_V4.into(),
        ALLOWED_V4.into(),
        CLIENT_V6.into(),
        SERVER_V6.into(),
        ALLOWED_V6.into(),
    ]
}

/// A denied single host: a /32 deny-list entry, so that tables which treat long prefixes
/// apart (the constant-time table's second level) are timed on that path too.
pub const DENIED_HOST_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 1);
/// An allowed address in the same /24 as [`DENIED_HOST_V4`].
pub const NEAR_MISS_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 2);

/// The deliberate deny-list entries whose blocking the probes check.
pub fn denied_probe_nets() -> [IpNet; 3] {
    [
        IpNet::V4(DENIED_NET_V4),
        IpNet::V4(Ipv4Net::new_assert(DENIED_HOST_V4, 32)),
        IpNet::V6(DENIED_NET_V6),
    ]
}

/// Whether a probe packet left the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The server received it.
    Delivered,
    /// It never reached the server (the send failed or the packet was dropped on the way).
    Dropped,
}

static LIVE_NAMESPACES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn live() -> MutexGuard<'static, Vec<String>> {
    LIVE_NAMESPACES.lock().unwrap_or_else(|p| p.into_inner())
}

struct ProbeSockets {
    client_v4: UdpSocket,
    client_v6: UdpSocket,
    server_v4: UdpSocket,
    server_v6: UdpSocket,
}

impl ProbeSockets {
    fn pair(&self, family_v4: bool) -> (&UdpSocket, &UdpSocket, u16) {
        if family_v4 {
            (&self.client_v4, &self.server_v4, PORT_V4)
        } else {
            (&self.client_v6, &self.server_v6, PORT_V6)
        }
    }
}

/// Namespaces this process created; deleted on drop, so a failed set-up leaves nothing.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn add(&mut self, name: String) -> Result<()> {
        run_command(Command::new("ip").args(["netns", "add", &name]))?;
        live().push(name.clone());
        self.names.push(name);
        Ok(())
    }

    fn remove(&mut self) -> Result<()> {
        let mut first_error = None;
        for name in self.names.drain(..) {
            if let Err(e) = run_command(Command::new("ip").args(["netns", "del", &name])) {
                first_error.get_or_insert(e);
            }
            live().retain(|n| *n != name);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("warning: removing testbed namespaces: {e}");
        }
    }
}

/// Two namespaces joined by a veth pair; see the [crate docs](crate).
pub struct Testbed {
    tag: Tag,
    client: NetNs,
    server: NetNs,
    sockets: Arc<Mutex<ProbeSockets>>,
    namespaces: Namespaces,
}

impl Testbed {
    /// Builds a testbed with a fresh run id.
    pub fn new() -> Result<Self> {
        Self::with_tag(Tag::random())
    }

    /// Builds a testbed whose objects are named from `tag`.
    pub fn with_tag(tag: Tag) -> Result<Self> {
        let client_name = tag.with("client");
        let server_name = tag.with("server");
        let mut namespaces = Namespaces { names: Vec::new() };
        namespaces.add(client_name.clone())?;
        namespaces.add(server_name.clone())?;
        let (client, server) = (NetNs::named(&client_name), NetNs::named(&server_name));
        let (c_link, s_link) = (tag.with("c"), tag.with("s"));
        run_command(Command::new("ip").args([
            "link",
            "add",
            &c_link,
            "netns",
            &client_name,
            "type",
            "veth",
            "peer",
            "name",
            &s_link,
            "netns",
            &server_name,
        ]))?;
        let client_script = format!(
            "link set lo up\nlink set {c_link} up\naddr add {CLIENT_V4}/24 dev {c_link}\n\
             addr add {CLIENT_V6}/64 dev {c_link} nodad\n\
             route add {PROBE_NET_V4} via {SERVER_V4}\nroute add {PROBE_NET_V6} via {SERVER_V6}\n"
        );
        let server_script = format!(
            "link set lo up\nlink set {s_link} up\naddr add {SERVER_V4}/24 dev {s_link}\n\
             addr add {SERVER_V6}/64 dev {s_link} nodad\n\
             route add local {PROBE_NET_V4} dev lo\nroute add local {PROBE_NET_V6} dev lo\n"
        );
        ip_batch(&client_name, &client_script)?;
        ip_batch(&server_name, &server_script)?;
        let bind = |ns: &NetNs, addr: SocketAddr| {
            ns.run(|| UdpSocket::bind(addr))?.map_err(|e| {
                Error::io(
                    format!("bind UDP {addr} in {}", ns.name().unwrap_or("?")),
                    e,
                )
            })
        };
        let sockets = ProbeSockets {
            client_v4: bind(&client, (Ipv4Addr::UNSPECIFIED, 0).into())?,
            client_v6: bind(&client, (Ipv6Addr::UNSPECIFIED, 0).into())?,
            server_v4: bind(&server, (Ipv4Addr::UNSPECIFIED, PORT_V4).into())?,
            server_v6: bind(&server, (Ipv6Addr::UNSPECIFIED, PORT_V6).into())?,
        };
        Ok(Self {
            tag,
            client,
            server,
            sockets: Arc::new(Mutex::new(sockets)),
            namespaces,
        })
    }

    /// The run's tag: every object of the testbed and of filters in it is named from it.
    pub fn tag(&self) -> &Tag {
        &self.tag
    }

    /// The client namespace, where filters are installed.
    pub fn client(&self) -> &NetNs {
        &self.client
    }

    /// The client's end of the veth pair, whose egress filters hook (`egb-<id>-c`).
    pub fn client_link(&self) -> String {
        self.tag.with("c")
    }

    /// The server namespace.
    pub fn server(&self) -> &NetNs {
        &self.server
    }

    /// Sends a few UDP packets from the client to `dst` (inside the probe networks) and
    /// tells whether any reached the server within 300 ms.
    pub fn probe(&self, dst: IpAddr) -> Result<Probe> {
        check_probe_target(dst)?;
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let (client, server, port) = sockets.pair(dst.is_ipv4());
        drain(server);
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        let payload = datagram(token, 0);
        for _ in 0..3 {
            // A filter in OUTPUT refuses the send (EPERM): that is a drop, not an error.
            let _ = client.send_to(&payload, SocketAddr::new(dst, port));
        }
        let deadline = Instant::now() + PROBE_WAIT;
        let mut buf = [0u8; 64];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            server
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| Error::io("set probe timeout", e))?;
            match server.recv(&mut buf) {
                Ok(n) if parse_datagram(&buf[..n]).is_some_and(|(t, _)| t == token) => {
                    return Ok(Probe::Delivered);
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => break,
                // A signal (a child process of another test ending) cut the wait short.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("receive probe", e)),
            }
        }
        Ok(Probe::Dropped)
    }

    /// Starts sending a packet to `dst` every `interval` (tens of microseconds) and watching
    /// which arrive, to time when a filter starts to block `dst`.
    pub fn watch_enforcement(&self, dst: IpAddr, interval: Duration) -> Result<EnforcementWatch> {
        check_probe_target(dst)?;
        EnforcementWatch::start(&self.client, &self.server, dst, interval)
    }

    /// Removes the namespaces (and with them the veth pair and every filter inside).
    /// Dropping the testbed does the same, printing errors instead of returning them.
    pub fn remove(mut self) -> Result<()> {
        self.namespaces.remove()
    }
}

fn check_probe_target(dst: IpAddr) -> Result<()> {
    let inside = match dst {
        IpAddr::V4(a) => PROBE_NET_V4.contains(&a),
        IpAddr::V6(a) => PROBE_NET_V6.contains(&a),
    };
    if inside {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "probe address {dst} is outside the testbed's probe networks {PROBE_NET_V4} and {PROBE_NET_V6}"
        )))
    }
}

fn ip_batch(netns: &str, script: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["-n", netns, "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("start ip -batch", e))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| Error::io("write to ip -batch", e))?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("wait for ip -batch", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("ip -n {netns} -batch - <<< {script:?}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn datagram(token: u64, seq: u64) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..4].copy_from_slice(&MAGIC.to_be_bytes());
    out[4..12].copy_from_slice(&token.to_be_bytes());
    out[12..].copy_from_slice(&seq.to_be_bytes());
    out
}

fn parse_datagram(buf: &[u8]) -> Option<(u64, u64)> {
    if buf.len() != 20 || buf[..4] != MAGIC.to_be_bytes() {
        return None;
    }
    let token = u64::from_be_bytes(buf[4..12].try_into().ok()?);
    let seq = u64::from_be_bytes(buf[12..20].try_into().ok()?);
    Some((token, seq))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn drain(socket: &UdpSocket) {
    let mut buf = [0u8; 64];
    if socket.set_nonblocking(true).is_ok() {
        while socket.recv(&mut buf).is_ok() {}
        let _ = socket.set_nonblocking(false);
    }
}

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

/// A running sender and receiver of numbered packets; see [`Testbed::watch_enforcement`].
pub struct EnforcementWatch {
    stop: Arc<AtomicBool>,
    sender: thread::JoinHandle<Vec<Instant>>,
    receiver: thread::JoinHandle<HashSet<u64>>,
}

impl EnforcementWatch {
    fn start(client: &NetNs, server: &NetNs, dst: IpAddr, interval: Duration) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        // Sockets of its own: watches running side by side never read each other's packets.
        let any: IpAddr = if dst.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let bind = |ns: &NetNs| {
            ns.run(|| UdpSocket::bind((any, 0)))?
                .map_err(|e| Error::io("bind watch socket", e))
        };
        let (client, server) = (bind(client)?, bind(server)?);
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
    pub fn finish(self, start: Instant) -> Enforcement {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.join().unwrap_or_default();
        let seen = self.receiver.join().unwrap_or_default();
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
        Enforcement {
            after,
            resolution,
            max_gap,
            sent: sent.len() as u64,
            delivered: seen.len() as u64,
        }
    }
}

/// Kernel objects in the client namespace whose names start with `prefix`: iptables chains
/// (both back-ends, both families), ipsets, tc egress filters and TCX links on the client's link and
/// pinned BPF objects. Tests use it to prove a filter left nothing behind.
pub fn filter_objects(bed: &Testbed, prefix: &str) -> Vec<String> {
    let ns = bed.client();
    let mut found = Vec::new();
    for save in [
        "iptables-legacy-save",
        "ip6tables-legacy-save",
        "iptables-nft-save",
        "ip6tables-nft-save",
    ] {
        if let Ok(out) = run_command(&mut ns.command(save)) {
            found.extend(
                out.lines()
                    .filter(|l| l.contains(prefix))
                    .map(|l| format!("{save}: {l}")),
            );
        }
    }
    if let Ok(out) = run_command(ns.command("ipset").args(["list", "-n"])) {
        found.extend(
            out.lines()
                .filter(|l| l.starts_with(prefix))
                .map(|l| format!("ipset {l}")),
        );
    }
    let link = bed.client_link();
    if let Ok(out) = run_command(
        ns.command("tc")
            .args(["filter", "show", "dev", &link, "egress"]),
    ) {
        found.extend(
            out.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("tc egress: {l}")),
        );
    }
    // TCX programs are links, not tc filters: `tc filter show` does not list them.
    if let Ok(out) = run_command(ns.command("bpftool").args(["net", "show", "dev", &link])) {
        found.extend(
            out.lines()
                .filter(|l| l.contains(" egb_"))
                .map(|l| format!("bpf link: {}", l.trim())),
        );
    }
    if let Ok(out) = run_command(ns.command("tc").args(["qdisc", "show", "dev", &link])) {
        found.extend(
            out.lines()
                .filter(|l| l.contains("clsact"))
                .map(|l| format!("qdisc: {l}")),
        );
    }
    // TCX programs show neither in tc nor in Debian 12's bpftool: ask the kernel.
    if let Ok(name) = std::ffi::CString::new(link)
        && let Ok(Ok((_, programs))) = ns.run(move || {
            aya::programs::SchedClassifier::query_tcx(
                name.as_c_str(),
                aya::programs::tc::TcAttachType::Egress,
            )
        })
    {
        found.extend(
            programs
                .iter()
                .map(|p| format!("tcx egress program id {}", p.id())),
        );
    }
    if let Ok(entries) = fs::read_dir("/sys/fs/bpf") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) {
                found.push(format!("pinned /sys/fs/bpf/{name}"));
            }
        }
    }
    found
}

/// Removes every testbed namespace and host link (`egb-*`) left by runs that were killed,
/// and returns their names. Never touches objects without the prefix.
pub fn cleanup() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    if let Ok(entries) = fs::read_dir("/run/netns") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(OBJECT_PREFIX) {
                run_command(Command::new("ip").args(["netns", "del", &name]))?;
                removed.push(format!("network namespace {name}"));
            }
        }
    }
    if let Ok(entries) = fs::read_dir("/sys/class/net") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(OBJECT_PREFIX) {
                run_command(Command::new("ip").args(["link", "del", &name]))?;
                removed.push(format!("link {name}"));
            }
        }
    }
    Ok(removed)
}

/// Namespaces and host links whose names start with `prefix` (for example a run's tag):
/// what [`cleanup`] would remove. Tests use it to prove nothing was left behind.
pub fn leftovers(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["/run/netns", "/sys/class/net"] {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(prefix) {
                    found.push(format!("{dir}/{name}"));
                }
            }
        }
    }
    found
}

type Hook = Box<dyn Fn() + Send>;
static SIGNAL_HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

/// Runs `hook` on SIGINT, SIGTERM or SIGHUP, before the namespaces are removed: for objects
/// outside testbed namespaces (a filter on the host's own firewall).
pub fn on_signal(hook: impl Fn() + Send + 'static) {
    SIGNAL_HOOKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Box::new(hook));
}

/// On SIGINT, SIGTERM or SIGHUP, runs the [`on_signal`] hooks, removes every testbed of this
/// process and exits with status 130 (SIGINT) or 143. Call once, early in `main`.
pub fn install_signal_cleanup() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::io("install signal handlers", e))?;
    thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            for hook in SIGNAL_HOOKS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                hook();
            }
            let names: Vec<String> = live().clone();
            eprintln!("\ninterrupted: removing {}", names.join(", "));
            for name in names {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}
