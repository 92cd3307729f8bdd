//! Loading a chain of IPv4 DROP rules into the legacy x_tables `filter` table directly: read
//! the table blob (`IPT_SO_GET_INFO`, `IPT_SO_GET_ENTRIES`), insert a jump at the top of
//! OUTPUT and a new chain before the table's closing entry, fix every offset that moved, and
//! hand the kernel the new blob in one `IPT_SO_SET_REPLACE` - what `iptables-legacy-restore`
//! does through libiptc, without parsing text or building a chain cache.
//!
//! Layouts: `include/uapi/linux/netfilter_ipv4/ip_tables.h` and `netfilter/x_tables.h`
//! (x86_64 and other LP64 targets).
#![allow(
    unsafe_code,
    reason = "getsockopt/setsockopt with the kernel's x_tables structures"
)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use filter_core::{Error, NetNs, Result};
use ipnet::Ipv4Net;

use crate::error::IptablesError;

const IPT_SO_SET_REPLACE: libc::c_int = 64;
const IPT_SO_GET_INFO: libc::c_int = 64;
const IPT_SO_GET_ENTRIES: libc::c_int = 65;
const NF_INET_NUMHOOKS: usize = 5;
const NF_INET_LOCAL_OUT: usize = 3;
const TABLE: &[u8] = b"filter";

/// `struct ipt_entry` without its matches and target.
const ENTRY: usize = 112;
/// An entry with a standard target (`xt_standard_target`, 40 bytes aligned).
const STANDARD: usize = ENTRY + 40;
/// An entry with an error target (`xt_error_target`, 64 bytes aligned): a chain's head.
const ERROR: usize = ENTRY + 64;
/// `struct ipt_getinfo`.
const GETINFO: usize = 84;
/// `struct ipt_get_entries` before the entries (36 bytes, aligned to 8).
const GET_ENTRIES: usize = 40;
/// `struct ipt_replace` before the entries.
const REPLACE: usize = 96;

/// The largest table blob the kernel takes (`XT_MAX_TABLE_SIZE` in net/netfilter/x_tables.c):
/// `xt_alloc_table_info` refuses anything at or above it, whatever memory is free.
pub const XT_MAX_TABLE_SIZE: u64 = 512 << 20;
/// Bytes one IPv4 DROP rule takes in the blob.
pub const RULE_BYTES_V4: u64 = STANDARD as u64;
/// Bytes one IPv6 DROP rule takes in the blob (`struct ip6t_entry`, 168 bytes, and a
/// standard target).
pub const RULE_BYTES_V6: u64 = 168 + 40;

/// Refuses `rules` DROP rules of one family before anything is built when their blob alone
/// would reach the kernel's `XT_MAX_TABLE_SIZE`.
pub fn check_blob_size(rules: usize, bytes_per_rule: u64, family: &'static str) -> Result<()> {
    let bytes = rules as u64 * bytes_per_rule;
    if bytes >= XT_MAX_TABLE_SIZE {
        return Err(IptablesError::BlobTooLarge {
            rules,
            family,
            bytes_per_rule,
            bytes,
        }
        .into());
    }
    Ok(())
}

const VERDICT_DROP: i32 = -1; // -NF_DROP - 1
const VERDICT_RETURN: i32 = -5; // -NF_REPEAT - 1

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

fn malformed(at: usize, why: &'static str) -> Error {
    IptablesError::Malformed { at, why }.into()
}

/// Offsets of the entries of a table blob, each checked to lie whole inside it with its
/// target inside the entry (a standard target's verdict included), so that reading and
/// rewriting them cannot go out of bounds.
fn entry_offsets(blob: &[u8]) -> Result<Vec<usize>> {
    /// `struct ipt_entry` without its matches and target.
    const ENTRY_HEAD: usize = 112;
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < blob.len() {
        if at + ENTRY_HEAD > blob.len() {
            return Err(malformed(at, "shorter than an entry header"));
        }
        let target = usize::from(u16_at(blob, at + 88));
        let next = usize::from(u16_at(blob, at + 90));
        if next < ENTRY_HEAD || at + next > blob.len() {
            return Err(malformed(at, "its length runs past the table"));
        }
        // A target header is 32 bytes; a standard target (empty name) adds its verdict.
        let standard = blob.get(at + target + 2) == Some(&0);
        let needed = if standard { 36 } else { 32 };
        if target < ENTRY_HEAD || target + needed > next {
            return Err(malformed(at, "its target lies outside it"));
        }
        offsets.push(at);
        at += next;
    }
    Ok(offsets)
}

