//! The shared engine checks against the real kernel, for the engine and the reference.

mod netlink {
    use filter_core::{EgressFilter, NetNs, Tag};
    use filter_ipset::IpsetFilter;
    use filter_iptables::Backend;
    testbed::conformance_tests!(|ns: NetNs, tag: Tag| -> Box<dyn EgressFilter> {
        Box::new(IpsetFilter::new(ns, tag, Backend::Nft).unwrap())
    });
}

mod legacy_rule {
    use filter_core::{EgressFilter, NetNs, Tag};
    use filter_ipset::IpsetFilter;
    use filter_iptables::Backend;
    testbed::conformance_tests!(|ns: NetNs, tag: Tag| -> Box<dyn EgressFilter> {
        Box::new(IpsetFilter::new(ns, tag, Backend::Legacy).unwrap())
    });
}

mod reference {
    use filter_core::{EgressFilter, NetNs, Tag};
    use filter_ipset::IpsetFilter;
    use filter_iptables::Backend;
    testbed::conformance_tests!(|ns: NetNs, tag: Tag| -> Box<dyn EgressFilter> {
        Box::new(IpsetFilter::reference(ns, tag, Backend::Nft).unwrap())
    });
}
