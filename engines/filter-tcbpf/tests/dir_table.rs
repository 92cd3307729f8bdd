//! The constant-time table against the plain definition: an address is denied when any
//! prefix of the list contains it. Lists are drawn inside one /14 so that prefixes overlap
//! and share /24s; every address of that /14 is checked, after a build and after every
//! incremental add or remove.

use std::net::Ipv4Addr;

use filter_tcbpf::dir::Dir24;
use ipnet::Ipv4Net;
use proptest::prelude::*;

/// The region the lists live in: 10.0.0.0/14 (262,144 addresses, 1,024 /24s).
const BASE: u32 = 0x0a00_0000;
const REGION_BITS: u32 = 18;

fn in_region() -> impl Strategy<Value = Ipv4Net> {
    (14u8..=32, 0u32..(1 << REGION_BITS)).prop_map(|(len, offset)| {
        Ipv4Net::new(Ipv4Addr::from(BASE + offset), len)
            .expect("lengths are <= 32")
            .trunc()
    })
}

fn denied_by_list(list: &[Ipv4Net], addr: Ipv4Addr) -> bool {
    list.iter().any(|n| n.contains(&addr))
}

/// Compares the table with the list on every address of the region and the edges around it.
fn check(
    table: &Dir24<impl filter_tcbpf::dir::Store>,
    list: &[Ipv4Net],
) -> Result<(), TestCaseError> {
    let edges = [BASE - 1, BASE + (1 << REGION_BITS)];
    for a in (BASE..BASE + (1 << REGION_BITS)).chain(edges) {
        let addr = Ipv4Addr::from(a);
        prop_assert_eq!(
            table.denies(addr),
            denied_by_list(list, addr),
            "address {} with list {:?}",
            addr,
            list
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Change {
    Add(Ipv4Net),
    /// Removes the list's entry at this index (modulo its length), or a prefix not in it.
    Remove(usize, Ipv4Net),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        in_region().prop_map(Change::Add),
        (any::<usize>(), in_region()).prop_map(|(i, n)| Change::Remove(i, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn build_matches_the_list(list in prop::collection::vec(in_region(), 0..200)) {
        let table = Dir24::build(&list);
        check(&table, &list)?;
    }

    #[test]
    fn changes_match_the_list(
        list in prop::collection::vec(in_region(), 0..60),
        changes in prop::collection::vec(change(), 1..40),
    ) {
        let mut table = Dir24::build(&list);
        let mut now: Vec<Ipv4Net> = list.clone();
        now.sort();
        now.dedup();
        for change in changes {
            match change {
                Change::Add(net) => {
                    let added = table.add(net).expect("an owned table never fills up");
                    prop_assert_eq!(added, !now.contains(&net));
                    if added {
                        now.push(net);
                    }
                }
                Change::Remove(i, other) => {
                    let net = if now.is_empty() || i % 3 == 0 { other } else { now[i % now.len()] };
                    let removed = table.remove(net).expect("an owned table never fills up");
                    prop_assert_eq!(removed, now.contains(&net));
                    now.retain(|n| *n != net);
                }
            }
            check(&table, &now)?;
            prop_assert_eq!(table.len(), now.len());
        }
        // Chunks are given back: every chunk in use is one a slot points to.
        prop_assert_eq!(table.chunks_used() as usize, table.slots_with_chunks());
    }
}
