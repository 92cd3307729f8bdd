//! The system calls the send-path meter needs and the standard library lacks: `sendmmsg` and
//! the calling thread's CPU clock.
#![allow(
    unsafe_code,
    reason = "sendmmsg(2) has no safe wrapper that fits a tight send loop"
)]

use std::io;
use std::net::{SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Packets sent per `sendmmsg` call at most.
pub const BATCH: usize = 64;

/// Reusable `sendmmsg` arguments: one payload, up to [`BATCH`] messages.
pub struct Sender {
    payload: Vec<u8>,
    iov: libc::iovec,
    headers: Vec<libc::mmsghdr>,
    v4: Vec<libc::sockaddr_in>,
    v6: Vec<libc::sockaddr_in6>,
    next: usize,
    /// Each pass over the IPv4 destinations goes to the next port: a new flow per packet.
    new_flows: bool,
}

// SAFETY: the raw pointers in `iov` and `headers` point into this struct's own heap buffers,
// which move with it; nothing is shared between threads.
unsafe impl Send for Sender {}

fn zeroed_header() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) value.
    unsafe { std::mem::zeroed() }
}

impl Sender {
    /// Messages of `payload_len` zero bytes to the socket's connected peer, or to
    /// `destinations` in turn.
    pub fn new(payload_len: usize, v4: &[SocketAddrV4], v6: &[SocketAddrV6]) -> Self {
        let to_v4 = |a: &SocketAddrV4| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let to_v6 = |a: &SocketAddrV6| libc::sockaddr_in6 {
            sin6_family: libc::AF_INET6 as libc::sa_family_t,
            sin6_port: a.port().to_be(),
            sin6_flowinfo: 0,
            sin6_addr: libc::in6_addr {
                s6_addr: a.ip().octets(),
            },
            sin6_scope_id: 0,
        };
        Self {
            payload: vec![0u8; payload_len],
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            headers: (0..BATCH).map(|_| zeroed_header()).collect(),
            v4: v4.iter().map(to_v4).collect(),
            v6: v6.iter().map(to_v6).collect(),
            next: 0,
            new_flows: false,
        }
    }

    /// Messages to `v4` in turn, the destination port one higher on each pass (from 1024,
    /// through 64,000 ports): no 5-tuple repeats for two billion packets.
    pub fn new_flows(payload_len: usize, v4: &[SocketAddrV4]) -> Self {
        Self {
            new_flows: true,
            ..Self::new(payload_len, v4, &[])
        }
    }

    /// Messages carrying `payload` to the socket's connected peer.
    pub fn with_payload(payload: Vec<u8>) -> Self {
        let mut sender = Self::new(0, &[], &[]);
        sender.payload = payload;
        sender
    }

    /// Sends `count` packets on `socket`, `BATCH` per call.
    pub fn send(&mut self, socket: &UdpSocket, count: usize) -> io::Result<()> {
        self.iov.iov_base = self.payload.as_mut_ptr().cast();
        self.iov.iov_len = self.payload.len();
        let mut left = count;
        while left > 0 {
            let n = left.min(BATCH);
            for header in &mut self.headers[..n] {
                header.msg_hdr.msg_iov = &raw mut self.iov;
                header.msg_hdr.msg_iovlen = 1;
                if !self.v4.is_empty() {
                    let len = self.v4.len();
                    let addr = &mut self.v4[self.next % len];
                    if self.new_flows {
                        #[expect(clippy::cast_possible_truncation, reason = "below 64,000")]
                        let pass = ((self.next / len) % 64_000) as u16;
                        addr.sin_port = (1024 + pass).to_be();
                    }
                    header.msg_hdr.msg_name = (addr as *mut libc::sockaddr_in).cast();
                    header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
                    self.next += 1;
                } else if !self.v6.is_empty() {
                    let i = self.next % self.v6.len();
                    let addr = &mut self.v6[i];
                    header.msg_hdr.msg_name = (addr as *mut libc::sockaddr_in6).cast();
                    header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in6>() as u32;
                    self.next += 1;
                }
            }
            // SAFETY: the first n headers are initialised and point at live buffers (payload,
            // iov, addresses) owned by self for the duration of the call.
            let sent = unsafe {
                libc::sendmmsg(socket.as_raw_fd(), self.headers.as_mut_ptr(), n as u32, 0)
            };
            if sent < 0 {
                return Err(io::Error::last_os_error());
            }
            left -= sent as usize;
        }
        Ok(())
    }
}

/// Receives up to [`BATCH`] datagrams per call and counts them.
pub struct Receiver {
    buffers: Vec<Vec<u8>>,
    iovs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: as for Sender: the pointers point into the struct's own heap buffers.
unsafe impl Send for Receiver {}

impl Receiver {
    /// Room for [`BATCH`] datagrams of up to `size` bytes.
    pub fn new(size: usize) -> Self {
        let mut buffers: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; size]).collect();
        let iovs: Vec<libc::iovec> = buffers
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        Self {
            buffers,
            iovs,
            headers: (0..BATCH).map(|_| zeroed_header()).collect(),
        }
    }

    /// Waits for datagrams (up to the socket's read timeout); returns (datagrams, bytes).
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<(usize, usize)> {
        for (header, iov) in self.headers.iter_mut().zip(self.iovs.iter_mut()) {
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_len = 0;
        }
        let _ = &self.buffers;
        // SAFETY: every header points at one iovec, which points at a buffer of its stated
        // length, all owned by self and alive for the call; MSG_WAITFORONE returns after the
        // first datagram once more are not immediately there.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        let bytes = self.headers[..n].iter().map(|h| h.msg_len as usize).sum();
        Ok((n, bytes))
    }
}

/// CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .expect("the thread CPU clock exists on Linux");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// CPUs this process may use (1 when unknown).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Pins the calling thread to the CPUs given (ignored when none is valid).
pub fn pin_to(cpus: impl IntoIterator<Item = usize>) {
    let mut set = nix::sched::CpuSet::new();
    let mut any = false;
    for cpu in cpus {
        any |= set.set(cpu).is_ok();
    }
    if any {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}
