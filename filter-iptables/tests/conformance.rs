//! The shared engine checks against the real kernel, for both back-ends and the reference.

mod nft {
    use filter_core::EgressFilter;
    use filter_iptables::{Backend, IptablesFilter};
    use testbed::Testbed;
    testbed::conformance_tests!(|bed: &Testbed| -> Box<dyn EgressFilter> {
        Box::new(IptablesFilter::new(
            bed.client().clone(),
            bed.tag().clone(),
            Backend::Nft,
        ))
    });
}

mod legacy {
    use filter_core::EgressFilter;
    use filter_iptables::{Backend, IptablesFilter};
    use testbed::Testbed;
    testbed::conformance_tests!(|bed: &Testbed| -> Box<dyn EgressFilter> {
        Box::new(IptablesFilter::new(
            bed.client().clone(),
            bed.tag().clone(),
            Backend::Legacy,
        ))
    });
}

mod reference {
    use filter_core::EgressFilter;
    use filter_iptables::{Backend, IptablesFilter};
    use testbed::Testbed;
    testbed::conformance_tests!(|bed: &Testbed| -> Box<dyn EgressFilter> {
        Box::new(IptablesFilter::reference(
            bed.client().clone(),
            bed.tag().clone(),
            Backend::Legacy,
        ))
    });
}
