//! The deny-list as the agent holds it: the last good version of every chunk, by key, the
//! chunks refused since, and how many chunks hold each entry. A refused chunk never removes
//! what its last good version denied; a deleted key does. An entry held by two chunks goes
//! only when neither holds it, so a change to one chunk costs what it changed, not a pass
//! over the whole list.

use std::collections::{BTreeMap, HashMap, HashSet};

use filter_core::CidrList;
use ipnet::IpNet;

use crate::chunk::{self, ChunkError};

/// Every chunk under the prefix: what is in force, what was refused, and the entries that
/// came and went since the last [`take_changes`](Self::take_changes).
#[derive(Debug, Default, Clone)]
pub struct Chunks {
    good: BTreeMap<String, Vec<IpNet>>,
    refused: BTreeMap<String, ChunkError>,
    /// How many chunks in force hold each entry.
    holders: HashMap<IpNet, u32>,
    came: HashSet<IpNet>,
    went: HashSet<IpNet>,
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

impl Chunks {
    /// The chunks of a full read, each value parsed (a refused one keeps the last good
    /// version `self` had of it, if any). Its changes are counted from empty: apply a
    /// resync as a whole list.
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
        let before = self.good.get(key).cloned();
        self.apply(key, value, before.clone());
        self.good.get(key) != before.as_ref()
    }

    /// Puts `key`'s parsed value, or on refusal `last` (its last good version), if any.
    fn apply(&mut self, key: &str, value: &[u8], last: Option<Vec<IpNet>>) {
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
        if let Some(nets) = next {
            self.set(key, nets);
        }
    }

    /// Makes `nets` the chunk at `key`, counting holders.
    fn set(&mut self, key: &str, nets: Vec<IpNet>) {
        if let Some(old) = self.good.remove(key) {
            self.release(&old);
        }
        let nets: Vec<IpNet> = {
            let mut unique: Vec<IpNet> = nets.iter().map(IpNet::trunc).collect();
            unique.sort_unstable();
            unique.dedup();
            unique
        };
        for net in &nets {
            let holders = self.holders.entry(*net).or_insert(0);
            *holders += 1;
            if *holders == 1 && !self.went.remove(net) {
                self.came.insert(*net);
            }
        }
        self.good.insert(key.to_owned(), nets);
    }

    fn release(&mut self, nets: &[IpNet]) {
        for net in nets {
            if let Some(holders) = self.holders.get_mut(net) {
                *holders -= 1;
                if *holders == 0 {
                    self.holders.remove(net);
                    if !self.came.remove(net) {
                        self.went.insert(*net);
                    }
                }
            }
        }
    }

    /// A delete of `key`: its entries go (those no other chunk holds). Whether the chunks in
    /// force changed.
    pub fn delete(&mut self, key: &str) -> bool {
        self.refused.remove(key);
        match self.good.remove(key) {
            Some(old) => {
                self.release(&old);
                true
            }
            None => false,
        }
    }

    /// The entries that came and went since the last call.
    pub fn take_changes(&mut self) -> Delta {
        Delta {
            came: std::mem::take(&mut self.came).into_iter().collect(),
            went: std::mem::take(&mut self.went).into_iter().collect(),
        }
    }

    /// The union of the chunks in force.
    pub fn union(&self) -> CidrList {
        self.holders.keys().copied().collect()
    }

    /// How many distinct entries the chunks in force hold.
    pub fn entries(&self) -> usize {
        self.holders.len()
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

    #[test]
    fn an_entry_two_chunks_hold_goes_only_with_both() {
        let mut chunks = Chunks::default();
        chunks.put("/l/0", b"203.0.113.0/24\n198.51.100.0/24\n");
        chunks.put("/l/1", b"203.0.113.0/24\n");
        let first = chunks.take_changes();
        assert_eq!(first.came.len(), 2);
        assert!(first.went.is_empty());
        chunks.delete("/l/0");
        // 203.0.113.0/24 is still held by /l/1.
        assert_eq!(
            chunks.take_changes(),
            Delta {
                came: vec![],
                went: vec![net("198.51.100.0/24")]
            }
        );
        // Gone and back before anything was applied: no change at all.
        chunks.delete("/l/1");
        chunks.put("/l/1", b"203.0.113.0/24\n");
        assert!(chunks.take_changes().is_empty());
        assert_eq!(chunks.entries(), 1);
    }
}
