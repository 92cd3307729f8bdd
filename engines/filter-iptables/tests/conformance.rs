//! The shared engine checks against the real kernel, for both back-ends, engine and
//! reference.

use filter_iptables::{Backend, IptablesOptions};

const LEGACY: IptablesOptions = IptablesOptions {
    backend: Backend::Legacy,
};

mod nft {
    conformance::conformance_tests!(filter_iptables::ENGINE, "iptables");
}

mod legacy {
    conformance::conformance_tests!(filter_iptables::ENGINE, "iptables", super::LEGACY);
}

mod reference_nft {
    conformance::conformance_tests!(filter_iptables::ENGINE, "iptables-restore");
}

mod reference_legacy {
    conformance::conformance_tests!(filter_iptables::ENGINE, "iptables-restore", super::LEGACY);
}
