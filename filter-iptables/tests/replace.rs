//! A replace that fails half way (the IPv6 transaction) leaves the old list in force in both
//! families: the IPv4 chain already rewritten is put back.

use filter_core::generate::{Mix, generate};
use filter_core::{EgressFilter, Family};
use filter_iptables::{Backend, IptablesFilter};
use testbed::{ALLOWED_V4, DENIED_V4, DENIED_V6, Probe, Testbed, denied_probe_nets};

#[test]
fn failed_replace_keeps_the_old_list_in_both_families() {
    for backend in [Backend::Legacy, Backend::Nft] {
        let bed = Testbed::new().unwrap();
        let mut filter = IptablesFilter::new(bed.client().clone(), bed.tag().clone(), backend);
        let mut old = generate(300, 1, Mix::Default, &Family::BOTH);
        old.extend(denied_probe_nets());
        filter.load(&old).unwrap();
        // An add since the load is part of what must come back.
        filter.add(&["198.19.254.77/32".parse().unwrap()]).unwrap();
        let before = filter.stats().unwrap();

        // The new list lacks the probes: had its IPv4 half stayed, DENIED_V4 would pass.
        let new = generate(500, 2, Mix::Default, &Family::BOTH);
        filter.fail_next_ipv6_transaction();
        let err = filter.replace(&new).unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        for (addr, expected) in [
            (DENIED_V4.into(), Probe::Dropped),
            (DENIED_V6.into(), Probe::Dropped),
            (ALLOWED_V4.into(), Probe::Delivered),
        ] {
            assert_eq!(bed.probe(addr).unwrap(), expected, "{backend:?} {addr}");
        }
        let after = filter.stats().unwrap();
        assert_eq!(
            (after.entries_v4, after.entries_v6),
            (before.entries_v4, before.entries_v6),
            "{backend:?}"
        );
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
