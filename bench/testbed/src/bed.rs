//! The two namespaces, their veth link and addresses, and the probe methods.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use filter_core::{Error, NetNs, Result, Tag, run_command};

use crate::probes::{
    PORT_V4, PORT_V6, PROBE_WAIT, ProbeSockets, check_probe_target, datagram, drain, is_timeout,
    parse_datagram,
};
use crate::*;

pub(crate) static LIVE_NAMESPACES: Mutex<Vec<String>> = Mutex::new(Vec::new());
pub(crate) static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

pub(crate) fn live() -> MutexGuard<'static, Vec<String>> {
    LIVE_NAMESPACES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Namespaces this process created under a claimed tag; deleted on drop (and the claim let
/// go after them), so a failed set-up leaves nothing.
pub(crate) struct Namespaces {
    pub(crate) names: Vec<String>,
    /// The tag's claim: a cleanup beside this process leaves these namespaces alone.
    _claim: crate::RunClaim,
}

impl Namespaces {
    /// Claims `tag` (or shares this process's claim of it) for namespaces to come.
    pub(crate) fn claiming(tag: &Tag) -> Result<Self> {
        Ok(Self {
            names: Vec::new(),
            _claim: crate::RunClaim::take(tag)?,
        })
    }

    pub(crate) fn add(&mut self, name: String) -> Result<()> {
        run_command(Command::new("ip").args(["netns", "add", &name]))?;
        live().push(name.clone());
        self.names.push(name);
        Ok(())
    }

    pub(crate) fn remove(&mut self) -> Result<()> {
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
    /// The client side's cgroup, where the unified hierarchy is mounted.
    workload: Option<crate::cgroup::Workload>,
    namespaces: Namespaces,
}

impl Testbed {
    /// Builds a testbed with a fresh run id.
    ///
    /// # Errors
    /// As [`with_tag`](Self::with_tag).
    pub fn new() -> Result<Self> {
        // Held until the testbed's namespaces share it.
        let (tag, _claim) = crate::RunClaim::fresh()?;
        Self::with_tag(tag)
    }

    /// Builds a testbed whose objects are named from `tag`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when another live run holds `tag` ([`RunClaim`]);
    /// [`Error::Command`](filter_core::Error::Command) when `ip` cannot make the namespaces,
    /// link or addresses (needs root; what was made is removed); [`Error::Io`](filter_core::Error::Io)
    /// when the probe sockets cannot be bound.
    pub fn with_tag(tag: Tag) -> Result<Self> {
        let client_name = tag.with("client");
        let server_name = tag.with("server");
        let mut namespaces = Namespaces::claiming(&tag)?;
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
        let workload = crate::cgroup::Workload::create(tag.as_str())?;
        let outside = [
            bind(&client, (Ipv4Addr::UNSPECIFIED, 0).into())?,
            bind(&client, (Ipv6Addr::UNSPECIFIED, 0).into())?,
        ];
        let [client_v4, client_v6] = match &workload {
            Some(workload) => [
                client_udp(workload, &client, false)?,
                client_udp(workload, &client, true)?,
            ],
            None => {
                let clone = |s: &UdpSocket| {
                    s.try_clone()
                        .map_err(|e| Error::io("clone a probe socket", e))
                };
                [clone(&outside[0])?, clone(&outside[1])?]
            }
        };
        let sockets = ProbeSockets {
            client_v4,
            client_v6,
            outside,
            server_v4: bind(&server, (Ipv4Addr::UNSPECIFIED, PORT_V4).into())?,
            server_v6: bind(&server, (Ipv6Addr::UNSPECIFIED, PORT_V6).into())?,
        };
        let bed = Self {
            tag,
            client,
            server,
            sockets: Arc::new(Mutex::new(sockets)),
            workload,
            namespaces,
        };
        bed.wait_until_ready()?;
        Ok(bed)
    }

    /// Waits until packets to the allowed probes get through: a link just set up drops
    /// packets until the kernel's link watcher activates its queue, which a busy machine
    /// can put off for up to a second.
    fn wait_until_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        for probe in [IpAddr::from(ALLOWED_V4), IpAddr::from(ALLOWED_V6)] {
            while self.probe(probe)? == Probe::Dropped {
                if Instant::now() > deadline {
                    return Err(Error::InvalidInput(format!(
                        "the testbed's link carries no packets to {probe} 5 s after it was set up"
                    )));
                }
            }
        }
        Ok(())
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
    /// tells whether any reached the server within 300 ms, or whether the send itself found
    /// no path ([`Probe::Unreachable`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](filter_core::Error::InvalidInput) for an address outside the probe
    /// networks; [`Error::Io`](filter_core::Error::Io) when the sockets fail.
    pub fn probe(&self, dst: IpAddr) -> Result<Probe> {
        self.probe_from(dst, false)
    }

    /// [`probe`](Self::probe) from a socket of a process outside the client's cgroup (this
    /// one), still in the client namespace: what a cgroup hook must not see.
    ///
    /// # Errors
    /// As [`probe`](Self::probe).
    pub fn probe_outside_workload(&self, dst: IpAddr) -> Result<Probe> {
        self.probe_from(dst, true)
    }

    /// The client side's cgroup v2 (`egb-<id>` at the root of the unified hierarchy), whose
    /// sockets the probes and [`client_udp_socket`](Self::client_udp_socket) use; `None`
    /// where no unified hierarchy is mounted.
    pub fn workload(&self) -> Option<&std::path::Path> {
        self.workload.as_ref().map(crate::cgroup::Workload::path)
    }

    /// A UDP socket of the client side: in the client namespace and, where there is one, in
    /// the client's cgroup (so cgroup hooks see it), unbound.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be made.
    pub fn client_udp_socket(&self, v6: bool) -> Result<UdpSocket> {
        match &self.workload {
            Some(workload) => client_udp(workload, &self.client, v6),
            None => {
                let any: IpAddr = if v6 {
                    Ipv6Addr::UNSPECIFIED.into()
                } else {
                    Ipv4Addr::UNSPECIFIED.into()
                };
                self.client
                    .run(|| UdpSocket::bind((any, 0)))?
                    .map_err(|e| Error::io("bind a client socket", e))
            }
        }
    }

    /// A TCP connection from the client side to `addr` (in the client's cgroup, where there
    /// is one).
    ///
    /// # Errors
    /// [`Error::Io`] when the socket cannot be made or the connection is refused.
    pub fn client_tcp_connect(&self, addr: SocketAddr) -> Result<std::net::TcpStream> {
        let Some(workload) = &self.workload else {
            return self
                .client
                .run(|| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)))?
                .map_err(|e| Error::io(format!("connecting to {addr}"), e));
        };
        use nix::libc;
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let socket = workload
            .sockets(&self.client, &[(domain, libc::SOCK_STREAM)])?
            .pop()
            .ok_or_else(|| Error::InvalidInput("no socket came back from the cgroup".into()))?;
        let to = nix::sys::socket::SockaddrStorage::from(addr);
        nix::sys::socket::connect(std::os::fd::AsRawFd::as_raw_fd(&socket), &to)
            .map_err(|e| Error::io(format!("connecting to {addr}"), e.into()))?;
        Ok(std::net::TcpStream::from(socket))
    }

    /// A command run in the client namespace and, where there is one, the client's cgroup.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a cgroup path the kernel cannot be given.
    pub fn client_command(&self, program: &str) -> Result<Command> {
        let mut cmd = self.client.command(program);
        if let Some(workload) = &self.workload {
            workload.enclose(&mut cmd)?;
        }
        Ok(cmd)
    }

    fn probe_from(&self, dst: IpAddr, outside: bool) -> Result<Probe> {
        check_probe_target(dst)?;
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let (client, server, port) = sockets.pair(dst.is_ipv4());
        let client = if outside {
            &sockets.outside[usize::from(dst.is_ipv6())]
        } else {
            client
        };
        drain(server);
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        let payload = datagram(token, 0);
        for _ in 0..3 {
            // A filter in OUTPUT refuses the send (EPERM): that is a drop, not an error; any
            // other refusal is a broken path.
            let sent = client.send_to(&payload, SocketAddr::new(dst, port));
            if let Some(code) = crate::probes::broken_path(&sent) {
                return Ok(Probe::Unreachable(code));
            }
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
    ///
    /// # Errors
    /// As [`probe`](Self::probe).
    pub fn watch_enforcement(&self, dst: IpAddr, interval: Duration) -> Result<EnforcementWatch> {
        check_probe_target(dst)?;
        let client = self.client_udp_socket(dst.is_ipv6())?;
        EnforcementWatch::start(client, &self.server, dst, interval)
    }

    /// Removes the namespaces (and with them the veth pair and every filter inside).
    /// Dropping the testbed does the same, printing errors instead of returning them.
    ///
    /// # Errors
    /// The first namespace `ip netns del` could not remove.
    pub fn remove(mut self) -> Result<()> {
        self.namespaces.remove()
    }
}

/// A UDP socket made in `workload` and `netns`.
fn client_udp(workload: &crate::cgroup::Workload, netns: &NetNs, v6: bool) -> Result<UdpSocket> {
    use nix::libc;
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let mut made = workload.sockets(netns, &[(domain, libc::SOCK_DGRAM)])?;
    Ok(UdpSocket::from(made.pop().expect("one socket asked for")))
}

pub(crate) fn ip_batch(netns: &str, script: &str) -> Result<()> {
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
