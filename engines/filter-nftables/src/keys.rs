//! Set keys: an entry is the network address of its prefix, at its family's width, in the
//! hash set of its prefix length; adds and removes become the difference between two sorted
//! key lists.

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
    /// Key bytes of an address: 4 or 16, network order.
    pub(crate) fn key(self, addr: u128) -> Vec<u8> {
        match self {
            #[expect(clippy::cast_possible_truncation, reason = "IPv4 keys are below 2^32")]
            Width::V4 => (addr as u32).to_be_bytes().to_vec(),
            Width::V6 => addr.to_be_bytes().to_vec(),
        }
    }

    /// The netmask of a prefix length, as an address of this width.
    pub(crate) fn mask(self, prefix_len: u8) -> u128 {
        let bits = match self {
            Width::V4 => 32,
            Width::V6 => 128,
        };
        let ones = u32::from(prefix_len.min(bits));
        if ones == 0 {
            return 0;
        }
        let all = match self {
            Width::V4 => u128::from(u32::MAX),
            Width::V6 => u128::MAX,
        };
        all & !(all >> ones)
    }
}

/// A set element: the network address of an entry.
pub(crate) type Element = u128;

/// The network address of an entry, host bits cleared.
pub(crate) fn key_of(net: &IpNet) -> u128 {
    match net.trunc() {
        IpNet::V4(n) => u128::from(u32::from(n.network())),
        IpNet::V6(n) => u128::from(n.network()),
    }
}

/// What turns the keys `old` into `new` (both ascending, unique): those to delete and those
/// to add.
pub(crate) fn diff(old: &[Element], new: &[Element]) -> (Vec<Element>, Vec<Element>) {
    let (mut gone, mut came) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => (i, j) = (i + 1, j + 1),
            (Some(a), Some(b)) if a < b => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_keys_at_both_widths() {
        assert_eq!(Width::V4.mask(24), 0xffff_ff00);
        assert_eq!(Width::V4.mask(32), 0xffff_ffff);
        assert_eq!(Width::V4.mask(0), 0);
        assert_eq!(Width::V6.mask(64), u128::MAX << 64);
        assert_eq!(Width::V4.key(0xc000_0201), [192, 0, 2, 1]);
        assert_eq!(key_of(&"192.0.2.77/24".parse().unwrap()), 0xc000_0200);
    }

    #[test]
    fn diff_names_what_goes_and_what_comes() {
        assert_eq!(diff(&[1, 3, 5], &[3, 4, 5, 9]), (vec![1], vec![4, 9]));
        assert_eq!(diff(&[], &[2]), (vec![], vec![2]));
    }
}
