//! nfnetlink framing shared by the engines that speak a netfilter protocol directly
//! (`filter-ipset`: the ipset protocol; `filter-nftables`: nf_tables): building messages
//! with nested attributes, framing them in a transaction batch, and reading replies without
//! trusting any length the kernel sends.
//!
//! ```no_run
//! use filter_core::NetNs;
//! use nfnetlink::{Message, NLM_F_ACK, Socket};
//!
//! let mut socket = Socket::open(&NetNs::current())?;
//! // An nf_tables "get generation" request (subsystem 10, message 16).
//! let mut msg = Message::new(10 << 8 | 16, NLM_F_ACK, 0, 0);
//! socket.send(msg.finish(1))?;
//! let replies = socket.receive()?;
//! for (kind, seq, body) in nfnetlink::messages(replies) {
//!     println!("type {kind} seq {seq}: {} bytes", body.len());
//! }
//! # Ok::<(), filter_core::Error>(())
//! ```

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use filter_core::{Error, NetNs, Result};
use netlink_sys::protocols::NETLINK_NETFILTER;

/// An error or acknowledgement (`NLMSG_ERROR`).
pub const NLMSG_ERROR: u16 = 2;
/// The end of a dump (`NLMSG_DONE`).
pub const NLMSG_DONE: u16 = 3;
/// A request (`NLM_F_REQUEST`).
pub const NLM_F_REQUEST: u16 = 0x1;
/// Ask for an acknowledgement (`NLM_F_ACK`).
pub const NLM_F_ACK: u16 = 0x4;
/// Replace an existing object (`NLM_F_REPLACE`).
pub const NLM_F_REPLACE: u16 = 0x100;
/// Fail if the object exists (`NLM_F_EXCL`).
pub const NLM_F_EXCL: u16 = 0x200;
/// Create the object if it is missing (`NLM_F_CREATE`).
pub const NLM_F_CREATE: u16 = 0x400;
/// Dump every object (`NLM_F_DUMP`).
pub const NLM_F_DUMP: u16 = 0x300;
/// The attribute holds attributes (`NLA_F_NESTED`).
pub const NLA_F_NESTED: u16 = 0x8000;
/// The attribute's payload is in network byte order (`NLA_F_NET_BYTEORDER`).
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
/// Opens a transaction (`NFNL_MSG_BATCH_BEGIN`).
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// Commits a transaction (`NFNL_MSG_BATCH_END`).
pub const NFNL_MSG_BATCH_END: u16 = 0x11;

/// One netlink message with an `nfgenmsg` header, under construction.
#[derive(Debug, Clone)]
pub struct Message {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Message {
    /// A message of `kind` (subsystem << 8 | command) with `flags` beside `NLM_F_REQUEST`,
    /// for protocol `family`, with the `nfgenmsg` resource id `res_id`.
    pub fn new(kind: u16, flags: u16, family: u8, res_id: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[0; 4]); // length, set by finish()
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        buf.extend_from_slice(&[0; 8]); // sequence, set by finish(); port id 0
        buf.extend_from_slice(&[family, 0]); // nfgenmsg: family, version 0
        buf.extend_from_slice(&res_id.to_be_bytes());
        Self {
            buf,
            nests: Vec::new(),
        }
    }

    /// An attribute with a raw payload.
    ///
    /// # Panics
    /// When the attribute is 64 KiB or longer (netlink's limit).
    pub fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = u16::try_from(4 + data.len()).expect("attribute fits in 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
        self
    }

