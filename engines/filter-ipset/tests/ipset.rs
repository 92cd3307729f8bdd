//! ipset-specific behaviour against the real kernel.

use filter_core::generate::{Mix, generate};
use filter_core::{CidrList, EgressFilter, Error, Family, ParseOptions};
use filter_ipset::Backend;
use filter_ipset::{FELIX_DEFAULT_MAXELEM, IpsetFilter, SetSize};
use testbed::{DENIED_V4, Probe, Testbed};

#[test]
fn set_is_sized_so_loading_never_resizes() {
    testbed::needs_root!();
    let size = SetSize::for_entries(1_000_000, None).unwrap();
    assert_eq!(size.hashsize, 1 << 20);
    assert_eq!(size.maxelem, 2_000_000);
    assert!(matches!(
        SetSize::for_entries(1 << 29, None),
        Err(Error::Limit { .. })
    ));
    let felix = SetSize::for_entries(1_048_576, Some(FELIX_DEFAULT_MAXELEM)).unwrap();
    assert_eq!(felix.maxelem, FELIX_DEFAULT_MAXELEM);
}

#[test]
fn bad_entry_is_named_and_nothing_is_applied() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut text = String::new();
    for net in generate(3_000, 5, Mix::Default, &[Family::V4]).iter() {
        text += &format!("{net}\n");
    }
    text += "198.19.255.0/24\n0.0.0.0/0\n";
    let list = CidrList::parse(text.as_bytes(), "t", &ParseOptions::default()).unwrap();
    let mut filter =
        IpsetFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Nft).unwrap();
    let err = filter.load(&list).unwrap_err().to_string();
    assert!(err.contains("line 3002") && err.contains("/0"), "{err}");
    assert!(conformance::objects(&filter_ipset::ENGINE, &bed, bed.tag().as_str()).is_empty());
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
}

#[test]
fn stats_report_kernel_memory_and_entries() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut filter =
        IpsetFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Nft).unwrap();
    let list = generate(20_000, 1, Mix::Hosts, &[Family::V4]);
    filter.load(&list).unwrap();
    let stats = filter.stats().unwrap();
    assert_eq!(
        stats.entries_v4,
        list.stats().entries_v4 - list.stats().duplicates
    );
    let memory = stats.kernel_memory.unwrap();
    assert!(memory.bytes > 20_000 * 8, "{memory:?}");
}

/// Calico's published breaking point: a set made with Felix's default maxelem takes 1,048,576
/// distinct entries and refuses one more, naming the limit, with nothing changed.
#[test]
fn felix_maxelem_holds_its_size_and_refuses_one_more() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let list = generate(
        FELIX_DEFAULT_MAXELEM as usize + 1,
        11,
        Mix::Hosts,
        &[Family::V4],
    );
    let filter = |bed: &Testbed| {
        IpsetFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Nft)
            .unwrap()
            .with_maxelem(FELIX_DEFAULT_MAXELEM)
    };
    let err = filter(&bed).load(&list).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                limit: "ipset maxelem",
                requested: 1_048_577,
                max: 1_048_576,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Hash is full"), "{err}");
    assert!(conformance::objects(&filter_ipset::ENGINE, &bed, bed.tag().as_str()).is_empty());

    // A duplicate does not count: the kernel keeps one, so the set is exactly full.
    let mut exactly_full: CidrList = list.v4()[..FELIX_DEFAULT_MAXELEM as usize]
        .iter()
        .map(|&n| n.into())
        .collect();
    exactly_full.push(list.v4()[0].into());
    let mut full = filter(&bed);
    full.load(&exactly_full).unwrap();
    assert_eq!(full.stats().unwrap().entries_v4, 1_048_576);
    // Past that the kernel itself refuses, in Calico's words, but not always at the first
    // entry: since Linux 5.6 a hash set checks maxelem per lock region first (maxelem over
    // the region count) and only sums the regions when the entry's region is at its share,
    // so an entry landing in an emptier region still goes in. Adding one at a time, the
    // refusal comes within a few entries.
    let loaded: std::collections::HashSet<_> = exactly_full.v4().iter().collect();
    let extra: Vec<ipnet::IpNet> = list.v4()[FELIX_DEFAULT_MAXELEM as usize..]
        .iter()
        .chain(generate(4_000, 12, Mix::Hosts, &[Family::V4]).v4())
        .filter(|n| !loaded.contains(n))
        .map(|&n| n.into())
        .collect();
    let refused = extra
        .iter()
        .enumerate()
        .find_map(|(i, net)| full.add(&[*net]).err().map(|e| (i, e.to_string())));
    let (accepted, err) = refused.expect("the kernel refuses entries past maxelem");
    assert!(err.contains("Hash is full"), "{err}");
    assert_eq!(
        full.stats().unwrap().entries_v4,
        1_048_576 + accepted as u64,
        "everything before the refusal went in"
    );
    full.teardown().unwrap();
    assert!(conformance::objects(&filter_ipset::ENGINE, &bed, bed.tag().as_str()).is_empty());
}

/// An entry added with a timeout is enforced, then stops being matched when its time is up,
/// with no call from this process; `held` forgets it. A filter made without timeouts says so.
#[test]
fn timed_entries_expire_by_themselves() {
    testbed::needs_root!();
    use filter_core::generate::{Mix, generate};
    use std::time::Duration;
    let bed = Testbed::new().unwrap();
    let mut plain =
        IpsetFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Nft).unwrap();
    plain
        .load(&generate(10, 1, Mix::Default, &filter_core::Family::BOTH))
        .unwrap();
    let probe: ipnet::IpNet = testbed::DENIED_NET_V4.into();
    let err = plain
        .add_with_timeout(&[probe], Duration::from_secs(1))
        .unwrap_err();
    assert!(
        matches!(err, filter_core::Error::Unsupported { .. }),
        "{err}"
    );
    plain.teardown().unwrap();

    let mut filter = IpsetFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Nft)
        .unwrap()
        .with_timeouts();
    filter
        .load(&generate(100, 1, Mix::Default, &filter_core::Family::BOTH))
        .unwrap();
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
    filter
        .add_with_timeout(&[probe], Duration::from_secs(1))
        .unwrap();
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    assert!(filter.held().unwrap().iter().any(|n| n == probe));
    std::thread::sleep(Duration::from_millis(2_200));
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
    assert!(!filter.held().unwrap().iter().any(|n| n == probe));
    conformance::timed_entries_kept_become_permanent(&bed, &mut filter);
    filter.teardown().unwrap();
    assert!(conformance::objects(&filter_ipset::ENGINE, &bed, bed.tag().as_str()).is_empty());
}
