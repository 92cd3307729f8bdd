//! One family's list as the engine holds it, and the element changes that take its sets from
//! one list to another: all at once (a load, a sync) or for a few entries (an add or remove,
//! in time proportional to the entries, not to the list).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use filter_core::Family;
use ipnet::IpNet;

use crate::hosts::HostSet;
use crate::keys::Element;
pub(crate) use crate::keys::key_of;
use crate::messages::SetKind;

/// One family's list and how its sets hold it: host addresses (`/32`, `/128`) in one hash
/// set, and the prefixes of each shorter length in a hash set of their own, matched by the
/// destination masked to that length. A packet costs one hash lookup per length the list
/// has, as in ipset's `hash:net`; one interval set for the shorter prefixes (a binary
/// search of the kernel's range array) added 1.5x to 3x what ipset adds per packet at 1M
/// entries.
#[derive(Debug, Clone)]
pub(crate) struct FamilyState {
    family: Family,
    /// The hosts' keys.
    hosts: HostSet,
    /// Per shorter prefix length, the network addresses of its prefixes.
    prefixes: BTreeMap<u8, HostSet>,
}

/// Element changes of one family: per set, the keys to delete and those to add.
#[derive(Debug, Default, Clone)]
pub(crate) struct Delta {
    sets: BTreeMap<SetKind, (Vec<Element>, Vec<Element>)>,
}

impl Delta {
    /// One set's (gone, came), empty for a set the change does not touch.
    pub(crate) fn of(&self, kind: SetKind) -> (&[Element], &[Element]) {
        self.sets
            .get(&kind)
            .map_or((&[], &[]), |(gone, came)| (gone, came))
    }

    /// The sets the change touches.
    pub(crate) fn kinds(&self) -> impl Iterator<Item = SetKind> + '_ {
        self.sets.keys().copied()
    }
}

/// A change worked out but not yet made: its element delta, which is also what it does to
/// the state once the kernel took it.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) delta: Delta,
}

/// The set an entry goes in.
fn kind_of(net: &IpNet) -> SetKind {
    if net.prefix_len() == net.max_prefix_len() {
        SetKind::Hash
    } else {
        SetKind::Prefix(net.prefix_len())
    }
}

/// The host address (`/32`, `/128`) of a key.
pub(crate) fn host_net(family: Family, key: u128) -> IpNet {
    net_at(family, key, family.max_prefix_len())
}

/// The prefix of `len` bits starting at key `start`.
fn net_at(family: Family, start: u128, len: u8) -> IpNet {
    let addr: IpAddr = match family {
        #[expect(clippy::cast_possible_truncation, reason = "IPv4 keys are below 2^32")]
        Family::V4 => Ipv4Addr::from(start as u32).into(),
        Family::V6 => Ipv6Addr::from(start).into(),
    };
    IpNet::new(addr, len).expect("a stored prefix length fits its family")
}

impl FamilyState {
    /// A family's state for its entries.
    pub(crate) fn new<N>(family: Family, nets: N) -> Self
    where
        N: IntoIterator<Item = IpNet>,
        N::IntoIter: Clone,
    {
        let nets = nets.into_iter().map(|n| n.trunc());
        let mut by_len: BTreeMap<u8, Vec<u128>> = BTreeMap::new();
        for net in nets.clone().filter(|n| kind_of(n) != SetKind::Hash) {
            by_len
                .entry(net.prefix_len())
                .or_default()
                .push(key_of(&net));
        }
        Self {
            family,
            // Straight from the list at the family's width: no 16-byte copy of every host.
            hosts: HostSet::from_keys(
                family,
                nets.filter(|n| kind_of(n) == SetKind::Hash)
                    .map(|n| key_of(&n)),
            ),
            prefixes: by_len
                .into_iter()
                .map(|(len, keys)| (len, HostSet::from_keys(family, keys.into_iter())))
                .collect(),
        }
    }

    /// Distinct entries of the list.
    pub(crate) fn entries(&self) -> u64 {
        (self.hosts.len() + self.prefixes.values().map(HostSet::len).sum::<usize>()) as u64
    }

