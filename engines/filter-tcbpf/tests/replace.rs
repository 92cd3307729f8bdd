//! A replace whose program swap fails (after the hook's link was taken from the old
//! program) hooks the old program again: the old list stays in force in both families.

use conformance::{list_with_probes, objects, replace_failing_half_way};
use filter_core::EgressFilter;
use filter_tcbpf::{Attach, Table, TcbpfFilter};
use testbed::{DENIED_V4, Probe, Testbed};

#[test]
fn failed_swap_keeps_the_old_list_in_both_families() {
    testbed::needs_root!();
    for (attach, table) in [
        (Attach::TCX, Table::LpmTrie),
        (Attach::CLSACT, Table::LpmTrie),
        (Attach::TCX, Table::Dir24),
    ] {
        let bed = Testbed::new().unwrap();
        let mut filter = TcbpfFilter::new(
            bed.client().clone(),
            bed.tag().clone(),
            &bed.client_link(),
            attach,
        )
        .with_table(table);
        filter.load(&list_with_probes(300, 1)).unwrap();
        let new = replace_failing_half_way(&bed, &mut filter, TcbpfFilter::fail_next_swap);
        // The replace works once nothing fails.
        filter.replace(&new).unwrap();
        assert_eq!(
            bed.probe(DENIED_V4.into()).unwrap(),
            Probe::Delivered,
            "{attach:?} {table:?}"
        );
        filter.teardown().unwrap();
        let left = objects(&filter_tcbpf::ENGINE, &bed, bed.tag().as_str());
        assert!(left.is_empty(), "{attach:?} {table:?}: {left:?}");
    }
}
