//! Adding and removing single entries of a loaded list.

use aya::maps::lpm_trie::Key;
use aya::maps::{LpmTrie, Map, MapData, MapError};
use filter_core::{EgressFilter, Result};
use filter_tcbpf_common as common;
use ipnet::IpNet;

use crate::TcbpfFilter;
use crate::error::{TcbpfError, kernel};
use crate::fill::{map_mut, v4_key, v6_key};

/// `BPF_NOEXIST`: add only if absent.
const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update only if present.
const BPF_EXIST: u64 = 2;

impl TcbpfFilter {
    /// Adds (`add`) or removes entries; added trie entries expire at `deadline_ns`
    /// (`CLOCK_MONOTONIC`) when one is given, and a present entry takes the new deadline.
    /// Returns, per entry, whether it changed the list; `None` when a table out of room was
    /// rebuilt instead.
    pub(crate) fn change(
        &mut self,
        entries: &[IpNet],
        add: bool,
        deadline_ns: Option<u64>,
    ) -> Result<Option<Vec<bool>>> {
        let mut changes = Vec::with_capacity(entries.len());
        let instance = self.current()?;
        for (done, net) in entries.iter().map(IpNet::trunc).enumerate() {
            // The constant-time tables: whether the list changed, or `None` when the table
            // has no room left (no chunk, line or subdirectory).
            let in_table = match (net, &mut instance.v4_ranges, &mut instance.dir) {
                (IpNet::V4(n), Some(table), _) => Some(table.change_v4(n, add).ok()),
                (IpNet::V4(n), None, Some(table)) => {
                    Some(if add { table.add(n) } else { table.remove(n) }.ok())
                }
                (IpNet::V6(n), ..) => instance
                    .ranges
                    .as_mut()
                    .map(|table| table.change(n, add).ok()),
                _ => None,
            };
            if let Some(changed) = in_table {
                let slot = usize::from(matches!(net, IpNet::V6(_)));
                match changed {
                    Some(true) if add => instance.entries[slot] += 1,
                    Some(true) => instance.entries[slot] -= 1,
                    Some(false) => {}
                    // A table for the whole list (past the IPv4 range table's share,
                    // DIR-24-8), swapped in.
                    None => return self.rebuild_with(&entries[done..], add).map(|()| None),
                }
                changes.push(changed == Some(true));
                continue;
            }
            let (name, slot) = match net {
                IpNet::V4(_) => (common::MAP_DENY_V4, 0),
                IpNet::V6(_) => (common::MAP_DENY_V6, 1),
            };
            let capacity = instance.capacity[slot];
            let map = map_mut(&mut instance.ebpf, name);
            let value = add.then(|| common::trie_value(net.prefix_len(), deadline_ns));
            let result = match net {
                IpNet::V4(n) => update(map, &v4_key(&n), value),
                IpNet::V6(n) => update(map, &v6_key(&n), value),
            };
            changes.push(matches!(result, Ok(true)));
            match result {
                Ok(true) if add => instance.entries[slot] += 1,
                Ok(true) => instance.entries[slot] -= 1,
                Ok(false) => {}
                Err(e) if add && instance.entries[slot] >= u64::from(capacity) => {
                    return Err(TcbpfError::TrieFull {
                        requested: instance.entries[slot] + 1,
                        max: u64::from(capacity),
                        cause: e.to_string(),
                    }
                    .into());
                }
                Err(e) => {
                    return Err(kernel(
                        format!(
                            "{} {net} in {name}",
                            if add { "adding" } else { "removing" }
                        ),
                        e,
                    )
                    .into());
                }
            }
        }
        Ok(Some(changes))
    }
}

impl TcbpfFilter {
    /// Replaces the loaded list with itself plus (or less) `entries`: what `add` and `remove`
    /// do when the constant-time tables cannot take a change in place (no chunk left, or no
    /// room in the IPv6 range table).
    fn rebuild_with(&mut self, entries: &[IpNet], add: bool) -> Result<()> {
        let instance = self.current()?;
        // A vector, not an ordered set: the tables' lists are distinct already, and the new
        // table sorts what it is given (a million-entry set took most of a rebuild).
        let mut nets: Vec<IpNet> = instance
            .dir
            .as_mut()
            .map(|t| t.nets().into_iter().map(IpNet::V4).collect())
            .unwrap_or_default();
        if let Some(table) = &instance.v4_ranges {
            nets.extend(table.nets_v4().into_iter().map(IpNet::V4));
        }
        match &instance.ranges {
            Some(table) => nets.extend(table.nets().into_iter().map(IpNet::V6)),
            None => {
                let trie: LpmTrie<&MapData, [u8; 16], u64> = instance
                    .ebpf
                    .map(common::MAP_DENY_V6)
                    .ok_or_else(|| TcbpfError::MissingObject("IPv6 map".into()))?
                    .try_into()
                    .map_err(|e| kernel("open the IPv6 map", e))?;
                for key in trie.keys() {
                    let key = key.map_err(|e| kernel("read the IPv6 map", e))?;
                    #[expect(
                        clippy::cast_possible_truncation,
                        reason = "prefix lengths are <= 128"
                    )]
                    let net = ipnet::Ipv6Net::new(key.data().into(), key.prefix_len() as u8)
                        .map_err(|e| TcbpfError::BadKey {
                            map: common::MAP_DENY_V6,
                            why: e.to_string(),
                        })?;
                    nets.push(IpNet::V6(net));
                }
            }
        }
        let entries = entries.iter().map(IpNet::trunc);
        if add {
            nets.extend(entries);
        } else {
            let gone: foldhash::HashSet<IpNet> = entries.collect();
            nets.retain(|net| !gone.contains(net));
        }
        self.replace(&nets.into_iter().collect())
    }
}

/// Inserts one key with `value` (a present key takes the new value: a deadline, or none), or
/// removes it when there is no value; returns whether a key came or went.
fn update<const N: usize>(
    map: &mut Map,
    key: &Key<[u8; N]>,
    value: Option<u64>,
) -> std::result::Result<bool, MapError> {
    let mut trie: LpmTrie<&mut MapData, [u8; N], u64> = LpmTrie::try_from(map)?;
    let Some(value) = value else {
        return changed(trie.remove(key));
    };
    let added = changed(trie.insert(key, &value, BPF_NOEXIST))?;
    if !added {
        trie.insert(key, &value, BPF_EXIST)?;
    }
    Ok(added)
}

/// An update's outcome as "changed or not": adding a present key or removing an absent one
/// is not an error.
fn changed(result: std::result::Result<(), MapError>) -> std::result::Result<bool, MapError> {
    match result {
        Ok(()) => Ok(true),
        Err(MapError::KeyNotFound) => Ok(false),
        Err(MapError::SyscallError(e))
            if matches!(e.io_error.raw_os_error(), Some(libc::EEXIST | libc::ENOENT)) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
