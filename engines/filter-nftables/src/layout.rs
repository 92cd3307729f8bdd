//! How the table is laid out: its sets per family and generation, their names and sizes,
//! and elements described for errors.

use filter_core::{CidrList, Family};
use ipnet::IpNet;

use crate::keys::{Element, Width};
use crate::messages::SetKind;
use crate::state::FamilyState;

/// A set of a generation as made in the kernel: its family, what it holds, its size.
pub(crate) type MadeSet = (Family, SetKind, u32);

/// The sets `families` need, sized for them: per family the hosts' set and a set per
/// shorter length the list holds (see [`FamilyState::kinds`]).
pub(crate) fn sets_for(families: &[FamilyState; 2]) -> Vec<MadeSet> {
    Family::BOTH
        .into_iter()
        .flat_map(|family| {
            let state = &families[family_index(family)];
            state
                .kinds()
                .into_iter()
                .map(move |kind| (family, kind, hash_size(state.element_count(kind))))
        })
        .collect()
}

/// The largest size a fixed-size hash set can be made with: the kernel allocates
/// `roundup_pow_of_two(size * 4 / 3)` bucket heads of 8 bytes in one block, which must stay
/// below 2 GiB (`kvmalloc`'s `INT_MAX`): 2^27 buckets, so at most 3 * 2^25 = 100,663,296
/// elements. Past it the kernel answers `ENOMEM` to the set's creation (measured at 100M
/// hosts, sized 2x: 2^28 buckets).
pub(crate) const MAX_HASH_SIZE: u32 = 3 << 25;

/// The size a hash set is made with: room to double, 65,536 at least, and
/// [`MAX_HASH_SIZE`] at most.
pub(crate) fn hash_size(keys: usize) -> u32 {
    u32::try_from((keys * 2).max(1 << 16))
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

/// A set of a generation: `h4-0` (IPv4 hosts), `p4-24-0` (IPv4 /24s), `h6-0`, `p6-48-0`.
pub(crate) fn set_name(family: Family, kind: SetKind, generation: u32) -> String {
    let digit = match family {
        Family::V4 => 4,
        Family::V6 => 6,
    };
    match kind {
        SetKind::Hash => format!("h{digit}-{generation}"),
        SetKind::Prefix(len) => format!("p{digit}-{len}-{generation}"),
    }
}

/// An element as text, for errors: the host or network it stands for.
pub(crate) fn describe(family: Family, kind: SetKind, key: Element) -> String {
    let addr: std::net::IpAddr = match family {
        #[expect(clippy::cast_possible_truncation, reason = "IPv4 keys are below 2^32")]
        Family::V4 => std::net::Ipv4Addr::from(key as u32).into(),
        Family::V6 => std::net::Ipv6Addr::from(key).into(),
    };
    match kind {
        SetKind::Hash => format!("address {addr}"),
        SetKind::Prefix(len) => format!("network {addr}/{len}"),
    }
}