    /// A 32-bit attribute in network byte order (no flag, as nf_tables wants it).
    pub fn attr_be32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.attr(kind, &value.to_be_bytes())
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, kind: u16, text: &str) -> &mut Self {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
        self.attr(kind, &bytes)
    }

    /// Opens a nested attribute; [`end`](Self::end) closes it.
    pub fn begin(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Closes the innermost nested attribute.
    ///
    /// # Panics
    /// When no nest is open, or the nest is 64 KiB or longer.
    pub fn end(&mut self) -> &mut Self {
        let start = self.nests.pop().expect("a nest is open");
        let len = u16::try_from(self.buf.len() - start).expect("nest fits in 64 KiB");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing but the headers is there.
    pub fn is_empty(&self) -> bool {
        self.buf.len() <= 20
    }

    /// Sets the length and sequence number; the message as sent.
    ///
    /// # Panics
    /// When a nest is still open or the message is 4 GiB or longer.
    pub fn finish(&mut self, seq: u32) -> &[u8] {
        assert!(self.nests.is_empty(), "every nest is closed");
        let len = u32::try_from(self.buf.len()).expect("message under 4 GiB");
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// Messages framed as one nfnetlink transaction: `NFNL_MSG_BATCH_BEGIN`, the messages with
/// consecutive sequence numbers, `NFNL_MSG_BATCH_END`. The kernel applies all of it or none.
#[derive(Debug, Clone)]
pub struct Batch {
    buf: Vec<u8>,
    res_id: u16,
    first_seq: u32,
    next_seq: u32,
}

impl Batch {
    /// A batch for subsystem `res_id` (`NFNL_SUBSYS_NFTABLES`), numbered from `first_seq`.
    pub fn new(res_id: u16, first_seq: u32) -> Self {
        let mut batch = Self {
            buf: Vec::with_capacity(1 << 16),
            res_id,
            first_seq,
            next_seq: first_seq,
        };
        batch.push(&mut Message::new(NFNL_MSG_BATCH_BEGIN, 0, 0, res_id));
        batch
    }

    /// Appends a message; returns its sequence number.
    pub fn push(&mut self, msg: &mut Message) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.buf.extend_from_slice(msg.finish(seq));
        seq
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether only the opening message is there.
    pub fn is_empty(&self) -> bool {
        self.next_seq.wrapping_sub(self.first_seq) <= 1
    }

    /// Closes the batch: the bytes to send, and the sequence numbers it used (the begin
    /// and end messages included).
    pub fn finish(mut self) -> (Vec<u8>, std::ops::Range<u32>) {
        let res_id = self.res_id;
        self.push(&mut Message::new(NFNL_MSG_BATCH_END, 0, 0, res_id));
        (self.buf, self.first_seq..self.next_seq)
    }
}

/// Attributes of one level of a netlink message: (type without flags, payload). Stops at
/// the first attribute whose length does not fit, so no input panics.
pub fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let kind = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            return None;
        }
        let payload = &data[4..len];
        data = &data[len.next_multiple_of(4).min(data.len())..];
        Some((kind, payload))
    })
}

/// Netlink messages in a received buffer: (type, sequence number, body after the 16-byte
/// header). Stops at the first message whose length does not fit, so no input panics.
pub fn messages(mut data: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        let header = data.get(..16)?;
        let len = u32::from_ne_bytes(header[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes([header[4], header[5]]);
        let seq = u32::from_ne_bytes(header[8..12].try_into().ok()?);
        let body = data.get(16..len)?;
        data = data.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, seq, body))
    })
}

/// The error number of an `NLMSG_ERROR` body (0: an acknowledgement), if it has one.
pub fn error_code(body: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(body.get(..4)?.try_into().ok()?))
}

/// A big-endian `u32` payload, if it is one.
pub fn be32(payload: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(payload.get(..4)?.try_into().ok()?))
}

/// A big-endian `u64` payload, if it is one.
pub fn be64(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}

/// A `NETLINK_NETFILTER` socket opened in a namespace.
pub struct Socket {
    socket: netlink_sys::Socket,
    rx: Vec<u8>,
}

impl Socket {
    /// Opens, binds and connects a socket inside `netns` (it stays in that namespace).
    ///
    /// # Errors
    /// [`Error::Io`] when the namespace or the socket cannot be opened.
    pub fn open(netns: &NetNs) -> Result<Self> {
        let socket = netns
            .run(|| {
                let mut socket = netlink_sys::Socket::new(NETLINK_NETFILTER)?;
                socket.bind_auto()?;
                socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
                Ok::<_, std::io::Error>(socket)
            })?
            .map_err(|e| Error::io("open nfnetlink socket", e))?;
        // Best effort: the kernel's reason in error replies when it gives one.
        let _ = socket.set_ext_ack(true);
        Ok(Self {
            socket,
            rx: Vec::with_capacity(1 << 17),
        })
    }

    /// Makes error replies carry only the failing message's header, not a copy of it (which
    /// for a message of a large batch would be most of a megabyte).
    ///
    /// # Errors
    /// [`Error::Io`] when the kernel refuses.
    pub fn set_short_errors(&mut self) -> Result<()> {
        self.socket
            .set_cap_ack(true)
            .map_err(|e| Error::io("setting NETLINK_CAP_ACK", e))
    }

    /// Raises the send buffer to `bytes` (past `wmem_max` with `CAP_NET_ADMIN`), so that one
    /// `sendmsg` can carry a large batch.
    ///
    /// # Errors
    /// [`Error::Io`] when the kernel refuses.
    pub fn set_send_buffer(&mut self, bytes: usize) -> Result<()> {
        use nix::sys::socket::{setsockopt, sockopt};
        setsockopt(&self.socket, sockopt::SndBufForce, &bytes)
            .or_else(|_| setsockopt(&self.socket, sockopt::SndBuf, &bytes))
            .map_err(|e| {
                Error::io(
                    format!("raising the netlink send buffer to {bytes}"),
                    e.into(),
                )
            })
    }

