//! The shared engine checks against the real kernel for both identity models, and the
//! limits where Cilium broke: the policy map (cilium#14377) and the ipcache.

mod per_cidr {
    conformance::conformance_tests!(filter_cilium_model::ENGINE, "cilium");
}

mod cidr_group {
    conformance::conformance_tests!(filter_cilium_model::ENGINE, "cilium-cidr-group");
}

use filter_cilium_model::{CILIUM, CILIUM_CIDR_GROUP, CiliumOptions, ENGINE};
use filter_core::{CidrList, EgressFilter, Family};
use testbed::{ALLOWED_V4, DENIED_V4, Probe, Testbed, denied_probe_nets};

/// An IPv4 list of exactly `len` entries with the denied probes' networks in it.
fn list_of(len: usize) -> CidrList {
    let probes: Vec<_> = denied_probe_nets()
        .into_iter()
        .filter(|n| n.addr().is_ipv4())
        .collect();
    let generated = filter_core::generate::generate(
        len - probes.len(),
        5,
        filter_core::generate::Mix::Hosts,
        &[Family::V4],
    );
    let list: CidrList = generated.iter().chain(probes).collect();
    assert_eq!(list.len(), len);
    list
}

fn build(bed: &Testbed, variant: &str, policy_map_max: Option<u32>) -> Box<dyn EgressFilter> {
    let at = filter_core::engine::Placement {
        netns: bed.client().clone(),
        tag: bed.tag().clone(),
        target: filter_core::Target::egress(bed.client_link()),
        options: filter_core::Options::default().with(CiliumOptions { policy_map_max }),
    };
    let variant = ENGINE.variants.iter().find(|v| v.name == variant).unwrap();
    (variant.build)(&at).unwrap()
}

/// The list fails naming `limit`, nothing is hooked, and traffic flows.
fn fails_naming(bed: &Testbed, filter: &mut dyn EgressFilter, list: &CidrList, limit: &str) {
    let err = filter.load(list).unwrap_err().to_string();
    assert!(err.contains(limit), "{err}");
    assert!(conformance::objects(&ENGINE, bed, bed.tag().as_str()).is_empty());
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
}

/// With Cilium's default policy map (16,384 entries) the per-CIDR model holds 16,383 CIDRs
/// (the allow policy's wildcard entry takes the last slot) and refuses one more by the map's
/// name; the CIDR-group model holds the longer list.
#[test]
fn the_default_policy_map_is_the_per_cidr_limit() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut filter = build(&bed, CILIUM, None);
    fails_naming(
        &bed,
        filter.as_mut(),
        &list_of(16_384),
        "bpf-policy-map-max",
    );
    filter.load(&list_of(16_383)).unwrap();
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    assert_eq!(bed.probe(ALLOWED_V4.into()).unwrap(), Probe::Delivered);
    // A change past the limit is refused and leaves the list as it was.
    let held: std::collections::BTreeSet<_> = filter.held().unwrap().iter().collect();
    let extra: Vec<_> = list_of(16_384)
        .iter()
        .filter(|n| !held.contains(n))
        .collect();
    assert!(!extra.is_empty());
    let err = filter.add(&extra).unwrap_err().to_string();
    assert!(err.contains("cilium_policy"), "{err}");
    assert_eq!(filter.held().unwrap().len(), 16_383);
    let count = filter.kernel_count().unwrap().unwrap();
    assert!(count.agrees(), "{count:?}");
    drop(filter);
    let mut group = build(&bed, CILIUM_CIDR_GROUP, None);
    group.load(&list_of(16_384)).unwrap();
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
}

/// Raised to Cilium's largest policy map, the per-CIDR model still fails at 100,000 CIDRs
/// as the published benchmark did (cilium#14377); a CIDR group holds them.
#[test]
fn a_hundred_thousand_cidrs_need_a_cidr_group() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let list = list_of(100_000);
    let mut filter = build(&bed, CILIUM, Some(65_536));
    fails_naming(&bed, filter.as_mut(), &list, "cilium_policy");
    drop(filter);
    let mut group = build(&bed, CILIUM_CIDR_GROUP, Some(65_536));
    group.load(&list).unwrap();
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    assert_eq!(bed.probe(ALLOWED_V4.into()).unwrap(), Probe::Delivered);
    assert_eq!(group.stats().unwrap().entries_v4, 100_000);
}

/// Every CIDR takes an ipcache entry: past 512,000 the CIDR-group model fails naming the
/// ipcache; Cilium's other limits reject a policy map outside 256..65,536.
#[test]
fn the_ipcache_caps_the_cidr_group() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut group = build(&bed, CILIUM_CIDR_GROUP, None);
    fails_naming(&bed, group.as_mut(), &list_of(512_001), "cilium_ipcache");
    let at = filter_core::engine::Placement {
        netns: bed.client().clone(),
        tag: bed.tag().clone(),
        target: filter_core::Target::egress(bed.client_link()),
        options: filter_core::Options::default().with(CiliumOptions {
            policy_map_max: Some(65_537),
        }),
    };
    let err = (ENGINE.variants[0].build)(&at).err().unwrap().to_string();
    assert!(err.contains("256..65536"), "{err}");
}
