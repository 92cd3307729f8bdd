//! The shared engine checks against the real kernel, for the engine (with and without
//! hosts' sets that keep time) and the reference.

mod netlink {
    conformance::conformance_tests!(filter_nftables::ENGINE, "nftables");
}

mod timeouts {
    conformance::conformance_tests!(
        filter_nftables::ENGINE,
        "nftables",
        filter_nftables::NftablesOptions { timeouts: true }
    );
}

mod script {
    conformance::conformance_tests!(filter_nftables::ENGINE, "nft-f");
}
