//! The nftables engine against the kernel and against `nft` itself.

use conformance::{list_with_probes, objects, replace_failing_half_way};
use filter_core::{CidrList, EgressFilter, Error};
use filter_nftables::NftablesFilter;
use testbed::{DENIED_V4, Probe, Testbed};

/// Every set of the filter's table and its elements as `nft list table` prints them, set
/// names without their generation (`p4-24`), elements sorted (a hash set lists them in
/// bucket order).
fn listed_sets(bed: &Testbed) -> std::collections::BTreeMap<String, Vec<String>> {
    let out = filter_core::run_command(bed.client().command("nft").args([
        "list",
        "table",
        "inet",
        bed.tag().as_str(),
    ]))
    .unwrap();
    let mut sets = std::collections::BTreeMap::new();
    let mut rest = out.as_str();
    while let Some(at) = rest.find("\tset ").or_else(|| rest.find(" set ")) {
        rest = &rest[at..];
        let name = rest.split_whitespace().nth(1).unwrap();
        let name = name.rsplit_once('-').map_or(name, |(n, _)| n).to_owned();
        let end = rest.find("\n\t}").unwrap_or(rest.len());
        let body = &rest[..end];
        let mut elements: Vec<String> = body
            .find("elements = {")
            .map(|i| {
                let inner = &body[i + "elements = {".len()..];
                let inner = &inner[..inner.find('}').unwrap_or(inner.len())];
                inner
                    .split(',')
                    .map(|e| e.trim().to_owned())
                    .filter(|e| !e.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        elements.sort();
        sets.insert(name, elements);
        rest = &rest[end..];
    }
    sets
}

/// `nft list sets inet` in the testbed: the sets of every generation there.
fn set_names(bed: &Testbed) -> String {
    filter_core::run_command(bed.client().command("nft").args(["list", "sets", "inet"])).unwrap()
}

/// What the engine sent is what `nft -f` makes of the same ruleset text, as `nft list`
/// prints both: host addresses in the hosts' sets, every shorter length in a set of its own
/// (overlapping prefixes each in theirs), IPv6 alike.
#[test]
fn sets_read_back_as_nft_makes_them() {
    testbed::needs_root!();
    let text = "10.0.0.0/8\n10.1.0.0/16\n192.0.2.1\n192.0.2.2/31\n198.51.100.0/25\n\
                198.51.100.128/25\n255.255.255.0/24\n2001:db8::/32\n2001:db8:1::/48\n\
                2001:db9::1\nffff::/16\n";
    let list = CidrList::parse(text.as_bytes(), "test", &Default::default()).unwrap();
    let mut printed = Vec::new();
    for make in [NftablesFilter::new, NftablesFilter::reference] {
        let bed = Testbed::new().unwrap();
        let mut filter = make(bed.client().clone(), bed.tag().clone()).unwrap();
        filter.load(&list).unwrap();
        printed.push(listed_sets(&bed));
        filter.teardown().unwrap();
    }
    assert_eq!(printed[0], printed[1]);
    let expected: Vec<(&str, Vec<&str>)> = vec![
        ("h4", vec!["192.0.2.1"]),
        ("h6", vec!["2001:db9::1"]),
        ("p4-16", vec!["10.1.0.0"]),
        ("p4-24", vec!["255.255.255.0"]),
        ("p4-25", vec!["198.51.100.0", "198.51.100.128"]),
        ("p4-31", vec!["192.0.2.2"]),
        ("p4-8", vec!["10.0.0.0"]),
        ("p6-16", vec!["ffff::"]),
        ("p6-32", vec!["2001:db8::"]),
        ("p6-48", vec!["2001:db8:1::"]),
    ];
    let expected: std::collections::BTreeMap<String, Vec<String>> = expected
        .into_iter()
        .map(|(n, e)| (n.to_owned(), e.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(printed[0], expected);
}

/// A replace whose last transaction (rules to the new sets, old sets deleted) the kernel
/// refuses leaves the old list in force in both families, and the new sets are gone.
#[test]
fn failed_swap_keeps_the_old_list_in_both_families() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut filter = NftablesFilter::new(bed.client().clone(), bed.tag().clone()).unwrap();
    filter.load(&list_with_probes(300, 1)).unwrap();
    let new = replace_failing_half_way(&bed, &mut filter, NftablesFilter::fail_next_swap);
    let sets = set_names(&bed);
    assert!(!sets.contains("h4-1"), "the new sets are removed: {sets}");
    filter.replace(&new).unwrap();
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
    filter.teardown().unwrap();
    let left = objects(&filter_nftables::ENGINE, &bed, bed.tag().as_str());
    assert!(left.is_empty(), "{left:?}");
}

/// When the kernel refuses a change (here a remove of an element someone else deleted from
/// the set behind the engine's back), the error names the set and the network, and the
/// whole call is undone: the other entry of the call is still enforced.
#[test]
fn a_kernel_refusal_names_the_network_and_changes_nothing() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut filter = NftablesFilter::new(bed.client().clone(), bed.tag().clone()).unwrap();
    filter.load(&list_with_probes(10, 1)).unwrap();
    let (net, host): (ipnet::IpNet, ipnet::IpNet) = (
        "192.0.2.0/24".parse().unwrap(),
        "198.51.100.7/32".parse().unwrap(),
    );
    filter.add(&[net, host]).unwrap();
    let before = filter.stats().unwrap().entries_v4;
    filter_core::run_command(bed.client().command("nft").args([
        "delete",
        "element",
        "inet",
        bed.tag().as_str(),
        "p4-24-0",
        "{ 192.0.2.0 }",
    ]))
    .unwrap();
    let err = filter.remove(&[net, host]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Kernel { code: 2, .. }), "{text}");
    assert!(
        text.contains("set p4-24-0") && text.contains("192.0.2.0/24"),
        "{text}"
    );
    let hosts = listed_sets(&bed).remove("h4").unwrap();
    assert!(hosts.contains(&"198.51.100.7".to_owned()), "{hosts:?}");
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    assert_eq!(filter.stats().unwrap().entries_v4, before);
    filter.teardown().unwrap();
}

/// Adding more host addresses than the hosts' hash set was sized for swaps in sets sized for
/// the new list (the fixed-size hash would refuse them), and the filter keeps working.
#[test]
fn adds_past_the_hash_size_rebuild_the_sets() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut filter = NftablesFilter::new(bed.client().clone(), bed.tag().clone()).unwrap();
    filter.load(&list_with_probes(10, 1)).unwrap();
    let before = filter.stats().unwrap().entries_v4;
    // 70,000 distinct hosts of 100.64.0.0/10: past the 65,536 the set was made with.
    let hosts: Vec<ipnet::IpNet> = (0..70_000u32)
        .map(|i| {
            ipnet::IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(
                0x6440_0000 + i,
            )))
        })
        .collect();
    filter.add(&hosts).unwrap();
    assert_eq!(filter.stats().unwrap().entries_v4, before + 70_000);
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    let sets = set_names(&bed);
    assert!(sets.contains("h4-1") && !sets.contains("h4-0"), "{sets}");
    filter.teardown().unwrap();
}

