//! The shared engine checks against the real kernel, for the engine and the reference.

mod netlink {
    conformance::conformance_tests!(filter_ipset::ENGINE, "ipset", "backend" = "nft");
}

mod legacy_rule {
    conformance::conformance_tests!(filter_ipset::ENGINE, "ipset", "backend" = "legacy");
}

mod reference {
    conformance::conformance_tests!(filter_ipset::ENGINE, "ipset-restore");
}
