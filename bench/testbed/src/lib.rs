//! A throw-away network for egress filter tests and benchmarks: two network namespaces,
//! `egb-<id>-client` and `egb-<id>-server`, joined by a veth pair, with addresses from the
//! benchmarking ranges 198.18.0.0/15 and 2001:2::/48 only.
//!
//! The server accepts UDP for every address of [`PROBE_NET_V4`] and [`PROBE_NET_V6`]
//! (routed to it from the client), so a probe can tell whether a packet to any of those
//! addresses left the client. Filters go in the client namespace.
//!
//! Everything is removed when the [`Testbed`] is dropped (also while unwinding from a
//! panic), by [`install_signal_cleanup`] on Ctrl-C or SIGTERM, and by [`cleanup`] after a
//! run that was killed. A testbed claims its tag while it lives ([`claim`]), so a cleanup
//! run beside it leaves it alone.
//!
//! ```no_run
//! use testbed::{DENIED_V4, Probe, Testbed};
//!
//! let bed = Testbed::new()?; // needs root
//! // A filter goes in `bed.client()`, on the egress of `bed.client_link()`, named by `bed.tag()`.
//! assert_eq!(bed.probe(DENIED_V4.into())?, Probe::Delivered);
//! bed.remove()?;
//! # Ok::<(), filter_core::Error>(())
//! ```

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod addresses;
mod bed;
pub mod cgroup;
pub mod claim;
mod cleanup;
pub mod etcd;
mod inspect;
mod probes;
pub mod sink;
mod watch;

pub use addresses::*;
pub use bed::Testbed;
pub use claim::RunClaim;
pub use cleanup::{
    CleanupReport, HostObjects, cleanup, exit_if_interrupted, install_signal_cleanup, leftovers,
    on_signal,
};
pub use inspect::link_hooks;
pub use probes::Probe;
pub use watch::{Enforcement, EnforcementWatch, Stream};

/// Whether kernel tests can run here: they need root (namespaces, firewalls, BPF). When
/// not root, writes a line saying the test is skipped straight to standard error (past the
/// test harness's capture, so it shows) and returns false; with `EGB_REQUIRE_ROOT=1` (as
/// CI sets) it panics instead, so a CI run can never pass by skipping.
///
/// # Panics
/// When not root and `EGB_REQUIRE_ROOT=1`.
pub fn kernel_tests_allowed(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("EGB_REQUIRE_ROOT").is_none_or(|v| v != "1"),
        "{test} needs root, and EGB_REQUIRE_ROOT=1 forbids skipping it"
    );
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: needs root (namespaces, firewalls, BPF); run `cargo xtask test` as root"
    );
    false
}

/// Returns from the calling test, with a visible message, unless kernel tests can run here
/// ([`kernel_tests_allowed`]).
#[macro_export]
macro_rules! needs_root {
    () => {
        if !$crate::kernel_tests_allowed(concat!(module_path!(), " (", file!(), ":", line!(), ")"))
        {
            return;
        }
    };
}
