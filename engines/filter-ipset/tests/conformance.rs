//! The shared engine checks against the real kernel, for the engine (both rule back-ends,
//! sets with timeouts) and the reference.

use filter_ipset::{Backend, IpsetOptions};

mod netlink {
    conformance::conformance_tests!(filter_ipset::ENGINE, "ipset");
}

mod legacy_rule {
    conformance::conformance_tests!(
        filter_ipset::ENGINE,
        "ipset",
        super::IpsetOptions {
            backend: super::Backend::Legacy,
            ..Default::default()
        }
    );
}

mod timeouts {
    conformance::conformance_tests!(
        filter_ipset::ENGINE,
        "ipset",
        super::IpsetOptions {
            timeouts: true,
            ..Default::default()
        }
    );
}

mod reference {
    conformance::conformance_tests!(filter_ipset::ENGINE, "ipset-restore");
}