    /// The sets this list needs: the hosts' set (always, so that timed hosts have a home),
    /// then one per shorter length it holds (`prefixes` keeps no empty length), longest
    /// first.
    pub(crate) fn kinds(&self) -> Vec<SetKind> {
        std::iter::once(SetKind::Hash)
            .chain(self.prefixes.keys().rev().map(|&len| SetKind::Prefix(len)))
            .collect()
    }

    fn set(&self, kind: SetKind) -> Option<&HostSet> {
        match kind {
            SetKind::Hash => Some(&self.hosts),
            SetKind::Prefix(len) => self.prefixes.get(&len),
        }
    }

    /// The keys of one set, in order.
    pub(crate) fn elements(&self, kind: SetKind) -> Vec<Element> {
        self.element_iter(kind).collect()
    }

    /// [`elements`](Self::elements) one at a time, for streaming them into transactions.
    pub(crate) fn element_iter(&self, kind: SetKind) -> Box<dyn Iterator<Item = Element> + '_> {
        match self.set(kind) {
            Some(keys) => keys.iter(),
            None => Box::new(std::iter::empty()),
        }
    }

    /// How many keys one set holds.
    pub(crate) fn element_count(&self, kind: SetKind) -> usize {
        self.set(kind).map_or(0, HostSet::len)
    }

    /// The entries of one set, as prefixes.
    pub(crate) fn nets(&self, kind: SetKind) -> Vec<IpNet> {
        let len = match kind {
            SetKind::Hash => self.family.max_prefix_len(),
            SetKind::Prefix(len) => len,
        };
        self.element_iter(kind)
            .map(|k| net_at(self.family, k, len))
            .collect()
    }

    /// The entries of every shorter length, as prefixes.
    pub(crate) fn prefix_nets(&self) -> Vec<IpNet> {
        self.prefixes
            .keys()
            .flat_map(|&len| self.nets(SetKind::Prefix(len)))
            .collect()
    }

    /// The element changes from this state to `other` (a whole new list).
    pub(crate) fn delta_to(&self, other: &Self) -> Delta {
        let mut kinds = self.kinds();
        kinds.extend(other.kinds());
        kinds.sort_unstable();
        kinds.dedup();
        let mut delta = Delta::default();
        for kind in kinds {
            let change = crate::keys::diff(&self.elements(kind), &other.elements(kind));
            if !change.0.is_empty() || !change.1.is_empty() {
                delta.sets.insert(kind, change);
            }
        }
        delta
    }

    /// Works out adding (or removing) `entries` of this family, without changing anything.
    pub(crate) fn plan(&self, entries: &[IpNet], add: bool) -> Plan {
        let mut changes: BTreeMap<SetKind, Vec<Element>> = BTreeMap::new();
        for net in entries.iter().map(IpNet::trunc) {
            let (kind, key) = (kind_of(&net), key_of(&net));
            let held = self.set(kind).is_some_and(|keys| keys.contains(key));
            if held != add {
                changes.entry(kind).or_default().push(key);
            }
        }
        let mut plan = Plan::default();
        for (kind, mut keys) in changes {
            keys.sort_unstable();
            keys.dedup();
            let change = if add {
                (Vec::new(), keys)
            } else {
                (keys, Vec::new())
            };
            plan.delta.sets.insert(kind, change);
        }
        plan
    }

    /// Makes a plan's change, once the kernel took its delta.
    pub(crate) fn apply(&mut self, plan: Plan) {
        for (kind, (gone, came)) in plan.delta.sets {
            let keys = match kind {
                SetKind::Hash => &mut self.hosts,
                SetKind::Prefix(len) => self
                    .prefixes
                    .entry(len)
                    .or_insert_with(|| HostSet::from_keys(self.family, std::iter::empty())),
            };
            for k in gone {
                keys.remove(k);
            }
            for k in came {
                keys.insert(k);
            }
        }
        self.prefixes.retain(|_, keys| keys.len() > 0);
    }

    /// How many keys a set holds after a plan.
    pub(crate) fn count_after(&self, plan: &Plan, kind: SetKind) -> usize {
        let (gone, came) = plan.delta.of(kind);
        self.element_count(kind) + came.len() - gone.len()
    }

    /// Whether a host address is held.
    pub(crate) fn has_host(&self, key: u128) -> bool {
        self.hosts.contains(key)
    }

    /// Records host addresses the kernel now holds (added with a timeout).
    pub(crate) fn insert_hosts(&mut self, keys: &[u128]) {
        for &k in keys {
            self.hosts.insert(k);
        }
    }

    /// Forgets host addresses the kernel dropped by itself (their timeout passed).
    pub(crate) fn forget_hosts(&mut self, keys: &[u128]) {
        for k in keys {
            self.hosts.remove(*k);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn v4_net() -> impl Strategy<Value = IpNet> {
        // A small space, so that prefixes overlap, neighbour and repeat often.
        (0u32..64, prop_oneof![Just(32u8), 24u8..=31, 26u8..=30]).prop_map(|(a, len)| {
            let addr = Ipv4Addr::from(a << 4);
            IpNet::V4(ipnet::Ipv4Net::new(addr, len).unwrap().trunc())
        })
    }

    /// The delta applied as the kernel applies it: a delete must find the key, an add must
    /// find it free.
    fn apply_delta(elements: &[Element], (gone, came): (&[Element], &[Element])) -> Vec<Element> {
        let mut set: BTreeSet<u128> = elements.iter().copied().collect();
        for k in gone {
            assert!(set.remove(k), "deleting {k:#x} that is not there");
        }
        for &k in came {
            assert!(set.insert(k), "adding {k:#x} over one that is there");
        }
        set.into_iter().collect()
    }

    fn all_kinds(a: &FamilyState, b: &FamilyState) -> Vec<SetKind> {
        let mut kinds = a.kinds();
        kinds.extend(b.kinds());
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }

    #[test]
    fn each_length_has_its_set_longest_first() {
        let nets = [
            "10.0.0.0/8",
            "192.0.2.0/24",
            "192.0.2.7/32",
            "198.51.100.0/24",
        ]
        .map(|s| s.parse::<IpNet>().unwrap());
        let state = FamilyState::new(Family::V4, nets);
        assert_eq!(
            state.kinds(),
            [SetKind::Hash, SetKind::Prefix(24), SetKind::Prefix(8)]
        );
        assert_eq!(
            state.elements(SetKind::Prefix(24)),
            [0xc000_0200, 0xc633_6400]
        );
        assert_eq!(state.entries(), 4);
    }

    proptest! {
        /// After any sequence of adds and removes, the incrementally kept state holds what a
        /// state built from the resulting list holds, and each plan's element delta turns
        /// the sets' old keys into the new ones exactly.
        #[test]
        fn incremental_changes_match_a_rebuild(
            start in prop::collection::vec(v4_net(), 0..20),
            steps in prop::collection::vec((prop::collection::vec(v4_net(), 1..6), any::<bool>()), 1..12),
        ) {
            let mut state = FamilyState::new(Family::V4, start.iter().copied());
            let mut list: BTreeSet<IpNet> = start.iter().map(IpNet::trunc).collect();
            for (entries, add) in steps {
                let before = state.clone();
                let plan = state.plan(&entries, add);
                let delta = plan.delta.clone();
                state.apply(plan);
                for e in &entries {
                    if add { list.insert(e.trunc()); } else { list.remove(&e.trunc()); }
                }
                let rebuilt = FamilyState::new(Family::V4, list.iter().copied());
                prop_assert_eq!(state.kinds(), rebuilt.kinds());
                for kind in all_kinds(&before, &rebuilt) {
                    prop_assert_eq!(state.elements(kind), rebuilt.elements(kind));
                    prop_assert_eq!(apply_delta(&before.elements(kind), delta.of(kind)), rebuilt.elements(kind));
                }
                prop_assert_eq!(state.entries(), list.len() as u64);
            }
        }

        /// A whole-list change (a sync) turns one state's keys into the other's.
        #[test]
        fn whole_list_delta_turns_one_into_the_other(
            a in prop::collection::vec(v4_net(), 0..25),
            b in prop::collection::vec(v4_net(), 0..25),
        ) {
            let (sa, sb) = (FamilyState::new(Family::V4, a), FamilyState::new(Family::V4, b));
            let delta = sa.delta_to(&sb);
            for kind in all_kinds(&sa, &sb) {
                prop_assert_eq!(apply_delta(&sa.elements(kind), delta.of(kind)), sb.elements(kind));
            }
        }
    }
}
