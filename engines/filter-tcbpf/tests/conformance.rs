//! The shared engine checks against the real kernel, for both tables and every attach kind,
//! and the per-entry reference loader.

use filter_tcbpf::{Attach, TcbpfOptions};

const TCX: TcbpfOptions = TcbpfOptions {
    attach: Attach::TCX,
};
const CLSACT: TcbpfOptions = TcbpfOptions {
    attach: Attach::CLSACT,
};

mod tcx {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf", super::TCX);
}

mod clsact {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf", super::CLSACT);
}

mod dir_tcx {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf-dir", super::TCX);
}

mod dir_clsact {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf-dir", super::CLSACT);
}

mod per_entry {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf-per-entry");
}

const CGROUP: TcbpfOptions = TcbpfOptions {
    attach: Attach::CGROUP,
};

mod cgroup {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf", super::CGROUP);
}

mod dir_cgroup {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf-dir", super::CGROUP);
}

const CONNECT: TcbpfOptions = TcbpfOptions {
    attach: Attach::CONNECT,
};

mod connect {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf", super::CONNECT);
}

mod dir_connect {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf-dir", super::CONNECT);
}
