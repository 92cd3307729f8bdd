//! The constant-time table's IPv6 side for lists with few distinct prefix lengths (real v6
//! lists: mostly /32, /48, /64, /128): one hash map keyed by (masked address, length), looked
//! up once per length. Lists with more lengths stay in the LPM trie.

use std::os::fd::AsFd;

use filter_core::Result;
use filter_tcbpf_common::{V6_KEY_BYTES, V6_MAX_LENGTHS};
use ipnet::Ipv6Net;

use crate::error::{TcbpfError, kernel};
use crate::fill::BATCH;
use crate::sys;

/// A hash key: the network address, then the prefix length, then zeros.
pub(crate) type HashKey = [u8; V6_KEY_BYTES];

/// The prefix lengths to look up, most populous first, if the list has between one and
/// [`V6_MAX_LENGTHS`] of them (else the trie is the better table).
pub(crate) fn lengths(nets: &[Ipv6Net]) -> Option<Vec<u8>> {
    let mut counts = [0u64; 129];
    for net in nets {
        counts[usize::from(net.prefix_len())] += 1;
    }
    let mut used: Vec<u8> = (0..=128u8)
        .filter(|&l| counts[usize::from(l)] > 0)
        .collect();
    if used.is_empty() || used.len() > V6_MAX_LENGTHS {
        return None;
    }
    used.sort_by_key(|&l| std::cmp::Reverse(counts[usize::from(l)]));
    Some(used)
}

/// The lengths as the program's global, and their number.
pub(crate) fn global(lengths: &[u8]) -> ([u8; V6_MAX_LENGTHS], u32) {
    let mut global = [0u8; V6_MAX_LENGTHS];
    global[..lengths.len()].copy_from_slice(lengths);
    (
        global,
        u32::try_from(lengths.len()).expect("at most V6_MAX_LENGTHS"),
    )
}

pub(crate) fn key(net: &Ipv6Net) -> HashKey {
    let mut key = [0u8; V6_KEY_BYTES];
    key[..16].copy_from_slice(&net.trunc().network().octets());
    key[16] = net.prefix_len();
    key
}

pub(crate) fn net(key: &HashKey) -> std::result::Result<Ipv6Net, TcbpfError> {
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&key[..16]);
    Ipv6Net::new(addr.into(), key[16]).map_err(|e| TcbpfError::BadKey {
        map: filter_tcbpf_common::MAP_DIR_V6,
        why: e.to_string(),
    })
}

/// Entries to make room for: the list, plus 1/16 (at least 1,024) for adds; the map is
/// preallocated, and a full one makes `add` swap in a rebuilt table.
pub(crate) fn capacity(entries: usize) -> u32 {
    let entries = u32::try_from(entries).unwrap_or(u32::MAX);
    entries.saturating_add((entries / 16).max(1_024))
}

/// Fills the hash map with `keys` (distinct), in batches.
pub(crate) fn fill(map: &aya::maps::MapData, name: &str, keys: &[HashKey]) -> Result<()> {
    let values = vec![0u8; BATCH.min(keys.len())];
    for (index, chunk) in keys.chunks(BATCH).enumerate() {
        let packed = chunk.as_flattened();
        let count = u32::try_from(chunk.len()).expect("BATCH fits in u32");
        sys::update_batch(map.fd().as_fd(), packed, &values[..chunk.len()], count).map_err(
            |(e, done)| {
                kernel(
                    format!(
                        "BPF_MAP_UPDATE_BATCH on {name} at entry {}",
                        index * BATCH + done as usize + 1
                    ),
                    e,
                )
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_lengths_are_hashed_most_populous_first() {
        let nets: Vec<Ipv6Net> = ["2001:db8::/32", "2001:db8:1::/48", "2001:db8:2::/48"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(lengths(&nets), Some(vec![48, 32]));
        assert_eq!(lengths(&[]), None);
        let many: Vec<Ipv6Net> = (16..=128u8)
            .map(|l| Ipv6Net::new("2001:db8::".parse().unwrap(), l).unwrap())
            .collect();
        assert_eq!(lengths(&many), None);
    }

    #[test]
    fn keys_carry_the_length() {
        let a: Ipv6Net = "2001:db8:1::/48".parse().unwrap();
        let b: Ipv6Net = "2001:db8:1::/64".parse().unwrap();
        assert_ne!(key(&a), key(&b));
        assert_eq!(net(&key(&a)).unwrap(), a);
    }
}
