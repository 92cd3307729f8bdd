//! One loaded copy of the program with its maps, filled with a list.

use aya::Ebpf;
use aya::EbpfLoader;
use aya::programs::SchedClassifier;
use filter_core::{CidrList, Result};
use filter_tcbpf_common as common;

use crate::error::{TcbpfError, kernel};
use crate::fill::{
    TRIE_BYTES_PER_ENTRY, capacity, chunk_capacity, distinct, fill, map_mut, mapping,
    range_capacity, v4_key, v6_key,
};
use crate::{Fill, Table, TcbpfFilter, dir, range};

/// The kernel-side program, built by `build.rs`.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/filter-tcbpf-ebpf"));

/// One loaded copy of the program with its maps.
pub(crate) struct Instance {
    pub(crate) ebpf: Ebpf,
    /// The constant-time table's user-space side, over the maps' mmap views.
    pub(crate) dir: Option<dir::Dir24<dir::Mapped>>,
    /// The IPv6 range table's user-space side, over the maps' mmap views; `None`: IPv6 is
    /// in the LPM trie.
    pub(crate) ranges: Option<range::Ranges<range::Mapped>>,
    pub(crate) capacity: [u32; 2],
    pub(crate) entries: [u64; 2],
    /// Whether the maps were filled in batches (else one update per entry).
    pub(crate) batched: bool,
    /// Why the batch fill asked for fell back to per-entry updates, when it did.
    pub(crate) fallback: Option<String>,
}

impl TcbpfFilter {
    /// Loads a fresh program instance with maps sized for and filled with `list`.
    pub(crate) fn instance(
        list: &CidrList,
        fill_mode: Fill,
        hooked: &str,
        table: Table,
    ) -> Result<Instance> {
        let dir = (table == Table::Dir24).then(|| dir::Prepared::new(list.v4()));
        let ranges = match table {
            Table::Dir24 => Some(range::Ranges::build(list.v6()).map_err(|points| {
                filter_core::Error::Limit {
                    limit: "flip points of the IPv6 range table (two per disjoint range)",
                    requested: points,
                    max: range::MAX_LINES,
                    hint: "aggregate the IPv6 list, or use tcbpf (LPM trie) for it".into(),
                }
            })?),
            Table::LpmTrie => None,
        };
        let range_room = ranges
            .as_ref()
            .map(|r| (r.top(), range_capacity(r.subdirs_used(), r.lines_used())));
        let capacity = [
            if dir.is_some() {
                1
            } else {
                capacity(list.v4().len())?
            },
            if ranges.is_some() {
                1
            } else {
                capacity(list.v6().len())?
            },
        ];
        let chunk_capacity = dir.as_ref().map(|d| chunk_capacity(d.chunks_needed()));
        // IPv4 goes to the DIR table or a trie; IPv6 to the range table or a trie.
        let (v4_trie, dir_bytes) = match chunk_capacity {
            Some(chunks) => (
                0,
                u64::from(common::DIR_SLOTS) * 4
                    + u64::from(chunks) * common::DIR_CHUNK_BYTES as u64,
            ),
            None => (list.v4().len() as u64, 0),
        };
        let (v6_trie, range_bytes) = match range_room {
            Some((top, (subdirs, lines))) => {
                (0, range_cells(top, subdirs) * 4 + u64::from(lines) * 128)
            }
            None => (list.v6().len() as u64, 0),
        };
        let needed = (v4_trie + v6_trie) * TRIE_BYTES_PER_ENTRY + dir_bytes + range_bytes;
        filter_core::memory::require(
            "kernel memory for the BPF maps",
            needed,
            "free memory, load a shorter or aggregated list, or use the DIR-24-8 table for IPv4",
        )?;
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(common::MAP_DENY_V4, capacity[0])
            .map_max_entries(common::MAP_DENY_V6, capacity[1]);
        let top;
        if let Some((bits, (subdirs, lines))) = range_room {
            top = bits;
            let cells = range_cells(bits, subdirs);
            let groups = u32::try_from(cells / 4).map_err(|_| TcbpfError::MapTooLarge {
                requested: cells / 4,
            })?;
            loader
                .map_max_entries(common::MAP_V6_CELLS, groups)
                .map_max_entries(common::MAP_V6_HIGH, lines)
                .map_max_entries(common::MAP_V6_LOW, lines)
                .override_global(common::GLOBAL_V6_TOP_BITS, &top, true);
        }
        if let Some(chunks) = chunk_capacity {
            loader
                .map_max_entries(common::MAP_DIR_SLOTS, common::DIR_SLOTS / 4)
                .map_max_entries(common::MAP_DIR_CHUNKS, chunks);
        }
        let mut ebpf = loader
            .load(PROGRAM)
            .map_err(|e| kernel("creating the BPF maps", e))?;
        let mut entries_v4 = 0;
        let dir = match (dir, chunk_capacity) {
            (Some(prepared), Some(capacity)) => {
                entries_v4 = prepared.len() as u64;
                let store = dir::Mapped {
                    slots: mapping(&ebpf, common::MAP_DIR_SLOTS, common::DIR_SLOTS as usize * 4)?,
                    chunks: mapping(
                        &ebpf,
                        common::MAP_DIR_CHUNKS,
                        capacity as usize * common::DIR_CHUNK_BYTES,
                    )?,
                    capacity,
                };
                Some(
                    prepared
                        .build_in(store)
                        .expect("the chunks map is sized for the list"),
                )
            }
            _ => None,
        };
        let ranges = match (ranges, range_room) {
            (Some(built), Some((bits, (subdirs, lines)))) => {
                let store = range::Mapped {
                    cells: mapping(
                        &ebpf,
                        common::MAP_V6_CELLS,
                        usize::try_from(range_cells(bits, subdirs) * 4).expect("fits in memory"),
                    )?,
                    high: mapping(&ebpf, common::MAP_V6_HIGH, lines as usize * 64)?,
                    low: mapping(&ebpf, common::MAP_V6_LOW, lines as usize * 64)?,
                    subdirs,
                    lines,
                };
                Some(built.move_into(store))
            }
            _ => None,
        };
        // Sorted, each insert walks the trie where the previous one did: its nodes are in
        // cache, and the fill takes about half the time of input order.
        let mut v4: Vec<_> = match dir {
            Some(_) => Vec::new(),
            None => list.v4().iter().map(v4_key).collect(),
        };
        let mut v6: Vec<_> = match ranges {
            Some(_) => Vec::new(),
            None => list.v6().iter().map(v6_key).collect(),
        };
        v4.sort_unstable_by_key(|k| (k.data(), k.prefix_len()));
        v6.sort_unstable_by_key(|k| (k.data(), k.prefix_len()));
        let batch = fill_mode == Fill::Batch;
        let fallback_v4 = fill(
            map_mut(&mut ebpf, common::MAP_DENY_V4),
            common::MAP_DENY_V4,
            &v4,
            batch,
        )?;
        let fallback_v6 = fill(
            map_mut(&mut ebpf, common::MAP_DENY_V6),
            common::MAP_DENY_V6,
            &v6,
            batch,
        )?;
        let entries_v6 = match &ranges {
            Some(table) => table.len() as u64,
            None => distinct(&v6),
        };
        load_program(&mut ebpf, hooked)?;
        if dir.is_none() {
            entries_v4 = distinct(&v4);
        }
        Ok(Instance {
            ebpf,
            dir,
            ranges,
            capacity,
            entries: [entries_v4, entries_v6],
            batched: batch && fallback_v4.is_none() && fallback_v6.is_none(),
            fallback: fallback_v4.or(fallback_v6),
        })
    }
}

