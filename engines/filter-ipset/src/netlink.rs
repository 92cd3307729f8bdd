//! The ipset protocol over nfnetlink, spoken directly: the messages `ipset restore` sends,
//! with thousands of entries per message, and nothing else.
//!
//! Message layout (`include/uapi/linux/netfilter/ipset/ip_set.h`): a netlink header, an
//! `nfgenmsg`, then attributes; an add or delete carries an `IPSET_ATTR_ADT` nest of
//! `IPSET_ATTR_DATA` nests, one per entry.

use filter_core::{Error, Family, NetNs, Result};
use ipnet::{Ipv4Net, Ipv6Net};
use nfnetlink::{
    Message, NLA_F_NET_BYTEORDER, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLMSG_DONE,
    NLMSG_ERROR, Socket, attributes, be32, error_code, messages,
};

use crate::IpsetError;

const NFNL_SUBSYS_IPSET: u16 = 6;

const IPSET_PROTOCOL: u8 = 7;
const IPSET_CMD_CREATE: u8 = 2;
const IPSET_CMD_DESTROY: u8 = 3;
const IPSET_CMD_SWAP: u8 = 6;
const IPSET_CMD_LIST: u8 = 7;
const IPSET_CMD_ADD: u8 = 9;
const IPSET_CMD_DEL: u8 = 10;

const IPSET_ATTR_PROTOCOL: u16 = 1;
const IPSET_ATTR_SETNAME: u16 = 2;
const IPSET_ATTR_TYPENAME: u16 = 3;
const IPSET_ATTR_SETNAME2: u16 = 3;
const IPSET_ATTR_REVISION: u16 = 4;
const IPSET_ATTR_FAMILY: u16 = 5;
const IPSET_ATTR_FLAGS: u16 = 6;
const IPSET_ATTR_DATA: u16 = 7;
const IPSET_ATTR_ADT: u16 = 8;
const IPSET_ATTR_LINENO: u16 = 9;
const IPSET_ATTR_IP: u16 = 1;
const IPSET_ATTR_CIDR: u16 = 3;
const IPSET_ATTR_TIMEOUT: u16 = 6;
const IPSET_ATTR_HASHSIZE: u16 = 18;
const IPSET_ATTR_MAXELEM: u16 = 19;
const IPSET_ATTR_ELEMENTS: u16 = 24;
const IPSET_ATTR_MEMSIZE: u16 = 26;
const IPSET_ATTR_IPADDR_IPV4: u16 = 1;
const IPSET_ATTR_IPADDR_IPV6: u16 = 2;
const IPSET_FLAG_LIST_HEADER: u32 = 1 << 2;

const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// Largest message sent: well inside the default socket buffers, big enough that the
/// per-message cost disappears (about 1,500 IPv4 entries).
const MESSAGE_BYTES: usize = 48 * 1024;

/// Newest hash:net revision first; older kernels are asked for older ones.
const HASH_NET_REVISIONS: std::ops::RangeInclusive<u8> = 0..=7;

fn nfproto(family: Family) -> u8 {
    match family {
        Family::V4 => NFPROTO_IPV4,
        Family::V6 => NFPROTO_IPV6,
    }
}

/// An ipset error code in words (`ipset_errno` and the hash types' codes).
fn describe(code: i32) -> String {
    let text = match code {
        4097 => "protocol error (kernel and tool disagree on the ipset protocol)",
        4098 => "set type or revision not supported by this kernel",
        4099 => "the kernel's maximum number of sets is reached",
        4100 => "set busy",
        4101 => "the second set of a swap does not exist",
        4102 => "sets of different types or families cannot be swapped",
        4103 => "set or element already exists",
        4104 => "invalid CIDR prefix length",
        4105 => "invalid netmask",
        4106 => "address family does not match the set",
        4108 => "set is referenced by a rule and cannot be destroyed",
        4109 => "invalid IPv4 address",
        4110 => "invalid IPv6 address",
        4352 => "Hash is full, cannot add more elements (the set's maxelem is reached)",
        4353 => "null-valued element",
        _ => return std::io::Error::from_raw_os_error(code).to_string(),
    };
    text.to_owned()
}

/// An ipset request: `kind` with the protocol version attribute every request carries.
fn request(cmd: u8, family: Family, flags: u16) -> Message {
    let mut msg = Message::new(
        NFNL_SUBSYS_IPSET << 8 | u16::from(cmd),
        flags,
        nfproto(family),
        0,
    );
    msg.attr(IPSET_ATTR_PROTOCOL, &[IPSET_PROTOCOL]);
    msg
}

