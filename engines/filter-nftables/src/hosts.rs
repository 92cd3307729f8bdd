//! One family's host addresses, each stored at its family's width: an IPv4 address takes
//! four bytes rather than sixteen, and hosts are most of a default-mix list (89%).

use std::collections::BTreeSet;

use filter_core::Family;

/// The keys of a family's hash set (`/32` or `/128` entries), in order.
#[derive(Debug, Clone)]
pub(crate) enum HostSet {
    V4(BTreeSet<u32>),
    V6(BTreeSet<u128>),
}

/// An IPv4 key as stored; keys of the IPv4 family are below 2^32 by construction.
fn v4(key: u128) -> u32 {
    u32::try_from(key).expect("an IPv4 key is below 2^32")
}

impl HostSet {
    /// The set of `keys` (any order, repeats allowed), built in bulk.
    pub(crate) fn from_keys(family: Family, keys: impl Iterator<Item = u128>) -> Self {
        match family {
            Family::V4 => {
                let mut all: Vec<u32> = keys.map(v4).collect();
                all.sort_unstable();
                Self::V4(all.into_iter().collect())
            }
            Family::V6 => {
                let mut all: Vec<u128> = keys.collect();
                all.sort_unstable();
                Self::V6(all.into_iter().collect())
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::V4(s) => s.len(),
            Self::V6(s) => s.len(),
        }
    }

    pub(crate) fn contains(&self, key: u128) -> bool {
        match self {
            Self::V4(s) => s.contains(&v4(key)),
            Self::V6(s) => s.contains(&key),
        }
    }

    pub(crate) fn insert(&mut self, key: u128) {
        match self {
            Self::V4(s) => s.insert(v4(key)),
            Self::V6(s) => s.insert(key),
        };
    }

    pub(crate) fn remove(&mut self, key: u128) {
        match self {
            Self::V4(s) => s.remove(&v4(key)),
            Self::V6(s) => s.remove(&key),
        };
    }

    /// The keys in order.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = u128> + '_> {
        match self {
            Self::V4(s) => Box::new(s.iter().map(|&k| u128::from(k))),
            Self::V6(s) => Box::new(s.iter().copied()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_back_in_order_at_either_width() {
        for family in Family::BOTH {
            let mut set = HostSet::from_keys(family, [9u128, 3, 7, 3].into_iter());
            assert_eq!(set.len(), 3);
            set.insert(5);
            set.remove(7);
            assert!(set.contains(5) && !set.contains(7));
            assert_eq!(set.iter().collect::<Vec<_>>(), [3, 5, 9], "{family:?}");
        }
    }
}