    /// Raises the receive buffer to `bytes`, so that the replies to a batch fit.
    ///
    /// # Errors
    /// [`Error::Io`] when the kernel refuses.
    pub fn set_receive_buffer(&mut self, bytes: usize) -> Result<()> {
        use nix::sys::socket::{setsockopt, sockopt};
        setsockopt(&self.socket, sockopt::RcvBufForce, &bytes)
            .or_else(|_| setsockopt(&self.socket, sockopt::RcvBuf, &bytes))
            .map_err(|e| {
                Error::io(
                    format!("raising the netlink receive buffer to {bytes}"),
                    e.into(),
                )
            })
    }

    /// Sends bytes (one message or a whole batch) in one `sendmsg`.
    ///
    /// # Errors
    /// [`Error::Io`] when the send fails.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.socket
            .send(bytes, 0)
            .map(|_| ())
            .map_err(|e| Error::io(format!("sending {} bytes of nfnetlink", bytes.len()), e))
    }

    /// Waits for the next datagram of replies; read it with [`messages`].
    ///
    /// # Errors
    /// [`Error::Io`] when the receive fails.
    pub fn receive(&mut self) -> Result<&[u8]> {
        self.rx.clear();
        self.socket
            .recv(&mut self.rx, 0)
            .map_err(|e| Error::io("receiving nfnetlink replies", e))?;
        Ok(&self.rx)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A netlink message: header (length, type, flags, seq, port) and body.
    fn message(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let len = u32::try_from(16 + body.len()).unwrap();
        let mut m = len.to_ne_bytes().to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    #[test]
    fn replies_are_split_into_messages_and_errors() {
        let mut rx = message(NLMSG_ERROR, 7, &(-17i32).to_ne_bytes());
        rx.extend(message(NLMSG_DONE, 8, &[1, 2, 3]));
        let got: Vec<_> = messages(&rx).collect();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].1), (NLMSG_ERROR, 7));
        assert_eq!(error_code(got[0].2), Some(-17));
        assert_eq!(
            (got[1].0, got[1].1, got[1].2),
            (NLMSG_DONE, 8, &[1, 2, 3][..])
        );
    }

    #[test]
    fn a_batch_is_framed_and_numbered() {
        let mut batch = Batch::new(10, 100);
        let mut msg = Message::new(10 << 8, NLM_F_CREATE, 1, 0);
        msg.attr_str(1, "egb-x");
        assert_eq!(batch.push(&mut msg), 101);
        let (bytes, seqs) = batch.finish();
        assert_eq!(seqs, 100..103);
        let got: Vec<_> = messages(&bytes).collect();
        let kinds: Vec<u16> = got.iter().map(|m| m.0).collect();
        assert_eq!(kinds, [NFNL_MSG_BATCH_BEGIN, 10 << 8, NFNL_MSG_BATCH_END]);
        // The batch messages name the subsystem in nfgenmsg's res_id, big-endian.
        assert_eq!(got[0].2, &[0, 0, 0, 10]);
        let attrs: Vec<_> = attributes(&got[1].2[4..]).collect();
        assert_eq!(attrs, [(1, &b"egb-x\0"[..])]);
    }

    #[test]
    fn nested_attributes_carry_their_length_and_flag() {
        let mut msg = Message::new(1, 0, 2, 0);
        msg.begin(3).attr_be32(1, 7).end();
        let bytes = msg.finish(1).to_vec();
        let body = &bytes[20..];
        assert_eq!(u16::from_ne_bytes([body[0], body[1]]), 12);
        assert_eq!(u16::from_ne_bytes([body[2], body[3]]), 3 | NLA_F_NESTED);
        let (kind, inner) = attributes(body).next().unwrap();
        assert_eq!(kind, 3);
        assert_eq!(attributes(inner).next(), Some((1, &[0, 0, 0, 7][..])));
    }

    proptest! {
        #[test]
        fn parsing_random_and_truncated_replies_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
            cut in 0usize..512,
        ) {
            let cut = cut.min(bytes.len());
            for data in [&bytes[..], &bytes[..cut]] {
                for (_, _, body) in messages(data) {
                    let _ = error_code(body);
                    for (_, payload) in attributes(body) {
                        let _ = (be32(payload), be64(payload));
                    }
                }
            }
        }
    }
}
