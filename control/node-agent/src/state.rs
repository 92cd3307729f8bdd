//! The deny-list as the agent holds it: the last good version of every chunk, by key, sorted,
//! and the chunks refused since. A refused chunk never removes what its last good version
//! denied; a deleted key does. An entry two chunks hold goes only when neither holds it
//! (what a chunk lost is looked up in the others), so a change to one chunk costs what it
//! changed, not a pass over the whole list; a change past a few percent of the list is
//! taken as a whole new list.
use std::collections::BTreeMap;

// foldhash (seeded per process) hashes an `IpNet` several times faster than SipHash; the
// keys come from the operator's own store, not from the network.
use foldhash::HashSet;

use filter_core::CidrList;
use ipnet::IpNet;

use crate::chunk::{self, ChunkError};

/// Past this share of the list changing before an apply, the changes are not counted
/// entry by entry: the whole union is made afresh and swapped in (`replace`: one kernel
/// operation). Measured here: a fresh eBPF table is filled at tens of nanoseconds an entry,
/// an entry change costs one to a few microseconds, so past a few percent the swap is the
/// cheaper; and a publish of a whole new list then costs a parse and a sort per chunk, not
/// a hash-map update per entry.
pub const WHOLE_LIST_SHARE: f64 = 0.05;

/// Every chunk under the prefix: what is in force, what was refused, and what changed since
/// the last [`take_changes`](Self::take_changes).
#[derive(Debug, Default, Clone)]
pub struct Chunks {
    /// Each chunk's last good version, sorted and without repeats.
    good: BTreeMap<String, Vec<IpNet>>,
    refused: BTreeMap<String, ChunkError>,
    pending: Pending,
    /// Distinct entries in force at the last take.
    counted: usize,
}

/// The changes since the last take.
#[derive(Debug, Clone)]
enum Pending {
    /// Entries that came into the union and went out of it, one by one.
    Entries {
        came: HashSet<IpNet>,
        went: HashSet<IpNet>,
    },
    /// Past the share: only how many changed (an upper bound), the union to be made afresh.
    Whole(usize),
}

impl Default for Pending {
    fn default() -> Self {
        Self::Entries {
            came: HashSet::default(),
            went: HashSet::default(),
        }
    }
}

/// The entries that came into the union and went out of it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delta {
    /// Entries no chunk held before.
    pub came: Vec<IpNet>,
    /// Entries no chunk holds any more.
    pub went: Vec<IpNet>,
}

impl Delta {
    /// How many entries changed.
    pub fn len(&self) -> usize {
        self.came.len() + self.went.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What changed since the last [`Chunks::take_changes`].
#[derive(Debug, Clone)]
pub enum Changes {
    /// Entries came and went: apply them one by one.
    Entries(Delta),
    /// Past [`WHOLE_LIST_SHARE`] of the list changed: load this union afresh.
    Whole(CidrList),
}

/// `nets` (truncated) in `IpNet` order without repeats. Sorting words is several times
/// faster than sorting `IpNet`s (an enum compared field by field): a million entries in a
/// few tens of milliseconds.
fn sorted_distinct(nets: impl Iterator<Item = IpNet>) -> Vec<IpNet> {
    let mut v4: Vec<u64> = Vec::new();
    let mut v6: Vec<(u128, u8)> = Vec::new();
    for net in nets {
        match net {
            IpNet::V4(n) => {
                v4.push(u64::from(u32::from(n.network())) << 8 | u64::from(n.prefix_len()));
            }
            IpNet::V6(n) => v6.push((u128::from(n.network()), n.prefix_len())),
        }
    }
    v4.sort_unstable();
    v4.dedup();
    v6.sort_unstable();
    v6.dedup();
    let v4 = v4.into_iter().map(|k| {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "the address is the high 32 bits"
        )]
        let address = std::net::Ipv4Addr::from((k >> 8) as u32);
        #[expect(
            clippy::cast_possible_truncation,
            reason = "the length is the low 8 bits"
        )]
        let length = k as u8;
        IpNet::V4(ipnet::Ipv4Net::new_assert(address, length))
    });
    let v6 = v6
        .into_iter()
        .map(|(address, length)| IpNet::V6(ipnet::Ipv6Net::new_assert(address.into(), length)));
    v4.chain(v6).collect()
}

/// The entries only in `a` and the entries only in `b`, both sorted.
fn sorted_differences(a: &[IpNet], b: &[IpNet]) -> (Vec<IpNet>, Vec<IpNet>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                only_a.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                only_b.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => (i, j) = (i + 1, j + 1),
        }
    }
    only_a.extend_from_slice(&a[i..]);
    only_b.extend_from_slice(&b[j..]);
    (only_a, only_b)
}