/// A 32-bit attribute as ipset wants it: network byte order, flagged so.
fn attr_be32(msg: &mut Message, kind: u16, value: u32) {
    msg.attr(kind | NLA_F_NET_BYTEORDER, &value.to_be_bytes());
}

/// One entry of an add or delete: address, prefix length and line number.
/// One entry of an add or delete: address, prefix length, seconds to live (sets made with
/// timeouts) and line number.
fn entry(msg: &mut Message, addr: &[u8], prefix_len: u8, timeout: Option<u32>, lineno: u32) {
    msg.begin(IPSET_ATTR_DATA);
    msg.begin(IPSET_ATTR_IP);
    let kind = if addr.len() == 4 {
        IPSET_ATTR_IPADDR_IPV4
    } else {
        IPSET_ATTR_IPADDR_IPV6
    };
    msg.attr(kind | NLA_F_NET_BYTEORDER, addr);
    msg.end();
    msg.attr(IPSET_ATTR_CIDR, &[prefix_len]);
    if let Some(seconds) = timeout {
        attr_be32(msg, IPSET_ATTR_TIMEOUT, seconds);
    }
    attr_be32(msg, IPSET_ATTR_LINENO, lineno);
    msg.end();
}

/// A set as the kernel describes it in a header-only listing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SetHeader {
    pub elements: u64,
    pub memsize: u64,
}

/// A kernel refusal, with the entry it was about when the kernel said.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub code: i32,
    /// 0-based index of the entry the kernel refused, for adds and deletes.
    pub entry: Option<usize>,
}

impl Refusal {
    pub(crate) fn into_error(self, operation: String) -> Error {
        IpsetError::Refused(filter_core::Refusal {
            operation,
            code: self.code,
            message: describe(self.code),
        })
        .into()
    }
}

/// A netlink socket opened in the filter's namespace.
pub(crate) struct IpsetSocket {
    socket: Socket,
    seq: u32,
}

