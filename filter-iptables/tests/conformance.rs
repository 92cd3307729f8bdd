//! The shared engine checks against the real kernel, for both back-ends and the reference.

mod nft {
    use filter_core::{EgressFilter, NetNs, Tag};
    use filter_iptables::{Backend, IptablesFilter};
    testbed::conformance_tests!(|ns: NetNs, tag: Tag| -> Box<dyn EgressFilter> {
        Box::new(IptablesFilter::new(ns, tag, Backend::Nft))
    });
}

mod legacy {
    use filter_core::{EgressFilter, NetNs, Tag};
    use filter_iptables::{Backend, IptablesFilter};
    testbed::conformance_tests!(|ns: NetNs, tag: Tag| -> Box<dyn EgressFilter> {
        Box::new(IptablesFilter::new(ns, tag, Backend::Legacy))
    });
}

mod reference {
    use filter_core::{EgressFilter, NetNs, Tag};
    use filter_iptables::{Backend, IptablesFilter};
    testbed::conformance_tests!(|ns: NetNs, tag: Tag| -> Box<dyn EgressFilter> {
        Box::new(IptablesFilter::reference(ns, tag, Backend::Legacy))
    });
}
