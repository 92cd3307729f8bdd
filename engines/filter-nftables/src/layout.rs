//! How the table is laid out: its sets per family and generation, their names and sizes,
//! and elements described for errors.

use filter_core::{CidrList, Family};
use ipnet::IpNet;

use crate::intervals::{Element, Width};
use crate::messages::SetKind;
use crate::state::FamilyState;

/// The sets of a table generation: per family, the hosts' hash and the ranges' tree.
pub(crate) const SETS: [(Family, SetKind); 4] = [
    (Family::V4, SetKind::Hash),
    (Family::V4, SetKind::Interval),
    (Family::V6, SetKind::Hash),
    (Family::V6, SetKind::Interval),
];

/// The largest size a fixed-size hash set can be made with: the kernel allocates
/// `roundup_pow_of_two(size * 4 / 3)` bucket heads of 8 bytes in one block, which must stay
/// below 2 GiB (`kvmalloc`'s `INT_MAX`): 2^27 buckets, so at most 3 * 2^25 = 100,663,296
/// elements. Past it the kernel answers `ENOMEM` to the set's creation (measured at 100M
/// hosts, sized 2x: 2^28 buckets).
pub(crate) const MAX_HASH_SIZE: u32 = 3 << 25;

/// The size a hosts' hash set is made with: room to double, 65,536 at least, and
/// [`MAX_HASH_SIZE`] at most.
pub(crate) fn hash_size(hosts: usize) -> u32 {
    u32::try_from((hosts * 2).max(1 << 16))
        .unwrap_or(u32::MAX)
        .min(MAX_HASH_SIZE)
}

pub(crate) fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

pub(crate) fn width(family: Family) -> Width {
    match family {
        Family::V4 => Width::V4,
        Family::V6 => Width::V6,
    }
}

pub(crate) fn state_of(list: &CidrList, family: Family) -> FamilyState {
    match family {
        Family::V4 => FamilyState::new(family, list.v4().iter().map(|&n| IpNet::V4(n))),
        Family::V6 => FamilyState::new(family, list.v6().iter().map(|&n| IpNet::V6(n))),
    }
}

/// A set of a generation: `h4-0` (IPv4 hosts), `v4-0` (IPv4 ranges), `h6-0`, `v6-0`.
pub(crate) fn set_name(family: Family, kind: SetKind, generation: u32) -> String {
    let prefix = match kind {
        SetKind::Hash => 'h',
        SetKind::Interval => 'v',
    };
    let digit = match family {
        Family::V4 => 4,
        Family::V6 => 6,
    };
    format!("{prefix}{digit}-{generation}")
}

/// An element as text, for errors: the address, and whether it closes a range.
pub(crate) fn describe(family: Family, kind: SetKind, (key, is_end): Element) -> String {
    let addr: std::net::IpAddr = match family {
        #[expect(clippy::cast_possible_truncation, reason = "IPv4 keys are below 2^32")]
        Family::V4 => std::net::Ipv4Addr::from(key as u32).into(),
        Family::V6 => std::net::Ipv6Addr::from(key).into(),
    };
    match (kind, is_end) {
        (SetKind::Hash, _) => format!("address {addr}"),
        (SetKind::Interval, true) => format!("the end of a range before {addr}"),
        (SetKind::Interval, false) => format!("a range from {addr}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest size keeps the kernel's bucket block (a power of two of 8-byte heads, for
    /// 4/3 of the size) below 2 GiB; twice a list of 100M hosts would not.
    #[test]
    fn hash_sizes_stay_under_the_kernel_s_block_limit() {
        let buckets = |size: u32| (u64::from(size) * 4 / 3).next_power_of_two();
        assert!(buckets(MAX_HASH_SIZE) * 8 < 1 << 31);
        assert!(buckets(MAX_HASH_SIZE + 1) * 8 >= 1 << 31);
        assert_eq!(hash_size(89_000_000), MAX_HASH_SIZE);
        assert_eq!(hash_size(10), 1 << 16);
    }
}
