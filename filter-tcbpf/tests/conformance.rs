//! The shared engine checks against the real kernel, for both attach modes.

mod tcx {
    use filter_core::EgressFilter;
    use filter_tcbpf::{Attach, TcbpfFilter};
    use testbed::Testbed;
    testbed::conformance_tests!(|bed: &Testbed| -> Box<dyn EgressFilter> {
        Box::new(TcbpfFilter::new(
            bed.client().clone(),
            bed.tag().clone(),
            &bed.client_link(),
            Attach::Tcx,
        ))
    });
}

mod clsact {
    use filter_core::EgressFilter;
    use filter_tcbpf::{Attach, TcbpfFilter};
    use testbed::Testbed;
    testbed::conformance_tests!(|bed: &Testbed| -> Box<dyn EgressFilter> {
        Box::new(TcbpfFilter::new(
            bed.client().clone(),
            bed.tag().clone(),
            &bed.client_link(),
            Attach::Clsact,
        ))
    });
}

mod dir_tcx {
    use filter_core::EgressFilter;
    use filter_tcbpf::{Attach, Table, TcbpfFilter};
    use testbed::Testbed;
    testbed::conformance_tests!(|bed: &Testbed| -> Box<dyn EgressFilter> {
        Box::new(
            TcbpfFilter::new(
                bed.client().clone(),
                bed.tag().clone(),
                &bed.client_link(),
                Attach::Tcx,
            )
            .with_table(Table::Dir24),
        )
    });
}

mod dir_clsact {
    use filter_core::EgressFilter;
    use filter_tcbpf::{Attach, Table, TcbpfFilter};
    use testbed::Testbed;
    testbed::conformance_tests!(|bed: &Testbed| -> Box<dyn EgressFilter> {
        Box::new(
            TcbpfFilter::new(
                bed.client().clone(),
                bed.tag().clone(),
                &bed.client_link(),
                Attach::Clsact,
            )
            .with_table(Table::Dir24),
        )
    });
}
