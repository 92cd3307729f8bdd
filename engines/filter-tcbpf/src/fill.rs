//! Filling the maps: sizes, keys, batched and per-entry trie updates, mmap views.

use std::os::fd::AsFd;

use aya::Ebpf;
use aya::maps::lpm_trie::Key;
use aya::maps::{LpmTrie, Map, MapData};
use filter_core::Result;
use filter_tcbpf_common as common;

use crate::error::{TcbpfError, kernel};
use crate::sys;

/// The kernel's internal "operation not supported" (not in libc): what old kernels return
/// for batch operations on maps without them.
pub(crate) const ENOTSUPP: i32 = 524;

/// Entries per `BPF_MAP_UPDATE_BATCH` call.
pub(crate) const BATCH: usize = 65_536;

/// Kernel memory an LPM trie takes per entry: a leaf and, about as often, an intermediate
/// node, each a kmalloc-64 object (slab growth of 1,318-1,371 MiB per 10M entries measured on
/// 6.18; the maps' `memlock` figure counts about a fifth of it).
pub(crate) const TRIE_BYTES_PER_ENTRY: u64 = 144;
/// Room for changes past what a loaded range table uses: half as many subdirectories again
/// (at least 256: changes split full leaves, and a subdirectory stays until a rebuild) and a
/// quarter more leaves (at least 4,096).
pub(crate) fn range_capacity(subdirs: u32, lines: u32) -> (u32, u32) {
    (
        subdirs.saturating_add((subdirs / 2).max(256)),
        lines
            .saturating_add((lines / 4).max(4_096))
            .min(u32::try_from(crate::range::MAX_LINES).unwrap_or(u32::MAX)),
    )
}

pub(crate) fn capacity(entries: usize) -> Result<u32> {
    let wanted = (entries as u64 * 2).max(1_024);
    Ok(u32::try_from(wanted).map_err(|_| TcbpfError::MapTooLarge { requested: wanted })?)
}

pub(crate) fn v4_key(net: &ipnet::Ipv4Net) -> Key<[u8; 4]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

pub(crate) fn v6_key(net: &ipnet::Ipv6Net) -> Key<[u8; 16]> {
    Key::new(u32::from(net.prefix_len()), net.network().octets())
}

pub(crate) fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Map {
    ebpf.map_mut(name)
        .unwrap_or_else(|| panic!("the embedded program defines map {name}"))
}

pub(crate) fn map_data(map: &Map) -> &MapData {
    match map {
        Map::LpmTrie(data)
        | Map::PerCpuArray(data)
        | Map::Array(data)
        | Map::HashMap(data)
        | Map::LruHashMap(data) => data,
        _ => unreachable!("the filters only have LPM tries, arrays and hashes"),
    }
}

/// Chunks to make room for: what the list needs, plus 1/16 (at least 4,096) for incremental
/// adds; a full second level makes `add` swap in a rebuilt table, so the room is kept small.
pub(crate) fn chunk_capacity(needed: u32) -> u32 {
    needed
        .saturating_add((needed / 16).max(4_096))
        .min(common::DIR_SLOTS)
}

/// Maps the values of an mmapable array map of the program into this process.
pub(crate) fn mapping(
    ebpf: &Ebpf,
    name: &str,
    len: usize,
) -> std::result::Result<sys::Mapping, TcbpfError> {
    let map = ebpf
        .map(name)
        .unwrap_or_else(|| panic!("the embedded program defines map {name}"));
    sys::Mapping::new(map_data(map).fd().as_fd(), len)
        .map_err(|e| kernel(format!("mmap of map {name} ({len} bytes)"), e))
}

/// Packs LPM keys (`u32` prefix length in host order, then the address) and their
/// permanent [trie values](common::trie_value) for a batch update.
pub(crate) fn pack<const N: usize>(
    keys: impl Iterator<Item = Key<[u8; N]>>,
    out: &mut Vec<u8>,
    values: &mut Vec<u8>,
) -> u32 {
    out.clear();
    values.clear();
    let mut count = 0;
    for key in keys {
        out.extend_from_slice(&key.prefix_len().to_ne_bytes());
        out.extend_from_slice(&key.data());
        values.extend_from_slice(&permanent(&key).to_ne_bytes());
        count += 1;
    }
    count
}

/// The trie value of a key that never expires.
pub(crate) fn permanent<const N: usize>(key: &Key<[u8; N]>) -> u64 {
    #[expect(clippy::cast_possible_truncation, reason = "prefix lengths are <= 128")]
    common::trie_value(key.prefix_len() as u8, None)
}

