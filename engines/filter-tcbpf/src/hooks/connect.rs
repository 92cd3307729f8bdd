//! Connect-time enforcement: `cgroup/connect4` and `connect6` refuse a `connect()` to a
//! denied address with `EPERM`, and `cgroup/sendmsg4` and `sendmsg6` refuse an unconnected
//! UDP `sendmsg()` to one, for the sockets of a cgroup v2's processes. Decided once per
//! connection, so a connected socket's later packets cost nothing.
//!
//! What it does not see: packets not sent through a socket of the cgroup (forwarded
//! traffic, raw sockets, ICMP), and connections opened before their address was denied.
//! `--attach cgroup` (every packet) covers those. The links go with the process.

use filter_core::TargetKind;
use filter_tcbpf_common::CONNECT_HOOKS;

use super::cgroup::{programs, unified_mount};
use super::links::LinkHook;
use super::{Flavour, HookKind};

/// The connect attach kind.
pub static KIND: HookKind = HookKind {
    name: "connect",
    about: "cgroup/connect4, connect6, sendmsg4 and sendmsg6 links on a cgroup v2: connect() and \
            unconnected UDP sends to a denied address fail with EPERM (Linux 5.7+); removed \
            when the process exits",
    available: || (super::cgroup::KIND.available)() && unified_mount().is_some(),
    make: |target, _| Ok(Box::new(LinkHook::new(target, &KIND, &CONNECT_HOOKS)?)),
    leftovers: |_, prefix| programs(prefix, &CONNECT_HOOKS),
    remove_leftovers: |_, _| Ok(Vec::new()),
    target: TargetKind::Cgroup,
    flavour: Flavour::Connect,
};
