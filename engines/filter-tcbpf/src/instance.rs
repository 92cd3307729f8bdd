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

/// Which tables a list goes to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) table: Table,
    /// With [`Table::Dir24`], the longest IPv4 list for the range table.
    pub(crate) v4_range_max: usize,
}

impl From<Table> for Layout {
    fn from(table: Table) -> Self {
        Self {
            table,
            v4_range_max: common::V4_RANGE_MAX_ENTRIES,
        }
    }
}

/// One loaded copy of the program with its maps.
pub(crate) struct Instance {
    pub(crate) ebpf: Ebpf,
    /// The constant-time table's user-space side, over the maps' mmap views.
    pub(crate) dir: Option<dir::Dir24<dir::Mapped>>,
    /// The IPv6 range table's user-space side, over the maps' mmap views; `None`: IPv6 is
    /// in the LPM trie.
    pub(crate) ranges: Option<range::Ranges<range::Mapped>>,
    /// The IPv4 range table of a short list (the constant-time table); `None`: DIR-24-8
    /// or the LPM trie.
    pub(crate) v4_ranges: Option<range::Ranges<range::Mapped>>,
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
        layout: Layout,
    ) -> Result<Instance> {
        let table = layout.table;
        // Short IPv4 lists go to a range table whose memory follows the list; longer ones
        // to DIR-24-8 (64 MiB from the first entry).
        let short_v4 = list.v4().len() <= layout.v4_range_max;
        let dir = (table == Table::Dir24 && !short_v4).then(|| dir::Prepared::new(list.v4()));
        let (v4_ranges, ranges) = match table {
            Table::Dir24 => (
                if short_v4 {
                    Some(range::Ranges::build_v4(list.v4()).map_err(too_many_points)?)
                } else {
                    None
                },
                Some(range::Ranges::build(list.v6()).map_err(too_many_points)?),
            ),
            Table::LpmTrie => (None, None),
        };
        let v4_room = v4_ranges.as_ref().map(RangeRoom::of);
        let range_room = ranges.as_ref().map(RangeRoom::of);
        // The tries are left at one entry under the constant-time tables.
        let capacity = match table {
            Table::Dir24 => [1, 1],
            Table::LpmTrie => [capacity(list.v4().len())?, capacity(list.v6().len())?],
        };
        let chunk_capacity = dir.as_ref().map(|d| chunk_capacity(d.chunks_needed()));
        let trie_bytes = match table {
            Table::Dir24 => 0,
            Table::LpmTrie => list.len() as u64 * TRIE_BYTES_PER_ENTRY,
        };
        let dir_bytes = chunk_capacity.map_or(0, |chunks| {
            u64::from(common::DIR_SLOTS) * 4 + u64::from(chunks) * common::DIR_CHUNK_BYTES as u64
        });
        let range_bytes = range_room.map_or(0, |room| room.bytes(true))
            + v4_room.map_or(0, |room| room.bytes(false));
        let needed = trie_bytes + dir_bytes + range_bytes;
        filter_core::memory::require(
            "kernel memory for the BPF maps",
            needed,
            "free memory, load a shorter or aggregated list, or use the DIR-24-8 table for IPv4",
        )?;
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(common::MAP_DENY_V4, capacity[0])
            .map_max_entries(common::MAP_DENY_V6, capacity[1]);
        if let Some(room) = &range_room {
            loader
                .map_max_entries(common::MAP_V6_CELLS, room.entries()?)
                .map_max_entries(common::MAP_V6_HIGH, room.lines)
                .map_max_entries(common::MAP_V6_LOW, room.lines)
                .override_global(common::GLOBAL_V6_TOP_BITS, &room.top, true);
        }
        if let Some(room) = &v4_room {
            loader
                .map_max_entries(common::MAP_V4R_CELLS, room.entries()?)
                .map_max_entries(common::MAP_V4R_POINTS, room.lines)
                .override_global(common::GLOBAL_V4_TOP_BITS, &room.top, true);
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
        let ranges = match ranges.zip(range_room) {
            Some((built, room)) => {
                let low = range::LowHalves::Kernel(mapping(
                    &ebpf,
                    common::MAP_V6_LOW,
                    room.lines as usize * 64,
                )?);
                let store = room.store(&ebpf, common::MAP_V6_CELLS, common::MAP_V6_HIGH, low)?;
                Some(built.move_into(store))
            }
            None => None,
        };
        let v4_ranges = match v4_ranges.zip(v4_room) {
            Some((built, room)) => {
                entries_v4 = built.len() as u64;
                let low = range::LowHalves::Local(vec![0; room.lines as usize * range::LINE]);
                let store =
                    room.store(&ebpf, common::MAP_V4R_CELLS, common::MAP_V4R_POINTS, low)?;
                Some(built.move_into(store))
            }
            None => None,
        };
        // Sorted, each insert walks the trie where the previous one did: its nodes are in
        // cache, and the fill takes about half the time of input order.
        let mut v4: Vec<_> = match table {
            Table::Dir24 => Vec::new(),
            Table::LpmTrie => list.v4().iter().map(v4_key).collect(),
        };
        let mut v6: Vec<_> = match table {
            Table::Dir24 => Vec::new(),
            Table::LpmTrie => list.v6().iter().map(v6_key).collect(),
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
        if table == Table::LpmTrie {
            entries_v4 = distinct(&v4);
        }
        Ok(Instance {
            ebpf,
            dir,
            ranges,
            v4_ranges,
            capacity,
            entries: [entries_v4, entries_v6],
            batched: batch && fallback_v4.is_none() && fallback_v6.is_none(),
            fallback: fallback_v4.or(fallback_v6),
        })
    }
}

/// The limit a list past a range table's reach meets.
fn too_many_points(points: u64) -> filter_core::Error {
    filter_core::Error::Limit {
        limit: "flip points of a range table (two per disjoint range)",
        requested: points,
        max: range::MAX_LINES,
        hint: "aggregate the list, or use tcbpf (LPM tries)".into(),
    }
}

/// The room a loaded range table's maps get: its top bits, and subdirectories and leaves
/// with space for changes.
#[derive(Clone, Copy)]
struct RangeRoom {
    top: u32,
    subdirs: u32,
    lines: u32,
}

impl RangeRoom {
    fn of<S: range::RangeStore>(table: &range::Ranges<S>) -> Self {
        let (subdirs, lines) = range_capacity(table.subdirs_used(), table.lines_used());
        Self {
            top: table.top(),
            subdirs,
            lines,
        }
    }

    fn cells(self) -> u64 {
        (1u64 << self.top) + u64::from(self.subdirs) * u64::from(common::RANGE_FANOUT)
    }

    /// The cells map's entries (a cell each).
    fn entries(self) -> std::result::Result<u32, TcbpfError> {
        u32::try_from(self.cells()).map_err(|_| TcbpfError::MapTooLarge {
            requested: self.cells(),
        })
    }

    /// Kernel memory: the cells and a line of high halves (and one of low ones) per leaf.
    fn bytes(self, with_low: bool) -> u64 {
        self.cells() * 8 + u64::from(self.lines) * if with_low { 128 } else { 64 }
    }

    /// The maps' mmap views as a store.
    fn store(
        self,
        ebpf: &Ebpf,
        cells: &str,
        highs: &str,
        low: range::LowHalves,
    ) -> std::result::Result<range::Mapped, TcbpfError> {
        Ok(range::Mapped {
            cells: mapping(
                ebpf,
                cells,
                usize::try_from(self.cells() * 8).expect("the map was created"),
            )?,
            high: mapping(ebpf, highs, self.lines as usize * 64)?,
            low,
            subdirs: self.subdirs,
            lines: self.lines,
        })
    }
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
            common::MAP_V4R_CELLS,
            common::MAP_V4R_POINTS,
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
