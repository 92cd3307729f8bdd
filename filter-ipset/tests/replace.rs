//! A replace that fails half way (the IPv6 swap) leaves the old list in force in both
//! families: the IPv4 set already swapped is swapped back.

use filter_core::generate::{Mix, generate};
use filter_core::{EgressFilter, Family};
use filter_ipset::IpsetFilter;
use filter_iptables::Backend;
use testbed::{
    ALLOWED_V4, DENIED_V4, DENIED_V6, Probe, Testbed, denied_probe_nets, filter_objects,
};

#[test]
fn failed_replace_keeps_the_old_list_in_both_families() {
    let bed = Testbed::new().unwrap();
    let mut filter =
        IpsetFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Nft).unwrap();
    let mut old = generate(300, 1, Mix::Default, &Family::BOTH);
    old.extend(denied_probe_nets());
    filter.load(&old).unwrap();
    let before = filter.stats().unwrap();

    // The new list lacks the probes: had its IPv4 half stayed, DENIED_V4 would pass.
    let new = generate(500, 2, Mix::Default, &Family::BOTH);
    filter.fail_next_ipv6_swap();
    let err = filter.replace(&new).unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    for (addr, expected) in [
        (DENIED_V4.into(), Probe::Dropped),
        (DENIED_V6.into(), Probe::Dropped),
        (ALLOWED_V4.into(), Probe::Delivered),
    ] {
        assert_eq!(bed.probe(addr).unwrap(), expected, "{addr}");
    }
    let after = filter.stats().unwrap();
    assert_eq!(
        (after.entries_v4, after.entries_v6),
        (before.entries_v4, before.entries_v6)
    );
    // No staging set is left behind, and the replace works once nothing fails.
    let sets = filter_objects(&bed, bed.tag().as_str());
    assert_eq!(
        sets.iter().filter(|s| s.starts_with("ipset")).count(),
        2,
        "{sets:?}"
    );
    filter.replace(&new).unwrap();
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
    filter.teardown().unwrap();
    assert!(filter_objects(&bed, bed.tag().as_str()).is_empty());
}
