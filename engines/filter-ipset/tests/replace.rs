//! A replace that fails half way (the IPv6 swap) leaves the old list in force in both
//! families: the IPv4 set already swapped is swapped back.

use conformance::{list_with_probes, objects, replace_failing_half_way};
use filter_core::EgressFilter;
use filter_ipset::Backend;
use filter_ipset::IpsetFilter;
use testbed::{DENIED_V4, Probe, Testbed};

#[test]
fn failed_replace_keeps_the_old_list_in_both_families() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut filter =
        IpsetFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Nft).unwrap();
    filter.load(&list_with_probes(300, 1)).unwrap();
    let new = replace_failing_half_way(&bed, &mut filter, IpsetFilter::fail_next_swap);
    // No staging set is left behind, and the replace works once nothing fails.
    let sets = objects(&filter_ipset::ENGINE, &bed, bed.tag().as_str());
    assert_eq!(
        sets.iter().filter(|s| s.starts_with("ipset")).count(),
        2,
        "{sets:?}"
    );
    filter.replace(&new).unwrap();
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
    filter.teardown().unwrap();
    assert!(objects(&filter_ipset::ENGINE, &bed, bed.tag().as_str()).is_empty());
}
