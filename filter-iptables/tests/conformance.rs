//! The shared engine checks against the real kernel, for both back-ends and the reference.

mod nft {
    conformance::conformance_tests!(filter_iptables::ENGINE, "iptables", "backend" = "nft");
}

mod legacy {
    conformance::conformance_tests!(filter_iptables::ENGINE, "iptables", "backend" = "legacy");
}

mod reference {
    conformance::conformance_tests!(
        filter_iptables::ENGINE,
        "iptables-restore",
        "backend" = "legacy"
    );
}
