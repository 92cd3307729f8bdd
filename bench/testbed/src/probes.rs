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
    /// It never reached the server (the send failed or the packet was dropped on the way).
    Dropped,
}

/// The client's and server's probe sockets, per family.
pub(crate) struct ProbeSockets {
    pub(crate) client_v4: UdpSocket,
    pub(crate) client_v6: UdpSocket,
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