fn sockopt_error(what: &str) -> Error {
    let e = io::Error::last_os_error();
    IptablesError::Refused(filter_core::Refusal {
        operation: format!("{what} on the legacy iptables filter table"),
        code: e.raw_os_error().unwrap_or(0),
        message: e.to_string(),
    })
    .into()
}

/// A raw IPv4 socket in the namespace: the handle x_tables' socket options need.
fn raw_socket(netns: &NetNs) -> Result<OwnedFd> {
    netns
        .run(|| {
            // SAFETY: plain socket(2); the descriptor is owned from here on.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                // SAFETY: fd is a fresh descriptor nobody else owns.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        })?
        .map_err(|e| Error::io("raw socket for x_tables", e))
}

fn getsockopt(fd: &OwnedFd, opt: libc::c_int, buf: &mut [u8], what: &str) -> Result<()> {
    let mut len = libc::socklen_t::try_from(buf.len()).map_err(|_| IptablesError::TooBig {
        what: "blob size",
        requested: buf.len() as u64,
    })?;
    // SAFETY: buf is valid for len bytes; the kernel writes at most len bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            opt,
            buf.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    if r < 0 {
        Err(sockopt_error(what))
    } else {
        Ok(())
    }
}

fn name_field(name: &[u8], len: usize) -> Vec<u8> {
    let mut field = vec![0u8; len];
    field[..name.len()].copy_from_slice(name);
    field
}

fn standard_entry(out: &mut Vec<u8>, dst: Option<Ipv4Net>, verdict: i32) {
    let start = out.len();
    out.resize(start + STANDARD, 0);
    let e = &mut out[start..];
    if let Some(net) = dst {
        e[4..8].copy_from_slice(&net.network().octets()); // ip.dst
        e[12..16].copy_from_slice(&net.netmask().octets()); // ip.dmsk
    }
    e[88..90].copy_from_slice(&(ENTRY as u16).to_ne_bytes()); // target_offset
    e[90..92].copy_from_slice(&(STANDARD as u16).to_ne_bytes()); // next_offset
    e[ENTRY..ENTRY + 2].copy_from_slice(&40u16.to_ne_bytes()); // target_size; name "" = standard
    e[ENTRY + 32..ENTRY + 36].copy_from_slice(&verdict.to_ne_bytes());
}

fn error_entry(out: &mut Vec<u8>, chain: &str) {
    let start = out.len();
    out.resize(start + ERROR, 0);
    let e = &mut out[start..];
    e[88..90].copy_from_slice(&(ENTRY as u16).to_ne_bytes());
    e[90..92].copy_from_slice(&(ERROR as u16).to_ne_bytes());
    e[ENTRY..ENTRY + 2].copy_from_slice(&64u16.to_ne_bytes());
    e[ENTRY + 2..ENTRY + 7].copy_from_slice(b"ERROR");
    e[ENTRY + 32..ENTRY + 32 + chain.len()].copy_from_slice(chain.as_bytes());
}

/// Adds chain `chain` with one DROP rule per network, jumped to from the top of OUTPUT, in
/// one table replacement. The chain must not exist.
pub fn load_chain(netns: &NetNs, chain: &str, nets: &[Ipv4Net]) -> Result<()> {
    if chain.len() > 28 {
        return Err(IptablesError::ChainName(chain.to_owned()).into());
    }
    // The lock iptables-legacy takes around every change, so that no other tool interleaves.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/xtables.lock")
        .map_err(|e| Error::io("opening /run/xtables.lock", e))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io("locking /run/xtables.lock", e.into()))?;
    let fd = raw_socket(netns)?;
    let mut info = name_field(TABLE, GETINFO);
    getsockopt(&fd, IPT_SO_GET_INFO, &mut info, "IPT_SO_GET_INFO")?;
    let valid_hooks = u32_at(&info, 32);
    let hook_entry: Vec<u32> = (0..NF_INET_NUMHOOKS)
        .map(|h| u32_at(&info, 36 + 4 * h))
        .collect();
    let underflow: Vec<u32> = (0..NF_INET_NUMHOOKS)
        .map(|h| u32_at(&info, 56 + 4 * h))
        .collect();
    let old_entries = u32_at(&info, 76);
    let old_size = u32_at(&info, 80) as usize;
    if valid_hooks & (1 << NF_INET_LOCAL_OUT) == 0 {
        return Err(IptablesError::NoOutputHook.into());
    }
    let mut get = name_field(TABLE, GET_ENTRIES + old_size);
    get[32..36].copy_from_slice(&(old_size as u32).to_ne_bytes());
    getsockopt(&fd, IPT_SO_GET_ENTRIES, &mut get, "IPT_SO_GET_ENTRIES")?;
    let old = &get[GET_ENTRIES..];

    if u32_at(&get, 32) as usize != old_size {
        return Err(IptablesError::TableChanged.into());
    }
    // The last entry is the table's closing ERROR entry: our chain goes just before it.
    let offsets = entry_offsets(old)?;
    let closing = *offsets.last().ok_or_else(|| malformed(0, "no entries"))?;
    let output = hook_entry[NF_INET_LOCAL_OUT] as usize;
    if offsets.binary_search(&output).is_err() || output > closing {
        return Err(malformed(
            output,
            "the OUTPUT hook does not start at an entry",
        ));
    }
    let chain_len = ERROR + nets.len() * STANDARD + STANDARD;
    let moved = |o: usize| -> usize {
        if o < output {
            o
        } else if o < closing {
            o + STANDARD
        } else {
            o + STANDARD + chain_len
        }
    };
    let new_size = old_size + STANDARD + chain_len;
    check_blob_size(new_size / STANDARD + 1, STANDARD as u64, "IPv4")?;
    let mut blob = Vec::with_capacity(REPLACE + new_size);
    blob.extend_from_slice(&name_field(TABLE, 32));
    blob.extend_from_slice(&valid_hooks.to_ne_bytes());
    let entries = old_entries as usize + 3 + nets.len();
    let too_big = |n: usize| IptablesError::TooBig {
        what: "rule count",
        requested: n as u64,
    };
    blob.extend_from_slice(
        &u32::try_from(entries)
            .map_err(|_| too_big(entries))?
            .to_ne_bytes(),
    );
    blob.extend_from_slice(
        &u32::try_from(new_size)
            .map_err(|_| too_big(new_size))?
            .to_ne_bytes(),
    );
    for (h, &o) in hook_entry.iter().enumerate() {
        let o = o as usize;
        // OUTPUT still starts where it did: at our jump.
        let new = if h == NF_INET_LOCAL_OUT { o } else { moved(o) };
        blob.extend_from_slice(&(new as u32).to_ne_bytes());
    }
    for &o in &underflow {
        blob.extend_from_slice(&(moved(o as usize) as u32).to_ne_bytes());
    }
    blob.extend_from_slice(&old_entries.to_ne_bytes());
    let mut counters = vec![0u8; old_entries as usize * 16];
    blob.extend_from_slice(&(counters.as_mut_ptr() as u64).to_ne_bytes());
    debug_assert_eq!(blob.len(), REPLACE);

    let head = moved(closing) - chain_len; // where our chain's ERROR entry lands
    let copy_moved = |blob: &mut Vec<u8>, range: std::ops::Range<usize>| {
        let base = blob.len();
        blob.extend_from_slice(&old[range.clone()]);
        // Jumps and gotos are standard targets with a non-negative verdict: a blob offset.
        for &o in offsets.iter().filter(|&&o| range.contains(&o)) {
            let e = base + (o - range.start);
            let target = e + usize::from(u16_at(blob, e + 88));
            // In bounds: entry_offsets checked every entry and its target.
            let is_standard = blob[target + 2] == 0;
            let verdict =
                i32::from_ne_bytes(blob[target + 32..target + 36].try_into().expect("4 bytes"));
            if is_standard && verdict >= 0 {
                let fixed = moved(verdict as usize) as i32;
                blob[target + 32..target + 36].copy_from_slice(&fixed.to_ne_bytes());
            }
        }
    };
    copy_moved(&mut blob, 0..output);
    standard_entry(
        &mut blob,
        None,
        i32::try_from(head + ERROR).map_err(|_| too_big(head))?,
    );
    copy_moved(&mut blob, output..closing);
    error_entry(&mut blob, chain);
    for net in nets {
        standard_entry(&mut blob, Some(*net), VERDICT_DROP);
    }
    standard_entry(&mut blob, None, VERDICT_RETURN);
    copy_moved(&mut blob, closing..old_size);
    debug_assert_eq!(blob.len(), REPLACE + new_size);

    let len = libc::socklen_t::try_from(blob.len()).map_err(|_| too_big(blob.len()))?;
    // SAFETY: blob holds an ipt_replace header followed by `size` bytes of entries; the
    // counters pointer refers to `counters`, alive and num_counters * 16 bytes long, which the
    // kernel fills with the old table's counters.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            IPT_SO_SET_REPLACE,
            blob.as_ptr().cast(),
            len,
        )
    };
    drop(counters);
    if r < 0 {
        Err(sockopt_error("IPT_SO_SET_REPLACE"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A chain as this module writes it: its ERROR head, two DROP rules and a RETURN.
    fn chain_blob() -> Vec<u8> {
        let mut blob = Vec::new();
        error_entry(&mut blob, "egb-test");
        for net in ["203.0.113.0/24", "198.51.100.7/32"] {
            standard_entry(&mut blob, Some(net.parse().unwrap()), VERDICT_DROP);
        }
        standard_entry(&mut blob, None, VERDICT_RETURN);
        blob
    }

    #[test]
    fn entries_written_here_are_read_back() {
        let blob = chain_blob();
        assert_eq!(
            entry_offsets(&blob).unwrap(),
            [0, ERROR, ERROR + STANDARD, ERROR + 2 * STANDARD]
        );
        assert_eq!(blob.len(), ERROR + 3 * STANDARD);
        // The DROP rule's fields where the kernel reads them (struct ipt_ip: src, dst,
        // smsk, dmsk).
        let rule = ERROR;
        assert_eq!(&blob[rule + 4..rule + 8], &[203, 0, 113, 0]);
        assert_eq!(&blob[rule + 12..rule + 16], &[255, 255, 255, 0]);
        assert_eq!(u16_at(&blob, rule + 88) as usize, ENTRY);
        assert_eq!(u16_at(&blob, rule + 90) as usize, STANDARD);
        assert_eq!(
            i32::from_ne_bytes(
                blob[rule + ENTRY + 32..rule + ENTRY + 36]
                    .try_into()
                    .unwrap()
            ),
            VERDICT_DROP
        );
    }

    #[test]
    fn truncated_or_corrupt_blobs_are_refused() {
        let blob = chain_blob();
        assert!(entry_offsets(&blob[..blob.len() - 1]).is_err());
        let mut zero_next = blob.clone();
        zero_next[90..92].copy_from_slice(&0u16.to_ne_bytes());
        assert!(
            entry_offsets(&zero_next).is_err(),
            "a zero length would loop"
        );
        let mut far_target = blob;
        far_target[ERROR + 88..ERROR + 90].copy_from_slice(&(STANDARD as u16).to_ne_bytes());
        assert!(entry_offsets(&far_target).is_err());
    }

    proptest! {
        /// Random and truncated bytes never panic; what is accepted lies inside the blob.
        #[test]
        fn random_blobs_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..1024),
            cut in 0usize..(ERROR + 3 * STANDARD),
            keep_valid in any::<bool>(),
        ) {
            let bytes = if keep_valid {
                let blob = chain_blob();
                blob[..cut.min(blob.len())].to_vec()
            } else {
                bytes
            };
            if let Ok(offsets) = entry_offsets(&bytes) {
                for &at in &offsets {
                    let next = usize::from(u16_at(&bytes, at + 90));
                    prop_assert!(at + next <= bytes.len());
                }
            }
        }
    }
}
