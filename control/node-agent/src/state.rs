//! The deny-list as the agent holds it: the last good version of every chunk, by key, and
//! the chunks refused since. A refused chunk never removes what its last good version
//! denied; a deleted key does.

use std::collections::BTreeMap;

use filter_core::CidrList;
use ipnet::IpNet;

use crate::chunk::{self, ChunkError};

/// Every chunk under the prefix: what is in force, and what was refused.
#[derive(Debug, Default, Clone)]
pub struct Chunks {
    good: BTreeMap<String, Vec<IpNet>>,
    refused: BTreeMap<String, ChunkError>,
}

impl Chunks {
    /// The chunks of a full read of the prefix, each value parsed (the refused ones keep the
    /// last good version `self` had of them, if any).
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
        match chunk::parse(key, value) {
            Ok(nets) => {
                self.refused.remove(key);
                self.good.insert(key.to_owned(), nets);
            }
            Err(err) => {
                if let Some(last) = last {
                    self.good.insert(key.to_owned(), last);
                }
                self.refused.insert(key.to_owned(), err);
            }
        }
    }

    /// A delete of `key`: its entries go. Whether the chunks in force changed.
    pub fn delete(&mut self, key: &str) -> bool {
        self.refused.remove(key);
        self.good.remove(key).is_some()
    }

    /// The union of the chunks in force.
    pub fn union(&self) -> CidrList {
        self.good.values().flatten().copied().collect()
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
}