impl Chunks {
    /// The chunks of a full read, each value parsed (a refused one keeps the last good
    /// version `self` had of it, if any). Apply a resync as a whole list.
    pub fn resync<'a>(&self, kvs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut next = Self::default();
        for (key, value) in kvs {
            next.apply(key, value, self.good.get(key).cloned());
        }
        next
    }

    /// A put of `key`: its entries replace the chunk's, or, refused, the chunk keeps its last
    /// good version. Whether the chunks in force changed.
    pub fn put(&mut self, key: &str, value: &[u8]) -> bool {
        // Refused, the version in force is the last good one already.
        self.apply(key, value, None)
    }

    /// Puts `key`'s parsed value, or on refusal `last` (its last good version), if any.
    /// Whether the chunks in force changed.
    fn apply(&mut self, key: &str, value: &[u8], last: Option<Vec<IpNet>>) -> bool {
        let next = match chunk::parse(key, value) {
            Ok(nets) => {
                self.refused.remove(key);
                Some(nets)
            }
            Err(err) => {
                self.refused.insert(key.to_owned(), err);
                last
            }
        };
        next.is_some_and(|nets| self.set(key, Some(nets)))
    }

    /// Makes `nets` the chunk at `key` (none: deletes it). What came into the chunk and
    /// went from it is looked up in the other chunks, which are sorted: a change costs what
    /// it changed, whatever the list's length. Past [`WHOLE_LIST_SHARE`] of the list only
    /// how many is kept. Whether the chunk changed.
    fn set(&mut self, key: &str, nets: Option<Vec<IpNet>>) -> bool {
        let nets = nets.map(|nets| sorted_distinct(nets.iter().map(IpNet::trunc)));
        let old = self.good.remove(key).unwrap_or_default();
        let (left, joined) = sorted_differences(&old, nets.as_deref().unwrap_or_default());
        let changed = left.len() + joined.len();
        #[expect(clippy::cast_precision_loss, reason = "a share")]
        let bulk =
            (self.pending() + changed) as f64 > WHOLE_LIST_SHARE * self.entries().max(1) as f64;
        if bulk && matches!(self.pending, Pending::Entries { .. }) {
            // Looking up every entry of a list that is being replaced is wasted: from here
            // until the next take, only how many changed.
            self.pending = Pending::Whole(self.pending());
        }
        match &mut self.pending {
            Pending::Whole(count) => *count += changed,
            Pending::Entries { came, went } => {
                let elsewhere = |net: &IpNet| {
                    self.good
                        .values()
                        .any(|other| other.binary_search(net).is_ok())
                };
                for net in joined.iter().filter(|n| !elsewhere(n)) {
                    if !went.remove(net) {
                        came.insert(*net);
                    }
                }
                for net in left.iter().filter(|n| !elsewhere(n)) {
                    if !came.remove(net) {
                        went.insert(*net);
                    }
                }
            }
        }
        if let Some(nets) = nets {
            self.good.insert(key.to_owned(), nets);
        }
        changed > 0
    }

    /// A delete of `key`: its entries go (those no other chunk holds). Whether the chunks in
    /// force changed.
    pub fn delete(&mut self, key: &str) -> bool {
        self.refused.remove(key);
        if !self.good.contains_key(key) {
            return false;
        }
        self.set(key, None);
        true
    }

    /// Whether the changes pending are past [`WHOLE_LIST_SHARE`]: the next take is the
    /// whole list.
    pub fn whole_pending(&self) -> bool {
        matches!(self.pending, Pending::Whole(_))
    }

    /// What changed since the last call: the entries, or the whole list.
    pub fn take_changes(&mut self) -> Changes {
        match std::mem::take(&mut self.pending) {
            Pending::Whole(_) => {
                let union = self.union();
                self.counted = union.len();
                Changes::Whole(union)
            }
            Pending::Entries { came, went } => {
                self.counted = self.counted + came.len() - went.len();
                Changes::Entries(Delta {
                    came: came.into_iter().collect(),
                    went: went.into_iter().collect(),
                })
            }
        }
    }

    /// How many entries came or went since the last [`take_changes`](Self::take_changes)
    /// (past [`WHOLE_LIST_SHARE`], an upper bound).
    pub fn pending(&self) -> usize {
        match &self.pending {
            Pending::Entries { came, went } => came.len() + went.len(),
            Pending::Whole(count) => *count,
        }
    }

    /// The union of the chunks in force: IPv4 then IPv6, each in ascending order.
    pub fn union(&self) -> CidrList {
        sorted_distinct(self.good.values().flatten().copied())
            .into_iter()
            .collect()
    }

    /// How many distinct entries the chunks in force hold (while the whole list is
    /// changing, as of the last take).
    pub fn entries(&self) -> usize {
        match &self.pending {
            Pending::Entries { came, went } => self.counted + came.len() - went.len(),
            Pending::Whole(_) => self.counted,
        }
    }

    /// How many chunks are in force (their last good versions).
    pub fn len(&self) -> usize {
        self.good.len()
    }

    /// Whether no chunk is in force.
    pub fn is_empty(&self) -> bool {
        self.good.is_empty()
    }

    /// The chunks refused, each with why.
    pub fn refused(&self) -> impl Iterator<Item = &ChunkError> {
        self.refused.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_refused_chunk_keeps_its_last_good_version() {
        let mut chunks = Chunks::default();
        assert!(chunks.put("/l/0", b"203.0.113.0/24\n"));
        assert!(chunks.put("/l/1", b"198.51.100.0/24\n"));
        assert!(!chunks.put("/l/1", b"198.51.100.0/24\nnope\n"));
        assert_eq!(chunks.union().len(), 2);
        assert_eq!(chunks.refused().count(), 1);
        // A new key refused at once holds nothing, and takes nothing away.
        assert!(!chunks.put("/l/2", b"bad"));
        assert_eq!(chunks.union().len(), 2);
        // Fixed, it replaces the last good version and is no longer refused.
        assert!(chunks.put("/l/1", b"192.0.2.0/24\n"));
        assert!(chunks.union().iter().any(|n| n == net("192.0.2.0/24")));
        assert_eq!(chunks.refused().count(), 1);
        assert!(chunks.delete("/l/0"));
        assert_eq!(chunks.union().len(), 1);
    }

    #[test]
    fn a_resync_keeps_last_good_versions_of_refused_chunks() {
        let mut chunks = Chunks::default();
        chunks.put("/l/0", b"203.0.113.0/24\n");
        chunks.put("/l/1", b"198.51.100.0/24\n");
        let next = chunks.resync([("/l/0", &b"junk"[..])]);
        // /l/1 is gone from the store; /l/0's bad value keeps its last good version.
        assert_eq!(
            next.union().iter().collect::<Vec<_>>(),
            vec![net("203.0.113.0/24")]
        );
        assert_eq!(next.refused().count(), 1);
    }

    /// A chunk of 100 entries (10.0.i.0/24) under `/l/big`, taken as the whole list.
    fn with_big_chunk() -> Chunks {
        let mut chunks = Chunks::default();
        let lines: String = (0..100).map(|i| format!("10.0.{i}.0/24\n")).collect();
        chunks.put("/l/big", lines.as_bytes());
        assert!(matches!(chunks.take_changes(), Changes::Whole(_)));
        assert_eq!(chunks.entries(), 100);
        chunks
    }

    fn entries(changes: Changes) -> Delta {
        match changes {
            Changes::Entries(mut delta) => {
                delta.came.sort_unstable();
                delta.went.sort_unstable();
                delta
            }
            Changes::Whole(_) => panic!("expected entry changes, got the whole list"),
        }
    }

    #[test]
    fn word_sorting_gives_ipnet_order() {
        let nets: Vec<IpNet> = [
            "2001:db8::/48",
            "10.0.0.0/8",
            "10.0.0.0/16",
            "9.255.0.0/16",
            "2001:db8::/32",
            "10.0.0.0/8",
        ]
        .iter()
        .map(|s| net(s))
        .collect();
        let mut expected = nets.clone();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(sorted_distinct(nets.into_iter()), expected);
    }

    #[test]
    fn an_entry_two_chunks_hold_goes_only_with_both() {
        let mut chunks = with_big_chunk();
        chunks.put("/l/0", b"203.0.113.0/24\n198.51.100.0/24\n");
        chunks.put("/l/1", b"203.0.113.0/24\n10.0.1.0/24\n");
        let first = entries(chunks.take_changes());
        assert_eq!(first.came.len(), 2);
        assert!(first.went.is_empty());
        chunks.delete("/l/0");
        // 203.0.113.0/24 is still held by /l/1.
        assert_eq!(
            entries(chunks.take_changes()),
            Delta {
                came: vec![],
                went: vec![net("198.51.100.0/24")]
            }
        );
        // Gone and back before anything was applied: no change at all.
        chunks.delete("/l/1");
        chunks.put("/l/1", b"203.0.113.0/24\n");
        assert!(entries(chunks.take_changes()).is_empty());
        assert_eq!(chunks.entries(), 101);
        // 10.0.1.0/24 stays with /l/big when /l/1 lets it go.
        assert_eq!(chunks.union().len(), 101);
    }

    #[test]
    fn past_the_share_the_whole_list_is_taken_and_counting_resumes_after() {
        let mut chunks = with_big_chunk();
        // Four entries of 100: counted one by one.
        chunks.put("/l/0", b"192.0.2.1\n192.0.2.2\n192.0.2.3\n192.0.2.4\n");
        assert_eq!(chunks.pending(), 4);
        // Two more pass 5%: only how many is kept, and the whole list is taken.
        chunks.put("/l/1", b"192.0.2.5\n192.0.2.6\n");
        assert_eq!(chunks.pending(), 6);
        assert!(matches!(chunks.take_changes(), Changes::Whole(_)));
        assert_eq!(chunks.entries(), 106);
        // A removal after that is counted entry by entry again, from the chunks in force.
        chunks.put("/l/1", b"192.0.2.5\n");
        assert_eq!(
            entries(chunks.take_changes()),
            Delta {
                came: vec![],
                went: vec![net("192.0.2.6/32")]
            }
        );
        assert_eq!(chunks.entries(), 105);
        // Deleting the big chunk is past the share: the whole list again.
        assert!(chunks.delete("/l/big"));
        assert!(matches!(chunks.take_changes(), Changes::Whole(_)));
        assert_eq!(chunks.union().len(), 5);
    }
}