/// Cells of a range table with `top` bits and room for `subdirs` subdirectories.
fn range_cells(top: u32, subdirs: u32) -> u64 {
    (1u64 << top) + u64::from(subdirs) * u64::from(common::RANGE_FANOUT)
}

/// The program of `name` in a loaded object.
/// The programs a hook of `name` runs: `name` itself, or for the connect-time filter its
/// four programs (`name` with each suffix of [`common::CONNECT_HOOKS`]).
pub(crate) fn members(name: &str) -> Vec<String> {
    if name.starts_with("egb_cn_") {
        common::CONNECT_HOOKS
            .iter()
            .map(|(suffix, _)| format!("{name}{suffix}"))
            .collect()
    } else {
        vec![name.to_owned()]
    }
}

/// Loads the programs of `name` ([`members`]) into the kernel (the verifier runs), whichever
/// hook's type they are.
fn load_program(ebpf: &mut Ebpf, name: &str) -> Result<()> {
    for name in members(name) {
        let loaded = match ebpf.program_mut(&name) {
            Some(aya::programs::Program::SchedClassifier(p)) => p.load(),
            Some(aya::programs::Program::CgroupSkb(p)) => p.load(),
            Some(aya::programs::Program::CgroupSockAddr(p)) => p.load(),
            Some(other) => {
                return Err(TcbpfError::MissingObject(format!(
                    "program {name} of a type this engine hooks ({:?} is not one)",
                    other.prog_type()
                ))
                .into());
            }
            None => return Err(TcbpfError::MissingObject(format!("program {name}")).into()),
        };
        loaded.map_err(|e| kernel(format!("loading program {name} (verifier)"), e))?;
    }
    Ok(())
}

pub(crate) fn program_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> std::result::Result<&'a mut SchedClassifier, TcbpfError> {
    ebpf.program_mut(name)
        .ok_or_else(|| TcbpfError::MissingObject(format!("program {name}")))?
        .try_into()
        .map_err(|e| kernel(format!("program {name}"), e))
}

#[cfg(test)]
mod tests {
    use filter_tcbpf_common as common;

    /// The kernel side names its maps and programs with literals (aya's macros take no
    /// constants): every name the loader looks up is in the built object's symbol table, so
    /// renaming one side alone fails here rather than at load time.
    #[test]
    fn every_shared_name_is_in_the_object() {
        let names = [
            common::MAP_DENY_V4,
            common::MAP_DENY_V6,
            common::MAP_COUNTERS,
            common::MAP_DIR_SLOTS,
            common::MAP_DIR_CHUNKS,
            common::MAP_V6_CELLS,
            common::MAP_V6_HIGH,
            common::MAP_V6_LOW,
            common::PROG_FILTER,
            common::PROG_FILTER_DIR,
            common::PROG_EMPTY,
            common::PROG_COLD,
            common::PROG_COLD_BASE,
            common::PROG_COLD_DIR,
            common::PROG_FILTER_COLD,
            common::PROG_FILTER_COLD_DIR,
            common::PROG_MIX_ONLY,
            common::PROG_COLD_V6,
            common::PROG_COLD_V6_DIR,
            common::PROG_COLD_V6_BASE,
        ];
        for name in names {
            let symbol = [b"\0", name.as_bytes(), b"\0"].concat();
            assert!(
                super::PROGRAM.windows(symbol.len()).any(|w| w == symbol),
                "{name} is not a symbol of the eBPF object"
            );
        }
    }
}