/// Many entries added, then removed in one call, as a feed's window turns over: every call
/// goes through, and the sets end as loaded.
#[test]
fn a_window_of_entries_comes_and_goes() {
    testbed::needs_root!();
    use filter_core::generate::{Mix, generate};
    let bed = Testbed::new().unwrap();
    let mut filter = NftablesFilter::new(bed.client().clone(), bed.tag().clone()).unwrap();
    let list = list_with_probes(3_000, 1);
    filter.load(&list).unwrap();
    let before = listed_sets(&bed);
    let feed: Vec<ipnet::IpNet> = generate(3_000, 2, Mix::Default, &[filter_core::Family::V4])
        .iter()
        .collect();
    for chunk in feed.chunks(7) {
        filter.add(chunk).unwrap();
    }
    filter.remove(&feed).unwrap();
    assert_eq!(listed_sets(&bed), before);
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    filter.teardown().unwrap();
}

/// A host address added with a timeout is enforced, then stops being matched when its time
/// is up with no call from this process, and `held` forgets it; a prefix other than a host
/// address, or a filter made without timeouts, is refused by name.
#[test]
fn timed_host_entries_expire_by_themselves() {
    testbed::needs_root!();
    use std::time::Duration;
    let bed = Testbed::new().unwrap();
    let host: ipnet::IpNet = "198.19.255.1/32".parse().unwrap();
    let mut plain = NftablesFilter::new(bed.client().clone(), bed.tag().clone()).unwrap();
    plain.load(&CidrList::new()).unwrap();
    let err = plain
        .add_with_timeout(&[host], Duration::from_secs(1))
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    plain.teardown().unwrap();

    let mut filter = NftablesFilter::new(bed.client().clone(), bed.tag().clone())
        .unwrap()
        .with_timeouts();
    filter
        .load(&filter_core::generate::generate(
            200,
            1,
            filter_core::generate::Mix::Default,
            &filter_core::Family::BOTH,
        ))
        .unwrap();
    let err = filter
        .add_with_timeout(&[testbed::DENIED_NET_V4.into()], Duration::from_secs(1))
        .unwrap_err();
    assert!(err.to_string().contains("198.19.255.0/24"), "{err}");
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
    filter
        .add_with_timeout(&[host], Duration::from_millis(1_500))
        .unwrap();
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    assert!(filter.held().unwrap().iter().any(|n| n == host));
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
    assert!(!filter.held().unwrap().iter().any(|n| n == host));
    // Changes after the expiry go through: nothing asks for the expired address.
    filter.add(&["203.0.113.7/32".parse().unwrap()]).unwrap();
    filter.remove(&[host]).unwrap();
    conformance::timed_entries_kept_become_permanent(&bed, &mut filter);
    filter.teardown().unwrap();
}

/// An add of a prefix length the list did not have swaps in sets made for the new list
/// (the length needs a set and a rule of its own), enforced at once; its removal leaves the
/// set empty and the filter working.
#[test]
fn a_new_prefix_length_gets_its_own_set() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut filter = NftablesFilter::new(bed.client().clone(), bed.tag().clone()).unwrap();
    filter.load(&list_with_probes(10, 1)).unwrap();
    assert!(!listed_sets(&bed).contains_key("p4-26"));
    let net: ipnet::IpNet = "203.0.113.64/26".parse().unwrap();
    filter.add(&[net]).unwrap();
    let sets = listed_sets(&bed);
    assert_eq!(sets["p4-26"], ["203.0.113.64"], "{sets:?}");
    let names = set_names(&bed);
    assert!(
        names.contains("p4-26-1") && !names.contains("h4-0"),
        "{names}"
    );
    assert!(filter.held().unwrap().iter().any(|n| n == net));
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    filter.remove(&[net]).unwrap();
    assert!(listed_sets(&bed)["p4-26"].is_empty());
    assert!(!filter.held().unwrap().iter().any(|n| n == net));
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    filter.teardown().unwrap();
    let left = objects(&filter_nftables::ENGINE, &bed, bed.tag().as_str());
    assert!(left.is_empty(), "{left:?}");
}
