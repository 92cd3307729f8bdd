//! The native IPv4 load into the legacy table keeps what was there, and jumps still land.

use filter_core::{CidrList, EgressFilter, run_command};
use filter_iptables::{Backend, IptablesFilter};
use testbed::{ALLOWED_V4, DENIED_V4, Probe, Testbed};

fn save(bed: &Testbed) -> String {
    run_command(&mut bed.client().command("iptables-legacy-save")).unwrap()
}

#[test]
fn native_load_keeps_existing_rules_and_chains() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    // Someone else's rules around ours: a user chain jumped to from OUTPUT, rules in other
    // hooks. Their jump offsets move when our rules go in.
    let existing = "*filter\n:other - [0:0]\n-A INPUT -s 192.0.2.2/32 -j DROP\n-A FORWARD -j ACCEPT\n\
                    -A OUTPUT -j other\n-A other -d 198.19.7.0/24 -j DROP\nCOMMIT\n";
    xtables::restore(
        bed.client(),
        Backend::Legacy,
        filter_core::Family::V4,
        existing,
    )
    .unwrap();
    let mut list: CidrList = [
        "203.0.113.0/24".parse().unwrap(),
        "198.19.255.0/24".parse().unwrap(),
    ]
    .into_iter()
    .collect();
    list.extend(
        filter_core::generate::generate(
            5_000,
            3,
            filter_core::generate::Mix::Default,
            &[filter_core::Family::V4],
        )
        .iter(),
    );
    let mut filter = IptablesFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Legacy);
    filter.load(&list).unwrap();
    let after = save(&bed);
    let chain = bed.tag().as_str();
    assert!(after.contains(&format!("-A OUTPUT -j {chain}")), "{after}");
    assert!(after.contains("-A OUTPUT -j other"), "{after}");
    assert!(
        after.contains("-A other -d 198.19.7.0/24 -j DROP"),
        "{after}"
    );
    assert!(
        after.contains("-A INPUT -s 192.0.2.2/32 -j DROP"),
        "{after}"
    );
    assert!(
        after.contains(&format!("-A {chain} -d 203.0.113.0/24 -j DROP")),
        "{after}"
    );
    assert_eq!(
        after
            .lines()
            .filter(|l| l.starts_with(&format!("-A {chain} ")))
            .count(),
        5_002
    );
    // Our chain drops, the other chain still drops what it dropped, the rest passes.
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    assert_eq!(
        bed.probe("198.19.7.1".parse().unwrap()).unwrap(),
        Probe::Dropped
    );
    assert_eq!(bed.probe(ALLOWED_V4.into()).unwrap(), Probe::Delivered);
    filter.teardown().unwrap();
    let after = save(&bed);
    assert!(!after.contains(chain), "{after}");
    assert!(
        after.contains("-A other -d 198.19.7.0/24 -j DROP") && after.contains("-A OUTPUT -j other"),
        "{after}"
    );
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
}

/// A list whose rules would not fit the kernel's table blob is refused up front, naming
/// the limit, with nothing changed (the published benchmark's iptables stops here).
#[test]
fn list_past_the_table_blob_limit_is_refused_before_any_change() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let rules = usize::try_from(filter_iptables::XT_MAX_TABLE_SIZE / 152).unwrap() + 1;
    let list = filter_core::generate::generate(
        rules,
        1,
        filter_core::generate::Mix::Hosts,
        &[filter_core::Family::V4],
    );
    for mut filter in [
        IptablesFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Legacy),
        IptablesFilter::reference(bed.client().clone(), bed.tag().clone(), Backend::Legacy),
    ] {
        let err = filter.load(&list).unwrap_err();
        assert!(
            matches!(
                err,
                filter_core::Error::Limit {
                    limit: "x_tables table blob (XT_MAX_TABLE_SIZE)",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!save(&bed).contains(bed.tag().as_str()));
    }
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
}
