//! The shared engine checks against the real kernel, for both tables and both attach modes.

mod tcx {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf", "attach" = "tcx");
}

mod clsact {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf", "attach" = "clsact");
}

mod dir_tcx {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf-dir", "attach" = "tcx");
}

mod dir_clsact {
    conformance::conformance_tests!(filter_tcbpf::ENGINE, "tcbpf-dir", "attach" = "clsact");
}
