//! A replace that fails half way (the IPv6 transaction) leaves the old list in force in both
//! families: the IPv4 chain already rewritten is put back.

use conformance::{list_with_probes, replace_failing_half_way};
use filter_core::EgressFilter;
use filter_iptables::{Backend, IptablesFilter};
use testbed::{DENIED_V4, Probe, Testbed};

#[test]
fn failed_replace_keeps_the_old_list_in_both_families() {
    testbed::needs_root!();
    for backend in [Backend::Legacy, Backend::Nft] {
        let bed = Testbed::new().unwrap();
        let mut filter = IptablesFilter::new(bed.client().clone(), bed.tag().clone(), backend);
        filter.load(&list_with_probes(300, 1)).unwrap();
        // An add since the load is part of what must come back.
        filter.add(&["198.19.254.77/32".parse().unwrap()]).unwrap();
        let new = replace_failing_half_way(&bed, &mut filter, |f| {
            f.fail_next_swap();
        });
        let rules = filter_core::run_command(&mut bed.client().command(match backend {
            Backend::Legacy => "iptables-legacy-save",
            Backend::Nft => "iptables-nft-save",
        }))
        .unwrap();
        assert!(
            rules.contains("198.19.254.77/32"),
            "{backend:?}: the add is back"
        );
        // The replace works once nothing fails.
        filter.replace(&new).unwrap();
        assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
        filter.teardown().unwrap();
    }
}
