//! Probe packets: tokens and sequence numbers in UDP datagrams to the server's probe ports.

use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

use filter_core::{Error, Result};

use crate::{PROBE_NET_V4, PROBE_NET_V6};

pub(crate) const PORT_V4: u16 = 9_004;
pub(crate) const PORT_V6: u16 = 9_006;
pub(crate) const MAGIC: u32 = 0x6567_6221; // "egb!"
pub(crate) const PROBE_WAIT: Duration = Duration::from_millis(300);

/// Whether a probe packet left the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The server received it.
    Delivered,
    /// It never reached the server: dropped on the way, or refused at the send by a filter
    /// (`EPERM`, what netfilter's OUTPUT hook and cgroup programs answer).
    Dropped,
    /// The send failed for another reason (no route, an unreachable network: the errno): the
    /// path is broken, which says nothing of a filter and never counts as its drop.
    Unreachable(i32),
}

/// What a refused send means: `None` when a filter's drop (or no error) can explain it, else
/// the broken path's errno.
pub(crate) fn broken_path(sent: &std::io::Result<usize>) -> Option<i32> {
    match sent {
        Ok(_) => None,
        Err(e) => match e.raw_os_error() {
            Some(code) if code == nix::errno::Errno::EPERM as i32 => None,
            Some(code) => Some(code),
            None => Some(0),
        },
    }
}

/// The client's and server's probe sockets, per family.
pub(crate) struct ProbeSockets {
    pub(crate) client_v4: UdpSocket,
    pub(crate) client_v6: UdpSocket,
    /// Client sockets of this process, outside the client's cgroup (IPv4, IPv6).
    pub(crate) outside: [UdpSocket; 2],
    pub(crate) server_v4: UdpSocket,
    pub(crate) server_v6: UdpSocket,
}

impl ProbeSockets {
    pub(crate) fn pair(&self, family_v4: bool) -> (&UdpSocket, &UdpSocket, u16) {
        if family_v4 {
            (&self.client_v4, &self.server_v4, PORT_V4)
        } else {
            (&self.client_v6, &self.server_v6, PORT_V6)
        }
    }
}

pub(crate) fn check_probe_target(dst: IpAddr) -> Result<()> {
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

pub(crate) fn datagram(token: u64, seq: u64) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..4].copy_from_slice(&MAGIC.to_be_bytes());
    out[4..12].copy_from_slice(&token.to_be_bytes());
    out[12..].copy_from_slice(&seq.to_be_bytes());
    out
}

pub(crate) fn parse_datagram(buf: &[u8]) -> Option<(u64, u64)> {
    if buf.len() != 20 || buf[..4] != MAGIC.to_be_bytes() {
        return None;
    }
    let token = u64::from_be_bytes(buf[4..12].try_into().ok()?);
    let seq = u64::from_be_bytes(buf[12..20].try_into().ok()?);
    Some((token, seq))
}

pub(crate) fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

pub(crate) fn drain(socket: &UdpSocket) {
    let mut buf = [0u8; 64];
    if socket.set_nonblocking(true).is_ok() {
        while socket.recv(&mut buf).is_ok() {}
        let _ = socket.set_nonblocking(false);
    }
}
