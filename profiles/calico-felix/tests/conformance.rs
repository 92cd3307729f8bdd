//! The shared engine checks against the real kernel, and Felix's own limit.

mod felix {
    conformance::conformance_tests!(filter_calico_felix::ENGINE, "calico-felix");
}

use filter_core::CidrList;
use filter_ipset::IpsetOptions;
use testbed::{DENIED_V4, Probe, Testbed, denied_probe_nets};

/// A list one entry longer than the set's maxelem fails as Felix failed, by name (the
/// kernel's "Hash is full" and Felix's MaxIpsetSize), and leaves nothing behind. A small
/// maxelem stands for Felix's 1,048,576 (the sweep runs the real one).
#[test]
fn one_past_max_ipset_size_fails_by_name_and_leaves_nothing() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut list = filter_core::generate::generate(
        1_000,
        3,
        filter_core::generate::Mix::Hosts,
        &[filter_core::Family::V4],
    );
    list.extend(
        denied_probe_nets()
            .into_iter()
            .filter(|n| n.addr().is_ipv4()),
    );
    let at = filter_core::engine::Placement {
        netns: bed.client().clone(),
        tag: bed.tag().clone(),
        target: filter_core::Target::egress(bed.client_link()),
        options: filter_core::Options::default().with(IpsetOptions {
            maxelem: Some(1_001),
            ..IpsetOptions::default()
        }),
    };
    let mut filter = (filter_calico_felix::ENGINE.variants[0].build)(&at).unwrap();
    let err = filter.load(&list).unwrap_err().to_string();
    assert!(
        err.contains("MaxIpsetSize") && err.contains("Hash is full"),
        "{err}"
    );
    assert!(
        conformance::objects(&filter_calico_felix::ENGINE, &bed, bed.tag().as_str()).is_empty()
    );
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
    // At the limit it loads, and drops.
    let fits: CidrList = list.iter().skip(1).collect();
    filter.load(&fits).unwrap();
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    // The record says how long Felix's full restore and listing took, against its window.
    let backend = filter.backend();
    assert!(
        backend.contains("a full ipset restore took") && backend.contains("liveness window: 20 s"),
        "{backend}"
    );
    assert!(filter.warnings().is_empty(), "{:?}", filter.warnings());
}