impl IpsetSocket {
    pub(crate) fn open(netns: &NetNs) -> Result<Self> {
        Ok(Self {
            socket: Socket::open(netns)?,
            seq: 1,
        })
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, msg: &mut Message) -> std::result::Result<(), Refusal> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let io_refusal = |e: Error| Refusal {
            code: match e {
                Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc_eio()),
                _ => libc_eio(),
            },
            entry: None,
        };
        self.socket.send(msg.finish(seq)).map_err(io_refusal)?;
        loop {
            let replies = self.socket.receive().map_err(io_refusal)?;
            for (kind, reply_seq, body) in messages(replies) {
                if kind != NLMSG_ERROR || reply_seq != seq {
                    continue;
                }
                match error_code(body) {
                    Some(0) => return Ok(()),
                    Some(error) => {
                        return Err(Refusal {
                            code: -error,
                            entry: refused_entry(&body[4..]),
                        });
                    }
                    None => {}
                }
            }
        }
    }

    /// Creates an empty `hash:net` set sized for `maxelem` entries without a resize.
    pub(crate) fn create(
        &mut self,
        name: &str,
        family: Family,
        hashsize: u32,
        maxelem: u32,
        timeouts: bool,
    ) -> Result<()> {
        let mut last = None;
        for revision in HASH_NET_REVISIONS.rev() {
            let mut msg = request(
                IPSET_CMD_CREATE,
                family,
                NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
            );
            msg.attr_str(IPSET_ATTR_SETNAME, name);
            msg.attr_str(IPSET_ATTR_TYPENAME, "hash:net");
            msg.attr(IPSET_ATTR_REVISION, &[revision]);
            msg.attr(IPSET_ATTR_FAMILY, &[nfproto(family)]);
            msg.begin(IPSET_ATTR_DATA);
            attr_be32(&mut msg, IPSET_ATTR_HASHSIZE, hashsize);
            attr_be32(&mut msg, IPSET_ATTR_MAXELEM, maxelem);
            if timeouts {
                // A default of 0: entries stay unless added with a timeout of their own.
                attr_be32(&mut msg, IPSET_ATTR_TIMEOUT, 0);
            }
            msg.end();
            match self.request(&mut msg) {
                Ok(()) => return Ok(()),
                Err(r) if r.code == 4098 => last = Some(r),
                Err(r) => {
                    return Err(r.into_error(format!(
                        "creating set {name} (hash:net hashsize {hashsize} maxelem {maxelem})"
                    )));
                }
            }
        }
        Err(last
            .expect("at least one revision tried")
            .into_error(format!(
                "creating set {name}: no hash:net revision accepted"
            )))
    }

    /// Destroys a set; a missing set is not an error.
    pub(crate) fn destroy(&mut self, name: &str) -> Result<()> {
        let mut msg = request(IPSET_CMD_DESTROY, Family::V4, NLM_F_ACK);
        msg.attr_str(IPSET_ATTR_SETNAME, name);
        match self.request(&mut msg) {
            Ok(()) => Ok(()),
            Err(r) if r.code == 2 => Ok(()), // ENOENT
            Err(r) => Err(r.into_error(format!("destroying set {name}"))),
        }
    }

    /// Swaps the contents of two sets of the same type and family, atomically.
    pub(crate) fn swap(&mut self, a: &str, b: &str) -> Result<()> {
        let mut msg = request(IPSET_CMD_SWAP, Family::V4, NLM_F_ACK);
        msg.attr_str(IPSET_ATTR_SETNAME, a);
        msg.attr_str(IPSET_ATTR_SETNAME2, b);
        self.request(&mut msg)
            .map_err(|r| r.into_error(format!("swapping sets {a} and {b}")))
    }

    /// Adds (or deletes) entries, many per message. Entries already present (or absent,
    /// when deleting) are skipped by the kernel. On a refusal, returns the index of the
    /// refused entry when the kernel names it.
    pub(crate) fn change(
        &mut self,
        name: &str,
        entries: Entries<'_>,
        add: bool,
        timeout: Option<u32>,
        mut progress: impl FnMut(usize),
    ) -> std::result::Result<(), Refusal> {
        let cmd = if add { IPSET_CMD_ADD } else { IPSET_CMD_DEL };
        let family = entries.family();
        let new_message = || {
            let mut msg = request(cmd, family, NLM_F_ACK);
            msg.attr_str(IPSET_ATTR_SETNAME, name);
            // The kernel writes the failing entry's line number here in its error reply.
            attr_be32(&mut msg, IPSET_ATTR_LINENO, 0);
            msg.begin(IPSET_ATTR_ADT);
            msg
        };
        let mut msg = new_message();
        let mut pending = 0;
        let send = |msg: &mut Message, this: &mut Self| {
            msg.end();
            this.request(msg)
        };
        for index in 0..entries.len() {
            let lineno = u32::try_from(index + 1).unwrap_or(u32::MAX);
            match entries {
                Entries::V4(nets) => entry(
                    &mut msg,
                    &nets[index].addr().octets(),
                    nets[index].prefix_len(),
                    timeout,
                    lineno,
                ),
                Entries::V6(nets) => entry(
                    &mut msg,
                    &nets[index].addr().octets(),
                    nets[index].prefix_len(),
                    timeout,
                    lineno,
                ),
            }
            pending += 1;
            if msg.len() >= MESSAGE_BYTES {
                send(&mut msg, self)?;
                progress(pending);
                pending = 0;
                msg = new_message();
            }
        }
        if pending > 0 {
            send(&mut msg, self)?;
            progress(pending);
        }
        Ok(())
    }

    /// Element count and memory of a set, from a header-only listing.
    pub(crate) fn header(&mut self, name: &str) -> Result<SetHeader> {
        let mut msg = request(IPSET_CMD_LIST, Family::V4, NLM_F_DUMP);
        msg.attr_str(IPSET_ATTR_SETNAME, name);
        attr_be32(&mut msg, IPSET_ATTR_FLAGS, IPSET_FLAG_LIST_HEADER);
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let operation = || format!("listing set {name}");
        self.socket.send(msg.finish(seq))?;
        let mut header = SetHeader::default();
        loop {
            for (kind, _, body) in messages(self.socket.receive()?) {
                match kind {
                    NLMSG_DONE => return Ok(header),
                    NLMSG_ERROR => {
                        let error = error_code(body).unwrap_or(-libc_eio());
                        if error != 0 {
                            return Err(Refusal {
                                code: -error,
                                entry: None,
                            }
                            .into_error(operation()));
                        }
                    }
                    _ if body.len() > 4 => {
                        for (attr, payload) in attributes(&body[4..]) {
                            if attr != IPSET_ATTR_DATA {
                                continue;
                            }
                            for (inner, value) in attributes(payload) {
                                match inner {
                                    IPSET_ATTR_ELEMENTS => {
                                        header.elements = be32(value).map_or(0, u64::from)
                                    }
                                    IPSET_ATTR_MEMSIZE => {
                                        header.memsize = be32(value).map_or(0, u64::from)
                                    }
                                    _ => {}
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The entry index carried back in an ipset error reply (a copy of the request, whose
/// top-level `IPSET_ATTR_LINENO` the kernel set to the refused entry's line number).
fn refused_entry(copy: &[u8]) -> Option<usize> {
    let attrs = copy.get(16 + 4..)?;
    attributes(attrs)
        .find(|&(kind, _)| kind == IPSET_ATTR_LINENO)
        .and_then(|(_, v)| be32(v))
        .filter(|&line| line > 0)
        .map(|line| line as usize - 1)
}

fn libc_eio() -> i32 {
    5
}

/// Entries of one family, borrowed from a list.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Entries<'a> {
    V4(&'a [Ipv4Net]),
    V6(&'a [Ipv6Net]),
}

impl Entries<'_> {
    pub(crate) fn family(self) -> Family {
        match self {
            Entries::V4(_) => Family::V4,
            Entries::V6(_) => Family::V6,
        }
    }

    pub(crate) fn len(self) -> usize {
        match self {
            Entries::V4(n) => n.len(),
            Entries::V6(n) => n.len(),
        }
    }

    /// The entries a set would hold, for checking against `maxelem`: the count, or when a
    /// fixed `maxelem` is below it, the distinct entries (the kernel keeps one of duplicates).
    pub(crate) fn counted_for(self, maxelem: Option<u32>) -> usize {
        match maxelem {
            Some(max) if self.len() > max as usize => match self {
                Entries::V4(n) => distinct(n),
                Entries::V6(n) => distinct(n),
            },
            _ => self.len(),
        }
    }

    /// Entry `index` as text, for error messages.
    pub(crate) fn describe(self, index: usize) -> String {
        match self {
            Entries::V4(n) => n.get(index).map(ToString::to_string),
            Entries::V6(n) => n.get(index).map(ToString::to_string),
        }
        .unwrap_or_else(|| format!("entry {index}"))
    }
}

fn distinct<T: Ord + Copy>(items: &[T]) -> usize {
    let mut sorted = items.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.len()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the kernel (or a corrupted buffer) hands back as an error reply, finding
        /// the refused entry never panics and never reads past the buffer.
        #[test]
        fn reading_the_refused_entry_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            cut in 0usize..512,
        ) {
            let bytes = &bytes[..cut.min(bytes.len())];
            let _ = refused_entry(bytes);
            for (_, _, body) in messages(bytes) {
                let _ = refused_entry(body);
            }
        }
    }

    #[test]
    fn add_message_matches_ipset_restore_layout() {
        // Captured with strace from `ipset restore` (ipset 7.17): add t 1.2.3.0/24.
        let mut msg = request(IPSET_CMD_ADD, Family::V4, NLM_F_ACK);
        msg.attr_str(IPSET_ATTR_SETNAME, "t");
        msg.begin(IPSET_ATTR_ADT);
        entry(&mut msg, &Ipv4Addr::new(1, 2, 3, 0).octets(), 24, None, 2);
        msg.end();
        let bytes = msg.finish(7).to_vec();
        let adt = &bytes[16 + 4 + 8 + 8..];
        assert_eq!(
            adt,
            b"\x24\x00\x08\x80\x20\x00\x07\x80\x0c\x00\x01\x80\x08\x00\x01\x40\x01\x02\x03\x00\
              \x05\x00\x03\x00\x18\x00\x00\x00\x08\x00\x09\x40\x00\x00\x00\x02"
        );
        assert_eq!(
            u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
    }

    #[test]
    fn v6_entry_and_attribute_parsing() {
        let mut msg = request(IPSET_CMD_ADD, Family::V6, NLM_F_ACK);
        attr_be32(&mut msg, IPSET_ATTR_LINENO, 42);
        entry(&mut msg, &Ipv6Addr::LOCALHOST.octets(), 128, None, 1);
        let bytes = msg.finish(1).to_vec();
        assert_eq!(bytes[16], NFPROTO_IPV6);
        assert_eq!(refused_entry(&bytes), Some(41));
        let kinds: Vec<u16> = attributes(&bytes[20..]).map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            [IPSET_ATTR_PROTOCOL, IPSET_ATTR_LINENO, IPSET_ATTR_DATA]
        );
    }
}