/// Fills a trie: batches where the kernel supports them, else one update per entry.
/// Returns why batches were asked for but not used (the kernel's refusal of the first), so
/// that the fallback is said wherever the load's figures go; `None` when the fill went as
/// asked.
pub(crate) fn fill<const N: usize>(
    map: &mut Map,
    name: &str,
    keys: &[Key<[u8; N]>],
    batch: bool,
) -> Result<Option<String>> {
    let mut packed = Vec::with_capacity(BATCH.min(keys.len()) * (4 + N));
    let mut values = Vec::with_capacity(BATCH.min(keys.len()) * 8);
    let mut batched = batch;
    let mut fallback = None;
    for (chunk_index, chunk) in keys.chunks(BATCH).enumerate() {
        if batched {
            let count = pack(chunk.iter().copied(), &mut packed, &mut values);
            match sys::update_batch(map_data(map).fd().as_fd(), &packed, &values, count) {
                Ok(_) => continue,
                Err((e, 0))
                    if chunk_index == 0
                        && matches!(
                            e.raw_os_error(),
                            Some(libc::EINVAL | ENOTSUPP | libc::EOPNOTSUPP)
                        ) =>
                {
                    batched = false;
                    fallback = Some(format!(
                        "BPF_MAP_UPDATE_BATCH refused on {name} ({e}): filled with one update \
                         per entry, so load figures are not the batch path's"
                    ));
                }
                Err((e, done)) => {
                    return Err(kernel(
                        format!(
                            "BPF_MAP_UPDATE_BATCH on {name} at entry {}",
                            chunk_index * BATCH + done as usize + 1
                        ),
                        e,
                    )
                    .into());
                }
            }
        }
        let mut trie: LpmTrie<&mut MapData, [u8; N], u64> =
            LpmTrie::try_from(&mut *map).map_err(|e| kernel(format!("open map {name}"), e))?;
        for (i, key) in chunk.iter().enumerate() {
            trie.insert(key, &permanent(key), 0).map_err(|e| {
                kernel(
                    format!("update {name} entry {}", chunk_index * BATCH + i + 1),
                    e,
                )
            })?;
        }
    }
    Ok(fallback)
}

/// Distinct keys of a sorted list: what the trie will hold.
pub(crate) fn distinct<const N: usize>(sorted: &[Key<[u8; N]>]) -> u64 {
    let same = |a: &Key<[u8; N]>, b: &Key<[u8; N]>| {
        a.data() == b.data() && a.prefix_len() == b.prefix_len()
    };
    let repeats = sorted.windows(2).filter(|w| same(&w[0], &w[1])).count();
    (sorted.len() - repeats) as u64
}

/// A map whose keys can be walked in the kernel.
pub(crate) trait KeyWalk<'a>: TryFrom<&'a Map, Error = aya::maps::MapError> {
    /// How many keys the kernel hands back, one `BPF_MAP_GET_NEXT_KEY` each.
    fn key_count(&self) -> std::result::Result<u64, aya::maps::MapError>;
}

/// Counts the keys a walk hands back, stopping at the first error.
fn count_walk<K>(
    mut keys: impl Iterator<Item = std::result::Result<K, aya::maps::MapError>>,
) -> std::result::Result<u64, aya::maps::MapError> {
    keys.try_fold(0, |count, key| key.map(|_| count + 1))
}

impl<'a, const N: usize> KeyWalk<'a> for LpmTrie<&'a MapData, [u8; N], u64> {
    fn key_count(&self) -> std::result::Result<u64, aya::maps::MapError> {
        count_walk(self.keys())
    }
}

impl<'a, const N: usize> KeyWalk<'a> for aya::maps::HashMap<&'a MapData, [u8; N], u8> {
    fn key_count(&self) -> std::result::Result<u64, aya::maps::MapError> {
        count_walk(self.keys())
    }
}

/// The keys the kernel holds in map `name` of a loaded object.
pub(crate) fn count_keys<'a, M: KeyWalk<'a>>(ebpf: &'a aya::Ebpf, name: &str) -> Result<u64> {
    let map = ebpf
        .map(name)
        .ok_or_else(|| TcbpfError::MissingObject(format!("map {name}")))?;
    let walk = M::try_from(map).map_err(|e| kernel(format!("open map {name}"), e))?;
    Ok(walk
        .key_count()
        .map_err(|e| kernel(format!("walking the keys of {name}"), e))?)
}
