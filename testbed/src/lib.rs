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
//! run that was killed.

mod addresses;
mod bed;
mod cleanup;
mod inspect;
mod probes;
pub mod sink;
mod watch;

pub use addresses::*;
pub use bed::Testbed;
pub use cleanup::{cleanup, install_signal_cleanup, leftovers, on_signal};
pub use inspect::link_hooks;
pub use probes::Probe;
pub use watch::{Enforcement, EnforcementWatch};
