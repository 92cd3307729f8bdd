//! The shared engine checks against the real kernel, for the engine and the reference.

mod netlink {
    conformance::conformance_tests!(filter_nftables::ENGINE, "nftables");
}

mod script {
    conformance::conformance_tests!(filter_nftables::ENGINE, "nft-f");
}
