//! The shared engine checks against the real kernel, for the engine and the reference.

mod netlink {
    use filter_core::EgressFilter;
    use filter_ipset::IpsetFilter;
    use filter_iptables::Backend;
    use testbed::Testbed;
    testbed::conformance_tests!(|bed: &Testbed| -> Box<dyn EgressFilter> {
        Box::new(IpsetFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Nft).unwrap())
    });
}

mod legacy_rule {
    use filter_core::EgressFilter;
    use filter_ipset::IpsetFilter;
    use filter_iptables::Backend;
    use testbed::Testbed;
    testbed::conformance_tests!(|bed: &Testbed| -> Box<dyn EgressFilter> {
        Box::new(
            IpsetFilter::new(bed.client().clone(), bed.tag().clone(), Backend::Legacy).unwrap(),
        )
    });
}

mod reference {
    use filter_core::EgressFilter;
    use filter_ipset::IpsetFilter;
    use filter_iptables::Backend;
    use testbed::Testbed;
    testbed::conformance_tests!(|bed: &Testbed| -> Box<dyn EgressFilter> {
        Box::new(
            IpsetFilter::reference(bed.client().clone(), bed.tag().clone(), Backend::Nft).unwrap(),
        )
    });
}
