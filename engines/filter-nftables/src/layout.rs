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

/// The size a hosts' hash set is made with: room to double, and 65,536 at least.
pub(crate) fn hash_size(hosts: usize) -> u32 {
    u32::try_from((hosts * 2).max(1 << 16)).unwrap_or(u32::MAX)
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
