//! A list as an interval set holds it: overlapping and adjacent prefixes merged into ranges,
//! each range a start element and (unless it runs to the last address) an end element one
//! past it, as `nft` sends them. The kernel's interval sets refuse overlaps, so merging is
//! ours to do; adds and removes become the difference between two element sets.

use ipnet::IpNet;

/// One family's address width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Width {
    /// IPv4: 32 bits.
    V4,
    /// IPv6: 128 bits.
    V6,
}

impl Width {
    fn max(self) -> u128 {
        match self {
            Width::V4 => u128::from(u32::MAX),
            Width::V6 => u128::MAX,
        }
    }

    /// Key bytes of an address: 4 or 16, network order.
    pub(crate) fn key(self, addr: u128) -> Vec<u8> {
        match self {
            #[expect(clippy::cast_possible_truncation, reason = "IPv4 keys are below 2^32")]
            Width::V4 => (addr as u32).to_be_bytes().to_vec(),
            Width::V6 => addr.to_be_bytes().to_vec(),
        }
    }
}

/// The first and last address of a network.
pub(crate) fn bounds(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// Inclusive ranges covering `nets` (one family), overlaps and neighbours merged, in order.
#[cfg(test)]
pub(crate) fn merge<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> Vec<(u128, u128)> {
    merge_ranges(nets.into_iter().map(bounds).collect())
}

/// `ranges` sorted, overlaps and neighbours merged.
pub(crate) fn merge_ranges(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Whether an element closes a range (`NFT_SET_ELEM_INTERVAL_END`) or opens one.
pub(crate) type IsEnd = bool;

/// One element of a set: its key (an address) and whether it closes a range.
pub(crate) type Element = (u128, IsEnd);

/// The elements an interval set holds for `ranges`, in key order: a start per range, an end
/// one past it unless the range runs to the last address, and an end at address 0 when no
/// range starts there (the rbtree back-end's lower bound, as `nft` sends it).
pub(crate) fn elements(ranges: &[(u128, u128)], width: Width) -> Vec<Element> {
    element_iter(ranges.iter().copied(), width).collect()
}

/// [`elements`] one at a time, for ranges given in key order: what a load streams into its
/// transactions without holding every element at once.
pub(crate) fn element_iter(
    ranges: impl Iterator<Item = (u128, u128)>,
    width: Width,
) -> impl Iterator<Item = Element> {
    let mut ranges = ranges.peekable();
    let lower_bound = ranges
        .peek()
        .is_some_and(|&(start, _)| start != 0)
        .then_some((0, true));
    lower_bound
        .into_iter()
        .chain(ranges.flat_map(move |(start, end)| {
            let close = (end < width.max()).then(|| (end + 1, true));
            std::iter::once((start, false)).chain(close)
        }))
}

/// How many elements [`elements`] gives for `ranges` (in key order), without making them.
pub(crate) fn element_count(ranges: impl Iterator<Item = (u128, u128)>, width: Width) -> usize {
    let mut count = 0;
    let mut first = true;
    for (start, end) in ranges {
        if first && start != 0 {
            count += 1;
        }
        first = false;
        count += 1 + usize::from(end < width.max());
    }
    count
}

/// What turns the elements `old` into `new` (both in key order, keys unique): those to
/// delete, then those to add. An element whose flag changes is in both.
pub(crate) fn diff(old: &[Element], new: &[Element]) -> (Vec<Element>, Vec<Element>) {
    let (mut gone, mut came) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => (i, j) = (i + 1, j + 1),
            (Some(a), Some(b)) if a.0 == b.0 => {
                gone.push(*a);
                came.push(*b);
                (i, j) = (i + 1, j + 1);
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                gone.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                gone.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                came.push(*b);
                j += 1;
            }
            (None, None) => unreachable!("the loop ends first"),
        }
    }
    (gone, came)
}

/// Whether an address is inside the ranges the elements describe (what the kernel's lookup
/// answers): the nearest element at or below it is a start.
#[cfg(test)]
pub(crate) fn covers(elements: &[Element], addr: u128) -> bool {
    let at = elements.partition_point(|&(k, _)| k <= addr);
    at > 0 && !elements[at - 1].1
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn nets(text: &[&str]) -> Vec<IpNet> {
        text.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn overlaps_and_neighbours_merge_as_nft_sends_them() {
        let list = nets(&[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "192.0.2.1/32",
            "192.0.2.2/31",
            "255.255.255.0/24",
        ]);
        let ranges = merge(&list);
        assert_eq!(
            ranges,
            [
                (0x0a00_0000, 0x0aff_ffff),
                (0xc000_0201, 0xc000_0203),
                (0xffff_ff00, 0xffff_ffff)
            ]
        );
        let els = elements(&ranges, Width::V4);
        // What `nft --debug=netlink` shows for the same set: a leading end at 0, each range's
        // start and its end one past it, none after a range that runs to the last address.
        assert_eq!(
            els,
            [
                (0, true),
                (0x0a00_0000, false),
                (0x0b00_0000, true),
                (0xc000_0201, false),
                (0xc000_0204, true),
                (0xffff_ff00, false)
            ]
        );
        // A range up to the last IPv6 address has no end element (and no overflow).
        assert_eq!(elements(&[(0, u128::MAX)], Width::V6), [(0, false)]);
        assert_eq!(element_count([(0, u128::MAX)].into_iter(), Width::V6), 1);
    }

    fn v4_net() -> impl Strategy<Value = IpNet> {
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, len)| IpNet::V4(ipnet::Ipv4Net::new(a.into(), len).unwrap().trunc()))
    }

    proptest! {
        /// The elements match exactly the addresses the prefixes cover, and the difference
        /// between two lists' elements turns one into the other.
        #[test]
        fn elements_cover_exactly_the_list(
            a in prop::collection::vec(v4_net(), 0..30),
            b in prop::collection::vec(v4_net(), 0..30),
            probes in prop::collection::vec(any::<u32>(), 50),
        ) {
            let (ea, eb) = (elements(&merge(&a), Width::V4), elements(&merge(&b), Width::V4));
            prop_assert_eq!(element_count(merge(&a).into_iter(), Width::V4), ea.len());
            for &p in &probes {
                let inside = a.iter().any(|n| n.contains(&IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(p)))));
                prop_assert_eq!(covers(&ea, u128::from(p)), inside);
            }
            // Ends never sit on a start (neighbours are merged), so keys are unique by value.
            let (gone, came) = diff(&ea, &eb);
            let mut applied: std::collections::BTreeMap<u128, IsEnd> = ea.iter().copied().collect();
            for (k, _) in gone { applied.remove(&k); }
            for (k, v) in came { applied.insert(k, v); }
            prop_assert_eq!(applied.into_iter().collect::<Vec<_>>(), eb);
        }
    }
}
